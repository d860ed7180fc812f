//! Benchmarks of the pure CRDT core: applying remote operations per type,
//! the local write path, the operation codec, and the digest on a large state.
//!
//! Run with `cargo bench --bench crdt` (or `tools/bench-crdt.sh` for a
//! summary table). Operation streams are generated outside the timed loops by
//! a `Replica` doing ordinary writes, so they are exactly what a region ships.

use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use braid::crdt::codec::{decode_op, encode_op, encode_op_to_vec};
use braid::crdt::digest::hash_parts;
use braid::crdt::{
    Body, Decimal, Effect, Hlc, Intent, KeyWrite, Operation, RegionId, Replica, State, TtlChange,
};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};

/// Operations per stream in the `apply`, `prepare_and_apply` and `codec` groups.
const OPS: usize = 10_000;
/// Keys each type family writes to.
const KEYSPACE: u64 = 1_000;
/// Keys of the large state of the `digest` group.
const BIG: usize = 1_000_000;
/// Wall clock (Unix ms) the generated writes start at.
const T0: u64 = 1_700_000_000_000;

const R1: RegionId = RegionId(1);
const R2: RegionId = RegionId(2);
const R3: RegionId = RegionId(3);

/// SplitMix64: a tiny deterministic generator, so every run benchmarks the
/// same streams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `pct`%.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

fn b(s: String) -> Bytes {
    Bytes::from(s)
}

fn set(value: Bytes) -> Intent {
    Intent::Set {
        value,
        ttl: TtlChange::Persist,
    }
}

/// The type families benchmarked; each draws the next write of its stream.
#[derive(Clone, Copy, Debug)]
enum Family {
    StringSet,
    CounterIncr,
    SetAddRem,
    HashSetIncr,
    ZSetAddIncr,
    ListPushPop,
    /// Plain list pushes (the local write path benchmark).
    ListPush,
    Del,
    Expire,
}

impl Family {
    /// The next write: a key and what to do to it. It may be refused or be a
    /// no-op (an SREM of an absent member): the caller then draws again.
    fn draw(self, rng: &mut Rng, i: u64) -> (Bytes, Intent) {
        let k = rng.below(KEYSPACE);
        match self {
            Family::StringSet => (
                b(format!("str:{k}")),
                set(b(format!("value-{i:012}-{:08x}", rng.next() as u32))),
            ),
            Family::CounterIncr => {
                // Integer and float counters on separate keys: INCRBY on a
                // fractional value is refused, as in Redis.
                if k % 2 == 0 {
                    (
                        b(format!("ctr:{k}")),
                        Intent::IncrBy(rng.below(100) as i64 + 1),
                    )
                } else {
                    let d = format!("{}.{:02}", rng.below(10), rng.below(100) + 1);
                    let d = Decimal::parse(d.as_bytes()).expect("valid float");
                    (b(format!("ctr:{k}")), Intent::IncrByFloat(d))
                }
            }
            Family::SetAddRem => {
                let m = b(format!("member-{}", rng.below(64)));
                let intent = if rng.pct(70) {
                    Intent::SAdd(vec![m])
                } else {
                    Intent::SRem(vec![m])
                };
                (b(format!("set:{k}")), intent)
            }
            Family::HashSetIncr => {
                let intent = if rng.pct(60) {
                    Intent::HSet(vec![(
                        b(format!("field-{}", rng.below(16))),
                        b(format!("v{i:012}")),
                    )])
                } else {
                    Intent::HIncrBy(b(format!("n{}", rng.below(4))), rng.below(10) as i64 + 1)
                };
                (b(format!("hash:{k}")), intent)
            }
            Family::ZSetAddIncr => {
                let m = b(format!("player-{}", rng.below(32)));
                let intent = if rng.pct(60) {
                    Intent::ZAdd(vec![(m, rng.below(1_000_000) as f64 / 100.0)])
                } else {
                    Intent::ZIncrBy(m, rng.below(100) as f64 + 0.5)
                };
                (b(format!("zset:{k}")), intent)
            }
            Family::ListPushPop => {
                let v = || b(format!("item-{i:012}"));
                let intent = match rng.below(100) {
                    0..35 => Intent::LPush(vec![v()]),
                    35..70 => Intent::RPush(vec![v()]),
                    70..90 => Intent::LPop(1),
                    _ => Intent::LSet {
                        index: 0,
                        value: v(),
                    },
                };
                (b(format!("list:{k}")), intent)
            }
            Family::ListPush => {
                let v = b(format!("item-{i:012}"));
                let intent = if rng.pct(50) {
                    Intent::LPush(vec![v])
                } else {
                    Intent::RPush(vec![v])
                };
                (b(format!("list:{k}")), intent)
            }
            Family::Del => (b(format!("del:{i}")), Intent::Del),
            Family::Expire => (
                b(format!("str:{k}")),
                Intent::ExpireAt(T0 + 3_600_000 + rng.below(60_000)),
            ),
        }
    }
}

