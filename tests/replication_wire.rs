//! A hand-made peer speaking the replication protocol to a real
//! `braid-server` over QUIC with mutual TLS: duplicated and reordered
//! segments, impostors, corruption, a foreign protocol version. The peer is
//! built from the library's own pieces (TLS identity, message framing,
//! segment codec, CRDT replica); the server's state is read with a real
//! Redis client.

mod common;

use braid::crdt::{Intent, Operation, RegionId, Replica, TtlChange, VersionVector};
use braid::replication::message::{
    read_message, write_message, Greeting, Message, PROTOCOL_VERSION,
};
use braid::replication::segment::{encode_segment, Compression};
use braid::replication::tls::{RegionTls, TlsFiles};
use bytes::Bytes;
use common::server::{free_udp_port, Braid};
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::time::timeout;

/// Bound on every single wait (handshake, ack, query, link drop).
const WAIT: Duration = Duration::from_secs(10);
/// Largest frame the hand-made peer reads.
const MAX_FRAME: u64 = 80 << 20;

/// The server's region.
const US: (&str, u16) = ("us", 1);
/// The region the hand-made peer normally is.
const EU: (&str, u16) = ("eu", 2);
/// A region the server has no configuration for.
const ASIA: (&str, u16) = ("asia", 3);

// ------------------------------------------------------------------ server

/// A real `braid-server` as region "us" (id 1), listing "eu" (id 2) as a
/// peer at a UDP port nobody listens on (its outbound dials just fail), plus
/// the cluster's certificates for the hand-made peer.
struct Server {
    // Killed when dropped.
    braid: Braid,
    repl: SocketAddr,
    certs: tempfile::TempDir,
    redis: MultiplexedConnection,
    /// Where the server dials eu (nobody listens unless a test does).
    eu_udp: u16,
}

