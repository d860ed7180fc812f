//! Causal stability: which operations every region has seen, so that the
//! metadata kept only for racing with them can be dropped.

use std::collections::BTreeMap;

use super::id::RegionId;
use super::op::Operation;
use super::vv::VersionVector;

/// Tracks what each member region is known to have seen.
///
/// An operation is *stable* at this region when every member has seen it and
/// every operation concurrent with it has already arrived here; then any
/// operation still to come is causally after it. Knowledge of a member comes
/// from two sources: the deps of its latest operation applied here (always
/// safe: its later operations come after them), and vectors it reports (acks),
/// usable once we hold all of its own operations the report counts.
#[derive(Clone, Debug)]
pub struct Stability {
    local: RegionId,
    known: BTreeMap<RegionId, VersionVector>,
    reported: BTreeMap<RegionId, VersionVector>,
}

impl Stability {
    /// A tracker for region `local` in a cluster of `members` (`local`
    /// included or not).
    pub fn new(local: RegionId, members: impl IntoIterator<Item = RegionId>) -> Self {
        let mut known: BTreeMap<RegionId, VersionVector> = members
            .into_iter()
            .map(|m| (m, VersionVector::new()))
            .collect();
        known.remove(&local);
        Stability {
            local,
            known,
            reported: BTreeMap::new(),
        }
    }

    /// The member regions other than the local one.
    pub fn peers(&self) -> impl Iterator<Item = RegionId> + '_ {
        self.known.keys().copied()
    }

    /// Learns from an applied remote operation what its origin had seen.
    pub fn observe(&mut self, op: &Operation) {
        if let Some(k) = self.known.get_mut(&op.origin) {
            k.merge(&op.deps);
            k.raise(op.origin, op.seq);
        }
    }

    /// Records a version vector a peer reported as applied.
    pub fn report(&mut self, peer: RegionId, vv: &VersionVector) {
        if self.known.contains_key(&peer) {
            self.reported.entry(peer).or_default().merge(vv);
        }
    }

    /// The stable frontier given the local version vector: every operation it
    /// covers is stable here.
    pub fn frontier(&mut self, local_vv: &VersionVector) -> VersionVector {
        let mut frontier = local_vv.clone();
        for (peer, known) in self.known.iter_mut() {
            if let Some(rep) = self.reported.get(peer) {
                if local_vv.get(*peer) >= rep.get(*peer) {
                    known.merge(rep);
                }
            }
            frontier = frontier.meet(known);
        }
        let _ = self.local;
        frontier
    }
}
