//! Lists: a sequence CRDT over dense positions (see [`Position`]).
//!
//! Pushes and inserts carry the positions their origin chose, so applying
//! them needs nothing but those positions. Pops and LREM remove the elements
//! they named; LTRIM removes the elements it observed outside the kept range,
//! so concurrent pushes survive both. LSET replaces an element's value by LWW;
//! an element removed concurrently stays removed.

use std::cmp::Ordering;

use bytes::Bytes;
use imbl::Vector;

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
/// The elements are in a persistent vector (an RRB tree), sorted by
/// position. Why persistent: cloning it (what the first write after a
/// snapshot froze the state does) shares every node, and a write then
/// copies only the nodes on its path; a plain collection was copied whole
/// under the keyspace lock, half a second for a few million elements. Why a
/// vector and not an ordered map: pushes and pops, nearly every list write,
/// work at the ends, where the vector keeps spare room (a B-tree shifted
/// half a leaf of elements on every push at the head), and an index is
/// reached in O(log n) instead of by walking from the head.
#[derive(Clone, Debug, Default)]
pub struct ListContent {
    elements: Vector<(Position, Element)>,
    acc: Accumulator,
}

impl ListContent {
    /// Where `pos` is (`Ok`) or would go (`Err`). The ends are checked
    /// first: pushes and pops land there.
    fn locate(&self, pos: &Position) -> Result<usize, usize> {
        let n = self.elements.len();
        let Some((first, _)) = self.elements.front() else {
            return Err(0);
        };
        match pos.cmp(first) {
            Ordering::Less => return Err(0),
            Ordering::Equal => return Ok(0),
            Ordering::Greater => {}
        }
        if let Some((last, _)) = self.elements.back() {
            match pos.cmp(last) {
                Ordering::Greater => return Err(n),
                Ordering::Equal => return Ok(n - 1),
                Ordering::Less => {}
            }
        }
        self.elements.binary_search_by(|(p, _)| p.cmp(pos))
    }

    /// Inserts an element at its position (a duplicate delivery is ignored).
    pub fn insert(&mut self, pos: Position, value: Bytes, tag: Tag) {
        let Err(at) = self.locate(&pos) else {
            return;
        };
        self.acc.add(element_hash(&pos, &value));
        let element = Element {
            value: detach(value),
            written: tag,
        };
        self.elements.insert(at, (pos, element));
    }

