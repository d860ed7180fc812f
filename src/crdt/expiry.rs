//! Key expiry: a multi-value register of absolute deadlines.
//!
//! Each EXPIRE-family command (and each SET, which counts as a PERSIST)
//! replaces the entries its region had seen. Of the entries left, which raced
//! each other: any PERSIST wins, otherwise the latest deadline wins.

use smallvec::SmallVec;

use super::codec::{self, DecodeError, Reader, MIN_TAG};
use super::id::{RegionId, Stamp, Tag};
use super::vv::VersionVector;

/// The resolved expiry of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// Unix milliseconds after which the key is invisible everywhere.
    pub at_ms: u64,
    /// Region whose entry won: it alone issues the replicated delete.
    pub owner: RegionId,
}

/// The live expiry entries of a key (`None` deadline: PERSIST).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryRegister {
    entries: SmallVec<[(Tag, Option<u64>); 1]>,
}

impl ExpiryRegister {
    /// Records an EXPIRE (`Some(deadline)`) or PERSIST (`None`), replacing the
    /// entries the writer had seen. Returns whether it raced another entry.
    pub fn write(&mut self, at_ms: Option<u64>, tag: Tag, ctx: &VersionVector) -> bool {
        self.entries.retain(|(t, _)| !ctx.contains(t.dot));
        let raced = !self.entries.is_empty();
        self.entries.push((tag, at_ms));
        raced
    }

    /// Removes the entries the remover had seen.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        self.entries.retain(|(t, _)| !ctx.contains(t.dot));
    }

    /// The deadline in force: none if any racing entry is a PERSIST,
    /// otherwise the latest deadline (LWW order breaks a tie on the owner).
    pub fn resolved(&self) -> Option<Deadline> {
        if self.entries.iter().any(|(_, at)| at.is_none()) {
            return None;
        }
        self.entries
            .iter()
            .filter_map(|(t, at)| at.map(|a| (a, t.stamp())))
            .max()
            .map(|(at_ms, stamp): (u64, Stamp)| Deadline {
                at_ms,
                owner: stamp.region,
            })
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Greatest stamp among entries.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.entries.iter().map(|(t, _)| t.stamp()).max()
    }

    /// Once every entry is stable only the resolved deadline can matter:
    /// keep its entry alone, or nothing when the key is persistent.
    pub fn collect(&mut self, stable: &VersionVector) {
        if self.entries.is_empty() || !self.entries.iter().all(|(t, _)| stable.contains(t.dot)) {
            return;
        }
        match self.resolved() {
            None => self.entries.clear(),
            Some(d) => {
                let keep = self
                    .entries
                    .iter()
                    .filter(|(_, at)| *at == Some(d.at_ms))
                    .max_by_key(|(t, _)| t.stamp())
                    .copied();
                self.entries.clear();
                self.entries.extend(keep);
            }
        }
    }

    /// Whether [`collect`](Self::collect) would change nothing at any
    /// frontier: no entry, or a lone deadline (a lone PERSIST is dropped).
    pub fn settled(&self) -> bool {
        match self.entries.as_slice() {
            [] => true,
            [(_, at)] => at.is_some(),
            _ => false,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends the snapshot encoding: entry count, then per entry its tag
    /// and `0x00` (PERSIST) or `0x01` followed by the deadline (`varint`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.entries.len() as u64);
        for (t, at) in &self.entries {
            codec::put_tag(out, t);
            match at {
                None => out.push(0),
                Some(at) => {
                    out.push(1);
                    codec::put_varint(out, *at);
                }
            }
        }
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("expiry count", MIN_TAG + 1)?;
        let mut entries = SmallVec::with_capacity(codec::prealloc(n));
        for _ in 0..n {
            let t = r.tag()?;
            let at = match super::counter::flag(r, "deadline flag")? {
                false => None,
                true => Some(r.varint("deadline")?),
            };
            entries.push((t, at));
        }
        Ok(ExpiryRegister { entries })
    }
}
