//! Preparing: turning a client's write into an operation against the local
//! state. Everything that depends on what the region currently sees (the
//! current value, which element a pop takes, where an insert goes) is
//! decided here, once, and written into the operation.

use bytes::Bytes;

use super::entry::Content;
use super::hlc::Hlc;
use super::id::RegionId;
use super::number::{parse_i64, Decimal, Delta};
use super::op::{Body, Effect, KeyType, KeyWrite, Operation, TtlChange};
use super::position::Position;
use super::state::State;

/// Largest string a write may produce (Redis' `proto-max-bulk-len` default).
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

/// A client write, before it is prepared. Options that only decide whether
/// to write at all (NX, XX, GT, …) are the caller's business.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// SET and friends. Like Redis' SET it overwrites a key of any type;
    /// commands that also read the old value (GETSET, SET … GET) check its
    /// type themselves.
    Set {
        /// The value.
        value: Bytes,
        /// Effect on the expiry.
        ttl: TtlChange,
    },
    /// APPEND.
    Append(Bytes),
    /// SETRANGE.
    SetRange {
        /// Byte offset.
        offset: usize,
        /// Bytes to write there.
        data: Bytes,
    },
    /// INCR, DECR, INCRBY, DECRBY.
    IncrBy(i64),
    /// INCRBYFLOAT.
    IncrByFloat(Decimal),
    /// DEL, UNLINK.
    Del,
    /// The EXPIRE family, as an absolute deadline in Unix ms.
    ExpireAt(u64),
    /// PERSIST.
    Persist,
    /// SADD.
    SAdd(Vec<Bytes>),
    /// SREM (and SPOP of chosen members).
    SRem(Vec<Bytes>),
    /// HSET, HMSET, HSETNX.
    HSet(Vec<(Bytes, Bytes)>),
    /// HDEL.
    HDel(Vec<Bytes>),
    /// HINCRBY.
    HIncrBy(Bytes, i64),
    /// HINCRBYFLOAT.
    HIncrByFloat(Bytes, Decimal),
    /// ZADD (score never NaN).
    ZAdd(Vec<(Bytes, f64)>),
    /// ZINCRBY.
    ZIncrBy(Bytes, f64),
    /// ZREM (and ZPOP*).
    ZRem(Vec<Bytes>),
    /// LPUSH: values pushed one after the other at the head.
    LPush(Vec<Bytes>),
    /// RPUSH.
    RPush(Vec<Bytes>),
    /// LINSERT.
    LInsert {
        /// BEFORE (true) or AFTER the pivot.
        before: bool,
        /// First element equal to this is the pivot.
        pivot: Bytes,
        /// The new element.
        value: Bytes,
    },
    /// LSET.
    LSet {
        /// Index (negative counts from the tail).
        index: i64,
        /// New value.
        value: Bytes,
    },
    /// LREM.
    LRem {
        /// How many, and from which end (0: all).
        count: i64,
        /// Value to remove.
        value: Bytes,
    },
    /// LTRIM.
    LTrim {
        /// Start index.
        start: i64,
        /// Stop index (inclusive).
        stop: i64,
    },
    /// LPOP with a count.
    LPop(usize),
    /// RPOP with a count.
    RPop(usize),
}

impl Intent {
    fn key_type(&self) -> Option<KeyType> {
        use Intent::*;
        match self {
            Set { .. } | Append(_) | SetRange { .. } | IncrBy(_) | IncrByFloat(_) => {
                Some(KeyType::String)
            }
            Del | ExpireAt(_) | Persist => None,
            SAdd(_) | SRem(_) => Some(KeyType::Set),
            HSet(_) | HDel(_) | HIncrBy(..) | HIncrByFloat(..) => Some(KeyType::Hash),
            ZAdd(_) | ZIncrBy(..) | ZRem(_) => Some(KeyType::ZSet),
            LPush(_)
            | RPush(_)
            | LInsert { .. }
            | LSet { .. }
            | LRem { .. }
            | LTrim { .. }
            | LPop(_)
            | RPop(_) => Some(KeyType::List),
        }
    }
}

/// Why a write is refused; the texts are Redis' own, since applications match
/// on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The value is not an integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// The value is not a float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// The hash field is not an integer.
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    /// The hash field is not a float.
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    /// Integer overflow.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// Float overflow.
    #[error("ERR increment would produce NaN or Infinity")]
    FloatOverflow,
    /// ZINCRBY would give NaN.
    #[error("ERR resulting score is not a number (NaN)")]
    ScoreNaN,
    /// LSET on a missing key.
    #[error("ERR no such key")]
    NoSuchKey,
    /// LSET index outside the list.
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// A string would exceed 512 MB.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
}