    /// LSET: replaces the value by LWW. Returns whether it raced a concurrent
    /// LSET (the element must exist; a removed element stays removed).
    pub fn set(&mut self, pos: &Position, value: Bytes, tag: Tag, ctx: &VersionVector) -> bool {
        let Ok(at) = self.locate(pos) else {
            return false;
        };
        let Some((_, e)) = self.elements.get_mut(at) else {
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
        if let Ok(at) = self.locate(pos) {
            let (pos, e) = self.elements.remove(at);
            self.acc.sub(element_hash(&pos, &e.value));
        }
    }

    /// LTRIM: removes the observed elements outside `keep` (all observed
    /// elements when `keep` is `None`).
    pub fn trim(&mut self, keep: Option<(&Position, &Position)>, ctx: &VersionVector) {
        let goes = |pos: &Position| {
            let inside = keep.is_some_and(|(lo, hi)| pos >= lo && pos <= hi);
            !inside && ctx.contains(pos.dot())
        };
        let mut gone = false;
        for (pos, e) in &self.elements {
            if goes(pos) {
                self.acc.sub(element_hash(pos, &e.value));
                gone = true;
            }
        }
        // Only a trim that removes something makes the vector its own (a
        // snapshot may share it).
        if gone {
            self.elements.retain(|(pos, _)| !goes(pos));
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

    /// The element at a 0-based index from the head (O(log n)).
    pub fn get(&self, index: usize) -> Option<(&Position, &Bytes)> {
        self.elements.get(index).map(|(p, e)| (p, &e.value))
    }

    /// The values from index `from` to `to`, both included (O(log n) to
    /// reach the first).
    pub fn range(&self, from: usize, to: usize) -> impl DoubleEndedIterator<Item = &Bytes> {
        let end = to.saturating_add(1).min(self.elements.len()).max(from);
        let from = from.min(end);
        self.elements
            .focus()
            .narrow(from..end)
            .into_iter()
            .map(|(_, e)| &e.value)
    }

    /// The first element.
    pub fn first(&self) -> Option<&Position> {
        self.elements.front().map(|(p, _)| p)
    }

    /// The last element.
    pub fn last(&self) -> Option<&Position> {
        self.elements.back().map(|(p, _)| p)
    }

    /// The element after `pos`.
    pub fn next_after(&self, pos: &Position) -> Option<&Position> {
        let at = match self.locate(pos) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.elements.get(at).map(|(p, _)| p)
    }

    /// The element before `pos`.
    pub fn prev_before(&self, pos: &Position) -> Option<&Position> {
        let at = match self.locate(pos) {
            Ok(i) | Err(i) => i.checked_sub(1)?,
        };
        self.elements.get(at).map(|(p, _)| p)
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
        self.elements.iter().map(|(_, e)| e.written.stamp()).max()
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

    /// Model check: any mix of inserts (ends and middle), removals, LSETs
    /// and trims leaves the same elements, in the same order, as an ordered
    /// map would, with the same digest as a list built from scratch;
    /// indexes and neighbours agree. Long enough to leave the vector's
    /// first chunk (64 elements) for its tree.
    #[test]
    fn the_list_behaves_like_an_ordered_map() {
        use proptest::prelude::*;
        use std::collections::BTreeMap;
        let step = (0u8..6, any::<u16>(), any::<u16>());
        proptest!(ProptestConfig::with_cases(64), |(steps in proptest::collection::vec(step, 1..600))| {
            let mut list = ListContent::default();
            let mut model: BTreeMap<Position, Vec<u8>> = BTreeMap::new();
            let mut seq = 0u64;
            for (kind, a, b) in steps {
                seq += 1;
                let keys: Vec<Position> = model.keys().cloned().collect();
                let pick = |x: u16| (!keys.is_empty()).then(|| keys[x as usize % keys.len()].clone());
                let value = format!("v{seq}").into_bytes();
                match kind {
                    // Pushes at either end, and inserts between neighbours.
                    0..=2 => {
                        let (lo, hi) = match kind {
                            0 => (None, keys.first().cloned()),
                            1 => (keys.last().cloned(), None),
                            _ => {
                                let i = if keys.is_empty() { 0 } else { a as usize % (keys.len() + 1) };
                                (i.checked_sub(1).map(|j| keys[j].clone()), keys.get(i).cloned())
                            }
                        };
                        let pos = Position::between(lo.as_ref(), hi.as_ref(), RegionId(1), seq, 0);
                        list.insert(pos.clone(), Bytes::from(value.clone()), tag(seq));
                        model.insert(pos, value);
                    }
                    3 => if let Some(p) = pick(a) {
                        list.remove(&p);
                        model.remove(&p);
                    },
                    4 => if let Some(p) = pick(a) {
                        let mut ctx = VersionVector::new();
                        ctx.raise(RegionId(1), seq);
                        list.set(&p, Bytes::from(value.clone()), tag(seq), &ctx);
                        model.insert(p, value);
                    },
                    _ => if let (Some(x), Some(y)) = (pick(a), pick(b)) {
                        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
                        let mut ctx = VersionVector::new();
                        ctx.raise(RegionId(1), seq);
                        list.trim(Some((&lo, &hi)), &ctx);
                        model.retain(|p, _| *p >= lo && *p <= hi);
                    },
                }
            }
            let want: Vec<(Position, Vec<u8>)> = model.iter().map(|(p, v)| (p.clone(), v.clone())).collect();
            let got: Vec<(Position, Vec<u8>)> = list.iter().map(|(p, v)| (p.clone(), v.to_vec())).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(list.len(), want.len());
            for (i, (p, _)) in want.iter().enumerate() {
                prop_assert_eq!(list.get(i).map(|(q, _)| q), Some(p));
                prop_assert_eq!(list.next_after(p), want.get(i + 1).map(|(q, _)| q));
                prop_assert_eq!(list.prev_before(p), i.checked_sub(1).map(|j| &want[j].0));
            }
            let n = want.len();
            for (from, to) in [(0, n), (n / 3, n / 2), (n / 2, n / 3), (n.saturating_sub(1), n + 5)] {
                let got: Vec<Vec<u8>> = list.range(from, to).map(|v| v.to_vec()).collect();
                let end = (to + 1).min(n).max(from);
                let expect: Vec<Vec<u8>> = want[from.min(end)..end].iter().map(|(_, v)| v.clone()).collect();
                prop_assert_eq!(got, expect);
            }
            let mut fresh = ListContent::default();
            for (p, v) in &want {
                fresh.insert(p.clone(), Bytes::from(v.clone()), tag(1));
            }
            prop_assert_eq!(list.digest(), fresh.digest());
        });
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
