//! Snapshots: a frozen state written and read back is the same state, down to
//! its metadata (proved by applying the same further operations, garbage
//! collection included, to the original and to the restored copy); damage
//! anywhere in a snapshot is detected; the file store falls back to an older
//! snapshot when the newest is damaged; a frozen copy never sees later writes.

mod common;

use braid::crdt::snapshot::{self, SnapshotError};
use braid::crdt::{Decimal, FrozenState, Intent, Operation, RegionId, Replica, State, TtlChange};
use braid::snapshot::{LoadError, SnapshotStore};
use bytes::Bytes;
use common::history::{b, cluster, run_on, step, wall, T0};
use common::{dump, Node};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

// ------------------------------------------------------------ helpers

/// Every entry with all of its metadata, in a canonical key order: two
/// states with the same deep dump hold the same bases, covers, increments,
/// folded sums, tags, positions, expiry entries, hidden contents and
/// per-collection orders.
fn deep<'a>(
    entries: impl Iterator<Item = (&'a Bytes, &'a braid::crdt::Entry)>,
) -> BTreeMap<Bytes, String> {
    entries
        .map(|(k, e)| (k.clone(), format!("{e:?}")))
        .collect()
}

fn encode(frozen: &FrozenState) -> Vec<u8> {
    let mut out = Vec::new();
    snapshot::encode(frozen, &mut out).expect("encode to memory");
    out
}

fn restore(state: &State) -> State {
    let bytes = encode(&state.freeze());
    snapshot::decode(&bytes[..]).unwrap_or_else(|e| panic!("decoding a fresh snapshot: {e}"))
}

fn assert_identical(a: &State, b: &State) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.version_vector(), b.version_vector());
    prop_assert_eq!(a.max_hlc(), b.max_hlc());
    prop_assert_eq!(a.digest(), b.digest());
    prop_assert_eq!(a.len(), b.len());
    prop_assert_eq!(a.key_count(), b.key_count());
    prop_assert_eq!(a.metadata_len(), b.metadata_len());
    prop_assert_eq!(dump(a), dump(b));
    prop_assert_eq!(deep(a.entries()), deep(b.entries()));
    prop_assert_eq!(encode(&a.freeze()), encode(&b.freeze()));
    Ok(())
}

/// A region restarted from a snapshot of `node`'s state: same id, log,
/// stability knowledge and clock (a refused write ticks the clock without
/// applying anything, so the clock may be ahead of the state's max HLC;
/// a real restart resumes it from the log, which these tests do not model).
fn restarted(node: &Node) -> Node {
    let state = restore(&node.replica.state);
    assert!(state.max_hlc() <= node.replica.clock.last());
    Node {
        replica: Replica {
            region: node.replica.region,
            clock: node.replica.clock.clone(),
            state,
        },
        log: node.log.clone(),
        stability: node.stability.clone(),
        conflicts: node.conflicts.clone(),
    }
}