/// Has `r` perform writes drawn from `family` until `n` of them produced an
/// operation; returns those operations.
fn record(r: &mut Replica, family: Family, n: usize, rng: &mut Rng) -> Vec<Operation> {
    let mut ops = Vec::with_capacity(n);
    let mut tries = 0u64;
    while ops.len() < n {
        tries += 1;
        assert!(
            tries < 100 * n as u64,
            "{family:?}: too many refused writes"
        );
        let (key, intent) = family.draw(rng, tries);
        if let Ok(Some(op)) = r.write(key, intent, T0 + tries) {
            ops.push(op);
        }
    }
    ops
}

/// Applies operations that must all be ready.
fn apply_all(state: &mut State, ops: &[Operation]) {
    for op in ops {
        state.apply(op).expect("causally ready");
    }
}

/// A workload: a starting state (what the receiver already applied) and the
/// stream of operations to time, from region 2.
struct Workload {
    base: State,
    ops: Vec<Operation>,
}

fn workload(family: Family) -> Workload {
    let mut rng = Rng(0xB4A1D ^ family as u64);
    let mut writer = Replica::new(R2);
    let mut base = State::new();
    match family {
        // DEL needs live keys: first create OPS keys of mixed types.
        Family::Del => {
            for i in 0..OPS {
                let key = b(format!("del:{i}"));
                let m = |j: usize| b(format!("m{j}"));
                let intent = match i % 5 {
                    0 => set(b(format!("value-{i}"))),
                    1 => Intent::SAdd((0..3).map(m).collect()),
                    2 => Intent::HSet((0..2).map(|j| (m(j), m(j + 10))).collect()),
                    3 => Intent::RPush((0..3).map(m).collect()),
                    _ => Intent::ZAdd((0..2).map(|j| (m(j), j as f64)).collect()),
                };
                let op = writer.write(key, intent, T0).expect("write").expect("op");
                base.apply(&op).expect("ready");
            }
        }
        // EXPIRE needs live keys: first SET every key of the keyspace.
        Family::Expire => {
            for k in 0..KEYSPACE {
                let op = writer
                    .write(b(format!("str:{k}")), set(b(format!("v{k}"))), T0)
                    .expect("write")
                    .expect("op");
                base.apply(&op).expect("ready");
            }
        }
        _ => {}
    }
    let ops = match family {
        Family::Del => {
            // Every key once, in a scrambled order (7919 is prime, OPS is not
            // a multiple of it).
            (0..OPS)
                .map(|i| {
                    let key = b(format!("del:{}", (i * 7919) % OPS));
                    writer
                        .write(key, Intent::Del, T0 + 1 + i as u64)
                        .expect("write")
                        .expect("live key")
                })
                .collect()
        }
        _ => record(&mut writer, family, OPS, &mut rng),
    };
    // Sanity check, untimed: the receiver converges with the writer.
    let mut check = base.clone();
    apply_all(&mut check, &ops);
    assert_eq!(check.digest(), writer.state.digest(), "{family:?} diverged");
    Workload { base, ops }
}

