//! Active-active replication: regions ship their op logs to each other over
//! QUIC with mutual TLS and merge what they receive.
//!
//! Pure codecs ([`segment`], [`message`]) in the middle; the QUIC endpoint,
//! certificates ([`tls`], [`certs`]) and the per-peer links ([`link`]) at
//! the edge. The region itself is reached through [`ReplicaHost`], so this
//! module knows nothing of the server.
//!
//! Every link carries one direction of data: the region that dials a peer
//! ships its log to it on that connection, and the peer acknowledges. Each
//! region dials the peers its configuration lists; a region that is dialed
//! by one it does not list dials it back at the address it advertises (how a
//! new region joins without restarting the others).

pub mod certs;
pub mod link;
pub mod message;
pub mod segment;
pub mod tls;

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::config::{PeerConfig, ReplicationConfig};
use crate::crdt::{Operation, RegionId, Seq, VersionVector};

/// What replication needs from the region it runs in.
pub trait ReplicaHost: Send + Sync + 'static {
    /// What this region holds durably: its own operations up to the last
    /// sync, others' as persisted. Sent in handshakes and acks.
    fn durable_vv(&self) -> VersionVector;
    /// Operations of `origin` with sequence in `(after, upto]` from the op
    /// log, in order, at most `max_ops` and about `max_bytes`, with their
    /// encoded size.
    fn read_log(
        &self,
        origin: RegionId,
        after: Seq,
        upto: Seq,
        max_ops: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Operation>, usize), String>;
    /// Writes to the op log and applies operations received from a peer, in
    /// causal order, holding back those whose dependencies are missing.
    /// Returns once everything applicable is applied (readers see it), with
    /// the ticket to pass to `make_durable` before acknowledging it.
    fn receive(&self, ops: Vec<Operation>) -> impl Future<Output = Result<u64, String>> + Send;
    /// Syncs what `receive` returned `ticket` for (and all before it);
    /// `u64::MAX`: whatever is applied and not yet synced. Until then
    /// `durable_vv` does not count it.
    fn make_durable(&self, ticket: u64) -> impl Future<Output = Result<(), String>> + Send;
    /// Bumped whenever the log gains operations a peer could be sent.
    fn log_changed(&self) -> watch::Receiver<u64>;
    /// A peer's durable version vector (for stability and log truncation).
    fn peer_reported(&self, peer: RegionId, durable: &VersionVector);
    /// The highest sequence of `origin` below which the log no longer holds
    /// records (truncated after a snapshot): a peer behind it needs a
    /// snapshot.
    fn log_floor(&self, origin: RegionId) -> Seq;
    /// Writes a snapshot of what may leave the region (its synced state)
    /// for a peer; returns the file and what it covers.
    fn snapshot_for_peer(
        &self,
    ) -> impl Future<Output = Result<(std::path::PathBuf, VersionVector), String>> + Send;
    /// Whether a snapshot covering `covers` may replace this region's
    /// state: it must hold everything this region holds.
    fn can_install(&self, covers: &VersionVector) -> bool;
    /// Where an incoming snapshot file is written.
    fn incoming_snapshot_path(&self) -> std::path::PathBuf;
    /// Validates a received snapshot file, makes it the newest local
    /// snapshot and replaces the state with it.
    fn install_snapshot(
        &self,
        path: std::path::PathBuf,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// A peer greeted us with its durable vector: while this region waits to
    /// learn its own high-water mark (fresh or restored data directory), this
    /// is how it learns it.
    fn peer_greeted(&self, peer: RegionId, durable: &VersionVector);
    /// Whether operations of this very region may be taken from peers: only
    /// while it recovers ones it lost and takes no writes.
    fn accepts_own_ops(&self) -> bool;
    /// This region's own sequence as applied (what its clients can read):
    /// what its heartbeats carry.
    fn applied_own(&self) -> Seq;
    /// A heartbeat arrived: `origin` had applied its own operations up to
    /// `seq` at `unix_ms` (for the consistency lag).
    fn heartbeat(&self, origin: RegionId, seq: Seq, unix_ms: u64);
}

