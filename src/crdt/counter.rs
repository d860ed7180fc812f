//! A value that is an LWW **base** plus the increments that base had not seen.
//!
//! This one rule serves strings (SET vs INCRBY), hash fields (HSET vs
//! HINCRBY) and sorted-set scores (ZADD vs ZINCRBY). Bases form a
//! multi-value register: a write removes the bases it observed, so a base
//! that was concurrent with a delete survives it, and the visible base is
//! the greatest in LWW order among the survivors.

use bytes::Bytes;
use smallvec::SmallVec;

use super::codec::{self, DecodeError, Reader, MIN_TAG};
use super::id::{Stamp, Tag};
use super::number::{Delta, Sum};
use super::vv::VersionVector;

/// One candidate base.
#[derive(Clone, Debug, PartialEq)]
pub struct Base<B> {
    /// The written value.
    pub value: B,
    /// Who wrote it, when.
    pub tag: Tag,
    /// What the writer had seen, kept only while increments it may cover are
    /// held (increments that arrive later are never covered: causal delivery).
    covers: Option<Box<VersionVector>>,
}

impl<B> Base<B> {
    fn covers(&self, inc: &Inc) -> bool {
        self.covers
            .as_ref()
            .is_some_and(|c| c.contains(inc.tag.dot))
    }
}

/// One increment not yet causally stable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inc {
    /// Who incremented, when.
    pub tag: Tag,
    /// By how much.
    pub delta: Delta,
}

/// Increments every region has seen and the visible base had not: folded
/// into one sum, since any later base or remove covers them all.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Folded {
    sum: Sum,
    stamp: Stamp,
}

/// Base plus unseen increments (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Counter<B> {
    bases: SmallVec<[Base<B>; 1]>,
    incs: Vec<Inc>,
    folded: Option<Box<Folded>>,
    /// [`unseen`](Self::unseen), kept up to date so reads and increments of a
    /// hot counter stay O(1) however many increments are not yet stable.
    unseen: Option<Box<Sum>>,
}

impl<B> Default for Counter<B> {
    fn default() -> Self {
        Counter {
            bases: SmallVec::new(),
            incs: Vec::new(),
            folded: None,
            unseen: None,
        }
    }
}

impl<B: Clone> Counter<B> {
    /// Whether nothing is held: no base, no increment.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty() && self.incs.is_empty() && self.folded.is_none()
    }

    /// Writes a new base observing `ctx`. Returns whether a concurrent base
    /// (one the writer had not seen) was present: an LWW conflict.
    pub fn write_base(&mut self, value: B, tag: Tag, ctx: &VersionVector) -> bool {
        self.bases.retain(|b| !ctx.contains(b.tag.dot));
        let concurrent = !self.bases.is_empty();
        let covers = self
            .incs
            .iter()
            .any(|i| ctx.contains(i.tag.dot))
            .then(|| Box::new(ctx.clone()));
        self.bases.push(Base { value, tag, covers });
        if self.winner().is_some_and(|w| w.tag == tag) {
            // Folded increments are stable, so this later write saw them all.
            self.folded = None;
        }
        self.recompute_unseen();
        concurrent
    }

    /// Adds an increment.
    pub fn add_inc(&mut self, delta: Delta, tag: Tag) {
        // A new increment is never covered by a base already held: that base
        // would have had to see it, and so arrive after it.
        self.unseen.get_or_insert_with(Default::default).add(&delta);
        self.incs.push(Inc { tag, delta });
    }

    /// Removes every base and increment the remover had seen.
    pub fn remove_observed(&mut self, ctx: &VersionVector) {
        self.bases.retain(|b| !ctx.contains(b.tag.dot));
        self.incs.retain(|i| !ctx.contains(i.tag.dot));
        self.folded = None;
        self.recompute_unseen();
    }

    /// The visible base: greatest in LWW order.
    pub fn winner(&self) -> Option<&Base<B>> {
        self.bases.iter().max_by_key(|b| b.tag.stamp())
    }

    /// The increments the visible base had not seen, summed; `None` when there
    /// are none (the base is then shown as written).
    pub fn unseen(&self) -> Option<&Sum> {
        self.unseen.as_deref()
    }

    fn recompute_unseen(&mut self) {
        self.unseen = self.sum_unseen().map(Box::new);
    }

    fn sum_unseen(&self) -> Option<Sum> {
        let winner = self.winner();
        let mut sum = self.folded.as_ref().map(|f| f.sum.clone());
        for inc in &self.incs {
            if !winner.is_some_and(|w| w.covers(inc)) {
                sum.get_or_insert_with(Sum::default).add(&inc.delta);
            }
        }
        sum
    }

    /// Greatest stamp of any write held: decides type conflicts.
    pub fn max_stamp(&self) -> Option<Stamp> {
        let bases = self.bases.iter().map(|b| b.tag.stamp());
        let incs = self.incs.iter().map(|i| i.tag.stamp());
        bases
            .chain(incs)
            .chain(self.folded.as_ref().map(|f| f.stamp))
            .max()
    }

    /// Drops what every region has seen (`stable`): covered increments and
    /// losing bases go, uncovered increments fold into one sum. The visible
    /// value and the maximum stamp do not change.
    pub fn collect(&mut self, stable: &VersionVector) {
        // Index, not a clone of the winner: a region without peers collects
        // on every write (see `State::set_alone`).
        let winner = self
            .bases
            .iter()
            .enumerate()
            .max_by_key(|(_, b)| b.tag.stamp())
            .map(|(i, _)| i);
        if !self.incs.is_empty() {
            let covers = winner.and_then(|i| self.bases[i].covers.as_deref());
            let folded = &mut self.folded;
            self.incs.retain(|inc| {
                if !stable.contains(inc.tag.dot) {
                    return true;
                }
                if !covers.is_some_and(|c| c.contains(inc.tag.dot)) {
                    let f = folded.get_or_insert_with(|| {
                        Box::new(Folded {
                            sum: Sum::default(),
                            stamp: inc.tag.stamp(),
                        })
                    });
                    f.sum.add(&inc.delta);
                    f.stamp = f.stamp.max(inc.tag.stamp());
                }
                false
            });
        }
        let winner_tag = winner.map(|i| self.bases[i].tag);
        self.bases
            .retain(|b| Some(b.tag) == winner_tag || !stable.contains(b.tag.dot));
        if self.incs.is_empty() {
            for b in &mut self.bases {
                b.covers = None;
            }
        }
        debug_assert_eq!(self.unseen.as_deref(), self.sum_unseen().as_ref());
    }

    /// Whether [`collect`](Self::collect) would change nothing at any
    /// frontier: one base at most, covering nothing, and no increment.
    pub fn settled(&self) -> bool {
        self.bases.len() <= 1
            && self.incs.is_empty()
            && self.bases.iter().all(|b| b.covers.is_none())
    }

    /// Number of metadata items held (bases, increments, folded sum).
    pub fn metadata_len(&self) -> usize {
        self.bases.len() + self.incs.len() + usize::from(self.folded.is_some())
    }
}

