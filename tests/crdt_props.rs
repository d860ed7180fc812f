//! Property tests of the CRDT core: random histories over three regions, all
//! types, delivered in random causally valid orders with duplicates, end in
//! identical states and digests; op-based merges are commutative,
//! associative and idempotent; garbage collection never changes the outcome.

mod common;

use braid::crdt::{Decimal, Intent, Operation, TtlChange};
use bytes::Bytes;
use common::{dump, Node};
use proptest::prelude::*;

const REGIONS: [u16; 3] = [1, 2, 3];
const T0: u64 = 1_700_000_000_000;

/// One step of a history.
#[derive(Clone, Debug)]
enum Step {
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

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn member() -> impl Strategy<Value = Bytes> {
    prop_oneof![Just(b("a")), Just(b("b")), Just(b("c"))]
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(b("x")),
        Just(b("y")),
        Just(b("7")),
        Just(b("1.5")),
        Just(b(""))
    ]
}

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![Just("0.5"), Just("-0.1"), Just("1.25"), Just("3")]
        .prop_map(|s| Decimal::parse(s.as_bytes()).expect("valid decimal"))
}

fn intent() -> impl Strategy<Value = Intent> {
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

fn step() -> impl Strategy<Value = Step> {
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
fn key_for(key: u8, intent: &Intent) -> String {
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
fn wall(r: usize, now: u64) -> u64 {
    match r {
        1 => now.saturating_sub(5_000),
        2 => now + 2_000,
        _ => now,
    }
}

/// Runs a history; returns the nodes and every operation produced.
fn run(steps: &[Step]) -> (Vec<Node>, Vec<Operation>) {
    let mut nodes: Vec<Node> = REGIONS.iter().map(|&id| Node::new(id, &REGIONS)).collect();
    let mut now = T0;
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
    (nodes, all)
}

/// A causally valid delivery of `all` in a random order, with duplicates:
/// the permutation is applied, then a causal buffer restores causality.
fn shuffled(all: &[Operation], seed: &[usize]) -> Vec<Operation> {
    let mut ops = all.to_vec();
    for (i, &s) in seed.iter().enumerate() {
        if ops.is_empty() {
            break;
        }
        let a = i % ops.len();
        let b2 = s % ops.len();
        ops.swap(a, b2);
    }
    // Duplicates: deliver some operations twice.
    let dups: Vec<Operation> = seed
        .iter()
        .filter_map(|&s| all.get(s % all.len().max(1)).cloned())
        .take(5)
        .collect();
    ops.extend(dups);
    ops
}

fn assert_same(nodes: &[Node]) -> Result<(), TestCaseError> {
    let first = &nodes[0].replica.state;
    for n in &nodes[1..] {
        prop_assert_eq!(n.replica.state.version_vector(), first.version_vector());
        prop_assert_eq!(dump(&n.replica.state), dump(first));
        prop_assert_eq!(n.replica.state.digest(), first.digest());
        prop_assert_eq!(n.replica.state.len(), first.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    /// Any history, then every region receives every operation in its own
    /// random causal order with duplicates: all regions end identical.
    #[test]
    fn every_delivery_order_converges(
        steps in prop::collection::vec(step(), 1..100),
        seeds in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..80), 3),
    ) {
        let (nodes, all) = run(&steps);
        let end = T0 + 1_000_000;
        let mut finals = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let mut n = node.clone();
            n.deliver_any_order(&shuffled(&all, &seeds[i]), end);
            finals.push(n);
        }
        assert_same(&finals)?;
        // A fresh region receiving everything in yet another order agrees.
        let mut fresh = Node::new(9, &REGIONS);
        fresh.deliver_any_order(&shuffled(&all, &seeds[0].iter().rev().copied().collect::<Vec<_>>()), end);
        prop_assert_eq!(dump(&fresh.replica.state), dump(&finals[0].replica.state));
        prop_assert_eq!(fresh.replica.state.digest(), finals[0].replica.state.digest());
    }

    /// Collecting garbage once everyone has seen everything keeps what
    /// clients read and the digest, and leaves every region identical.
    #[test]
    fn collecting_stable_metadata_changes_nothing_visible(steps in prop::collection::vec(step(), 1..100)) {
        let (mut nodes, all) = run(&steps);
        let end = T0 + 1_000_000;
        for n in nodes.iter_mut() {
            n.deliver_any_order(&all, end);
        }
        let before = dump(&nodes[0].replica.state);
        let digest = nodes[0].replica.state.digest();
        let snapshot = nodes.clone();
        for i in 0..nodes.len() {
            for other in &snapshot {
                nodes[i].hear_report_from(other);
            }
            nodes[i].collect();
            prop_assert!(nodes[i].replica.state.metadata_len() <= snapshot[i].replica.state.metadata_len());
        }
        assert_same(&nodes)?;
        prop_assert_eq!(dump(&nodes[0].replica.state), before);
        prop_assert_eq!(nodes[0].replica.state.digest(), digest);
    }

    /// merge(a, b) == merge(b, a); merge(merge(a, b), c) == merge(a, merge(b, c));
    /// merge(a, a) == a.
    #[test]
    fn merge_is_commutative_associative_idempotent(steps in prop::collection::vec(step(), 1..100)) {
        let (nodes, _) = run(&steps);
        let end = T0 + 1_000_000;
        let (a, b2, c) = (&nodes[0], &nodes[1], &nodes[2]);
        let merged = |x: &Node, y: &Node| {
            let mut m = x.clone();
            m.merge_from(y, end);
            m
        };
        let view = |n: &Node| (dump(&n.replica.state), n.replica.state.digest(), n.replica.state.version_vector().clone());

        prop_assert_eq!(view(&merged(a, b2)), view(&merged(b2, a)));
        prop_assert_eq!(view(&merged(&merged(a, b2), c)), view(&merged(a, &merged(b2, c))));
        prop_assert_eq!(view(&merged(a, a)), view(a));
    }
}

/// The histories above are only as good as their mix: check that they
/// produce every kind of effect and some type conflicts.
#[test]
fn generated_histories_exercise_every_effect_and_type_conflicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut kinds = std::collections::BTreeSet::new();
    let mut type_conflicts = 0;
    for _ in 0..300 {
        let steps = prop::collection::vec(step(), 1..100)
            .new_tree(&mut runner)
            .expect("strategy generates")
            .current();
        let (mut nodes, all) = run(&steps);
        for op in &all {
            kinds.insert(match &op.body {
                braid::crdt::Body::Key(w) => w.effect.name(),
                braid::crdt::Body::FlushAll => "flush_all",
            });
        }
        nodes[0].deliver_any_order(&all, T0 + 1_000_000);
        type_conflicts += nodes[0]
            .replica
            .state
            .entries()
            .filter(|(_, e)| e.type_count() > 1)
            .count();
    }
    let expected = [
        "str_set",
        "str_incr",
        "del",
        "expire",
        "persist",
        "set_add",
        "set_rem",
        "hash_set",
        "hash_del",
        "hash_incr",
        "zset_add",
        "zset_incr",
        "zset_rem",
        "list_insert",
        "list_set",
        "list_remove",
        "list_trim",
        "flush_all",
    ];
    for k in expected {
        assert!(kinds.contains(k), "no {k} generated; got {kinds:?}");
    }
    assert!(type_conflicts > 0, "no type conflict generated");
}
