//! Property tests of the CRDT core: random histories over three regions, all
//! types, delivered in random causally valid orders with duplicates, end in
//! identical states and digests; op-based merges are commutative,
//! associative and idempotent; garbage collection never changes the outcome.

mod common;

use braid::crdt::{Conflict, Operation};
use common::history::{run, run_on, step, Step, REGIONS, T0};
use common::{dump, Node};
use proptest::prelude::*;

/// A causally valid delivery of `all` in a random order, with duplicates:
/// the permutation is applied, then a causal buffer restores causality.
/// Each node after receiving every operation of `all` in its own shuffled
/// order (node `i` uses `seeds[i]`), with duplicates.
fn deliver_everything(
    nodes: &[Node],
    all: &[Operation],
    seeds: &[Vec<usize>],
    end: u64,
) -> Vec<Node> {
    nodes
        .iter()
        .zip(seeds)
        .map(|(node, seed)| {
            let mut n = node.clone();
            n.deliver_any_order(&shuffled(all, seed), end);
            n
        })
        .collect()
}

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

/// The conflicts a node reported, sorted.
fn conflict_set(n: &Node) -> Vec<Conflict> {
    let mut all = n.conflicts.clone();
    all.sort();
    all
}

/// Every node reported the same conflicts, none twice.
fn assert_same_conflicts(nodes: &[Node]) -> Result<(), TestCaseError> {
    let first = conflict_set(&nodes[0]);
    for n in &nodes[1..] {
        prop_assert_eq!(
            conflict_set(n),
            first.clone(),
            "region {} vs {}",
            n.id(),
            nodes[0].id()
        );
    }
    let mut unique = first.clone();
    unique.dedup();
    prop_assert_eq!(unique.len(), first.len(), "a race reported twice");
    Ok(())
}

/// A step of a three-region history, folded onto one region.
fn on_one(s: &Step) -> Step {
    match s.clone() {
        Step::Write { key, intent, .. } => Step::Write { r: 0, key, intent },
        Step::Flush { .. } => Step::Flush { r: 0 },
        Step::Sync { .. } => Step::Sync { from: 0, to: 0 },
        Step::Collect { .. } => Step::Collect { from: 0, to: 0 },
        Step::Tick(ms) => Step::Tick(ms),
    }
}

/// The snapshot bytes of a state: equal states give equal bytes.
fn snapshot_bytes(state: &braid::crdt::State) -> Vec<u8> {
    let mut out = Vec::new();
    braid::crdt::snapshot::encode(&state.freeze(), &mut out).expect("encode to memory");
    out
}

