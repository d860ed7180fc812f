//! The materialized CRDT state of a region: keys, version vector, digest.

use bytes::Bytes;
use smallvec::{smallvec, SmallVec};
use std::collections::{hash_map, HashMap};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

use super::conflict::{judge, Conflict, Trace};
use super::detach::detach;
use super::digest::Accumulator;
use super::entry::{Content, Entry};
use super::hlc::Hlc;
use super::id::RegionId;
use super::op::{Body, Effect, KeyWrite, Operation, TtlChange};
use super::vv::VersionVector;

/// Why an operation cannot be applied yet (or at all).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Something it depends on has not been applied: buffer it (see
    /// [`CausalBuffer`](super::causal::CausalBuffer)).
    #[error("operation {origin}:{seq} is not causally ready (state has {have})")]
    NotReady {
        /// Origin of the operation.
        origin: super::id::RegionId,
        /// Its sequence.
        seq: u64,
        /// The state's version vector.
        have: VersionVector,
    },
    /// The operation is malformed (its deps disagree with its sequence).
    #[error("malformed operation: {0}")]
    Malformed(&'static str),
}

/// The result of applying an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Already covered by the version vector: nothing changed.
    Duplicate,
    /// Applied; the races it resolved against operations applied before it
    /// (usually none; see [`conflict`](super::conflict)).
    Done(Vec<Conflict>),
}

/// Traces of the not yet stable operations on one key, per origin in
/// sequence order, so that the ones concurrent with a new operation (a
/// suffix per origin) are found without walking the rest.
type KeyTraces = SmallVec<[(RegionId, OriginTraces); 1]>;

/// One origin's traces on one key, in sequence order (usually one).
type OriginTraces = SmallVec<[Trace; 1]>;

/// Number of key shards. A frozen copy ([`State::freeze`]) clones one
/// pointer per shard, and a write made while a frozen copy is alive copies
/// at most its shard's table (about keys / `SHARDS` pointers) and its entry:
/// 1024 keeps both small for states of up to tens of millions of keys.
pub const SHARDS: usize = 1024;

/// One shard of the key space. Entries sit behind their own [`Arc`] so that
/// copying a shard for a write copies pointers, not contents.
/// Hash maps keyed by client-chosen keys: foldhash is several times faster
/// than SipHash and still randomly seeded per process against flooding.
pub(crate) type KeyMap<V> = HashMap<Bytes, V, foldhash::fast::RandomState>;

pub(crate) type Shard = KeyMap<Arc<Entry>>;

/// The shard a key lives in. xxh3 is fixed and portable, so the layout is
/// the same in every process (the snapshot encoder walks shards in order).
pub(crate) fn shard_of(key: &[u8]) -> usize {
    (xxh3_64(key) as usize) & (SHARDS - 1)
}

/// Keys to their CRDT entries, the version vector of applied operations and
/// an incrementally maintained digest. Pure: no I/O, no clock.
///
/// Keys are split into [`SHARDS`] copy-on-write shards so that
/// [`freeze`](Self::freeze) (a consistent copy to snapshot from) costs
/// O(shards) instead of O(keys): writes go through [`Arc::make_mut`], which
/// copies a shard, then an entry, only while a frozen copy still shares it.
/// Cloning a `State` is as cheap, and shares the same way.
#[derive(Clone, Debug)]
pub struct State {
    shards: Vec<Arc<Shard>>,
    vv: VersionVector,
    digest: Accumulator,
    max_hlc: Hlc,
    visible_keys: usize,
    /// Keys holding metadata that may become collectable, with the
    /// operations that touched them since they were last fully collected.
    unstable: KeyMap<VersionVector>,
    /// Set when restored from a snapshot, which does not record `unstable`
    /// (see [`Restored`]).
    restored: Option<Box<Restored>>,
    /// Traces of operations not yet causally stable, by key, for conflict
    /// detection: outside the digest, the snapshot and what clients read.
    traces: KeyMap<KeyTraces>,
    /// Traces of FLUSHALLs not yet causally stable.
    flushes: Vec<Trace>,
    /// Traces held (in `traces` and `flushes`).
    trace_count: usize,
    /// Most traces held: beyond it (a peer unreachable for long, so that
    /// nothing becomes stable) new operations are not traced.
    trace_limit: usize,
    /// Operations applied without a trace because of `trace_limit`.
    untraced: u64,
    /// Whether new operations are traced at all (see [`State::set_tracing`]).
    tracing: bool,
    /// Whether the last applied key write changed its key's deadline (the
    /// keyspace's expiry index needs no update otherwise).
    deadline_moved: bool,
    /// Whether every operation is stable once applied (see
    /// [`State::set_alone`]).
    alone: bool,
    /// Whether an SADD of members the set holds is not written (see
    /// [`State::set_skip_held_adds`]).
    skip_held_adds: bool,
}

