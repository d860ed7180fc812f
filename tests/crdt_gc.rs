//! Bounded metadata: delete-heavy and update-heavy workloads leave the state
//! size constant once every region has seen the operations (causal stability).

mod common;

use braid::crdt::{Decimal, Intent};
use bytes::Bytes;
use common::Node;

const REGIONS: [u16; 3] = [1, 2, 3];
const T0: u64 = 1_700_000_000_000;
const CYCLES: u64 = 1_000_000;
/// How often the other regions acknowledge and region 1 collects.
const ACK_EVERY: u64 = 10_000;

fn cluster() -> Vec<Node> {
    REGIONS.iter().map(|&r| Node::new(r, &REGIONS)).collect()
}

/// Runs `CYCLES` rounds of `round` on region 1, ships each round to the other
/// regions, and every `ACK_EVERY` rounds lets every region hear everyone's
/// acks and collect. Returns region 1's metadata size at each checkpoint.
fn churn(mut round: impl FnMut(&mut Node, u64)) -> (Vec<Node>, Vec<usize>) {
    let mut nodes = cluster();
    let mut sizes = Vec::new();
    let mut shipped = 0;
    for i in 0..CYCLES {
        round(&mut nodes[0], T0 + i);
        let new: Vec<_> = nodes[0].log[shipped..].to_vec();
        shipped = nodes[0].log.len();
        for n in nodes[1..].iter_mut() {
            for op in &new {
                n.deliver(op, T0 + i);
            }
        }
        if (i + 1) % ACK_EVERY == 0 {
            let snapshot = nodes.clone();
            for n in nodes.iter_mut() {
                for other in &snapshot {
                    n.hear_report_from(other);
                }
                n.collect();
            }
            // The log is not the state: drop it so memory stays flat too.
            for n in nodes.iter_mut() {
                n.log.clear();
            }
            shipped = 0;
            sizes.push(nodes[0].replica.state.metadata_len());
        }
    }
    (nodes, sizes)
}

fn assert_constant(what: &str, sizes: &[usize], nodes: &[Node]) {
    let first = sizes[0];
    assert!(
        sizes.iter().all(|&s| s == first),
        "{what}: metadata grew: {sizes:?}"
    );
    let d = nodes[0].replica.state.digest();
    assert!(
        nodes.iter().all(|n| n.replica.state.digest() == d),
        "{what}: regions diverged"
    );
}

#[test]
fn million_sadd_srem_cycles_of_one_member_leave_state_size_constant() {
    let (nodes, sizes) = churn(|n, t| {
        let op = n
            .replica
            .write("s", Intent::SAdd(vec![Bytes::from_static(b"m")]), t)
            .unwrap();
        n.record(op);
        let op = n
            .replica
            .write("s", Intent::SRem(vec![Bytes::from_static(b"m")]), t)
            .unwrap();
        n.record(op);
    });
    assert_constant("sadd/srem", &sizes, &nodes);
    assert_eq!(sizes[0], 0, "the member is gone and leaves nothing behind");
    assert!(nodes[0].replica.state.entry(b"s").is_none());
}

#[test]
fn million_incr_leave_counter_metadata_constant() {
    let (nodes, sizes) = churn(|n, t| {
        let op = n.replica.write("c", Intent::IncrBy(1), t).unwrap();
        n.record(op);
    });
    assert_constant("incr", &sizes, &nodes);
    let content = nodes[2]
        .replica
        .state
        .get(b"c", T0)
        .expect("counter exists");
    let braid::crdt::Content::String(s) = content else {
        panic!("not a string")
    };
    assert_eq!(s.get().0, Bytes::from(CYCLES.to_string()));
}

#[test]
fn without_acks_increments_accumulate_so_collection_is_what_bounds_them() {
    let mut nodes = cluster();
    for i in 0..1000 {
        let op = nodes[0]
            .replica
            .write("c", Intent::IncrBy(1), T0 + i)
            .unwrap();
        nodes[0].record(op);
    }
    nodes[0].collect();
    assert!(
        nodes[0].replica.state.metadata_len() >= 1000,
        "nothing is stable before peers ack"
    );
    let snapshot = nodes.clone();
    for other in &snapshot[1..] {
        let mut o = other.clone();
        o.merge_from(&snapshot[0], T0 + 2000);
        nodes[0].hear_report_from(&o);
    }
    nodes[0].collect();
    assert_eq!(
        nodes[0].replica.state.metadata_len(),
        1,
        "folded into one sum"
    );
}

