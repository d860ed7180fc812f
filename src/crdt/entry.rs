//! One key: its content per type, its expiry, and which type is visible.
//!
//! Normally a key holds one type. When two regions write a key concurrently
//! as two types, both contents are kept and the type whose latest write is
//! greatest in LWW order is the one clients see; the loser stays hidden until
//! a later write from a region that observed it removes it. Keeping the loser
//! (instead of deleting it on arrival) is what makes the outcome independent
//! of arrival order.

use smallvec::SmallVec;

use super::codec::{self, DecodeError, Reader};
use super::digest::hash_parts;
use super::expiry::{Deadline, ExpiryRegister};
use super::hash::HashContent;
use super::id::Stamp;
use super::list::ListContent;
use super::op::KeyType;
use super::set::SetContent;
use super::string::StringContent;
use super::vv::VersionVector;
use super::zset::ZSetContent;

/// The content of one type under a key.
#[derive(Clone, Debug)]
pub enum Content {
    /// A string or counter.
    String(StringContent),
    /// A list.
    List(ListContent),
    /// A set.
    Set(SetContent),
    /// A sorted set.
    ZSet(ZSetContent),
    /// A hash.
    Hash(HashContent),
}

impl Content {
    fn new(t: KeyType) -> Self {
        match t {
            KeyType::String => Content::String(Default::default()),
            KeyType::List => Content::List(Default::default()),
            KeyType::Set => Content::Set(Default::default()),
            KeyType::ZSet => Content::ZSet(Default::default()),
            KeyType::Hash => Content::Hash(Default::default()),
        }
    }

    /// Its type.
    pub fn key_type(&self) -> KeyType {
        match self {
            Content::String(_) => KeyType::String,
            Content::List(_) => KeyType::List,
            Content::Set(_) => KeyType::Set,
            Content::ZSet(_) => KeyType::ZSet,
            Content::Hash(_) => KeyType::Hash,
        }
    }

    /// Whether nothing is held (the key would not exist).
    pub fn is_empty(&self) -> bool {
        match self {
            Content::String(c) => c.is_empty(),
            Content::List(c) => c.is_empty(),
            Content::Set(c) => c.is_empty(),
            Content::ZSet(c) => c.is_empty(),
            Content::Hash(c) => c.is_empty(),
        }
    }

    /// Greatest stamp of any write held.
    pub fn max_stamp(&self) -> Option<Stamp> {
        match self {
            Content::String(c) => c.max_stamp(),
            Content::List(c) => c.max_stamp(),
            Content::Set(c) => c.max_stamp(),
            Content::ZSet(c) => c.max_stamp(),
            Content::Hash(c) => c.max_stamp(),
        }
    }

    /// Observed-remove of everything.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        match self {
            Content::String(c) => c.remove_observed(ctx),
            Content::List(c) => c.remove_observed(ctx),
            Content::Set(c) => c.remove_observed(ctx),
            Content::ZSet(c) => c.remove_observed(ctx),
            Content::Hash(c) => c.remove_observed(ctx),
        }
    }

    /// Drops causally stable metadata.
    pub fn collect(&mut self, stable: &VersionVector) {
        match self {
            Content::String(c) => c.collect(stable),
            Content::List(_) => {}
            Content::Set(c) => c.collect(stable),
            Content::ZSet(c) => c.collect(stable),
            Content::Hash(c) => c.collect(stable),
        }
    }

    /// Metadata items held.
    pub fn metadata_len(&self) -> usize {
        match self {
            Content::String(c) => c.metadata_len(),
            Content::List(c) => c.metadata_len(),
            Content::Set(c) => c.metadata_len(),
            Content::ZSet(c) => c.metadata_len(),
            Content::Hash(c) => c.metadata_len(),
        }
    }

    /// Order-independent hash of what a client reads.
    pub fn digest(&self) -> u128 {
        match self {
            Content::String(c) => c.digest(),
            Content::List(c) => c.digest(),
            Content::Set(c) => c.digest(),
            Content::ZSet(c) => c.digest(),
            Content::Hash(c) => c.digest(),
        }
    }
}

/// Everything held under one key.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    contents: SmallVec<[Content; 1]>,
    expiry: ExpiryRegister,
    /// This key's share of the state digest (0 when not visible).
    pub(crate) hash: u128,
}

impl Entry {
    /// The content clients see: the only one, or on a type conflict the one
    /// whose latest write is greatest in LWW order.
    pub fn visible(&self) -> Option<&Content> {
        match self.contents.len() {
            0 => None,
            1 => self.contents.first(),
            _ => self.contents.iter().max_by_key(|c| c.max_stamp()),
        }
    }

    /// The content of type `t`, created empty if absent.
    pub(crate) fn content_mut(&mut self, t: KeyType) -> &mut Content {
        let i = match self.contents.iter().position(|c| c.key_type() == t) {
            Some(i) => i,
            None => {
                self.contents.push(Content::new(t));
                self.contents.len() - 1
            }
        };
        &mut self.contents[i]
    }

    /// Removes observed content of every type except `keep`.
    pub(crate) fn remove_observed_except(&mut self, keep: Option<KeyType>, ctx: &VersionVector) {
        for c in self.contents.iter_mut() {
            if Some(c.key_type()) != keep {
                c.remove_observed(ctx);
            }
        }
    }

    /// The expiry register.
    pub(crate) fn expiry_mut(&mut self) -> &mut ExpiryRegister {
        &mut self.expiry
    }

    /// The deadline in force, if any.
    pub fn deadline(&self) -> Option<Deadline> {
        self.expiry.resolved()
    }