/// Default most conflict-detection traces a state holds (about 150 bytes
/// each): a region whose peer is unreachable stops tracing, rather than
/// growing without bound, once this many writes are not yet stable.
pub const DEFAULT_TRACE_LIMIT: usize = 1 << 20;

/// What a state restored from a snapshot knows about its collectable
/// metadata: every key counts as touched by everything in `upto`, until a
/// collection at a frontier that dominates it. One vector instead of one per
/// key keeps loading a large snapshot cheap.
#[derive(Clone, Debug)]
struct Restored {
    /// The snapshot's version vector.
    upto: VersionVector,
    /// The frontier every key was last collected at: collecting again at the
    /// same frontier changes nothing (keys written since are in `unstable`).
    swept: Option<VersionVector>,
}

impl Default for State {
    fn default() -> Self {
        // Every shard starts as the same empty table; the first write to a
        // shard gives it its own.
        let empty: Arc<Shard> = Arc::default();
        State {
            shards: vec![empty; SHARDS],
            vv: VersionVector::default(),
            digest: Accumulator::default(),
            max_hlc: Hlc::ZERO,
            visible_keys: 0,
            unstable: KeyMap::default(),
            restored: None,
            traces: KeyMap::default(),
            flushes: Vec::new(),
            trace_count: 0,
            trace_limit: DEFAULT_TRACE_LIMIT,
            untraced: 0,
            tracing: true,
            deadline_moved: false,
            alone: false,
            skip_held_adds: false,
        }
    }
}

/// A consistent, immutable copy of a [`State`] at one point of its history,
/// made by [`State::freeze`] in O(shards): what a snapshot is written from
/// while the live state keeps taking writes. It shares unchanged shards and
/// entries with the live state, so it costs memory only for what is written
/// after it was taken.
#[derive(Clone, Debug)]
pub struct FrozenState {
    shards: Vec<Arc<Shard>>,
    vv: VersionVector,
    digest: u128,
    max_hlc: Hlc,
    visible_keys: usize,
}

