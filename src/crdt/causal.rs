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
    // A hostile txn_rest must not overflow: such a transaction never completes.
    let Some(last) = seq.checked_add(rest) else {
        return false;
    };
    let mut vv = vv.clone();
    for s in seq..=last {
        match q.get(&s) {
            Some(op) if vv.dominates(&op.deps) => vv.set(op.origin, s),
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Intent, Replica};

    fn ops(n: usize) -> Vec<Operation> {
        let mut r = Replica::new(RegionId(1));
        (0..n)
            .filter_map(|i| {
                r.write("k", Intent::IncrBy(1), 1000 + i as u64)
                    .expect("incr")
            })
            .collect()
    }

    #[test]
    fn releases_in_order_and_drops_duplicates() {
        let all = ops(4);
        let mut b = CausalBuffer::new();
        let empty = VersionVector::new();
        for i in [3, 1, 2, 1, 0, 3] {
            b.push(all[i].clone(), &empty);
        }
        assert_eq!(b.len(), 4);
        let out = b.drain_ready(&empty);
        assert_eq!(
            out.iter().map(|o| o.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn holds_what_is_not_ready() {
        let all = ops(3);
        let mut b = CausalBuffer::new();
        let empty = VersionVector::new();
        b.push(all[2].clone(), &empty);
        assert!(b.drain_ready(&empty).is_empty());
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn incomplete_or_overflowing_transaction_is_held() {
        let mut all = ops(2);
        all[0].txn_rest = 1;
        let mut b = CausalBuffer::new();
        let empty = VersionVector::new();
        b.push(all[0].clone(), &empty);
        assert!(b.drain_ready(&empty).is_empty(), "half a transaction");
        b.push(all[1].clone(), &empty);
        assert_eq!(b.drain_ready(&empty).len(), 2);

        let mut hostile = ops(1).remove(0);
        hostile.txn_rest = u32::MAX;
        hostile.seq = u64::MAX;
        let mut b = CausalBuffer::new();
        b.push(hostile, &empty);
        assert!(b.drain_ready(&empty).is_empty());
    }
}