fn bench_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(OPS as u64))
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, family) in [
        ("string_set", Family::StringSet),
        ("counter_incr", Family::CounterIncr),
        ("set_add_rem", Family::SetAddRem),
        ("hash_set_incr", Family::HashSetIncr),
        ("zset_add_incr", Family::ZSetAddIncr),
        ("list_push_pop", Family::ListPushPop),
        ("del", Family::Del),
        ("expire", Family::Expire),
    ] {
        // Built on first use, so a filtered run skips what it does not time.
        let mut w = None;
        g.bench_function(name, |bench| {
            let w: &Workload = w.get_or_insert_with(|| workload(family));
            bench.iter_batched(
                || w.base.clone(),
                |mut state| {
                    for op in &w.ops {
                        let _ = black_box(state.apply(black_box(op)));
                    }
                    state
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// `OPS` local writes of `family` that each produce an operation.
fn local_writes(name: &str, family: Family) -> Vec<(Bytes, Intent)> {
    let mut rng = Rng(0x10CA1 ^ family as u64);
    let writes: Vec<(Bytes, Intent)> = (0..OPS as u64).map(|i| family.draw(&mut rng, i)).collect();
    // Untimed check that every one of these writes produces an operation.
    let mut check = Replica::new(R1);
    for (i, (key, intent)) in writes.iter().enumerate() {
        let op = check.write(key.clone(), intent.clone(), T0 + i as u64);
        assert!(matches!(op, Ok(Some(_))), "{name}: {op:?}");
    }
    writes
}

fn bench_prepare_and_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("prepare_and_apply");
    g.throughput(Throughput::Elements(OPS as u64))
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, family) in [
        ("string_set", Family::StringSet),
        ("counter_incr", Family::CounterIncr),
        ("list_push", Family::ListPush),
    ] {
        let mut writes = None;
        g.bench_function(name, |bench| {
            let writes: &[(Bytes, Intent)] =
                writes.get_or_insert_with(|| local_writes(name, family));
            bench.iter_batched(
                || (Replica::new(R1), writes.to_vec()),
                |(mut r, writes)| {
                    for (i, (key, intent)) in writes.into_iter().enumerate() {
                        let _ = black_box(r.write(key, intent, T0 + i as u64));
                    }
                    r
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// A realistic mix of operations from three regions that see each other's
/// writes, so dependency vectors have three entries.
fn mixed_ops(n: usize) -> Vec<Operation> {
    let mut rng = Rng(0xC0DEC);
    let mut regions = [Replica::new(R1), Replica::new(R2), Replica::new(R3)];
    // Strings dominate real workloads; weights in percent.
    let weights = [
        (Family::StringSet, 35),
        (Family::CounterIncr, 15),
        (Family::HashSetIncr, 15),
        (Family::SetAddRem, 10),
        (Family::ZSetAddIncr, 10),
        (Family::ListPushPop, 10),
        (Family::Expire, 5),
    ];
    let mut ops = Vec::with_capacity(n);
    let mut tries = 0u64;
    while ops.len() < n {
        tries += 1;
        let mut roll = rng.below(100);
        let family = weights
            .iter()
            .find(|(_, w)| {
                let hit = roll < *w;
                roll = roll.saturating_sub(*w);
                hit
            })
            .map_or(Family::StringSet, |(f, _)| *f);
        let (key, intent) = family.draw(&mut rng, tries);
        let at = (tries % 3) as usize;
        let Ok(Some(op)) = regions[at].write(key, intent, T0 + tries) else {
            continue;
        };
        for (j, other) in regions.iter_mut().enumerate() {
            if j != at {
                other.state.apply(&op).expect("delivered in causal order");
            }
        }
        ops.push(op);
    }
    ops
}

fn bench_codec(c: &mut Criterion) {
    let ops = mixed_ops(OPS);
    let encoded: Vec<Vec<u8>> = ops.iter().map(encode_op_to_vec).collect();
    let total: usize = encoded.iter().map(Vec::len).sum();
    for (op, bytes) in ops.iter().zip(&encoded) {
        assert_eq!(&decode_op(bytes).expect("decodes"), op, "round trip");
    }
    eprintln!(
        "codec: {} mixed operations, {total} bytes, {:.1} bytes/op on average",
        ops.len(),
        total as f64 / ops.len() as f64
    );

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::ElementsAndBytes {
        elements: ops.len() as u64,
        bytes: total as u64,
    })
    .sample_size(50)
    .warm_up_time(Duration::from_secs(1))
    .measurement_time(Duration::from_secs(3));
    g.bench_function("encode", |bench| {
        let mut buf = Vec::with_capacity(1024);
        bench.iter(|| {
            for op in &ops {
                buf.clear();
                encode_op(black_box(op), &mut buf);
                black_box(&buf);
            }
        })
    });
    g.bench_function("decode", |bench| {
        bench.iter(|| {
            for bytes in &encoded {
                let _ = black_box(decode_op(black_box(bytes)));
            }
        })
    });
    g.finish();
}

/// What `State::digest` sums per key, rebuilt from public pieces: the hash of
/// key, visible type, content digest and deadline.
fn recompute_digest(state: &State) -> u128 {
    state.entries().fold(0u128, |acc, (key, entry)| {
        let Some(c) = entry.visible() else { return acc };
        let deadline = entry.deadline().map_or(0, |d| d.at_ms);
        acc.wrapping_add(hash_parts(&[
            key,
            c.key_type().name().as_bytes(),
            &c.digest().to_le_bytes(),
            &deadline.to_le_bytes(),
        ]))
    })
}

fn big_key(i: usize) -> Bytes {
    b(format!("key:{i:07}"))
}

/// A plain SET by `origin` of a live key, as `State::prepare` makes it.
fn remote_set(state: &State, origin: RegionId, seq: u64, key: Bytes, value: Bytes) -> Operation {
    let mut deps = state.version_vector().clone();
    deps.set(origin, seq - 1);
    Operation {
        origin,
        seq,
        hlc: Hlc::new(T0 + 10_000_000 + seq, 0),
        deps,
        txn_rest: 0,
        body: Body::Key(KeyWrite {
            key,
            fresh: false,
            effect: Effect::StrSet {
                value,
                ttl: TtlChange::Persist,
            },
        }),
    }
}

/// The 1M-key state (region 2's replica, built by ordinary writes) and the
/// encodings of those writes, kept contiguously as in a log.
struct Big {
    replica: Replica,
    log: Vec<u8>,
    frames: Vec<Range<usize>>,
}

fn build_big() -> Big {
    let started = Instant::now();
    let mut replica = Replica::new(R2);
    let mut log = Vec::with_capacity(BIG * 48);
    let mut frames = Vec::with_capacity(BIG);
    let mut ops = Vec::with_capacity(BIG);
    for i in 0..BIG {
        let op = replica
            .write(big_key(i), set(b(format!("value-{i:07}"))), T0 + i as u64)
            .expect("write")
            .expect("op");
        let at = log.len();
        encode_op(&op, &mut log);
        frames.push(at..log.len());
        ops.push(op);
    }
    assert_eq!(replica.state.len(), BIG);
    eprintln!(
        "digest: built {BIG} keys with Replica::write in {:.2?} ({} bytes of log, {:.1} bytes/op)",
        started.elapsed(),
        log.len(),
        log.len() as f64 / BIG as f64
    );
    assert_eq!(
        recompute_digest(&replica.state),
        replica.state.digest(),
        "digest recomputed from public pieces differs from the incremental one"
    );
    // One-shot (not a criterion sample: a run takes seconds) apply-only
    // rebuild, to split `rebuild_one_million_keys` into decode and apply.
    let mut state = State::new();
    let started = Instant::now();
    for op in &ops {
        let _ = black_box(state.apply(black_box(op)));
    }
    let took = started.elapsed();
    eprintln!(
        "digest: one-shot apply of {BIG} pre-decoded SETs into an empty state: {took:.2?} ({:.0} ops/s)",
        BIG as f64 / took.as_secs_f64()
    );
    assert_eq!(state.digest(), replica.state.digest());
    // The remote SETs of `set_on_one_million_keys` are built by hand: check
    // that they are exactly what `State::prepare` makes.
    let key = big_key(7);
    let value = Bytes::from_static(b"checked");
    let prepared = replica
        .state
        .prepare(
            R3,
            Hlc::new(T0 + 10_000_001, 0),
            key.clone(),
            set(value.clone()),
            T0,
        )
        .expect("prepare")
        .expect("op");
    assert_eq!(prepared, remote_set(&replica.state, R3, 1, key, value));
    Big {
        replica,
        log,
        frames,
    }
}

fn bench_digest(c: &mut Criterion) {
    // Built on first use, so a filtered run that skips the group skips it.
    let mut big: Option<Big> = None;
    let mut g = c.benchmark_group("digest");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    g.throughput(Throughput::Elements(1));
    g.bench_function("read_one_million_keys", |bench| {
        let big = big.get_or_insert_with(build_big);
        bench.iter(|| black_box(black_box(&big.replica.state).digest()))
    });

    // One remote SET (from region 3, which has seen everything) overwriting a
    // random key of the 1M-key state: apply plus incremental digest update.
    // Operations are built untimed in batches; their sequence continues
    // across batches.
    let mut rng = Rng(0x5E7);
    let mut seq = 0u64;
    g.bench_function("set_on_one_million_keys", |bench| {
        let state = &mut big.get_or_insert_with(build_big).replica.state;
        bench.iter_custom(|iters| {
            let batch: Vec<Operation> = (0..iters)
                .map(|_| {
                    seq += 1;
                    let key = big_key(rng.below(BIG as u64) as usize);
                    let value = b(format!("new-{seq:09}"));
                    remote_set(state, R3, seq, key, value)
                })
                .collect();
            let start = Instant::now();
            for op in &batch {
                let _ = black_box(state.apply(black_box(op)));
            }
            let elapsed = start.elapsed();
            drop(batch);
            elapsed
        })
    });

    // The same through the local write path (prepare + apply).
    let mut wall = T0 + 20_000_000;
    g.bench_function("write_set_one_million_keys", |bench| {
        let replica = &mut big.get_or_insert_with(build_big).replica;
        bench.iter(|| {
            wall += 1;
            let key = big_key(rng.below(BIG as u64) as usize);
            black_box(replica.write(key, set(Bytes::from_static(b"local")), wall))
        })
    });
    if let Some(big) = &big {
        let state = &big.replica.state;
        assert_eq!(state.version_vector().get(R3), seq, "every SET applied");
        assert_eq!(state.len(), BIG);
        assert_eq!(recompute_digest(state), state.digest());
    }

    // Long runs: few samples, the same iteration count in each.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(BIG as u64));
    // The digest recomputed from scratch (what the incremental one saves).
    g.bench_function("recompute_one_million_keys", |bench| {
        let state = &big.get_or_insert_with(build_big).replica.state;
        bench.iter(|| black_box(recompute_digest(black_box(state))))
    });
    // Rebuilding the state from its log: decode and apply 1M SETs.
    g.bench_function("rebuild_one_million_keys", |bench| {
        let big = big.get_or_insert_with(build_big);
        bench.iter_batched(
            State::new,
            |mut state| {
                for frame in &big.frames {
                    let op = decode_op(&big.log[frame.clone()]).expect("valid log");
                    let _ = black_box(state.apply(&op));
                }
                state
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_apply,
    bench_prepare_and_apply,
    bench_codec,
    bench_digest
);
criterion_main!(benches);
