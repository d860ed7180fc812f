//! Hostile and badly behaved clients and peers, against real `braid-server`
//! processes: a client cannot exceed its limits (bulk length, array length,
//! query buffer, MULTI queue, pipeline depth, unread replies), and a slow
//! or stuck client or peer neither stalls the others nor makes the server's
//! memory grow without bound.
//!
//! Malformed and oversized input goes over raw TCP; well-behaved bystanders
//! use the `redis` crate. Memory is the server's `VmRSS` / `VmHWM` (peak)
//! from `/proc/<pid>/status`, compared against generous bounds derived from
//! the configured limits, never against a duration. Every wait is for a
//! condition, with a generous deadline.

mod common;

use common::redis::RedisServer;
use common::server::{free_udp_port, gen_certs, wait_until, Braid};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;
/// Deadline for any awaited condition.
const WAIT: Duration = Duration::from_secs(60);

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * KB)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn pid(b: &Braid) -> u32 {
    b.child.as_ref().expect("running").id()
}

/// A raw client connection with generous timeouts.
fn raw(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    c.set_write_timeout(Some(WAIT)).expect("timeout");
    c
}

/// Sends `input` on a fresh connection, then reads until the server closes
/// it; returns what it replied. Panics if it does not close within `WAIT`.
fn send_expect_close(port: u16, input: &[u8]) -> Vec<u8> {
    let mut c = raw(port);
    // The server may close while a large input is still being written.
    let _ = c.write_all(input);
    read_to_close(&mut c)
}

/// Reads until end of stream (or a reset, which also means closed).
fn read_to_close(c: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the server did not close the connection; it sent {} bytes: {:?}...",
                    out.len(),
                    String::from_utf8_lossy(&out[..out.len().min(200)])
                )
            }
            Err(_) => return out,
        }
    }
}

/// Reads exactly one RESP reply line (`+`, `-`, `:`) or bulk string.
fn read_reply(c: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        c.read_exact(&mut b).expect("reply byte");
        line.push(b[0]);
    }
    if line.first() == Some(&b'$') {
        let len: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("bulk length");
        if let Ok(len) = usize::try_from(len) {
            let mut body = vec![0u8; len + 2];
            c.read_exact(&mut body).expect("bulk body");
            body.truncate(len);
            return body;
        }
    }
    line
}

