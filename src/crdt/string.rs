//! Strings and counters: an LWW register whose value may be incremented.

use bytes::Bytes;

use super::codec::{DecodeError, Reader};
use super::counter::Counter;
use super::id::{Stamp, Tag};
use super::number::{add_to_base, Delta};
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

impl StringContent {
    /// Writes a new base (SET and every read-modify-write of a string).
    /// Returns whether it raced a concurrent base.
    pub fn set(&mut self, value: Bytes, tag: Tag, ctx: &VersionVector) -> bool {
        self.value.write_base(value, tag, ctx)
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

    /// Hash of the visible value.
    pub fn digest(&self) -> u128 {
        super::digest::hash_parts(&[&self.get().0])
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
