//! A user-space UDP relay that emulates a WAN link between two regions.
//!
//! A [`Relay`] listens on a UDP address and forwards every datagram it
//! receives to one fixed target; what the target sends back goes to the
//! client that sent. Each client (source address) gets its own upstream
//! socket, so the target sees one distinct peer per client, as it would
//! through a NAT. Each direction has its own [`LinkConditions`]: delay,
//! jitter, random loss, and a cut. They can be changed at any time through
//! the [`RelayHandle`], which also counts what passed and what was dropped.
//!
//! *Forward* is client → target, *backward* is target → client. To put a
//! link between regions `a` and `b` (where `a` dials `b`), start a relay
//! listening on a free port with `b`'s replication address as target and
//! give `a` the relay's address for `b`: `--peer b=ID@RELAY`. Since a
//! Braid connection carries data one way and acknowledgements the other,
//! one relay per dialing region and peer covers both directions of that
//! connection.
//!
//! Delayed datagrams leave in the order they arrived (jitter varies the
//! delay but never lets a datagram overtake an earlier one), as on a
//! single WAN path. A cut drops datagrams still waiting in the delay queue
//! too. Nothing here needs privileges: no `tc`, no raw sockets.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Largest datagram relayed (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams waiting in one direction's delay queue of one client before
/// new ones are dropped (a router's buffer).
const QUEUE_LIMIT: usize = 1 << 16;
/// A client silent both ways this long is forgotten (its upstream socket
/// closed).
const CLIENT_IDLE: Duration = Duration::from_secs(300);

/// How one direction of a link treats datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkConditions {
    /// Added to every datagram (one way).
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within `delay ± jitter`
    /// (never below zero, never overtaking an earlier datagram).
    pub jitter: Duration,
    /// Fraction of datagrams dropped at random, `0.0 ..= 1.0`.
    pub loss: f64,
    /// Drop everything (including datagrams already waiting to leave).
    pub cut: bool,
}

impl LinkConditions {
    /// A perfect link: no delay, no loss, not cut.
    pub const CLEAR: LinkConditions = LinkConditions {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        cut: false,
    };

    /// A link with this one-way delay and nothing else.
    pub fn delayed(delay: Duration) -> LinkConditions {
        LinkConditions {
            delay,
            ..LinkConditions::CLEAR
        }
    }

    /// The same with this jitter.
    pub fn with_jitter(self, jitter: Duration) -> LinkConditions {
        LinkConditions { jitter, ..self }
    }

    /// The same with this loss fraction.
    pub fn with_loss(self, loss: f64) -> LinkConditions {
        LinkConditions { loss, ..self }
    }

    /// Why these conditions are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!(
                "loss must be a fraction between 0 and 1, got {}",
                self.loss
            ));
        }
        Ok(())
    }

    /// The delay of one datagram: `delay ± jitter`, at least zero.
    fn sample_delay(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let offset = self.jitter.as_secs_f64() * (fastrand::f64() * 2.0 - 1.0);
        Duration::from_secs_f64((self.delay.as_secs_f64() + offset).max(0.0))
    }
}

impl std::fmt::Display for LinkConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cut {
            return write!(f, "cut");
        }
        write!(f, "delay={:?}", self.delay)?;
        if !self.jitter.is_zero() {
            write!(f, " jitter={:?}", self.jitter)?;
        }
        if self.loss > 0.0 {
            write!(f, " loss={}%", self.loss * 100.0)?;
        }
        Ok(())
    }
}

/// One direction of a relay, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → target.
    Forward,
    /// Target → client.
    Backward,
    /// Both ways.
    Both,
}

impl Direction {
    fn ways(self) -> &'static [usize] {
        match self {
            Direction::Forward => &[FORWARD],
            Direction::Backward => &[BACKWARD],
            Direction::Both => &[FORWARD, BACKWARD],
        }
    }
}

/// What one direction did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams delivered.
    pub passed: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because the direction was cut.
    pub cut: u64,
    /// Dropped because the delay queue was full, or the send failed (for
    /// example the target's port is closed).
    pub failed: u64,
}

impl DirectionStats {
    /// Every datagram dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.lost + self.cut + self.failed
    }
}

impl std::fmt::Display for DirectionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "passed={} bytes={} lost={} cut={} failed={}",
            self.passed, self.bytes, self.lost, self.cut, self.failed
        )
    }
}

/// A relay's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client → target.
    pub forward: DirectionStats,
    /// Target → client.
    pub backward: DirectionStats,
    /// Clients currently known (one upstream socket each).
    pub clients: usize,
}

const FORWARD: usize = 0;
const BACKWARD: usize = 1;

/// One direction's conditions and counters.
#[derive(Default)]
struct Way {
    conditions: Mutex<LinkConditions>,
    passed: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    cut: AtomicU64,
    failed: AtomicU64,
}

impl Way {
    fn new(c: LinkConditions) -> Way {
        Way {
            conditions: Mutex::new(c),
            ..Way::default()
        }
    }