/// A link's state as `INFO replication` shows it.
#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    /// Region id (0 until the handshake).
    pub id: u16,
    /// Where it is dialed.
    pub addr: Option<SocketAddr>,
    /// `connecting`, `up`, `down`.
    pub outbound: &'static str,
    /// When `outbound` last changed.
    pub outbound_since: Option<Instant>,
    /// Whether it currently ships to us.
    pub inbound_up: bool,
    /// Smoothed round-trip time of segment acks.
    pub rtt: Option<Duration>,
    /// Its durable version vector as last acknowledged.
    pub acked: VersionVector,
    /// Operations we hold that it has not acknowledged.
    pub lag_ops: u64,
    /// Age of the oldest unacknowledged segment.
    pub lag_since: Option<Instant>,
    /// Bytes sent: operations before compression, and on the wire.
    pub sent_raw: u64,
    /// See `sent_raw`.
    pub sent_wire: u64,
    /// Segments and operations sent.
    pub segments_sent: u64,
    /// See `segments_sent`.
    pub ops_sent: u64,
    /// Snapshots sent and received (joining or far behind).
    pub snapshots_sent: u64,
    /// See `snapshots_sent`.
    pub snapshots_recv: u64,
    /// Bytes received, before and after decompression.
    pub recv_wire: u64,
    /// See `recv_wire`.
    pub recv_raw: u64,
    /// Segments and operations received.
    pub segments_recv: u64,
    /// See `segments_recv`.
    pub ops_recv: u64,
    /// Compressed segments sent.
    pub segments_compressed: u64,
    /// Current batch window.
    pub batch_window: Duration,
    /// Last error on either direction.
    pub last_error: String,
    /// The peer's boot id when our link to it came up.
    pub boot: u64,
    /// Protocol version of our outbound link to it (0: not up yet).
    pub version: u64,
    /// Heartbeats sent to it and received from it (any origin).
    pub heartbeats_sent: u64,
    /// See `heartbeats_sent`.
    pub heartbeats_recv: u64,
    /// Sizes and batch windows of the segments sent to it.
    pub segments: Arc<crate::metrics::LinkHistograms>,
}

