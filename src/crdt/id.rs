//! Identity: which region did something, and in which order.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::hlc::Hlc;

/// A region's stable numeric id. It is the final tie-break of every LWW race,
/// so it must never be reused by another region of the same cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionId(pub u16);

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Per-origin sequence number: the n-th operation a region originated (from 1).
pub type Seq = u64;

/// The identity of one operation, and of everything it created: elements,
/// tags and increments carry the dot of the operation that made them, which is
/// what observed-remove compares against a remover's version vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Region that originated the operation.
    pub region: RegionId,
    /// Its sequence number at that region.
    pub seq: Seq,
}

impl Dot {
    /// Builds a dot.
    pub fn new(region: RegionId, seq: Seq) -> Self {
        Dot { region, seq }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.region, self.seq)
    }
}

/// A position in LWW order: higher HLC wins, equal HLC falls back to the
/// higher region id. Two different writes never share a stamp because a
/// region never issues the same HLC twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Hybrid logical time of the write (compared first).
    pub hlc: Hlc,
    /// Originating region (the tie-break).
    pub region: RegionId,
}

impl Stamp {
    /// Builds a stamp.
    pub fn new(hlc: Hlc, region: RegionId) -> Self {
        Stamp { hlc, region }
    }
}

/// Who wrote something and when: the dot decides whether a remover had seen
/// it, the stamp decides LWW races.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// Identity of the writing operation.
    pub dot: Dot,
    /// Its hybrid logical time.
    pub hlc: Hlc,
}

impl Tag {
    /// Region 1's write number `seq`, at HLC `seq`: a tag for unit tests.
    #[cfg(test)]
    pub(crate) fn region_1(seq: u64) -> Tag {
        Tag {
            dot: Dot::new(RegionId(1), seq),
            hlc: Hlc(seq),
        }
    }

    /// Region `region`'s write number `seq`, at HLC `seq`: a tag for unit
    /// tests.
    #[cfg(test)]
    pub(crate) fn test(region: u16, seq: u64) -> Tag {
        Tag {
            dot: Dot::new(RegionId(region), seq),
            hlc: Hlc(seq),
        }
    }

    /// The LWW stamp of this write.
    pub fn stamp(&self) -> Stamp {
        Stamp::new(self.hlc, self.dot.region)
    }
}