    /// When a datagram arriving now leaves, or `None` if it is dropped.
    /// `last` is the departure time of the previous datagram of the same
    /// queue: nothing overtakes it.
    fn admit(&self, last: &mut Instant) -> Option<Instant> {
        let c = *self.conditions.lock();
        if c.cut {
            self.cut.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if c.loss > 0.0 && fastrand::f64() < c.loss {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let at = (Instant::now() + c.sample_delay()).max(*last);
        *last = at;
        Some(at)
    }

    fn stats(&self) -> DirectionStats {
        DirectionStats {
            passed: self.passed.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            cut: self.cut.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A client of the relay: its upstream socket's tasks and its forward
/// queue.
struct Client {
    /// Datagrams on their way to the target.
    to_target: mpsc::Sender<(Instant, Bytes)>,
    /// Departure time of the last datagram queued toward the target.
    last_forward: Instant,
    /// Milliseconds since the relay started at the last datagram either way.
    active_ms: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Shared {
    listen: SocketAddr,
    target: SocketAddr,
    started: Instant,
    ways: [Way; 2],
    clients: Mutex<HashMap<SocketAddr, Client>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Starts relays; see the [module documentation](self).
pub struct Relay;

impl Relay {
    /// Binds `listen` (port 0 picks a free one) and relays to `target`
    /// with the given conditions per direction, on the current Tokio
    /// runtime, until [`RelayHandle::stop`] or the runtime ends.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        forward: LinkConditions,
        backward: LinkConditions,
    ) -> io::Result<RelayHandle> {
        for c in [&forward, &backward] {
            c.validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        let socket = Arc::new(UdpSocket::bind(listen).await?);
        let listen = socket.local_addr()?;
        let shared = Arc::new(Shared {
            listen,
            target,
            started: Instant::now(),
            ways: [Way::new(forward), Way::new(backward)],
            clients: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let main = tokio::spawn(accept_loop(shared.clone(), socket));
        let janitor = tokio::spawn(forget_idle_clients(shared.clone()));
        shared.tasks.lock().extend([main, janitor]);
        tracing::info!(%listen, %target, %forward, %backward, "relay started");
        Ok(RelayHandle { shared })
    }
}

/// Controls a running relay; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct RelayHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle")
            .field("listen", &self.shared.listen)
            .field("target", &self.shared.target)
            .finish()
    }
}

impl RelayHandle {
    /// The bound listening address (clients send here).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// Where datagrams are relayed.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Replaces the client → target conditions.
    pub fn set_forward(&self, c: LinkConditions) {
        self.set(Direction::Forward, c);
    }

    /// Replaces the target → client conditions.
    pub fn set_backward(&self, c: LinkConditions) {
        self.set(Direction::Backward, c);
    }

    /// Replaces the conditions of one direction or both.
    pub fn set(&self, direction: Direction, c: LinkConditions) {
        let c = LinkConditions {
            loss: c.loss.clamp(0.0, 1.0),
            ..c
        };
        for &w in direction.ways() {
            *self.shared.ways[w].conditions.lock() = c;
        }
        tracing::info!(listen = %self.shared.listen, ?direction, conditions = %c, "relay conditions changed");
    }

    /// The client → target conditions.
    pub fn forward(&self) -> LinkConditions {
        *self.shared.ways[FORWARD].conditions.lock()
    }

    /// The target → client conditions.
    pub fn backward(&self) -> LinkConditions {
        *self.shared.ways[BACKWARD].conditions.lock()
    }

    /// Cuts one direction or both: everything is dropped, including
    /// datagrams still in the delay queue. Delay and loss are kept for
    /// when the link heals.
    pub fn cut(&self, direction: Direction) {
        for &w in direction.ways() {
            self.shared.ways[w].conditions.lock().cut = true;
        }
        tracing::info!(listen = %self.shared.listen, ?direction, "relay cut");
    }

    /// Heals both directions (delay, jitter and loss stay as set).
    pub fn heal(&self) {
        for w in &self.shared.ways {
            w.conditions.lock().cut = false;
        }
        tracing::info!(listen = %self.shared.listen, "relay healed");
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            forward: self.shared.ways[FORWARD].stats(),
            backward: self.shared.ways[BACKWARD].stats(),
            clients: self.shared.clients.lock().len(),
        }
    }

    /// Stops relaying and closes every socket.
    pub fn stop(&self) {
        for t in self.shared.tasks.lock().drain(..) {
            t.abort();
        }
        self.shared.clients.lock().clear();
    }
}

/// Whether a socket error concerns one datagram only (an ICMP error from
/// an earlier send, a full buffer) rather than the socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
    )
}

/// Receives from clients and queues toward the target.
async fn accept_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) if transient(&e) => {
                tracing::debug!(listen = %shared.listen, error = %e, "relay receive");
                continue;
            }
            Err(e) => {
                tracing::warn!(listen = %shared.listen, error = %e, "relay receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let data = Bytes::copy_from_slice(&buf[..n]);
        let known = shared.clients.lock().contains_key(&from);
        if !known {
            match new_client(&shared, &socket, from).await {
                Ok(client) => {
                    tracing::info!(listen = %shared.listen, client = %from, target = %shared.target, "relay: new client");
                    shared.clients.lock().insert(from, client);
                }
                Err(e) => {
                    tracing::warn!(listen = %shared.listen, client = %from, error = %e, "relay cannot open an upstream socket; datagram dropped");
                    shared.ways[FORWARD].failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let now_ms = shared.now_ms();
        let mut clients = shared.clients.lock();
        let Some(client) = clients.get_mut(&from) else {
            continue;
        };
        client.active_ms.store(now_ms, Ordering::Relaxed);
        let way = &shared.ways[FORWARD];
        if let Some(at) = way.admit(&mut client.last_forward) {
            if client.to_target.try_send((at, data)).is_err() {
                way.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Opens the upstream socket for a new client and starts its tasks.
async fn new_client(
    shared: &Arc<Shared>,
    listen: &Arc<UdpSocket>,
    client: SocketAddr,
) -> io::Result<Client> {
    let local: IpAddr = match shared.target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let upstream = Arc::new(UdpSocket::bind(SocketAddr::new(local, 0)).await?);
    upstream.connect(shared.target).await?;
    let active_ms = Arc::new(AtomicU64::new(shared.now_ms()));
    let (to_target, forward_rx) = mpsc::channel(QUEUE_LIMIT);
    let (to_client, backward_rx) = mpsc::channel(QUEUE_LIMIT);
    let up = upstream.clone();
    let deliver_forward = tokio::spawn(deliver(
        shared.clone(),
        FORWARD,
        forward_rx,
        move |bytes: Bytes| {
            let up = up.clone();
            async move { up.send(&bytes).await }
        },
    ));
    let back = listen.clone();
    let deliver_backward = tokio::spawn(deliver(
        shared.clone(),
        BACKWARD,
        backward_rx,
        move |bytes: Bytes| {
            let back = back.clone();
            async move { back.send_to(&bytes, client).await }
        },
    ));
    let receive = tokio::spawn(receive_upstream(
        shared.clone(),
        upstream,
        client,
        to_client,
        active_ms.clone(),
    ));
    Ok(Client {
        to_target,
        last_forward: Instant::now(),
        active_ms,
        tasks: vec![deliver_forward, deliver_backward, receive],
    })
}

/// Receives the target's datagrams for one client and queues them back.
async fn receive_upstream(
    shared: Arc<Shared>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    to_client: mpsc::Sender<(Instant, Bytes)>,
    active_ms: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last = Instant::now();
    let way = &shared.ways[BACKWARD];
    loop {
        let n = match upstream.recv(&mut buf).await {
            Ok(n) => n,
            // The target's port was closed when an earlier datagram reached
            // it (the region is down): keep going, it may come back.
            Err(e) if transient(&e) => {
                tracing::debug!(%client, target = %shared.target, error = %e, "relay upstream receive");
                continue;
            }
            Err(e) => {
                tracing::warn!(%client, target = %shared.target, error = %e, "relay upstream receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        active_ms.store(shared.now_ms(), Ordering::Relaxed);
        if let Some(at) = way.admit(&mut last) {
            if to_client
                .try_send((at, Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                way.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends queued datagrams of one direction of one client when they are due.
async fn deliver<F, Fut>(
    shared: Arc<Shared>,
    way: usize,
    mut queue: mpsc::Receiver<(Instant, Bytes)>,
    send: F,
) where
    F: Fn(Bytes) -> Fut,
    Fut: std::future::Future<Output = io::Result<usize>>,
{
    let way = &shared.ways[way];
    while let Some((at, bytes)) = queue.recv().await {
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        if way.conditions.lock().cut {
            way.cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let len = bytes.len() as u64;
        match send(bytes).await {
            Ok(_) => {
                way.passed.fetch_add(1, Ordering::Relaxed);
                way.bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(e) => {
                way.failed.fetch_add(1, Ordering::Relaxed);
                if transient(&e) {
                    tracing::debug!(target = %shared.target, error = %e, "relay send");
                } else {
                    tracing::warn!(target = %shared.target, error = %e, "relay send failed");
                }
            }
        }
    }
}

/// Forgets clients silent both ways for [`CLIENT_IDLE`].
async fn forget_idle_clients(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(CLIENT_IDLE / 10);
    loop {
        tick.tick().await;
        let now = shared.now_ms();
        let idle = CLIENT_IDLE.as_millis() as u64;
        shared.clients.lock().retain(|addr, c| {
            let keep = now.saturating_sub(c.active_ms.load(Ordering::Relaxed)) < idle;
            if !keep {
                tracing::info!(listen = %shared.listen, client = %addr, "relay: idle client forgotten");
            }
            keep
        });
    }
}
