//! The conflict journal: the latest races the merge rules resolved in this
//! region (a bounded ring, newest last) and how many of each (key type,
//! rule) since start-up. What `BRAID.CONFLICTS` and `INFO conflicts` show.

use std::collections::{BTreeMap, VecDeque};

use crate::crdt::conflict::type_name;
use crate::crdt::detach::detach;
use crate::crdt::Conflict;

/// Entries kept when nothing is configured.
pub const DEFAULT_LEN: usize = 1024;

/// A bounded journal of conflicts with counts per (key type, rule).
#[derive(Clone, Debug)]
pub struct ConflictJournal {
    entries: VecDeque<Conflict>,
    capacity: usize,
    counts: BTreeMap<(&'static str, &'static str), u64>,
    total: u64,
}

impl Default for ConflictJournal {
    fn default() -> Self {
        Self::new(DEFAULT_LEN)
    }
}

impl ConflictJournal {
    /// An empty journal keeping the latest `capacity` entries (0: counts
    /// only).
    pub fn new(capacity: usize) -> Self {
        ConflictJournal {
            entries: VecDeque::with_capacity(capacity.min(DEFAULT_LEN)),
            capacity,
            counts: BTreeMap::new(),
            total: 0,
        }
    }

    /// Records one conflict: counted, and kept, dropping the oldest entry
    /// when full.
    pub fn record(&mut self, mut c: Conflict) {
        *self
            .counts
            .entry((type_name(c.key_type), c.kind.rule()))
            .or_default() += 1;
        self.total += 1;
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        // Kept for long: not pinning the buffer the key arrived in.
        c.key = detach(c.key);
        self.entries.push_back(c);
    }

    /// Changes how many entries are kept (the oldest go first).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.entries.len() > capacity {
            self.entries.pop_front();
        }
    }

    /// How many entries are kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Conflict> {
        self.entries.iter().rev()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Conflicts recorded since start-up, per (key type, rule), in name
    /// order: what metrics export. Key types are `string`, `list`, `set`,
    /// `zset`, `hash` or `none` (EXPIRE-family races); rules are
    /// [`ConflictKind::rule`](crate::crdt::ConflictKind::rule) names.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.counts.iter().map(|(&(t, r), &n)| (t, r, n))
    }

    /// Conflicts recorded since start-up (the sum of [`counts`](Self::counts)).
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{ConflictKind, Hlc, KeyType, RegionId, Stamp};
    use bytes::Bytes;

    fn conflict(key: &str, kind: ConflictKind) -> Conflict {
        Conflict {
            key: Bytes::copy_from_slice(key.as_bytes()),
            key_type: Some(KeyType::String),
            kind,
            winner: Stamp::new(Hlc::new(2, 0), RegionId(2)),
            loser: Stamp::new(Hlc::new(1, 0), RegionId(1)),
        }
    }

    #[test]
    fn keeps_the_latest_entries_and_counts_all() {
        let mut j = ConflictJournal::new(2);
        j.record(conflict("a", ConflictKind::Lww));
        j.record(conflict("b", ConflictKind::Lww));
        j.record(conflict("c", ConflictKind::Expiry));
        let keys: Vec<&[u8]> = j.newest_first().map(|c| &c.key[..]).collect();
        assert_eq!(keys, [&b"c"[..], b"b"]);
        let counts: Vec<_> = j.counts().collect();
        assert_eq!(counts, [("string", "expiry", 1), ("string", "lww", 2)]);
        assert_eq!(j.total(), 3);
        j.set_capacity(1);
        assert_eq!(j.len(), 1);
        let mut none = ConflictJournal::new(0);
        none.record(conflict("a", ConflictKind::Lww));
        assert!(none.is_empty());
        assert_eq!(none.total(), 1);
    }
}