/// Resolves Redis' `start..=stop` (negative from the end) against `len`;
/// `None` when empty.
pub fn resolve_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

impl State {
    /// Prepares a write to `key` by region `origin` at time `hlc`, against
    /// this state at `now_ms`. `Ok(None)`: nothing to write (the reply is the
    /// caller's). The operation must be applied to this state before the next
    /// one is prepared: its sequence is the next after the version vector.
    pub fn prepare(
        &self,
        origin: RegionId,
        hlc: Hlc,
        key: Bytes,
        intent: Intent,
        now_ms: u64,
    ) -> Result<Option<Operation>, WriteError> {
        let entry = self.entry(&key);
        let live = entry
            .filter(|e| e.is_live(now_ms))
            .and_then(super::entry::Entry::visible);
        let fresh = live.is_none() && entry.is_some();
        if let (Some(want), Some(have)) = (intent.key_type(), live) {
            let overwrites = matches!(intent, Intent::Set { .. });
            if have.key_type() != want && !overwrites {
                return Err(WriteError::WrongType);
            }
        }
        let seq = self.version_vector().get(origin) + 1;
        let pos = |lo: Option<&Position>, hi: Option<&Position>, idx: usize| {
            Position::between(lo, hi, origin, seq, idx as u32)
        };
        // Computed only by the intents that read it (a counter's value is
        // formatted anew each time).
        let string = || match live {
            Some(Content::String(s)) => Some(s.get().0),
            _ => None,
        };
        let list = match live {
            Some(Content::List(l)) => Some(l),
            _ => None,
        };
        // KEEPTTL keeps nothing on a key that is not live; an explicit
        // deadline (SETEX, SET … EX) applies whether or not the key exists.
        let keep_ttl = |ttl| match ttl {
            TtlChange::Keep if live.is_none() => TtlChange::Persist,
            ttl => ttl,
        };
        let effect = match intent {
            Intent::Set { value, ttl } => Effect::StrSet {
                value,
                ttl: keep_ttl(ttl),
            },
            Intent::Append(suffix) => {
                let cur = string().unwrap_or_default();
                if cur.len() + suffix.len() > MAX_STRING_LEN {
                    return Err(WriteError::StringTooLong);
                }
                let mut v = Vec::with_capacity(cur.len() + suffix.len());
                v.extend_from_slice(&cur);
                v.extend_from_slice(&suffix);
                Effect::StrSet {
                    value: v.into(),
                    ttl: keep_ttl(TtlChange::Keep),
                }
            }
            Intent::SetRange { offset, data } => {
                let cur = string().unwrap_or_default();
                if data.is_empty() {
                    return Ok(None);
                }
                let end = offset
                    .checked_add(data.len())
                    .ok_or(WriteError::StringTooLong)?;
                if end > MAX_STRING_LEN {
                    return Err(WriteError::StringTooLong);
                }
                let mut v = cur.to_vec();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[offset..end].copy_from_slice(&data);
                Effect::StrSet {
                    value: v.into(),
                    ttl: keep_ttl(TtlChange::Keep),
                }
            }
            Intent::IncrBy(d) => {
                let cur = match live {
                    Some(Content::String(s)) => s.with_value(parse_i64),
                    _ => Some(0),
                }
                .ok_or(WriteError::NotInteger)?;
                cur.checked_add(d).ok_or(WriteError::Overflow)?;
                Effect::StrIncr(Delta::Int(d))
            }
            Intent::IncrByFloat(d) => {
                let cur = match &string() {
                    None => Decimal::zero(),
                    Some(s) => Decimal::parse(s).ok_or(WriteError::NotFloat)?,
                };
                if !cur.add(&d).to_f64().is_finite() {
                    return Err(WriteError::FloatOverflow);
                }
                Effect::StrIncr(Delta::Float(d))
            }
            Intent::Del => {
                if live.is_none() {
                    return Ok(None);
                }
                Effect::Del
            }
            Intent::ExpireAt(at) => {
                if live.is_none() {
                    return Ok(None);
                }
                if at <= now_ms {
                    Effect::Del
                } else {
                    Effect::Expire(at)
                }
            }
            Intent::Persist => {
                if live.is_none() || entry.and_then(|e| e.deadline()).is_none() {
                    return Ok(None);
                }
                Effect::Persist
            }
            Intent::SAdd(members) => {
                // Re-adding members a set holds matters only against a
                // concurrent SREM, which needs another region. Without
                // replication it changes nothing, and is not written: as
                // in Redis, such an SADD is a read (docs/semantics.md).
                if self.skip_held_adds()
                    && entry.is_some_and(|e| e.type_count() == 1)
                    && matches!(live, Some(Content::Set(s)) if members.iter().all(|m| s.contains(m)))
                {
                    return Ok(None);
                }
                Effect::SetAdd(dedup(members, |m| m))
            }
            Intent::SRem(members) => {
                let Some(Content::Set(s)) = live else {
                    return Ok(None);
                };
                let present: Vec<Bytes> = members.into_iter().filter(|m| s.contains(m)).collect();
                if present.is_empty() {
                    return Ok(None);
                }
                Effect::SetRem(present)
            }
            Intent::HSet(fields) => Effect::HashSet(dedup(fields, |(f, _)| f)),
            Intent::HDel(fields) => {
                let Some(Content::Hash(h)) = live else {
                    return Ok(None);
                };
                let present: Vec<Bytes> = fields.into_iter().filter(|f| h.contains(f)).collect();
                if present.is_empty() {
                    return Ok(None);
                }
                Effect::HashDel(present)
            }
            Intent::HIncrBy(field, d) => {
                let cur = hash_field(live, &field);
                let cur = match cur {
                    None => 0,
                    Some(v) => parse_i64(&v).ok_or(WriteError::HashNotInteger)?,
                };
                cur.checked_add(d).ok_or(WriteError::Overflow)?;
                Effect::HashIncr {
                    field,
                    delta: Delta::Int(d),
                }
            }
            Intent::HIncrByFloat(field, d) => {
                let cur = match hash_field(live, &field) {
                    None => Decimal::zero(),
                    Some(v) => Decimal::parse(&v).ok_or(WriteError::HashNotFloat)?,
                };
                if !cur.add(&d).to_f64().is_finite() {
                    return Err(WriteError::FloatOverflow);
                }
                Effect::HashIncr {
                    field,
                    delta: Delta::Float(d),
                }
            }
            Intent::ZAdd(members) => {
                if members.iter().any(|(_, s)| s.is_nan()) {
                    return Err(WriteError::NotFloat);
                }
                Effect::ZAdd(dedup(members, |(m, _)| m))
            }
            Intent::ZIncrBy(member, d) => {
                if d.is_nan() {
                    return Err(WriteError::NotFloat);
                }
                let cur = match live {
                    Some(Content::ZSet(z)) => z.score(&member).unwrap_or(0.0),
                    _ => 0.0,
                };
                let next = cur + d;
                if next.is_nan() {
                    return Err(WriteError::ScoreNaN);
                }
                match Decimal::from_f64(d) {
                    Some(delta) if cur.is_finite() => Effect::ZIncr { member, delta },
                    // An infinite score cannot be a counter: it becomes the base.
                    _ => Effect::ZAdd(vec![(member, next)]),
                }
            }
            Intent::ZRem(members) => {
                let Some(Content::ZSet(z)) = live else {
                    return Ok(None);
                };
                let present: Vec<Bytes> = members
                    .into_iter()
                    .filter(|m| z.score(m).is_some())
                    .collect();
                if present.is_empty() {
                    return Ok(None);
                }
                Effect::ZRem(present)
            }
            Intent::LPush(values) => {
                let mut head = list.and_then(|l| l.first()).cloned();
                let mut items = Vec::with_capacity(values.len());
                for (i, v) in values.into_iter().enumerate() {
                    let p = pos(None, head.as_ref(), i);
                    head = Some(p.clone());
                    items.push((p, v));
                }
                Effect::ListInsert(items)
            }
            Intent::RPush(values) => {
                let mut tail = list.and_then(|l| l.last()).cloned();
                let mut items = Vec::with_capacity(values.len());
                for (i, v) in values.into_iter().enumerate() {
                    let p = pos(tail.as_ref(), None, i);
                    tail = Some(p.clone());
                    items.push((p, v));
                }
                Effect::ListInsert(items)
            }
            Intent::LInsert {
                before,
                pivot,
                value,
            } => {
                let Some(l) = list else { return Ok(None) };
                let Some((at, _)) = l.iter().find(|(_, v)| **v == pivot) else {
                    return Ok(None);
                };
                let p = if before {
                    pos(l.prev_before(at), Some(at), 0)
                } else {
                    pos(Some(at), l.next_after(at), 0)
                };
                Effect::ListInsert(vec![(p, value)])
            }
            Intent::LSet { index, value } => {
                let Some(l) = list else {
                    return Err(WriteError::NoSuchKey);
                };
                let i = if index < 0 {
                    l.len() as i64 + index
                } else {
                    index
                };
                let at = usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i))
                    .ok_or(WriteError::IndexOutOfRange)?;
                Effect::ListSet {
                    pos: at.0.clone(),
                    value,
                }
            }
            Intent::LRem { count, value } => {
                let Some(l) = list else { return Ok(None) };
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let matches = |(p, v): (&Position, &Bytes)| (*v == value).then(|| p.clone());
                let positions: Vec<Position> = if count >= 0 {
                    l.iter().filter_map(matches).take(limit).collect()
                } else {
                    l.iter().rev().filter_map(matches).take(limit).collect()
                };
                if positions.is_empty() {
                    return Ok(None);
                }
                Effect::ListRemove(positions)
            }
            Intent::LTrim { start, stop } => {
                let Some(l) = list else { return Ok(None) };
                match resolve_range(start, stop, l.len()) {
                    None => Effect::ListTrim(None),
                    Some((0, last)) if last + 1 == l.len() => return Ok(None),
                    Some((a, b)) => {
                        let lo = l.get(a).map(|(p, _)| p.clone());
                        let hi = l.get(b).map(|(p, _)| p.clone());
                        match (lo, hi) {
                            (Some(lo), Some(hi)) => Effect::ListTrim(Some((lo, hi))),
                            _ => return Ok(None),
                        }
                    }
                }
            }
            Intent::LPop(n) | Intent::RPop(n) if n == 0 => return Ok(None),
            Intent::LPop(n) => {
                let Some(l) = list else { return Ok(None) };
                Effect::ListRemove(l.iter().take(n).map(|(p, _)| p.clone()).collect())
            }
            Intent::RPop(n) => {
                let Some(l) = list else { return Ok(None) };
                Effect::ListRemove(l.iter().rev().take(n).map(|(p, _)| p.clone()).collect())
            }
        };
        let fresh = fresh && !matches!(effect, Effect::Del);
        Ok(Some(Operation {
            origin,
            seq,
            hlc,
            deps: self.version_vector().clone(),
            txn_rest: 0,
            body: Body::Key(KeyWrite { key, fresh, effect }),
        }))
    }

    /// Prepares FLUSHALL / FLUSHDB: an observed-remove of every key.
    pub fn prepare_flush(&self, origin: RegionId, hlc: Hlc) -> Operation {
        Operation {
            origin,
            seq: self.version_vector().get(origin) + 1,
            hlc,
            deps: self.version_vector().clone(),
            txn_rest: 0,
            body: Body::FlushAll,
        }
    }

    /// Prepares the replicated delete of an expired key, issued by the region
    /// that owns its winning deadline (`None`: not expired, or not ours).
    pub fn prepare_expiry_delete(
        &self,
        origin: RegionId,
        hlc: Hlc,
        key: &Bytes,
        now_ms: u64,
    ) -> Option<Operation> {
        let entry = self.entry(key)?;
        let d = entry.deadline()?;
        if d.owner != origin || now_ms < d.at_ms {
            return None;
        }
        Some(Operation {
            origin,
            seq: self.version_vector().get(origin) + 1,
            hlc,
            deps: self.version_vector().clone(),
            txn_rest: 0,
            body: Body::Key(KeyWrite {
                key: key.clone(),
                fresh: false,
                effect: Effect::Del,
            }),
        })
    }
}