/// Replication of one region: its endpoint, links and their statistics.
pub struct Replication {
    /// This region's id and name.
    pub region: (RegionId, String),
    /// Random per start (see [`message::Greeting::boot`]).
    pub boot: u64,
    /// Settings.
    pub config: ReplicationConfig,
    /// Per peer name.
    pub peers: Mutex<BTreeMap<String, PeerStats>>,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    /// The newest heartbeat heard of each other region (sequence, Unix
    /// ms), passed on to peers so that regions without a direct link
    /// measure each other too.
    heard: Mutex<BTreeMap<RegionId, (Seq, u64)>>,
    /// Names of peers a dialer runs for.
    dialing: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// Certificates missing or unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot listen for replication on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

impl Replication {
    /// Binds the QUIC endpoint and starts dialing the configured peers.
    pub fn start<H: ReplicaHost>(
        region: (RegionId, String),
        config: ReplicationConfig,
        listen: SocketAddr,
        host: Arc<H>,
    ) -> Result<Arc<Replication>, ReplicationError> {
        let files = tls::TlsFiles {
            ca: config.tls_dir.join("ca.pem"),
            cert: config.tls_dir.join(format!("{}.pem", region.1)),
            key: config.tls_dir.join(format!("{}.key", region.1)),
        };
        let identity = tls::RegionTls::load(&files)?;
        let server_config = identity.server_config()?;
        let client_config = identity.client_config()?;
        let endpoint = quinn::Endpoint::server(server_config, listen).map_err(|source| {
            ReplicationError::Bind {
                addr: listen,
                source,
            }
        })?;
        let repl = Arc::new(Replication {
            region,
            boot: fastrand::u64(1..),
            config: config.clone(),
            peers: Mutex::new(BTreeMap::new()),
            endpoint,
            client_config,
            heard: Mutex::new(BTreeMap::new()),
            dialing: Mutex::new(BTreeMap::new()),
            accept_task: Mutex::new(None),
        });
        tracing::info!(addr = %repl.local_addr(), peers = config.peers.len(), "replication listening");
        for peer in &config.peers {
            repl.dial(peer.clone(), host.clone());
        }
        let accept = tokio::spawn(link::accept_loop(repl.clone(), host));
        *repl.accept_task.lock() = Some(accept);
        Ok(repl)
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Starts shipping the log to `peer` unless a dialer already runs for it.
    pub(crate) fn dial<H: ReplicaHost>(self: &Arc<Self>, peer: PeerConfig, host: Arc<H>) {
        let mut dialing = self.dialing.lock();
        if dialing.contains_key(&peer.name) {
            return;
        }
        self.peers.lock().entry(peer.name.clone()).or_default().addr = Some(peer.addr);
        let task = tokio::spawn(link::dial_loop(self.clone(), host, peer.clone()));
        dialing.insert(peer.name, task);
    }

    /// Restarts our link to `name` when it just greeted us (so it is
    /// reachable now) and our link to it is not up, or is up but was opened
    /// with an earlier process of that region (`boot` differs): after a
    /// crash, our old connection to it is dead without our knowing until
    /// the idle timeout, and a dialer waiting out a backoff or a handshake
    /// timeout to a region that was down would leave it without our
    /// operations for up to ten seconds after it came back.
    pub(crate) fn redial_if_restarted<H: ReplicaHost>(
        self: &Arc<Self>,
        name: &str,
        boot: u64,
        host: Arc<H>,
    ) {
        let (up, addr, id) = {
            let peers = self.peers.lock();
            match peers.get(name) {
                Some(s) => {
                    // A handshake with a live peer takes milliseconds: one
                    // still connecting after a second is to a dead address.
                    let stuck = s.outbound == "down"
                        || (s.outbound == "connecting"
                            && s.outbound_since
                                .is_none_or(|t| t.elapsed() > Duration::from_secs(1)));
                    let restarted = s.outbound == "up" && s.boot != boot;
                    (stuck || restarted, s.addr, s.id)
                }
                None => (false, None, 0),
            }
        };
        let (true, Some(addr)) = (up, addr) else {
            return;
        };
        if let Some(task) = self.dialing.lock().remove(name) {
            task.abort();
        }
        tracing::info!(peer = %name, "peer (re)started; restarting our link to it");
        self.dial(
            PeerConfig {
                name: name.to_string(),
                id,
                addr,
            },
            host,
        );
    }

    /// Whether a dialer runs for the named peer.
    pub(crate) fn is_dialing(&self, name: &str) -> bool {
        self.dialing.lock().contains_key(name)
    }

    /// The id the cluster knows for a region name, if any (configured peers,
    /// this region, and peers met since).
    pub(crate) fn known_id(&self, name: &str) -> Option<u16> {
        if name == self.region.1 {
            return Some(self.region.0 .0);
        }
        self.config
            .peers
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .or_else(|| {
                self.peers
                    .lock()
                    .get(name)
                    .map(|s| s.id)
                    .filter(|&id| id != 0)
            })
    }

    /// The name known for a region id, if any.
    pub(crate) fn known_name(&self, id: u16) -> Option<String> {
        if id == self.region.0 .0 {
            return Some(self.region.1.clone());
        }
        self.config
            .peers
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .or_else(|| {
                self.peers
                    .lock()
                    .iter()
                    .find(|(_, s)| s.id == id)
                    .map(|(n, _)| n.clone())
            })
    }

    /// Updates one peer's statistics.
    pub(crate) fn with_peer<T>(&self, name: &str, f: impl FnOnce(&mut PeerStats) -> T) -> T {
        f(self.peers.lock().entry(name.to_string()).or_default())
    }

    /// The meet of every configured peer's acknowledged durable vector: what
    /// all of them hold (empty while one has never acknowledged).
    pub fn acked_by_all(&self) -> Option<VersionVector> {
        let peers = self.peers.lock();
        let mut out: Option<VersionVector> = None;
        for p in &self.config.peers {
            let acked = peers
                .get(&p.name)
                .map(|s| s.acked.clone())
                .unwrap_or_default();
            out = Some(match out {
                None => acked,
                Some(v) => v.meet(&acked),
            });
        }
        out
    }

    /// Configured peers that have not acknowledged everything in `vv`.
    pub fn lagging_peers(&self, vv: &VersionVector) -> Vec<String> {
        let peers = self.peers.lock();
        self.config
            .peers
            .iter()
            .filter(|p| peers.get(&p.name).is_none_or(|s| !s.acked.dominates(vv)))
            .map(|p| p.name.clone())
            .collect()
    }

    /// Keeps the newest heartbeat heard of `origin`; whether it is newer
    /// than any heard before (an older one came another way).
    pub(crate) fn heard(&self, origin: RegionId, seq: Seq, unix_ms: u64) -> bool {
        let mut heard = self.heard.lock();
        if heard.len() >= crate::metrics::consistency::MAX_ORIGINS && !heard.contains_key(&origin) {
            return false;
        }
        let e = heard.entry(origin).or_insert((0, 0));
        if unix_ms <= e.1 {
            return false;
        }
        *e = (seq, unix_ms);
        true
    }

    /// The newest heartbeat heard of every region but `except` (the peer
    /// a link goes to) and this one.
    pub(crate) fn heard_except(&self, except: RegionId) -> Vec<(RegionId, Seq, u64)> {
        self.heard
            .lock()
            .iter()
            .filter(|(r, _)| **r != except && **r != self.region.0)
            .map(|(r, (s, t))| (*r, *s, *t))
            .collect()
    }

    /// The `INFO replication` section body; `extra(id)` adds fields to the
    /// line of the peer with that region id.
    pub fn info(&self, local: &VersionVector, extra: impl Fn(u16) -> String) -> String {
        let peers = self.peers.lock();
        let mut out = format!(
            "replication_listen:{}\r\nconnected_peers:{}\r\n",
            self.local_addr(),
            peers.values().filter(|p| p.outbound == "up").count()
        );
        for (i, (name, p)) in peers.iter().enumerate() {
            let lag_ms = p.lag_since.map_or(0, |t| t.elapsed().as_millis() as u64);
            let lag_ops: u64 = local
                .iter()
                .map(|(r, s)| s.saturating_sub(p.acked.get(r)))
                .sum();
            out.push_str(&format!(
                "peer{i}:name={name},id={},addr={},link={},inbound={},rtt_ms={:.3},lag_ops={lag_ops},lag_ms={lag_ms},{}protocol={},heartbeats_sent={},heartbeats_recv={},sent_raw_bytes={},sent_wire_bytes={},segments_sent={},segments_compressed={},ops_sent={},recv_wire_bytes={},recv_raw_bytes={},segments_recv={},ops_recv={},snapshots_sent={},snapshots_recv={},batch_window_ms={:.3},acked_vv={},last_error={}\r\n",
                p.id,
                p.addr.map_or_else(|| "-".to_string(), |a| a.to_string()),
                if p.outbound.is_empty() { "none" } else { p.outbound },
                if p.inbound_up { "up" } else { "down" },
                p.rtt.map_or(0.0, |r| r.as_secs_f64() * 1000.0),
                extra(p.id),
                p.version,
                p.heartbeats_sent,
                p.heartbeats_recv,
                p.sent_raw,
                p.sent_wire,
                p.segments_sent,
                p.segments_compressed,
                p.ops_sent,
                p.recv_wire,
                p.recv_raw,
                p.segments_recv,
                p.ops_recv,
                p.snapshots_sent,
                p.snapshots_recv,
                p.batch_window.as_secs_f64() * 1000.0,
                p.acked,
                p.last_error.replace([',', '\r', '\n'], " "),
            ));
        }
        out
    }

    /// Stops every link and closes the endpoint.
    pub async fn shutdown(&self) {
        if let Some(t) = self.accept_task.lock().take() {
            t.abort();
        }
        for (_, t) in std::mem::take(&mut *self.dialing.lock()) {
            t.abort();
        }
        self.endpoint.close(0u32.into(), b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}
