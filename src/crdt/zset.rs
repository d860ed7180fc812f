//! Sorted sets: add-wins membership, score = LWW base (ZADD) plus the
//! increments (ZINCRBY) that base had not seen.

use bytes::Bytes;
use indexmap::IndexMap;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::codec::{self, DecodeError, Reader, MIN_BYTES, MIN_TAG};
use super::counter::Counter;
use super::detach::detach;
use super::digest::{hash_parts, Accumulator};
use super::id::{Stamp, Tag};
use super::number::{Decimal, Delta};
use super::tags::Tags;
use super::vv::VersionVector;

/// A score with the total order Redis sorts by (`-0` is `0`).
#[derive(Clone, Copy, Debug)]
pub struct Score(pub f64);

impl Score {
    fn new(v: f64) -> Self {
        Score(if v == 0.0 { 0.0 } else { v })
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Clone, Debug, Default)]
struct Member {
    tags: Tags,
    score: Counter<f64>,
    shown: f64,
}

impl Member {
    /// Whether collecting could still shrink its metadata.
    fn unsettled(&self) -> bool {
        !self.tags.settled() || !self.score.settled()
    }
}

/// The score a member shows: its base (0 without one) plus unseen
/// increments, summed exactly and rounded once.
fn visible_score(c: &Counter<f64>) -> f64 {
    let base = c.winner().map_or(0.0, |b| b.value);
    match c.unseen() {
        None => base,
        Some(_) if base.is_infinite() => base,
        Some(sum) => {
            let b = Decimal::from_f64(base).unwrap_or_default();
            b.add(&sum.total()).to_f64()
        }
    }
}

fn member_hash(m: &[u8], score: f64) -> u128 {
    hash_parts(&[m, &Score::new(score).0.to_bits().to_le_bytes()])
}

/// A sorted-set key's content, with an index by (score, member) for ranges.
#[derive(Clone, Debug, Default)]
pub struct ZSetContent {
    // foldhash rather than SipHash, as for the key space (`KeyMap`).
    members: IndexMap<Bytes, Member, foldhash::fast::RandomState>,
    by_score: BTreeSet<(Score, Bytes)>,
    acc: Accumulator,
    /// Members that collecting could still shrink: while none is,
    /// collection passes skip the sorted set instead of visiting every member.
    unsettled: usize,
}

impl ZSetContent {
    fn update<R>(
        &mut self,
        name: &Bytes,
        create: bool,
        f: impl FnOnce(&mut Member) -> R,
    ) -> Option<R> {
        if !create && !self.members.contains_key(name) {
            return None;
        }
        // The score index shares the map's (detached) copy of the name.
        let i = match self.members.get_index_of(&name[..]) {
            Some(i) => i,
            None => {
                self.members
                    .insert_full(detach(name.clone()), Member::default())
                    .0
            }
        };
        let (name, m) = self.members.get_index_mut(i)?;
        let name = name.clone();
        let was_present = m.tags.is_present();
        if was_present {
            self.acc.sub(member_hash(&name, m.shown));
            self.by_score.remove(&(Score::new(m.shown), name.clone()));
        }
        let was = m.unsettled();
        let r = f(m);
        let present = m.tags.is_present();
        let now = present && m.unsettled();
        if present {
            m.shown = visible_score(&m.score);
            self.acc.add(member_hash(&name, m.shown));
            self.by_score.insert((Score::new(m.shown), name.clone()));
        } else {
            self.members.swap_remove(&name);
        }
        self.unsettled = self.unsettled + usize::from(now) - usize::from(was);
        Some(r)
    }

    /// ZADD of one member: sets the score by LWW. Returns whether it raced.
    pub fn add(&mut self, member: Bytes, score: f64, tag: Tag, ctx: &VersionVector) -> bool {
        self.update(&member, true, |m| {
            m.tags.add(tag, ctx);
            m.score.write_base(score, tag, ctx)
        })
        .unwrap_or(false)
    }

    /// ZINCRBY: adds to the score as a counter.
    pub fn incr(&mut self, member: Bytes, delta: Decimal, tag: Tag, ctx: &VersionVector) {
        self.update(&member, true, |m| {
            m.tags.add(tag, ctx);
            m.score.add_inc(Delta::Float(delta), tag);
        });
    }

