//! `braid-server simulate`: simulated regions in one process, no network.
//!
//! Each region takes concurrent writes while partitioned (counters, sets,
//! LWW strings, lists, deletes); then the partition heals and every region
//! receives every operation in its own shuffled causal order. The demo checks
//! what the semantics promise: identical digests, and counters equal to the
//! sum of every increment made anywhere.

use braid::crdt::{CausalBuffer, Content, Intent, Operation, RegionId, Replica};
use bytes::Bytes;
use clap::Args;
use std::process::ExitCode;

/// Options of the demo.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Comma-separated region names (ids 1, 2, … in this order).
    #[arg(long, default_value = "us,eu,asia", value_delimiter = ',')]
    regions: Vec<String>,
    /// Writes per region during the partition.
    #[arg(long, default_value_t = 10_000)]
    writes: u64,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const KEYS: u64 = 20;

pub fn run(args: &SimulateArgs) -> ExitCode {
    if args.regions.is_empty() || args.regions.len() > 64 {
        eprintln!("error: --regions takes 1 to 64 names");
        return ExitCode::from(2);
    }
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let t0 = 1_700_000_000_000u64;
    let mut regions: Vec<Replica> = (1..=args.regions.len())
        .map(|i| Replica::new(RegionId(i as u16)))
        .collect();
    let mut logs: Vec<Vec<Operation>> = vec![Vec::new(); regions.len()];
    let mut increments = 0i64;

    println!(
        "partition: {} regions each take {} writes without hearing from the others",
        regions.len(),
        args.writes
    );
    for i in 0..args.writes {
        for (r, region) in regions.iter_mut().enumerate() {
            // Skewed wall clocks: region r runs r * 250 ms ahead.
            let wall = t0 + i + r as u64 * 250;
            let k = rng.u64(0..KEYS);
            let intent = match rng.u8(0..8) {
                0 | 1 => {
                    let by = rng.i64(1..10);
                    increments += by;
                    ("hits", Intent::IncrBy(by))
                }
                2 => ("tags", Intent::SAdd(vec![member(k)])),
                3 => ("tags", Intent::SRem(vec![member(rng.u64(0..KEYS))])),
                4 => (
                    "owner",
                    Intent::Set {
                        value: format!("{}-{i}", args.regions[r]).into(),
                        ttl: braid::crdt::TtlChange::Persist,
                    },
                ),
                5 => ("queue", Intent::RPush(vec![member(k)])),
                6 => ("queue", Intent::LPop(1)),
                _ => ("scores", Intent::ZIncrBy(member(k), 1.0)),
            };
            match region.write(intent.0, intent.1, wall) {
                Ok(Some(op)) => logs[r].push(op),
                Ok(None) => {}
                Err(e) => {
                    eprintln!("error: write refused: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    for (r, region) in regions.iter().enumerate() {
        println!(
            "  {:>6}: {:>6} ops, digest {:032x}, hits = {}",
            args.regions[r],
            logs[r].len(),
            region.state.digest(),
            string(region, "hits")
        );
    }

    println!("heal: every region receives every other region's operations, shuffled");
    let all: Vec<Operation> = logs.iter().flatten().cloned().collect();
    let wall = t0 + args.writes + 10_000;
    for region in regions.iter_mut() {
        let mut ops = all.clone();
        rng.shuffle(&mut ops);
        let mut buffer = CausalBuffer::new();
        for op in ops {
            buffer.push(op, region.state.version_vector());
        }
        for op in buffer.drain_ready(region.state.version_vector()) {
            if let Err(e) = region.receive(&op, wall) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut ok = true;
    let digest = regions[0].state.digest();
    for (r, region) in regions.iter().enumerate() {
        let same = region.state.digest() == digest;
        ok &= same;
        println!(
            "  {:>6}: vv {}, digest {:032x} {}, hits = {}, owner = {}, |tags| = {}, |queue| = {}",
            args.regions[r],
            region.state.version_vector(),
            region.state.digest(),
            if same { "(same)" } else { "(DIFFERENT)" },
            string(region, "hits"),
            string(region, "owner"),
            len(region, "tags"),
            len(region, "queue"),
        );
    }
    let hits_ok = string(&regions[0], "hits") == increments.to_string();
    println!(
        "increments made anywhere: {increments}; counter everywhere: {} {}",
        string(&regions[0], "hits"),
        if hits_ok {
            "(no increment lost)"
        } else {
            "(MISMATCH)"
        }
    );
    if ok && hits_ok {
        println!("converged");
        ExitCode::SUCCESS
    } else {
        println!("NOT converged");
        ExitCode::FAILURE
    }
}

fn member(k: u64) -> Bytes {
    format!("m{k}").into()
}

fn string(r: &Replica, key: &str) -> String {
    match r.state.get(key.as_bytes(), u64::MAX - 1) {
        Some(Content::String(s)) => String::from_utf8_lossy(&s.get().0).into_owned(),
        _ => "(nil)".into(),
    }
}

fn len(r: &Replica, key: &str) -> usize {
    match r.state.get(key.as_bytes(), u64::MAX - 1) {
        Some(Content::Set(s)) => s.len(),
        Some(Content::List(l)) => l.len(),
        _ => 0,
    }
}
