//! The two ends of a link: the sender that dials a peer and ships the log
//! to it, and the receiver that accepts a peer's connection, persists and
//! applies its segments and acknowledges them.

use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::message::{
    read_message, write_message, Greeting, Message, HEARTBEAT_VERSION, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};
use super::segment::{
    decode_segment, encode_segment, encode_segment_adaptive, Compression, CompressionPolicy,
    SegmentLimits,
};
use super::{tls, ReplicaHost, Replication};
use crate::config::PeerConfig;
use crate::crdt::{Operation, RegionId, VersionVector};

/// Largest frame accepted on a link (a segment plus its framing).
const MAX_FRAME: u64 = 80 * 1024 * 1024;
/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Segments in flight before the sender waits for acks. A long link needs
/// many: with a segment every few milliseconds, a 240 ms round trip holds
/// dozens, and waiting for acks there would add a round trip to the lag.
const MAX_IN_FLIGHT: usize = 1024;
/// Bytes in flight before the sender waits for acks: bounds what a slow or
/// stuck peer makes this region hold (QUIC keeps unacknowledged data).
const MAX_IN_FLIGHT_BYTES: usize = 16 << 20;
/// Bytes in flight below which the link keeps up and segments go out at
/// once: waiting there would only add to the lag. Above it the link is busy
/// or slow, and the batch window grows with the backlog.
const BATCH_AFTER_BYTES: usize = 64 << 10;

/// Why a link ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The connection or a stream failed.
    #[error("connection: {0}")]
    Connection(String),
    /// The peer broke the protocol or is not who it claims.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer refused us.
    #[error("refused by peer: {0}")]
    Refused(String),
    /// The local op log or state failed.
    #[error("local: {0}")]
    Local(String),
}

fn conn_err(e: impl std::fmt::Display) -> LinkError {
    LinkError::Connection(e.to_string())
}

