//! Conflicts: races the merge rules resolved, reported for the journal.
//!
//! Reporting never changes the outcome; it is what lets operators see how
//! often regions race and which rule decided.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::op::KeyType;

/// Which rule resolved a race.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictKind {
    /// Two concurrent values for one register: greater LWW stamp kept.
    Lww,
    /// A remove did not cover a concurrent add, which survived (add-wins).
    AddWins,
    /// A key was written concurrently as two types; `winner` is shown.
    Type {
        /// The type whose latest write is greatest.
        winner: KeyType,
        /// The type hidden (and dropped by the next observing write).
        loser: KeyType,
    },
    /// Increments not counted because the winning base is not a number.
    IncrementsDropped,
    /// Concurrent EXPIRE / PERSIST: PERSIST or the later deadline kept.
    Expiry,
}

/// One resolved race on one key (`key` empty for FLUSHALL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The key.
    pub key: Bytes,
    /// The rule that resolved it.
    pub kind: ConflictKind,
}
