//! The materialized state a region serves: the CRDT state plus what the
//! server needs around it (clock, active-expiry index, operations waiting to
//! be logged). Pure: the server moves pending operations to the op log.

pub mod conflicts;

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};

pub use conflicts::ConflictJournal;

use crate::crdt::detach::detach;
use crate::crdt::{
    Applied, ApplyError, Content, HlcClock, Intent, Operation, RegionId, State, WriteError,
};

/// Counters shown by `INFO`.
#[derive(Clone, Debug, Default)]
pub struct KeyspaceStats {
    /// Operations originated here.
    pub local_ops: u64,
    /// Operations received from other regions (or replayed from the log).
    pub remote_ops: u64,
    /// Keys this region deleted because their deadline passed.
    pub expired_keys: u64,
    /// Races resolved by the merge rules (every journal entry ever recorded).
    pub conflicts: u64,
}

/// One region's keyspace.
#[derive(Debug)]
pub struct Keyspace {
    region: RegionId,
    clock: HlcClock,
    state: State,
    /// Deadlines this region owns (it alone issues their delete), by time.
    deadlines: BTreeSet<(u64, Bytes)>,
    deadline_of: HashMap<Bytes, u64, foldhash::fast::RandomState>,
    pending: Vec<Operation>,
    txn_start: Option<usize>,
    lsn: u64,
    /// Versions of keys some client WATCHes, with how many watchers.
    watched: HashMap<Bytes, (u64, usize), foldhash::fast::RandomState>,
    /// Counters for `INFO`.
    pub stats: KeyspaceStats,
    /// The latest conflicts and their counts (`BRAID.CONFLICTS`).
    pub conflicts: ConflictJournal,
}

impl Keyspace {
    /// Wraps a recovered (or empty) state; the clock resumes above every
    /// stamp the state holds, so sequence numbers and stamps never repeat.
    pub fn new(region: RegionId, state: State) -> Self {
        let mut ks = Keyspace {
            region,
            clock: HlcClock::resume(state.max_hlc()),
            state,
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::default(),
            pending: Vec::new(),
            txn_start: None,
            lsn: 0,
            watched: HashMap::default(),
            stats: KeyspaceStats::default(),
            conflicts: ConflictJournal::default(),
        };
        ks.rebuild_deadlines();
        ks
    }

    /// This region's id.
    pub fn region(&self) -> RegionId {
        self.region
    }