/// Keeps a link to `peer` up: connects, ships, and reconnects with backoff.
pub(crate) async fn dial_loop<H: ReplicaHost>(
    repl: Arc<Replication>,
    host: Arc<H>,
    peer: PeerConfig,
) {
    let mut backoff = Duration::from_millis(100);
    // The protocol version offered: the newest, unless the peer refused it
    // (a region not yet upgraded), then the oldest until the link ends.
    let mut offer = PROTOCOL_VERSION;
    loop {
        repl.with_peer(&peer.name, |s| {
            s.outbound = "connecting";
            s.outbound_since = Some(Instant::now());
        });
        let started = Instant::now();
        let result = run_sender(&repl, &host, &peer, offer).await;
        if let Err(LinkError::Refused(reason)) = &result {
            if offer > MIN_PROTOCOL_VERSION && reason.contains("protocol version") {
                tracing::info!(peer = %peer.name, %reason, version = MIN_PROTOCOL_VERSION, "peer speaks an older replication protocol; reconnecting with it (no heartbeats on this link)");
                offer = MIN_PROTOCOL_VERSION;
                continue;
            }
        }
        offer = PROTOCOL_VERSION;
        let error = match result {
            Ok(()) => "connection closed".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(peer = %peer.name, addr = %peer.addr, error = %error, "replication link down; reconnecting");
        repl.with_peer(&peer.name, |s| {
            s.outbound = "down";
            s.outbound_since = Some(Instant::now());
            s.last_error = error;
            s.lag_since = None;
        });
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn greeting<H: ReplicaHost>(repl: &Replication, host: &H, version: u64) -> Greeting {
    Greeting {
        version,
        region: repl.region.0,
        name: repl.region.1.clone(),
        advertise: repl
            .config
            .advertise
            .or(repl.config.listen)
            .map(|a| a.to_string())
            .unwrap_or_default(),
        boot: repl.boot,
        durable: host.durable_vv(),
    }
}

/// Acknowledgement bookkeeping shared by the sender and its ack reader.
#[derive(Default)]
struct InFlight {
    /// (segment id, sent at, wire bytes) not yet acknowledged, oldest first.
    segments: VecDeque<(u64, Instant, usize)>,
    /// Sum of the wire bytes of `segments`.
    bytes: usize,
    srtt: Option<Duration>,
    acked: VersionVector,
}

async fn run_sender<H: ReplicaHost>(
    repl: &Arc<Replication>,
    host: &Arc<H>,
    peer: &PeerConfig,
    offer: u64,
) -> Result<(), LinkError> {
    let connecting = repl
        .endpoint
        .connect_with(repl.client_config.clone(), peer.addr, &peer.name)
        .map_err(|e| LinkError::Connect(e.to_string()))?;
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| LinkError::Connect("timed out".into()))?
        .map_err(|e| LinkError::Connect(e.to_string()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(conn_err)?;
    write_message(
        &mut send,
        &Message::Hello(greeting(repl, host.as_ref(), offer)),
    )
    .await
    .map_err(conn_err)?;
    let welcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_message(&mut recv, MAX_FRAME))
        .await
        .map_err(|_| LinkError::Protocol("no answer to the handshake".into()))?
        .map_err(conn_err)?;
    let welcome = match welcome {
        Some(Message::Welcome(g)) => g,
        Some(Message::Refuse { reason }) => return Err(LinkError::Refused(reason)),
        other => {
            return Err(LinkError::Protocol(format!(
                "expected a welcome, got {other:?}"
            )))
        }
    };
    // The acceptor answers with the version the link uses: at most ours.
    if !(MIN_PROTOCOL_VERSION..=offer).contains(&welcome.version) {
        return Err(LinkError::Protocol(format!(
            "peer answered protocol version {}, this build offered {offer}",
            welcome.version
        )));
    }
    let version = welcome.version;
    if welcome.name != peer.name || welcome.region.0 != peer.id {
        return Err(LinkError::Protocol(format!(
            "expected region {} (id {}), peer says it is {} (id {})",
            peer.name, peer.id, welcome.name, welcome.region.0
        )));
    }
    tracing::info!(peer = %peer.name, addr = %peer.addr, peer_vv = %welcome.durable, "replication link up");
    host.peer_reported(welcome.region, &welcome.durable);
    host.peer_greeted(welcome.region, &welcome.durable);
    repl.with_peer(&peer.name, |s| {
        s.id = peer.id;
        s.outbound = "up";
        s.outbound_since = Some(Instant::now());
        s.version = version;
        s.boot = welcome.boot;
        s.acked = welcome.durable.clone();
    });
    // A peer behind what our log still holds (a joining region, or one
    // down longer than the log kept) gets a snapshot, then the log after it;
    // so does a joining region far behind (see `join_snapshot_ops`).
    let mut sent = welcome.durable.clone();
    let ours = host.durable_vv();
    let behind = ours.iter().any(|(origin, have)| {
        let theirs = welcome.durable.get(origin);
        theirs < have && theirs < host.log_floor(origin)
    });
    let join = repl.config.join_snapshot_ops;
    let joining = welcome.durable.iter().all(|(_, seq)| seq == 0)
        && join > 0
        && ours.iter().map(|(_, have)| have).sum::<u64>() >= join;
    if behind || joining {
        sent = send_snapshot(host.as_ref(), &mut send, &peer.name).await?;
        repl.with_peer(&peer.name, |s| s.snapshots_sent += 1);
    }

    let inflight = Arc::new(parking_lot::Mutex::new(InFlight {
        acked: welcome.durable.clone(),
        ..InFlight::default()
    }));
    let acked_notify = Arc::new(Notify::new());
    let (mut acks, _ack_reader) = {
        let inflight = inflight.clone();
        let notify = acked_notify.clone();
        let repl = repl.clone();
        let name = peer.name.clone();
        let peer_id = welcome.region;
        let host = host.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<LinkError>();
        let task = async move {
            let err = loop {
                match read_message(&mut recv, MAX_FRAME).await {
                    Ok(Some(Message::Ack { id, durable })) => {
                        let now = Instant::now();
                        let mut f = inflight.lock();
                        while let Some(&(sid, at, len)) = f.segments.front() {
                            if sid > id {
                                break;
                            }
                            f.segments.pop_front();
                            f.bytes -= len;
                            if sid == id {
                                let sample = now - at;
                                f.srtt = Some(match f.srtt {
                                    None => sample,
                                    Some(s) => (s * 7 + sample) / 8,
                                });
                            }
                        }
                        f.acked = durable.clone();
                        let oldest = f.segments.front().map(|&(_, at, _)| at);
                        let rtt = f.srtt;
                        drop(f);
                        repl.with_peer(&name, |s| {
                            s.acked = durable.clone();
                            s.rtt = rtt;
                            s.lag_since = oldest;
                        });
                        host.peer_reported(peer_id, &durable);
                        notify.notify_one();
                    }
                    Ok(Some(Message::Refuse { reason })) => break LinkError::Refused(reason),
                    Ok(Some(other)) => {
                        break LinkError::Protocol(format!("unexpected {other:?}"));
                    }
                    Ok(None) => break LinkError::Connection("peer closed the stream".into()),
                    Err(e) => break conn_err(e),
                }
            };
            let _ = tx.send(err);
            notify.notify_one();
        };
        (rx, AbortOnDrop(tokio::spawn(task)))
    };

    let mut changed = host.log_changed();
    let mut policy = CompressionPolicy::new();
    let mut next_id = 1u64;
    let me = repl.region.0;
    let forward = repl.config.forward;
    let relay_after = Duration::from_millis(repl.config.relay_after_ms);
    // What we held `relay_after` ago: without forwarding, others' operations
    // are relayed only once the peer still lacks them after that long.
    let mut relay_marks: VecDeque<(Instant, VersionVector)> = VecDeque::new();
    let max_ops = repl.config.max_segment_ops;
    let max_bytes = repl.config.max_segment_bytes.0 as usize;
    let max_delay = Duration::from_millis(repl.config.max_batch_delay_ms);
    let mut window = Duration::ZERO;
    let beat_every = Duration::from_millis(repl.config.heartbeat_ms);
    let beats = version >= HEARTBEAT_VERSION && !beat_every.is_zero();
    let mut next_beat = tokio::time::Instant::now();
    loop {
        if let Ok(err) = acks.try_recv() {
            return Err(err);
        }
        if beats && tokio::time::Instant::now() >= next_beat {
            send_heartbeats(repl, host.as_ref(), &mut send, &peer.name, welcome.region).await?;
            next_beat = tokio::time::Instant::now() + beat_every;
        }
        let durable = host.durable_vv();
        let now = Instant::now();
        if relay_marks
            .back()
            .is_none_or(|(t, _)| now - *t >= Duration::from_millis(10))
        {
            relay_marks.push_back((now, durable.clone()));
        }
        while relay_marks.len() > 1 && now - relay_marks[1].0 >= relay_after {
            relay_marks.pop_front();
        }
        let relay_limit = relay_marks
            .front()
            .filter(|(t, _)| now - *t >= relay_after)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let acked = inflight.lock().acked.clone();
        sent.merge(&acked);

        let mut ops: Vec<Operation> = Vec::new();
        let mut bytes = 0usize;
        for (origin, have) in durable.iter() {
            // The peer's own operations go back to it only if it lost them.
            let upto = if origin == me || forward || origin == welcome.region {
                have
            } else if acked.get(origin) < relay_limit.get(origin) {
                relay_limit.get(origin)
            } else {
                continue;
            };
            let after = sent.get(origin);
            if upto <= after || ops.len() >= max_ops || bytes >= max_bytes {
                continue;
            }
            let (batch, batch_bytes) = host
                .read_log(
                    origin,
                    after,
                    upto,
                    max_ops - ops.len(),
                    max_bytes.saturating_sub(bytes),
                )
                .map_err(LinkError::Local)?;
            if let Some(last) = batch.last() {
                sent.raise(origin, last.seq);
            }
            bytes += batch_bytes;
            ops.extend(batch);
        }

        if ops.is_empty() {
            // Idle: wait for new operations, an ack (relay decisions use
            // acks), the relay horizon to pass, or the link to fail.
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Ok(()) },
                _ = acked_notify.notified() => {}
                _ = tokio::time::sleep(relay_after.max(Duration::from_millis(50))) => {}
                _ = tokio::time::sleep_until(next_beat), if beats => {}
                _ = conn.closed() => return Err(LinkError::Connection("connection closed".into())),
            }
            continue;
        }

        let (segment, header) = if repl.config.compress {
            encode_segment_adaptive(&ops, &mut policy)
        } else {
            encode_segment(&ops, Compression::Raw)
        };
        let id = next_id;
        next_id += 1;
        let msg = Message::Segment {
            id,
            bytes: Bytes::from(segment),
        };
        let frame = msg.encode();
        {
            let mut f = inflight.lock();
            f.segments.push_back((id, Instant::now(), frame.len()));
            f.bytes += frame.len();
        }
        send.write_all(&frame).await.map_err(conn_err)?;
        repl.with_peer(&peer.name, |s| {
            s.sent_raw += u64::from(header.raw_len);
            s.sent_wire += frame.len() as u64;
            s.segments_sent += 1;
            s.segments_compressed += u64::from(header.flags & 1);
            s.ops_sent += ops.len() as u64;
            if s.lag_since.is_none() {
                s.lag_since = Some(Instant::now());
            }
            s.batch_window = window;
            s.segments.raw_bytes.record(u64::from(header.raw_len));
            s.segments.wire_bytes.record(frame.len() as u64);
            s.segments.ops.record(ops.len() as u64);
            s.segments.window.record_duration(window);
        });

        // Adaptive batching: a link that keeps up sends at once; once more
        // than BATCH_AFTER_BYTES are in flight (a busy or slow link), wait a
        // window that grows with the round-trip time and the backlog, so
        // that more operations share the next segment.
        let (in_flight_bytes, srtt) = {
            let f = inflight.lock();
            (f.bytes, f.srtt.unwrap_or_default())
        };
        let full = ops.len() >= max_ops || bytes >= max_bytes;
        window = if in_flight_bytes <= BATCH_AFTER_BYTES || full {
            Duration::ZERO
        } else {
            let backlog = (in_flight_bytes / BATCH_AFTER_BYTES).min(1024) as u32;
            (srtt / 4 * backlog).min(max_delay)
        };
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let room = {
                let f = inflight.lock();
                f.segments.len() < MAX_IN_FLIGHT && f.bytes < MAX_IN_FLIGHT_BYTES
            };
            if room && tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = acked_notify.notified() => {
                    if inflight.lock().segments.is_empty() { break; }
                }
                _ = tokio::time::sleep_until(deadline), if tokio::time::Instant::now() < deadline => {}
                _ = tokio::time::sleep(Duration::from_secs(30)), if tokio::time::Instant::now() >= deadline => {
                    return Err(LinkError::Connection("no acknowledgement for 30 s".into()));
                }
                _ = conn.closed() => return Err(LinkError::Connection("connection closed".into())),
            }
        }
    }
}