/// A state with many keys of every type, type conflicts, expiries, float
/// and integer counters, list positions from three regions, and metadata
/// both collected and not: region 1's view of a busy three-region cluster.
fn rich_state(keys: u64, writes: u64, seed: u64) -> State {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut nodes = cluster();
    let mut now = T0;
    let m = |rng: &mut fastrand::Rng| Bytes::from(format!("m{}", rng.u8(0..6)));
    for i in 0..writes {
        now += rng.u64(0..3);
        let r = rng.usize(0..3);
        let k = rng.u64(0..keys);
        // One key in eight takes writes of any type: type conflicts.
        let kind = if k % 8 == 0 { rng.u64(0..6) } else { k % 6 };
        let key = format!("key:{k}");
        let intent = match (kind, rng.u8(0..4)) {
            (0, 0) => Intent::IncrBy(rng.i64(-5..5)),
            (0, 1) => Intent::IncrByFloat(Decimal::parse(b"0.25").expect("decimal")),
            (0, 2) => Intent::Set {
                value: Bytes::from(format!("v{i}")),
                ttl: TtlChange::ExpireAt(now + 60_000),
            },
            (0, _) => Intent::Set {
                value: Bytes::from(format!("{}", rng.u16(..))),
                ttl: TtlChange::Persist,
            },
            (1, 0) => Intent::SRem(vec![m(&mut rng)]),
            (1, _) => Intent::SAdd(vec![m(&mut rng), m(&mut rng)]),
            (2, 0) => Intent::HDel(vec![m(&mut rng)]),
            (2, 1) => Intent::HIncrBy(m(&mut rng), 3),
            (2, _) => Intent::HSet(vec![(m(&mut rng), Bytes::from(format!("h{i}")))]),
            (3, 0) => Intent::ZRem(vec![m(&mut rng)]),
            (3, 1) => Intent::ZIncrBy(m(&mut rng), 1.5),
            (3, _) => Intent::ZAdd(vec![(m(&mut rng), f64::from(rng.i16(..)) / 4.0)]),
            (4, 0) => Intent::RPop(1),
            (4, 1) => Intent::LSet {
                index: 0,
                value: Bytes::from(format!("set{i}")),
            },
            (4, _) => Intent::LPush(vec![Bytes::from(format!("e{i}")), m(&mut rng)]),
            (_, 0) => Intent::Del,
            (_, 1) => Intent::Persist,
            (_, _) => Intent::ExpireAt(now + 120_000),
        };
        if let Ok(op) = nodes[r].replica.write(key, intent, wall(r, now)) {
            nodes[r].record(op);
        }
        if rng.u8(0..20) == 0 {
            let (from, to) = (rng.usize(0..3), rng.usize(0..3));
            if from != to {
                let src = nodes[from].clone();
                nodes[to].merge_from(&src, now);
            }
        }
        if rng.u16(0..500) == 0 {
            let src = nodes[rng.usize(0..3)].clone();
            nodes[0].hear_report_from(&src);
            nodes[0].collect();
        }
    }
    nodes.swap_remove(0).replica.state
}

// ------------------------------------------------------------ round trips

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    /// Any history; every region snapshots and restarts from its snapshot.
    /// The restored states are identical to the originals (what clients read,
    /// digest, version vector, metadata), and stay identical while the same
    /// further history, garbage collection included, runs on both clusters.
    #[test]
    fn snapshot_restore_is_indistinguishable(
        before in prop::collection::vec(step(), 1..100),
        after in prop::collection::vec(step(), 1..80),
    ) {
        let mut original = cluster();
        let (now, _) = run_on(&mut original, &before, T0);
        let mut restored: Vec<Node> = original.iter().map(restarted).collect();
        for (o, r) in original.iter().zip(&restored) {
            assert_identical(&o.replica.state, &r.replica.state)?;
        }
        run_on(&mut original, &after, now);
        run_on(&mut restored, &after, now);
        for (o, r) in original.iter().zip(&restored) {
            assert_identical(&o.replica.state, &r.replica.state)?;
            prop_assert_eq!(&o.log, &r.log);
        }
        // Everyone hears everyone and collects: both clusters bound their
        // metadata the same way.
        for nodes in [&mut original, &mut restored] {
            let all: Vec<Operation> = nodes.iter().flat_map(|n| n.log.clone()).collect();
            for n in nodes.iter_mut() {
                n.deliver_any_order(&all, now + 1_000_000);
            }
            let peers = nodes.to_vec();
            for n in nodes.iter_mut() {
                for p in &peers {
                    n.hear_report_from(p);
                }
                n.collect();
            }
        }
        for (o, r) in original.iter().zip(&restored) {
            assert_identical(&o.replica.state, &r.replica.state)?;
        }
    }
}

#[test]
fn empty_state_round_trips() {
    let s = State::new();
    let back = restore(&s);
    assert_eq!(back.key_count(), 0);
    assert_eq!(back.digest(), 0);
    assert!(back.version_vector().is_empty());
    let bytes = encode(&s.freeze());
    assert_eq!(bytes.len(), 57, "magic, version, header, footer");
}

#[test]
fn rich_multi_chunk_state_round_trips_and_re_encodes_identically() {
    let state = rich_state(3_000, 30_000, 7);
    let bytes = encode(&state.freeze());
    assert!(
        bytes.len() > 3 * snapshot::CHUNK_TARGET,
        "several chunks: {}",
        bytes.len()
    );
    assert!(
        state.entries().any(|(_, e)| e.type_count() > 1),
        "type conflicts"
    );
    assert!(
        state.entries().any(|(_, e)| e.deadline().is_some()),
        "expiries"
    );
    let back = snapshot::decode(&bytes[..]).expect("decode");
    assert_identical(&state, &back).expect("identical");
}