/// Keeps the last of items with equal keys (as Redis does for `HSET f 1 f
/// 2`): one operation never tags one member twice.
fn dedup<T>(items: Vec<T>, key: impl Fn(&T) -> &Bytes) -> Vec<T> {
    // Most writes name one or a few items: compared pairwise, without
    // hashing or cloning keys.
    const SMALL: usize = 8;
    let keep: Vec<bool> = if items.len() <= SMALL {
        (0..items.len())
            .map(|i| {
                !items[i + 1..]
                    .iter()
                    .any(|later| key(later) == key(&items[i]))
            })
            .collect()
    } else {
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        let mut keep: Vec<bool> = items
            .iter()
            .rev()
            .map(|i| seen.insert(&key(i)[..]))
            .collect();
        keep.reverse();
        keep
    };
    if keep.iter().all(|&k| k) {
        return items;
    }
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(i, k)| k.then_some(i))
        .collect()
}

fn hash_field(live: Option<&Content>, field: &[u8]) -> Option<Bytes> {
    match live {
        Some(Content::Hash(h)) => h.get(field).map(|(v, _)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_the_last_of_equal_keys_in_order() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        for n in [0, 1, 2, 5, 8, 9, 40] {
            let items: Vec<(Bytes, usize)> = (0..n).map(|i| (b(&(i % 3).to_string()), i)).collect();
            let want: Vec<(Bytes, usize)> = items
                .iter()
                .enumerate()
                .filter(|(i, (k, _))| !items[i + 1..].iter().any(|(l, _)| l == k))
                .map(|(_, p)| p.clone())
                .collect();
            assert_eq!(dedup(items, |(k, _)| k), want, "{n} items");
        }
    }
}
