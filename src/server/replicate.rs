//! The region as replication sees it: what it holds durably, its op log to
//! read from, and the door through which peers' operations come in.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::watch;

use super::{unix_ms, Shared};
use crate::config::FsyncPolicy;
use crate::crdt::{Operation, RegionId, Seq, VersionVector};
use crate::metrics::{FsyncKind, SnapshotKind};
use crate::replication::ReplicaHost;

/// Most operations held back waiting for their dependencies.
const MAX_WAITING: usize = 1_000_000;

impl Shared {
    /// Own operations up to here are fsync'd and may leave the region.
    fn own_synced(&self) -> Seq {
        self.own_start.load(Relaxed) + self.committer.synced()
    }

    /// Ends the wait for peers if what they told us of our own operations
    /// is all here: writes resume, numbered after the highest.
    fn maybe_end_peer_sync(&self) {
        if !self.syncing.load(Relaxed) || !self.greeted.load(Relaxed) {
            return;
        }
        let ks = self.keyspace.lock();
        let mine = ks.state().version_vector().get(self.region);
        if mine >= self.own_claimed.load(Relaxed) {
            self.own_start.store(mine - ks.lsn().min(mine), Relaxed);
            self.syncing.store(false, Relaxed);
            tracing::info!(
                own_seq = mine,
                "learned this region's high-water mark from its peers; taking writes"
            );
            if self.restored.swap(false, Relaxed) {
                let dir = self.config.read().data_dir.clone();
                super::remove_marker(&dir);
            }
        }
    }

    /// Stops waiting for peers after `limit` when none answered (a new
    /// cluster whose other regions are not up yet).
    pub(super) fn end_peer_sync_after(
        &self,
        waited: std::time::Duration,
        limit: std::time::Duration,
    ) {
        if self.syncing.load(Relaxed) && !self.greeted.load(Relaxed) && waited >= limit {
            if self.restored.load(Relaxed) {
                // Restored from a backup: the region surely existed and may
                // have issued operations since; never guess its numbering.
                if !self.restore_warned.swap(true, Relaxed) {
                    tracing::warn!(
                        waited_ms = waited.as_millis() as u64,
                        "restored from a backup and no peer has answered yet: writes stay refused until one does (to take writes without the peers, stop the server, delete the data directory's RESTORED file and accept that operations this region issued after the backup may be reissued)"
                    );
                }
                return;
            }
            tracing::warn!(waited_ms = waited.as_millis() as u64, "no peer answered; taking writes without having learned this region's high-water mark from them");
            self.syncing.store(false, Relaxed);
        }
    }
}

impl ReplicaHost for Shared {
    fn durable_vv(&self) -> VersionVector {
        let mut vv = {
            let ks = self.keyspace.lock();
            // Read under the keyspace lock, which `receive` holds when it
            // sets it, so a batch being synced is never counted.
            match self.unsynced_remote.lock().pending.front() {
                Some((_, before)) => before.clone(),
                None => ks.state().version_vector().clone(),
            }
        };
        // Our own operations count only once synced (a peer must never hold
        // an operation this region could lose in a crash and then reissue).
        let own = self.own_synced().min(vv.get(self.region));
        vv.set(self.region, own);
        vv
    }

    fn read_log(
        &self,
        origin: RegionId,
        after: Seq,
        upto: Seq,
        max_ops: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Operation>, usize), String> {
        self.log
            .read_range(origin, after, upto, max_ops, max_bytes)
            .map_err(|e| e.to_string())
    }