/// Garbage collection after a restore still bounds metadata: the restored
/// state does not know which keys were unstable, and must still collect
/// every one of them.
#[test]
fn gc_after_restore_bounds_metadata() {
    let mut nodes = cluster();
    let mut t = T0;
    // Churn that leaves metadata behind until it is collected: concurrent
    // adds and removes, increments, overwrites, expiries, on 300 keys.
    for round in 0..20u64 {
        for n in nodes.iter_mut() {
            for k in 0..100u64 {
                t += 1;
                let writes = [
                    (format!("s{k}"), Intent::SAdd(vec![b("a"), b("b")])),
                    (format!("s{k}"), Intent::SRem(vec![b("a")])),
                    (format!("c{k}"), Intent::IncrBy(round as i64)),
                    (format!("h{k}"), Intent::HSet(vec![(b("f"), b("v"))])),
                    (format!("h{k}"), Intent::HIncrBy(b("g"), 2)),
                    (format!("c{k}"), Intent::ExpireAt(T0 + 10_000_000 + round)),
                ];
                for (key, intent) in writes {
                    let op = n.replica.write(key, intent, t).expect("write");
                    n.record(op);
                }
            }
        }
        let all: Vec<Operation> = nodes.iter().flat_map(|n| n.log.clone()).collect();
        for n in nodes.iter_mut() {
            n.deliver_any_order(&all, t);
        }
    }
    let uncollected = nodes[0].replica.state.metadata_len();
    let mut restored = restarted(&nodes[0]);
    assert_eq!(restored.replica.state.metadata_len(), uncollected);
    let peers = nodes.clone();
    for p in &peers {
        nodes[0].hear_report_from(p);
        restored.hear_report_from(p);
    }
    nodes[0].collect();
    restored.collect();
    let collected = nodes[0].replica.state.metadata_len();
    assert!(
        collected * 5 < uncollected,
        "collection dropped little: {uncollected} -> {collected}"
    );
    assert_eq!(restored.replica.state.metadata_len(), collected);
    assert_identical(&nodes[0].replica.state, &restored.replica.state).expect("identical");
    // Fully stable: the same bound a state that never restarted reaches.
    assert!(collected <= 300 * 4, "{collected}");
}

// ------------------------------------------------------------ damage

/// Small enough to flip every byte and cut at every length.
fn small_snapshot() -> Vec<u8> {
    let bytes = encode(&rich_state(40, 400, 11).freeze());
    assert!(
        bytes.len() > 1_000 && bytes.len() < 64 * 1024,
        "{}",
        bytes.len()
    );
    bytes
}

#[test]
fn every_flipped_byte_is_detected() {
    let bytes = small_snapshot();
    for i in 0..bytes.len() {
        for x in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= x;
            assert!(
                snapshot::decode(&bad[..]).is_err(),
                "flip {x:#04x} at byte {i} of {} went unnoticed",
                bytes.len()
            );
        }
    }
}

#[test]
fn flipped_bytes_across_many_chunks_are_detected() {
    let bytes = encode(&rich_state(3_000, 30_000, 5).freeze());
    let mut rng = fastrand::Rng::with_seed(99);
    for n in 0..3_000 {
        // Every byte of the first and last 300, and random ones between.
        let i = match n {
            0..300 => n,
            300..600 => bytes.len() - 1 - (n - 300),
            _ => rng.usize(..bytes.len()),
        };
        let mut bad = bytes.clone();
        bad[i] ^= 1 << rng.u8(0..8);
        let err = snapshot::decode(&bad[..]).expect_err("flip unnoticed");
        // Damage inside chunks is pinned to the chunk.
        if i > 100 && i < bytes.len() - 100 {
            assert!(
                matches!(
                    err,
                    SnapshotError::ChunkCrc { .. }
                        | SnapshotError::BadChunk { .. }
                        | SnapshotError::UnknownMarker { .. }
                        | SnapshotError::TooManyKeys { .. }
                        | SnapshotError::Truncated { .. }
                        | SnapshotError::FooterCrc { .. }
                ),
                "byte {i}: {err}"
            );
        }
    }
}

