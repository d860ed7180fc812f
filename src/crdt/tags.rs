//! Add-wins presence: the tags of the adds nobody has removed yet.

use smallvec::SmallVec;

use super::codec::{self, DecodeError, Reader, MIN_TAG};
use super::id::{Stamp, Tag};
use super::vv::VersionVector;

/// The live add-tags of one member or field. Present while non-empty. An add
/// replaces the tags it observed, so there are never more tags than adds that
/// raced each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(SmallVec<[Tag; 1]>);

impl Tags {
    /// Whether present.
    pub fn is_present(&self) -> bool {
        !self.0.is_empty()
    }

    /// Adds `tag`, replacing the tags its writer had seen.
    pub fn add(&mut self, tag: Tag, ctx: &VersionVector) {
        self.0.retain(|t| !ctx.contains(t.dot));
        self.0.push(tag);
    }

    /// Removes the tags the remover had seen. Returns whether any tag
    /// survived that the remover had not seen (add-wins: a conflict).
    pub fn remove_observed(&mut self, ctx: &VersionVector) -> bool {
        self.0.retain(|t| !ctx.contains(t.dot));
        self.is_present()
    }

    /// Greatest stamp among live tags.
    pub fn max_stamp(&self) -> Option<Stamp> {
        self.0.iter().map(|t| t.stamp()).max()
    }

    /// Keeps one tag (the greatest) once all are stable: presence and the
    /// maximum stamp are all that can still matter.
    pub fn collect(&mut self, stable: &VersionVector) {
        if self.0.len() > 1 && self.0.iter().all(|t| stable.contains(t.dot)) {
            if let Some(max) = self.0.iter().copied().max_by_key(|t| t.stamp()) {
                self.0.clear();
                self.0.push(max);
            }
        }
    }

    /// Whether [`collect`](Self::collect) would change nothing, at any
    /// frontier: one tag or none.
    pub fn settled(&self) -> bool {
        self.0.len() <= 1
    }

    /// Number of tags held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no tag is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the snapshot encoding: tag count, then the tags in order.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.0.len() as u64);
        for t in &self.0 {
            codec::put_tag(out, t);
        }
    }

    /// Reads what [`encode`](Self::encode) wrote. An empty set is refused:
    /// tags are only stored for what is present.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.pos();
        let n = r.count("tag count", MIN_TAG)?;
        if n == 0 {
            return Err(DecodeError::NonCanonical {
                offset,
                what: "empty tag set",
            });
        }
        let mut tags = SmallVec::with_capacity(codec::prealloc(n));
        for _ in 0..n {
            tags.push(r.tag()?);
        }
        Ok(Tags(tags))
    }
}