impl FrozenState {
    /// All entries (including invisible ones), shard by shard (in no
    /// particular order within a shard).
    pub fn entries(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, e)| (k, &**e)))
    }

    /// The shards, in shard order (the snapshot encoder sorts each).
    pub(crate) fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter().map(|s| &**s)
    }

    /// The entry of a key, whatever its visibility.
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.shards[shard_of(key)].get(key).map(|e| &**e)
    }

    /// Version vector of everything applied when frozen.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// Highest HLC of any operation applied when frozen.
    pub fn max_hlc(&self) -> Hlc {
        self.max_hlc
    }

    /// The convergence digest when frozen.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// Number of keys with visible content (as [`State::len`]).
    pub fn len(&self) -> usize {
        self.visible_keys
    }

    /// Whether no key has visible content.
    pub fn is_empty(&self) -> bool {
        self.visible_keys == 0
    }

    /// Number of entries, visible or not (what a snapshot holds). O(shards).
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// A consistent frozen copy, in O(shards) whatever the number of keys:
    /// a region snapshots it from another thread without stalling clients.
    /// Later writes to this state copy the shards and entries they touch
    /// (once per frozen copy), so the frozen copy never changes.
    pub fn freeze(&self) -> FrozenState {
        FrozenState {
            shards: self.shards.clone(),
            vv: self.vv.clone(),
            digest: self.digest.0,
            max_hlc: self.max_hlc,
            visible_keys: self.visible_keys,
        }
    }

    /// An empty state at version `vv` and `max_hlc`, to be filled by
    /// [`insert_restored`](Self::insert_restored) (snapshot decoding). A
    /// snapshot does not record which keys still hold collectable metadata,
    /// so every key counts as touched by all of `vv`: collection passes look
    /// at every key until the stable frontier covers `vv`.
    pub(crate) fn restoring(vv: VersionVector, max_hlc: Hlc) -> Self {
        State {
            restored: (!vv.is_empty()).then(|| {
                Box::new(Restored {
                    upto: vv.clone(),
                    swept: None,
                })
            }),
            vv,
            max_hlc,
            ..State::default()
        }
    }

    /// Adds a decoded entry (its digest share already computed); `false`
    /// when the key is already present.
    pub(crate) fn insert_restored(&mut self, key: Bytes, entry: Entry) -> bool {
        let shard = Arc::make_mut(&mut self.shards[shard_of(&key)]);
        match shard.entry(key) {
            hash_map::Entry::Occupied(_) => false,
            hash_map::Entry::Vacant(v) => {
                self.digest.add(entry.hash);
                self.visible_keys += usize::from(entry.visible().is_some());
                v.insert(Arc::new(entry));
                true
            }
        }
    }

    /// Number of entries, visible or not (expired, or holding only
    /// metadata). O(shards).
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Version vector of everything applied.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// Highest HLC of any applied operation (a restarted clock resumes above it).
    pub fn max_hlc(&self) -> Hlc {
        self.max_hlc
    }

    /// The convergence digest: equal on every region that applied the same
    /// operations, whatever the order.
    pub fn digest(&self) -> u128 {
        self.digest.0
    }

    /// Number of keys with visible content (expired keys not yet deleted
    /// included, as Redis' DBSIZE does).
    pub fn len(&self) -> usize {
        self.visible_keys
    }

    /// Whether no key has visible content.
    pub fn is_empty(&self) -> bool {
        self.visible_keys == 0
    }

    /// The entry of a key, whatever its visibility.
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.shards[shard_of(key)].get(key).map(|e| &**e)
    }

    /// The content a client reads at `now_ms` (`None`: no such key or expired).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Content> {
        self.entry(key)
            .filter(|e| e.is_live(now_ms))
            .and_then(Entry::visible)
    }

    /// All entries (including invisible ones), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, e)| (k, &**e)))
    }

    /// Number of shards: SCAN's cursor walks them, so a key present for a
    /// whole scan is returned at least once whatever is written meanwhile.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The entries of one shard (empty past the last shard).
    pub fn shard_entries(&self, shard: usize) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.shards
            .get(shard)
            .into_iter()
            .flat_map(|s| s.iter().map(|(k, e)| (k, &**e)))
    }

    /// Total metadata items held: what garbage collection keeps bounded.
    pub fn metadata_len(&self) -> usize {
        self.entries().map(|(_, e)| e.metadata_len()).sum()
    }

    /// Operations whose conflict-detection trace is still held (those not
    /// yet causally stable at the last collection).
    pub fn trace_len(&self) -> usize {
        self.trace_count
    }

    /// Sets the most traces held (see [`DEFAULT_TRACE_LIMIT`]).
    pub fn set_trace_limit(&mut self, limit: usize) {
        self.trace_limit = limit;
    }

    /// Whether new operations are traced for conflict detection. A region
    /// that will never apply another region's operation turns it off: none
    /// of its own can then race anything, and tracing costs every write.
    pub fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
    }

    /// Declares that no other region takes part: every operation is stable
    /// as soon as it is applied, which is what a collection would find with
    /// the region as its only member. Each write then collects its key's
    /// strings and expiry at once, and a key left with nothing to collect is
    /// not tracked for the next collection: that tracking is a lookup in
    /// another large map on every write.
    pub fn set_alone(&mut self, alone: bool) {
        self.alone = alone;
    }

    /// Whether the region has no peers (see [`set_alone`](Self::set_alone)).
    pub fn alone(&self) -> bool {
        self.alone
    }

    /// Declares that no remove can be concurrent with a local write (a
    /// region without replication), so that an SADD of members the set already
    /// holds changes nothing anyone can observe: it is then not written, as
    /// Redis does not propagate it. With peers such a re-add is written:
    /// its new tag is what wins over a concurrent SREM.
    pub fn set_skip_held_adds(&mut self, skip: bool) {
        self.skip_held_adds = skip;
    }

    /// See [`set_skip_held_adds`](Self::set_skip_held_adds).
    pub fn skip_held_adds(&self) -> bool {
        self.skip_held_adds
    }

    /// Whether new operations are traced (see [`set_tracing`](Self::set_tracing)).
    pub fn tracing(&self) -> bool {
        self.tracing
    }

    /// Whether the last key write applied changed that key's deadline.
    pub(crate) fn deadline_moved(&self) -> bool {
        self.deadline_moved
    }

    /// Operations applied without a trace because too many were not yet
    /// stable: the conflict journal may miss races with them.
    pub fn untraced_ops(&self) -> u64 {
        self.untraced
    }

    /// Whether `op` is already applied.
    pub fn has_applied(&self, op: &Operation) -> bool {
        self.vv.contains(op.dot())
    }

    /// Whether everything `op` depends on is applied and it is next from its
    /// origin.
    pub fn is_ready(&self, op: &Operation) -> bool {
        op.seq == self.vv.get(op.origin) + 1 && self.vv.dominates(&op.deps)
    }

    /// Applies an operation. Idempotent: an operation already covered by
    /// the version vector changes nothing. Operations must arrive in causal
    /// order; one that is not ready is refused, not half-applied.
    pub fn apply(&mut self, op: &Operation) -> Result<Applied, ApplyError> {
        self.deadline_moved = false;
        if op.seq == 0 || op.deps.get(op.origin) != op.seq - 1 {
            return Err(ApplyError::Malformed("deps[origin] must be seq - 1"));
        }
        if self.has_applied(op) {
            return Ok(Applied::Duplicate);
        }
        if !self.is_ready(op) {
            return Err(ApplyError::NotReady {
                origin: op.origin,
                seq: op.seq,
                have: self.vv.clone(),
            });
        }
        let conflicts = self.detect(op);
        match &op.body {
            Body::Key(w) => self.apply_key(op, w),
            Body::FlushAll => self.flush_observed(op),
        }
        self.vv.set(op.origin, op.seq);
        self.max_hlc = self.max_hlc.max(op.hlc);
        Ok(Applied::Done(conflicts))
    }

    /// Judges `op` against every operation applied before it that it had
    /// not seen (concurrent with it), then keeps its trace for the ones
    /// still to come. Every concurrent pair is judged once, by whichever
    /// of the two is applied second.
    fn detect(&mut self, op: &Operation) -> Vec<Conflict> {
        let mut found = Vec::new();
        // An operation that saw everything applied here (every local write)
        // is concurrent with nothing: no trace to look up.
        let saw_all = op.deps.dominates(&self.vv);
        if saw_all && !self.tracing {
            return found;
        }
        match &op.body {
            Body::Key(w) => {
                let trace = Trace::of_write(op, w);
                if !saw_all {
                    let earlier = self.traces.get(&w.key).into_iter().flatten();
                    for t in concurrent(earlier, &op.deps)
                        .chain(self.flushes.iter().filter(|f| !op.deps.contains(f.tag.dot)))
                    {
                        found.extend(judge(t, &trace).into_iter().map(|v| v.on(&w.key)));
                    }
                }
                if !self.tracing {
                    return found;
                }
                if self.trace_count >= self.trace_limit {
                    self.untraced += 1;
                    return found;
                }
                self.trace_count += 1;
                let per_key = match self.traces.get_mut(&w.key) {
                    Some(t) => t,
                    None => self.traces.entry(detach(w.key.clone())).or_default(),
                };
                // Held until stable, which may be long while a peer is away.
                let trace = trace.detached();
                match per_key.iter_mut().find(|(r, _)| *r == op.origin) {
                    Some((_, q)) => q.push(trace),
                    None => per_key.push((op.origin, smallvec![trace])),
                }
            }
            Body::FlushAll => {
                let trace = Trace::of_flush(op);
                if !saw_all {
                    for (key, per_key) in &self.traces {
                        for t in concurrent(per_key.iter(), &op.deps) {
                            found.extend(judge(&trace, t).into_iter().map(|v| v.on(key)));
                        }
                    }
                }
                if !self.tracing {
                    return found;
                }
                if self.trace_count >= self.trace_limit {
                    self.untraced += 1;
                } else {
                    self.trace_count += 1;
                    self.flushes.push(trace);
                }
            }
        }
        found
    }

    fn flush_observed(&mut self, op: &Operation) {
        let keys: Vec<Bytes> = self.entries().map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.update_entry(&key, op, |entry, ctx, _| {
                entry.remove_observed_except(None, ctx);
                entry.expiry_mut().remove_observed(ctx);
            });
        }
    }

    /// Runs `f` on a key's entry, then prunes it and updates the digest,
    /// the visible-key count and the set of keys with unstable metadata.
    fn update_entry(
        &mut self,
        key: &Bytes,
        op: &Operation,
        f: impl FnOnce(&mut Entry, &VersionVector, &Operation),
    ) {
        let shard = Arc::make_mut(&mut self.shards[shard_of(key)]);
        // One lookup when the key exists (most writes); the key is cloned
        // (an allocation the first time a `Bytes` is shared) only when not.
        let slot = match shard.get_mut(key) {
            Some(slot) => slot,
            None => shard.entry(detach(key.clone())).or_default(),
        };
        let entry = Arc::make_mut(slot);
        let was_visible = entry.visible().is_some();
        let old_hash = entry.hash;
        let old_deadline = entry.deadline();
        f(entry, &op.deps, op);
        let settled = self.alone && {
            let mut stable = self.vv.clone();
            stable.raise(op.origin, op.seq);
            entry.collect_small(&stable);
            entry.settled()
        };
        let gone = entry.prune();
        let now_visible = entry.visible().is_some();
        let new_hash = if gone { 0 } else { entry.digest(key) };
        entry.hash = new_hash;
        self.deadline_moved = entry.deadline() != old_deadline;
        self.digest.sub(old_hash);
        self.digest.add(new_hash);
        self.visible_keys = self.visible_keys + usize::from(now_visible) - usize::from(was_visible);
        if gone {
            shard.remove(key);
            self.unstable.remove(key);
        } else if !settled {
            match self.unstable.get_mut(key) {
                Some(touched) => touched.raise(op.origin, op.seq),
                None => {
                    let mut touched = VersionVector::default();
                    touched.raise(op.origin, op.seq);
                    self.unstable.insert(detach(key.clone()), touched);
                }
            }
        }
    }

    fn apply_key(&mut self, op: &Operation, w: &KeyWrite) {
        self.update_entry(&w.key, op, |entry, ctx, op| {
            let tag = op.tag();
            let kind = w.effect.key_type();
            if w.fresh {
                entry.remove_observed_except(None, ctx);
                entry.expiry_mut().remove_observed(ctx);
            } else if kind.is_some() && !matches!(w.effect, Effect::StrSet { .. }) {
                // A write of one type drops the other types its region saw
                // (a type conflict's hidden loser). EXPIRE and PERSIST write
                // no content and must leave it alone. (SET drops every type
                // below.)
                entry.remove_observed_except(kind, ctx);
            }
            match (&w.effect, kind) {
                (Effect::Del, _) => {
                    entry.remove_observed_except(None, ctx);
                    entry.expiry_mut().remove_observed(ctx);
                }
                (Effect::Expire(at), _) => {
                    entry.expiry_mut().write(Some(*at), tag, ctx);
                }
                (Effect::Persist, _) => {
                    entry.expiry_mut().write(None, tag, ctx);
                }
                (effect, Some(t)) => {
                    if let Effect::StrSet { ttl, .. } = effect {
                        // SET overwrites whatever its region saw, of any type.
                        entry.remove_observed_except(None, ctx);
                        let exp = entry.expiry_mut();
                        match ttl {
                            TtlChange::Keep => {}
                            TtlChange::Persist => {
                                exp.write(None, tag, ctx);
                            }
                            TtlChange::ExpireAt(at) => {
                                exp.write(Some(*at), tag, ctx);
                            }
                        }
                    }
                    apply_content(entry.content_mut(t), effect, op, ctx);
                }
                (_, None) => {}
            }
        });
    }

    /// Drops metadata every region has seen (`stable`, from
    /// [`Stability`](super::stability::Stability)). What clients read, and the
    /// digest, do not change.
    pub fn collect(&mut self, stable: &VersionVector) {
        // Nothing concurrent with a stable operation can still arrive, so
        // its trace can no longer take part in a conflict.
        let mut dropped = 0;
        self.traces.retain(|_, per_key| {
            per_key.retain_mut(|(origin, q)| {
                let upto = stable.get(*origin);
                let stable_count = q.partition_point(|t| t.tag.dot.seq <= upto);
                q.drain(..stable_count);
                dropped += stable_count;
                !q.is_empty()
            });
            !per_key.is_empty()
        });
        let flushes = self.flushes.len();
        self.flushes.retain(|f| !stable.contains(f.tag.dot));
        dropped += flushes - self.flushes.len();
        self.trace_count -= dropped;
        let shards = &mut self.shards;
        self.unstable.retain(|key, touched| {
            let shard = &mut shards[shard_of(key)];
            // Copy the shard (if a frozen copy shares it) only for a key it
            // holds; an unshared one takes a single lookup.
            if Arc::get_mut(shard).is_some() || shard.contains_key(key) {
                let shard = Arc::make_mut(shard);
                if let Some(slot) = shard.get_mut(key) {
                    let entry = Arc::make_mut(slot);
                    entry.collect(stable);
                    if entry.prune() {
                        shard.remove(key);
                        return false;
                    }
                }
            }
            !stable.dominates(touched)
        });
        if let Some(restored) = &mut self.restored {
            // Restored from a snapshot: every key may hold metadata from
            // operations up to `upto` (see `restoring`).
            if restored.swept.as_ref() != Some(stable) {
                let unstable = &mut self.unstable;
                for shard in self.shards.iter_mut().filter(|s| !s.is_empty()) {
                    Arc::make_mut(shard).retain(|key, slot| {
                        let entry = Arc::make_mut(slot);
                        entry.collect(stable);
                        let gone = entry.prune();
                        if gone {
                            unstable.remove(key);
                        }
                        !gone
                    });
                }
                restored.swept = Some(stable.clone());
            }
            if stable.dominates(&restored.upto) {
                self.restored = None;
            }
        }
    }
}

