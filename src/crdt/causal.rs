//! Causal delivery: hold operations until everything they depend on is in.

use std::collections::{BTreeMap, HashMap};

use super::id::{RegionId, Seq};
use super::op::Operation;
use super::vv::VersionVector;

/// Operations received out of causal order, waiting for their dependencies.
/// Duplicates are dropped, so feeding it the same operation twice is harmless.
#[derive(Clone, Debug, Default)]
pub struct CausalBuffer {
    waiting: HashMap<RegionId, BTreeMap<Seq, Operation>>,
    len: usize,
}

impl CausalBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of operations waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an operation unless `applied` already covers it.
    pub fn push(&mut self, op: Operation, applied: &VersionVector) {
        if applied.contains(op.dot()) {
            return;
        }
        let q = self.waiting.entry(op.origin).or_default();
        if q.insert(op.seq, op).is_none() {
            self.len += 1;
        }
    }

    /// Takes out, in an order that respects causality, every operation that
    /// becomes deliverable once the state is at `applied` and each released
    /// operation has been applied in turn. A transaction (an operation with
    /// `txn_rest > 0` and the ones after it) is released whole or not at all.
    pub fn drain_ready(&mut self, applied: &VersionVector) -> Vec<Operation> {
        let mut vv = applied.clone();
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            let mut origins: Vec<RegionId> = self.waiting.keys().copied().collect();
            origins.sort();
            for origin in origins {
                let Some(q) = self.waiting.get_mut(&origin) else {
                    continue;
                };
                // Drop what is already covered.
                while let Some((&seq, _)) = q.first_key_value() {
                    if seq > vv.get(origin) {
                        break;
                    }
                    q.pop_first();
                    self.len -= 1;
                }
                while let Some((&seq, op)) = q.first_key_value() {
                    if seq != vv.get(origin) + 1 || !vv.dominates(&op.deps) {
                        break;
                    }
                    if !transaction_complete(q, seq, &vv) {
                        // Release a transaction whole, never a part of it.
                        break;
                    }
                    if let Some((_, op)) = q.pop_first() {
                        self.len -= 1;
                        vv.set(origin, seq);
                        out.push(op);
                        progressed = true;
                    }
                }
            }
            self.waiting.retain(|_, q| !q.is_empty());
            if !progressed {
                return out;
            }
        }
    }
}

/// Whether the operation at `seq` (ready at `vv`) and the rest of its
/// transaction are all waiting and would be ready in turn.
fn transaction_complete(q: &BTreeMap<Seq, Operation>, seq: Seq, vv: &VersionVector) -> bool {
    let Some(first) = q.get(&seq) else {
        return false;
    };
    let rest = u64::from(first.txn_rest);
    if rest == 0 {
        return true;
    }
    let mut vv = vv.clone();
    for s in seq..=seq + rest {
        match q.get(&s) {
            Some(op) if vv.dominates(&op.deps) => vv.set(op.origin, s),
            _ => return false,
        }
    }
    true
}
