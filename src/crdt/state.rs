//! The materialized CRDT state of a region: keys, version vector, digest.

use bytes::Bytes;
use std::collections::HashMap;

use super::conflict::{Conflict, ConflictKind};
use super::digest::Accumulator;
use super::entry::{Content, Entry};
use super::hlc::Hlc;
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
    /// Applied; the races it resolved (usually none).
    Done(Vec<Conflict>),
}

/// Keys to their CRDT entries, the version vector of applied operations and
/// an incrementally maintained digest. Pure: no I/O, no clock.
#[derive(Clone, Debug, Default)]
pub struct State {
    keys: HashMap<Bytes, Entry>,
    vv: VersionVector,
    digest: Accumulator,
    max_hlc: Hlc,
    visible_keys: usize,
    /// Keys holding metadata that may become collectable, with the
    /// operations that touched them since they were last fully collected.
    unstable: HashMap<Bytes, VersionVector>,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
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
        self.keys.get(key)
    }

    /// The content a client reads at `now_ms` (`None`: no such key or expired).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Content> {
        self.keys
            .get(key)
            .filter(|e| e.is_live(now_ms))
            .and_then(Entry::visible)
    }

    /// All entries (including invisible ones), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.keys.iter()
    }

    /// Total metadata items held: what garbage collection keeps bounded.
    pub fn metadata_len(&self) -> usize {
        self.keys.values().map(Entry::metadata_len).sum()
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
        let mut conflicts = Vec::new();
        match &op.body {
            Body::Key(w) => self.apply_key(op, w, &mut conflicts),
            Body::FlushAll => self.flush_observed(op),
        }
        self.vv.set(op.origin, op.seq);
        self.max_hlc = self.max_hlc.max(op.hlc);
        Ok(Applied::Done(conflicts))
    }

    fn flush_observed(&mut self, op: &Operation) {
        let keys: Vec<Bytes> = self.keys.keys().cloned().collect();
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
        let entry = self.keys.entry(key.clone()).or_default();
        let was_visible = entry.visible().is_some();
        let old_hash = entry.hash;
        f(entry, &op.deps, op);
        let gone = entry.prune();
        let now_visible = entry.visible().is_some();
        let new_hash = if gone { 0 } else { entry.digest(key) };
        entry.hash = new_hash;
        self.digest.sub(old_hash);
        self.digest.add(new_hash);
        self.visible_keys = self.visible_keys + usize::from(now_visible) - usize::from(was_visible);
        if gone {
            self.keys.remove(key);
            self.unstable.remove(key);
        } else {
            self.unstable
                .entry(key.clone())
                .or_default()
                .raise(op.origin, op.seq);
        }
    }

    fn apply_key(&mut self, op: &Operation, w: &KeyWrite, conflicts: &mut Vec<Conflict>) {
        let key = &w.key;
        let mut found: Vec<ConflictKind> = Vec::new();
        self.update_entry(key, op, |entry, ctx, op| {
            let tag = op.tag();
            let kind = w.effect.key_type();
            if w.fresh {
                entry.remove_observed_except(None, ctx);
                entry.expiry_mut().remove_observed(ctx);
            } else if kind.is_some() {
                // A write of one type drops the other types its region saw
                // (a type conflict's hidden loser). EXPIRE and PERSIST write
                // no content and must leave it alone.
                entry.remove_observed_except(kind, ctx);
            }
            let raced = match (&w.effect, kind) {
                (Effect::Del, _) => {
                    entry.remove_observed_except(None, ctx);
                    entry.expiry_mut().remove_observed(ctx);
                    false
                }
                (Effect::Expire(at), _) => entry.expiry_mut().write(Some(*at), tag, ctx),
                (Effect::Persist, _) => entry.expiry_mut().write(None, tag, ctx),
                (effect, Some(t)) => {
                    if let Effect::StrSet { ttl, .. } = effect {
                        // SET overwrites whatever its region saw, of any type.
                        entry.remove_observed_except(None, ctx);
                        let exp = entry.expiry_mut();
                        match ttl {
                            TtlChange::Keep => {}
                            TtlChange::Persist => {
                                if exp.write(None, tag, ctx) {
                                    found.push(ConflictKind::Expiry);
                                }
                            }
                            TtlChange::ExpireAt(at) => {
                                if exp.write(Some(*at), tag, ctx) {
                                    found.push(ConflictKind::Expiry);
                                }
                            }
                        }
                    }
                    apply_content(entry.content_mut(t), effect, op, ctx, &mut found)
                }
                (_, None) => false,
            };
            if raced {
                found.push(match &w.effect {
                    Effect::Expire(_) | Effect::Persist => ConflictKind::Expiry,
                    _ => ConflictKind::Lww,
                });
            }
            entry.prune();
            if entry.type_count() > 1 && kind.is_some() {
                if let Some(winner) = entry.visible().map(Content::key_type) {
                    for loser in entry.types().filter(|t| *t != winner) {
                        found.push(ConflictKind::Type { winner, loser });
                    }
                }
            }
        });
        conflicts.extend(found.into_iter().map(|kind| Conflict {
            key: key.clone(),
            kind,
        }));
    }

    /// Drops metadata every region has seen (`stable`, from
    /// [`Stability`](super::stability::Stability)). What clients read, and the
    /// digest, do not change.
    pub fn collect(&mut self, stable: &VersionVector) {
        let keys = &mut self.keys;
        self.unstable.retain(|key, touched| {
            if let Some(entry) = keys.get_mut(key) {
                entry.collect(stable);
                if entry.prune() {
                    keys.remove(key);
                    return false;
                }
            }
            !stable.dominates(touched)
        });
    }
}

