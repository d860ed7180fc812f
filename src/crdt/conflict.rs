//! Conflicts: races the merge rules resolved, reported for the journal.
//!
//! Reporting never changes the outcome; it is what lets operators see how
//! often regions race and which rule decided.
//!
//! A conflict is a property of a **pair of concurrent operations** on one
//! key: which rule decided between them, which one won and which one lost.
//! It is judged from the two operations alone ([`judge`]), never from the
//! state they met, so it does not depend on delivery order. Every region
//! judges each concurrent pair exactly once, when it applies the second of
//! the two: by then the first one's [`Trace`] is still held, because a trace
//! is dropped only once its operation is causally stable, and nothing
//! concurrent with a stable operation can still arrive.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::detach::detach;
use super::id::{Stamp, Tag};
use super::number::{parse_i64, Decimal};
use super::op::{Effect, KeyType, KeyWrite, Operation, TtlChange};
use super::position::Position;
use super::vv::VersionVector;

/// Which rule resolved a race.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConflictKind {
    /// Two concurrent values for one register (a string, a hash field's
    /// value, a member's score, a list element's LSET): greater LWW stamp kept.
    Lww,
    /// A remove (DEL, FLUSHALL, SREM, HDEL, ZREM) did not cover a concurrent
    /// write, which survived (add-wins). The winner is the write.
    AddWins,
    /// An LSET lost to a concurrent removal of its element (pop, LREM,
    /// LTRIM, DEL, …). The winner is the removal.
    RemoveWins,
    /// A key was written concurrently as two types; `winner` is the type of
    /// the later write of the two.
    Type {
        /// The type of the write greater in LWW order.
        winner: KeyType,
        /// The other write's type.
        loser: KeyType,
    },
    /// Increments not counted on top of a concurrent base that is not a
    /// number. The winner is the base write.
    IncrementsDropped,
    /// Concurrent EXPIRE / PERSIST (a SET without KEEPTTL counts as one)
    /// with different outcomes: PERSIST or the later deadline kept.
    Expiry,
}

impl ConflictKind {
    /// The rule's name in `BRAID.CONFLICTS`, `INFO` and metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            ConflictKind::Lww => "lww",
            ConflictKind::AddWins => "add_wins",
            ConflictKind::RemoveWins => "remove_wins",
            ConflictKind::Type { .. } => "type",
            ConflictKind::IncrementsDropped => "increments_dropped",
            ConflictKind::Expiry => "expiry",
        }
    }
}

/// One resolved race between two concurrent operations on one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Conflict {
    /// The key.
    pub key: Bytes,
    /// The type of the content the race was about (for a type conflict, the
    /// winner's); `None` for a race of two EXPIRE-family commands, which
    /// write no content.
    pub key_type: Option<KeyType>,
    /// The rule that resolved it.
    pub kind: ConflictKind,
    /// The operation kept (origin region and HLC).
    pub winner: Stamp,
    /// The operation overridden or discarded.
    pub loser: Stamp,
}

/// The name of a key type in the journal (`none` when there is none).
pub fn type_name(t: Option<KeyType>) -> &'static str {
    t.map_or("none", KeyType::name)
}

/// What detection remembers of one applied operation until it is causally
/// stable: its identity, its context, and what it touched (values reduced
/// to what the rules need). Never part of the digest or of what clients see.
#[derive(Clone, Debug)]
pub(crate) struct Trace {
    pub(crate) tag: Tag,
    deps: VersionVector,
    fresh: bool,
    touch: Touch,
}