    /// The CRDT state (for reads).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The content a client reads at `now_ms` (expired keys are invisible).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Content> {
        self.state.get(key, now_ms)
    }

    /// Log sequence number: local operations applied to memory so far. A
    /// reply that observed the state may leave only once the op log is
    /// durable up to here. (Remote operations are persisted before they are
    /// applied, so they never need waiting for.)
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Performs a client write: prepare, apply, queue for the log. Returns
    /// whether an operation was written.
    pub fn write(&mut self, key: Bytes, intent: Intent, now_ms: u64) -> Result<bool, WriteError> {
        let hlc = self.clock.tick(now_ms);
        let Some(op) = self.state.prepare(self.region, hlc, key, intent, now_ms)? else {
            return Ok(false);
        };
        self.apply_local(op);
        Ok(true)
    }

    /// FLUSHALL / FLUSHDB: an observed-remove of every key, replicated.
    pub fn flush_all(&mut self, now_ms: u64) {
        let hlc = self.clock.tick(now_ms);
        let op = self.state.prepare_flush(self.region, hlc);
        self.apply_local(op);
    }

    fn apply_local(&mut self, op: Operation) {
        match self.state.apply(&op) {
            Ok(Applied::Done(conflicts)) => self.record_conflicts(conflicts),
            // A prepared operation is always the next one and ready.
            other => tracing::error!(?other, dot = %op.dot(), "local operation did not apply"),
        }
        self.lsn += 1;
        self.after_apply(&op);
        self.stats.local_ops += 1;
        self.pending.push(op);
    }

    /// Applies an operation from another region or from the log at start-up.
    /// It is not queued for logging (the caller persisted it already).
    pub fn apply_remote(&mut self, op: &Operation, now_ms: u64) -> Result<Applied, ApplyError> {
        let applied = self.state.apply(op)?;
        self.clock.observe(op.hlc, now_ms);
        if let Applied::Done(conflicts) = &applied {
            self.record_conflicts(conflicts.clone());
            self.after_apply(op);
            self.stats.remote_ops += 1;
        }
        Ok(applied)
    }

    fn record_conflicts(&mut self, conflicts: Vec<crate::crdt::Conflict>) {
        for c in conflicts {
            tracing::debug!(
                key = %String::from_utf8_lossy(&c.key),
                rule = c.kind.rule(),
                winner = %c.winner.region,
                loser = %c.loser.region,
                "conflict resolved"
            );
            self.stats.conflicts += 1;
            self.conflicts.record(c);
        }
    }

    fn after_apply(&mut self, op: &Operation) {
        match op.key() {
            Some(k) => {
                if self.state.deadline_moved() {
                    self.reindex_deadline(k);
                }
                if let Some(w) = self.watched.get_mut(k) {
                    w.0 += 1;
                }
            }
            None => {
                self.rebuild_deadlines();
                for w in self.watched.values_mut() {
                    w.0 += 1;
                }
            }
        }
    }

    /// Replaces the state with one received from a peer that covers all of
    /// it (a joining or rebuilt region). The clock moves past every stamp in
    /// it; watchers see every key as changed.
    pub fn install(&mut self, state: State, now_ms: u64) {
        self.clock.observe(state.max_hlc(), now_ms);
        let tracing = self.state.tracing();
        let alone = self.state.alone();
        let skip_held_adds = self.state.skip_held_adds();
        self.state = state;
        self.state.set_tracing(tracing);
        self.state.set_alone(alone);
        self.state.set_skip_held_adds(skip_held_adds);
        self.rebuild_deadlines();
        for w in self.watched.values_mut() {
            w.0 += 1;
        }
    }

    /// Turns conflict-detection tracing on or off (off: a region that takes
    /// no operations from other regions; see [`State::set_tracing`]).
    pub fn set_conflict_tracing(&mut self, on: bool) {
        self.state.set_tracing(on);
    }

    /// Declares the region without replication (no peers, none can join):
    /// every operation is stable once applied (see [`State::set_alone`]),
    /// and an SADD of members already held is not written (see
    /// [`State::set_skip_held_adds`]).
    pub fn set_alone(&mut self, alone: bool) {
        self.state.set_alone(alone);
        self.state.set_skip_held_adds(alone);
    }

    /// Drops CRDT metadata that every region has seen (`stable`).
    pub fn collect(&mut self, stable: &crate::crdt::VersionVector) {
        self.state.collect(stable);
    }

    /// WATCH: starts tracking `key`; returns its current version.
    pub fn watch(&mut self, key: &Bytes) -> u64 {
        let w = match self.watched.get_mut(&key[..]) {
            Some(w) => w,
            None => self.watched.entry(detach(key.clone())).or_insert((0, 0)),
        };
        w.1 += 1;
        w.0
    }

    /// Stops one watcher of `key`.
    pub fn unwatch(&mut self, key: &Bytes) {
        if let Some(w) = self.watched.get_mut(key) {
            w.1 = w.1.saturating_sub(1);
            if w.1 == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// Current version of a watched key (changes on every write to it).
    pub fn watch_version(&self, key: &[u8]) -> u64 {
        self.watched.get(key).map_or(0, |w| w.0)
    }

    fn reindex_deadline(&mut self, key: &Bytes) {
        let now = self
            .state
            .entry(key)
            .and_then(|e| e.deadline())
            .filter(|d| d.owner == self.region)
            .map(|d| d.at_ms);
        let before = self.deadline_of.get(key).copied();
        if before == now {
            return;
        }
        if let Some(at) = before {
            self.deadlines.remove(&(at, key.clone()));
            self.deadline_of.remove(key);
        }
        if let Some(at) = now {
            let key = detach(key.clone());
            self.deadlines.insert((at, key.clone()));
            self.deadline_of.insert(key, at);
        }
    }

    fn rebuild_deadlines(&mut self) {
        self.deadlines.clear();
        self.deadline_of.clear();
        let region = self.region;
        let owned: Vec<(u64, Bytes)> = self
            .state
            .entries()
            .filter_map(|(k, e)| {
                e.deadline()
                    .filter(|d| d.owner == region)
                    .map(|d| (d.at_ms, k.clone()))
            })
            .collect();
        for (at, k) in owned {
            self.deadline_of.insert(k.clone(), at);
            self.deadlines.insert((at, k));
        }
    }

    /// Active expiry: deletes (with replicated deletes) up to `max` keys
    /// whose deadline, owned by this region, has passed. Returns how many.
    pub fn expire_due(&mut self, now_ms: u64, max: usize) -> usize {
        let due: Vec<Bytes> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(max)
            .map(|(_, k)| k.clone())
            .collect();
        let mut n = 0;
        for key in due {
            let hlc = self.clock.tick(now_ms);
            match self
                .state
                .prepare_expiry_delete(self.region, hlc, &key, now_ms)
            {
                Some(op) => {
                    self.apply_local(op);
                    self.stats.expired_keys += 1;
                    n += 1;
                }
                None => self.reindex_deadline(&key),
            }
        }
        n
    }

    /// Starts a transaction: the writes until [`commit_txn`](Self::commit_txn)
    /// are logged and replicated as one unit.
    pub fn begin_txn(&mut self) {
        self.txn_start = Some(self.pending.len());
    }

    /// Ends a transaction: marks its operations as one unit.
    pub fn commit_txn(&mut self) {
        if let Some(start) = self.txn_start.take() {
            let ops = &mut self.pending[start..];
            let n = ops.len();
            for (i, op) in ops.iter_mut().enumerate() {
                op.txn_rest = u32::try_from(n - 1 - i).unwrap_or(u32::MAX);
            }
        }
    }

    /// Takes the operations written since the last call, for the op log.
    pub fn take_pending(&mut self) -> Vec<Operation> {
        // The next batch is likely as large: growing to it again would move
        // every operation a few times.
        let capacity = self.pending.len().min(1024);
        std::mem::replace(&mut self.pending, Vec::with_capacity(capacity))
    }

    /// Number of keys (as DBSIZE counts them).
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Keys with a deadline owned here (INFO's `expires` is per region).
    pub fn owned_deadlines(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::TtlChange;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn writes_queue_operations_and_advance_lsn() {
        let mut ks = Keyspace::new(RegionId(1), State::new());
        assert!(ks.write(b("k"), Intent::IncrBy(2), 1000).unwrap());
        assert!(!ks.write(b("missing"), Intent::Del, 1000).unwrap());
        assert_eq!(ks.lsn(), 1);
        let ops = ks.take_pending();
        assert_eq!(ops.len(), 1);
        assert!(ks.take_pending().is_empty());
    }

    /// Client arguments share the buffer they were read into; whatever the
    /// keyspace keeps must hold its own copy, or one 3-byte value would pin
    /// that whole buffer. Once the operations are taken (as the op log
    /// does), nothing else may still hold the buffer: with tracing and
    /// unstable-key tracking (several regions) or without (alone).
    #[test]
    fn nothing_kept_pins_the_buffer_arguments_arrived_in() {
        for alone in [false, true] {
            let buffer = Bytes::from(b"k1k2k3k4k5k6k7vvmmffsszzeeww".to_vec());
            let arg = |i: usize| buffer.slice(2 * i..2 * i + 2);
            let mut ks = Keyspace::new(RegionId(1), State::new());
            ks.set_alone(alone);
            let writes = [
                (
                    0,
                    Intent::Set {
                        value: arg(7),
                        ttl: TtlChange::ExpireAt(9_000),
                    },
                ),
                (1, Intent::HSet(vec![(arg(9), arg(7))])),
                (2, Intent::SAdd(vec![arg(8), arg(10)])),
                (3, Intent::ZAdd(vec![(arg(11), 1.5)])),
                (3, Intent::ZIncrBy(arg(12), 2.0)),
                (4, Intent::LPush(vec![arg(13), arg(7)])),
                (5, Intent::HIncrBy(arg(12), 3)),
                (6, Intent::Append(arg(7))),
                (0, Intent::ExpireAt(8_000)),
            ];
            for (key, intent) in writes {
                assert!(ks.write(arg(key), intent, 1000).expect("write"));
            }
            ks.watch(&arg(1));
            drop(ks.take_pending());
            assert!(
                buffer.is_unique(),
                "alone: {alone}: something kept a slice of the request buffer"
            );
            assert_eq!(ks.owned_deadlines(), 1);
            assert!(ks.get(b"k4", 1000).is_some());
        }
    }

    #[test]
    fn active_expiry_deletes_owned_keys_once_due() {
        let mut ks = Keyspace::new(RegionId(1), State::new());
        let set = Intent::Set {
            value: b("v"),
            ttl: TtlChange::ExpireAt(5000),
        };
        ks.write(b("k"), set, 1000).unwrap();
        assert_eq!(ks.owned_deadlines(), 1);
        assert_eq!(ks.expire_due(4999, 10), 0);
        assert!(ks.get(b"k", 4999).is_some());
        assert!(ks.get(b"k", 5000).is_none(), "invisible at the deadline");
        assert_eq!(ks.expire_due(5000, 10), 1);
        assert!(ks.state().entry(b"k").is_none());
        assert_eq!(ks.owned_deadlines(), 0);
    }

    #[test]
    fn transaction_operations_are_marked_as_one_unit() {
        let mut ks = Keyspace::new(RegionId(1), State::new());
        ks.begin_txn();
        ks.write(b("a"), Intent::IncrBy(1), 1).unwrap();
        ks.write(b("b"), Intent::IncrBy(1), 1).unwrap();
        ks.write(b("c"), Intent::IncrBy(1), 1).unwrap();
        ks.commit_txn();
        let rest: Vec<u32> = ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![2, 1, 0]);
    }
}