/// A step of a three-region history, folded onto two regions.
fn on_two(s: &Step) -> Step {
    match s.clone() {
        Step::Write { r, key, intent } => Step::Write {
            r: r % 2,
            key,
            intent,
        },
        Step::Flush { r } => Step::Flush { r: r % 2 },
        Step::Sync { from, to } => Step::Sync {
            from: from % 2,
            to: to % 2,
        },
        Step::Collect { from, to } => Step::Collect {
            from: from % 2,
            to: to % 2,
        },
        Step::Tick(ms) => Step::Tick(ms),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    /// Three regions take a random history (with partial exchanges and
    /// garbage collection on the way), then each receives everything in its
    /// own random order: every region, and a fresh one fed yet another
    /// order, reports the same conflicts (key, type, rule, winner and loser
    /// stamps), each race once.
    #[test]
    fn conflicts_are_reported_identically_whatever_the_order(
        steps in prop::collection::vec(step(), 1..100),
        seeds in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..80), 4),
    ) {
        let (nodes, all) = run(&steps);
        let end = T0 + 1_000_000;
        let mut finals = deliver_everything(&nodes, &all, &seeds, end);
        let mut fresh = Node::new(9, &REGIONS);
        fresh.deliver_any_order(&shuffled(&all, &seeds[3]), end);
        finals.push(fresh);
        assert_same(&finals[..3])?;
        assert_same_conflicts(&finals)?;
    }

    /// The same with two regions.
    #[test]
    fn two_regions_report_identical_conflicts(
        steps in prop::collection::vec(step(), 1..100),
        seeds in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..80), 3),
    ) {
        let steps: Vec<Step> = steps.iter().map(on_two).collect();
        let mut nodes = vec![Node::new(1, &[1, 2]), Node::new(2, &[1, 2])];
        let (_, all) = run_on(&mut nodes, &steps, T0);
        let end = T0 + 1_000_000;
        let mut finals = deliver_everything(&nodes, &all, &seeds, end);
        let mut fresh = Node::new(9, &[1, 2]);
        fresh.deliver_any_order(&shuffled(&all, &seeds[2]), end);
        finals.push(fresh);
        assert_same(&finals[..2])?;
        assert_same_conflicts(&finals)?;
    }

    /// Any history, then every region receives every operation in its own
    /// random causal order with duplicates: all regions end identical.
    #[test]
    fn every_delivery_order_converges(
        steps in prop::collection::vec(step(), 1..100),
        seeds in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..80), 3),
    ) {
        let (nodes, all) = run(&steps);
        let end = T0 + 1_000_000;
        let finals = deliver_everything(&nodes, &all, &seeds, end);
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
            // Everything is stable: no conflict-detection trace is left.
            prop_assert_eq!(nodes[i].replica.state.trace_len(), 0);
        }
        assert_same(&nodes)?;
        prop_assert_eq!(dump(&nodes[0].replica.state), before);
        prop_assert_eq!(nodes[0].replica.state.digest(), digest);
    }

    /// A region without peers collects each key as it writes it and skips
    /// tracking keys left with nothing to collect (`State::set_alone`): it
    /// must end, once collected, byte for byte where a region that only
    /// collects later ends.
    #[test]
    fn collecting_while_writing_alone_ends_where_collecting_later_does(
        steps in prop::collection::vec(step(), 1..100),
    ) {
        let steps: Vec<Step> = steps.iter().map(on_one).collect();
        let mut eager = vec![Node::new(1, &[1])];
        eager[0].replica.state.set_alone(true);
        let mut lazy = vec![Node::new(1, &[1])];
        run_on(&mut eager, &steps, T0);
        run_on(&mut lazy, &steps, T0);
        // Before the final collection, the eager region holds no more.
        prop_assert!(eager[0].replica.state.metadata_len() <= lazy[0].replica.state.metadata_len());
        eager[0].collect();
        lazy[0].collect();
        prop_assert_eq!(dump(&eager[0].replica.state), dump(&lazy[0].replica.state));
        prop_assert_eq!(eager[0].replica.state.digest(), lazy[0].replica.state.digest());
        prop_assert_eq!(
            eager[0].replica.state.metadata_len(),
            lazy[0].replica.state.metadata_len()
        );
        prop_assert!(snapshot_bytes(&eager[0].replica.state) == snapshot_bytes(&lazy[0].replica.state));
    }

    /// A region without peers does not write an SADD of members the set
    /// holds (`State::set_skip_held_adds`): what clients read must be what
    /// writing it gives. (Not the digest: list positions are drawn from
    /// sequence numbers, which the skipped writes no longer take.)
    #[test]
    fn skipping_held_adds_alone_reads_the_same(steps in prop::collection::vec(step(), 1..100)) {
        let steps: Vec<Step> = steps.iter().map(on_one).collect();
        let mut skipping = vec![Node::new(1, &[1])];
        skipping[0].replica.state.set_skip_held_adds(true);
        let mut writing = vec![Node::new(1, &[1])];
        run_on(&mut skipping, &steps, T0);
        run_on(&mut writing, &steps, T0);
        prop_assert_eq!(dump(&skipping[0].replica.state), dump(&writing[0].replica.state));
        prop_assert!(
            skipping[0].replica.state.version_vector().total()
                <= writing[0].replica.state.version_vector().total()
        );
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
    let mut rules = std::collections::BTreeSet::new();
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
        rules.extend(nodes[0].conflicts.iter().map(|c| c.kind.rule()));
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
    for rule in [
        "lww",
        "add_wins",
        "remove_wins",
        "type",
        "increments_dropped",
        "expiry",
    ] {
        assert!(rules.contains(rule), "no {rule} conflict; got {rules:?}");
    }
}