/// What an operation touched.
#[derive(Clone, Debug)]
enum Touch {
    StrSet {
        numeric: bool,
        ttl: TtlChange,
    },
    StrIncr,
    Del,
    Expire(u64),
    Persist,
    SetAdd(Vec<Bytes>),
    SetRem(Vec<Bytes>),
    /// Fields, and whether each value is a number.
    HashSet(Vec<(Bytes, bool)>),
    HashDel(Vec<Bytes>),
    HashIncr(Bytes),
    /// Members, and whether each score is finite (an infinite base ignores
    /// increments).
    ZAdd(Vec<(Bytes, bool)>),
    ZIncr(Bytes),
    ZRem(Vec<Bytes>),
    ListInsert,
    ListSet(Position),
    ListRemove(Vec<Position>),
    ListTrim(Option<(Position, Position)>),
    Flush,
}

/// An LWW register inside a key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reg<'a> {
    Str,
    Field(&'a [u8]),
    Score(&'a [u8]),
    Elem(&'a Position),
}

impl Reg<'_> {
    fn key_type(&self) -> KeyType {
        match self {
            Reg::Str => KeyType::String,
            Reg::Field(_) => KeyType::Hash,
            Reg::Score(_) => KeyType::ZSet,
            Reg::Elem(_) => KeyType::List,
        }
    }
}

/// Whether a string base counts as a number for increments (as
/// [`add_to_base`](super::number::add_to_base) decides).
fn numeric(v: &[u8]) -> bool {
    parse_i64(v).is_some() || Decimal::parse(v).is_some()
}

impl Trace {
    /// The same trace holding its own copies of the names it touched
    /// (see [`detach`]): a trace is kept until its operation is stable.
    pub(crate) fn detached(self) -> Self {
        let all = |names: Vec<Bytes>| names.into_iter().map(detach).collect();
        let flagged =
            |names: Vec<(Bytes, bool)>| names.into_iter().map(|(n, f)| (detach(n), f)).collect();
        let touch = match self.touch {
            Touch::SetAdd(m) => Touch::SetAdd(all(m)),
            Touch::SetRem(m) => Touch::SetRem(all(m)),
            Touch::HashSet(f) => Touch::HashSet(flagged(f)),
            Touch::HashDel(f) => Touch::HashDel(all(f)),
            Touch::HashIncr(f) => Touch::HashIncr(detach(f)),
            Touch::ZAdd(m) => Touch::ZAdd(flagged(m)),
            Touch::ZIncr(m) => Touch::ZIncr(detach(m)),
            Touch::ZRem(m) => Touch::ZRem(all(m)),
            other => other,
        };
        Trace { touch, ..self }
    }

    /// The trace of a key write.
    pub(crate) fn of_write(op: &Operation, w: &KeyWrite) -> Self {
        let touch = match &w.effect {
            Effect::StrSet { value, ttl } => Touch::StrSet {
                numeric: numeric(value),
                ttl: *ttl,
            },
            Effect::StrIncr(_) => Touch::StrIncr,
            Effect::Del => Touch::Del,
            Effect::Expire(at) => Touch::Expire(*at),
            Effect::Persist => Touch::Persist,
            Effect::SetAdd(m) => Touch::SetAdd(m.clone()),
            Effect::SetRem(m) => Touch::SetRem(m.clone()),
            Effect::HashSet(f) => {
                Touch::HashSet(f.iter().map(|(k, v)| (k.clone(), numeric(v))).collect())
            }
            Effect::HashDel(f) => Touch::HashDel(f.clone()),
            Effect::HashIncr { field, .. } => Touch::HashIncr(field.clone()),
            Effect::ZAdd(m) => {
                Touch::ZAdd(m.iter().map(|(k, s)| (k.clone(), s.is_finite())).collect())
            }
            Effect::ZIncr { member, .. } => Touch::ZIncr(member.clone()),
            Effect::ZRem(m) => Touch::ZRem(m.clone()),
            Effect::ListInsert(_) => Touch::ListInsert,
            Effect::ListSet { pos, .. } => Touch::ListSet(pos.clone()),
            Effect::ListRemove(p) => Touch::ListRemove(p.clone()),
            Effect::ListTrim(keep) => Touch::ListTrim(keep.clone()),
        };
        Trace {
            tag: op.tag(),
            deps: op.deps.clone(),
            fresh: w.fresh,
            touch,
        }
    }

    /// The trace of a FLUSHALL.
    pub(crate) fn of_flush(op: &Operation) -> Self {
        Trace {
            tag: op.tag(),
            deps: op.deps.clone(),
            fresh: false,
            touch: Touch::Flush,
        }
    }

    fn stamp(&self) -> Stamp {
        self.tag.stamp()
    }

    /// The type of content it writes or removes (`None`: DEL, EXPIRE,
    /// PERSIST, FLUSHALL).
    fn key_type(&self) -> Option<KeyType> {
        match &self.touch {
            Touch::StrSet { .. } | Touch::StrIncr => Some(KeyType::String),
            Touch::Del | Touch::Expire(_) | Touch::Persist | Touch::Flush => None,
            Touch::SetAdd(_) | Touch::SetRem(_) => Some(KeyType::Set),
            Touch::HashSet(_) | Touch::HashDel(_) | Touch::HashIncr(_) => Some(KeyType::Hash),
            Touch::ZAdd(_) | Touch::ZIncr(_) | Touch::ZRem(_) => Some(KeyType::ZSet),
            Touch::ListInsert | Touch::ListSet(_) | Touch::ListRemove(_) | Touch::ListTrim(_) => {
                Some(KeyType::List)
            }
        }
    }

    /// Whether it writes content (what survives a concurrent delete and
    /// what can race a write of another type).
    fn writes_content(&self) -> bool {
        matches!(
            self.touch,
            Touch::StrSet { .. }
                | Touch::StrIncr
                | Touch::SetAdd(_)
                | Touch::HashSet(_)
                | Touch::HashIncr(_)
                | Touch::ZAdd(_)
                | Touch::ZIncr(_)
                | Touch::ListInsert
                | Touch::ListSet(_)
        )
    }

    /// The LWW registers it writes.
    fn registers(&self) -> SmallVec<[Reg<'_>; 2]> {
        match &self.touch {
            Touch::StrSet { .. } => SmallVec::from_elem(Reg::Str, 1),
            Touch::HashSet(f) => f.iter().map(|(k, _)| Reg::Field(k)).collect(),
            Touch::ZAdd(m) => m.iter().map(|(k, _)| Reg::Score(k)).collect(),
            Touch::ListSet(p) => SmallVec::from_elem(Reg::Elem(p), 1),
            _ => SmallVec::new(),
        }
    }

    /// The registers it gives a base that increments cannot be added to.
    fn non_numeric_bases(&self) -> SmallVec<[Reg<'_>; 2]> {
        match &self.touch {
            Touch::StrSet { numeric: false, .. } => SmallVec::from_elem(Reg::Str, 1),
            Touch::HashSet(f) => f
                .iter()
                .filter(|(_, n)| !n)
                .map(|(k, _)| Reg::Field(k))
                .collect(),
            Touch::ZAdd(m) => m
                .iter()
                .filter(|(_, finite)| !finite)
                .map(|(k, _)| Reg::Score(k))
                .collect(),
            _ => SmallVec::new(),
        }
    }

    /// The register it increments.
    fn increments(&self) -> Option<Reg<'_>> {
        match &self.touch {
            Touch::StrIncr => Some(Reg::Str),
            Touch::HashIncr(f) => Some(Reg::Field(f)),
            Touch::ZIncr(m) => Some(Reg::Score(m)),
            _ => None,
        }
    }

    /// The members or fields it adds (with the type they belong to).
    fn adds(&self) -> SmallVec<[(KeyType, &[u8]); 2]> {
        match &self.touch {
            Touch::SetAdd(m) => m.iter().map(|k| (KeyType::Set, &k[..])).collect(),
            Touch::HashSet(f) => f.iter().map(|(k, _)| (KeyType::Hash, &k[..])).collect(),
            Touch::HashIncr(f) => SmallVec::from_elem((KeyType::Hash, &f[..]), 1),
            Touch::ZAdd(m) => m.iter().map(|(k, _)| (KeyType::ZSet, &k[..])).collect(),
            Touch::ZIncr(m) => SmallVec::from_elem((KeyType::ZSet, &m[..]), 1),
            _ => SmallVec::new(),
        }
    }

    /// Whether it removes the member or field `item` of type `t`.
    fn removes_item(&self, t: KeyType, item: &[u8]) -> bool {
        let names = match (&self.touch, t) {
            (Touch::SetRem(m), KeyType::Set)
            | (Touch::HashDel(m), KeyType::Hash)
            | (Touch::ZRem(m), KeyType::ZSet) => m,
            _ => return false,
        };
        names.iter().any(|n| n[..] == *item)
    }

    /// Whether it removes the whole key as its region saw it.
    fn removes_key(&self) -> bool {
        matches!(self.touch, Touch::Del | Touch::Flush)
    }

    /// Whether it removes the list element at `pos`: by name (pops, LREM),
    /// or because its region had seen the element and it removes observed
    /// list content (DEL, FLUSHALL, LTRIM outside its range, a write of
    /// another type or one that starts a new key).
    fn removes_element(&self, pos: &Position) -> bool {
        if let Touch::ListRemove(ps) = &self.touch {
            return ps.contains(pos);
        }
        if !self.deps.contains(pos.dot()) {
            return false;
        }
        match &self.touch {
            Touch::ListTrim(keep) => !keep.as_ref().is_some_and(|(lo, hi)| pos >= lo && pos <= hi),
            Touch::Del | Touch::Flush => true,
            _ if self.fresh => true,
            _ => self.key_type().is_some_and(|t| t != KeyType::List),
        }
    }

    /// What it does to the expiry: `Some(None)` PERSIST, `Some(Some(at))` a
    /// deadline, `None` nothing.
    fn expiry(&self) -> Option<Option<u64>> {
        match &self.touch {
            Touch::Expire(at)
            | Touch::StrSet {
                ttl: TtlChange::ExpireAt(at),
                ..
            } => Some(Some(*at)),
            Touch::Persist
            | Touch::StrSet {
                ttl: TtlChange::Persist,
                ..
            } => Some(None),
            _ => None,
        }
    }
}

