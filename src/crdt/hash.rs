//! Hashes: an add-wins map whose field values are strings-with-counters.

use bytes::Bytes;
use indexmap::IndexMap;

use super::codec::{self, DecodeError, Reader, MIN_BYTES, MIN_TAG};
use super::counter::Counter;
use super::detach::detach;
use super::digest::{hash_parts, Accumulator};
use super::id::{Stamp, Tag};
use super::number::Delta;
use super::string::{visible, with_visible};
use super::tags::Tags;
use super::vv::VersionVector;

/// One field: add-wins presence and an LWW-plus-increments value.
#[derive(Clone, Debug, Default)]
struct Field {
    tags: Tags,
    value: Counter<Bytes>,
}

impl Field {
    fn hash(&self, name: &[u8]) -> u128 {
        // Borrowed, not `visible`: cloning a stored value to hash it cost
        // an allocation per HSET.
        with_visible(&self.value, |v| hash_parts(&[name, v]))
    }

    /// Whether collecting could still shrink its metadata.
    fn unsettled(&self) -> bool {
        !self.tags.settled() || !self.value.settled()
    }
}

/// A hash key's content.
#[derive(Clone, Debug, Default)]
pub struct HashContent {
    // foldhash rather than SipHash, as for the key space (`KeyMap`).
    fields: IndexMap<Bytes, Field, foldhash::fast::RandomState>,
    acc: Accumulator,
    /// Fields that collecting could still shrink: while none is, collection
    /// passes skip the hash instead of visiting every field.
    unsettled: usize,
}

impl HashContent {
    /// Runs `f` on a field and keeps the digest and presence up to date.
    fn update<R>(
        &mut self,
        name: &Bytes,
        create: bool,
        f: impl FnOnce(&mut Field) -> R,
    ) -> Option<R> {
        if !create && !self.fields.contains_key(name) {
            return None;
        }
        // Looked up first: `entry` needs the name by value.
        let field = match self.fields.get_index_of(&name[..]) {
            Some(i) => &mut self.fields[i],
            None => self.fields.entry(detach(name.clone())).or_default(),
        };
        if field.tags.is_present() {
            self.acc.sub(field.hash(name));
        }
        let was = field.unsettled();
        let r = f(field);
        let present = field.tags.is_present();
        let now = present && field.unsettled();
        if present {
            self.acc.add(field.hash(name));
        } else {
            self.fields.swap_remove(name);
        }
        self.unsettled = self.unsettled + usize::from(now) - usize::from(was);
        Some(r)
    }

    /// HSET of one field. Returns whether it raced a concurrent value.
    pub fn set(&mut self, name: Bytes, value: Bytes, tag: Tag, ctx: &VersionVector) -> bool {
        self.update(&name, true, |f| {
            f.tags.add(tag, ctx);
            f.value.write_base(detach(value), tag, ctx)
        })
        .unwrap_or(false)
    }

    /// HINCRBY / HINCRBYFLOAT of one field.
    pub fn incr(&mut self, name: Bytes, delta: Delta, tag: Tag, ctx: &VersionVector) {
        self.update(&name, true, |f| {
            f.tags.add(tag, ctx);
            f.value.add_inc(delta, tag);
        });
    }

    /// HDEL of one field. Returns whether an unseen write kept it.
    pub fn remove(&mut self, name: &Bytes, ctx: &VersionVector) -> bool {
        self.update(name, false, |f| {
            f.value.remove_observed(ctx);
            f.tags.remove_observed(ctx)
        })
        .unwrap_or(false)
    }

