//! Lists: a sequence CRDT over dense positions (see [`Position`]).
//!
//! Pushes and inserts carry the positions their origin chose, so applying
//! them needs nothing but those positions. Pops and LREM remove the elements
//! they named; LTRIM removes the elements it observed outside the kept range,
//! so concurrent pushes survive both. LSET replaces an element's value by LWW;
//! an element removed concurrently stays removed.

use bytes::Bytes;
use imbl::OrdMap;

use super::codec::{self, DecodeError, Reader, MIN_BYTES, MIN_POSITION, MIN_TAG};
use super::detach::detach;
use super::digest::{hash_parts, Accumulator};
use super::id::{Stamp, Tag};
use super::position::Position;
use super::vv::VersionVector;

#[derive(Clone, Debug)]
struct Element {
    value: Bytes,
    /// The insert or LSET that wrote `value`.
    written: Tag,
}

fn element_hash(pos: &Position, value: &[u8]) -> u128 {
    hash_parts(&[&pos.digest_bytes()[..], value])
}

/// A list key's content.
///
/// The elements are in a persistent B-tree: cloning it (what the first write
/// after a snapshot froze the state does) shares every node, and a write
/// then copies only the nodes on its path. With a plain `BTreeMap`, that
/// clone copied the whole list under the keyspace lock: half a second for
/// a few million elements, every client stalled.
#[derive(Clone, Debug, Default)]
pub struct ListContent {
    elements: OrdMap<Position, Element>,
    acc: Accumulator,
}

impl ListContent {
    /// Inserts an element at its position (a duplicate delivery is ignored).
    pub fn insert(&mut self, pos: Position, value: Bytes, tag: Tag) {
        let hash = element_hash(&pos, &value);
        let element = Element {
            value: detach(value),
            written: tag,
        };
        // One descent instead of a lookup then an insert; the rare
        // duplicate puts the element it displaced back.
        match self.elements.insert(pos.clone(), element) {
            None => self.acc.add(hash),
            Some(held) => {
                self.elements.insert(pos, held);
            }
        }
    }

    /// LSET: replaces the value by LWW. Returns whether it raced a concurrent
    /// LSET (the element must exist; a removed element stays removed).
    pub fn set(&mut self, pos: &Position, value: Bytes, tag: Tag, ctx: &VersionVector) -> bool {
        let Some(e) = self.elements.get_mut(pos) else {
            return false;
        };
        let raced = !ctx.contains(e.written.dot);
        if tag.stamp() > e.written.stamp() {
            self.acc.sub(element_hash(pos, &e.value));
            self.acc.add(element_hash(pos, &value));
            e.value = detach(value);
            e.written = tag;
        }
        raced
    }

    /// Removes one element by position (pops, LREM).
    pub fn remove(&mut self, pos: &Position) {
        if let Some(e) = self.elements.remove(pos) {
            self.acc.sub(element_hash(pos, &e.value));
        }
    }

    /// LTRIM: removes the observed elements outside `keep` (all observed
    /// elements when `keep` is `None`).
    pub fn trim(&mut self, keep: Option<(&Position, &Position)>, ctx: &VersionVector) {
        let gone: Vec<Position> = self
            .elements
            .iter()
            .filter(|(pos, _)| {
                let inside = keep.is_some_and(|(lo, hi)| *pos >= lo && *pos <= hi);
                !inside && ctx.contains(pos.dot())
            })
            .map(|(pos, _)| pos.clone())
            .collect();
        for pos in gone {
            self.remove(&pos);
        }
    }