/// A judged race, without its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) key_type: Option<KeyType>,
    pub(crate) kind: ConflictKind,
    pub(crate) winner: Stamp,
    pub(crate) loser: Stamp,
}

impl Verdict {
    /// The conflict on `key`.
    pub(crate) fn on(self, key: &Bytes) -> Conflict {
        Conflict {
            key: key.clone(),
            key_type: self.key_type,
            kind: self.kind,
            winner: self.winner,
            loser: self.loser,
        }
    }
}

/// The races between two concurrent operations on one key (at most one per
/// rule), from the two traces alone: the same whichever is passed first.
pub(crate) fn judge(a: &Trace, b: &Trace) -> SmallVec<[Verdict; 1]> {
    // A fixed order of the pair makes the output order fixed too.
    let (a, b) = if a.tag.dot <= b.tag.dot {
        (a, b)
    } else {
        (b, a)
    };
    let mut out: SmallVec<[Verdict; 1]> = SmallVec::new();
    let later = |x: &Trace, y: &Trace| x.stamp() > y.stamp();
    let verdict = |key_type, kind, winner: &Trace, loser: &Trace| Verdict {
        key_type,
        kind,
        winner: winner.stamp(),
        loser: loser.stamp(),
    };

    // LWW: both write one register.
    let regs_b = b.registers();
    if let Some(r) = a.registers().into_iter().find(|r| regs_b.contains(r)) {
        let (w, l) = if later(a, b) { (a, b) } else { (b, a) };
        out.push(verdict(Some(r.key_type()), ConflictKind::Lww, w, l));
    }

    for (x, y) in [(a, b), (b, a)] {
        // Increments dropped: x's base is no number, y increments it.
        if let Some(inc) = y.increments() {
            if x.non_numeric_bases().contains(&inc) {
                let t = Some(inc.key_type());
                out.push(verdict(t, ConflictKind::IncrementsDropped, x, y));
            }
        }
        // Add-wins: x removes what y writes.
        let survives = match &y.touch {
            Touch::ListSet(_) => false,
            _ if x.removes_key() => y.writes_content(),
            _ => y.adds().iter().any(|(t, i)| x.removes_item(*t, i)),
        };
        if survives {
            out.push(verdict(y.key_type(), ConflictKind::AddWins, y, x));
        }
        // Remove-wins: x removes the element y sets.
        if let Touch::ListSet(pos) = &y.touch {
            if x.removes_element(pos) {
                out.push(verdict(Some(KeyType::List), ConflictKind::RemoveWins, x, y));
            }
        }
    }

    // Type: content of two types (an LSET that lost its element wrote none).
    let lost_lset = out.iter().any(|v| v.kind == ConflictKind::RemoveWins);
    if let (Some(ta), Some(tb)) = (a.key_type(), b.key_type()) {
        if ta != tb && a.writes_content() && b.writes_content() && !lost_lset {
            let ((w, tw), (l, tl)) = if later(a, b) {
                ((a, ta), (b, tb))
            } else {
                ((b, tb), (a, ta))
            };
            let kind = ConflictKind::Type {
                winner: tw,
                loser: tl,
            };
            out.push(verdict(Some(tw), kind, w, l));
        }
    }

    // Expiry: two different outcomes; PERSIST, then the later deadline wins.
    if let (Some(ea), Some(eb)) = (a.expiry(), b.expiry()) {
        if ea != eb {
            let a_wins = match (ea, eb) {
                (None, _) => true,
                (_, None) => false,
                (Some(x), Some(y)) => x > y,
            };
            let (w, l) = if a_wins { (a, b) } else { (b, a) };
            let t = a.key_type().or(b.key_type());
            out.push(verdict(t, ConflictKind::Expiry, w, l));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Applied, Intent, RegionId, Replica};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn set(v: &str) -> Intent {
        Intent::Set {
            value: b(v),
            ttl: TtlChange::Persist,
        }
    }

    /// Two regions that share `setup` (written by us), then write `us` and
    /// `eu` concurrently (eu at a later wall time); returns what each
    /// reported on receiving the other's writes, checked to be the same.
    fn race(
        setup: &[(&str, Intent)],
        us: &[(&str, Intent)],
        eu: &[(&str, Intent)],
    ) -> Vec<Conflict> {
        let mut r = [Replica::new(RegionId(1)), Replica::new(RegionId(2))];
        for (k, i) in setup {
            if let Ok(Some(op)) = r[0].write(b(k), i.clone(), 1_000) {
                r[1].receive(&op, 1_000).expect("ready");
            }
        }
        let mut ops: [Vec<Operation>; 2] = Default::default();
        for (side, writes, wall) in [(0, us, 2_000), (1, eu, 3_000)] {
            for (k, i) in writes {
                ops[side].extend(r[side].write(b(k), i.clone(), wall).expect("writes"));
            }
        }
        let mut found: [Vec<Conflict>; 2] = Default::default();
        for to in 0..2 {
            for op in &ops[1 - to] {
                if let Ok((Applied::Done(c), _)) = r[to].receive(op, 4_000) {
                    found[to].extend(c);
                }
            }
            found[to].sort();
        }
        assert_eq!(found[0], found[1], "us and eu disagree");
        found[0].clone()
    }

    fn rules(found: &[Conflict]) -> Vec<(&'static str, u16, u16)> {
        found
            .iter()
            .map(|c| (c.kind.rule(), c.winner.region.0, c.loser.region.0))
            .collect()
    }

    #[test]
    fn lww_keeps_the_greater_stamp() {
        let found = race(&[], &[("k", set("a"))], &[("k", set("b"))]);
        assert_eq!(rules(&found), [("lww", 2, 1)]);
        assert_eq!(found[0].key_type, Some(KeyType::String));
    }

    #[test]
    fn a_write_wins_over_a_concurrent_remove() {
        let setup = [("s", Intent::SAdd(vec![b("m")])), ("k", set("v"))];
        let found = race(
            &setup,
            &[("s", Intent::SAdd(vec![b("m")])), ("k", set("w"))],
            &[("s", Intent::SRem(vec![b("m")])), ("k", Intent::Del)],
        );
        assert_eq!(rules(&found), [("add_wins", 1, 2), ("add_wins", 1, 2)]);
    }

    #[test]
    fn a_pop_wins_over_a_concurrent_lset() {
        let setup = [("l", Intent::RPush(vec![b("a"), b("b")]))];
        let found = race(
            &setup,
            &[("l", Intent::LPop(1))],
            &[(
                "l",
                Intent::LSet {
                    index: 0,
                    value: b("x"),
                },
            )],
        );
        assert_eq!(rules(&found), [("remove_wins", 1, 2)]);
    }

    #[test]
    fn two_types_give_a_type_conflict() {
        let found = race(
            &[],
            &[("k", Intent::SAdd(vec![b("m")]))],
            &[("k", set("v"))],
        );
        assert_eq!(rules(&found), [("type", 2, 1)]);
        assert_eq!(
            found[0].kind,
            ConflictKind::Type {
                winner: KeyType::String,
                loser: KeyType::Set
            }
        );
    }

    #[test]
    fn a_non_numeric_base_drops_concurrent_increments() {
        let found = race(
            &[("n", set("1"))],
            &[("n", set("abc"))],
            &[("n", Intent::IncrBy(5))],
        );
        assert_eq!(rules(&found), [("increments_dropped", 1, 2)]);
        // A numeric base adds them: no conflict.
        assert!(race(
            &[("n", set("1"))],
            &[("n", set("7"))],
            &[("n", Intent::IncrBy(5))]
        )
        .is_empty());
    }

    #[test]
    fn persist_and_the_later_deadline_win_expiry_races() {
        let with_ttl = Intent::Set {
            value: b("v"),
            ttl: TtlChange::ExpireAt(60_000),
        };
        let setup = [("k", set("v")), ("p", with_ttl)];
        let found = race(
            &setup,
            &[("k", Intent::ExpireAt(90_000)), ("p", Intent::Persist)],
            &[
                ("k", Intent::ExpireAt(50_000)),
                ("p", Intent::ExpireAt(90_000)),
            ],
        );
        assert_eq!(rules(&found), [("expiry", 1, 2), ("expiry", 1, 2)]);
        assert!(found.iter().all(|c| c.key_type.is_none()));
        // The same deadline on both sides discards nothing.
        let same = race(
            &setup,
            &[("k", Intent::ExpireAt(90_000))],
            &[("k", Intent::ExpireAt(90_000))],
        );
        assert!(same.is_empty());
    }

    #[test]
    fn traces_beyond_the_limit_are_not_kept() {
        let mut r = Replica::new(RegionId(1));
        r.state.set_trace_limit(2);
        for i in 0..5 {
            r.write(b("k"), Intent::IncrBy(1), 1_000 + i).expect("incr");
        }
        assert_eq!(r.state.trace_len(), 2);
        assert_eq!(r.state.untraced_ops(), 3);
        r.state.collect(&r.state.version_vector().clone());
        assert_eq!(r.state.trace_len(), 0);
    }

    #[test]
    fn pushes_and_causally_ordered_writes_do_not_conflict() {
        let setup = [("l", Intent::RPush(vec![b("a")]))];
        assert!(race(
            &setup,
            &[("l", Intent::RPush(vec![b("u")]))],
            &[("l", Intent::LPush(vec![b("e")]))]
        )
        .is_empty());
        assert!(race(&[], &[("a", set("1"))], &[("b", set("2"))]).is_empty());
    }
}