/// Applies a content effect.
fn apply_content(content: &mut Content, effect: &Effect, op: &Operation, ctx: &VersionVector) {
    let tag = op.tag();
    match (content, effect) {
        (Content::String(s), Effect::StrSet { value, .. }) => {
            s.set(value.clone(), tag, ctx);
        }
        (Content::String(s), Effect::StrIncr(d)) => s.incr(d.clone(), tag),
        (Content::Set(s), Effect::SetAdd(members)) => {
            for m in members {
                s.add(m.clone(), tag, ctx);
            }
        }
        (Content::Set(s), Effect::SetRem(members)) => {
            for m in members {
                s.remove(m, ctx);
            }
        }
        (Content::Hash(h), Effect::HashSet(fields)) => {
            for (f, v) in fields {
                h.set(f.clone(), v.clone(), tag, ctx);
            }
        }
        (Content::Hash(h), Effect::HashDel(fields)) => {
            for f in fields {
                h.remove(f, ctx);
            }
        }
        (Content::Hash(h), Effect::HashIncr { field, delta }) => {
            h.incr(field.clone(), delta.clone(), tag, ctx);
        }
        (Content::ZSet(z), Effect::ZAdd(members)) => {
            for (m, score) in members {
                z.add(m.clone(), *score, tag, ctx);
            }
        }
        (Content::ZSet(z), Effect::ZIncr { member, delta }) => {
            z.incr(member.clone(), delta.clone(), tag, ctx);
        }
        (Content::ZSet(z), Effect::ZRem(members)) => {
            for m in members {
                z.remove(m, ctx);
            }
        }
        (Content::List(l), Effect::ListInsert(items)) => {
            for (pos, v) in items {
                l.insert(pos.clone(), v.clone(), tag);
            }
        }
        (Content::List(l), Effect::ListSet { pos, value }) => {
            l.set(pos, value.clone(), tag, ctx);
        }
        (Content::List(l), Effect::ListRemove(positions)) => {
            for p in positions {
                l.remove(p);
            }
        }
        (Content::List(l), Effect::ListTrim(keep)) => {
            l.trim(keep.as_ref().map(|(a, b)| (a, b)), ctx);
        }
        // Effects are routed to the content of their own type.
        _ => {}
    }
}

/// The traces among `per_key` of operations `deps` had not seen: per
/// origin, the suffix above `deps`' entry.
fn concurrent<'a>(
    per_key: impl IntoIterator<Item = &'a (RegionId, OriginTraces)>,
    deps: &'a VersionVector,
) -> impl Iterator<Item = &'a Trace> {
    per_key.into_iter().flat_map(move |(origin, q)| {
        let seen = deps.get(*origin);
        let first = q.partition_point(|t| t.tag.dot.seq <= seen);
        q[first..].iter()
    })
}
