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

    /// The local region.
    pub fn local(&self) -> RegionId {
        self.local
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
        frontier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Intent, Replica};

    fn vv(p: &[(u16, u64)]) -> VersionVector {
        VersionVector::from_entries(p.iter().map(|&(r, s)| (RegionId(r), s)))
    }

    #[test]
    fn nothing_is_stable_until_every_member_is_heard_from() {
        let mut s = Stability::new(RegionId(1), [RegionId(1), RegionId(2), RegionId(3)]);
        let local = vv(&[(1, 5)]);
        assert!(s.frontier(&local).is_empty());
        s.report(RegionId(2), &vv(&[(1, 5)]));
        assert!(s.frontier(&local).is_empty(), "region 3 unheard");
        s.report(RegionId(3), &vv(&[(1, 3)]));
        assert_eq!(s.frontier(&local), vv(&[(1, 3)]));
    }

    #[test]
    fn a_report_counts_only_once_we_hold_the_reporters_own_operations() {
        let mut s = Stability::new(RegionId(1), [RegionId(1), RegionId(2)]);
        // Region 2 has seen our op 4, but also issued ops 1..=7 we lack:
        // some may race with op 4, so op 4 is not yet stable here.
        s.report(RegionId(2), &vv(&[(1, 4), (2, 7)]));
        assert!(s.frontier(&vv(&[(1, 4), (2, 6)])).is_empty());
        assert_eq!(s.frontier(&vv(&[(1, 4), (2, 7)])), vv(&[(1, 4), (2, 7)]));
    }

    #[test]
    fn an_applied_operation_tells_what_its_origin_had_seen() {
        let mut us = Replica::new(RegionId(1));
        let mut eu = Replica::new(RegionId(2));
        let a = us.write("k", Intent::IncrBy(1), 1).unwrap().unwrap();
        eu.receive(&a, 2).unwrap();
        let b = eu.write("k", Intent::IncrBy(1), 3).unwrap().unwrap();
        us.receive(&b, 4).unwrap();
        let mut s = Stability::new(RegionId(1), [RegionId(1), RegionId(2)]);
        s.observe(&b);
        assert_eq!(s.frontier(us.state.version_vector()), vv(&[(1, 1), (2, 1)]));
    }
}
