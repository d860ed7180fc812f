//! A value that is an LWW **base** plus the increments that base had not seen.
//!
//! This one rule serves strings (SET vs INCRBY), hash fields (HSET vs
//! HINCRBY) and sorted-set scores (ZADD vs ZINCRBY). Bases form a
//! multi-value register: a write removes the bases it observed, so a base
//! that was concurrent with a delete survives it, and the visible base is
//! the greatest in LWW order among the survivors.

use smallvec::SmallVec;

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
        let winner_tag = self.winner().map(|w| w.tag);
        let winner = self.winner().cloned();
        let mut kept = Vec::with_capacity(self.incs.len());
        for inc in self.incs.drain(..) {
            if !stable.contains(inc.tag.dot) {
                kept.push(inc);
            } else if !winner.as_ref().is_some_and(|w| w.covers(&inc)) {
                let f = self.folded.get_or_insert_with(|| {
                    Box::new(Folded {
                        sum: Sum::default(),
                        stamp: inc.tag.stamp(),
                    })
                });
                f.sum.add(&inc.delta);
                f.stamp = f.stamp.max(inc.tag.stamp());
            }
        }
        self.incs = kept;
        self.bases
            .retain(|b| Some(b.tag) == winner_tag || !stable.contains(b.tag.dot));
        if self.incs.is_empty() {
            for b in &mut self.bases {
                b.covers = None;
            }
        }
        debug_assert_eq!(self.unseen.as_deref(), self.sum_unseen().as_ref());
    }

    /// Number of metadata items held (bases, increments, folded sum).
    pub fn metadata_len(&self) -> usize {
        self.bases.len() + self.incs.len() + usize::from(self.folded.is_some())
    }
}