    /// Observed-remove of every element.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        self.trim(None, ctx);
    }

    /// Elements in list order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Position, &Bytes)> {
        self.elements.iter().map(|(p, e)| (p, &e.value))
    }

    /// The element at a 0-based index from the head (O(index)).
    pub fn get(&self, index: usize) -> Option<(&Position, &Bytes)> {
        self.iter().nth(index)
    }

    /// The first element.
    pub fn first(&self) -> Option<&Position> {
        self.elements.keys().next()
    }

    /// The last element.
    pub fn last(&self) -> Option<&Position> {
        self.elements.keys().next_back()
    }

    /// The element after `pos`.
    pub fn next_after(&self, pos: &Position) -> Option<&Position> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.elements
            .range::<_, Position>((Excluded(pos), Unbounded))
            .next()
            .map(|(p, _)| p)
    }

    /// The element before `pos`.
    pub fn prev_before(&self, pos: &Position) -> Option<&Position> {
        self.elements
            .range::<_, Position>(..pos)
            .next_back()
            .map(|(p, _)| p)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Greatest stamp of any write held.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.elements.values().map(|e| e.written.stamp()).max()
    }

    /// Metadata items held: one per element (lists keep no tombstones).
    pub fn metadata_len(&self) -> usize {
        self.elements.len()
    }

    /// Order-independent hash of (position, value) pairs; positions carry
    /// the order.
    pub fn digest(&self) -> u128 {
        self.acc.0
    }

    /// Appends the snapshot encoding: element count, then in list order each
    /// element's write tag (insert or LSET), position and value. Segments of
    /// the position naming the tag's own dot are written short (`OWN`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.elements.len() as u64);
        for (pos, e) in &self.elements {
            codec::put_tag(out, &e.written);
            codec::put_position(out, pos, (e.written.dot.region, e.written.dot.seq));
            codec::put_bytes(out, &e.value);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote; positions must be strictly
    /// increasing. The digest is recomputed.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("element count", MIN_TAG + MIN_POSITION + MIN_BYTES)?;
        let mut acc = Accumulator::default();
        let mut items: Vec<(Position, Element)> = Vec::with_capacity(codec::prealloc(n));
        for _ in 0..n {
            let written = r.tag()?;
            let offset = r.pos();
            let pos = r.position((written.dot.region, written.dot.seq))?;
            if items.last().is_some_and(|(prev, _)| *prev >= pos) {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "list positions not strictly increasing",
                });
            }
            let value = r.owned("element value")?;
            acc.add(element_hash(&pos, &value));
            items.push((pos, Element { value, written }));
        }
        Ok(ListContent {
            elements: items.into_iter().collect(),
            acc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::id::RegionId;

    fn tag(seq: u64) -> Tag {
        Tag::region_1(seq)
    }

    fn values(l: &ListContent) -> Vec<Vec<u8>> {
        l.iter().map(|(_, v)| v.to_vec()).collect()
    }

    /// A second insert at a held position (a duplicate delivery) keeps the
    /// element and the digest as they were, even after an LSET changed it.
    #[test]
    fn a_duplicate_insert_changes_nothing() {
        let mut list = ListContent::default();
        let pos = Position::between(None, None, RegionId(1), 1, 0);
        list.insert(pos.clone(), Bytes::from_static(b"a"), tag(1));
        let mut ctx = VersionVector::new();
        ctx.raise(RegionId(1), 1);
        list.set(&pos, Bytes::from_static(b"b"), tag(2), &ctx);
        let digest = list.digest();
        list.insert(pos.clone(), Bytes::from_static(b"a"), tag(1));
        assert_eq!(values(&list), vec![b"b".to_vec()]);
        assert_eq!(list.digest(), digest);
        let mut fresh = ListContent::default();
        fresh.insert(pos, Bytes::from_static(b"b"), tag(2));
        assert_eq!(
            fresh.digest(),
            digest,
            "the digest holds only what is there"
        );
    }

    /// A copy (what a snapshot keeps) shares the elements instead of
    /// copying them, and writes to either side leave the other as it was.
    #[test]
    fn a_copy_shares_the_elements_and_writes_stay_apart() {
        let mut list = ListContent::default();
        let mut head: Option<Position> = None;
        for seq in 1..=2000 {
            let pos = Position::between(None, head.as_ref(), RegionId(1), seq, 0);
            list.insert(pos.clone(), Bytes::from(seq.to_string()), tag(seq));
            head = Some(pos);
        }
        let frozen = list.clone();
        assert!(frozen.elements.ptr_eq(&list.elements), "the copy shares");
        let (before, digest, mut bytes) = (values(&list), list.digest(), Vec::new());
        frozen.encode(&mut bytes);

        let first = list.first().cloned().expect("first");
        list.remove(&first);
        let pos = Position::between(None, list.first(), RegionId(1), 3000, 0);
        list.insert(pos, Bytes::from_static(b"new"), tag(3000));
        let mut all = VersionVector::new();
        all.raise(RegionId(1), 1000);
        list.trim(None, &all);

        assert_eq!(values(&frozen), before);
        assert_eq!(frozen.digest(), digest);
        let mut again = Vec::new();
        frozen.encode(&mut again);
        assert_eq!(again, bytes, "the frozen copy encodes as before");
        assert_eq!(list.len(), 2000 - 1000);
        assert_eq!(values(&list)[0], b"new");
        assert_ne!(list.digest(), digest);
    }
}