impl Server {
    async fn start() -> Server {
        let certs = tempfile::tempdir().expect("temp dir");
        let names: Vec<String> = [US.0, EU.0, ASIA.0].map(String::from).to_vec();
        braid::replication::certs::generate(&names, certs.path(), false).expect("gen certs");
        let udp = free_udp_port();
        let eu_udp = free_udp_port();
        let args = [
            "--region".to_string(),
            US.0.into(),
            "--region-id".into(),
            US.1.to_string(),
            "--replication-listen".into(),
            format!("127.0.0.1:{udp}"),
            "--tls-dir".into(),
            certs.path().display().to_string(),
            "--peer".into(),
            format!("{}={}@127.0.0.1:{eu_udp}", EU.0, EU.1),
            "--fsync".into(),
            "everysec".into(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // Start-up waits synchronously for the RESP port.
        let braid = tokio::task::block_in_place(|| Braid::start(&refs));
        let redis = Self::redis(&braid).await;
        let mut server = Server {
            braid,
            repl: SocketAddr::from(([127, 0, 0, 1], udp)),
            certs,
            redis,
            eu_udp,
        };
        server.await_replication().await;
        server
    }

    /// SIGKILL, then a restart on the same data directory and addresses.
    async fn kill_and_restart(&mut self) {
        tokio::task::block_in_place(|| {
            self.braid.kill9();
            self.braid.restart();
        });
        self.redis = Self::redis(&self.braid).await;
        self.await_replication().await;
    }

    async fn redis(braid: &Braid) -> MultiplexedConnection {
        let client = redis::Client::open(braid.url()).expect("redis url");
        timeout(WAIT, client.get_multiplexed_async_connection())
            .await
            .expect("redis connect hung")
            .expect("redis connects")
    }

    /// The QUIC endpoint is bound just after the RESP port: waits for it.
    async fn await_replication(&mut self) {
        let want = format!("replication_listen:{}", self.repl);
        let deadline = Instant::now() + WAIT;
        loop {
            let info = self.info().await;
            if info.contains(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replication never listened: {info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        timeout(WAIT, cmd.query_async(&mut self.redis))
            .await
            .expect("redis query hung")
            .expect("redis query")
    }

    async fn get(&mut self, key: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    /// `BRAID.VV` parsed: region id → highest applied sequence.
    async fn vv(&mut self) -> BTreeMap<u16, u64> {
        let text: String = self.query(&redis::cmd("BRAID.VV")).await;
        text.split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (r, s) = p.split_once('=').expect("id=seq");
                (r.parse().expect("id"), s.parse().expect("seq"))
            })
            .collect()
    }

    async fn digest(&mut self) -> String {
        self.query(&redis::cmd("BRAID.DIGEST")).await
    }

    async fn info(&mut self) -> String {
        self.query(redis::cmd("INFO").arg("replication")).await
    }

    async fn ping(&mut self) -> String {
        self.query(&redis::cmd("PING")).await
    }

    /// What a client can see of `keys`, plus the version vector and digest.
    async fn observe(&mut self, keys: &[&str]) -> Observed {
        let mut values = Vec::new();
        for k in keys {
            values.push(self.get(k).await);
        }
        let info = self.info().await;
        let remote_ops_applied = info
            .lines()
            .find_map(|l| l.strip_prefix("remote_ops_applied:"))
            .expect("remote_ops_applied in INFO")
            .parse()
            .expect("a count");
        Observed {
            values,
            vv: self.vv().await,
            digest: self.digest().await,
            remote_ops_applied,
        }
    }

    /// The hand-made peer, with `cert`'s certificate, connected to the
    /// server (server name "us") on a bi stream, before any handshake.
    async fn dial(&self, cert: &str) -> Peer {
        Peer::connect(self.certs.path(), cert, self.repl, US.0).await
    }

    /// A peer that presents eu's certificate, says it is eu and is welcomed.
    async fn dial_eu(&self) -> Peer {
        let mut peer = self.dial(EU.0).await;
        match peer.hello(greeting(EU)).await {
            Some(Message::Welcome(g)) => {
                assert_eq!(g.version, PROTOCOL_VERSION);
                assert_eq!((g.name.as_str(), g.region), (US.0, RegionId(US.1)));
            }
            other => panic!("eu was not welcomed: {other:?}"),
        }
        peer
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Observed {
    values: Vec<Option<String>>,
    vv: BTreeMap<u16, u64>,
    digest: String,
    /// `INFO replication`'s count of remote operations applied.
    remote_ops_applied: u64,
}

// -------------------------------------------------------------------- peer

/// One link of the hand-made peer: a QUIC connection and its bi stream.
struct Peer {
    // Kept so the endpoint outlives the connection.
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl Peer {
    async fn connect(certs: &Path, cert: &str, addr: SocketAddr, server_name: &str) -> Peer {
        let tls = RegionTls::load(&TlsFiles::in_dir(certs, cert)).expect("load peer TLS");
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind client");
        endpoint.set_default_client_config(tls.client_config().expect("client config"));
        let conn = timeout(
            WAIT,
            endpoint.connect(addr, server_name).expect("connect starts"),
        )
        .await
        .expect("QUIC handshake hung")
        .expect("QUIC handshake");
        let (send, recv) = timeout(WAIT, conn.open_bi())
            .await
            .expect("open_bi hung")
            .expect("open_bi");
        Peer {
            _endpoint: endpoint,
            conn,
            send,
            recv,
        }
    }

    async fn write(&mut self, m: &Message) {
        timeout(WAIT, write_message(&mut self.send, m))
            .await
            .expect("write hung")
            .expect("write");
    }

    /// The next message; `None` when the stream ended or the connection
    /// failed (the server dropped the link).
    async fn read(&mut self) -> Option<Message> {
        match timeout(WAIT, read_message(&mut self.recv, MAX_FRAME))
            .await
            .expect("no message and no close from the server")
        {
            Ok(m) => m,
            Err(e) => {
                eprintln!("link ended: {e}");
                None
            }
        }
    }

    /// Sends a hello and returns the server's answer (`None`: it closed).
    async fn hello(&mut self, g: Greeting) -> Option<Message> {
        self.write(&Message::Hello(g)).await;
        self.read().await
    }

    async fn send_segment(&mut self, id: u64, bytes: &[u8]) {
        self.write(&Message::Segment {
            id,
            bytes: Bytes::copy_from_slice(bytes),
        })
        .await;
    }

    /// Waits for the ack of segment `id` (skipping acks of earlier ones and
    /// unsolicited ones); returns the durable vector it carries.
    async fn await_ack(&mut self, id: u64) -> VersionVector {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no ack for segment {id}");
            match self.read().await {
                Some(Message::Ack { id: got, durable }) if got == id => return durable,
                Some(Message::Ack { id: got, .. }) if got < id => continue,
                other => panic!("expected the ack of segment {id}, got {other:?}"),
            }
        }
    }

    /// Sends segment `id` and waits for its ack.
    async fn ship(&mut self, id: u64, bytes: &[u8]) -> VersionVector {
        self.send_segment(id, bytes).await;
        self.await_ack(id).await
    }

    /// Reads until the server ends the link, which must happen within
    /// [`WAIT`]; fails on anything but acks of segments before `bad`, and
    /// on any ack whose durable vector passes `durable_ok`.
    async fn expect_dropped(&mut self, bad: u64, durable_ok: impl Fn(&VersionVector) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "the server kept the link up");
            match self.read().await {
                None => return,
                Some(Message::Ack { id, durable }) => {
                    assert!(id < bad, "segment {bad} was acknowledged (ack {id})");
                    assert!(durable_ok(&durable), "an ack reports {durable}");
                }
                Some(other) => panic!("expected the link to drop, got {other:?}"),
            }
        }
    }

    fn close(self) {
        self.conn.close(0u32.into(), b"test done");
    }
}

/// What the hand-made peer says about itself as `region`.
fn greeting((name, id): (&str, u16)) -> Greeting {
    Greeting {
        version: PROTOCOL_VERSION,
        region: RegionId(id),
        name: name.to_string(),
        advertise: String::new(),
        boot: 1,
        durable: VersionVector::new(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Operations of `replica`: `INCRBY key by` for each of `amounts`.
fn incrs(replica: &mut Replica, key: &str, amounts: &[i64]) -> Vec<Operation> {
    amounts
        .iter()
        .map(|&by| {
            replica
                .write(key.to_string(), Intent::IncrBy(by), now_ms())
                .expect("incr prepares")
                .expect("incr writes")
        })
        .collect()
}

/// An operation of `replica`: `SET key value`.
fn set(replica: &mut Replica, key: &str, value: &str) -> Operation {
    replica
        .write(
            key.to_string(),
            Intent::Set {
                value: Bytes::from(value.to_string()),
                ttl: TtlChange::Persist,
            },
            now_ms(),
        )
        .expect("set prepares")
        .expect("set writes")
}

fn segment(ops: &[Operation]) -> Vec<u8> {
    encode_segment(ops, Compression::Raw).0
}

// ------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_segment_changes_nothing() {
    let mut server = Server::start().await;
    let mut eu = Replica::new(RegionId(EU.1));
    // Distinct amounts: any double application shows in the sum.
    let first = incrs(&mut eu, "hits", &[1, 10, 100]);
    let bytes = segment(&first);

    let mut peer = server.dial_eu().await;
    let durable = peer.ship(1, &bytes).await;
    assert_eq!(durable.get(RegionId(EU.1)), 3, "ack lacks the segment");
    let before = server.observe(&["hits"]).await;
    assert_eq!(before.values, vec![Some("111".to_string())]);
    assert_eq!(before.vv.get(&EU.1), Some(&3));
    assert_eq!(before.remote_ops_applied, 3);

    // The very same bytes again, as the next segment of the same link.
    let again = peer.ship(2, &bytes).await;
    assert_eq!(again, durable, "the duplicate moved the durable vector");
    assert_eq!(server.observe(&["hits"]).await, before);

    // And again on a new connection (a sender that reconnected and resent
    // what it had not seen acknowledged).
    peer.close();
    let mut peer = server.dial_eu().await;
    let again = peer.ship(1, &bytes).await;
    assert_eq!(
        again, durable,
        "the resent segment moved the durable vector"
    );
    assert_eq!(server.observe(&["hits"]).await, before);

    // A segment overlapping what was applied: only the new operation counts.
    let mut all = first.clone();
    all.extend(incrs(&mut eu, "hits", &[1000]));
    let durable = peer.ship(2, &segment(&all)).await;
    assert_eq!(durable.get(RegionId(EU.1)), 4);
    let after = server.observe(&["hits"]).await;
    assert_eq!(after.values, vec![Some("1111".to_string())]);
    assert_eq!(after.vv.get(&EU.1), Some(&4));
    assert_ne!(after.digest, before.digest);
    assert_eq!(after.remote_ops_applied, 4, "an operation applied twice");
    peer.close();

    // Acknowledged means durable: a crash right after loses nothing, and
    // the whole segment resent to the restarted server changes nothing.
    server.kill_and_restart().await;
    let restarted = server.observe(&["hits"]).await;
    assert_eq!(
        (&restarted.values, &restarted.vv, &restarted.digest),
        (&after.values, &after.vv, &after.digest),
        "the restart changed the state"
    );
    let mut peer = server.dial_eu().await;
    let again = peer.ship(1, &segment(&all)).await;
    assert_eq!(again.get(RegionId(EU.1)), 4, "{again}");
    assert_eq!(server.observe(&["hits"]).await, restarted);
    peer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_out_of_causal_order_wait_for_their_dependencies() {
    let mut server = Server::start().await;
    let mut eu = Replica::new(RegionId(EU.1));
    let eu_ops = incrs(&mut eu, "hits", &[1, 10]);
    // asia saw eu's first operation, then wrote: it depends on eu:1.
    let mut asia = Replica::new(RegionId(ASIA.1));
    asia.receive(&eu_ops[0], now_ms())
        .expect("asia applies eu:1");
    let asia_op = set(&mut asia, "from-asia", "x");
    assert_eq!(asia_op.deps.get(RegionId(EU.1)), 1);

    let mut peer = server.dial_eu().await;
    let empty = server.observe(&["hits", "from-asia"]).await;

    // eu:2 before eu:1: held back, not applied, not acknowledged as held.
    let durable = peer.ship(1, &segment(&eu_ops[1..])).await;
    assert_eq!(durable.get(RegionId(EU.1)), 0, "ack claims eu:2: {durable}");
    assert_eq!(server.observe(&["hits", "from-asia"]).await, empty);
    assert!(
        server.info().await.contains("causal_buffer_ops:1\r\n"),
        "eu:2 is not waiting in the causal buffer"
    );

    // asia:1 (relayed by eu) depends on eu:1: held back too.
    let durable = peer.ship(2, &segment(std::slice::from_ref(&asia_op))).await;
    assert_eq!(durable.get(RegionId(EU.1)), 0, "{durable}");
    assert_eq!(
        durable.get(RegionId(ASIA.1)),
        0,
        "ack claims asia:1: {durable}"
    );
    assert_eq!(server.observe(&["hits", "from-asia"]).await, empty);

    // eu:1 arrives: everything it held back applies.
    let durable = peer.ship(3, &segment(&eu_ops[..1])).await;
    assert_eq!(durable.get(RegionId(EU.1)), 2, "{durable}");
    assert_eq!(durable.get(RegionId(ASIA.1)), 1, "{durable}");
    let after = server.observe(&["hits", "from-asia"]).await;
    assert_eq!(
        after.values,
        vec![Some("11".to_string()), Some("x".to_string())]
    );
    assert_eq!(after.vv.get(&EU.1), Some(&2));
    assert_eq!(after.vv.get(&ASIA.1), Some(&1));
    assert!(server.info().await.contains("causal_buffer_ops:0\r\n"));
    peer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_another_regions_name_is_refused() {
    let mut server = Server::start().await;
    let keys = ["claimed", "hits"];
    let before = server.observe(&keys).await;
    // (certificate presented, region claimed in the hello, operations of).
    let cases = [
        // eu's certificate, says it is asia: the certificate does not name it.
        (EU.0, ASIA, ASIA.1),
        // eu's name and certificate with an id that is not eu's.
        (EU.0, (EU.0, ASIA.1), ASIA.1),
        // asia's own certificate and name, but eu's id.
        (ASIA.0, (ASIA.0, EU.1), EU.1),
        // The server's own name and certificate.
        (US.0, US, US.1),
    ];
    for (cert, claim, origin) in cases {
        let mut impostor = Replica::new(RegionId(origin));
        let ops = vec![set(&mut impostor, "claimed", &format!("by {cert}"))];
        let mut peer = server.dial(cert).await;
        // The hello and a segment at once: the segment must not be read.
        peer.write(&Message::Hello(greeting(claim))).await;
        peer.send_segment(1, &segment(&ops)).await;
        match peer.read().await {
            Some(Message::Refuse { reason }) => {
                eprintln!("{cert} claiming {claim:?} refused: {reason}");
            }
            None => eprintln!("{cert} claiming {claim:?}: closed without a refusal"),
            other => panic!("{cert} claiming {claim:?} got {other:?}"),
        }
        peer.expect_dropped(1, |_| false).await;
        assert_eq!(
            server.observe(&keys).await,
            before,
            "{cert} claiming {claim:?}"
        );
    }

    // The server still takes the real eu, and nothing of the impostors
    // shows even once it has handled a segment after them.
    let mut eu = Replica::new(RegionId(EU.1));
    let mut peer = server.dial_eu().await;
    let durable = peer.ship(1, &segment(&incrs(&mut eu, "hits", &[5]))).await;
    assert_eq!(durable.get(RegionId(EU.1)), 1, "{durable}");
    assert_eq!(durable.get(RegionId(ASIA.1)), 0, "{durable}");
    let after = server.observe(&keys).await;
    assert_eq!(after.values, vec![None, Some("5".to_string())]);
    assert_eq!(after.vv.get(&ASIA.1), None);
    assert_eq!(after.vv.get(&EU.1), Some(&1));
    peer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_segment_is_rejected_and_nothing_applied() {
    let mut server = Server::start().await;
    let mut eu = Replica::new(RegionId(EU.1));
    let first = incrs(&mut eu, "hits", &[1, 10]);
    let second = incrs(&mut eu, "hits", &[100, 1000]);
    let mut peer = server.dial_eu().await;
    peer.ship(1, &segment(&first)).await;
    peer.close();
    let before = server.observe(&["hits"]).await;
    assert_eq!(before.values, vec![Some("11".to_string())]);

    let (good, header) = encode_segment(&second, Compression::Raw);
    let payload = header.header_len();
    assert!(good.len() > payload + 2, "segment without payload");
    // One flipped byte: in the payload (first, middle, last), in the magic,
    // in the range table, in the CRC itself.
    let spots = [
        payload,
        (payload + good.len()) / 2,
        good.len() - 1,
        0,
        payload - 1,
        22,
    ];
    for at in spots {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        let mut peer = server.dial_eu().await;
        peer.send_segment(1, &bad).await;
        peer.expect_dropped(1, |d| d.get(RegionId(EU.1)) == 2).await;
        assert_eq!(server.observe(&["hits"]).await, before, "byte {at} flipped");
        assert_eq!(server.ping().await, "PONG");
    }

    // A corrupted segment after a good one on the same link: the good one
    // is acknowledged, the bad one drops the link.
    let mut bad = good.clone();
    bad[payload] ^= 0x01;
    let mut peer = server.dial_eu().await;
    peer.ship(1, &segment(&first)).await;
    peer.send_segment(2, &bad).await;
    peer.expect_dropped(2, |d| d.get(RegionId(EU.1)) == 2).await;
    assert_eq!(server.observe(&["hits"]).await, before);

    // The intact segment on a fresh link is taken.
    let mut peer = server.dial_eu().await;
    let durable = peer.ship(1, &good).await;
    assert_eq!(durable.get(RegionId(EU.1)), 4, "{durable}");
    let after = server.observe(&["hits"]).await;
    assert_eq!(after.values, vec![Some("1111".to_string())]);
    assert_eq!(after.vv.get(&EU.1), Some(&4));
    assert_eq!(server.ping().await, "PONG");
    peer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_protocol_version_is_refused() {
    let mut server = Server::start().await;
    let mut eu = Replica::new(RegionId(EU.1));
    let ops = incrs(&mut eu, "hits", &[7]);
    for version in [99, 0, PROTOCOL_VERSION + 1] {
        let mut peer = server.dial(EU.0).await;
        let hello = Greeting {
            version,
            ..greeting(EU)
        };
        peer.write(&Message::Hello(hello)).await;
        peer.send_segment(1, &segment(&ops)).await;
        match peer.read().await {
            Some(Message::Refuse { reason }) => {
                assert!(reason.contains(&version.to_string()), "{reason}");
            }
            other => panic!("version {version} got {other:?}"),
        }
        peer.expect_dropped(1, |_| false).await;
        assert_eq!(server.get("hits").await, None, "version {version}");
        assert_eq!(server.vv().await.get(&EU.1), None, "version {version}");
    }
    // The right version is still welcomed.
    let mut peer = server.dial_eu().await;
    peer.ship(1, &segment(&ops)).await;
    assert_eq!(server.get("hits").await.as_deref(), Some("7"));
    peer.close();
}

/// The value of `field=` in the INFO line starting with `prefix`.
fn info_field(info: &str, prefix: &str, field: &str) -> Option<String> {
    let line = info.lines().find(|l| l.starts_with(prefix))?;
    let body = line.split_once(':')?.1;
    body.split(',')
        .find_map(|p| p.strip_prefix(&format!("{field}=")))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_peer_is_welcomed_with_version_1() {
    // A region not yet upgraded speaks protocol version 1 (no heartbeats):
    // it gets the welcome it expects and replicates as before.
    let mut server = Server::start().await;
    let mut eu = Replica::new(RegionId(EU.1));
    let ops = incrs(&mut eu, "hits", &[3]);
    let mut peer = server.dial(EU.0).await;
    let hello = Greeting {
        version: 1,
        ..greeting(EU)
    };
    match peer.hello(hello).await {
        Some(Message::Welcome(g)) => assert_eq!(g.version, 1),
        other => panic!("a version 1 peer was not welcomed: {other:?}"),
    }
    peer.ship(1, &segment(&ops)).await;
    assert_eq!(server.get("hits").await.as_deref(), Some("3"));
    peer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_measure_the_consistency_lag() {
    let mut server = Server::start().await;
    let mut eu = Replica::new(RegionId(EU.1));
    let ops = incrs(&mut eu, "hits", &[1, 2]);
    let mut peer = server.dial_eu().await;
    peer.ship(1, &segment(&ops[..1])).await;
    // eu had applied its second operation when it sent this heartbeat:
    // the lag is known once the server holds that operation too.
    let sent = now_ms();
    peer.write(&Message::Heartbeat {
        origin: RegionId(EU.1),
        seq: 2,
        unix_ms: sent,
    })
    .await;
    // A copy relayed by another region and a heartbeat about the server
    // itself change nothing.
    peer.write(&Message::Heartbeat {
        origin: RegionId(EU.1),
        seq: 2,
        unix_ms: sent,
    })
    .await;
    peer.write(&Message::Heartbeat {
        origin: RegionId(US.1),
        seq: 1,
        unix_ms: sent,
    })
    .await;
    let deadline = Instant::now() + WAIT;
    let info = loop {
        let info = server.info().await;
        if info_field(&info, "peer0:", "heartbeats_recv").as_deref() == Some("3") {
            break info;
        }
        assert!(Instant::now() < deadline, "heartbeats not taken: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        info_field(&info, "consistency0:", "heartbeats").as_deref(),
        Some("1"),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "consistency0:", "lag_last_ms").as_deref(),
        Some("-"),
        "not covered yet: {info}"
    );
    assert!(!info.contains("consistency1:"), "{info}");
    peer.ship(2, &segment(&ops[1..])).await;
    let info = server.info().await;
    let lag: u64 = info_field(&info, "consistency0:", "lag_last_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lag recorded: {info}"));
    assert!(lag <= now_ms() - sent, "{info}");
    assert_eq!(
        info_field(&info, "consistency0:", "origin").as_deref(),
        Some("eu")
    );
    peer.close();
}

/// Accepts the server's next connection to `endpoint` and its bi stream.
async fn accept_link(
    endpoint: &quinn::Endpoint,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let incoming = timeout(Duration::from_secs(60), endpoint.accept())
        .await
        .expect("the server never dialed")
        .expect("endpoint open");
    let conn = timeout(WAIT, incoming)
        .await
        .expect("QUIC handshake hung")
        .expect("QUIC handshake");
    let (send, recv) = timeout(WAIT, conn.accept_bi())
        .await
        .expect("no stream opened")
        .expect("accept_bi");
    (conn, send, recv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_refused_for_its_version_falls_back_to_version_1() {
    // eu plays a region of protocol version 1: it refuses version 2 as
    // such a region does; the server then dials again offering version 1,
    // and sends no heartbeat on that link.
    let mut server = Server::start().await;
    let tls = RegionTls::load(&TlsFiles::in_dir(server.certs.path(), EU.0)).expect("eu TLS");
    let endpoint = quinn::Endpoint::server(
        tls.server_config().expect("server config"),
        SocketAddr::from(([127, 0, 0, 1], server.eu_udp)),
    )
    .expect("bind eu's address");
    let (_first, mut send, mut recv) = accept_link(&endpoint).await;
    match timeout(WAIT, read_message(&mut recv, MAX_FRAME)).await {
        Ok(Ok(Some(Message::Hello(g)))) => assert_eq!(g.version, PROTOCOL_VERSION),
        other => panic!("expected a hello, got {other:?}"),
    }
    let refusal = Message::Refuse {
        reason: format!("protocol version {PROTOCOL_VERSION} unsupported (this region speaks 1)"),
    };
    write_message(&mut send, &refusal).await.expect("refuse");
    let (_second, mut send, mut recv) = accept_link(&endpoint).await;
    match timeout(WAIT, read_message(&mut recv, MAX_FRAME)).await {
        Ok(Ok(Some(Message::Hello(g)))) => assert_eq!(g.version, 1),
        other => panic!("expected a version 1 hello, got {other:?}"),
    }
    let welcome = Greeting {
        version: 1,
        ..greeting(EU)
    };
    write_message(&mut send, &Message::Welcome(welcome))
        .await
        .expect("welcome");
    let deadline = Instant::now() + WAIT;
    loop {
        let info = server.info().await;
        if info_field(&info, "peer0:", "link").as_deref() == Some("up") {
            assert_eq!(
                info_field(&info, "peer0:", "protocol").as_deref(),
                Some("1"),
                "{info}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the link never came up: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Heartbeats go every second on a version 2 link: none may come here.
    let quiet = timeout(
        Duration::from_millis(2500),
        read_message(&mut recv, MAX_FRAME),
    )
    .await;
    assert!(
        !matches!(quiet, Ok(Ok(Some(Message::Heartbeat { .. })))),
        "a heartbeat on a version 1 link: {quiet:?}"
    );
    let info = server.info().await;
    assert_eq!(
        info_field(&info, "peer0:", "heartbeats_sent").as_deref(),
        Some("0"),
        "{info}"
    );
}