/// A multibulk request.
fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A bystander checks that the server still answers it, on its existing
/// connection and on a new one.
fn assert_serves(server: &Braid, bystander: &mut redis::Connection, round: &str) {
    let key = format!("bystander:{round}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(round)
        .query(bystander)
        .expect("bystander SET");
    let got: String = redis::cmd("GET").arg(&key).query(bystander).expect("GET");
    assert_eq!(got, round);
    let pong: String = redis::cmd("PING")
        .query(&mut server.conn())
        .expect("new client PING");
    assert_eq!(pong, "PONG");
}

fn bystander(server: &Braid) -> redis::Connection {
    let c = server.conn();
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    c
}

/// Low limits so that tests stay small: 1 MiB arguments, 2 MiB query
/// buffer, 1024 arguments.
const LIMITS: [&str; 6] = [
    "--proto-max-bulk-len",
    "1mb",
    "--client-query-buffer-limit",
    "2mb",
    "--proto-max-multibulk-len",
    "1024",
];

#[test]
fn limits_oversized_bulk_length_is_a_protocol_error() {
    let server = Braid::start(&LIMITS);
    let mut other = bystander(&server);
    // Exactly the limit is fine (a real 1 MiB value).
    let value = vec![b'v'; MB as usize];
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut other)
        .expect("SET of exactly proto-max-bulk-len");
    // One byte more: Redis' reply, then the connection closes (only the
    // header is sent: the server answers before any of the data).
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n";
    let reply = send_expect_close(server.port, input);
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    // Replies to the requests before the bad one are still sent.
    let mut pipelined = request(&[b"PING"]);
    pipelined.extend_from_slice(b"*1\r\n$99999999999999999999\r\n");
    let reply = send_expect_close(server.port, &pipelined);
    assert_eq!(
        reply,
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_serves(&server, &mut other, "bulk");

    // Real Redis words it the same way.
    if let Some(redis) = RedisServer::start() {
        assert_eq!(
            redis.command("CONFIG SET proto-max-bulk-len 1mb"),
            b"+OK\r\n"
        );
        let (got, closed) = redis.send_raw(input, Duration::from_secs(5));
        assert_eq!(
            (got.as_slice(), closed),
            (&b"-ERR Protocol error: invalid bulk length\r\n"[..], true)
        );
    }
}

#[test]
fn limits_oversized_array_length_is_a_protocol_error() {
    let server = Braid::start(&LIMITS);
    let mut other = bystander(&server);
    // 1024 arguments are accepted ...
    let mut args: Vec<Vec<u8>> = vec![b"DEL".to_vec()];
    args.extend((0..1023).map(|i| format!("k{i}").into_bytes()));
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let mut c = raw(server.port);
    c.write_all(&request(&refs)).expect("write");
    assert_eq!(read_reply(&mut c), b":0\r\n");
    // ... 1025 are not, before any argument arrives, nor is a count no
    // integer holds.
    for header in [
        &b"*1025\r\n"[..],
        b"*2147483648\r\n",
        b"*99999999999999999999\r\n",
    ] {
        let reply = send_expect_close(server.port, header);
        assert_eq!(
            reply,
            b"-ERR Protocol error: invalid multibulk length\r\n",
            "{:?}",
            String::from_utf8_lossy(header)
        );
    }
    assert_serves(&server, &mut other, "array");
    if let Some(redis) = RedisServer::start() {
        let (got, closed) = redis.send_raw(b"*2147483648\r\n", Duration::from_secs(5));
        assert_eq!(
            (got.as_slice(), closed),
            (
                &b"-ERR Protocol error: invalid multibulk length\r\n"[..],
                true
            )
        );
    }
}

#[test]
fn limits_query_buffer_overflow_disconnects() {
    let server = Braid::start(&LIMITS);
    let mut other = bystander(&server);
    let before = proc_status(pid(&server), "VmHWM");

    // An inline command that never ends: Redis' 64 KiB inline limit.
    let reply = send_expect_close(server.port, &vec![b'x'; 64 * 1024 + 1]);
    assert_eq!(reply, b"-ERR Protocol error: too big inline request\r\n");
    // A header line that never ends.
    let mut header = b"*1\r\n$".to_vec();
    header.extend(vec![b'1'; 64 * 1024 + 1]);
    let reply = send_expect_close(server.port, &header);
    assert_eq!(reply, b"-ERR Protocol error: too big bulk count string\r\n");

    // A request whose arguments are each allowed but together exceed the
    // 2 MiB query buffer, written as fast as the server takes it (a writer
    // that never stops): closed without a reply, like Redis, after at
    // most the limit was buffered.
    let mut c = raw(server.port);
    c.write_all(b"*1000\r\n").expect("write");
    let writer = {
        let mut c = c.try_clone().expect("clone");
        std::thread::spawn(move || {
            let mut arg = b"$1000000\r\n".to_vec();
            arg.extend(vec![b'a'; 1_000_000]);
            arg.extend_from_slice(b"\r\n");
            // Up to 1 GB offered: far more than the limit.
            for _ in 0..1000 {
                if c.write_all(&arg).is_err() {
                    return true;
                }
            }
            false
        })
    };
    assert_eq!(read_to_close(&mut c), b"");
    assert!(writer.join().expect("writer"), "the server kept reading");

    // Queued MULTI commands count too (as in Redis 7): three 512 KiB SETs
    // fit in 2 MiB, the fourth does not, and the client is closed without
    // a reply before it is queued.
    let mut c = raw(server.port);
    c.write_all(&request(&[b"MULTI"])).expect("write");
    assert_eq!(read_reply(&mut c), b"+OK\r\n");
    let value = vec![b'q'; 512 * KB as usize];
    for _ in 0..3 {
        c.write_all(&request(&[b"SET", b"queued", &value]))
            .expect("write");
        assert_eq!(read_reply(&mut c), b"+QUEUED\r\n");
    }
    c.write_all(&request(&[b"SET", b"queued", &value]))
        .expect("write");
    assert_eq!(read_to_close(&mut c), b"");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("queued")
        .query(&mut other)
        .expect("EXISTS");
    assert_eq!(exists, 0, "the transaction of a closed client never runs");

    assert_serves(&server, &mut other, "query-buffer");
    // What the server took in stayed within the limits: nothing near the
    // gigabyte offered.
    let after = proc_status(pid(&server), "VmHWM");
    assert!(
        after <= before + 64 * MB,
        "peak RSS grew from {before} to {after} bytes"
    );
}

/// A client that pipelines `GET bigkey` and never reads its replies is
/// throttled: the server runs its commands only as fast as it reads, its
/// memory stays within a bound derived from the limits, other clients are
/// served meanwhile, and the slow client eventually gets every reply.
fn slow_reader(flags: &[&str], per_batch: u64) {
    const VALUE: usize = 256 * KB as usize;
    const PIPELINE: usize = 1000;
    let server = Braid::start(flags);
    let mut other = bystander(&server);
    let value: Vec<u8> = (0..VALUE).map(|i| (i % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("bigkey")
        .arg(&value)
        .query(&mut other)
        .expect("SET bigkey");
    let processed = |c: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(c).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("total_commands_processed")
    };
    let start = processed(&mut other);
    let peak_before = proc_status(pid(&server), "VmHWM").max(proc_status(pid(&server), "VmRSS"));

    let mut slow = raw(server.port);
    let mut pipeline = Vec::new();
    for _ in 0..PIPELINE {
        pipeline.extend_from_slice(&request(&[b"GET", b"bigkey"]));
    }
    slow.write_all(&pipeline).expect("write the pipeline");

    // The server has run at least one full batch of the slow client's
    // commands (the bystander's own INFO calls are counted out) ...
    let mut polls = 1;
    wait_until(
        WAIT,
        || "the slow client's commands never ran".into(),
        || {
            polls += 1;
            processed(&mut other) >= start + polls + 3
        },
    );
    // ... and other clients are served while it does not read.
    for i in 0..100 {
        assert_serves(&server, &mut other, &format!("slow-{i}"));
    }
    let peak = proc_status(pid(&server), "VmHWM");
    let bound = 16 * per_batch + 32 * MB;
    eprintln!(
        "slow reader {flags:?}: peak RSS {peak_before} -> {peak} (+{}), bound +{bound}",
        peak.saturating_sub(peak_before)
    );
    assert!(
        peak <= peak_before + bound,
        "peak RSS grew by {} bytes while a client did not read (bound {bound}; the \
         pipeline's replies total {} bytes)",
        peak.saturating_sub(peak_before),
        PIPELINE * VALUE
    );
    // Backpressure, not disconnection: every reply arrives, in order.
    for i in 0..PIPELINE {
        let got = read_reply(&mut slow);
        assert!(got == value, "reply {i} is not the value");
    }
    assert_serves(&server, &mut other, "after");
}

#[test]
fn limits_slow_reader_bounded_by_output_limit() {
    slow_reader(&["--client-output-buffer-limit", "1mb"], MB + 256 * KB);
}

#[test]
fn limits_slow_reader_bounded_by_pipeline_depth() {
    // A large output limit: only the pipeline depth bounds the batch.
    slow_reader(
        &[
            "--client-output-buffer-limit",
            "4gb",
            "--client-pipeline-depth",
            "4",
        ],
        4 * 256 * KB,
    );
}

#[test]
fn limits_deep_pipeline_of_small_commands_completes() {
    // 100 000 pipelined INCRs written before any reply is read: the
    // server parses at most the pipeline depth ahead and every reply
    // arrives, in order.
    const N: usize = 100_000;
    let server = Braid::start(&["--client-pipeline-depth", "64", "--fsync", "everysec"]);
    let mut c = raw(server.port);
    let writer = {
        let mut c = c.try_clone().expect("clone");
        std::thread::spawn(move || {
            let req = request(&[b"INCR", b"counter"]);
            let mut all = Vec::with_capacity(req.len() * N);
            for _ in 0..N {
                all.extend_from_slice(&req);
            }
            c.write_all(&all).expect("write the pipeline");
        })
    };
    let mut reader = std::io::BufReader::new(&mut c);
    let mut line = String::new();
    for i in 1..=N {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("reply");
        assert_eq!(line, format!(":{i}\r\n"));
    }
    writer.join().expect("writer");
}

/// One region of a small cluster with direct links (no relay: the stuck
/// peer is a stopped process).
struct Cluster {
    regions: Vec<Braid>,
    _root: tempfile::TempDir,
}

impl Cluster {
    fn start(names: &[&str]) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        let certs = root.path().join("certs");
        gen_certs(&certs, &names.join(","));
        let udp: Vec<u16> = names.iter().map(|_| free_udp_port()).collect();
        let mut regions = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut args = vec![
                "--region".to_string(),
                name.to_string(),
                "--region-id".into(),
                (i + 1).to_string(),
                "--replication-listen".into(),
                format!("127.0.0.1:{}", udp[i]),
                "--tls-dir".into(),
                certs.display().to_string(),
                "--fsync".into(),
                "everysec".into(),
            ];
            for (j, peer) in names.iter().enumerate() {
                if j != i {
                    args.push("--peer".into());
                    args.push(format!("{peer}={}@127.0.0.1:{}", j + 1, udp[j]));
                }
            }
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).expect("data dir");
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            regions.push(Braid::start_in_logged(
                &dir,
                &refs,
                &root.path().join(format!("{name}.log")),
                "warn",
            ));
        }
        let cluster = Cluster {
            regions,
            _root: root,
        };
        for i in 0..names.len() {
            wait_until(
                WAIT,
                || format!("region {i} never took writes"),
                || cluster.info(i, "replication").contains("writes:enabled"),
            );
        }
        cluster
    }

    fn conn(&self, i: usize) -> redis::Connection {
        bystander(&self.regions[i])
    }

    fn info(&self, i: usize, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn(i))
            .unwrap_or_default()
    }

    fn vv(&self, i: usize) -> BTreeMap<u16, u64> {
        let s: String = redis::cmd("BRAID.VV")
            .query(&mut self.conn(i))
            .expect("BRAID.VV");
        s.split(',')
            .filter_map(|p| p.split_once('='))
            .filter_map(|(r, n)| Some((r.trim().parse().ok()?, n.trim().parse().ok()?)))
            .collect()
    }

    fn digest(&self, i: usize) -> String {
        redis::cmd("BRAID.DIGEST")
            .query(&mut self.conn(i))
            .expect("BRAID.DIGEST")
    }

    fn signal(&self, i: usize, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid(&self.regions[i]).to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{sig} failed");
    }
}