    /// ZREM of one member. Returns whether an unseen write kept it.
    pub fn remove(&mut self, member: &Bytes, ctx: &VersionVector) -> bool {
        self.update(member, false, |m| {
            m.score.remove_observed(ctx);
            m.tags.remove_observed(ctx)
        })
        .unwrap_or(false)
    }

    /// Observed-remove of every member.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        let names: Vec<Bytes> = self.members.keys().cloned().collect();
        for n in names {
            self.remove(&n, ctx);
        }
    }

    /// The score of a member.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.members.get(member).map(|m| m.shown)
    }

    /// Members in (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + ExactSizeIterator {
        self.by_score.iter().map(|(s, m)| (m, s.0))
    }

    /// 0-based rank of a member in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let m = self.members.get(member)?;
        Some(
            self.by_score
                .range(..(Score::new(m.shown), Bytes::copy_from_slice(member)))
                .count(),
        )
    }

    /// The member at `index` of the local order (for random picks).
    pub fn member_at(&self, index: usize) -> Option<(&Bytes, f64)> {
        self.members.get_index(index).map(|(k, m)| (k, m.shown))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Greatest stamp of any write held.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.members
            .values()
            .filter_map(|m| m.tags.max_stamp().max(m.score.max_stamp()))
            .max()
    }

    /// Drops causally stable metadata (scores do not change).
    pub fn collect(&mut self, stable: &VersionVector) {
        if self.unsettled == 0 {
            return;
        }
        for m in self.members.values_mut() {
            m.tags.collect(stable);
            m.score.collect(stable);
        }
        self.unsettled = self.members.values().filter(|m| m.unsettled()).count();
    }

    /// Whether [`collect`](Self::collect) would change nothing, at any
    /// frontier (O(1)).
    pub fn settled(&self) -> bool {
        self.unsettled == 0
    }

    /// Metadata items held.
    pub fn metadata_len(&self) -> usize {
        self.members
            .values()
            .map(|m| m.tags.len() + m.score.metadata_len())
            .sum()
    }

    /// Order-independent hash of members and scores.
    pub fn digest(&self) -> u128 {
        self.acc.0
    }

    /// Appends the snapshot encoding: member count, then each member's name,
    /// tags and score counter, in the local order. The shown score, the
    /// score index and the digest are derived, so not written.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.members.len() as u64);
        for (name, m) in &self.members {
            codec::put_bytes(out, name);
            m.tags.encode(out);
            m.score.encode(out);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote and rebuilds what is derived.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("member count", MIN_BYTES + 1 + MIN_TAG + 3)?;
        let mut c = ZSetContent {
            members: IndexMap::with_capacity_and_hasher(codec::prealloc(n), Default::default()),
            by_score: BTreeSet::new(),
            acc: Accumulator::default(),
            unsettled: 0,
        };
        for _ in 0..n {
            let offset = r.pos();
            let name = r.owned("member")?;
            let tags = Tags::decode(r)?;
            let score = Counter::decode(r)?;
            let shown = visible_score(&score);
            if c.members.contains_key(&name) {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "duplicate sorted-set member",
                });
            }
            c.acc.add(member_hash(&name, shown));
            c.by_score.insert((Score::new(shown), name.clone()));
            let m = Member { tags, score, shown };
            c.unsettled += usize::from(m.unsettled());
            c.members.insert(name, m);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent ZADDs leave a member with two tags and two scores until
    /// both are stable; the sorted set knows it without visiting members.
    #[test]
    fn counts_members_with_collectable_metadata() {
        let mut z = ZSetContent::default();
        let none = VersionVector::new();
        for i in 0..10_000u64 {
            z.add(
                Bytes::from(format!("m{i}")),
                i as f64,
                Tag::test(1, i + 1),
                &none,
            );
        }
        assert!(z.settled());
        z.add(Bytes::from("m5"), 0.5, Tag::test(2, 1), &none);
        assert!(!z.settled());
        let before = z.metadata_len();
        z.collect(&VersionVector::upto(&[(1, 10_000), (2, 1)]));
        assert!(z.settled());
        assert!(z.metadata_len() < before);
        // Region 1's write has the later HLC (6 against 1): it wins.
        assert_eq!(z.score(b"m5"), Some(5.0));
    }
}
