//! Group commit: one thread writes the op log (and under `fsync always`
//! syncs it); operations that arrive while a write is in progress go out
//! together in the next one. Under `everysec` a second thread syncs once a
//! second. (Appending inline from the connection tasks under `everysec` was
//! measured: 20 % slower at `-P 1`, as every batch paid its own write.)

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tokio::sync::oneshot;

use super::OpLog;
use crate::config::FsyncPolicy;
use crate::crdt::Operation;
use crate::metrics::{FsyncKind, Metrics};

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
    /// Ticket of a batch of peers' operations (0: local operations).
    remote: u64,
}

/// Counters shown by `INFO persistence`.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Log writes done (each one a group commit).
    pub writes: AtomicU64,
    /// Operations written.
    pub ops: AtomicU64,
}

/// Durability progress shared by the writer and the waiting connections.
/// Waiters are woken individually, when their own lsn is durable: waking
/// every connection on every commit costs more than the commit.
struct Progress {
    durable: AtomicU64,
    /// Up to here the log is also fsync'd: what may leave the region.
    synced: AtomicU64,
    failed: AtomicBool,
    /// Peers' batches written to the log, and synced, up to this ticket.
    remote_written: AtomicU64,
    remote_synced: AtomicU64,
    /// Bumped when `remote_written` advances or the log fails.
    remote_tx: tokio::sync::watch::Sender<u64>,
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<bool>>>>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            durable: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            remote_written: AtomicU64::new(0),
            remote_synced: AtomicU64::new(0),
            remote_tx: tokio::sync::watch::channel(0).0,
            waiters: Mutex::default(),
        }
    }
}

impl Progress {
    fn durable(&self) -> Durable {
        if self.failed.load(Ordering::Acquire) {
            Durable::Failed
        } else {
            Durable::UpTo(self.durable.load(Ordering::Acquire))
        }
    }

    /// Publishes `lsn` as durable and wakes those waiting for it.
    fn advance(&self, lsn: u64) {
        self.durable.fetch_max(lsn, Ordering::AcqRel);
        let ready = {
            let mut waiters = self.waiters.lock();
            let later = waiters.split_off(&(lsn + 1));
            std::mem::replace(&mut *waiters, later)
        };
        for tx in ready.into_values().flatten() {
            let _ = tx.send(true);
        }
    }

    /// Marks the log failed and wakes everyone with the bad news.
    fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        let all = std::mem::take(&mut *self.waiters.lock());
        for tx in all.into_values().flatten() {
            let _ = tx.send(false);
        }
        self.remote_tx.send_modify(|_| {});
    }
}

/// Handle to the committer.
#[derive(Clone)]
pub struct Committer {
    /// The group-commit thread's queue (`None`: it could not start).
    tx: Option<mpsc::Sender<Option<Batch>>>,
    progress: Arc<Progress>,
    /// Counters.
    pub stats: Arc<CommitStats>,
    /// Bumped whenever `synced` advances (replication follows it).
    synced_tx: Arc<tokio::sync::watch::Sender<u64>>,
    threads: Arc<Mutex<Threads>>,
    /// Last ticket handed to a batch of peers' operations.
    remote_tickets: Arc<AtomicU64>,
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
            .field("durable", &self.progress.durable())
            .finish()
    }
}