/// How a base value is written in a snapshot: strings and hash values as
/// `bytes`, scores as `f64` (never NaN).
pub(crate) trait BaseValue: Sized {
    /// Fewest bytes one encoded value takes (bounds declared counts).
    const MIN_LEN: usize;
    /// Appends the value.
    fn put(&self, out: &mut Vec<u8>);
    /// Reads a value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl BaseValue for Bytes {
    const MIN_LEN: usize = 1;
    fn put(&self, out: &mut Vec<u8>) {
        codec::put_bytes(out, self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.owned("base value")
    }
}

impl BaseValue for f64 {
    const MIN_LEN: usize = 8;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.score()
    }
}

impl<B: Clone> Counter<B> {
    /// Appends the snapshot encoding: bases (value, tag, `covers` flag and
    /// vector), increments (tag, delta), then the folded sum if any. The
    /// cached unseen sum is not written: [`decode`](Self::decode) recomputes
    /// it from the rest.
    pub(crate) fn encode(&self, out: &mut Vec<u8>)
    where
        B: BaseValue,
    {
        codec::put_varint(out, self.bases.len() as u64);
        for b in &self.bases {
            b.value.put(out);
            codec::put_tag(out, &b.tag);
            match &b.covers {
                None => out.push(0),
                Some(vv) => {
                    out.push(1);
                    codec::put_vv(out, vv);
                }
            }
        }
        codec::put_varint(out, self.incs.len() as u64);
        for i in &self.incs {
            codec::put_tag(out, &i.tag);
            codec::put_delta(out, &i.delta);
        }
        match &self.folded {
            None => out.push(0),
            Some(f) => {
                out.push(1);
                f.sum.encode(out);
                codec::put_stamp(out, &f.stamp);
            }
        }
    }

    /// Reads what [`encode`](Self::encode) wrote.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>
    where
        B: BaseValue,
    {
        let n = r.count("base count", B::MIN_LEN + MIN_TAG + 1)?;
        let mut bases = SmallVec::with_capacity(codec::prealloc(n));
        for _ in 0..n {
            let value = B::read(r)?;
            let tag = r.tag()?;
            let covers = match flag(r, "covers flag")? {
                false => None,
                true => Some(Box::new(r.vv()?)),
            };
            bases.push(Base { value, tag, covers });
        }
        let n = r.count("increment count", MIN_TAG + 2)?;
        let mut incs = Vec::with_capacity(codec::prealloc(n));
        for _ in 0..n {
            let tag = r.tag()?;
            let delta = r.delta()?;
            incs.push(Inc { tag, delta });
        }
        let folded = match flag(r, "folded flag")? {
            false => None,
            true => {
                let sum = Sum::decode(r)?;
                let stamp = r.stamp()?;
                Some(Box::new(Folded { sum, stamp }))
            }
        };
        let mut c = Counter {
            bases,
            incs,
            folded,
            unseen: None,
        };
        c.recompute_unseen();
        Ok(c)
    }
}

/// A presence byte: `0x00` absent, `0x01` present.
pub(crate) fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    let offset = r.pos();
    match r.byte(what)? {
        0 => Ok(false),
        1 => Ok(true),
        found => Err(DecodeError::UnknownTag {
            offset,
            what,
            found,
        }),
    }
}