#[test]
fn every_truncation_and_any_trailing_byte_is_an_error() {
    let bytes = small_snapshot();
    for len in 0..bytes.len() {
        let err = snapshot::decode(&bytes[..len]).expect_err("truncated snapshot accepted");
        assert!(
            matches!(
                err,
                SnapshotError::Truncated { .. }
                    | SnapshotError::HeaderCrc { .. }
                    | SnapshotError::ChunkCrc { .. }
            ),
            "cut at {len}: {err}"
        );
    }
    let big = encode(&rich_state(3_000, 30_000, 3).freeze());
    for len in (0..big.len()).step_by(97).chain(big.len() - 64..big.len()) {
        assert!(snapshot::decode(&big[..len]).is_err(), "cut at {len}");
    }
    for extra in [&[0u8][..], b"x", &[0; 100]] {
        let mut long = bytes.clone();
        long.extend_from_slice(extra);
        assert!(matches!(
            snapshot::decode(&long[..]),
            Err(SnapshotError::TrailingBytes { offset }) if offset == bytes.len() as u64
        ));
    }
}

#[test]
fn errors_name_what_and_where() {
    let bytes = small_snapshot();
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(matches!(
        snapshot::decode(&bad[..]),
        Err(SnapshotError::BadMagic { .. })
    ));
    let mut bad = bytes.clone();
    bad[8] = 2;
    let err = snapshot::decode(&bad[..]).expect_err("version 2");
    assert_eq!(
        err.to_string(),
        "unsupported snapshot format version 2 (this build reads version 1)"
    );
    // A byte inside the first chunk's payload.
    let header_len = u32::from_le_bytes(bytes[9..13].try_into().unwrap()) as usize;
    let chunk_at = 13 + header_len + 4;
    let mut bad = bytes.clone();
    bad[chunk_at + 20] ^= 0x10;
    match snapshot::decode(&bad[..]) {
        Err(SnapshotError::ChunkCrc {
            chunk: 0, offset, ..
        }) => {
            assert_eq!(offset, chunk_at as u64)
        }
        other => panic!("{other:?}"),
    }
    // A huge header length is refused before anything is read for it.
    let mut bad = bytes.clone();
    bad[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        snapshot::decode(&bad[..]),
        Err(SnapshotError::HeaderTooLarge { .. })
    ));
    // A chunk claiming 4 GiB on a short input errors without allocating it.
    let mut bad = bytes[..chunk_at + 9].to_vec();
    bad[chunk_at + 1..chunk_at + 5].copy_from_slice(&1u32.to_le_bytes());
    bad[chunk_at + 5..chunk_at + 9].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        snapshot::decode(&bad[..]),
        Err(SnapshotError::Truncated {
            what: "chunk payload",
            ..
        })
    ));
}

// ------------------------------------------------------------ copy on write