    async fn receive(&self, ops: Vec<Operation>) -> Result<u64, String> {
        if ops.is_empty() {
            return Ok(self.committer.remote_submitted());
        }
        // One receiver at a time: what one releases from the causal buffer
        // must be applied before another looks at the buffer.
        let mut buffer = self.causal.lock().await;
        let ready = {
            let ks = self.keyspace.lock();
            let vv = ks.state().version_vector();
            for op in ops {
                buffer.push(op, vv);
            }
            buffer.drain_ready(vv)
        };
        if buffer.len() > MAX_WAITING {
            // Operations whose dependencies never come (a misbehaving peer)
            // must not grow memory without bound. Nothing waiting was
            // acknowledged, so dropping it loses nothing: the link is
            // dropped and senders resend from our durable vector.
            let dropped = buffer.len();
            *buffer = crate::crdt::CausalBuffer::new();
            self.causal_waiting.store(0, Relaxed);
            return Err(format!(
                "{dropped} operations waited for dependencies that never arrived; dropped them (they will be resent)"
            ));
        }
        self.causal_waiting.store(buffer.len() as u64, Relaxed);
        if ready.is_empty() {
            return Ok(self.committer.remote_submitted());
        }
        // Applied, then queued for the op log behind every local write
        // queued so far: readers see the batch without waiting for a write
        // or an fsync, and a local write that saw it is written after it.
        // Peers are told we hold it (`durable_vv`) only once `make_durable`
        // has seen it synced, so a crash before that loses nothing
        // acknowledged: the senders still have it and resend it.
        let now = unix_ms();
        // Runs of one origin (segments are grouped by origin).
        let mut runs: Vec<(RegionId, u64)> = Vec::new();
        for op in &ready {
            match runs.last_mut() {
                Some((o, n)) if *o == op.origin => *n += 1,
                _ => runs.push((op.origin, 1)),
            }
        }
        let count = ready.len() as u64;
        let ticket;
        {
            let mut ks = self.keyspace.lock();
            let before = ks.state().version_vector().clone();
            let mut stability = self.stability.lock();
            let mut failed = None;
            for (i, op) in ready.iter().enumerate() {
                match ks.apply_remote(op, now) {
                    Ok(_) => stability.observe(op),
                    Err(e) => {
                        failed =
                            Some((i, format!("operation {} cannot be applied: {e}", op.dot())));
                        break;
                    }
                }
            }
            let mut ready = ready;
            if let Some((i, _)) = &failed {
                ready.truncate(*i);
            }
            ticket = self.committer.submit_remote(ready, ks.lsn());
            self.unsynced_remote.lock().push(ticket, before);
            if let Some((_, e)) = failed {
                return Err(e);
            }
            let vv = ks.state().version_vector();
            self.metrics
                .consistency
                .applied(now, |origin| vv.get(RegionId(origin)));
        }
        for (o, n) in runs {
            self.metrics.remote_applied(o.0, n);
        }
        self.stats.remote_ops.fetch_add(count, Relaxed);
        self.log_version.send_modify(|v| *v += 1);
        self.maybe_end_peer_sync();
        Ok(ticket)
    }

    async fn make_durable(&self, ticket: u64) -> Result<(), String> {
        let target = {
            let batches = self.unsynced_remote.lock();
            if batches
                .pending
                .front()
                .is_none_or(|(first, _)| *first > ticket)
            {
                return Ok(());
            }
            ticket.min(self.committer.remote_submitted())
        };
        if !self.committer.wait_remote_written(target).await {
            return Err("the op log failed".into());
        }
        let (written, synced) = self.committer.remote_progress();
        if synced < target {
            // Under `everysec` and `no` the committer writes without
            // syncing: one sync covers everything written so far.
            let log = self.log.clone();
            let t0 = std::time::Instant::now();
            tokio::task::spawn_blocking(move || log.sync())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot sync received operations: {e}"))?;
            self.metrics.fsync(FsyncKind::Replicated, t0.elapsed());
            self.committer.remote_synced_upto(written);
        }
        let (_, synced) = self.committer.remote_progress();
        self.unsynced_remote.lock().synced(synced);
        Ok(())
    }

    fn log_changed(&self) -> watch::Receiver<u64> {
        self.log_version.subscribe()
    }

    fn peer_reported(&self, peer: RegionId, durable: &VersionVector) {
        self.stability.lock().report(peer, durable);
    }