impl Committer {
    /// Starts the committer over `log`, with `start_lsn` already durable.
    /// `sync_every` is how often `everysec` and `no` sync in the background
    /// (`None`: `everysec` once a second, `no` never); `synced` is bumped
    /// whenever more of the log is fsync'd; fsync latencies go to `metrics`.
    pub fn start(
        log: Arc<OpLog>,
        policy: FsyncPolicy,
        start_lsn: u64,
        sync_every: Option<Duration>,
        synced: Arc<tokio::sync::watch::Sender<u64>>,
        metrics: Arc<Metrics>,
    ) -> Committer {
        let progress = Arc::new(Progress::default());
        progress.durable.store(start_lsn, Ordering::Release);
        progress.synced.store(start_lsn, Ordering::Release);
        let stats = Arc::new(CommitStats::default());
        let mut threads = Threads::default();
        let mut tx = None;
        {
            let (batch_tx, rx) = mpsc::channel::<Option<Batch>>();
            let (writer_log, p, st, n, m) = (
                log.clone(),
                progress.clone(),
                stats.clone(),
                synced.clone(),
                metrics.clone(),
            );
            match thread::Builder::new()
                .name("braid-commit".into())
                .spawn(move || run(writer_log, policy, rx, p, st, n, m))
            {
                Ok(h) => {
                    threads.writer = Some(h);
                    tx = Some(batch_tx);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the committer thread");
                    progress.fail();
                }
            }
        }
        let interval = match (policy, sync_every) {
            (FsyncPolicy::Always, _) => None,
            (_, Some(every)) => Some(every),
            (FsyncPolicy::Everysec, None) => Some(Duration::from_secs(1)),
            (FsyncPolicy::No, None) => None,
        };
        if let Some(interval) = interval {
            let (stop_tx, stop_rx) = mpsc::channel::<()>();
            let (sync_log, p, n) = (log.clone(), progress.clone(), synced.clone());
            let spawned = thread::Builder::new()
                .name("braid-fsync".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval)
                    {
                        let upto = p.durable.load(Ordering::Acquire);
                        let remote = p.remote_written.load(Ordering::Acquire);
                        let t0 = std::time::Instant::now();
                        let result = sync_log.sync();
                        metrics.fsync(FsyncKind::Background, t0.elapsed());
                        match result {
                            Ok(()) => {
                                p.remote_synced.fetch_max(remote, Ordering::AcqRel);
                                if p.synced.fetch_max(upto, Ordering::AcqRel) < upto {
                                    n.send_modify(|v| *v += 1);
                                }
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "background fsync of the op log failed")
                            }
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
            progress,
            stats,
            synced_tx: synced,
            threads: Arc::new(Mutex::new(threads)),
            remote_tickets: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Local operations up to this log sequence number are fsync'd.
    pub fn synced(&self) -> u64 {
        self.progress.synced.load(Ordering::Acquire)
    }

    /// Makes everything written so far synced now (shutdown, tests).
    pub fn sync_now(&self, log: &OpLog) -> Result<(), super::OpLogError> {
        let upto = self.progress.durable.load(Ordering::Acquire);
        let remote = self.progress.remote_written.load(Ordering::Acquire);
        log.sync()?;
        self.remote_synced_upto(remote);
        if self.progress.synced.fetch_max(upto, Ordering::AcqRel) < upto {
            self.synced_tx.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    /// Stops the threads after they finish what was submitted, and waits for
    /// them, so that the op log can be closed before the process exits.
    pub fn close(&self) {
        let mut t = self.threads.lock();
        if let Some(tx) = &self.tx {
            let _ = tx.send(None);
        }
        if let Some(h) = t.writer.take() {
            let _ = h.join();
        }
        if let Some((stop, h)) = t.fsync.take() {
            let _ = stop.send(());
            let _ = h.join();
        }
    }

    /// Queues operations whose last one has log sequence number `lsn` for
    /// the group commit. Must be called in `lsn` order (the keyspace lock
    /// guarantees it).
    pub fn submit(&self, ops: Vec<Operation>, lsn: u64) {
        let sent = self.tx.as_ref().is_some_and(|tx| {
            tx.send(Some(Batch {
                ops,
                lsn,
                remote: 0,
            }))
            .is_ok()
        });
        if !sent {
            tracing::error!("committer is gone; write not persisted");
            self.progress.fail();
        }
    }

    /// Queues peers' operations for the log, after everything submitted
    /// so far (so a local write that saw them is never durable without
    /// them); `lsn` is the local one at that point. Returns the batch's
    /// ticket for `wait_remote_written`. Called under the keyspace lock,
    /// like `submit`.
    pub fn submit_remote(&self, ops: Vec<Operation>, lsn: u64) -> u64 {
        let remote = self.remote_tickets.fetch_add(1, Ordering::AcqRel) + 1;
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Some(Batch { ops, lsn, remote })).is_ok());
        if !sent {
            tracing::error!("committer is gone; received operations not persisted");
            self.progress.fail();
        }
        remote
    }

    /// The last ticket `submit_remote` handed out.
    pub fn remote_submitted(&self) -> u64 {
        self.remote_tickets.load(Ordering::Acquire)
    }

    /// Waits until peers' batches up to `ticket` are written to the log;
    /// `false` if the log failed.
    pub async fn wait_remote_written(&self, ticket: u64) -> bool {
        let mut rx = self.progress.remote_tx.subscribe();
        loop {
            if self.progress.failed.load(Ordering::Acquire) {
                return false;
            }
            if self.progress.remote_written.load(Ordering::Acquire) >= ticket {
                return true;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Peers' batches written to the log so far, and synced so far.
    pub fn remote_progress(&self) -> (u64, u64) {
        (
            self.progress.remote_written.load(Ordering::Acquire),
            self.progress.remote_synced.load(Ordering::Acquire),
        )
    }

    /// A sync started after batches up to `ticket` were written finished.
    pub fn remote_synced_upto(&self, ticket: u64) {
        self.progress
            .remote_synced
            .fetch_max(ticket, Ordering::AcqRel);
    }

    /// What is durable now.
    pub fn durable(&self) -> Durable {
        self.progress.durable()
    }

    /// Waits until everything up to `lsn` is durable; `false` if the log failed.
    pub async fn wait(&self, lsn: u64) -> bool {
        let rx = {
            match self.progress.durable() {
                Durable::Failed => return false,
                Durable::UpTo(n) if n >= lsn => return true,
                Durable::UpTo(_) => {}
            }
            let mut waiters = self.progress.waiters.lock();
            // Checked again under the lock: `advance` publishes before it
            // takes the lock, so either we see it here or it sees us.
            match self.progress.durable() {
                Durable::Failed => return false,
                Durable::UpTo(n) if n >= lsn => return true,
                Durable::UpTo(_) => {}
            }
            let (tx, rx) = oneshot::channel();
            waiters.entry(lsn).or_default().push(tx);
            rx
        };
        rx.await.unwrap_or(false)
    }
}

/// Asks Linux not to let this thread preempt a running one when it wakes
/// (`SCHED_BATCH`; its share of the CPU is unchanged). Why: the committer
/// wakes tens of thousands of times a second under load, and preempting a
/// connection thread that holds the keyspace turn stalls every client until
/// it runs again. Measured at `-P 16` on two cores: 1–9 % more writes per
/// second and less CPU per request (BENCHMARKS.md).
#[cfg(target_os = "linux")]
fn no_wakeup_preemption() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a system call on the calling thread (pid 0), with a pointer
    // to a valid `sched_param` that outlives it.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "committer stays SCHED_OTHER");
    }
}

#[cfg(not(target_os = "linux"))]
fn no_wakeup_preemption() {}

fn run(
    log: Arc<OpLog>,
    policy: FsyncPolicy,
    rx: mpsc::Receiver<Option<Batch>>,
    progress: Arc<Progress>,
    stats: Arc<CommitStats>,
    synced: Arc<tokio::sync::watch::Sender<u64>>,
    metrics: Arc<Metrics>,
) {
    no_wakeup_preemption();
    let mut closing = false;
    while let Ok(Some(first)) = rx.recv() {
        let mut lsn = first.lsn;
        let mut remote = first.remote;
        let mut ops = first.ops;
        while let Ok(more) = rx.try_recv() {
            match more {
                Some(more) => {
                    lsn = lsn.max(more.lsn);
                    remote = remote.max(more.remote);
                    ops.extend(more.ops);
                }
                None => closing = true,
            }
        }
        let t0 = std::time::Instant::now();
        let result = log.append(&ops, policy == FsyncPolicy::Always);
        if policy == FsyncPolicy::Always {
            metrics.fsync(FsyncKind::GroupCommit, t0.elapsed());
        }
        match result {
            Ok(()) => {
                stats.writes.fetch_add(1, Ordering::Relaxed);
                stats.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
                progress.advance(lsn);
                if policy == FsyncPolicy::Always {
                    progress.synced.fetch_max(lsn, Ordering::AcqRel);
                    synced.send_modify(|v| *v += 1);
                }
                if remote > 0 {
                    progress.remote_written.fetch_max(remote, Ordering::AcqRel);
                    if policy == FsyncPolicy::Always {
                        progress.remote_synced.fetch_max(remote, Ordering::AcqRel);
                    }
                    progress.remote_tx.send_modify(|v| *v = remote);
                }
                // Freed here, off the connection threads' critical path.
                drop(ops);
                if closing {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "op log write failed; refusing further acknowledgements");
                progress.fail();
                return;
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::crdt::RegionId;

    /// The scheduling policy of this process's committer threads.
    fn committer_policies() -> Vec<i32> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "braid-commit")
            })
            .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
            // SAFETY: a system call that only reads the policy of a thread id.
            .map(|tid| unsafe { libc::sched_getscheduler(tid) })
            .collect()
    }

    #[test]
    fn the_committer_does_not_preempt_on_wakeup() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = Arc::new(OpLog::open(dir.path(), RegionId(1), "test").expect("open the log"));
        let (synced, _rx) = tokio::sync::watch::channel(0u64);
        let committer = Committer::start(
            log,
            FsyncPolicy::Everysec,
            0,
            None,
            Arc::new(synced),
            Arc::new(Metrics::new()),
        );
        // The thread sets its policy as it starts.
        let batch = (0..200).any(|_| {
            let found = committer_policies().contains(&libc::SCHED_BATCH);
            if !found {
                thread::sleep(Duration::from_millis(10));
            }
            found
        });
        committer.close();
        assert!(batch, "no committer thread runs under SCHED_BATCH");
    }
}
