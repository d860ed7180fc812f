//! Strings and counters: an LWW register whose value may be incremented.

use bytes::Bytes;

use super::codec::{DecodeError, Reader};
use super::counter::Counter;
use super::detach::detach;
use super::id::{Stamp, Tag};
use super::number::{add_to_base, int_total, Delta};
use super::vv::VersionVector;

/// A string key's content (see [`Counter`] for the merge rule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StringContent {
    value: Counter<Bytes>,
}

/// What a string shows, and whether unseen increments were dropped because
/// the winning base is not a number.
pub fn visible(counter: &Counter<Bytes>) -> (Bytes, bool) {
    let base = counter.winner().map(|b| &b.value[..]);
    match counter.unseen() {
        None => (
            counter
                .winner()
                .map(|b| b.value.clone())
                .unwrap_or_default(),
            false,
        ),
        Some(sum) => {
            let (v, dropped) = add_to_base(base, sum);
            (Bytes::from(v), dropped)
        }
    }
}

/// Calls `f` with what a string shows, without allocating when it can: the
/// winning base itself when no increment is unseen, or an integer total
/// formatted on the stack (every INCR reads its value two or three times).
pub fn with_visible<R>(counter: &Counter<Bytes>, f: impl FnOnce(&[u8]) -> R) -> R {
    let base = counter.winner().map(|b| &b.value[..]);
    match counter.unseen() {
        None => f(base.unwrap_or_default()),
        Some(sum) => match int_total(base, sum) {
            Some(total) => f(itoa::Buffer::new().format(total).as_bytes()),
            None => f(&visible(counter).0),
        },
    }
}

/// Values up to this many bytes are copied into replies (see
/// [`StringContent::reply_value`]).
const COPIED_REPLY_MAX: usize = 128;

impl StringContent {
    /// Writes a new base (SET and every read-modify-write of a string).
    /// Returns whether it raced a concurrent base.
    pub fn set(&mut self, value: Bytes, tag: Tag, ctx: &VersionVector) -> bool {
        self.value.write_base(detach(value), tag, ctx)
    }

    /// Adds an increment (INCR family).
    pub fn incr(&mut self, delta: Delta, tag: Tag) {
        self.value.add_inc(delta, tag);
    }

    /// Observed-remove of the whole value.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        self.value.remove_observed(ctx);
    }

    /// The value a client reads, and whether increments were dropped.
    pub fn get(&self) -> (Bytes, bool) {
        visible(&self.value)
    }

    /// The value a client reads, for a reply: a small value is copied, so
    /// that the reply does not share the stored one. Why: sharing costs two
    /// atomic updates of a reference count that lives apart from the value,
    /// usually on a cache line no core has touched lately; a copy of a few
    /// bytes reads only the value, which the reply reads anyway.
    pub fn reply_value(&self) -> Bytes {
        self.with_value(|v| (v.len() <= COPIED_REPLY_MAX).then(|| Bytes::copy_from_slice(v)))
            .unwrap_or_else(|| self.get().0)
    }

    /// Calls `f` with the value a client reads (see [`with_visible`]).
    pub fn with_value<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        with_visible(&self.value, f)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Greatest stamp of any write held.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.value.max_stamp()
    }

    /// Drops causally stable metadata.
    pub fn collect(&mut self, stable: &VersionVector) {
        self.value.collect(stable);
    }

    /// Metadata items held.
    pub fn metadata_len(&self) -> usize {
        self.value.metadata_len()
    }

    /// Whether collecting would change nothing (see [`Counter::settled`]).
    pub fn settled(&self) -> bool {
        self.value.settled()
    }

    /// Hash of the visible value.
    pub fn digest(&self) -> u128 {
        self.with_value(|v| super::digest::hash_parts(&[v]))
    }

    /// Appends the snapshot encoding: the counter (bases, increments, folded sum).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.value.encode(out);
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StringContent {
            value: Counter::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::number::Decimal;

    fn tag(seq: u64) -> Tag {
        Tag::region_1(seq)
    }

    /// What `with_value` shows without allocating, and what `reply_value`
    /// copies or shares, is what `get` shows.
    #[test]
    fn with_value_shows_what_get_shows() {
        let none = VersionVector::new();
        let long = "x".repeat(COPIED_REPLY_MAX + 1);
        let cases: Vec<(Option<&str>, Vec<Delta>)> = vec![
            (None, vec![]),
            (Some(&long), vec![]),
            (Some(&long[1..]), vec![]),
            (Some("007"), vec![]),
            (Some("abc"), vec![]),
            (None, vec![Delta::Int(3)]),
            (Some("007"), vec![Delta::Int(1)]),
            (Some("-5"), vec![Delta::Int(2), Delta::Int(-10)]),
            (Some("9223372036854775807"), vec![Delta::Int(i64::MAX)]),
            (Some("abc"), vec![Delta::Int(1)]),
            (Some("1.5"), vec![Delta::Int(1)]),
            (
                Some("2"),
                vec![Delta::Float(Decimal::parse(b"0.25").expect("decimal"))],
            ),
        ];
        for (base, incs) in cases {
            let mut s = StringContent::default();
            let mut seq = 0;
            if let Some(b) = base {
                seq += 1;
                s.set(Bytes::copy_from_slice(b.as_bytes()), tag(seq), &none);
            }
            for d in incs.clone() {
                seq += 1;
                s.incr(d, tag(seq));
            }
            assert_eq!(
                s.with_value(<[u8]>::to_vec),
                s.get().0.to_vec(),
                "{base:?} {incs:?}"
            );
            assert_eq!(s.reply_value(), s.get().0, "{base:?} {incs:?}");
        }
    }
}
