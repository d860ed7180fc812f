//! Group commit: one thread writes the op log; operations that arrive while
//! a write (and its fsync) is in progress go out together in the next one.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tokio::sync::watch;

use super::OpLog;
use crate::config::FsyncPolicy;
use crate::crdt::Operation;

/// What the committer has made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durable {
    /// Every local operation up to this log sequence number is durable
    /// under the fsync policy.
    UpTo(u64),
    /// Writing failed: nothing more will be acknowledged.
    Failed,
}

struct Batch {
    ops: Vec<Operation>,
    lsn: u64,
}

/// Counters shown by `INFO persistence`.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Log writes done (each one a group commit).
    pub writes: std::sync::atomic::AtomicU64,
    /// Operations written.
    pub ops: std::sync::atomic::AtomicU64,
}

/// Handle to the committer thread.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Option<Batch>>,
    durable: watch::Receiver<Durable>,
    /// Counters.
    pub stats: Arc<CommitStats>,
    threads: Arc<parking_lot::Mutex<Threads>>,
}

/// The threads to join on close, and the fsync thread's stop signal.
#[derive(Default)]
struct Threads {
    writer: Option<thread::JoinHandle<()>>,
    fsync: Option<(mpsc::Sender<()>, thread::JoinHandle<()>)>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("durable", &*self.durable.borrow())
            .finish()
    }
}

impl Committer {
    /// Starts the committer over `log`, with `start_lsn` already durable.
    pub fn start(log: Arc<OpLog>, policy: FsyncPolicy, start_lsn: u64) -> Committer {
        let (tx, rx) = mpsc::channel::<Option<Batch>>();
        let (durable_tx, durable) = watch::channel(Durable::UpTo(start_lsn));
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let writer_log = log.clone();
        let mut threads = Threads::default();
        match thread::Builder::new()
            .name("braid-commit".into())
            .spawn(move || run(writer_log, policy, rx, durable_tx, thread_stats))
        {
            Ok(h) => threads.writer = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start the committer thread"),
        }
        if policy == FsyncPolicy::Everysec {
            let (stop_tx, stop_rx) = mpsc::channel::<()>();
            let spawned = thread::Builder::new()
                .name("braid-fsync".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) =
                        stop_rx.recv_timeout(Duration::from_secs(1))
                    {
                        if let Err(e) = log.sync() {
                            tracing::error!(error = %e, "background fsync of the op log failed");
                        }
                    }
                });
            match spawned {
                Ok(h) => threads.fsync = Some((stop_tx, h)),
                Err(e) => tracing::error!(error = %e, "cannot start the fsync thread"),
            }
        }
        Committer {
            tx,
            durable,
            stats,
            threads: Arc::new(parking_lot::Mutex::new(threads)),
        }
    }

    /// Stops the threads after they finish what was submitted, and waits for
    /// them, so that the op log can be closed before the process exits.
    pub fn close(&self) {
        let mut t = self.threads.lock();
        let _ = self.tx.send(None);
        if let Some(h) = t.writer.take() {
            let _ = h.join();
        }
        if let Some((stop, h)) = t.fsync.take() {
            let _ = stop.send(());
            let _ = h.join();
        }
    }

    /// Queues operations whose last one has log sequence number `lsn`.
    /// Must be called in `lsn` order (the keyspace lock guarantees it).
    pub fn submit(&self, ops: Vec<Operation>, lsn: u64) {
        if self.tx.send(Some(Batch { ops, lsn })).is_err() {
            tracing::error!("committer is gone; write not persisted");
        }
    }

    /// What is durable now.
    pub fn durable(&self) -> Durable {
        *self.durable.borrow()
    }

    /// Waits until everything up to `lsn` is durable; `false` if the log failed.
    pub async fn wait(&self, lsn: u64) -> bool {
        let mut rx = self.durable.clone();
        let result = rx
            .wait_for(|d| match d {
                Durable::UpTo(n) => *n >= lsn,
                Durable::Failed => true,
            })
            .await;
        matches!(result.as_deref(), Ok(Durable::UpTo(_)))
    }
}

fn run(
    log: Arc<OpLog>,
    policy: FsyncPolicy,
    rx: mpsc::Receiver<Option<Batch>>,
    durable: watch::Sender<Durable>,
    stats: Arc<CommitStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut closing = false;
    while let Ok(Some(first)) = rx.recv() {
        let mut lsn = first.lsn;
        let mut ops = first.ops;
        while let Ok(more) = rx.try_recv() {
            match more {
                Some(more) => {
                    lsn = lsn.max(more.lsn);
                    ops.extend(more.ops);
                }
                None => closing = true,
            }
        }
        let result = log.append(&ops, policy == FsyncPolicy::Always);
        match result {
            Ok(()) => {
                stats.writes.fetch_add(1, Relaxed);
                stats.ops.fetch_add(ops.len() as u64, Relaxed);
                durable.send_replace(Durable::UpTo(lsn));
                if closing {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "op log write failed; refusing further acknowledgements");
                durable.send_replace(Durable::Failed);
                return;
            }
        }
    }
}