#[test]
fn frozen_copy_is_unaffected_by_later_writes() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut live = Replica::new(RegionId(1));
    // The same writes to a state that is never frozen: the reference.
    let mut reference = Replica::new(RegionId(1));
    let mut t = T0;
    let write = |live: &mut Replica, reference: &mut Replica, rng: &mut fastrand::Rng, t: u64| {
        let key = format!("k{}", rng.u32(0..2_000));
        let intent = match rng.u8(0..5) {
            0 => Intent::Del,
            1 => Intent::SAdd(vec![Bytes::from(format!("m{}", rng.u8(..)))]),
            2 => Intent::IncrBy(1),
            _ => Intent::Set {
                value: Bytes::from(format!("v{t}")),
                ttl: TtlChange::Persist,
            },
        };
        let a = live.write(key.clone(), intent.clone(), t);
        let b = reference.write(key, intent, t);
        assert_eq!(a, b);
    };
    for _ in 0..20_000 {
        t += 1;
        write(&mut live, &mut reference, &mut rng, t);
    }
    let frozen = live.state.freeze();
    let frozen_deep = deep(frozen.entries());
    let frozen_bytes = encode(&frozen);
    let (vv, digest, len) = (
        frozen.version_vector().clone(),
        frozen.digest(),
        frozen.len(),
    );
    // A second frozen copy taken later, while the first is alive.
    let mut frozen2 = None;
    for i in 0..20_000 {
        t += 1;
        write(&mut live, &mut reference, &mut rng, t);
        if i == 10_000 {
            frozen2 = Some((live.state.freeze(), deep(live.state.entries())));
            live.state.collect(&live.state.version_vector().clone());
            reference
                .state
                .collect(&reference.state.version_vector().clone());
        }
    }
    let flush = live.flush_all(t + 1);
    reference.state.apply(&flush).expect("flush");
    assert_eq!(live.state.key_count(), 0);

    assert_eq!(deep(frozen.entries()), frozen_deep);
    assert_eq!(encode(&frozen), frozen_bytes);
    assert_eq!(
        (frozen.version_vector(), frozen.digest(), frozen.len()),
        (&vv, digest, len)
    );
    let (f2, f2_deep) = frozen2.expect("second copy");
    assert_eq!(deep(f2.entries()), f2_deep);
    // The live state took every write as if it had never been frozen.
    assert_identical(&live.state, &reference.state).expect("live state");
    // And the frozen copy restores to the state as it was.
    let back = snapshot::decode(&frozen_bytes[..]).expect("decode");
    assert_eq!(deep(back.entries()), frozen_deep);
    assert_eq!(back.digest(), digest);
}

// ------------------------------------------------------------ files

fn state_at(ops: u64) -> State {
    let mut r = Replica::new(RegionId(1));
    for i in 0..ops {
        r.write(format!("k{}", i % 50), Intent::IncrBy(1), T0 + i)
            .expect("write");
    }
    r.state
}

/// Captures what `tracing` logs while `f` runs.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::default());
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    (out, text)
}

#[test]
fn store_writes_lists_loads_and_prunes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    assert!(store.load_newest_valid().expect("empty dir").is_none());
    assert!(store.list().expect("list").is_empty());

    let states: Vec<State> = [10, 20, 30].map(state_at).into();
    let mut infos = Vec::new();
    for s in &states {
        infos.push(store.write(&s.freeze()).expect("write"));
    }
    let name = infos[1]
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("snapshot-00000000000000000020-") && name.ends_with(".braid"),
        "{name}"
    );
    let listed = store.list().expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed.iter().map(|i| i.ops).collect::<Vec<_>>(),
        [30, 20, 10]
    );
    assert_eq!(listed[0].header.version_vector, *states[2].version_vector());
    assert_eq!(listed[0], infos[2]);
    let size = std::fs::metadata(&listed[0].path).unwrap().len();
    assert_eq!(listed[0].size, size);

    let (loaded, info) = store.load_newest_valid().expect("load").expect("some");
    assert_eq!(info.ops, 30);
    assert_identical(&loaded, &states[2]).expect("identical");

    // No temporary file is left behind; one from a crash is removed on open.
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names().len(), 3);
    std::fs::write(dir.path().join(".tmp-snapshot-1-2-x"), b"partial").unwrap();
    let store = SnapshotStore::open(dir.path()).expect("reopen");
    assert_eq!(names().len(), 3);

    let removed = store.prune(2).expect("prune");
    assert_eq!(removed, vec![infos[0].path.clone()]);
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(store.prune(5).expect("prune").is_empty());
}

