//! `braid-server`'s region: recovery, the client listener, connection
//! tasks, and the background work (group commit, active expiry, snapshots).
//!
//! Concurrency (two cores in mind): one keyspace behind a mutex held only for
//! the duration of a batch of commands (never across an await), one
//! committer thread writing the op log, one blocking task writing snapshots.

mod observe;
mod replicate;
pub mod session;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::backup::manifest::{digest_hex, vv_text};
use crate::backup::marker::{RestoreMarker, RestoreMode};
use crate::command::{server::config_matches, ClientInfo, ServerHooks};
use crate::config::{Config, FsyncPolicy};
use crate::crdt::{CausalBuffer, RegionId, Stability, State};
use crate::keyspace::Keyspace;
use crate::metrics::{Metrics, SnapshotKind};
use crate::oplog::commit::{Committer, Durable};
use crate::oplog::{OpLog, OpLogError};
use crate::replication::Replication;
use crate::resp::{Connection, ConnectionError, Frame, Limits, Protocol};
use crate::snapshot::{LoadError, SnapshotStore};
use session::{After, Session};

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The op log is unusable (corrupt record, wrong region, I/O).
    #[error(transparent)]
    OpLog(#[from] OpLogError),
    /// No snapshot could be loaded although some exist.
    #[error(transparent)]
    Snapshot(#[from] LoadError),
    /// Replication could not start (certificates, address).
    #[error(transparent)]
    Replication(#[from] crate::replication::ReplicationError),
    /// The data directory was restored from a backup for another region,
    /// or its restore marker is unreadable.
    #[error("{0}")]
    Restore(String),
    /// Binding or another I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Counters for INFO stats.
#[derive(Debug, Default)]
pub struct Stats {
    connections_received: AtomicU64,
    rejected_connections: AtomicU64,
    commands_processed: AtomicU64,
    snapshots_written: AtomicU64,
    /// Snapshots started by `snapshot_now` (the number of the latest).
    snapshots_started: AtomicU64,
    last_snapshot_unix: AtomicU64,
    last_snapshot_ms: AtomicU64,
    remote_ops: AtomicU64,
}

/// The last snapshot `snapshot_now` wrote or failed to write, for `INFO
/// persistence` (what `braid-backup` waits for and copies).
#[derive(Debug, Default)]
struct LastSnapshot {
    /// Number of the last snapshot written (0: none since start).
    id: u64,
    /// Its file, absolute.
    file: String,
    /// Its version vector (`BRAID.VV` form) and digest (hex).
    vv: String,
    digest: String,
    /// Number of the last snapshot that failed, and why.
    failed_id: u64,
    error: String,
}

/// A connected client as CLIENT LIST shows it.
#[derive(Clone, Debug)]
struct ClientEntry {
    addr: String,
    name: String,
    since: Instant,
}

/// Everything the connection tasks share.
pub struct Shared {
    keyspace: Mutex<Keyspace>,
    /// Taken by a client batch before the keyspace lock. Why: batches from
    /// connections on different worker threads then wait for each other
    /// asynchronously, their threads free to read and write other
    /// connections meanwhile, instead of one thread blocking on the lock
    /// with every connection it serves. (On two cores this took writes at
    /// `-P 16` from below one worker's throughput to 1.07–1.25× it.)
    client_turn: tokio::sync::Mutex<()>,
    config: RwLock<Config>,
    committer: Committer,
    log: Arc<OpLog>,
    snapshots: SnapshotStore,
    clients: Mutex<BTreeMap<u64, ClientEntry>>,
    next_client_id: AtomicU64,
    stats: Stats,
    started: Instant,
    shutdown: Notify,
    shutting_down: AtomicBool,
    used_memory: AtomicU64,
    /// `maxmemory` (0: none), mirrored out of `config`: every write checks
    /// it, and a read lock shared by every worker costs a contended atomic.
    maxmemory: AtomicU64,
    snapshot_running: AtomicBool,
    ops_at_last_snapshot: AtomicU64,
    local_addr: SocketAddr,
    region: RegionId,
    /// This region's own sequence before its first local operation since
    /// start (those are numbered by the keyspace's lsn).
    own_start: AtomicU64,
    /// Writes wait until peers told this region its own high-water mark
    /// (fresh or restored data directory).
    syncing: AtomicBool,
    /// Whether a peer has greeted us since start.
    greeted: AtomicBool,
    /// The highest own sequence a peer holds.
    own_claimed: AtomicU64,
    /// Operations from peers waiting for their dependencies.
    causal: tokio::sync::Mutex<CausalBuffer>,
    causal_waiting: AtomicU64,
    /// Received batches applied but not yet synced.
    unsynced_remote: Mutex<replicate::UnsyncedBatches>,
    /// What every region has seen, for metadata collection.
    stability: Mutex<Stability>,
    /// Bumped when the log gains operations peers may be sent.
    log_version: Arc<tokio::sync::watch::Sender<u64>>,
    replication: std::sync::OnceLock<Arc<Replication>>,
    /// This very `Shared`, for work a command starts in the background.
    me: std::sync::OnceLock<Weak<Shared>>,
    last_snapshot: Mutex<LastSnapshot>,
    /// Restored from a backup as this region and still waiting to learn its
    /// own high-water mark from peers (the data directory's `RESTORED`
    /// marker is removed when that ends).
    restored: AtomicBool,
    restore_warned: AtomicBool,
    /// Latencies, heartbeats and other figures for `INFO` and the metrics
    /// endpoint.
    metrics: Arc<Metrics>,
    /// The metrics endpoint's task, stopped at shutdown.
    metrics_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A running region: its address and a handle to stop it.
pub struct Running {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, finishes in-flight work, syncs the log.
    pub async fn shutdown(self) {
        self.shared.request_shutdown();
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (SHUTDOWN or a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Stops a running server from elsewhere (a signal handler).
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

impl From<&Running> for Stopper {
    fn from(r: &Running) -> Self {
        Stopper(r.shared.clone())
    }
}

impl Stopper {
    /// Requests a graceful shutdown.
    pub fn stop(&self) {
        self.0.request_shutdown();
    }
}

impl Shared {
    fn request_shutdown(&self) {
        self.shutting_down.store(true, Relaxed);
        self.shutdown.notify_waiters();
    }
}

/// Recovers the region from its data directory (newest valid snapshot plus
/// the op log after it), binds the listener and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let region = RegionId(config.region_id);
    let io = |context: String| move |source| ServerError::Io { context, source };
    std::fs::create_dir_all(&config.data_dir).map_err(io(format!(
        "cannot create data directory {}",
        config.data_dir.display()
    )))?;
    // A directory `braid-backup restore` wrote: it must be started as the
    // region it was restored for.
    let marker = RestoreMarker::read(&config.data_dir).map_err(ServerError::Restore)?;
    if let Some(m) = &marker {
        m.check_identity(&config.region, config.region_id, &config.data_dir)
            .map_err(ServerError::Restore)?;
    }
    let log = Arc::new(OpLog::open(&config.data_dir, region, &config.region)?);
    let snapshots = SnapshotStore::open(config.data_dir.join("snapshots")).map_err(io(format!(
        "cannot open snapshot directory in {}",
        config.data_dir.display()
    )))?;
    let t0 = Instant::now();
    let (state, from) = match snapshots.load_newest_valid()? {
        Some((state, info)) => {
            tracing::info!(snapshot = %info.path.display(), ops = info.ops, "loaded snapshot");
            (state, Some(info))
        }
        None => (State::new(), None),
    };
    let mut ks = Keyspace::new(region, state);
    ks.conflicts.set_capacity(config.conflict_journal_len);
    let vv = ks.state().version_vector().clone();
    let now = unix_ms();
    let mut replay_error = None;
    let replayed = log.replay(&vv, |op| {
        if replay_error.is_none() {
            if let Err(e) = ks.apply_remote(&op, now) {
                replay_error = Some(format!("operation {} cannot be applied: {e}", op.dot()));
            }
        }
    })?;
    if let Some(message) = replay_error {
        return Err(ServerError::OpLog(OpLogError::Gap {
            path: log.path().to_path_buf(),
            message,
        }));
    }
    // Without replication no other region's operation arrives from now on,
    // so none can race a write made here: conflict traces would be waste.
    ks.set_conflict_tracing(config.replication.listen.is_some());
    // With no peer, stability's frontier is this region's own vector: each
    // write can be collected as it is made.
    ks.set_alone(config.alone());
    tracing::info!(
        keys = ks.len(),
        replayed,
        snapshot = from.is_some(),
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "recovered"
    );
    let ops_total = ks.state().version_vector().total();
    let own_start = ks.state().version_vector().get(region);
    // A data directory with nothing in it may belong to a region that
    // existed before (lost disk, rebuilt): its own numbering continues
    // where its peers saw it end, so writes wait for a peer to tell.
    let fresh = from.is_none() && replayed == 0;
    let shared_peers_empty = config.replication.peers.is_empty();
    // Restored from a backup as this region: it may have issued operations
    // after the backup that peers hold, so it waits for them like a fresh
    // directory does (and without a time limit, see end_peer_sync_after).
    let restored = match &marker {
        Some(m) if m.mode == RestoreMode::SameRegion => {
            if shared_peers_empty {
                tracing::warn!(
                    backup_vv = %m.version_vector,
                    "restored from a backup with no peers configured: this region's numbering continues after the backup; operations it issued after the backup (if any reached another region) would be reissued with other contents"
                );
                remove_marker(&config.data_dir);
                false
            } else {
                tracing::info!(
                    backup_vv = %m.version_vector,
                    "restored from a backup: writes wait until a peer tells this region its own high-water mark and its later operations are back"
                );
                true
            }
        }
        Some(m) => {
            // A new region seeded from a backup: its numbering starts at
            // the snapshot's entry for it, which the restore checked is 0.
            let own = ks.state().version_vector().get(region);
            if own > 0 {
                return Err(ServerError::Restore(format!(
                    "data directory {} was restored to seed a new region, but its snapshot already holds {own} operations of region id {}",
                    config.data_dir.display(),
                    m.region_id
                )));
            }
            remove_marker(&config.data_dir);
            false
        }
        None => false,
    };
    let replicating = config.replication.listen.is_some();
    let log_version = Arc::new(tokio::sync::watch::channel(0u64).0);
    let metrics = Arc::new(Metrics::new());
    let stability = Stability::new(
        region,
        config
            .replication
            .peers
            .iter()
            .map(|p| RegionId(p.id))
            .chain([region]),
    );
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(io(format!("cannot listen on {addr}")))?;
    let local_addr = listener
        .local_addr()
        .map_err(io("cannot read the listening address".into()))?;
    let metrics_listener = match config.metrics.listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(io(format!("cannot listen for metrics on {a}")))?,
        ),
        None => None,
    };
    // Started only once nothing above can fail: its threads hold the op log
    // open, and a process exiting while they run aborts inside RocksDB.
    let committer = Committer::start(
        log.clone(),
        config.fsync,
        0,
        replicate::sync_interval(config.fsync, replicating),
        log_version.clone(),
        metrics.clone(),
    );
    tracing::info!(%local_addr, region = %config.region, fsync = %config.fsync, "ready to accept connections");
    let maxmemory = config.maxmemory.0;
    let shared = Arc::new(Shared {
        keyspace: Mutex::new(ks),
        client_turn: tokio::sync::Mutex::new(()),
        config: RwLock::new(config),
        committer,
        log,
        snapshots,
        clients: Mutex::new(BTreeMap::new()),
        next_client_id: AtomicU64::new(1),
        stats: Stats::default(),
        started: Instant::now(),
        shutdown: Notify::new(),
        shutting_down: AtomicBool::new(false),
        used_memory: AtomicU64::new(0),
        maxmemory: AtomicU64::new(maxmemory),
        snapshot_running: AtomicBool::new(false),
        ops_at_last_snapshot: AtomicU64::new(ops_total),
        local_addr,
        region,
        own_start: AtomicU64::new(own_start),
        syncing: AtomicBool::new((fresh || restored) && !shared_peers_empty),
        greeted: AtomicBool::new(false),
        own_claimed: AtomicU64::new(0),
        causal: tokio::sync::Mutex::new(CausalBuffer::new()),
        causal_waiting: AtomicU64::new(0),
        unsynced_remote: Mutex::new(replicate::UnsyncedBatches::default()),
        stability: Mutex::new(stability),
        log_version,
        replication: std::sync::OnceLock::new(),
        me: std::sync::OnceLock::new(),
        last_snapshot: Mutex::new(LastSnapshot::default()),
        restored: AtomicBool::new(restored),
        restore_warned: AtomicBool::new(false),
        metrics,
        metrics_task: Mutex::new(None),
    });
    let _ = shared.me.set(Arc::downgrade(&shared));
    if let Err(e) = replicate::start(&shared) {
        shared.committer.close();
        return Err(e.into());
    }
    if let Some(l) = metrics_listener {
        observe::start_endpoint(&shared, l);
    }
    let task = tokio::spawn(serve(shared.clone(), listener));
    Ok(Running {
        addr: local_addr,
        shared,
        task,
    })
}

async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let background = tokio::spawn(background(shared.clone()));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        if shared.shutting_down.load(Relaxed) {
            break;
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shared.shutdown.notified() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.connections_received.fetch_add(1, Relaxed);
        let max = shared.config.read().maxclients;
        if shared.clients.lock().len() >= max {
            shared.stats.rejected_connections.fetch_add(1, Relaxed);
            let mut conn = Connection::new(stream);
            conn.queue(&Frame::error("ERR max number of clients reached"));
            let _ = conn.flush().await;
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(client(shared.clone(), stream, peer));
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    // Let connections finish their current batch, then stop them.
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    background.abort();
    let _ = background.await;
    if let Some(t) = shared.metrics_task.lock().take() {
        t.abort();
    }
    if let Some(repl) = shared.replication.get() {
        repl.shutdown().await;
    }
    // Everything acknowledged is durable already; make the rest durable too.
    let lsn = shared.keyspace.lock().lsn();
    shared.committer.wait(lsn).await;
    shared.committer.close();
    if let Err(e) = shared.log.sync() {
        tracing::error!(error = %e, "final op-log sync failed");
    }
    tracing::info!("shut down");
}

async fn client(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let id = shared.next_client_id.fetch_add(1, Relaxed);
    let (limits, query_limit, batch, requirepass) = {
        let c = shared.config.read();
        let limits = Limits {
            max_bulk_len: usize::try_from(c.proto_max_bulk_len.0).unwrap_or(usize::MAX),
            max_multibulk_len: usize::try_from(c.proto_max_multibulk_len).unwrap_or(usize::MAX),
            ..Limits::default()
        };
        let batch = BatchLimits {
            output: usize::try_from(c.client_output_buffer_limit.0).unwrap_or(usize::MAX),
            depth: c.client_pipeline_depth.max(1),
        };
        (
            limits,
            usize::try_from(c.client_query_buffer_limit.0).unwrap_or(usize::MAX),
            batch,
            c.requirepass.is_some(),
        )
    };
    let mut conn = Connection::with_limits(stream, limits);
    conn.set_query_buffer_limit(query_limit);
    conn.set_auth_required(requirepass);
    let mut session = Session::new(ClientInfo {
        id,
        addr: peer.to_string(),
        resp: 2,
        authenticated: !requirepass,
        ..ClientInfo::default()
    });
    shared.clients.lock().insert(
        id,
        ClientEntry {
            addr: peer.to_string(),
            name: String::new(),
            since: Instant::now(),
        },
    );
    let result = client_loop(&shared, &mut conn, &mut session, batch).await;
    match result {
        Err(e @ ConnectionError::QueryBufferLimit { .. }) => {
            tracing::warn!(client = id, addr = %peer, "{e}");
        }
        Err(e) => tracing::debug!(client = id, error = %e, "connection closed"),
        Ok(()) => {}
    }
    session.close(&mut shared.keyspace.lock());
    shared.clients.lock().remove(&id);
}

/// How much of a pipeline one client may have in progress.
#[derive(Clone, Copy, Debug)]
struct BatchLimits {
    /// `client_output_buffer_limit`: a batch stops executing once its
    /// replies reach this many bytes; they are written (waiting for the
    /// client to read them) before any further command runs.
    output: usize,
    /// `client_pipeline_depth`: most requests parsed but not yet answered.
    depth: usize,
}

/// Serves one client: reads a batch of pipelined requests, runs them under
/// one keyspace lock, waits for their durability, writes the replies.
///
/// Why backpressure rather than disconnection when a client does not read
/// its replies: a client that pipelines deeply and reads slowly (a bulk
/// import, `redis-benchmark -P`) is legitimate and should just go slower.
/// Writing a batch's replies waits until the socket takes them, and nothing
/// more is read or executed for that client meanwhile, so what it costs
/// the server is bounded by the limits above (plus one reply larger than
/// the output limit); its unread requests stay in the kernel's socket
/// buffers. Other clients are unaffected: the keyspace lock is never held
/// across a write.
async fn client_loop(
    shared: &Arc<Shared>,
    conn: &mut Connection,
    session: &mut Session,
    limits: BatchLimits,
) -> Result<(), ConnectionError> {
    // Requests parsed but not run yet: what a batch cut short by the
    // output limit left over.
    let mut pending: VecDeque<Vec<Bytes>> = VecDeque::new();
    loop {
        if shared.shutting_down.load(Relaxed) {
            return Ok(());
        }
        if pending.is_empty() {
            let first = tokio::select! {
                r = conn.read_request() => r,
                _ = shared.shutdown.notified() => return Ok(()),
            };
            match first {
                Ok(Some(args)) => pending.push_back(args),
                Ok(None) => return Ok(()),
                Err(ConnectionError::Protocol(e)) => {
                    conn.send_protocol_error(&e).await?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        // A protocol error is sticky in the connection: once seen, it is
        // seen again on every later attempt, and sent when nothing parsed
        // before it remains to be answered.
        let mut protocol_error = None;
        while pending.len() < limits.depth {
            match conn.try_next_buffered() {
                Ok(Some(args)) => pending.push_back(args),
                Ok(None) => break,
                Err(ConnectionError::Protocol(e)) => {
                    protocol_error = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let mut replies = Vec::with_capacity(pending.len());
        let mut reply_bytes = 0usize;
        let mut close = false;
        let turn = shared.client_turn.lock().await;
        let observed = {
            let mut ks = shared.keyspace.lock();
            let now = unix_ms();
            session.reset_clock();
            while let Some(args) = pending.pop_front() {
                let (reply, after) = session.handle(&mut ks, shared.as_ref(), now, args);
                reply_bytes = reply_bytes.saturating_add(reply.size_hint());
                replies.push(reply);
                if after == After::Close {
                    close = true;
                    break;
                }
                if reply_bytes >= limits.output {
                    break;
                }
            }
            let ops = ks.take_pending();
            if !ops.is_empty() {
                shared.committer.submit(ops, ks.lsn());
            }
            ks.lsn()
        };
        drop(turn);
        session.drop_spent();
        // Before any reply is sent: a client that then scrapes the metrics
        // sees its commands counted.
        session.flush_timings(shared.as_ref());
        if !pending.is_empty() && !close {
            tracing::trace!(
                client = session.client.id,
                reply_bytes,
                waiting = pending.len(),
                "output limit reached; writing replies before running more"
            );
        }
        shared
            .stats
            .commands_processed
            .fetch_add(replies.len() as u64, Relaxed);
        // No client sees a write, its own reply or another client's read of
        // it, before the op log holds it under the fsync policy.
        if !matches!(shared.committer.durable(), Durable::UpTo(n) if n >= observed)
            && !shared.committer.wait(observed).await
        {
            replies = replies
                .into_iter()
                .map(|_| {
                    Frame::error(
                        "MISCONF Errors writing to the op log; writes are not being acknowledged",
                    )
                })
                .collect();
        }
        conn.set_protocol(if session.client.resp == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        });
        for r in &replies {
            conn.queue(r);
        }
        drop(replies);
        if let Some(name) = &session.client.name {
            if let Some(c) = shared.clients.lock().get_mut(&session.client.id) {
                c.name = String::from_utf8_lossy(name).into_owned();
            }
        }
        conn.set_auth_required(!session.client.authenticated);
        // Commands queued in a MULTI count against the query buffer limit.
        conn.set_held_elsewhere(session.multi_bytes());
        if session.multi_bytes() > conn.effective_query_buffer_limit() {
            return Err(ConnectionError::QueryBufferLimit {
                len: session.multi_bytes(),
                limit: conn.effective_query_buffer_limit(),
            });
        }
        if close {
            conn.flush().await?;
            return Ok(());
        }
        if let (Some(e), true) = (protocol_error, pending.is_empty()) {
            conn.send_protocol_error(&e).await?;
            return Ok(());
        }
        conn.flush().await?;
    }
}

/// Active expiry, memory sampling and snapshots.
async fn background(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_snapshot = Instant::now();
    let mut last_collect = Instant::now();
    let mut collected_at: Option<crate::crdt::VersionVector> = None;
    loop {
        tick.tick().await;
        // Drop metadata every region has seen (folded counters, removed
        // tags). Stable means: every member region holds it.
        if last_collect.elapsed() >= Duration::from_secs(1) {
            last_collect = Instant::now();
            let mut ks = shared.keyspace.lock();
            let frontier = shared
                .stability
                .lock()
                .frontier(ks.state().version_vector());
            // An unchanged frontier has nothing new to collect (what a write
            // touches after a collection is newer than its frontier), and a
            // pass costs O(keys written since their last collection) under
            // the lock: a region that a peer has not acknowledged for a
            // while (a joining one, a cut link) would pay it every second.
            if collected_at.as_ref() != Some(&frontier) {
                ks.collect(&frontier);
                collected_at = Some(frontier);
            }
        }
        if shared.syncing.load(Relaxed) {
            let limit = shared.config.read().replication.startup_peer_wait_ms;
            shared.end_peer_sync_after(shared.started.elapsed(), Duration::from_millis(limit));
            continue;
        }
        // Active expiry, bounded per tick like Redis' expire cycle.
        {
            let mut ks = shared.keyspace.lock();
            let n = ks.expire_due(unix_ms(), 200);
            if n > 0 {
                let ops = ks.take_pending();
                shared.committer.submit(ops, ks.lsn());
            }
        }
        shared.used_memory.store(resident_bytes(), Relaxed);
        let (every_ops, every_secs) = {
            let c = shared.config.read();
            (c.snapshot_every_ops, c.snapshot_every_secs)
        };
        let total = shared.keyspace.lock().state().version_vector().total();
        let since = total.saturating_sub(shared.ops_at_last_snapshot.load(Relaxed));
        let due = (every_ops > 0 && since >= every_ops)
            || (every_secs > 0
                && since > 0
                && last_snapshot.elapsed() >= Duration::from_secs(every_secs));
        if due && !shared.snapshot_running.swap(true, Relaxed) {
            last_snapshot = Instant::now();
            spawn_snapshot(&shared);
        }
    }
}

/// Removes the restore marker, logging a failure (a marker left behind only
/// makes the next start wait for peers again).
fn remove_marker(data_dir: &std::path::Path) {
    if let Err(e) = RestoreMarker::remove(data_dir) {
        tracing::warn!(error = %e, dir = %data_dir.display(), "cannot remove the restore marker");
    }
}

/// Starts a snapshot in the background; the caller has set
/// `snapshot_running`, which is cleared when it ends. Returns its number.
fn spawn_snapshot(shared: &Arc<Shared>) -> u64 {
    let id = shared.stats.snapshots_started.fetch_add(1, Relaxed) + 1;
    let s = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = snapshot_numbered(&s, id).await {
            tracing::error!(error = %e, "snapshot failed");
            let mut last = s.last_snapshot.lock();
            last.failed_id = id;
            last.error = e.to_string().replace(['\r', '\n'], " ");
        }
        s.snapshot_running.store(false, Relaxed);
    });
    id
}

/// Writes a snapshot of the current state without stalling clients (the
/// frozen copy shares memory with the live state), then truncates the log
/// it covers once the snapshot is durable.
pub async fn snapshot_now(shared: &Arc<Shared>) -> std::io::Result<()> {
    let id = shared.stats.snapshots_started.fetch_add(1, Relaxed) + 1;
    snapshot_numbered(shared, id).await
}

/// [`snapshot_now`], as snapshot number `id` (`INFO persistence`'s
/// `last_snapshot_id` once written).
async fn snapshot_numbered(shared: &Arc<Shared>, id: u64) -> std::io::Result<()> {
    let (frozen, lsn) = {
        let ks = shared.keyspace.lock();
        (ks.state().freeze(), ks.lsn())
    };
    // The snapshot must not be ahead of the durable log.
    shared.committer.wait(lsn).await;
    let s = shared.clone();
    let keep = shared.config.read().snapshots_keep;
    let t0 = Instant::now();
    let info = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let info = s.snapshots.write(&frozen)?;
        // Records every configured peer still needs stay in the log, up to
        // the retention cap; beyond it a lagging peer will get a snapshot.
        let snap = frozen.version_vector();
        let mut covered = match s.replication.get().and_then(|r| r.acked_by_all()) {
            Some(acked) => snap.meet(&acked),
            None => snap.clone(),
        };
        let retention = s.config.read().replication.log_retention_ops;
        let kept = snap.total().saturating_sub(covered.total());
        if retention > 0 && kept > retention {
            let lagging = s.replication.get().map(|r| r.lagging_peers(snap)).unwrap_or_default();
            tracing::warn!(
                kept_ops = kept,
                retention_ops = retention,
                lagging = %lagging.join(","),
                "op log over its retention cap: truncating operations not every peer has; the lagging peers will need a snapshot to catch up"
            );
            covered = snap.clone();
        }
        s.log
            .truncate_covered(&covered)
            .map_err(std::io::Error::other)?;
        s.snapshots.prune(keep)?;
        Ok(info)
    })
    .await
    .map_err(std::io::Error::other)??;
    shared.stats.snapshots_written.fetch_add(1, Relaxed);
    shared
        .stats
        .last_snapshot_unix
        .store(unix_ms() / 1000, Relaxed);
    shared
        .stats
        .last_snapshot_ms
        .store(t0.elapsed().as_millis() as u64, Relaxed);
    shared.ops_at_last_snapshot.store(info.ops, Relaxed);
    shared.metrics.snapshot(SnapshotKind::Local, t0.elapsed());
    {
        let file = std::fs::canonicalize(&info.path).unwrap_or_else(|_| info.path.clone());
        let mut last = shared.last_snapshot.lock();
        last.id = id;
        last.file = file.display().to_string();
        last.vv = vv_text(&info.header.version_vector);
        last.digest = digest_hex(info.header.digest);
    }
    tracing::info!(path = %info.path.display(), ops = info.ops, bytes = info.size, elapsed_ms = t0.elapsed().as_millis() as u64, "snapshot written");
    Ok(())
}

/// Resident set size of this process (what maxmemory is compared to).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

impl ServerHooks for Shared {
    fn info(&self, ks: &Keyspace, section: Option<&str>) -> String {
        let c = self.config.read();
        let all = matches!(
            section,
            None | Some("all") | Some("everything") | Some("default")
        );
        let want = |s: &str| all || section == Some(s);
        let mut out = String::new();
        if want("server") {
            out.push_str(&format!(
                "# Server\r\nredis_version:7.2.0\r\nbraid_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nregion:{}\r\nregion_id:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::process::id(),
                self.local_addr.port(),
                self.started.elapsed().as_secs(),
                c.region,
                c.region_id,
            ));
        }
        if want("clients") {
            out.push_str(&format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
                self.clients.lock().len(),
                c.maxclients
            ));
        }
        if want("memory") {
            let used = self.used_memory.load(Relaxed);
            out.push_str(&format!(
                "# Memory\r\nused_memory:{used}\r\nused_memory_rss:{used}\r\nmaxmemory:{}\r\nmaxmemory_policy:noeviction\r\n\r\n",
                c.maxmemory.0
            ));
        }
        if want("persistence") {
            let durable = match self.committer.durable() {
                Durable::UpTo(n) => n.to_string(),
                Durable::Failed => "failed".into(),
            };
            let last = self.last_snapshot.lock();
            out.push_str(&format!(
                "# Persistence\r\nloading:0\r\nfsync_policy:{}\r\naof_enabled:1\r\nlog_writes:{}\r\nlog_ops_written:{}\r\nlog_durable_lsn:{durable}\r\nlog_applied_lsn:{}\r\nsnapshots_written:{}\r\nsnapshot_in_progress:{}\r\nlast_snapshot_time:{}\r\nlast_snapshot_duration_ms:{}\r\nlast_snapshot_id:{}\r\nlast_snapshot_file:{}\r\nlast_snapshot_vv:{}\r\nlast_snapshot_digest:{}\r\nlast_failed_snapshot_id:{}\r\nlast_snapshot_error:{}\r\nrdb_last_save_time:{}\r\n\r\n",
                c.fsync,
                self.committer.stats.writes.load(Relaxed),
                self.committer.stats.ops.load(Relaxed),
                ks.lsn(),
                self.stats.snapshots_written.load(Relaxed),
                u8::from(self.snapshot_running.load(Relaxed)),
                self.stats.last_snapshot_unix.load(Relaxed),
                self.stats.last_snapshot_ms.load(Relaxed),
                last.id,
                last.file,
                last.vv,
                last.digest,
                last.failed_id,
                last.error,
                self.stats.last_snapshot_unix.load(Relaxed),
            ));
            // Inserted before the blank line that ends the section.
            out.truncate(out.len() - 2);
            out.push_str(&self.info_persistence_extra());
            out.push_str("\r\n");
        }
        if want("stats") {
            out.push_str(&format!(
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nlocal_ops:{}\r\nconflicts_resolved:{}\r\n\r\n",
                self.stats.connections_received.load(Relaxed),
                self.stats.commands_processed.load(Relaxed),
                self.stats.rejected_connections.load(Relaxed),
                ks.stats.expired_keys,
                ks.stats.local_ops,
                ks.stats.conflicts,
            ));
        }
        if want("conflicts") {
            let j = &ks.conflicts;
            out.push_str(&format!(
                "# Conflicts\r\nconflicts_resolved:{}\r\nconflict_journal_len:{}\r\nconflict_journal_max_len:{}\r\nconflict_traces:{}\r\nconflict_untraced_ops:{}\r\n",
                j.total(),
                j.len(),
                j.capacity(),
                ks.state().trace_len(),
                ks.state().untraced_ops(),
            ));
            // One line per (key type, rule) seen: conflicts_<type>_<rule>.
            for (t, rule, n) in j.counts() {
                out.push_str(&format!("conflicts_{t}_{rule}:{n}\r\n"));
            }
            out.push_str("\r\n");
        }
        if want("replication") {
            out.push_str(&format!(
                "# Replication\r\nrole:active-active\r\nregion:{}\r\nregion_id:{}\r\nwrites:{}\r\nrestored_from_backup:{}\r\nversion_vector:{}\r\ndigest:{:032x}\r\nremote_ops_applied:{}\r\ncausal_buffer_ops:{}\r\n",
                c.region,
                c.region_id,
                if self.syncing.load(Relaxed) { "waiting-for-peers" } else { "enabled" },
                u8::from(self.restored.load(Relaxed)),
                ks.state().version_vector(),
                ks.state().digest(),
                self.stats.remote_ops.load(Relaxed),
                self.causal_waiting.load(Relaxed),
            ));
            out.push_str(&self.info_replication_extra(ks));
            out.push_str("\r\n");
        }
        let extra =
            |s: &str| matches!(section, Some("all") | Some("everything")) || section == Some(s);
        if extra("commandstats") {
            out.push_str(&self.info_commandstats());
        }
        if extra("latencystats") {
            out.push_str(&self.info_latencystats());
        }
        if want("keyspace") {
            out.push_str("# Keyspace\r\n");
            if !ks.is_empty() {
                out.push_str(&format!(
                    "db0:keys={},expires={},avg_ttl=0\r\n",
                    ks.len(),
                    ks.owned_deadlines()
                ));
            }
            out.push_str("\r\n");
        }
        out
    }

    fn config_get(&self, pattern: &[u8]) -> Vec<(String, String)> {
        let c = self.config.read();
        let all = [
            ("bind", c.bind.to_string()),
            ("port", c.port.to_string()),
            ("dir", c.data_dir.display().to_string()),
            ("data-dir", c.data_dir.display().to_string()),
            ("region", c.region.clone()),
            ("region-id", c.region_id.to_string()),
            ("fsync", c.fsync.to_string()),
            ("appendonly", "yes".to_string()),
            ("appendfsync", c.fsync.to_string()),
            ("save", String::new()),
            ("requirepass", c.requirepass.clone().unwrap_or_default()),
            ("maxmemory", c.maxmemory.0.to_string()),
            ("maxmemory-policy", "noeviction".to_string()),
            ("maxclients", c.maxclients.to_string()),
            ("databases", "1".to_string()),
            ("snapshot-every-ops", c.snapshot_every_ops.to_string()),
            ("snapshot-every-secs", c.snapshot_every_secs.to_string()),
            ("snapshots-keep", c.snapshots_keep.to_string()),
            ("conflict-journal-len", c.conflict_journal_len.to_string()),
            ("proto-max-bulk-len", c.proto_max_bulk_len.0.to_string()),
            (
                "proto-max-multibulk-len",
                c.proto_max_multibulk_len.to_string(),
            ),
            (
                "client-query-buffer-limit",
                c.client_query_buffer_limit.0.to_string(),
            ),
            (
                "client-output-buffer-limit",
                c.client_output_buffer_limit.0.to_string(),
            ),
            ("client-pipeline-depth", c.client_pipeline_depth.to_string()),
            ("worker-threads", c.worker_threads.to_string()),
        ];
        all.into_iter()
            .filter(|(k, _)| config_matches(pattern, k))
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn config_set(&self, name: &str, value: &str) -> Result<(), String> {
        let mut c = self.config.write();
        match name {
            "requirepass" => c.requirepass = (!value.is_empty()).then(|| value.to_string()),
            "maxmemory" => {
                c.maxmemory = value.parse()?;
                self.maxmemory.store(c.maxmemory.0, Relaxed);
            }
            "maxclients" => {
                c.maxclients = value
                    .parse()
                    .map_err(|_| "argument must be a number".to_string())?
            }
            "snapshot-every-ops" => {
                c.snapshot_every_ops = value
                    .parse()
                    .map_err(|_| "argument must be a number".to_string())?
            }
            "snapshot-every-secs" => {
                c.snapshot_every_secs = value
                    .parse()
                    .map_err(|_| "argument must be a number".to_string())?
            }
            "snapshots-keep" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| "argument must be a number".to_string())?;
                if n == 0 {
                    return Err("argument must be at least 1".into());
                }
                c.snapshots_keep = n;
            }
            "fsync" | "appendfsync" => {
                let p: FsyncPolicy = value.parse()?;
                if p != c.fsync {
                    return Err("fsync can only be changed by restarting the server".into());
                }
            }
            _ => return Err("Unknown option or number of arguments for CONFIG SET".into()),
        }
        Ok(())
    }

    fn client_list(&self) -> String {
        let clients = self.clients.lock();
        let mut out = String::new();
        for (id, c) in clients.iter() {
            out.push_str(&format!(
                "id={id} addr={} name={} age={} db=0\n",
                c.addr,
                c.name,
                c.since.elapsed().as_secs()
            ));
        }
        out
    }

    fn requirepass(&self) -> Option<String> {
        self.config.read().requirepass.clone()
    }

    fn shutdown(&self) {
        self.request_shutdown();
    }

    fn writes_blocked(&self) -> Option<&'static str> {
        self.syncing.load(Relaxed).then_some(
            "LOADING Braid is learning this region's own high-water mark from its peers; writes resume once one answers",
        )
    }

    fn over_maxmemory(&self) -> bool {
        let max = self.maxmemory.load(Relaxed);
        max > 0 && self.used_memory.load(Relaxed) > max
    }

    fn request_snapshot(&self) -> Result<u64, String> {
        let me = self
            .me
            .get()
            .and_then(Weak::upgrade)
            .ok_or("the server is shutting down")?;
        if self.shutting_down.load(Relaxed) {
            return Err("the server is shutting down".into());
        }
        if self.snapshot_running.swap(true, Relaxed) {
            return Err("a snapshot is already in progress".into());
        }
        Ok(spawn_snapshot(&me))
    }

    fn commands_done(&self, name: &'static str, took: &crate::metrics::LocalDurations) {
        self.metrics.commands_done(name, took);
    }
}