/// Applies a content effect; returns whether an LWW register raced.
fn apply_content(
    content: &mut Content,
    effect: &Effect,
    op: &Operation,
    ctx: &VersionVector,
    found: &mut Vec<ConflictKind>,
) -> bool {
    let tag = op.tag();
    match (content, effect) {
        (Content::String(s), Effect::StrSet { value, .. }) => {
            let raced = s.set(value.clone(), tag, ctx);
            if s.get().1 {
                found.push(ConflictKind::IncrementsDropped);
            }
            raced
        }
        (Content::String(s), Effect::StrIncr(d)) => {
            s.incr(d.clone(), tag);
            if s.get().1 {
                found.push(ConflictKind::IncrementsDropped);
            }
            false
        }
        (Content::Set(s), Effect::SetAdd(members)) => {
            for m in members {
                s.add(m.clone(), tag, ctx);
            }
            false
        }
        (Content::Set(s), Effect::SetRem(members)) => {
            for m in members {
                if s.remove(m, ctx) {
                    found.push(ConflictKind::AddWins);
                }
            }
            false
        }
        (Content::Hash(h), Effect::HashSet(fields)) => {
            let mut raced = false;
            for (f, v) in fields {
                raced |= h.set(f.clone(), v.clone(), tag, ctx);
            }
            raced
        }
        (Content::Hash(h), Effect::HashDel(fields)) => {
            for f in fields {
                if h.remove(f, ctx) {
                    found.push(ConflictKind::AddWins);
                }
            }
            false
        }
        (Content::Hash(h), Effect::HashIncr { field, delta }) => {
            h.incr(field.clone(), delta.clone(), tag, ctx);
            if h.get(field).is_some_and(|(_, dropped)| dropped) {
                found.push(ConflictKind::IncrementsDropped);
            }
            false
        }
        (Content::ZSet(z), Effect::ZAdd(members)) => {
            let mut raced = false;
            for (m, score) in members {
                raced |= z.add(m.clone(), *score, tag, ctx);
            }
            raced
        }
        (Content::ZSet(z), Effect::ZIncr { member, delta }) => {
            z.incr(member.clone(), delta.clone(), tag, ctx);
            false
        }
        (Content::ZSet(z), Effect::ZRem(members)) => {
            for m in members {
                if z.remove(m, ctx) {
                    found.push(ConflictKind::AddWins);
                }
            }
            false
        }
        (Content::List(l), Effect::ListInsert(items)) => {
            for (pos, v) in items {
                l.insert(pos.clone(), v.clone(), tag);
            }
            false
        }
        (Content::List(l), Effect::ListSet { pos, value }) => l.set(pos, value.clone(), tag, ctx),
        (Content::List(l), Effect::ListRemove(positions)) => {
            for p in positions {
                l.remove(p);
            }
            false
        }
        (Content::List(l), Effect::ListTrim(keep)) => {
            l.trim(keep.as_ref().map(|(a, b)| (a, b)), ctx);
            false
        }
        // Effects are routed to the content of their own type.
        _ => false,
    }
}
