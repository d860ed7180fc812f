//! Random three-region histories over every type, shared by the property
//! tests of convergence (`crdt_props.rs`) and of snapshots (`snapshot.rs`).
#![allow(dead_code)]

use braid::crdt::{Decimal, Intent, Operation, TtlChange};
use bytes::Bytes;
use proptest::prelude::*;

use super::Node;

pub const REGIONS: [u16; 3] = [1, 2, 3];
pub const T0: u64 = 1_700_000_000_000;

/// One step of a history.
#[derive(Clone, Debug)]
pub enum Step {
    /// Region `r` performs a client write; `key` 0 is shared by all types
    /// (type conflicts), other keys are per type.
    Write { r: usize, key: u8, intent: Intent },
    /// Region `r` runs FLUSHALL.
    Flush { r: usize },
    /// Everything `from` applied reaches `to`.
    Sync { from: usize, to: usize },
    /// `to` hears what `from` applied (an ack) and collects garbage.
    Collect { from: usize, to: usize },
    /// Wall clocks advance.
    Tick(u64),
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn member() -> impl Strategy<Value = Bytes> {
    prop_oneof![Just(b("a")), Just(b("b")), Just(b("c"))]
}

pub fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(b("x")),
        Just(b("y")),
        Just(b("7")),
        Just(b("1.5")),
        Just(b(""))
    ]
}

pub fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![Just("0.5"), Just("-0.1"), Just("1.25"), Just("3")]
        .prop_map(|s| Decimal::parse(s.as_bytes()).expect("valid decimal"))
}

pub fn intent() -> impl Strategy<Value = Intent> {
    let ttl = prop_oneof![
        Just(TtlChange::Keep),
        Just(TtlChange::Persist),
        (1u64..50).prop_map(|d| TtlChange::ExpireAt(T0 + d * 1000)),
    ];
    prop_oneof![
        (value(), ttl).prop_map(|(value, ttl)| Intent::Set { value, ttl }),
        value().prop_map(Intent::Append),
        (0usize..4, value()).prop_map(|(offset, data)| Intent::SetRange { offset, data }),
        (-3i64..5).prop_map(Intent::IncrBy),
        decimal().prop_map(Intent::IncrByFloat),
        Just(Intent::Del),
        (1u64..50).prop_map(|d| Intent::ExpireAt(T0 + d * 1000)),
        Just(Intent::Persist),
        prop::collection::vec(member(), 1..3).prop_map(Intent::SAdd),
        prop::collection::vec(member(), 1..3).prop_map(Intent::SRem),
        prop::collection::vec((member(), value()), 1..3).prop_map(Intent::HSet),
        prop::collection::vec(member(), 1..3).prop_map(Intent::HDel),
        (member(), -2i64..4).prop_map(|(f, d)| Intent::HIncrBy(f, d)),
        (member(), decimal()).prop_map(|(f, d)| Intent::HIncrByFloat(f, d)),
        prop::collection::vec((member(), -3i8..4), 1..3).prop_map(|m| Intent::ZAdd(
            m.into_iter()
                .map(|(k, s)| (k, f64::from(s) / 2.0))
                .collect()
        )),
        (member(), prop_oneof![Just(1.1), Just(1.0), Just(-0.5)])
            .prop_map(|(m, d)| Intent::ZIncrBy(m, d)),
        prop::collection::vec(member(), 1..3).prop_map(Intent::ZRem),
        prop::collection::vec(value(), 1..3).prop_map(Intent::LPush),
        prop::collection::vec(value(), 1..3).prop_map(Intent::RPush),
        (any::<bool>(), value(), value()).prop_map(|(before, pivot, value)| Intent::LInsert {
            before,
            pivot,
            value
        }),
        (-3i64..3, value()).prop_map(|(index, value)| Intent::LSet { index, value }),
        (-2i64..3, value()).prop_map(|(count, value)| Intent::LRem { count, value }),
        (-3i64..3, -3i64..3).prop_map(|(start, stop)| Intent::LTrim { start, stop }),
        (1usize..3).prop_map(Intent::LPop),
        (1usize..3).prop_map(Intent::RPop),
    ]
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => (0usize..3, 0u8..4, intent()).prop_map(|(r, key, intent)| Step::Write { r, key, intent }),
        1 => (0usize..3).prop_map(|r| Step::Flush { r }),
        4 => (0usize..3, 0usize..3).prop_map(|(from, to)| Step::Sync { from, to }),
        2 => (0usize..3, 0usize..3).prop_map(|(from, to)| Step::Collect { from, to }),
        2 => (1u64..3000).prop_map(Step::Tick),
    ]
}

/// Key 0 is shared by every type; others are per type so that most writes
/// find the type they expect.
pub fn key_for(key: u8, intent: &Intent) -> String {
    if key == 0 {
        return "shared".into();
    }
    let t = match intent {
        Intent::SAdd(_) | Intent::SRem(_) => "set",
        Intent::HSet(_) | Intent::HDel(_) | Intent::HIncrBy(..) | Intent::HIncrByFloat(..) => {
            "hash"
        }
        Intent::ZAdd(_) | Intent::ZIncrBy(..) | Intent::ZRem(_) => "zset",
        Intent::LPush(_)
        | Intent::RPush(_)
        | Intent::LInsert { .. }
        | Intent::LSet { .. }
        | Intent::LRem { .. }
        | Intent::LTrim { .. }
        | Intent::LPop(_)
        | Intent::RPop(_) => "list",
        _ => "str",
    };
    format!("{t}{}", key % 2)
}

/// Per-region clock skew: region 2 runs 5 s behind, region 3 2 s ahead.
pub fn wall(r: usize, now: u64) -> u64 {
    match r {
        1 => now.saturating_sub(5_000),
        2 => now + 2_000,
        _ => now,
    }
}

/// A cluster of the three regions.
pub fn cluster() -> Vec<Node> {
    REGIONS.iter().map(|&id| Node::new(id, &REGIONS)).collect()
}

/// Runs a history on a fresh cluster; returns the nodes and every operation
/// produced.
pub fn run(steps: &[Step]) -> (Vec<Node>, Vec<Operation>) {
    let mut nodes = cluster();
    let (_, all) = run_on(&mut nodes, steps, T0);
    (nodes, all)
}

/// Runs `steps` on `nodes` from wall time `now`; returns the new time and
/// every operation produced.
pub fn run_on(nodes: &mut [Node], steps: &[Step], mut now: u64) -> (u64, Vec<Operation>) {
    let mut all = Vec::new();
    for s in steps {
        match s {
            Step::Write { r, key, intent } => {
                let key = key_for(*key, intent);
                let w = wall(*r, now);
                // Client errors (WRONGTYPE, not an integer, …) write nothing.
                if let Ok(op) = nodes[*r].replica.write(key, intent.clone(), w) {
                    all.extend(op.clone());
                    nodes[*r].record(op);
                }
            }
            Step::Flush { r } => {
                let op = nodes[*r].replica.flush_all(wall(*r, now));
                all.push(op.clone());
                nodes[*r].record(Some(op));
            }
            Step::Sync { from, to } if from != to => {
                let src = nodes[*from].clone();
                nodes[*to].merge_from(&src, wall(*to, now));
            }
            Step::Collect { from, to } => {
                let src = nodes[*from].clone();
                nodes[*to].hear_report_from(&src);
                nodes[*to].collect();
            }
            Step::Sync { .. } => {}
            Step::Tick(ms) => now += ms,
        }
    }
    (now, all)
}
