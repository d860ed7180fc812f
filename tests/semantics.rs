//! One test per rule of `/work/shared/semantics.md` (user-facing version:
//! `docs/semantics.md`).
//!
//! Every test builds a small cluster of regions, lets them write
//! concurrently (each region prepares its writes before seeing the others'),
//! then exchanges everything and checks the concrete value a client reads.
//! [`Cluster::converged`] checks the outcome on every region *and* on fresh
//! copies that applied all operations in every causal order (one per
//! permutation of the origins), and asserts that all of them report the same
//! digest and version vector.

use braid::crdt::{
    Applied, CausalBuffer, Conflict, ConflictKind, Content, Decimal, Intent, KeyType, Operation,
    RegionId, Replica, State, TtlChange, WriteError,
};
use bytes::Bytes;

// ---------------------------------------------------------------------------
// Simulation helpers
// ---------------------------------------------------------------------------

/// Region indices in a [`Cluster`] (region ids 1, 2, 3: `AP` wins LWW ties).
const US: usize = 0;
const EU: usize = 1;
const AP: usize = 2;
const NAMES: [&str; 3] = ["us", "eu", "ap"];

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn bs(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| b(s)).collect()
}

/// Orders `pending` causally, preferring origins earlier in `priority`:
/// repeatedly delivers every ready operation of the first origin that has one.
fn causal_order(pending: &[Operation], have: &State, priority: &[RegionId]) -> Vec<Operation> {
    let mut vv = have.version_vector().clone();
    let mut out = Vec::new();
    loop {
        let next = priority.iter().find_map(|&origin| {
            pending.iter().find(|op| {
                op.origin == origin && op.seq == vv.get(origin) + 1 && vv.dominates(&op.deps)
            })
        });
        match next {
            Some(op) => {
                vv.set(op.origin, op.seq);
                out.push(op.clone());
            }
            None => break,
        }
    }
    let missing = pending.iter().filter(|op| !vv.contains(op.dot())).count();
    assert_eq!(missing, 0, "operations never became causally ready");
    out
}

/// All orderings of `items`.
fn permutations<T: Copy>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

/// Some regions, every operation any of them produced, and the conflicts each
/// reported while applying remote operations.
struct Cluster {
    regions: Vec<Replica>,
    log: Vec<Operation>,
    conflicts: Vec<Vec<Conflict>>,
    /// Latest wall time used, passed to `receive` and used for reads.
    wall: u64,
}

impl Cluster {
    fn new(n: usize) -> Self {
        Cluster {
            regions: (0..n)
                .map(|i| Replica::new(RegionId(i as u16 + 1)))
                .collect(),
            log: Vec::new(),
            conflicts: vec![Vec::new(); n],
            wall: 0,
        }
    }

    fn ids(&self) -> Vec<RegionId> {
        self.regions.iter().map(|r| r.region).collect()
    }

    /// A local write that must produce an operation.
    fn write(&mut self, r: usize, key: &str, intent: Intent, wall: u64) -> Operation {
        match self.try_write(r, key, intent.clone(), wall) {
            Ok(Some(op)) => op,
            other => panic!("{} {key} {intent:?}: {other:?}", NAMES[r]),
        }
    }

    /// A local write, as the client would see it.
    fn try_write(
        &mut self,
        r: usize,
        key: &str,
        intent: Intent,
        wall: u64,
    ) -> Result<Option<Operation>, WriteError> {
        self.wall = self.wall.max(wall);
        let op = self.regions[r].write(b(key), intent, wall)?;
        if let Some(op) = &op {
            self.log.push(op.clone());
        }
        Ok(op)
    }

    /// MULTI … EXEC: consecutive writes of one region, marked as one
    /// transaction (`txn_rest` counts the operations that follow).
    fn transaction(&mut self, r: usize, writes: Vec<(&str, Intent)>, wall: u64) -> Vec<Operation> {
        let start = self.log.len();
        for (key, intent) in writes {
            self.write(r, key, intent, wall);
        }
        let n = self.log.len() - start;
        for (i, op) in self.log[start..].iter_mut().enumerate() {
            op.txn_rest = (n - 1 - i) as u32;
        }
        self.log[start..].to_vec()
    }

    fn flush_all(&mut self, r: usize, wall: u64) -> Operation {
        self.wall = self.wall.max(wall);
        let op = self.regions[r].flush_all(wall);
        self.log.push(op.clone());
        op
    }

    /// The expiry sweep of region `r` at `now`: the replicated delete of
    /// `key` if `r` owns its winning, passed deadline.
    fn expire_sweep(&mut self, r: usize, key: &str, now: u64) -> Option<Operation> {
        self.wall = self.wall.max(now);
        let region = &mut self.regions[r];
        let hlc = region.clock.tick(now);
        let op = region
            .state
            .prepare_expiry_delete(region.region, hlc, &b(key), now)?;
        assert!(matches!(region.state.apply(&op), Ok(Applied::Done(_))));
        self.log.push(op.clone());
        Some(op)
    }

    fn receive(&mut self, to: usize, op: &Operation) {
        match self.regions[to].receive(op, self.wall) {
            Ok((Applied::Done(found), _)) => self.conflicts[to].extend(found),
            other => panic!("{} receiving {}: {other:?}", NAMES[to], op.dot()),
        }
    }

    /// Delivers to `to` everything `from` has applied that `to` lacks (a
    /// one-way link; the rest of the cluster may stay partitioned).
    fn deliver(&mut self, from: usize, to: usize) {
        let seen = self.regions[from].state.version_vector().clone();
        let have = self.regions[to].state.version_vector().clone();
        let pending: Vec<Operation> = self
            .log
            .iter()
            .filter(|op| seen.contains(op.dot()) && !have.contains(op.dot()))
            .cloned()
            .collect();
        let mut priority = vec![self.regions[from].region];
        priority.extend(self.ids());
        for op in causal_order(&pending, &self.regions[to].state, &priority) {
            self.receive(to, &op);
        }
    }

    /// Full exchange: every region receives everything, each preferring a
    /// different origin first.
    fn sync(&mut self) {
        let ids = self.ids();
        for to in 0..self.regions.len() {
            let mut priority = ids.clone();
            priority.rotate_left(to + 1);
            let have = self.regions[to].state.version_vector().clone();
            let pending: Vec<Operation> = self
                .log
                .iter()
                .filter(|op| !have.contains(op.dot()))
                .cloned()
                .collect();
            for op in causal_order(&pending, &self.regions[to].state, &priority) {
                self.receive(to, &op);
            }
        }
    }

    /// A region's current state, for reads before convergence.
    fn view(&self, r: usize) -> View {
        View {
            name: NAMES[r].to_string(),
            state: self.regions[r].state.clone(),
            conflicts: self.conflicts[r].clone(),
            now: self.wall,
        }
    }