/// Unix time in milliseconds (heartbeats compare wall clocks across regions).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sends this region's heartbeat, and the newest one heard of every other
/// region but the peer, in one write.
async fn send_heartbeats<H: ReplicaHost>(
    repl: &Replication,
    host: &H,
    send: &mut quinn::SendStream,
    peer: &str,
    peer_id: crate::crdt::RegionId,
) -> Result<(), LinkError> {
    let own = Message::Heartbeat {
        origin: repl.region.0,
        seq: host.applied_own(),
        unix_ms: unix_ms(),
    };
    let mut frames = own.encode();
    let mut n = 1;
    for (origin, seq, unix_ms) in repl.heard_except(peer_id) {
        frames.extend(
            Message::Heartbeat {
                origin,
                seq,
                unix_ms,
            }
            .encode(),
        );
        n += 1;
    }
    send.write_all(&frames).await.map_err(conn_err)?;
    repl.with_peer(peer, |s| s.heartbeats_sent += n);
    Ok(())
}

/// Bytes of a snapshot file per message.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Streams a fresh snapshot to a peer; returns what it covers.
async fn send_snapshot<H: ReplicaHost>(
    host: &H,
    send: &mut quinn::SendStream,
    peer: &str,
) -> Result<VersionVector, LinkError> {
    use tokio::io::AsyncReadExt;
    let (path, covers) = host.snapshot_for_peer().await.map_err(LinkError::Local)?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| LinkError::Local(format!("{}: {e}", path.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| LinkError::Local(format!("{}: {e}", path.display())))?
        .len();
    tracing::info!(%peer, bytes = len, covers = %covers, "peer needs operations the log no longer holds; sending a snapshot");
    write_message(
        send,
        &Message::SnapshotBegin {
            len,
            covers: covers.clone(),
        },
    )
    .await
    .map_err(conn_err)?;
    let mut left = len;
    let mut buf = vec![0u8; SNAPSHOT_CHUNK];
    while left > 0 {
        let n = (left as usize).min(SNAPSHOT_CHUNK);
        file.read_exact(&mut buf[..n])
            .await
            .map_err(|e| LinkError::Local(format!("{}: {e}", path.display())))?;
        write_message(
            send,
            &Message::SnapshotChunk {
                bytes: Bytes::copy_from_slice(&buf[..n]),
            },
        )
        .await
        .map_err(conn_err)?;
        left -= n as u64;
    }
    write_message(send, &Message::SnapshotEnd)
        .await
        .map_err(conn_err)?;
    Ok(covers)
}

/// Accepts peers' connections for as long as the endpoint is open.
pub(crate) async fn accept_loop<H: ReplicaHost>(repl: Arc<Replication>, host: Arc<H>) {
    while let Some(incoming) = repl.endpoint.accept().await {
        let repl = repl.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "refused a replication connection");
                    return;
                }
            };
            if let Err(e) = run_receiver(&repl, host, conn, remote).await {
                tracing::warn!(%remote, error = %e, "inbound replication link ended");
            }
        });
    }
}