#[test]
fn million_hset_hdel_and_hincrby_cycles_leave_state_size_constant() {
    let f = || Bytes::from_static(b"f");
    let (nodes, sizes) = churn(|n, t| {
        let op = n
            .replica
            .write("h", Intent::HSet(vec![(f(), Bytes::from_static(b"1"))]), t)
            .unwrap();
        n.record(op);
        let op = n.replica.write("h", Intent::HIncrBy(f(), 2), t).unwrap();
        n.record(op);
        let op = n.replica.write("h", Intent::HDel(vec![f()]), t).unwrap();
        n.record(op);
        let op = n
            .replica
            .write(
                "h",
                Intent::HIncrByFloat(Bytes::from_static(b"g"), Decimal::parse(b"0.5").unwrap()),
                t,
            )
            .unwrap();
        n.record(op);
    });
    assert_constant("hash", &sizes, &nodes);
}

#[test]
fn million_zincrby_zrem_and_list_push_pop_cycles_leave_state_size_constant() {
    let m = || Bytes::from_static(b"m");
    let (nodes, sizes) = churn(|n, t| {
        let op = n.replica.write("z", Intent::ZIncrBy(m(), 1.5), t).unwrap();
        n.record(op);
        let op = n.replica.write("z", Intent::ZRem(vec![m()]), t).unwrap();
        n.record(op);
        let op = n.replica.write("l", Intent::RPush(vec![m()]), t).unwrap();
        n.record(op);
        let op = n.replica.write("l", Intent::LPop(1), t).unwrap();
        n.record(op);
    });
    assert_constant("zset/list", &sizes, &nodes);
    assert_eq!(sizes[0], 0);
}

#[test]
fn million_expire_persist_cycles_leave_state_size_constant() {
    let (nodes, sizes) = churn(|n, t| {
        if t == T0 {
            let op = n
                .replica
                .write(
                    "e",
                    Intent::Set {
                        value: Bytes::from_static(b"v"),
                        ttl: braid::crdt::TtlChange::Persist,
                    },
                    t,
                )
                .unwrap();
            n.record(op);
        }
        let op = n
            .replica
            .write("e", Intent::ExpireAt(T0 + 10_000_000), t)
            .unwrap();
        n.record(op);
        let op = n.replica.write("e", Intent::Persist, t).unwrap();
        n.record(op);
    });
    assert_constant("expire/persist", &sizes, &nodes);
}

#[test]
fn concurrent_adds_from_another_region_are_collected_too() {
    // Region 2 keeps re-adding the member region 1 keeps removing; after
    // everyone acks, at most one tag per live member remains.
    let mut nodes = cluster();
    let m = || Bytes::from_static(b"m");
    for i in 0..20_000u64 {
        let op = nodes[0]
            .replica
            .write("s", Intent::SAdd(vec![m()]), T0 + i)
            .unwrap();
        nodes[0].record(op);
        let op = nodes[1]
            .replica
            .write("s", Intent::SAdd(vec![m()]), T0 + i)
            .unwrap();
        nodes[1].record(op);
        if i % 3 == 0 {
            let op = nodes[0]
                .replica
                .write("s", Intent::SRem(vec![m()]), T0 + i)
                .unwrap();
            nodes[0].record(op);
        }
        if i % 100 == 0 {
            let snapshot = nodes.clone();
            for n in nodes.iter_mut() {
                for other in &snapshot {
                    n.merge_from(other, T0 + i);
                }
            }
        }
    }
    let snapshot = nodes.clone();
    for n in nodes.iter_mut() {
        for other in &snapshot {
            n.merge_from(other, T0 + 30_000);
        }
    }
    let snapshot = nodes.clone();
    for n in nodes.iter_mut() {
        for other in &snapshot {
            n.hear_report_from(other);
        }
        n.collect();
        assert!(
            n.replica.state.metadata_len() <= 1,
            "{}",
            n.replica.state.metadata_len()
        );
    }
}