    /// Exchanges everything, replays every operation on fresh states in every
    /// causal order (one per permutation of origins), asserts that all
    /// regions and replays agree on digest and version vector, and returns
    /// them all for the test's own checks.
    fn converged(&mut self) -> Vec<View> {
        self.sync();
        let mut views: Vec<View> = (0..self.regions.len()).map(|r| self.view(r)).collect();
        for perm in permutations(&self.ids()) {
            let mut state = State::new();
            let mut conflicts = Vec::new();
            for op in causal_order(&self.log, &state, &perm) {
                match state.apply(&op) {
                    Ok(Applied::Done(found)) => conflicts.extend(found),
                    other => panic!("replay of {}: {other:?}", op.dot()),
                }
            }
            let order: Vec<String> = perm.iter().map(|r| r.to_string()).collect();
            views.push(View {
                name: format!("replay {}", order.join(",")),
                state,
                conflicts,
                now: self.wall,
            });
        }
        let first = &views[0];
        for v in &views[1..] {
            assert_eq!(
                v.state.version_vector(),
                first.state.version_vector(),
                "{} vs {}",
                v.name,
                first.name
            );
            assert_eq!(
                v.state.digest(),
                first.state.digest(),
                "digest of {} vs {}",
                v.name,
                first.name
            );
            assert_eq!(
                v.state.len(),
                first.state.len(),
                "key count of {} vs {}",
                v.name,
                first.name
            );
            // Every region and replay reports the same races, each once.
            assert_eq!(
                v.conflict_set(),
                first.conflict_set(),
                "conflicts of {} vs {}",
                v.name,
                first.name
            );
        }
        let mut unique = first.conflict_set();
        unique.dedup();
        assert_eq!(unique, first.conflict_set(), "a race reported twice");
        views
    }

    /// Garbage-collects region `r` up to what every region has applied, as
    /// its [`Stability`](braid::crdt::Stability) tracker computes it from the
    /// peers' reports.
    fn collect(&mut self, r: usize) {
        let me = self.regions[r].region;
        let mut stability = braid::crdt::Stability::new(me, self.ids());
        for peer in &self.regions {
            if peer.region != me {
                stability.report(peer.region, peer.state.version_vector());
            }
        }
        let frontier = stability.frontier(self.regions[r].state.version_vector());
        self.regions[r].state.collect(&frontier);
    }
}

/// One region's (or replay's) state, with reads as a client sees them.
#[derive(Clone)]
struct View {
    name: String,
    state: State,
    conflicts: Vec<Conflict>,
    now: u64,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl View {
    fn at(&self, now: u64) -> View {
        View {
            now,
            ..self.clone()
        }
    }

    fn get(&self, key: &str) -> Option<&Content> {
        self.state.get(key.as_bytes(), self.now)
    }

    fn exists(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn key_type(&self, key: &str) -> Option<KeyType> {
        self.get(key).map(Content::key_type)
    }

    /// GET.
    fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Content::String(s) => Some(text(&s.get().0)),
            other => panic!("{}: {key} is a {}", self.name, other.key_type()),
        }
    }

    /// SMEMBERS, sorted.
    fn members(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Content::Set(s)) => {
                let mut m: Vec<String> = s.members().map(|m| text(m)).collect();
                m.sort();
                m
            }
            Some(other) => panic!("{}: {key} is a {}", self.name, other.key_type()),
        }
    }

    /// HGET.
    fn field(&self, key: &str, field: &str) -> Option<String> {
        match self.get(key)? {
            Content::Hash(h) => h.get(field.as_bytes()).map(|(v, _)| text(&v)),
            other => panic!("{}: {key} is a {}", self.name, other.key_type()),
        }
    }

    /// ZRANGE … WITHSCORES.
    fn zset(&self, key: &str) -> Vec<(String, f64)> {
        match self.get(key) {
            None => Vec::new(),
            Some(Content::ZSet(z)) => z.iter().map(|(m, s)| (text(m), s)).collect(),
            Some(other) => panic!("{}: {key} is a {}", self.name, other.key_type()),
        }
    }

    /// ZSCORE.
    fn score(&self, key: &str, member: &str) -> Option<f64> {
        match self.get(key)? {
            Content::ZSet(z) => z.score(member.as_bytes()),
            other => panic!("{}: {key} is a {}", self.name, other.key_type()),
        }
    }

    /// LRANGE 0 -1.
    fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Content::List(l)) => l.iter().map(|(_, v)| text(v)).collect(),
            Some(other) => panic!("{}: {key} is a {}", self.name, other.key_type()),
        }
    }

    /// The deadline in force (Unix ms), whether or not it has passed.
    fn deadline(&self, key: &str) -> Option<u64> {
        self.state
            .entry(key.as_bytes())?
            .deadline()
            .map(|d| d.at_ms)
    }

    fn recorded(&self, kind: &ConflictKind) -> bool {
        self.conflicts.iter().any(|c| c.kind == *kind)
    }

    /// The conflicts reported, sorted (delivery order does not matter).
    fn conflict_set(&self) -> Vec<Conflict> {
        let mut all = self.conflicts.clone();
        all.sort();
        all
    }
}

// Intents, named after the commands they stand for.

fn set(v: &str) -> Intent {
    Intent::Set {
        value: b(v),
        ttl: TtlChange::Persist,
    }
}
fn set_keepttl(v: &str) -> Intent {
    Intent::Set {
        value: b(v),
        ttl: TtlChange::Keep,
    }
}
fn append(v: &str) -> Intent {
    Intent::Append(b(v))
}
fn incrby(d: i64) -> Intent {
    Intent::IncrBy(d)
}
fn incrbyfloat(d: &str) -> Intent {
    Intent::IncrByFloat(Decimal::parse(d.as_bytes()).expect("a float"))
}
fn sadd(m: &[&str]) -> Intent {
    Intent::SAdd(bs(m))
}
fn srem(m: &[&str]) -> Intent {
    Intent::SRem(bs(m))
}
fn hset(f: &str, v: &str) -> Intent {
    Intent::HSet(vec![(b(f), b(v))])
}
fn hdel(f: &[&str]) -> Intent {
    Intent::HDel(bs(f))
}
fn hincrby(f: &str, d: i64) -> Intent {
    Intent::HIncrBy(b(f), d)
}
fn zadd(m: &str, score: f64) -> Intent {
    Intent::ZAdd(vec![(b(m), score)])
}
fn zincrby(m: &str, d: f64) -> Intent {
    Intent::ZIncrBy(b(m), d)
}
fn zrem(m: &[&str]) -> Intent {
    Intent::ZRem(bs(m))
}
fn rpush(v: &[&str]) -> Intent {
    Intent::RPush(bs(v))
}
fn lpush(v: &[&str]) -> Intent {
    Intent::LPush(bs(v))
}
fn linsert(before: bool, pivot: &str, v: &str) -> Intent {
    Intent::LInsert {
        before,
        pivot: b(pivot),
        value: b(v),
    }
}
fn lset(index: i64, v: &str) -> Intent {
    Intent::LSet { index, value: b(v) }
}
fn lrem(count: i64, v: &str) -> Intent {
    Intent::LRem { count, value: b(v) }
}
fn ltrim(start: i64, stop: i64) -> Intent {
    Intent::LTrim { start, stop }
}
fn expireat(at_ms: u64) -> Intent {
    Intent::ExpireAt(at_ms)
}

// ---------------------------------------------------------------------------
// LWW order and clocks
// ---------------------------------------------------------------------------