async fn run_receiver<H: ReplicaHost>(
    repl: &Arc<Replication>,
    host: Arc<H>,
    conn: quinn::Connection,
    remote: SocketAddr,
) -> Result<(), LinkError> {
    let (mut send, mut recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| LinkError::Protocol("no stream opened".into()))?
        .map_err(conn_err)?;
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_message(&mut recv, MAX_FRAME))
        .await
        .map_err(|_| LinkError::Protocol("no handshake".into()))?
        .map_err(conn_err)?;
    let Some(Message::Hello(hello)) = hello else {
        return Err(LinkError::Protocol(format!(
            "expected a hello, got {hello:?}"
        )));
    };
    if let Some(reason) = check_hello(repl, &conn, &hello, remote) {
        let _ = write_message(
            &mut send,
            &Message::Refuse {
                reason: reason.clone(),
            },
        )
        .await;
        let _ = send.finish();
        // Give the refusal a moment to reach the peer before closing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.close(1u32.into(), b"refused");
        return Err(LinkError::Protocol(reason));
    }
    let name = hello.name.clone();
    tracing::info!(peer = %name, %remote, "inbound replication link up");
    host.peer_greeted(hello.region, &hello.durable);
    repl.with_peer(&name, |s| {
        s.id = hello.region.0;
        s.inbound_up = true;
    });
    // The link speaks the dialer's version (an older dialer gets the
    // answer it expects).
    let version = hello.version;
    write_message(
        &mut send,
        &Message::Welcome(greeting(repl, host.as_ref(), version)),
    )
    .await
    .map_err(conn_err)?;
    // A region we do not dial ships to us: dial it back (a region joining).
    // One we do dial has restarted: our link to it may be dead.
    if repl.is_dialing(&name) {
        repl.redial_if_restarted(&name, hello.boot, host.clone());
    } else if let Ok(addr) = hello.advertise.parse::<SocketAddr>() {
        tracing::info!(peer = %name, %addr, "replicating back to a region not in the configuration");
        repl.dial(
            PeerConfig {
                name: name.clone(),
                id: hello.region.0,
                addr,
            },
            host.clone(),
        );
    }
    let result = receive_segments(repl, host.as_ref(), &name, &mut send, recv).await;
    repl.with_peer(&name, |s| {
        s.inbound_up = false;
        if let Err(e) = &result {
            s.last_error = e.to_string();
        }
    });
    result
}

