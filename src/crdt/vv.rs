//! Version vectors: per origin, the highest contiguous sequence applied.
//!
//! Because every region applies operations in causal order, "contiguous" is
//! exact: a vector `{us: 7}` means operations us:1..=7 were all applied and no
//! later one. That is what lets a dot be tested against a vector in O(regions).

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::fmt;

use super::id::{Dot, RegionId, Seq};

/// A version vector, kept sorted by region with no zero entries so that equal
/// vectors are equal structurally (and hash and encode the same).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    entries: SmallVec<[(RegionId, Seq); 4]>,
}

impl VersionVector {
    /// A version vector that has seen `upto`'s (region, sequence) pairs:
    /// for unit tests.
    #[cfg(test)]
    pub(crate) fn upto(upto: &[(u16, Seq)]) -> Self {
        let mut vv = VersionVector::new();
        for &(r, s) in upto {
            vv.raise(RegionId(r), s);
        }
        vv
    }

    /// The empty vector: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from (region, seq) pairs in any order; zeros are dropped
    /// and duplicates keep their maximum.
    pub fn from_entries(pairs: impl IntoIterator<Item = (RegionId, Seq)>) -> Self {
        let mut vv = Self::new();
        for (r, s) in pairs {
            vv.raise(r, s);
        }
        vv
    }

    /// The highest contiguous sequence seen from `region` (0: none).
    pub fn get(&self, region: RegionId) -> Seq {
        match self.entries.binary_search_by_key(&region, |e| e.0) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Sets `region`'s entry (0 removes it).
    pub fn set(&mut self, region: RegionId, seq: Seq) {
        match self.entries.binary_search_by_key(&region, |e| e.0) {
            Ok(i) if seq == 0 => {
                self.entries.remove(i);
            }
            Ok(i) => self.entries[i].1 = seq,
            Err(_) if seq == 0 => {}
            Err(i) => self.entries.insert(i, (region, seq)),
        }
    }

    /// Raises `region`'s entry to at least `seq`.
    pub fn raise(&mut self, region: RegionId, seq: Seq) {
        if seq > self.get(region) {
            self.set(region, seq);
        }
    }

    /// Whether the operation named by `dot` is covered (was seen).
    pub fn contains(&self, dot: Dot) -> bool {
        dot.seq <= self.get(dot.region)
    }

    /// Pointwise maximum: everything either side has seen.
    pub fn merge(&mut self, other: &VersionVector) {
        for &(r, s) in &other.entries {
            self.raise(r, s);
        }
    }

    /// Pointwise minimum: what both sides have seen.
    pub fn meet(&self, other: &VersionVector) -> VersionVector {
        VersionVector::from_entries(self.entries.iter().map(|&(r, s)| (r, s.min(other.get(r)))))
    }

    /// Whether this vector has seen everything `other` has.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|&(r, s)| self.get(r) >= s)
    }

    /// Causal comparison: `Some(Less)` if `self` happened before `other`,
    /// `None` when the two are concurrent.
    pub fn compare(&self, other: &VersionVector) -> Option<Ordering> {
        match (self.dominates(other), other.dominates(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }

    /// The (region, seq) entries in region order, zeros omitted.
    pub fn iter(&self) -> impl Iterator<Item = (RegionId, Seq)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of all entries: how many operations this vector covers.
    /// Saturates: a vector decoded from hostile bytes (a snapshot header, a
    /// backup manifest) can hold sequences whose sum overflows.
    pub fn total(&self) -> u64 {
        self.entries
            .iter()
            .fold(0, |sum, e| sum.saturating_add(e.1))
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (r, s)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}:{s}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vv_total_saturates_instead_of_overflowing() {
        let vv = VersionVector::from_entries([(RegionId(1), u64::MAX), (RegionId(2), 5)]);
        assert_eq!(vv.total(), u64::MAX);
        let vv = VersionVector::from_entries([(RegionId(1), 3), (RegionId(2), 5)]);
        assert_eq!(vv.total(), 8);
    }

    fn vv(p: &[(u16, u64)]) -> VersionVector {
        VersionVector::from_entries(p.iter().map(|&(r, s)| (RegionId(r), s)))
    }

    #[test]
    fn zero_entries_are_not_stored() {
        assert_eq!(vv(&[(1, 0), (2, 3)]), vv(&[(2, 3)]));
        let mut a = vv(&[(1, 4)]);
        a.set(RegionId(1), 0);
        assert!(a.is_empty());
    }

    #[test]
    fn merge_is_pointwise_max_and_meet_pointwise_min() {
        let mut a = vv(&[(1, 4), (2, 1)]);
        let b = vv(&[(2, 5), (3, 2)]);
        assert_eq!(a.meet(&b), vv(&[(2, 1)]));
        a.merge(&b);
        assert_eq!(a, vv(&[(1, 4), (2, 5), (3, 2)]));
    }

    #[test]
    fn compare_detects_concurrency() {
        let a = vv(&[(1, 2)]);
        let b = vv(&[(1, 2), (2, 1)]);
        let c = vv(&[(2, 3)]);
        assert_eq!(a.compare(&b), Some(Ordering::Less));
        assert_eq!(b.compare(&a), Some(Ordering::Greater));
        assert_eq!(a.compare(&a), Some(Ordering::Equal));
        assert_eq!(a.compare(&c), None);
        assert!(b.dominates(&a) && !a.dominates(&c));
    }

    #[test]
    fn contains_dot() {
        let a = vv(&[(1, 2)]);
        assert!(a.contains(Dot::new(RegionId(1), 2)));
        assert!(!a.contains(Dot::new(RegionId(1), 3)));
        assert!(!a.contains(Dot::new(RegionId(2), 1)));
    }
}
