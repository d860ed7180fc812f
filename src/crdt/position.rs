//! Dense, totally ordered element positions for lists (Logoot-style).
//!
//! A position is a path of segments; each segment carries a digit and the
//! identity of the element that created it, so two regions inserting at the
//! same place at the same time still get different positions, ordered the same
//! way everywhere. Because a position never depends on other elements, removed
//! elements leave no tombstones behind.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::id::{Dot, RegionId, Seq};

/// One level of a position path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Segment {
    /// Place at this level (0 and `u64::MAX` are never chosen as final digits).
    pub digit: u64,
    /// Region of the operation that created the segment.
    pub region: RegionId,
    /// Sequence of that operation.
    pub seq: Seq,
    /// Index of the element within that operation (LPUSH a b c: 0, 1, 2).
    pub idx: u32,
}

/// A list element's position and identity. Ordered lexicographically by
/// segments; a path that is a prefix of another sorts first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position(pub SmallVec<[Segment; 1]>);

/// Gap left between consecutive pushes at one end, so that later inserts
/// between them usually stay one level deep.
const PUSH_STEP: u64 = 1 << 20;
/// Digit of the first element of an empty list.
const FIRST_DIGIT: u64 = 1 << 63;

impl Position {
    /// The dot of the operation that created this element.
    pub fn dot(&self) -> Dot {
        let last = self.0.last().copied().unwrap_or(Segment {
            digit: 0,
            region: RegionId(0),
            seq: 0,
            idx: 0,
        });
        Dot::new(last.region, last.seq)
    }

    /// Number of levels.
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// Bytes that identify the position, for digests.
    pub fn digest_bytes(&self) -> SmallVec<[u8; 64]> {
        // On the stack for positions up to two levels (most): every list
        // insert and removal hashes one.
        let mut out = SmallVec::new();
        for s in &self.0 {
            out.extend_from_slice(&s.digit.to_le_bytes());
            out.extend_from_slice(&s.region.0.to_le_bytes());
            out.extend_from_slice(&s.seq.to_le_bytes());
            out.extend_from_slice(&s.idx.to_le_bytes());
        }
        out
    }

    /// A new position strictly between `lo` and `hi` (`None`: the list's
    /// start or end), created by element `(region, seq, idx)`.
    pub fn between(
        lo: Option<&Position>,
        hi: Option<&Position>,
        region: RegionId,
        seq: Seq,
        idx: u32,
    ) -> Position {
        let lo: &[Segment] = lo.map_or(&[], |p| &p.0);
        let mut hi_active = hi.is_some();
        let hi: &[Segment] = hi.map_or(&[], |p| &p.0);
        let mut lo_active = true;
        let mut out: SmallVec<[Segment; 1]> = SmallVec::new();
        let mk = |digit| Segment {
            digit,
            region,
            seq,
            idx,
        };
        for i in 0.. {
            let lo_seg = if lo_active { lo.get(i).copied() } else { None };
            let hi_seg = if hi_active { hi.get(i).copied() } else { None };
            let l = lo_seg.map_or(0, |s| s.digit);
            let h = hi_seg.map_or(u64::MAX, |s| s.digit);
            if h > l && h - l > 1 {
                let half = (h - l) / 2;
                let d = match (lo_seg, hi_seg) {
                    (None, None) => FIRST_DIGIT,
                    (_, None) => l + half.min(PUSH_STEP),
                    (None, Some(_)) => h - half.min(PUSH_STEP),
                    (Some(_), Some(_)) => l + half,
                };
                out.push(mk(d));
                return Position(out);
            }
            // No room at this level: take a segment between the bounds and go deeper.
            match (lo_seg, hi_seg) {
                (Some(ls), _) => {
                    out.push(ls);
                    hi_active = hi_seg == Some(ls);
                }
                (None, Some(hs)) if hs.digit == 0 => {
                    out.push(hs);
                    lo_active = false;
                }
                (None, _) => {
                    // h is 1 here: a 0 digit sorts below the upper bound.
                    out.push(mk(0));
                    lo_active = false;
                    hi_active = false;
                }
            }
        }
        unreachable!("between always finds room within lo.len() + hi.len() + 2 levels")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn between(lo: Option<&Position>, hi: Option<&Position>, n: u64) -> Position {
        Position::between(lo, hi, RegionId((n % 3) as u16), n, 0)
    }

    #[test]
    fn pushes_stay_one_level_deep() {
        let mut last = between(None, None, 1);
        let mut first = last.clone();
        for n in 2..1000 {
            let p = between(Some(&last), None, n);
            assert!(p > last && p.depth() == 1);
            last = p;
            let q = between(None, Some(&first), n + 5000);
            assert!(q < first && q.depth() == 1);
            first = q;
        }
    }

    #[test]
    fn same_place_from_two_regions_gives_distinct_ordered_positions() {
        let a = between(None, None, 1);
        let x = Position::between(Some(&a), None, RegionId(1), 2, 0);
        let y = Position::between(Some(&a), None, RegionId(2), 2, 0);
        assert_ne!(x, y);
        assert!(x < y);
        let z = between(Some(&x), Some(&y), 9);
        assert!(x < z && z < y);
    }

    proptest! {
        /// Random inserts anywhere always land strictly between their neighbours.
        #[test]
        fn between_is_strictly_between(choices in proptest::collection::vec(any::<u16>(), 1..300)) {
            let mut list: Vec<Position> = Vec::new();
            for (n, c) in choices.iter().enumerate() {
                let at = if list.is_empty() { 0 } else { usize::from(*c) % (list.len() + 1) };
                let lo = if at == 0 { None } else { list.get(at - 1) };
                let hi = list.get(at);
                let p = between(lo, hi, n as u64 + 1);
                if let Some(lo) = lo { prop_assert!(&p > lo); }
                if let Some(hi) = hi { prop_assert!(&p < hi); }
                list.insert(at, p);
            }
        }
    }
}
