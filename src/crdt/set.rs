//! Sets: add-wins OR-Set.

use bytes::Bytes;
use indexmap::IndexMap;

use super::codec::{self, DecodeError, Reader, MIN_BYTES, MIN_TAG};
use super::detach::detach;
use super::digest::{hash_parts, Accumulator};
use super::id::{Stamp, Tag};
use super::tags::Tags;
use super::vv::VersionVector;

/// A set key's content. Members live in an insertion-ordered map so the
/// server can pick a random member in O(1) (SPOP, SRANDMEMBER).
#[derive(Clone, Debug, Default)]
pub struct SetContent {
    // foldhash rather than SipHash, as for the key space (`KeyMap`).
    members: IndexMap<Bytes, Tags, foldhash::fast::RandomState>,
    acc: Accumulator,
    /// Members whose tags [`Tags::collect`] could still shrink: while none
    /// does, collection passes skip the set instead of visiting every member.
    unsettled: usize,
}

fn member_hash(m: &[u8]) -> u128 {
    hash_parts(&[m])
}

impl SetContent {
    /// Adds a member (SADD, SMOVE's add).
    pub fn add(&mut self, member: Bytes, tag: Tag, ctx: &VersionVector) {
        // Looked up first: `entry` needs the key by value, and cloning a
        // shared `Bytes` to find a member already there costs two atomics.
        let tags = match self.members.get_mut(&member[..]) {
            Some(tags) => tags,
            None => self.members.entry(detach(member.clone())).or_default(),
        };
        if !tags.is_present() {
            self.acc.add(member_hash(&member));
        }
        let was = !tags.settled();
        tags.add(tag, ctx);
        self.unsettled = self.unsettled + usize::from(!tags.settled()) - usize::from(was);
    }

    /// Removes the adds of `member` the remover had seen. Returns whether an
    /// unseen add kept the member (add-wins conflict).
    pub fn remove(&mut self, member: &[u8], ctx: &VersionVector) -> bool {
        let Some(tags) = self.members.get_mut(member) else {
            return false;
        };
        let was = !tags.settled();
        let survived = tags.remove_observed(ctx);
        let now = survived && !tags.settled();
        self.unsettled = self.unsettled + usize::from(now) - usize::from(was);
        if !survived {
            self.members.swap_remove(member);
            self.acc.sub(member_hash(member));
        }
        survived
    }

    /// Observed-remove of every member.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        let acc = &mut self.acc;
        self.members.retain(|m, tags| {
            let keep = tags.remove_observed(ctx);
            if !keep {
                acc.sub(member_hash(m));
            }
            keep
        });
        self.recount();
    }

    fn recount(&mut self) {
        self.unsettled = self.members.values().filter(|t| !t.settled()).count();
    }

    /// Whether [`collect`](Self::collect) would change nothing, at any
    /// frontier (O(1)).
    pub fn settled(&self) -> bool {
        self.unsettled == 0
    }

    /// Whether `member` is present.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains_key(member)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in an arbitrary (region-local) order.
    pub fn members(&self) -> impl Iterator<Item = &Bytes> {
        self.members.keys()
    }

    /// The member at `index` of the local order (for random picks).
    pub fn member_at(&self, index: usize) -> Option<&Bytes> {
        self.members.get_index(index).map(|(m, _)| m)
    }

    /// Greatest stamp of any live add.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.members.values().filter_map(Tags::max_stamp).max()
    }

    /// Drops causally stable metadata.
    pub fn collect(&mut self, stable: &VersionVector) {
        if self.unsettled > 0 {
            for tags in self.members.values_mut() {
                tags.collect(stable);
            }
            self.recount();
        }
    }

    /// Metadata items held (one per live tag).
    pub fn metadata_len(&self) -> usize {
        self.members.values().map(Tags::len).sum()
    }

    /// Order-independent hash of the members.
    pub fn digest(&self) -> u128 {
        self.acc.0
    }

    /// Appends the snapshot encoding: member count, then each member and its
    /// tags, in the local order (kept, so random picks stay the same).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.members.len() as u64);
        for (m, tags) in &self.members {
            codec::put_bytes(out, m);
            tags.encode(out);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote; the digest is recomputed.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("member count", MIN_BYTES + 1 + MIN_TAG)?;
        let mut c = SetContent {
            members: IndexMap::with_capacity_and_hasher(codec::prealloc(n), Default::default()),
            acc: Accumulator::default(),
            unsettled: 0,
        };
        for _ in 0..n {
            let offset = r.pos();
            let m = r.owned("member")?;
            let tags = Tags::decode(r)?;
            c.acc.add(member_hash(&m));
            c.unsettled += usize::from(!tags.settled());
            if c.members.insert(m, tags).is_some() {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "duplicate set member",
                });
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent adds leave a member with two tags until both are stable;
    /// the set knows it without visiting its members.
    #[test]
    fn counts_members_with_collectable_tags() {
        let mut s = SetContent::default();
        let none = VersionVector::new();
        for i in 0..10_000u64 {
            s.add(Bytes::from(format!("m{i}")), Tag::test(1, i + 1), &none);
        }
        assert!(s.settled(), "one writer leaves one tag per member");
        s.add(Bytes::from("m1"), Tag::test(2, 1), &none);
        s.add(
            Bytes::from("m2"),
            Tag::test(2, 2),
            &VersionVector::upto(&[(2, 1)]),
        );
        assert!(!s.settled());
        assert_eq!(s.unsettled, 2);
        // A remove that saw one of m2's tags leaves it one.
        assert!(s.remove(b"m2", &VersionVector::upto(&[(1, 3)])));
        assert_eq!(s.unsettled, 1);
        let before = s.metadata_len();
        s.collect(&VersionVector::upto(&[(1, 10_000), (2, 1)]));
        assert!(s.settled());
        assert_eq!(s.metadata_len(), before - 1);
        assert_eq!(s.metadata_len(), s.len());
    }
}
