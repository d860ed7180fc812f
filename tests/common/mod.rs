//! Helpers shared by the CRDT tests: a canonical dump of what clients read,
//! and a simulated cluster of pure replicas.
#![allow(dead_code)]

use braid::crdt::{
    Applied, CausalBuffer, Conflict, Content, Operation, RegionId, Replica, Stability, State,
};
use std::collections::BTreeMap;

/// Everything a client could read from a state, in a canonical text form
/// (sorted members and fields, list order, deadline), independent of any
/// internal layout. Two states that dump the same are the same to clients.
pub fn dump(state: &State) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, entry) in state.entries() {
        let Some(content) = entry.visible() else {
            continue;
        };
        let body = match content {
            Content::String(s) => format!("string {:?}", s.get().0),
            Content::Set(s) => {
                let mut m: Vec<_> = s.members().map(|m| format!("{m:?}")).collect();
                m.sort();
                format!("set {m:?}")
            }
            Content::Hash(h) => {
                let mut f: Vec<_> = h.iter().map(|(k, v)| format!("{k:?}={v:?}")).collect();
                f.sort();
                format!("hash {f:?}")
            }
            Content::ZSet(z) => {
                let m: Vec<_> = z.iter().map(|(k, s)| format!("{k:?}:{s}")).collect();
                format!("zset {m:?}")
            }
            Content::List(l) => {
                let v: Vec<_> = l.iter().map(|(_, v)| format!("{v:?}")).collect();
                format!("list {v:?}")
            }
        };
        let ttl = entry.deadline().map(|d| d.at_ms);
        out.insert(format!("{key:?}"), format!("{body} ttl={ttl:?}"));
    }
    out
}

/// A region in a simulated cluster: its replica, every operation it applied
/// (in order, so it can forward them), and its stability tracker.
#[derive(Clone)]
pub struct Node {
    pub replica: Replica,
    pub log: Vec<Operation>,
    pub stability: Stability,
    /// Every conflict reported while applying remote operations.
    pub conflicts: Vec<Conflict>,
}

impl Node {
    pub fn new(id: u16, members: &[u16]) -> Self {
        Node {
            replica: Replica::new(RegionId(id)),
            log: Vec::new(),
            stability: Stability::new(RegionId(id), members.iter().map(|&m| RegionId(m))),
            conflicts: Vec::new(),
        }
    }

    pub fn id(&self) -> RegionId {
        self.replica.region
    }

    /// Records a locally produced operation.
    pub fn record(&mut self, op: Option<Operation>) {
        if let Some(op) = op {
            self.log.push(op);
        }
    }

    /// Applies a remote operation that is causally ready.
    pub fn deliver(&mut self, op: &Operation, wall_ms: u64) {
        if self.replica.state.has_applied(op) {
            return;
        }
        let (applied, _) = self
            .replica
            .receive(op, wall_ms)
            .expect("operation delivered in causal order applies");
        if let Applied::Done(found) = applied {
            self.conflicts.extend(found);
        }
        self.stability.observe(op);
        self.log.push(op.clone());
    }

    /// Delivers every operation `ops` holds that this node lacks, through a
    /// causal buffer, so `ops` may be in any order and contain duplicates.
    pub fn deliver_any_order(&mut self, ops: &[Operation], wall_ms: u64) {
        let mut buffer = CausalBuffer::new();
        for op in ops {
            buffer.push(op.clone(), self.replica.state.version_vector());
        }
        let ready = buffer.drain_ready(self.replica.state.version_vector());
        for op in &ready {
            self.deliver(op, wall_ms);
        }
        assert!(
            buffer.is_empty(),
            "buffer still holds {} operations",
            buffer.len()
        );
    }

    /// Takes everything `other` has applied (a state merge, op-based).
    pub fn merge_from(&mut self, other: &Node, wall_ms: u64) {
        let missing: Vec<Operation> = other
            .log
            .iter()
            .filter(|op| !self.replica.state.has_applied(op))
            .cloned()
            .collect();
        for op in &missing {
            self.deliver(op, wall_ms);
        }
    }

    /// Drops metadata every region is known to have seen.
    pub fn collect(&mut self) {
        let frontier = self.stability.frontier(self.replica.state.version_vector());
        self.replica.state.collect(&frontier);
    }

    /// Tells this node what `other` has applied (an ack).
    pub fn hear_report_from(&mut self, other: &Node) {
        self.stability
            .report(other.id(), other.replica.state.version_vector());
    }
}
pub mod history;
pub mod redis;
pub mod server;