#[test]
fn concurrent_set_higher_hlc_wins() {
    let mut c = Cluster::new(2);
    // us' clock is ahead: its write wins although eu has the higher id.
    c.write(US, "k", set("from-us"), 2_000);
    c.write(EU, "k", set("from-eu"), 1_000);
    for v in c.converged() {
        assert_eq!(v.string("k").as_deref(), Some("from-us"), "{}", v.name);
        assert!(v.recorded(&ConflictKind::Lww), "{}", v.name);
    }
}

#[test]
fn concurrent_set_equal_hlc_higher_region_wins() {
    let mut c = Cluster::new(3);
    // Same wall time on fresh clocks: the three HLCs are equal.
    let a = c.write(US, "k", set("from-us"), 1_000);
    let b = c.write(EU, "k", set("from-eu"), 1_000);
    let d = c.write(AP, "k", set("from-ap"), 1_000);
    assert!(a.hlc == b.hlc && b.hlc == d.hlc);
    for v in c.converged() {
        assert_eq!(v.string("k").as_deref(), Some("from-ap"), "{}", v.name);
    }
}

#[test]
fn clock_skewed_region_still_orders_causal_writes() {
    let mut c = Cluster::new(2);
    // us' wall clock is 15 minutes ahead of eu's.
    c.write(US, "k", set("first"), 1_000_000);
    c.write(US, "n", set("10"), 1_000_000);
    c.sync();
    // eu, with its clock far behind, overwrites what it saw: it must win.
    let later = c.write(EU, "k", set("second"), 100_000);
    c.write(EU, "n", incrby(1), 100_000);
    assert!(
        later.hlc.millis() >= 1_000_000,
        "HLC moved past what eu saw"
    );
    for v in c.converged() {
        assert_eq!(v.string("k").as_deref(), Some("second"), "{}", v.name);
        assert_eq!(v.string("n").as_deref(), Some("11"), "{}", v.name);
    }

    // Still true after eu restarts: its clock resumes above the highest
    // stamp it had applied, whatever the wall clock says.
    let mut restarted = Replica {
        region: c.regions[EU].region,
        clock: braid::crdt::HlcClock::resume(c.regions[EU].state.max_hlc()),
        state: c.regions[EU].state.clone(),
    };
    let op = restarted
        .write(b("k"), set("third"), 100_001)
        .unwrap()
        .unwrap();
    c.regions[EU] = restarted;
    c.log.push(op);
    for v in c.converged() {
        assert_eq!(v.string("k").as_deref(), Some("third"), "{}", v.name);
    }
}

#[test]
fn peer_clock_far_ahead_is_accepted_and_reported() {
    let mut c = Cluster::new(2);
    // us' clock is 5 minutes ahead (beyond the default 60 s drift).
    let op = c.write(US, "k", set("v"), 400_000);
    let mut probe = c.regions[EU].clone();
    let (_, seen) = probe.receive(&op, 100_000).expect("ready");
    assert_eq!(seen.ahead_beyond_drift_ms, Some(300_000));
    let mut eu_clock = c.regions[EU].clock.clone();
    assert_eq!(
        eu_clock.observe(op.hlc, 100_000).ahead_beyond_drift_ms,
        Some(300_000)
    );
    // Accepted all the same: replication does not stall.
    c.wall = 100_000;
    c.sync();
    assert_eq!(c.view(EU).string("k").as_deref(), Some("v"));
    // Within the drift nothing is reported.
    assert_eq!(
        eu_clock.observe(op.hlc, 390_000).ahead_beyond_drift_ms,
        None
    );
}

#[test]
fn operations_wait_for_their_causal_dependencies() {
    let mut c = Cluster::new(3);
    let first = c.write(US, "s", sadd(&["a"]), 1_000);
    c.deliver(US, EU);
    let second = c.write(EU, "s", srem(&["a"]), 1_001);
    // ap gets eu's remove before the add it depends on: it must wait.
    let ap = &mut c.regions[AP].state;
    assert!(matches!(
        ap.apply(&second),
        Err(braid::crdt::ApplyError::NotReady { .. })
    ));
    let mut buffer = CausalBuffer::new();
    buffer.push(second.clone(), ap.version_vector());
    assert!(buffer.drain_ready(ap.version_vector()).is_empty());
    buffer.push(first.clone(), ap.version_vector());
    let ready = buffer.drain_ready(ap.version_vector());
    assert_eq!(ready, vec![first.clone(), second.clone()]);
    for op in &ready {
        ap.apply(op).unwrap();
    }
    assert!(
        ap.get(b"s", 1_001).is_none(),
        "the remove applied after the add"
    );
    // A duplicate changes nothing.
    let digest = ap.digest();
    assert_eq!(ap.apply(&first), Ok(Applied::Duplicate));
    assert_eq!(ap.digest(), digest);
    for v in c.converged() {
        assert!(!v.exists("s"), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Strings and counters
// ---------------------------------------------------------------------------

#[test]
fn concurrent_incrby_5_and_incrby_7_gives_12() {
    let mut c = Cluster::new(2);
    c.write(US, "n", incrby(5), 1_000);
    c.write(EU, "n", incrby(7), 1_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("12"), "{}", v.name);
    }
}

#[test]
fn concurrent_incrbyfloat_sums_exact_decimals() {
    let mut c = Cluster::new(2);
    c.write(US, "f", incrbyfloat("0.1"), 1_000);
    c.write(EU, "f", incrbyfloat("0.2"), 1_000);
    // Sorted-set scores too, even within one region (Redis' doubles would
    // give 0.30000000000000004).
    c.write(US, "z", zincrby("m", 0.1), 1_000);
    c.write(US, "z", zincrby("m", 0.2), 1_000);
    for v in c.converged() {
        assert_eq!(v.string("f").as_deref(), Some("0.3"), "{}", v.name);
        assert_eq!(v.score("z", "m"), Some(0.3), "{}", v.name);
    }
}

#[test]
fn set_concurrent_with_incrby_gives_set_value_plus_increment() {
    let mut c = Cluster::new(2);
    c.write(US, "n", set("10"), 1_000);
    c.sync();
    c.write(US, "n", set("100"), 2_000);
    // The increment has the later HLC: it does not matter, it adds.
    c.write(EU, "n", incrby(5), 3_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("105"), "{}", v.name);
    }
}

#[test]
fn incr_after_seen_set_simply_adds() {
    let mut c = Cluster::new(2);
    c.write(US, "n", set("10"), 1_000);
    c.sync();
    c.write(EU, "n", incrby(3), 2_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("13"), "{}", v.name);
    }
    // A SET that saw the increment replaces it.
    c.write(US, "n", set("20"), 3_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("20"), "{}", v.name);
    }
}

#[test]
fn non_numeric_winning_base_drops_unseen_increments() {
    let mut c = Cluster::new(2);
    c.write(US, "n", set("1"), 1_000);
    c.sync();
    c.write(US, "n", set("abc"), 2_000);
    c.write(EU, "n", incrby(5), 2_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("abc"), "{}", v.name);
        assert!(v.recorded(&ConflictKind::IncrementsDropped), "{}", v.name);
    }
    // As in Redis, the next INCR fails on a non-number.
    assert_eq!(
        c.try_write(EU, "n", incrby(1), 3_000),
        Err(WriteError::NotInteger)
    );
}