    /// Whether the key is visible at `now_ms` (has content and has not expired).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.visible().is_some() && self.deadline().is_none_or(|d| now_ms < d.at_ms)
    }

    /// Drops empty contents; returns whether nothing at all is left.
    pub(crate) fn prune(&mut self) -> bool {
        self.contents.retain(|c| !c.is_empty());
        self.contents.is_empty() && self.expiry.is_empty()
    }

    /// The types held (more than one: an unresolved type conflict).
    pub fn types(&self) -> impl Iterator<Item = KeyType> + '_ {
        self.contents.iter().map(Content::key_type)
    }

    /// Number of types held (more than one: an unresolved type conflict).
    pub fn type_count(&self) -> usize {
        self.contents.len()
    }

    /// This key's share of the digest: hash of key, visible type and content,
    /// and deadline.
    pub(crate) fn digest(&self, key: &[u8]) -> u128 {
        let Some(c) = self.visible() else { return 0 };
        let deadline = self.deadline().map_or(0, |d| d.at_ms);
        hash_parts(&[
            key,
            c.key_type().name().as_bytes(),
            &c.digest().to_le_bytes(),
            &deadline.to_le_bytes(),
        ])
    }

    /// Drops causally stable metadata of every content and the expiry.
    pub(crate) fn collect(&mut self, stable: &VersionVector) {
        for c in self.contents.iter_mut() {
            c.collect(stable);
        }
        self.expiry.collect(stable);
    }

    /// Collects what costs O(1) to collect: string contents and the expiry
    /// (a set, hash or sorted set is collected member by member, O(members)).
    /// What a region without peers does on every write.
    pub(crate) fn collect_small(&mut self, stable: &VersionVector) {
        for c in self.contents.iter_mut() {
            if let Content::String(s) = c {
                s.collect(stable);
            }
        }
        self.expiry.collect(stable);
    }

    /// Whether [`collect`](Self::collect) would change nothing at any
    /// frontier, in O(1): strings and the expiry are checked, lists hold
    /// nothing collectable, and a set, hash or sorted set counts the
    /// members it could still collect.
    pub(crate) fn settled(&self) -> bool {
        self.expiry.settled()
            && self.contents.iter().all(|c| match c {
                Content::String(s) => s.settled(),
                Content::List(_) => true,
                Content::Set(s) => s.settled(),
                Content::ZSet(z) => z.settled(),
                Content::Hash(h) => h.settled(),
            })
    }

    /// Metadata items held (tags, bases, increments, elements, expiry entries).
    pub fn metadata_len(&self) -> usize {
        self.contents
            .iter()
            .map(Content::metadata_len)
            .sum::<usize>()
            + self.expiry.len()
    }

    /// Appends the snapshot encoding: content count, then each content as a
    /// type byte and its encoding (in the order held, which is kept), then
    /// the expiry register. The digest share is derived, so not written.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.contents.len() as u64);
        for c in &self.contents {
            match c {
                Content::String(c) => {
                    out.push(TYPE_STRING);
                    c.encode(out);
                }
                Content::List(c) => {
                    out.push(TYPE_LIST);
                    c.encode(out);
                }
                Content::Set(c) => {
                    out.push(TYPE_SET);
                    c.encode(out);
                }
                Content::ZSet(c) => {
                    out.push(TYPE_ZSET);
                    c.encode(out);
                }
                Content::Hash(c) => {
                    out.push(TYPE_HASH);
                    c.encode(out);
                }
            }
        }
        self.expiry.encode(out);
    }

    /// Reads what [`encode`](Self::encode) wrote for `key`, and computes the
    /// key's digest share. Refuses what a state never holds: two contents of
    /// one type, an empty content, an entry with nothing at all.
    pub(crate) fn decode(r: &mut Reader<'_>, key: &[u8]) -> Result<Self, DecodeError> {
        let start = r.pos();
        let n = r.count("content count", 2)?;
        let mut contents: SmallVec<[Content; 1]> = SmallVec::with_capacity(n.min(5));
        for _ in 0..n {
            let offset = r.pos();
            let c = match r.byte("content type")? {
                TYPE_STRING => Content::String(StringContent::decode(r)?),
                TYPE_LIST => Content::List(ListContent::decode(r)?),
                TYPE_SET => Content::Set(SetContent::decode(r)?),
                TYPE_ZSET => Content::ZSet(ZSetContent::decode(r)?),
                TYPE_HASH => Content::Hash(HashContent::decode(r)?),
                found => {
                    return Err(DecodeError::UnknownTag {
                        offset,
                        what: "content type",
                        found,
                    })
                }
            };
            if contents.iter().any(|h| h.key_type() == c.key_type()) {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "two contents of one type",
                });
            }
            if c.is_empty() {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "empty content",
                });
            }
            contents.push(c);
        }
        let expiry = ExpiryRegister::decode(r)?;
        let mut entry = Entry {
            contents,
            expiry,
            hash: 0,
        };
        if entry.contents.is_empty() && entry.expiry.is_empty() {
            return Err(DecodeError::NonCanonical {
                offset: start,
                what: "empty entry",
            });
        }
        entry.hash = entry.digest(key);
        Ok(entry)
    }
}

/// Content type bytes of the snapshot encoding (0 is never used).
const TYPE_STRING: u8 = 0x01;
const TYPE_LIST: u8 = 0x02;
const TYPE_SET: u8 = 0x03;
const TYPE_ZSET: u8 = 0x04;
const TYPE_HASH: u8 = 0x05;