#[test]
fn load_falls_back_when_the_newest_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let older = state_at(100);
    let newer = state_at(200);
    store.write(&older.freeze()).expect("write");
    let bad = store.write(&newer.freeze()).expect("write");

    // Flip one byte in the middle of the newest file.
    let mut bytes = std::fs::read(&bad.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    std::fs::write(&bad.path, &bytes).unwrap();

    let (loaded, log) = logged(|| store.load_newest_valid());
    let (state, info) = loaded.expect("fallback").expect("some");
    assert_eq!(info.ops, 100);
    assert_identical(&state, &older).expect("older state");
    let file = bad.path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains(&file), "warning names the file: {log}");
    assert!(
        log.contains("CRC mismatch"),
        "warning names the error: {log}"
    );

    // Truncated newest: same.
    std::fs::write(&bad.path, &bytes[..mid]).unwrap();
    let (state, _) = store.load_newest_valid().expect("fallback").expect("some");
    assert_eq!(state.version_vector(), older.version_vector());

    // A file renamed to claim other operations is refused too.
    let renamed = dir.path().join("snapshot-00000000000000000999-1.braid");
    std::fs::copy(&store.list().unwrap()[0].path, &renamed).unwrap();
    let (state, _) = store.load_newest_valid().expect("fallback").expect("some");
    assert_eq!(state.version_vector().total(), 100);
    std::fs::remove_file(&renamed).unwrap();

    // Nothing valid at all: an error, not an empty state.
    for info in store.list().unwrap() {
        std::fs::write(&info.path, b"BRAIDSNP garbage").unwrap();
    }
    match store.load_newest_valid() {
        Err(LoadError::NoValidSnapshot { failures, .. }) => assert_eq!(failures.len(), 2),
        other => panic!("{:?}", other.map(|o| o.map(|(_, i)| i))),
    }
}

// ------------------------------------------------------------ scale

/// One million keys: freeze, write, load. Run with
/// `cargo test --release --test snapshot -- --ignored --nocapture`.
#[test]
#[ignore = "slow: builds a one-million-key state"]
fn million_key_snapshot_timings() {
    const KEYS: u64 = 1_000_000;
    let t = Instant::now();
    let mut r = Replica::new(RegionId(1));
    for i in 0..KEYS {
        let key = format!("user:{i:07}");
        let intent = match i % 10 {
            0 => Intent::HSet(vec![
                (b("name"), Bytes::from(format!("n{i}"))),
                (b("visits"), b("1")),
            ]),
            1 => Intent::SAdd(vec![b("a"), b("b"), b("c")]),
            2 => Intent::RPush(vec![b("x"), b("y")]),
            3 => Intent::ZAdd(vec![(b("m"), i as f64)]),
            4 => Intent::IncrBy(i as i64),
            _ => Intent::Set {
                value: Bytes::from(format!("value-{i:012}")),
                ttl: TtlChange::Persist,
            },
        };
        r.write(key, intent, T0 + i).expect("write");
    }
    println!("build: {KEYS} keys in {:?}", t.elapsed());

    let t = Instant::now();
    let frozen = r.state.freeze();
    let freeze = t.elapsed();
    println!("freeze: {freeze:?}");

    // Clients keep writing while the snapshot is written from another
    // thread; their latencies are compared with the same writes without a
    // snapshot running.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let mut next = 0u64;
    let mut client_write = |r: &mut Replica| {
        let t = Instant::now();
        let key = format!("user:{:07}", (next * 7919) % KEYS);
        r.write(key, Intent::IncrBy(1), T0 + KEYS + next).ok();
        next += 1;
        t.elapsed()
    };
    let (info, write, mut during) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let t = Instant::now();
            let info = store.write(&frozen).expect("write");
            (info, t.elapsed())
        });
        let mut during = Vec::new();
        while !writer.is_finished() {
            during.push(client_write(&mut r));
        }
        let (info, write) = writer.join().expect("writer");
        (info, write, during)
    });
    let mut alone: Vec<_> = (0..during.len()).map(|_| client_write(&mut r)).collect();
    println!(
        "write: {write:?}, {} bytes ({:.1} bytes/key), {} chunks",
        info.size,
        info.size as f64 / KEYS as f64,
        info.size.div_ceil(snapshot::CHUNK_TARGET as u64)
    );
    let pct = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        format!(
            "p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            at(0.999),
            at(1.0)
        )
    };
    println!(
        "{} client writes during the snapshot: {}",
        during.len(),
        pct(&mut during)
    );
    println!("the same number without a snapshot: {}", pct(&mut alone));

    let t = Instant::now();
    let (loaded, _) = store.load_newest_valid().expect("load").expect("some");
    let load = t.elapsed();
    println!("load: {load:?}");
    assert_eq!(loaded.key_count(), KEYS as usize);
    assert_eq!(loaded.digest(), frozen.digest());
    assert_eq!(loaded.version_vector(), frozen.version_vector());
    assert!(freeze.as_millis() < 50, "freeze took {freeze:?}");
}
