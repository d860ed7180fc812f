//! Operations: what a region's write becomes, and what travels.
//!
//! An operation is self-contained: applying it needs only the state of the
//! region it arrives at (which, by causal delivery, already holds everything
//! the operation depends on) and never the receiver's wall clock.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::hlc::Hlc;
use super::id::{Dot, RegionId, Seq, Stamp, Tag};
use super::number::{Decimal, Delta};
use super::position::Position;
use super::vv::VersionVector;

/// The Redis type a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// Strings and counters.
    String,
    /// Lists.
    List,
    /// Sets.
    Set,
    /// Sorted sets.
    ZSet,
    /// Hashes.
    Hash,
}

impl KeyType {
    /// The name `TYPE` answers with.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::List => "list",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::Hash => "hash",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a string write does to the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TtlChange {
    /// Leave it (SET … KEEPTTL, APPEND, SETRANGE).
    Keep,
    /// Remove it: a plain SET counts as a PERSIST.
    Persist,
    /// Expire at this Unix time in milliseconds (SETEX, SET … EX).
    ExpireAt(u64),
}

/// The per-type effect of an operation on one key. Removals carry no list of
/// what they remove: they remove what the operation's `deps` had seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// New LWW base of a string; removes everything observed under the key.
    StrSet {
        /// The value.
        value: Bytes,
        /// What happens to the expiry.
        ttl: TtlChange,
    },
    /// Counter increment of a string.
    StrIncr(Delta),
    /// Observed-remove of the whole key.
    Del,
    /// Sets the deadline (Unix ms).
    Expire(u64),
    /// Removes the deadline.
    Persist,
    /// Adds set members.
    SetAdd(Vec<Bytes>),
    /// Removes the observed adds of set members.
    SetRem(Vec<Bytes>),
    /// Sets hash fields (LWW values, add-wins presence).
    HashSet(Vec<(Bytes, Bytes)>),
    /// Removes observed hash fields.
    HashDel(Vec<Bytes>),
    /// Counter increment of a hash field.
    HashIncr {
        /// The field.
        field: Bytes,
        /// The increment.
        delta: Delta,
    },
    /// Sets sorted-set scores by LWW (never NaN).
    ZAdd(Vec<(Bytes, f64)>),
    /// Counter increment of a score.
    ZIncr {
        /// The member.
        member: Bytes,
        /// The increment.
        delta: Decimal,
    },
    /// Removes observed sorted-set members.
    ZRem(Vec<Bytes>),
    /// Inserts list elements at the positions their origin chose.
    ListInsert(Vec<(Position, Bytes)>),
    /// Replaces a list element's value by LWW.
    ListSet {
        /// The element.
        pos: Position,
        /// Its new value.
        value: Bytes,
    },
    /// Removes the named list elements (pops, LREM).
    ListRemove(Vec<Position>),
    /// Removes the observed elements outside the kept range (all observed
    /// elements when `None`).
    ListTrim(Option<(Position, Position)>),
}

impl Effect {
    /// The type this effect writes, if it writes content.
    pub fn key_type(&self) -> Option<KeyType> {
        match self {
            Effect::StrSet { .. } | Effect::StrIncr(_) => Some(KeyType::String),
            Effect::Del | Effect::Expire(_) | Effect::Persist => None,
            Effect::SetAdd(_) | Effect::SetRem(_) => Some(KeyType::Set),
            Effect::HashSet(_) | Effect::HashDel(_) | Effect::HashIncr { .. } => {
                Some(KeyType::Hash)
            }
            Effect::ZAdd(_) | Effect::ZIncr { .. } | Effect::ZRem(_) => Some(KeyType::ZSet),
            Effect::ListInsert(_)
            | Effect::ListSet { .. }
            | Effect::ListRemove(_)
            | Effect::ListTrim(_) => Some(KeyType::List),
        }
    }

    /// A short name for logs and tools.
    pub fn name(&self) -> &'static str {
        match self {
            Effect::StrSet { .. } => "str_set",
            Effect::StrIncr(_) => "str_incr",
            Effect::Del => "del",
            Effect::Expire(_) => "expire",
            Effect::Persist => "persist",
            Effect::SetAdd(_) => "set_add",
            Effect::SetRem(_) => "set_rem",
            Effect::HashSet(_) => "hash_set",
            Effect::HashDel(_) => "hash_del",
            Effect::HashIncr { .. } => "hash_incr",
            Effect::ZAdd(_) => "zset_add",
            Effect::ZIncr { .. } => "zset_incr",
            Effect::ZRem(_) => "zset_rem",
            Effect::ListInsert(_) => "list_insert",
            Effect::ListSet { .. } => "list_set",
            Effect::ListRemove(_) => "list_remove",
            Effect::ListTrim(_) => "list_trim",
        }
    }
}

/// A write to one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyWrite {
    /// The key.
    pub key: Bytes,
    /// The origin saw no live key here: first remove whatever it had
    /// observed under the key (expired content, losing types, a stray
    /// deadline), so a new key never inherits an old one's remains.
    pub fresh: bool,
    /// What to do.
    pub effect: Effect,
}

/// What an operation touches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// One key.
    Key(KeyWrite),
    /// Observed-remove of every key (FLUSHALL / FLUSHDB; replicated).
    FlushAll,
}

/// One operation of a region's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Region that originated it.
    pub origin: RegionId,
    /// Its sequence at that region (from 1, contiguous).
    pub seq: Seq,
    /// Hybrid logical time at the origin.
    pub hlc: Hlc,
    /// Everything the origin had applied before it; `deps[origin]` is always
    /// `seq - 1`. Also the context of every observed-remove it performs.
    pub deps: VersionVector,
    /// How many further operations (seq + 1 …) belong to the same
    /// transaction and must become visible together with this one.
    pub txn_rest: u32,
    /// What it does.
    pub body: Body,
}

impl Operation {
    /// Its identity.
    pub fn dot(&self) -> Dot {
        Dot::new(self.origin, self.seq)
    }

    /// Its tag (identity and time) for what it creates.
    pub fn tag(&self) -> Tag {
        Tag {
            dot: self.dot(),
            hlc: self.hlc,
        }
    }

    /// Its LWW stamp.
    pub fn stamp(&self) -> Stamp {
        Stamp::new(self.hlc, self.origin)
    }

    /// The key it writes (`None` for FLUSHALL).
    pub fn key(&self) -> Option<&Bytes> {
        match &self.body {
            Body::Key(w) => Some(&w.key),
            Body::FlushAll => None,
        }
    }
}