    /// Observed-remove of every field.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        let names: Vec<Bytes> = self.fields.keys().cloned().collect();
        for n in names {
            self.remove(&n, ctx);
        }
    }

    /// The value of a field (and whether increments were dropped).
    pub fn get(&self, name: &[u8]) -> Option<(Bytes, bool)> {
        self.fields.get(name).map(|f| visible(&f.value))
    }

    /// Fields and values in an arbitrary (region-local) order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, Bytes)> {
        self.fields.iter().map(|(k, f)| (k, visible(&f.value).0))
    }

    /// The field at `index` of the local order (HRANDFIELD).
    pub fn field_at(&self, index: usize) -> Option<(&Bytes, Bytes)> {
        self.fields
            .get_index(index)
            .map(|(k, f)| (k, visible(&f.value).0))
    }

    /// Whether a field is present.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.fields.contains_key(name)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Greatest stamp of any write held.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.fields
            .values()
            .filter_map(|f| f.tags.max_stamp().max(f.value.max_stamp()))
            .max()
    }

    /// Drops causally stable metadata.
    pub fn collect(&mut self, stable: &VersionVector) {
        if self.unsettled == 0 {
            return;
        }
        for f in self.fields.values_mut() {
            f.tags.collect(stable);
            f.value.collect(stable);
        }
        self.unsettled = self.fields.values().filter(|f| f.unsettled()).count();
    }

    /// Whether [`collect`](Self::collect) would change nothing, at any
    /// frontier (O(1)).
    pub fn settled(&self) -> bool {
        self.unsettled == 0
    }

    /// Metadata items held.
    pub fn metadata_len(&self) -> usize {
        self.fields
            .values()
            .map(|f| f.tags.len() + f.value.metadata_len())
            .sum()
    }

    /// Order-independent hash of fields and values.
    pub fn digest(&self) -> u128 {
        self.acc.0
    }

    /// Appends the snapshot encoding: field count, then each field's name,
    /// tags and value counter, in the local order.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.fields.len() as u64);
        for (name, f) in &self.fields {
            codec::put_bytes(out, name);
            f.tags.encode(out);
            f.value.encode(out);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote; the digest is recomputed.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // Name, tags (count + one tag), empty counter (three bytes).
        let n = r.count("field count", MIN_BYTES + 1 + MIN_TAG + 3)?;
        let mut c = HashContent {
            fields: IndexMap::with_capacity_and_hasher(codec::prealloc(n), Default::default()),
            acc: Accumulator::default(),
            unsettled: 0,
        };
        for _ in 0..n {
            let offset = r.pos();
            let name = r.owned("field")?;
            let tags = Tags::decode(r)?;
            let value = Counter::decode(r)?;
            let field = Field { tags, value };
            c.acc.add(field.hash(&name));
            c.unsettled += usize::from(field.unsettled());
            if c.fields.insert(name, field).is_some() {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "duplicate hash field",
                });
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent HSETs leave a field with two tags and two values until
    /// both are stable; the hash knows it without visiting its fields.
    #[test]
    fn counts_fields_with_collectable_metadata() {
        let mut h = HashContent::default();
        let none = VersionVector::new();
        for i in 0..10_000u64 {
            h.set(
                Bytes::from(format!("f{i}")),
                Bytes::from("v"),
                Tag::test(1, i + 1),
                &none,
            );
        }
        assert!(h.settled());
        assert!(h.set(Bytes::from("f1"), Bytes::from("w"), Tag::test(2, 1), &none));
        assert!(!h.settled());
        assert_eq!(h.unsettled, 1);
        // A write that saw both settles the field again.
        h.set(
            Bytes::from("f1"),
            Bytes::from("x"),
            Tag::test(2, 2),
            &VersionVector::upto(&[(1, 10_000), (2, 1)]),
        );
        assert!(h.settled());
        h.set(Bytes::from("f3"), Bytes::from("y"), Tag::test(2, 3), &none);
        h.remove(
            &Bytes::from("f3"),
            &VersionVector::upto(&[(1, 10_000), (2, 3)]),
        );
        assert!(h.settled(), "a removed field leaves nothing to collect");
        h.set(Bytes::from("f4"), Bytes::from("z"), Tag::test(2, 4), &none);
        assert!(!h.settled());
        h.collect(&VersionVector::upto(&[(1, 10_000), (2, 4)]));
        assert!(h.settled());
        // Region 1's write has the later HLC (5 against 4): it wins.
        assert_eq!(h.get(b"f4").map(|(v, _)| v), Some(Bytes::from("v")));
    }
}