    fn log_floor(&self, origin: RegionId) -> Seq {
        match self.log.first_seq(origin) {
            Ok(Some(first)) => first - 1,
            // Nothing in the log: everything we hold of it was truncated.
            Ok(None) => self.durable_vv().get(origin),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the op log");
                Seq::MAX
            }
        }
    }

    async fn snapshot_for_peer(&self) -> Result<(PathBuf, VersionVector), String> {
        let (frozen, lsn) = {
            let ks = self.keyspace.lock();
            (ks.state().freeze(), ks.lsn())
        };
        // Only what is synced may leave the region.
        if !self.committer.wait(lsn).await {
            return Err("the op log failed".into());
        }
        self.committer
            .sync_now(&self.log)
            .map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        let info = tokio::task::block_in_place(|| self.snapshots.write(&frozen))
            .map_err(|e| format!("cannot write a snapshot for a peer: {e}"))?;
        self.metrics.snapshot(SnapshotKind::Peer, t0.elapsed());
        Ok((info.path, frozen.version_vector().clone()))
    }

    fn can_install(&self, covers: &VersionVector) -> bool {
        covers.dominates(self.keyspace.lock().state().version_vector())
    }

    fn incoming_snapshot_path(&self) -> PathBuf {
        self.snapshots.incoming_path()
    }

    async fn install_snapshot(&self, path: PathBuf) -> Result<(), String> {
        let _receiving = self.causal.lock().await;
        let (state, info) = tokio::task::block_in_place(|| self.snapshots.adopt(&path))
            .map_err(|e| format!("received snapshot is not valid: {e}"))?;
        let covers = state.version_vector().clone();
        {
            let mut ks = self.keyspace.lock();
            if !covers.dominates(ks.state().version_vector()) {
                return Err(format!(
                    "received snapshot {covers} lacks operations this region holds ({})",
                    ks.state().version_vector()
                ));
            }
            let now = unix_ms();
            ks.install(state, now);
            let mine = covers.get(self.region);
            self.own_start.store(mine - ks.lsn().min(mine), Relaxed);
            let vv = ks.state().version_vector();
            self.metrics
                .consistency
                .applied(now, |origin| vv.get(RegionId(origin)));
        }
        self.ops_at_last_snapshot.store(info.ops, Relaxed);
        tracing::info!(snapshot = %info.path.display(), covers = %covers, "installed a snapshot from a peer");
        self.log_version.send_modify(|v| *v += 1);
        self.maybe_end_peer_sync();
        Ok(())
    }

    fn peer_greeted(&self, _peer: RegionId, durable: &VersionVector) {
        self.own_claimed
            .fetch_max(durable.get(self.region), Relaxed);
        self.greeted.store(true, Relaxed);
        self.maybe_end_peer_sync();
    }

    fn accepts_own_ops(&self) -> bool {
        self.syncing.load(Relaxed)
    }

    fn applied_own(&self) -> Seq {
        self.keyspace
            .lock()
            .state()
            .version_vector()
            .get(self.region)
    }

    fn heartbeat(&self, origin: RegionId, seq: Seq, sent_unix_ms: u64) {
        // Under the keyspace lock, like `receive`'s check after applying,
        // so that no advance of the vector is missed in between.
        let ks = self.keyspace.lock();
        let held = ks.state().version_vector().get(origin);
        self.metrics
            .consistency
            .heartbeat(origin.0, seq, sent_unix_ms, held, unix_ms());
    }
}

/// Received batches that are applied but not yet synced, oldest first.
/// Received batches that are applied but not yet synced, oldest first.
#[derive(Default)]
pub(super) struct UnsyncedBatches {
    /// Committer ticket and the version vector before the batch was
    /// applied: the oldest one's is what the region durably holds of others.
    pending: std::collections::VecDeque<(u64, VersionVector)>,
}

impl UnsyncedBatches {
    /// Registers an applied batch (tickets come in increasing order).
    fn push(&mut self, ticket: u64, before: VersionVector) {
        self.pending.push_back((ticket, before));
    }

    /// Batches up to `ticket` are synced.
    fn synced(&mut self, ticket: u64) {
        while self.pending.front().is_some_and(|(t, _)| *t <= ticket) {
            self.pending.pop_front();
        }
    }
}

/// How often `everysec` and `no` sync in the background: with peers, often
/// enough that replication is not held back by the sync (own operations
/// leave the region only once synced), once a second otherwise.
pub(super) fn sync_interval(policy: FsyncPolicy, replicating: bool) -> Option<std::time::Duration> {
    match policy {
        FsyncPolicy::Always => None,
        _ if replicating => Some(std::time::Duration::from_millis(10)),
        _ => None,
    }
}

/// Starts replication if configured.
pub(super) fn start(shared: &Arc<Shared>) -> Result<(), crate::replication::ReplicationError> {
    let (config, region, name) = {
        let c = shared.config.read();
        (c.replication.clone(), c.region_id, c.region.clone())
    };
    let Some(listen) = config.listen else {
        return Ok(());
    };
    let repl = crate::replication::Replication::start(
        (RegionId(region), name),
        config,
        listen,
        shared.clone(),
    )?;
    let _ = shared.replication.set(repl);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(n: u64) -> VersionVector {
        let mut v = VersionVector::new();
        v.set(RegionId(2), n);
        v
    }

    #[test]
    fn unsynced_batches_report_what_was_durable_before_the_oldest() {
        let mut b = UnsyncedBatches::default();
        b.push(1, vv(10));
        b.push(2, vv(20));
        assert_eq!(b.pending.front().map(|(_, v)| v.get(RegionId(2))), Some(10));
        // A sync that covered the first batch only.
        b.synced(1);
        assert_eq!(b.pending.front().map(|(_, v)| v.get(RegionId(2))), Some(20));
        // A stale sync changes nothing; one covering the latest empties it.
        b.synced(1);
        assert_eq!(b.pending.len(), 1);
        b.synced(2);
        assert!(b.pending.is_empty());
    }
}