/// Why a peer's hello is refused, if it is.
fn check_hello(
    repl: &Replication,
    conn: &quinn::Connection,
    hello: &Greeting,
    remote: SocketAddr,
) -> Option<String> {
    // A version this build does not know is refused, never guessed at; a
    // newer dialer falls back to one we speak.
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.version) {
        return Some(format!(
            "protocol version {} unsupported (this region speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION})",
            hello.version
        ));
    }
    if let Err(e) = tls::peer_certificate_names(conn, &hello.name) {
        tracing::error!(%remote, claimed = %hello.name, error = %e, "peer's certificate does not name the region it claims; refused");
        return Some(format!("certificate does not name region {}", hello.name));
    }
    let id_ok = repl
        .known_id(&hello.name)
        .is_none_or(|id| id == hello.region.0)
        && repl
            .known_name(hello.region.0)
            .is_none_or(|n| n == hello.name)
        && hello.name != repl.region.1;
    if !id_ok {
        return Some(format!(
            "region {} (id {}) conflicts with the cluster's names and ids",
            hello.name, hello.region.0
        ));
    }
    None
}

async fn receive_segments<H: ReplicaHost>(
    repl: &Replication,
    host: &H,
    name: &str,
    send: &mut quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), LinkError> {
    let limits = SegmentLimits::default();
    let me = repl.region.0;
    // Frames are read by their own task (a read cancelled mid-frame would
    // lose bytes), so that this loop can also send unsolicited acks: a
    // sender that has nothing to ship to us still learns what we hold, and
    // does not relay what we already have.
    let (tx, mut frames) = tokio::sync::mpsc::channel(8);
    let reader = tokio::spawn(async move {
        loop {
            let m = read_message(&mut recv, MAX_FRAME).await;
            let end = !matches!(m, Ok(Some(_)));
            if tx.send(m).await.is_err() || end {
                break;
            }
        }
    });
    let _abort_reader = AbortOnDrop(reader);
    // Received batches are applied at once and acknowledged by `send_acks`
    // once synced, so that the next batch is applied during the sync.
    let (acks, queued_acks) = tokio::sync::mpsc::channel(64);
    let receiving = async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_id = 0;
        loop {
            let msg = tokio::select! {
                m = frames.recv() => m,
                _ = tick.tick() => {
                    let _ = acks.send(AckJob { id: last_id, ticket: AckJob::ANY, always: false }).await;
                    continue;
                }
            };
            let msg = match msg {
                Some(Ok(Some(m))) => m,
                Some(Ok(None)) | None => return Ok(()),
                Some(Err(e)) => return Err(conn_err(e)),
            };
            let (id, bytes) = match msg {
                Message::Segment { id, bytes } => (id, bytes),
                Message::SnapshotBegin { len, covers } => {
                    receive_snapshot(host, name, len, &covers, &mut frames).await?;
                    repl.with_peer(name, |s| s.snapshots_recv += 1);
                    let _ = acks
                        .send(AckJob {
                            id: last_id,
                            ticket: 0,
                            always: true,
                        })
                        .await;
                    continue;
                }
                Message::Heartbeat {
                    origin,
                    seq,
                    unix_ms,
                } => {
                    heard_heartbeat(repl, host, name, origin, seq, unix_ms);
                    continue;
                }
                other => {
                    return Err(LinkError::Protocol(format!(
                        "expected a segment, got {other:?}"
                    )))
                }
            };
            // Segments that queued up while the last batch was applied go
            // through together: one apply, one fsync and one ack for all.
            let mut ops = decode_counted(repl, name, id, &bytes, &limits)?;
            let mut id = id;
            let mut queued = bytes.len();
            while queued < RECEIVE_BATCH_BYTES {
                match frames.try_recv() {
                    Ok(Ok(Some(Message::Segment { id: next, bytes }))) => {
                        ops.extend(decode_counted(repl, name, next, &bytes, &limits)?);
                        queued += bytes.len();
                        id = next;
                    }
                    Ok(Ok(Some(Message::Heartbeat {
                        origin,
                        seq,
                        unix_ms,
                    }))) => heard_heartbeat(repl, host, name, origin, seq, unix_ms),
                    Ok(Ok(Some(other))) => {
                        // Only segments and heartbeats follow segments.
                        return Err(LinkError::Protocol(format!(
                            "expected a segment, got {other:?}"
                        )));
                    }
                    Ok(Ok(None)) => {
                        host.receive(filter_own(host, name, me, ops))
                            .await
                            .map_err(LinkError::Local)?;
                        return Ok(());
                    }
                    Ok(Err(e)) => return Err(conn_err(e)),
                    Err(_) => break,
                }
            }
            let ticket = host
                .receive(filter_own(host, name, me, ops))
                .await
                .map_err(LinkError::Local)?;
            if acks
                .send(AckJob {
                    id,
                    ticket,
                    always: true,
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            last_id = id;
        }
    };
    tokio::try_join!(receiving, send_acks(host, send, queued_acks)).map(|_| ())
}

/// An acknowledgement to send once what it covers is synced.
struct AckJob {
    /// The last segment it acknowledges.
    id: u64,
    /// From `ReplicaHost::receive`: what must be synced first.
    ticket: u64,
    /// Sent even if the durable vector has not changed.
    always: bool,
}

impl AckJob {
    /// Syncs whatever is applied and not yet synced.
    const ANY: u64 = u64::MAX;
}

/// Sends acks in order, each once its batch is synced; jobs that queue up
/// meanwhile share one sync and one ack.
async fn send_acks<H: ReplicaHost>(
    host: &H,
    send: &mut quinn::SendStream,
    mut jobs: tokio::sync::mpsc::Receiver<AckJob>,
) -> Result<(), LinkError> {
    let mut last_reported = VersionVector::new();
    let mut last_id = 0;
    while let Some(mut job) = jobs.recv().await {
        while let Ok(next) = jobs.try_recv() {
            job = AckJob {
                id: job.id.max(next.id),
                ticket: job.ticket.max(next.ticket),
                always: job.always || next.always,
            };
        }
        host.make_durable(job.ticket)
            .await
            .map_err(LinkError::Local)?;
        let durable = host.durable_vv();
        if job.always || job.id > last_id || durable != last_reported {
            write_message(
                send,
                &Message::Ack {
                    id: job.id,
                    durable: durable.clone(),
                },
            )
            .await
            .map_err(conn_err)?;
            last_reported = durable;
            last_id = job.id;
        }
    }
    Ok(())
}

/// Records a heartbeat from the link. A copy of a heartbeat already heard
/// another way, or one about ourselves, changes nothing.
fn heard_heartbeat<H: ReplicaHost>(
    repl: &Replication,
    host: &H,
    name: &str,
    origin: RegionId,
    seq: u64,
    unix_ms: u64,
) {
    if origin != repl.region.0 && repl.heard(origin, seq, unix_ms) {
        host.heartbeat(origin, seq, unix_ms);
    }
    repl.with_peer(name, |s| s.heartbeats_recv += 1);
}

/// Bytes of queued segments a receiver takes into one batch (one fsync).
const RECEIVE_BATCH_BYTES: usize = 16 << 20;

/// Decodes one received segment and counts it in the link's statistics.
fn decode_counted(
    repl: &Replication,
    name: &str,
    id: u64,
    bytes: &[u8],
    limits: &SegmentLimits,
) -> Result<Vec<Operation>, LinkError> {
    let (header, ops) = decode_segment(bytes, limits).map_err(|e| {
        tracing::error!(peer = %name, segment = id, error = %e, "bad segment; dropping the link");
        LinkError::Protocol(format!("segment {id}: {e}"))
    })?;
    repl.with_peer(name, |s| {
        s.recv_wire += bytes.len() as u64;
        s.recv_raw += u64::from(header.raw_len);
        s.segments_recv += 1;
        s.ops_recv += ops.len() as u64;
    });
    Ok(ops)
}

/// Drops this region's own operations coming back from a peer unless the
/// region takes them (it lost them: empty or restored data directory).
fn filter_own<H: ReplicaHost>(
    host: &H,
    name: &str,
    me: RegionId,
    ops: Vec<Operation>,
) -> Vec<Operation> {
    if host.accepts_own_ops() {
        return ops;
    }
    let (own, ops): (Vec<Operation>, Vec<Operation>) =
        ops.into_iter().partition(|op| op.origin == me);
    if let Some(op) = own.iter().max_by_key(|op| op.seq) {
        let mine = host.durable_vv().get(op.origin);
        if op.seq > mine {
            tracing::error!(peer = %name, seq = op.seq, local = mine, "a peer holds operations of this region beyond its own log");
        }
    }
    ops
}

/// Writes an incoming snapshot to a file, then installs it.
async fn receive_snapshot<H: ReplicaHost>(
    host: &H,
    name: &str,
    len: u64,
    covers: &VersionVector,
    frames: &mut tokio::sync::mpsc::Receiver<Result<Option<Message>, super::message::MessageError>>,
) -> Result<(), LinkError> {
    use tokio::io::AsyncWriteExt;
    if !host.can_install(covers) {
        return Err(LinkError::Local(format!(
            "peer {name} sent a snapshot covering {covers}, which lacks operations this region holds; refusing it"
        )));
    }
    tracing::info!(peer = %name, bytes = len, covers = %covers, "receiving a snapshot");
    let path = host.incoming_snapshot_path();
    let local = |e: std::io::Error| LinkError::Local(format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::create(&path).await.map_err(local)?;
    let mut got = 0u64;
    let result = loop {
        match frames.recv().await {
            Some(Ok(Some(Message::SnapshotChunk { bytes }))) => {
                got += bytes.len() as u64;
                if got > len {
                    break Err(LinkError::Protocol(format!(
                        "snapshot longer than the announced {len} bytes"
                    )));
                }
                file.write_all(&bytes).await.map_err(local)?;
            }
            Some(Ok(Some(Message::SnapshotEnd))) if got == len => break Ok(()),
            Some(Ok(Some(other))) => {
                break Err(LinkError::Protocol(format!(
                    "unexpected {other:?} inside a snapshot ({got} of {len} bytes)"
                )))
            }
            Some(Ok(None)) | None => {
                break Err(LinkError::Connection("closed inside a snapshot".into()))
            }
            Some(Err(e)) => break Err(conn_err(e)),
        }
    };
    let result = match result {
        Ok(()) => file.flush().await.map_err(local),
        Err(e) => Err(e),
    };
    drop(file);
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    host.install_snapshot(path).await.map_err(LinkError::Local)
}

/// Aborts a task when dropped (a link's helper task ends with the link).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
