//! Benchmarks of the op log on a real RocksDB in a temporary directory:
//! appending groups of operations with and without fsync (the unit of a
//! group commit), and the committer end to end (many single writes
//! submitted, grouped by its thread, waited for as connections do).
//!
//! Run with `cargo bench --release --bench oplog`. fsync timings depend on
//! the disk and on what else writes to it: compare within one run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use braid::config::FsyncPolicy;
use braid::crdt::RegionId;
use braid::oplog::commit::Committer;
use braid::oplog::OpLog;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

#[path = "common/ops.rs"]
mod ops;
use ops::{stream, Values};

fn open_log(dir: &tempfile::TempDir) -> Arc<OpLog> {
    Arc::new(OpLog::open(dir.path(), RegionId(1), "bench").expect("open a fresh op log"))
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = open_log(&dir);
    let ops = stream(1, Values::Mix, 4096);
    let mut g = c.benchmark_group("oplog_append");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for group in [1usize, 16, 256] {
        for sync in [false, true] {
            let name = format!("group_{group}/{}", if sync { "fsync" } else { "no_fsync" });
            g.throughput(Throughput::Elements(group as u64));
            let mut at = 0;
            g.bench_function(name, |b| {
                b.iter(|| {
                    let batch = &ops[at..at + group];
                    at = (at + group) % (ops.len() - group);
                    log.append(black_box(batch), sync).expect("append");
                })
            });
        }
    }
    g.finish();
}

fn bench_committer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    const WRITES: usize = 1_000;
    let ops = stream(1, Values::Mix, WRITES);
    let mut g = c.benchmark_group("group_commit");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10)
        .throughput(Throughput::Elements(WRITES as u64));
    for (name, policy) in [
        ("always", FsyncPolicy::Always),
        ("everysec", FsyncPolicy::Everysec),
    ] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = open_log(&dir);
        let (synced, _rx) = tokio::sync::watch::channel(0u64);
        let metrics = Arc::new(braid::metrics::Metrics::new());
        let committer = Committer::start(log, policy, 0, None, Arc::new(synced), metrics);
        let mut lsn = 0u64;
        // Each iteration: WRITES single-operation writes, as WRITES
        // connections would submit them, then wait for the last one.
        g.bench_function(format!("{WRITES}_single_writes/{name}"), |b| {
            b.iter_batched(
                || ops.clone(),
                |ops| {
                    for op in ops {
                        lsn += 1;
                        committer.submit(vec![op], lsn);
                    }
                    assert!(rt.block_on(committer.wait(lsn)), "the log failed");
                },
                BatchSize::SmallInput,
            )
        });
        committer.close();
    }
    g.finish();
}

criterion_group!(benches, bench_append, bench_committer);
criterion_main!(benches);