/// A field of region `peer`'s line in `INFO replication`.
fn peer_field(info: &str, peer: &str, field: &str) -> u64 {
    info.lines()
        .find(|l| l.contains(&format!("name={peer},")))
        .and_then(|l| {
            l.split([',', ':'])
                .find_map(|kv| kv.strip_prefix(field)?.strip_prefix('='))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {peer} in {info}"))
}

#[test]
fn limits_stuck_peer_does_not_stall_or_grow_memory() {
    // Incompressible 16 KiB values over 64 keys: the dataset stays at
    // 1 MiB while each phase writes 128 MiB to the op log.
    const VALUE: usize = 16 * KB as usize;
    const PER_PHASE: usize = 8192;
    /// The sender's in-flight window: segments (link.rs `MAX_IN_FLIGHT`)
    /// of at most `replication.max_segment_bytes` (default 4 MiB).
    const WINDOW: u64 = 8 * 4 * MB;
    let cluster = Cluster::start(&["us", "eu", "asia"]);
    let (us, eu, asia) = (0, 1, 2);
    wait_until(
        WAIT,
        || format!("links never came up: {}", cluster.info(us, "replication")),
        || {
            (0..3).all(|i| {
                cluster
                    .info(i, "replication")
                    .lines()
                    .filter(|l| l.starts_with("peer") && l.contains("link=up"))
                    .count()
                    == 2
            })
        },
    );
    cluster.signal(asia, "STOP");
    let sent_at_stop = peer_field(&cluster.info(us, "replication"), "asia", "sent_raw_bytes");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut value = move || -> Vec<u8> {
        (0..VALUE / 8)
            .flat_map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()
            })
            .collect()
    };
    let mut writer = cluster.conn(us);
    let mut written = 0u64;
    let mut phase = |n: usize| {
        for chunk in 0..n / 64 {
            let mut pipe = redis::pipe();
            for k in 0..64 {
                pipe.cmd("SET")
                    .arg(format!("key:{k}"))
                    .arg(value())
                    .ignore();
            }
            let () = pipe
                .query(&mut writer)
                .unwrap_or_else(|e| panic!("writes to us stalled at chunk {chunk}: {e}"));
            written += 64;
        }
        written
    };
    let us_pid = pid(&cluster.regions[us]);
    let peak = || proc_status(us_pid, "VmHWM");
    // The healthy peer keeps up with every write while asia is stuck.
    let caught_up = |n: u64| {
        wait_until(
            WAIT,
            || format!("eu never received us's writes: {:?}", cluster.vv(eu)),
            || cluster.vv(eu).get(&1).copied().unwrap_or(0) >= n,
        )
    };
    // The first two phases bring the op log's memtables (RocksDB's
    // write buffers) to their steady size.
    for _ in 0..2 {
        let n = phase(PER_PHASE);
        caught_up(n);
    }
    let peak_first = peak();
    let n2 = phase(PER_PHASE);
    caught_up(n2);
    let peak_second = peak();
    // Another 128 MiB that asia lacks may not grow memory by anything
    // near it: what is held for asia is the in-flight window (plus QUIC's
    // send window), not the operations. The margin is one RocksDB
    // memtable (64 MiB) plus slack: a flush that lags under load leaves
    // one more memtable resident.
    let phase_bytes = (PER_PHASE * VALUE) as u64;
    assert!(
        peak_second <= peak_first + phase_bytes * 3 / 4,
        "us's peak RSS grew from {peak_first} to {peak_second} bytes while it wrote \
         {phase_bytes} bytes that the stuck peer lacks"
    );
    let info = cluster.info(us, "replication");
    let sent = peer_field(&info, "asia", "sent_raw_bytes") - sent_at_stop;
    eprintln!(
        "stuck peer: peak RSS {peak_first} -> {peak_second}, {sent} bytes shipped to asia \
         while stopped, {phase_bytes} written per phase"
    );
    assert!(
        sent <= WINDOW + 8 * MB,
        "us shipped {sent} bytes to the stopped asia (window {WINDOW}): {info}"
    );
    // Once asia resumes, everything converges.
    cluster.signal(asia, "CONT");
    wait_until(
        WAIT,
        || {
            format!(
                "no convergence: {:?} / {:?} / {:?}",
                cluster.vv(us),
                cluster.vv(eu),
                cluster.vv(asia)
            )
        },
        || {
            let vv = cluster.vv(us);
            vv.get(&1).copied() == Some(n2)
                && (1..3).all(|i| cluster.vv(i) == vv)
                && (1..3).all(|i| cluster.digest(i) == cluster.digest(us))
        },
    );
}