#[test]
fn concurrent_appends_keep_one() {
    let mut c = Cluster::new(2);
    c.write(US, "k", set("a"), 1_000);
    c.sync();
    c.write(US, "k", append("-us"), 2_000);
    c.write(EU, "k", append("-eu"), 3_000);
    for v in c.converged() {
        // Read-modify-write: the later APPEND's whole value wins.
        assert_eq!(v.string("k").as_deref(), Some("a-eu"), "{}", v.name);
        assert!(v.recorded(&ConflictKind::Lww), "{}", v.name);
    }
}

#[test]
fn merged_integer_sum_beyond_i64_is_exact() {
    let mut c = Cluster::new(2);
    c.write(US, "n", incrby(i64::MAX), 1_000);
    c.write(EU, "n", incrby(i64::MAX), 1_000);
    for v in c.converged() {
        assert_eq!(
            v.string("n").as_deref(),
            Some("18446744073709551614"),
            "{}",
            v.name
        );
    }
    // Like Redis on a value out of the 64-bit range: INCR family refuses…
    assert_eq!(
        c.try_write(US, "n", incrby(1), 2_000),
        Err(WriteError::NotInteger)
    );
    assert_eq!(
        c.try_write(US, "n", incrby(-1), 2_000),
        Err(WriteError::NotInteger)
    );
    // …and a single region still refuses to overflow on its own.
    c.write(US, "m", set(&i64::MAX.to_string()), 2_000);
    assert_eq!(
        c.try_write(US, "m", incrby(1), 2_000),
        Err(WriteError::Overflow)
    );
    // SET resets it.
    c.write(US, "n", set("1"), 2_000);
    c.sync();
    c.write(EU, "n", incrby(1), 3_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("2"), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------

#[test]
fn hset_concurrent_with_hdel_keeps_field() {
    let mut c = Cluster::new(2);
    c.write(US, "h", hset("f", "1"), 1_000);
    c.write(US, "h", hset("g", "1"), 1_000);
    c.sync();
    c.write(US, "h", hdel(&["f", "g"]), 2_000);
    c.write(EU, "h", hset("f", "2"), 2_000);
    for v in c.converged() {
        assert_eq!(v.field("h", "f").as_deref(), Some("2"), "{}", v.name);
        assert_eq!(
            v.field("h", "g"),
            None,
            "{}: observed field removed",
            v.name
        );
    }
}

#[test]
fn concurrent_hset_of_one_field_is_lww() {
    let mut c = Cluster::new(2);
    c.write(US, "h", hset("f", "us"), 2_000);
    c.write(EU, "h", hset("f", "eu"), 1_000);
    for v in c.converged() {
        assert_eq!(v.field("h", "f").as_deref(), Some("us"), "{}", v.name);
    }
}

#[test]
fn hincrby_concurrent_with_hset_adds_to_its_value() {
    let mut c = Cluster::new(2);
    c.write(US, "h", hset("f", "10"), 1_000);
    c.sync();
    c.write(US, "h", hset("f", "100"), 2_000);
    c.write(EU, "h", hincrby("f", 5), 2_000);
    for v in c.converged() {
        assert_eq!(v.field("h", "f").as_deref(), Some("105"), "{}", v.name);
    }
}

#[test]
fn hdel_concurrent_with_hincrby_keeps_only_unseen_increment() {
    let mut c = Cluster::new(2);
    c.write(US, "h", hset("f", "10"), 1_000);
    c.sync();
    c.write(US, "h", hdel(&["f"]), 2_000);
    c.write(EU, "h", hincrby("f", 5), 2_000);
    for v in c.converged() {
        assert_eq!(v.field("h", "f").as_deref(), Some("5"), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Sets
// ---------------------------------------------------------------------------

#[test]
fn concurrent_sadd_and_srem_of_one_member_keeps_member() {
    let mut c = Cluster::new(2);
    c.write(US, "s", sadd(&["m", "n"]), 1_000);
    c.sync();
    c.write(US, "s", srem(&["m", "n"]), 2_000);
    c.write(EU, "s", sadd(&["m"]), 2_000);
    for v in c.converged() {
        // m was re-added concurrently; n was only removed.
        assert_eq!(v.members("s"), ["m"], "{}", v.name);
    }
    assert!(c.view(EU).recorded(&ConflictKind::AddWins));
}

#[test]
fn srem_removes_only_the_adds_it_observed() {
    let mut c = Cluster::new(3);
    c.write(US, "s", sadd(&["m"]), 1_000);
    c.deliver(US, EU);
    // ap adds m too, concurrently with eu's SREM that only saw us' add.
    c.write(AP, "s", sadd(&["m"]), 2_000);
    c.write(EU, "s", srem(&["m"]), 3_000);
    for v in c.converged() {
        assert_eq!(v.members("s"), ["m"], "{}", v.name);
    }
    // Once a region has seen every add, its SREM removes the member everywhere.
    c.write(EU, "s", srem(&["m"]), 4_000);
    for v in c.converged() {
        assert!(!v.exists("s"), "{}", v.name);
    }
}

#[test]
fn spop_concurrent_pops_same_member_removed_once() {
    let mut c = Cluster::new(2);
    c.write(US, "s", sadd(&["a", "b"]), 1_000);
    c.sync();
    // Both regions' SPOP happen to pick "a": both clients get "a".
    c.write(US, "s", srem(&["a"]), 2_000);
    c.write(EU, "s", srem(&["a"]), 2_000);
    for v in c.converged() {
        assert_eq!(v.members("s"), ["b"], "{}", v.name);
    }
}

#[test]
fn smove_is_atomic_remove_and_add() {
    let mut c = Cluster::new(3);
    c.write(US, "src", sadd(&["m", "x"]), 1_000);
    c.sync();
    // SMOVE src d1 m in us, SMOVE src d2 m in eu, SADD src m in ap.
    let us_move = c.transaction(US, vec![("src", srem(&["m"])), ("d1", sadd(&["m"]))], 2_000);
    c.transaction(EU, vec![("src", srem(&["m"])), ("d2", sadd(&["m"]))], 2_000);
    c.write(AP, "src", sadd(&["m"]), 2_000);
    assert_eq!(us_move[0].txn_rest, 1);

    // Delivered as a unit, the move is never half done at the receiver.
    let mut buffer = CausalBuffer::new();
    let ap_vv = c.regions[AP].state.version_vector().clone();
    buffer.push(us_move[0].clone(), &ap_vv);
    assert!(
        buffer.drain_ready(&ap_vv).is_empty(),
        "half a transaction is held back"
    );
    buffer.push(us_move[1].clone(), &ap_vv);
    assert_eq!(buffer.drain_ready(&ap_vv), us_move);

    for v in c.converged() {
        // Both moves took m out of src, but ap's concurrent add survives;
        // both destinations got it (each move is remove + add).
        assert_eq!(v.members("src"), ["m", "x"], "{}", v.name);
        assert_eq!(v.members("d1"), ["m"], "{}", v.name);
        assert_eq!(v.members("d2"), ["m"], "{}", v.name);
    }
    // A move that raced nothing is a plain move.
    c.transaction(US, vec![("src", srem(&["x"])), ("d1", sadd(&["x"]))], 3_000);
    for v in c.converged() {
        assert_eq!(v.members("src"), ["m"], "{}", v.name);
        assert_eq!(v.members("d1"), ["m", "x"], "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Sorted sets
// ---------------------------------------------------------------------------

#[test]
fn zadd_concurrent_with_zrem_keeps_member() {
    let mut c = Cluster::new(2);
    c.write(US, "z", zadd("m", 1.0), 1_000);
    c.sync();
    c.write(US, "z", zrem(&["m"]), 2_000);
    c.write(EU, "z", zadd("m", 7.0), 2_000);
    for v in c.converged() {
        assert_eq!(v.zset("z"), [("m".to_string(), 7.0)], "{}", v.name);
    }
}

#[test]
fn zadd_score_is_lww() {
    let mut c = Cluster::new(2);
    c.write(US, "z", zadd("m", 1.0), 2_000);
    c.write(EU, "z", zadd("m", 2.0), 1_000);
    for v in c.converged() {
        assert_eq!(v.score("z", "m"), Some(1.0), "{}", v.name);
    }
}

#[test]
fn concurrent_zincrby_1_1_1_and_1_gives_3_1() {
    let mut c = Cluster::new(3);
    c.write(US, "z", zincrby("m", 1.1), 1_000);
    c.write(EU, "z", zincrby("m", 1.0), 1_000);
    c.write(AP, "z", zincrby("m", 1.0), 1_000);
    for v in c.converged() {
        assert_eq!(v.score("z", "m"), Some(3.1), "{}", v.name);
    }
}

#[test]
fn zadd_concurrent_with_zincrby_gives_zadd_score_plus_increment() {
    let mut c = Cluster::new(2);
    c.write(US, "z", zadd("m", 1.0), 1_000);
    c.sync();
    c.write(US, "z", zadd("m", 10.0), 2_000);
    c.write(EU, "z", zincrby("m", 2.5), 2_000);
    for v in c.converged() {
        assert_eq!(v.score("z", "m"), Some(12.5), "{}", v.name);
    }
}

#[test]
fn zrem_concurrent_with_zincrby_keeps_member_with_unseen_increment() {
    let mut c = Cluster::new(2);
    c.write(US, "z", zadd("m", 4.1), 1_000);
    c.sync();
    c.write(US, "z", zrem(&["m"]), 2_000);
    c.write(EU, "z", zincrby("m", 2.0), 2_000);
    for v in c.converged() {
        assert_eq!(v.score("z", "m"), Some(2.0), "{}", v.name);
    }
}

#[test]
fn zincrby_to_infinity_becomes_lww_score_write() {
    let mut c = Cluster::new(2);
    c.write(US, "z", zadd("m", 1.0), 1_000);
    c.write(US, "z", zadd("n", 1.0), 1_000);
    c.sync();
    // An infinite result cannot be a counter: us' ZINCRBY +inf is a ZADD inf.
    let op = c.write(US, "z", zincrby("m", f64::INFINITY), 2_000);
    assert!(
        matches!(&op.body, braid::crdt::Body::Key(w) if matches!(w.effect, braid::crdt::Effect::ZAdd(_)))
    );
    // So a later concurrent ZADD replaces it (a finite ZINCRBY would add)…
    c.write(EU, "z", zadd("m", 7.0), 3_000);
    // …and concurrent finite increments on an infinite base leave it infinite.
    c.write(US, "z", zincrby("n", f64::INFINITY), 2_000);
    c.write(EU, "z", zincrby("n", 5.0), 3_000);
    for v in c.converged() {
        assert_eq!(v.score("z", "m"), Some(7.0), "{}", v.name);
        assert_eq!(v.score("z", "n"), Some(f64::INFINITY), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------

#[test]
fn concurrent_pushes_at_same_end_all_survive_same_order_everywhere() {
    let mut c = Cluster::new(3);
    c.write(US, "l", rpush(&["a"]), 1_000);
    c.sync();
    c.write(US, "l", rpush(&["u1", "u2"]), 2_000);
    c.write(EU, "l", rpush(&["e1"]), 2_000);
    c.write(AP, "l", lpush(&["p1", "p2"]), 2_000);
    let views = c.converged();
    let order = views[0].list("l");
    for v in &views {
        assert_eq!(v.list("l"), order, "{}", v.name);
    }
    // Everything survives, each push keeps its own order, ties are broken by
    // region id, and elements of concurrent multi-element pushes may
    // interleave.
    assert_eq!(order, ["p2", "p1", "a", "u1", "e1", "u2"]);
}

#[test]
fn concurrent_linsert_at_one_place_all_survive() {
    let mut c = Cluster::new(3);
    c.write(US, "l", rpush(&["a", "b"]), 1_000);
    c.sync();
    c.write(US, "l", linsert(true, "b", "x"), 2_000);
    c.write(EU, "l", linsert(false, "a", "y"), 2_000);
    c.write(AP, "l", linsert(true, "b", "z"), 2_000);
    for v in c.converged() {
        assert_eq!(v.list("l"), ["a", "x", "y", "z", "b"], "{}", v.name);
    }
}

#[test]
fn concurrent_pops_remove_element_once() {
    let mut c = Cluster::new(2);
    c.write(US, "l", rpush(&["a", "b", "c"]), 1_000);
    c.sync();
    // Both LPOPs return "a" (at-least-once)…
    assert_eq!(c.view(US).list("l")[0], "a");
    assert_eq!(c.view(EU).list("l")[0], "a");
    c.write(US, "l", Intent::LPop(1), 2_000);
    c.write(EU, "l", Intent::LPop(1), 2_000);
    // …which is removed once: b is still there.
    for v in c.converged() {
        assert_eq!(v.list("l"), ["b", "c"], "{}", v.name);
    }
}

#[test]
fn lset_is_lww() {
    let mut c = Cluster::new(2);
    c.write(US, "l", rpush(&["a", "b"]), 1_000);
    c.sync();
    c.write(US, "l", lset(0, "us"), 3_000);
    c.write(EU, "l", lset(0, "eu"), 2_000);
    for v in c.converged() {
        assert_eq!(v.list("l"), ["us", "b"], "{}", v.name);
        assert!(v.recorded(&ConflictKind::Lww), "{}", v.name);
    }
}

#[test]
fn lset_concurrent_with_pop_of_same_element_loses() {
    let mut c = Cluster::new(2);
    c.write(US, "l", rpush(&["a", "b"]), 1_000);
    c.sync();
    c.write(US, "l", lset(0, "x"), 3_000);
    c.write(EU, "l", Intent::LPop(1), 2_000);
    for v in c.converged() {
        assert_eq!(v.list("l"), ["b"], "{}", v.name);
    }
}

#[test]
fn lrem_and_ltrim_keep_concurrent_pushes() {
    let mut c = Cluster::new(2);
    c.write(US, "r", rpush(&["a", "b", "a"]), 1_000);
    c.write(US, "t", rpush(&["a", "b", "c"]), 1_000);
    c.sync();
    c.write(US, "r", lrem(0, "a"), 2_000);
    c.write(EU, "r", rpush(&["a"]), 2_000);
    c.write(US, "t", ltrim(0, 0), 2_000);
    c.write(EU, "t", rpush(&["d"]), 2_000);
    c.write(EU, "t", lpush(&["e"]), 2_000);
    for v in c.converged() {
        assert_eq!(v.list("r"), ["b", "a"], "{}", v.name);
        assert_eq!(v.list("t"), ["e", "a", "d"], "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn del_concurrent_with_write_keeps_write() {
    let mut c = Cluster::new(2);
    c.write(US, "s", sadd(&["a"]), 1_000);
    c.write(US, "n", set("10"), 1_000);
    c.write(US, "k", set("old"), 1_000);
    c.sync();
    c.write(US, "s", Intent::Del, 2_000);
    c.write(EU, "s", sadd(&["b"]), 2_000);
    c.write(US, "n", Intent::Del, 2_000);
    c.write(EU, "n", incrby(5), 2_000);
    c.write(US, "k", Intent::Del, 3_000);
    c.write(EU, "k", set("new"), 2_000);
    for v in c.converged() {
        assert_eq!(v.members("s"), ["b"], "{}", v.name);
        // Only the increment the DEL had not seen survives.
        assert_eq!(v.string("n").as_deref(), Some("5"), "{}", v.name);
        // A DEL with a later HLC does not beat a write it had not seen.
        assert_eq!(v.string("k").as_deref(), Some("new"), "{}", v.name);
    }
}

#[test]
fn flushall_is_observed_remove_and_replicated() {
    let mut c = Cluster::new(3);
    c.write(US, "a", set("1"), 1_000);
    c.write(EU, "s", sadd(&["x"]), 1_000);
    c.write(AP, "l", rpush(&["p"]), 1_000);
    c.sync();
    c.flush_all(US, 2_000);
    c.write(EU, "s", sadd(&["y"]), 2_000);
    c.write(EU, "new", set("v"), 2_000);
    for v in c.converged() {
        // Every region lost what us had seen, including ap which only
        // received the FLUSHALL…
        assert!(!v.exists("a") && !v.exists("l"), "{}", v.name);
        // …but writes concurrent with it survive.
        assert_eq!(v.members("s"), ["y"], "{}", v.name);
        assert_eq!(v.string("new").as_deref(), Some("v"), "{}", v.name);
        assert_eq!(v.state.len(), 2, "{}", v.name);
    }
}

#[test]
fn type_conflict_latest_write_wins() {
    let mut c = Cluster::new(2);
    for key in ["k1", "k2", "k3"] {
        c.write(US, key, set("5"), 1_000);
    }
    c.sync();
    // us deletes each key and re-creates it as a set at 2 000…
    for key in ["k1", "k2", "k3"] {
        c.write(US, key, Intent::Del, 2_000);
        c.write(US, key, sadd(&["m"]), 2_000);
    }
    // …while eu, which still sees strings, writes them: later (k1, k3) or
    // earlier (k2) in LWW order.
    c.write(EU, "k2", set("w"), 1_500);
    c.write(EU, "k1", set("w"), 3_000);
    c.write(EU, "k3", incrby(1), 3_000);
    let string_won = ConflictKind::Type {
        winner: KeyType::String,
        loser: KeyType::Set,
    };
    let set_won = ConflictKind::Type {
        winner: KeyType::Set,
        loser: KeyType::String,
    };
    for v in c.converged() {
        assert_eq!(v.string("k1").as_deref(), Some("w"), "{}", v.name);
        assert_eq!(v.members("k2"), ["m"], "{}", v.name);
        // The DEL removed the "5" base eu's INCR had seen, not the INCR.
        assert_eq!(v.string("k3").as_deref(), Some("1"), "{}", v.name);
        assert!(
            v.recorded(&string_won) && v.recorded(&set_won),
            "{}",
            v.name
        );
        // The loser is hidden, not yet gone.
        assert_eq!(v.state.entry(b"k1").unwrap().type_count(), 2, "{}", v.name);
    }
    // The next write by a region that saw the loser drops it.
    c.write(US, "k1", append("!"), 4_000);
    c.write(EU, "k2", sadd(&["n"]), 4_000);
    for v in c.converged() {
        assert_eq!(v.string("k1").as_deref(), Some("w!"), "{}", v.name);
        assert_eq!(v.members("k2"), ["m", "n"], "{}", v.name);
        assert_eq!(v.state.entry(b"k1").unwrap().type_count(), 1, "{}", v.name);
        assert_eq!(v.state.entry(b"k2").unwrap().type_count(), 1, "{}", v.name);
    }
}

#[test]
fn set_overwrites_a_key_of_another_type() {
    let mut c = Cluster::new(2);
    c.write(US, "k", sadd(&["m"]), 1_000);
    c.write(US, "k", expireat(50_000), 1_000);
    c.sync();
    // As in Redis, SET replaces a value of any type (and its TTL)…
    c.write(EU, "k", set("v"), 2_000);
    // …while commands that read the value refuse the wrong type.
    assert_eq!(
        c.try_write(US, "k", incrby(1), 2_000),
        Err(WriteError::WrongType)
    );
    assert_eq!(
        c.try_write(US, "k", append("x"), 2_000),
        Err(WriteError::WrongType)
    );
    for v in c.converged() {
        assert_eq!(v.key_type("k"), Some(KeyType::String), "{}", v.name);
        assert_eq!(v.string("k").as_deref(), Some("v"), "{}", v.name);
        assert_eq!(v.deadline("k"), None, "{}", v.name);
        assert_eq!(v.state.entry(b"k").unwrap().type_count(), 1, "{}", v.name);
    }
}

#[test]
fn rename_writes_new_key_and_removes_only_observed_old_key() {
    let mut c = Cluster::new(2);
    c.write(US, "old", set("v1"), 1_000);
    c.sync();
    // RENAME old new in us: read old, write new, observed-remove old.
    let value = c.view(US).string("old").unwrap();
    c.transaction(US, vec![("new", set(&value)), ("old", Intent::Del)], 2_000);
    // Concurrently eu overwrites old.
    c.write(EU, "old", set("v2"), 2_000);
    for v in c.converged() {
        assert_eq!(v.string("new").as_deref(), Some("v1"), "{}", v.name);
        assert_eq!(v.string("old").as_deref(), Some("v2"), "{}", v.name);
    }
}

#[test]
fn multi_exec_transaction_is_applied_as_one_unit() {
    let mut c = Cluster::new(3);
    c.write(US, "a", set("0"), 1_000);
    c.write(US, "b", set("0"), 1_000);
    c.sync();
    let txn = c.transaction(
        US,
        vec![("a", incrby(1)), ("b", incrby(-1)), ("a", incrby(1))],
        2_000,
    );
    assert_eq!(
        txn.iter().map(|op| op.txn_rest).collect::<Vec<_>>(),
        [2, 1, 0]
    );
    // ap receives the transaction in pieces: nothing is released (so nothing
    // becomes visible) before the last piece is in.
    let mut buffer = CausalBuffer::new();
    let ap_vv = c.regions[AP].state.version_vector().clone();
    for op in &txn[..2] {
        buffer.push(op.clone(), &ap_vv);
        assert!(buffer.drain_ready(&ap_vv).is_empty());
    }
    buffer.push(txn[2].clone(), &ap_vv);
    assert_eq!(buffer.drain_ready(&ap_vv), txn);
    for v in c.converged() {
        assert_eq!(v.string("a").as_deref(), Some("2"), "{}", v.name);
        assert_eq!(v.string("b").as_deref(), Some("-1"), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

#[test]
fn expire_keeps_the_value_until_the_deadline() {
    let mut c = Cluster::new(2);
    c.write(US, "k", set("v"), 1_000);
    c.write(US, "s", sadd(&["m"]), 1_000);
    c.sync();
    c.write(EU, "k", expireat(10_000), 2_000);
    c.write(EU, "s", expireat(10_000), 2_000);
    for v in c.converged() {
        assert_eq!(v.string("k").as_deref(), Some("v"), "{}", v.name);
        assert_eq!(v.members("s"), ["m"], "{}", v.name);
        assert_eq!(v.deadline("k"), Some(10_000), "{}", v.name);
        assert!(
            !v.at(10_000).exists("k") && !v.at(10_000).exists("s"),
            "{}",
            v.name
        );
    }
}

#[test]
fn set_with_ex_sets_an_absolute_deadline() {
    let mut c = Cluster::new(2);
    let setex = |v: &str, at_ms| Intent::Set {
        value: b(v),
        ttl: TtlChange::ExpireAt(at_ms),
    };
    // SET … EX on a new key and on an existing one: the deadline travels as
    // an absolute time, so every region expires the key at the same moment.
    c.write(US, "new", setex("v", 10_000), 1_000);
    c.write(US, "old", set("v"), 1_000);
    c.sync();
    c.write(EU, "old", setex("w", 20_000), 2_000);
    for v in c.converged() {
        assert_eq!(v.deadline("new"), Some(10_000), "{}", v.name);
        assert_eq!(v.deadline("old"), Some(20_000), "{}", v.name);
        assert_eq!(
            v.at(19_999).string("old").as_deref(),
            Some("w"),
            "{}",
            v.name
        );
        assert!(
            !v.at(10_000).exists("new") && !v.at(20_000).exists("old"),
            "{}",
            v.name
        );
    }
}

#[test]
fn concurrent_expire_later_deadline_wins() {
    let mut c = Cluster::new(2);
    c.write(US, "k", set("v"), 1_000);
    c.sync();
    // eu's EXPIRE has the later HLC but the earlier deadline: it loses.
    c.write(US, "k", expireat(20_000), 2_000);
    c.write(EU, "k", expireat(10_000), 3_000);
    for v in c.converged() {
        assert_eq!(v.deadline("k"), Some(20_000), "{}", v.name);
        assert!(v.at(15_000).exists("k"), "{}", v.name);
        assert!(!v.at(20_000).exists("k"), "{}", v.name);
        assert!(v.recorded(&ConflictKind::Expiry), "{}", v.name);
    }
    // A later EXPIRE that saw the deadline may shorten it.
    c.write(EU, "k", expireat(12_000), 4_000);
    for v in c.converged() {
        assert_eq!(v.deadline("k"), Some(12_000), "{}", v.name);
    }
}

#[test]
fn persist_beats_concurrent_expire() {
    let mut c = Cluster::new(2);
    c.write(US, "k", set("v"), 1_000);
    c.write(US, "k", expireat(50_000), 1_000);
    c.sync();
    c.write(US, "k", Intent::Persist, 2_000);
    c.write(EU, "k", expireat(90_000), 3_000);
    for v in c.converged() {
        assert_eq!(v.deadline("k"), None, "{}", v.name);
        assert_eq!(
            v.at(100_000).string("k").as_deref(),
            Some("v"),
            "{}",
            v.name
        );
    }
}

#[test]
fn set_without_keepttl_counts_as_persist() {
    let mut c = Cluster::new(2);
    for key in ["plain", "keepttl", "after"] {
        c.write(US, key, set("v"), 1_000);
        c.write(US, key, expireat(50_000), 1_000);
    }
    c.sync();
    // SET (no KEEPTTL) ∥ EXPIRE: as PERSIST ∥ EXPIRE, no deadline.
    c.write(US, "plain", set("v2"), 2_000);
    c.write(EU, "plain", expireat(90_000), 3_000);
    // SET KEEPTTL ∥ EXPIRE: the EXPIRE applies.
    c.write(US, "keepttl", set_keepttl("v2"), 2_000);
    c.write(EU, "keepttl", expireat(90_000), 3_000);
    // SET after a seen EXPIRE removes it, as in Redis.
    c.write(EU, "after", set("v2"), 2_000);
    for v in c.converged() {
        assert_eq!(v.deadline("plain"), None, "{}", v.name);
        assert_eq!(v.string("plain").as_deref(), Some("v2"), "{}", v.name);
        assert_eq!(v.deadline("keepttl"), Some(90_000), "{}", v.name);
        assert_eq!(v.string("keepttl").as_deref(), Some("v2"), "{}", v.name);
        assert_eq!(v.deadline("after"), None, "{}", v.name);
    }
}

#[test]
fn expired_key_invisible_everywhere_at_once() {
    let mut c = Cluster::new(3);
    c.write(EU, "k", set("v"), 1_000);
    c.write(EU, "k", expireat(10_000), 1_000);
    for v in c.converged() {
        assert_eq!(v.at(9_999).string("k").as_deref(), Some("v"), "{}", v.name);
        // No delete has been replicated yet: the deadline alone hides it.
        assert_eq!(v.at(10_000).string("k"), None, "{}", v.name);
        assert!(v.state.entry(b"k").is_some(), "{}", v.name);
    }
    // Writing to it afterwards, anywhere, starts a new key without the old
    // value or deadline.
    c.write(AP, "k", append("new"), 10_500);
    for v in c.converged() {
        assert_eq!(
            v.at(20_000).string("k").as_deref(),
            Some("new"),
            "{}",
            v.name
        );
        assert_eq!(v.deadline("k"), None, "{}", v.name);
    }
}

#[test]
fn owner_of_winning_ttl_deletes_and_concurrent_write_survives() {
    let mut c = Cluster::new(2);
    c.write(US, "s", sadd(&["a"]), 1_000);
    c.write(US, "s", expireat(10_000), 1_000);
    c.write(US, "gone", set("v"), 1_000);
    c.write(US, "gone", expireat(10_000), 1_000);
    c.write(US, "ext", set("v"), 1_000);
    c.write(US, "ext", expireat(10_000), 1_000);
    c.sync();
    // Before the deadline eu adds to the set and extends ext's TTL; us has
    // not seen either yet.
    c.write(EU, "s", sadd(&["b"]), 9_000);
    c.write(EU, "ext", expireat(20_000), 9_000);
    // At the deadline only us, the owner of the winning TTL, deletes.
    assert!(
        c.expire_sweep(EU, "s", 10_000).is_none(),
        "eu does not own the TTL"
    );
    assert!(c.expire_sweep(US, "s", 9_999).is_none(), "not expired yet");
    assert!(c.expire_sweep(US, "s", 10_000).is_some());
    assert!(c.expire_sweep(US, "gone", 10_000).is_some());
    assert!(c.expire_sweep(US, "ext", 10_000).is_some());
    for v in c.converged() {
        // An EXPIRE writes no content: racing the delete, it saves nothing.
        assert!(!v.at(15_000).exists("ext"), "{}", v.name);
        // The delete removed what us had seen (a, and the deadline); eu's
        // concurrent add survives as a key without TTL.
        assert_eq!(v.at(20_000).members("s"), ["b"], "{}", v.name);
        assert_eq!(v.deadline("s"), None, "{}", v.name);
        assert!(v.state.entry(b"gone").is_none(), "{}", v.name);
    }
    // ext is left with eu's deadline and no content; eu, its owner, clears
    // it when that deadline passes.
    assert!(c.expire_sweep(EU, "ext", 20_000).is_some());
    for v in c.converged() {
        assert!(v.state.entry(b"ext").is_none(), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Metadata and garbage collection
// ---------------------------------------------------------------------------

#[test]
fn deleted_data_never_comes_back_after_partition_heals() {
    let mut c = Cluster::new(3);
    c.write(US, "s", sadd(&["a", "b"]), 1_000);
    c.write(US, "k", set("v"), 1_000);
    c.write(US, "h", hset("f", "1"), 1_000);
    c.sync();
    // ap is cut off. us deletes; eu hears of it; both collect what they can.
    c.write(US, "s", Intent::Del, 2_000);
    c.write(US, "k", Intent::Del, 2_000);
    c.write(US, "h", hdel(&["f"]), 2_000);
    c.deliver(US, EU);
    c.collect(US);
    c.collect(EU);
    // Meanwhile ap, which still has everything, writes to the same keys.
    c.write(AP, "s", sadd(&["c"]), 2_500);
    c.write(AP, "h", hset("g", "2"), 2_500);
    // The partition heals.
    for v in c.converged() {
        assert_eq!(v.members("s"), ["c"], "{}", v.name);
        assert!(!v.exists("k"), "{}", v.name);
        assert_eq!(v.field("h", "f"), None, "{}", v.name);
        assert_eq!(v.field("h", "g").as_deref(), Some("2"), "{}", v.name);
    }
    // Old operations delivered again (a peer resending after a reconnect, a
    // restarted region replaying its log) change nothing.
    let digest = c.regions[US].state.digest();
    for r in [US, EU, AP] {
        c.collect(r);
        let mut restarted = c.regions[r].state.clone();
        for op in &c.log {
            assert_eq!(restarted.apply(op), Ok(Applied::Duplicate));
        }
        assert_eq!(restarted.digest(), digest);
    }
    for v in c.converged() {
        assert_eq!(v.members("s"), ["c"], "{}", v.name);
        assert!(!v.exists("k"), "{}", v.name);
    }
}

#[test]
fn collecting_stable_metadata_changes_nothing_visible() {
    let mut c = Cluster::new(2);
    c.write(US, "n", set("10"), 1_000);
    c.write(US, "s", sadd(&["a"]), 1_000);
    c.write(US, "z", zadd("m", 1.0), 1_000);
    c.write(US, "h", hset("f", "1"), 1_000);
    c.sync();
    c.write(US, "n", set("100"), 2_000);
    c.write(EU, "n", incrby(5), 2_000);
    c.write(US, "s", sadd(&["a"]), 2_000);
    c.write(EU, "s", sadd(&["a"]), 2_000);
    c.write(US, "z", zrem(&["m"]), 2_000);
    c.write(EU, "z", zincrby("m", 2.0), 2_000);
    c.write(US, "h", hset("f", "7"), 2_000);
    c.write(EU, "h", hincrby("f", 3), 2_000);
    c.write(EU, "h", expireat(90_000), 2_000);
    c.write(US, "h", expireat(80_000), 2_000);
    let before = c.converged();
    let digest = before[0].state.digest();
    // Only us collects: the regions then hold different metadata for the
    // same values, and must keep agreeing on what comes next.
    let held = c.regions[US].state.metadata_len();
    c.collect(US);
    assert!(
        c.regions[US].state.metadata_len() < held,
        "something was collected"
    );
    let after = c.view(US);
    assert_eq!(after.state.digest(), digest);
    assert_eq!(after.string("n").as_deref(), Some("105"));
    assert_eq!(after.members("s"), ["a"]);
    assert_eq!(after.score("z", "m"), Some(2.0));
    assert_eq!(after.field("h", "f").as_deref(), Some("10"));
    assert_eq!(after.deadline("h"), Some(90_000));

    c.write(US, "n", incrby(1), 3_000);
    c.write(EU, "n", incrby(1), 3_000);
    c.write(EU, "z", zincrby("m", 1.0), 3_000);
    c.write(US, "h", hincrby("f", 1), 3_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("107"), "{}", v.name);
        assert_eq!(v.score("z", "m"), Some(3.0), "{}", v.name);
        assert_eq!(v.field("h", "f").as_deref(), Some("11"), "{}", v.name);
    }
    c.collect(EU);
    c.write(EU, "n", set("1"), 4_000);
    c.write(US, "n", incrby(2), 4_000);
    for v in c.converged() {
        assert_eq!(v.string("n").as_deref(), Some("3"), "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Checking convergence
// ---------------------------------------------------------------------------

#[test]
fn digests_equal_after_exchange_in_any_order() {
    let mut c = Cluster::new(3);
    let mut wall = 1_000;
    for round in 0..4 {
        for (r, name) in NAMES.iter().enumerate() {
            wall += 7;
            let tag = format!("{name}{round}");
            c.write(r, "str", set(&tag), wall);
            c.write(r, "ctr", incrby(r as i64 + 1), wall);
            c.write(r, "set", sadd(&[&tag]), wall);
            c.write(r, "hash", hset(name, &tag), wall);
            c.write(r, "zset", zincrby(name, 0.5), wall);
            c.write(r, "list", rpush(&[&tag]), wall);
        }
        // Partial exchanges between rounds make later operations depend on
        // some, not all, earlier ones.
        c.deliver(round % 3, (round + 1) % 3);
    }
    c.write(US, "set", srem(&["us0", "eu0"]), wall + 1);
    c.write(AP, "list", Intent::RPop(2), wall + 1);
    let views = c.converged();
    let digest = views[0].state.digest();
    for v in &views {
        assert_eq!(v.state.digest(), digest, "{}", v.name);
        assert_eq!(v.string("ctr").as_deref(), Some("24"), "{}", v.name);
        assert_eq!(v.members("set").len(), 12 - 2, "{}", v.name);
        assert_eq!(v.list("list").len(), 12 - 2, "{}", v.name);
    }
    // A different outcome gives a different digest.
    c.write(EU, "str", set("other"), wall + 2);
    assert_ne!(c.converged()[0].state.digest(), digest);
}
