//! Replication benchmark: real `braid-server` processes, three regions (us,
//! eu, asia) in a full mesh over QUIC with mutual TLS on loopback.
//!
//! Run with
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/braid-target RUSTC_WRAPPER=sccache
//! cargo bench --bench replication
//! ```
//!
//! It prints markdown tables and asserts nothing about timings:
//!
//! 1. **Replication lag at a steady write rate.** For each total rate in
//!    `BENCH_RATES`, writers spread the rate evenly over the three regions
//!    (`BENCH_CONNS` paced connections per region, each sending what is due
//!    every millisecond as one pipeline) with a realistic mix of commands
//!    (40% SET, 15% INCR, 15% HSET, 10% each SADD, LPUSH, ZADD over 10k
//!    16-byte keys; 32-byte values). About `BENCH_PROBES` times a second a
//!    probe `SET probe:<region>:<n> <unix_ns>` goes to one region
//!    (round-robin over the three; `n` is never reused across rates); for
//!    every other region a watcher thread polls `GET` (sleeping
//!    `BENCH_POLL_US` between polls) until the probe is visible and records
//!    visible time − the time the probe was sent, so the lag includes the
//!    source's own commit (its reply time is reported too). Reported per
//!    (rate, source → target): p50 / p99 / max, and the rate the writers
//!    achieved.
//! 2. **Wire bytes per operation.** `BENCH_WIRE_OPS` writes per workload on
//!    us only; the us → eu link's counters from `INFO replication`
//!    (`sent_raw_bytes`, `sent_wire_bytes`, `ops_sent`, …) are read before
//!    and after, once eu's `BRAID.VV` shows every write. Done with segment
//!    compression on (the default) and off (`[replication] compress = false`
//!    in a `--config` file), and compared with the replication stream of a
//!    local `redis-server` master with one replica (`master_repl_offset`
//!    growth) for the same commands; skipped with a note if `redis-server`
//!    is not installed.
//!
//! With `BENCH_WAN=geo` (or `us-eu=40,us-asia=90,eu-asia=120`, one-way ms)
//! the regions reach each other through one `braid-relay` process that
//! delays every datagram by the pair's one-way latency (± `BENCH_JITTER_PCT`
//! [10] percent jitter), and the lag table shows p99 minus that floor.
//!
//! Settings (environment variables, defaults in brackets): `BENCH_SECS`
//! [10] seconds of probing per rate, `BENCH_WARMUP_SECS` [1],
//! `BENCH_RATES` ["1000,10000"] total writes/s, `BENCH_CONNS` [2] writer
//! connections per region, `BENCH_PROBES` [100] probes/s, `BENCH_POLL_US`
//! [75], `BENCH_WIRE_OPS` [50000] writes per wire workload,
//! `BENCH_PIPELINE` [200] commands per pipeline in the wire workloads,
//! `BENCH_FSYNC` [always], `BENCH_PARTS` ["lag,wire"], `REDIS_SERVER`
//! [redis-server].

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, Pipeline, RedisResult, Value};

/// The regions: name and id.
const REGIONS: [(&str, u16); 3] = [("us", 1), ("eu", 2), ("asia", 3)];
/// Keys of the realistic mix and of the large-value workloads.
const KEYSPACE: u32 = 10_000;
/// Longest a probe may take to become visible before it counts as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of every client connection (a stuck server fails the run
/// instead of hanging it).
const IO_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ settings

/// An environment variable parsed, or `default` when unset.
fn env_or<T: FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={s:?} is not valid: {e}")),
        _ => default,
    }
}

/// The benchmark's settings, from the environment.
#[derive(Clone, Debug)]
struct Settings {
    secs: f64,
    warmup_secs: f64,
    rates: Vec<u64>,
    conns: usize,
    probes_per_sec: f64,
    poll: Duration,
    wire_ops: usize,
    pipeline: usize,
    fsync: String,
    lag: bool,
    wire: bool,
    redis_server: String,
    /// One-way delay per region pair (index pairs into `REGIONS`), when
    /// the regions talk through `braid-relay` instead of plain loopback.
    wan: Option<Vec<((usize, usize), u64)>>,
    jitter_pct: u64,
}

impl Settings {
    /// The emulated one-way delay between regions `a` and `b` in ms.
    fn one_way_ms(&self, a: usize, b: usize) -> u64 {
        self.wan
            .as_ref()
            .and_then(|w| {
                w.iter()
                    .find(|((x, y), _)| (*x, *y) == (a, b) || (*x, *y) == (b, a))
            })
            .map_or(0, |(_, d)| *d)
    }
}

/// Parses `BENCH_WAN`: `geo` (us–eu 40, us–asia 90, eu–asia 120 ms one
/// way) or `us-eu=40,us-asia=90,eu-asia=120`; empty or `none`: loopback.
fn parse_wan(text: &str) -> Option<Vec<((usize, usize), u64)>> {
    let text = match text.trim() {
        "" | "none" => return None,
        "geo" => "us-eu=40,us-asia=90,eu-asia=120",
        t => t,
    };
    let index = |name: &str| {
        REGIONS
            .iter()
            .position(|r| r.0 == name)
            .unwrap_or_else(|| panic!("BENCH_WAN={text:?}: no region {name:?}"))
    };
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (pair, ms) = part
            .split_once('=')
            .unwrap_or_else(|| panic!("BENCH_WAN={text:?}: {part:?} is not a-b=MS"));
        let (a, b) = pair
            .split_once('-')
            .unwrap_or_else(|| panic!("BENCH_WAN={text:?}: {pair:?} is not a-b"));
        let ms: u64 = ms
            .trim()
            .trim_end_matches("ms")
            .parse()
            .unwrap_or_else(|e| panic!("BENCH_WAN={text:?}: {ms:?}: {e}"));
        out.push(((index(a.trim()), index(b.trim())), ms));
    }
    Some(out)
}

impl Settings {
    fn from_env() -> Settings {
        let rates_text = env_or("BENCH_RATES", "1000,10000".to_string());
        let rates = rates_text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .unwrap_or_else(|e| panic!("BENCH_RATES={rates_text:?}: '{s}': {e}"))
            })
            .collect();
        let parts = env_or("BENCH_PARTS", "lag,wire".to_string());
        let s = Settings {
            secs: env_or("BENCH_SECS", 10.0),
            warmup_secs: env_or("BENCH_WARMUP_SECS", 1.0),
            rates,
            conns: env_or("BENCH_CONNS", 2usize).max(1),
            probes_per_sec: env_or("BENCH_PROBES", 100.0f64).max(1.0),
            poll: Duration::from_micros(env_or("BENCH_POLL_US", 75u64)),
            wire_ops: env_or("BENCH_WIRE_OPS", 50_000usize).max(1),
            pipeline: env_or("BENCH_PIPELINE", 200usize).max(1),
            fsync: env_or("BENCH_FSYNC", "always".to_string()),
            lag: parts.split(',').any(|p| p.trim() == "lag"),
            wire: parts.split(',').any(|p| p.trim() == "wire"),
            redis_server: env_or("REDIS_SERVER", "redis-server".to_string()),
            wan: parse_wan(&env_or("BENCH_WAN", String::new())),
            jitter_pct: env_or("BENCH_JITTER_PCT", 10u64),
        };
        assert!(
            s.lag || s.wire,
            "BENCH_PARTS={parts:?} names neither 'lag' nor 'wire'"
        );
        s
    }
}

// ------------------------------------------------------------------ processes

/// A free TCP port on loopback (bound then released).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port on 127.0.0.1")
}

/// A free UDP port on loopback (bound then released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("no free UDP port on 127.0.0.1")
}

/// A child process whose output goes to a log file.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create log file {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot reopen log file {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The last `lines` lines of its output.
    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error naming it and showing its output if it has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); its output:\n{}",
                self.name,
                self.log_tail(40)
            )),
            _ => Ok(()),
        }
    }

    /// Waits until its TCP port accepts connections; an error with its log
    /// if it exits or takes longer than a minute.
    fn wait_listening(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check_alive()?;
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen on port {port} within 60 s; its output:\n{}",
                    self.name,
                    self.log_tail(40)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `start` up to three times: a port found free may be taken by
/// another program before the server binds it.
fn with_retries<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut attempt = 1;
    loop {
        match start() {
            Ok(t) => return t,
            Err(e) if attempt < 3 => {
                eprintln!("{what}: start-up failed (attempt {attempt}), retrying: {e}");
                attempt += 1;
            }
            Err(e) => panic!("{what}: start-up failed three times; last error: {e}"),
        }
    }
}

/// Kills every process it holds when dropped, including while unwinding
/// from a panic (then it also shows the end of each one's output).
#[derive(Default)]
struct Guard {
    procs: Vec<Proc>,
}

impl Guard {
    /// An error if any process has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        self.procs.iter_mut().try_for_each(Proc::check_alive)
    }

    /// Lines of the processes' output that look like warnings or errors.
    fn complaints(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            for line in text.lines() {
                let l = line.to_ascii_lowercase();
                if l.contains("warn") || l.contains("error") || l.contains("panic") {
                    out.push(format!("{}: {line}", p.name));
                }
            }
        }
        out
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
            if panicking {
                eprintln!("--- last output of {} ---\n{}", p.name, p.log_tail(20));
            }
        }
    }
}

/// A client connection with a read timeout.
fn connect(port: u16) -> Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"));
    c.set_read_timeout(Some(IO_TIMEOUT))
        .unwrap_or_else(|e| panic!("cannot set a read timeout on 127.0.0.1:{port}: {e}"));
    c
}

fn info(c: &mut Connection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(c)
        .unwrap_or_else(|e| panic!("INFO {section}: {e}"))
}

/// Three Braid regions in a full mesh.
struct Cluster {
    // Dropped first: the processes die before their directories go.
    guard: Guard,
    ports: Vec<u16>,
    _root: tempfile::TempDir,
}

impl Cluster {
    /// Starts us, eu and asia (certificates from `gen-certs`, fresh data
    /// directories) and waits until every region takes writes and has both
    /// outbound links up. `config` is the text of a `--config` file.
    fn start(s: &Settings, config: Option<&str>) -> Cluster {
        with_retries("braid cluster", || Cluster::try_start(s, config))
    }

    fn try_start(s: &Settings, config: Option<&str>) -> Result<Cluster, String> {
        let bin = env!("CARGO_BIN_EXE_braid-server");
        let root = tempfile::tempdir().expect("cannot create a temporary directory");
        let certs = root.path().join("certs");
        let names: Vec<&str> = REGIONS.iter().map(|r| r.0).collect();
        let out = Command::new(bin)
            .args(["gen-certs", "--regions", &names.join(","), "--out"])
            .arg(&certs)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin} gen-certs: {e}"));
        assert!(
            out.status.success(),
            "{bin} gen-certs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config_file = config.map(|text| {
            let path = root.path().join("braid.toml");
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        });
        let ports: Vec<u16> = REGIONS.iter().map(|_| free_tcp_port()).collect();
        let udp: Vec<u16> = REGIONS.iter().map(|_| free_udp_port()).collect();
        let mut guard = Guard::default();
        // With BENCH_WAN, region i reaches peer j through a relay port
        // that delays each direction by the pair's one-way latency.
        let relay_ports: Vec<Vec<u16>> = REGIONS
            .iter()
            .map(|_| REGIONS.iter().map(|_| free_udp_port()).collect())
            .collect();
        let peer_port = |i: usize, j: usize| {
            if s.wan.is_some() {
                relay_ports[i][j]
            } else {
                udp[j]
            }
        };
        for (i, (name, id)) in REGIONS.iter().enumerate() {
            let data = root.path().join(name);
            std::fs::create_dir_all(&data)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
            let mut cmd = Command::new(bin);
            if let Some(f) = &config_file {
                cmd.arg("--config").arg(f);
            }
            cmd.args(["--port", &ports[i].to_string(), "--data-dir"])
                .arg(&data)
                .args(["--region", name, "--region-id", &id.to_string()])
                .args(["--replication-listen", &format!("127.0.0.1:{}", udp[i])])
                .arg("--tls-dir")
                .arg(&certs)
                .args(["--fsync", &s.fsync])
                .env("RUST_LOG", "warn")
                .env("NO_COLOR", "1");
            for (j, (peer, pid)) in REGIONS.iter().enumerate() {
                if j != i {
                    cmd.args([
                        "--peer",
                        &format!("{peer}={pid}@127.0.0.1:{}", peer_port(i, j)),
                    ]);
                }
            }
            let log = root.path().join(format!("{name}.log"));
            guard
                .procs
                .push(Proc::spawn(&format!("braid-server {name}"), &mut cmd, log));
        }
        if s.wan.is_some() {
            let relay = env!("CARGO_BIN_EXE_braid-relay");
            let mut cmd = Command::new(relay);
            for i in 0..REGIONS.len() {
                for j in (0..REGIONS.len()).filter(|&j| j != i) {
                    let d = s.one_way_ms(i, j);
                    cmd.arg("--link").arg(format!(
                        "127.0.0.1:{}=127.0.0.1:{},name={}-{},delay={d}ms,jitter={}ms",
                        relay_ports[i][j],
                        udp[j],
                        REGIONS[i].0,
                        REGIONS[j].0,
                        d * s.jitter_pct / 100
                    ));
                }
            }
            cmd.env("RUST_LOG", "warn").env("NO_COLOR", "1");
            let log = root.path().join("relay.log");
            // After the regions: `guard.procs[i]` is region i below.
            guard.procs.push(Proc::spawn("braid-relay", &mut cmd, log));
        }
        for (p, &port) in guard.procs.iter_mut().zip(&ports) {
            p.wait_listening(port)?;
        }
        let mut cluster = Cluster {
            guard,
            ports,
            _root: root,
        };
        cluster.wait_ready(&udp)?;
        Ok(cluster)
    }

    fn conn(&self, i: usize) -> Connection {
        connect(self.ports[i])
    }

    /// A region on an empty data directory answers writes with LOADING until
    /// a peer greets it: wait for `writes:enabled` and both links up. The
    /// replication address (`udp`) proves the port is this run's server.
    fn wait_ready(&mut self, udp: &[u16]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..REGIONS.len() {
            loop {
                self.guard.check_alive()?;
                let text = info(&mut self.conn(i), "replication");
                let ours = text.contains(&format!("replication_listen:127.0.0.1:{}", udp[i]));
                let peers_up = text
                    .lines()
                    .find_map(|l| l.strip_prefix("connected_peers:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if ours && text.contains("writes:enabled") && peers_up == REGIONS.len() - 1 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "region {} not ready after 60 s:\n{text}",
                        REGIONS[i].0
                    ));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Waits until every region reports the same version vector.
    fn await_convergence(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        let mut conns: Vec<Connection> = (0..REGIONS.len()).map(|i| self.conn(i)).collect();
        loop {
            let vvs: Vec<String> = conns.iter_mut().map(vv_text).collect();
            if vvs.windows(2).all(|w| w[0] == w[1]) {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                let infos: Vec<String> = conns.iter_mut().map(|c| info(c, "replication")).collect();
                panic!(
                    "regions did not converge within {limit:?}: {vvs:?}\n{}",
                    infos.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn vv_text(c: &mut Connection) -> String {
    redis::cmd("BRAID.VV")
        .query(c)
        .unwrap_or_else(|e| panic!("BRAID.VV: {e}"))
}

/// `BRAID.VV` of a region: the highest applied sequence of region `id`.
fn vv_of(c: &mut Connection, id: u16) -> u64 {
    vv_text(c)
        .split(',')
        .filter_map(|p| p.split_once('='))
        .find(|(r, _)| r.trim().parse() == Ok(id))
        .map_or(0, |(_, s)| {
            s.trim()
                .parse()
                .unwrap_or_else(|e| panic!("BRAID.VV sequence '{s}': {e}"))
        })
}

// ------------------------------------------------------------------ workloads

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// SET (16-byte keys, 32-byte values), INCR, HSET, SADD, LPUSH, ZADD
    /// over 10k keys.
    Mix,
    /// SET of 1 KiB of repetitive text.
    Compressible,
    /// SET of 1 KiB of random bytes.
    Random,
    /// INCR of one key.
    HotCounter,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Mix,
        Workload::Compressible,
        Workload::Random,
        Workload::HotCounter,
    ];

    fn label(self) -> &'static str {
        match self {
            Workload::Mix => {
                "realistic mix (SET 16 B key/32 B value, INCR, HSET, SADD, LPUSH, ZADD; 10k keys)"
            }
            Workload::Compressible => "SET 1 KiB repetitive text (10k keys)",
            Workload::Random => "SET 1 KiB random bytes (10k keys)",
            Workload::HotCounter => "INCR one hot key",
        }
    }

    fn seed(self) -> u64 {
        match self {
            Workload::Mix => 11,
            Workload::Compressible => 12,
            Workload::Random => 13,
            Workload::HotCounter => 14,
        }
    }
}

fn alnum(rng: &mut fastrand::Rng, n: usize) -> String {
    (0..n).map(|_| rng.alphanumeric()).collect()
}

const PROSE: &str = "The quick brown fox jumps over the lazy dog while the \
    replication stream carries every operation to every region. ";

/// Appends one command of `w` to the pipeline.
fn add_command(p: &mut Pipeline, w: Workload, rng: &mut fastrand::Rng, i: u64) {
    match w {
        Workload::Mix => {
            let k = rng.u32(0..KEYSPACE);
            // Each key has one type (by range), so the mix never conflicts
            // on types: 40% SET, 15% INCR, 15% HSET, 10% SADD, LPUSH, ZADD.
            let key = format!("k:{k:014}");
            match k * 100 / KEYSPACE {
                0..=39 => p.cmd("SET").arg(key).arg(alnum(rng, 32)),
                40..=54 => p.cmd("INCR").arg(key),
                55..=69 => p
                    .cmd("HSET")
                    .arg(key)
                    .arg(format!("field:{:02}", rng.u8(0..20)))
                    .arg(alnum(rng, 32)),
                70..=79 => p.cmd("SADD").arg(key).arg(alnum(rng, 16)),
                80..=89 => p.cmd("LPUSH").arg(key).arg(alnum(rng, 32)),
                _ => p
                    .cmd("ZADD")
                    .arg(key)
                    .arg(rng.u32(0..1_000_000))
                    .arg(format!("m:{:014}", rng.u32(0..1_000))),
            };
        }
        Workload::Compressible => {
            let k = rng.u32(0..KEYSPACE);
            let mut v =
                format!("{{\"id\":{i},\"user\":\"user-{k}\",\"status\":\"active\",\"note\":\"");
            while v.len() < 1024 {
                v.push_str(PROSE);
            }
            v.truncate(1024);
            p.cmd("SET").arg(format!("doc:{k:012}")).arg(v);
        }
        Workload::Random => {
            let k = rng.u32(0..KEYSPACE);
            let mut v = vec![0u8; 1024];
            rng.fill(&mut v);
            p.cmd("SET").arg(format!("bin:{k:012}")).arg(v);
        }
        Workload::HotCounter => {
            p.cmd("INCR").arg("hot:counter");
        }
    }
}

/// Sends a pipeline; returns (replies that were errors, the first error).
fn send(p: &Pipeline, c: &mut Connection) -> RedisResult<(u64, Option<String>)> {
    let replies: Vec<RedisResult<Value>> = p.query(c)?;
    let mut errors = 0;
    let mut first = None;
    for r in replies {
        if let Err(e) = r {
            errors += 1;
            first.get_or_insert_with(|| e.to_string());
        }
    }
    Ok((errors, first))
}

/// Writes `n` commands of `w` on one connection, `pipeline` at a time.
fn fill(c: &mut Connection, w: Workload, n: usize, pipeline: usize, what: &str) {
    let mut rng = fastrand::Rng::with_seed(w.seed());
    let mut done = 0;
    while done < n {
        let batch = pipeline.min(n - done);
        let mut p = redis::pipe();
        p.ignore_errors();
        for i in done..done + batch {
            add_command(&mut p, w, &mut rng, i as u64);
        }
        let (errors, first) =
            send(&p, c).unwrap_or_else(|e| panic!("{what}: {:?} pipeline failed: {e}", w));
        assert!(
            errors == 0,
            "{what}: {errors} of {batch} {:?} commands failed, first: {}",
            w,
            first.unwrap_or_default()
        );
        done += batch;
    }
}

// ------------------------------------------------------------------ lag

/// What one paced writer connection did.
#[derive(Default)]
struct WriterStats {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

/// Sends `rate` commands a second of the mix: every millisecond, whatever
/// is due since `start` as one pipeline.
fn paced_writer(port: u16, rate: f64, seed: u64, stop: Arc<AtomicBool>) -> WriterStats {
    let mut c = connect(port);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut st = WriterStats::default();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (rate * start.elapsed().as_secs_f64()) as u64;
        let n = due.saturating_sub(sent).min(10_000);
        if n > 0 {
            let mut p = redis::pipe();
            p.ignore_errors();
            for i in 0..n {
                add_command(&mut p, Workload::Mix, &mut rng, sent + i);
            }
            match send(&p, &mut c) {
                Ok((errors, first)) => {
                    st.ok += n - errors;
                    st.errors += errors;
                    if st.first_error.is_none() {
                        st.first_error = first;
                    }
                }
                Err(e) => {
                    st.errors += n;
                    st.first_error = Some(format!("connection failed: {e}"));
                    break;
                }
            }
            sent += n;
        }
        // Next millisecond tick.
        tick = tick.max(start.elapsed().as_millis() as u64) + 1;
        let next = start + Duration::from_millis(tick);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    st.elapsed = start.elapsed();
    st
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is before 1970")
        .as_nanos()
}

/// Lags seen by one watcher (source → target).
struct WatchResult {
    source: usize,
    target: usize,
    lags_ns: Vec<u64>,
    lost: u64,
}

/// Polls region `target` for each probe of `source` it is told about.
fn watcher(
    port: u16,
    source: usize,
    target: usize,
    probes: mpsc::Receiver<String>,
    poll: Duration,
) -> WatchResult {
    let mut c = connect(port);
    let mut out = WatchResult {
        source,
        target,
        lags_ns: Vec::new(),
        lost: 0,
    };
    for key in probes {
        let deadline = Instant::now() + PROBE_TIMEOUT;
        loop {
            let v: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query(&mut c)
                .unwrap_or_else(|e| panic!("GET {key} on {}: {e}", REGIONS[target].0));
            if let Some(v) = v {
                let now = unix_ns();
                let written: u128 = v
                    .parse()
                    .unwrap_or_else(|e| panic!("probe {key} holds '{v}': {e}"));
                out.lags_ns.push(now.saturating_sub(written) as u64);
                break;
            }
            if Instant::now() > deadline {
                out.lost += 1;
                break;
            }
            thread::sleep(poll);
        }
    }
    out
}

/// Writes a probe on one region (round-robin) `per_sec` times a second for
/// `secs`, numbered from `first_probe` (numbers are never reused: a watcher would
/// see an earlier run's value at once); tells the watchers of its source
/// about each.
fn probe_writer(
    ports: &[u16],
    first_probe: u64,
    per_sec: f64,
    secs: f64,
    watchers: Vec<Vec<mpsc::Sender<String>>>,
) -> ProbeStats {
    let mut conns: Vec<Connection> = ports.iter().map(|&p| connect(p)).collect();
    let start = Instant::now();
    let total = (per_sec * secs).ceil() as u64;
    let mut st = ProbeStats::default();
    for n in 0..total {
        let at = start + Duration::from_secs_f64(n as f64 / per_sec);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let src = (n % ports.len() as u64) as usize;
        let key = format!("probe:{}:{}", REGIONS[src].0, first_probe + n);
        let sent = Instant::now();
        let r: RedisResult<()> = redis::cmd("SET")
            .arg(&key)
            .arg(unix_ns().to_string())
            .query(&mut conns[src]);
        match r {
            Ok(()) => {
                st.reply_ns.push(sent.elapsed().as_nanos() as u64);
                for tx in &watchers[src] {
                    let _ = tx.send(key.clone());
                }
            }
            Err(e) => {
                st.refused += 1;
                st.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    st
}

/// What the probe writer saw.
#[derive(Default)]
struct ProbeStats {
    /// Probes the server refused, and the first refusal.
    refused: u64,
    first_error: Option<String>,
    /// Time to each accepted probe's reply on its source region (with
    /// `--fsync always`, after the fsync that covers it).
    reply_ns: Vec<u64>,
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// One rate's results.
struct LagRun {
    rate: u64,
    achieved: f64,
    write_errors: u64,
    first_error: Option<String>,
    probes: ProbeStats,
    watches: Vec<WatchResult>,
    converge: Duration,
}

/// Run `run` of the lag measurement at `rate` writes a second in total.
fn measure_lag(cluster: &Cluster, s: &Settings, run: usize, rate: u64) -> LagRun {
    let n = REGIONS.len();
    let stop = Arc::new(AtomicBool::new(false));
    let per_conn = rate as f64 / (n * s.conns) as f64;
    let writers: Vec<_> = (0..n)
        .flat_map(|r| (0..s.conns).map(move |k| (r, k)))
        .map(|(r, k)| {
            let port = cluster.ports[r];
            let stop = stop.clone();
            let seed = rate * 1000 + (r * 100 + k) as u64;
            thread::spawn(move || paced_writer(port, per_conn, seed, stop))
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(s.warmup_secs));

    let mut senders: Vec<Vec<mpsc::Sender<String>>> = vec![Vec::new(); n];
    let mut watchers = Vec::new();
    for (source, to_watchers) in senders.iter_mut().enumerate() {
        for target in (0..n).filter(|&t| t != source) {
            let (tx, rx) = mpsc::channel();
            to_watchers.push(tx);
            let port = cluster.ports[target];
            let poll = s.poll;
            watchers.push(thread::spawn(move || {
                watcher(port, source, target, rx, poll)
            }));
        }
    }
    let mut probes = probe_writer(
        &cluster.ports,
        run as u64 * 1_000_000_000,
        s.probes_per_sec,
        s.secs,
        senders,
    );
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut write_errors = 0;
    let mut first_error = probes.first_error.take().map(|e| format!("probe: {e}"));
    probes.reply_ns.sort_unstable();
    let mut elapsed = Duration::ZERO;
    for w in writers {
        let st = w.join().expect("a writer thread panicked");
        ok += st.ok;
        write_errors += st.errors;
        elapsed = elapsed.max(st.elapsed);
        if first_error.is_none() {
            first_error = st.first_error;
        }
    }
    let watches = watchers
        .into_iter()
        .map(|w| w.join().expect("a watcher thread panicked"))
        .collect();
    let converge = cluster.await_convergence(Duration::from_secs(120));
    LagRun {
        rate,
        achieved: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        write_errors,
        first_error,
        probes,
        watches,
        converge,
    }
}

fn lag_table(runs: &[LagRun], s: &Settings) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Replication lag: probe written on the source → first GET that sees it on the target \
         (includes the source's fsync={}), {} s per rate, probes {}/s round-robin over the sources, \
         writes spread evenly over us, eu, asia on {} connection(s) each",
        s.fsync, s.secs, s.probes_per_sec, s.conns
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| rate (ops/s, total) | achieved (ops/s) | source → target | one-way ms | probes | lost | p50 ms | p99 ms | max ms | p99 − one-way ms |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        for w in &r.watches {
            let mut v = w.lags_ns.clone();
            v.sort_unstable();
            let one_way = s.one_way_ms(w.source, w.target);
            let _ = writeln!(
                t,
                "| {} | {:.0} | {} → {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                r.rate,
                r.achieved,
                REGIONS[w.source].0,
                REGIONS[w.target].0,
                one_way,
                v.len(),
                w.lost,
                ms(pct(&v, 50.0)),
                ms(pct(&v, 99.0)),
                ms(v.last().copied().unwrap_or(0)),
                pct(&v, 99.0) as f64 / 1e6 - one_way as f64,
            );
        }
        let mut all: Vec<u64> = r.watches.iter().flat_map(|w| w.lags_ns.clone()).collect();
        all.sort_unstable();
        let lost: u64 = r.watches.iter().map(|w| w.lost).sum();
        let _ = writeln!(
            t,
            "| {} | {:.0} | **all pairs** | | {} | {} | {} | {} | {} | |",
            r.rate,
            r.achieved,
            all.len(),
            lost,
            ms(pct(&all, 50.0)),
            ms(pct(&all, 99.0)),
            ms(all.last().copied().unwrap_or(0)),
        );
    }
    let _ = writeln!(t);
    for r in runs {
        let _ = writeln!(
            t,
            "rate {}: probe SET reply on its source p50 {} / p99 {} / max {} ms; write errors {}, probes refused {}, \
             all regions equal {:.0} ms after the writers stopped{}",
            r.rate,
            ms(pct(&r.probes.reply_ns, 50.0)),
            ms(pct(&r.probes.reply_ns, 99.0)),
            ms(r.probes.reply_ns.last().copied().unwrap_or(0)),
            r.write_errors,
            r.probes.refused,
            r.converge.as_secs_f64() * 1000.0,
            r.first_error
                .as_ref()
                .map(|e| format!(", first error: {e}"))
                .unwrap_or_default()
        );
    }
    t
}

// ------------------------------------------------------------------ wire bytes

/// A link's counters from `INFO replication`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LinkCounters {
    raw: u64,
    wire: u64,
    ops: u64,
    segments: u64,
    compressed: u64,
}

impl std::ops::Sub for LinkCounters {
    type Output = LinkCounters;
    fn sub(self, o: LinkCounters) -> LinkCounters {
        LinkCounters {
            raw: self.raw - o.raw,
            wire: self.wire - o.wire,
            ops: self.ops - o.ops,
            segments: self.segments - o.segments,
            compressed: self.compressed - o.compressed,
        }
    }
}

/// The counters of the link to `peer` in an `INFO replication` text.
fn parse_link(info: &str, peer: &str) -> LinkCounters {
    let line = info
        .lines()
        .find(|l| {
            l.starts_with("peer")
                && l.split(',')
                    .any(|f| f.split_once(':').map_or(f, |(_, r)| r) == format!("name={peer}"))
        })
        .unwrap_or_else(|| panic!("no peer line for {peer} in INFO replication:\n{info}"));
    let field = |name: &str| -> u64 {
        line.split(',')
            .filter_map(|f| f.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{name}={v} in '{line}': {e}"))
            })
            .unwrap_or_else(|| panic!("no {name} in '{line}'"))
    };
    LinkCounters {
        raw: field("sent_raw_bytes"),
        wire: field("sent_wire_bytes"),
        ops: field("ops_sent"),
        segments: field("segments_sent"),
        compressed: field("segments_compressed"),
    }
}

/// The link's counters once two reads 20 ms apart agree.
fn stable_link(c: &mut Connection, peer: &str) -> LinkCounters {
    let mut last = parse_link(&info(c, "replication"), peer);
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(20));
        let now = parse_link(&info(c, "replication"), peer);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// One workload's us → eu traffic.
struct BraidWire {
    delta: LinkCounters,
    secs: f64,
}

/// Runs every workload on us, measuring the us → eu link.
fn braid_wire(s: &Settings, compress: bool) -> (Vec<BraidWire>, Vec<String>) {
    let config = (!compress).then_some("[replication]\ncompress = false\n");
    let cluster = Cluster::start(s, config);
    let (us, eu) = (0, 1);
    let mut c_us = cluster.conn(us);
    let mut c_eu = cluster.conn(eu);
    let what = format!("braid us (compress={compress})");
    let mut out = Vec::new();
    for w in Workload::ALL {
        let before = stable_link(&mut c_us, REGIONS[eu].0);
        let start = Instant::now();
        fill(&mut c_us, w, s.wire_ops, s.pipeline, &what);
        let target = vv_of(&mut c_us, REGIONS[us].1);
        let deadline = Instant::now() + Duration::from_secs(120);
        while vv_of(&mut c_eu, REGIONS[us].1) < target {
            assert!(
                Instant::now() < deadline,
                "eu did not receive us' writes within 120 s:\n{}",
                info(&mut c_us, "replication")
            );
            thread::sleep(Duration::from_millis(5));
        }
        let secs = start.elapsed().as_secs_f64();
        let after = stable_link(&mut c_us, REGIONS[eu].0);
        // Let asia catch up too, so the next workload starts quiet.
        cluster.await_convergence(Duration::from_secs(120));
        out.push(BraidWire {
            delta: after - before,
            secs,
        });
    }
    let complaints = cluster.guard.complaints();
    (out, complaints)
}

/// A local Redis master with one replica.
struct RedisPair {
    // Kills both servers when dropped.
    _guard: Guard,
    master: u16,
    _root: tempfile::TempDir,
}

fn start_redis(s: &Settings) -> Result<RedisPair, String> {
    match Command::new(&s.redis_server).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "`{} --version` failed: {}",
                s.redis_server, o.status
            ))
        }
        Err(e) => return Err(format!("`{}` cannot run: {e}", s.redis_server)),
    }
    Ok(with_retries("redis master and replica", || {
        try_start_redis(s)
    }))
}

fn try_start_redis(s: &Settings) -> Result<RedisPair, String> {
    let root = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let master = free_tcp_port();
    let replica = free_tcp_port();
    let mut guard = Guard::default();
    for (name, port) in [("master", master), ("replica", replica)] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cmd = Command::new(&s.redis_server);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir);
        if name == "replica" {
            cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        let log = root.path().join(format!("{name}.log"));
        guard
            .procs
            .push(Proc::spawn(&format!("redis-server {name}"), &mut cmd, log));
    }
    guard.procs[0].wait_listening(master)?;
    guard.procs[1].wait_listening(replica)?;
    let mut c = connect(master);
    // The port could belong to another program's server: check the pid.
    let pid = format!("process_id:{}", guard.procs[0].child.id());
    if !info(&mut c, "server").lines().any(|l| l.trim() == pid) {
        return Err(format!("port {master} is not this run's redis-server"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        guard.check_alive()?;
        let text = info(&mut c, "replication");
        if text
            .lines()
            .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the replica never came online:\n{text}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(RedisPair {
        _guard: guard,
        master,
        _root: root,
    })
}

fn repl_offset(c: &mut Connection) -> u64 {
    let text = info(c, "replication");
    text.lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no master_repl_offset in INFO replication:\n{text}"))
}

/// Bytes of the master's replication stream per command, per workload.
fn redis_wire(s: &Settings) -> Result<Vec<f64>, String> {
    let pair = start_redis(s)?;
    let mut c = connect(pair.master);
    let mut out = Vec::new();
    for w in Workload::ALL {
        let before = repl_offset(&mut c);
        fill(&mut c, w, s.wire_ops, s.pipeline, "redis master");
        let after = repl_offset(&mut c);
        out.push((after - before) as f64 / s.wire_ops as f64);
    }
    Ok(out)
}

fn per_op(bytes: u64, n: usize) -> String {
    format!("{:.1}", bytes as f64 / n as f64)
}

fn wire_tables(
    s: &Settings,
    redis: &Result<Vec<f64>, String>,
    on: &[BraidWire],
    off: &[BraidWire],
) -> String {
    let n = s.wire_ops;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Wire bytes per operation: {n} writes per workload on us (pipelines of {}), us → eu link; \
         braid wire = replication frames (segments) as sent, without QUIC/TLS/UDP overhead; \
         redis = growth of the master's master_repl_offset (its replication stream, without TCP overhead)",
        s.pipeline
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| workload | redis bytes/op | braid raw bytes/op | braid wire bytes/op (compression on) | braid wire bytes/op (off) | ratio braid(on)/redis |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for (i, w) in Workload::ALL.iter().enumerate() {
        let r = redis.as_ref().ok().map(|v| v[i]);
        let on_wire = on[i].delta.wire as f64 / n as f64;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            w.label(),
            r.map_or("–".to_string(), |b| format!("{b:.1}")),
            per_op(on[i].delta.raw, n),
            per_op(on[i].delta.wire, n),
            per_op(off[i].delta.wire, n),
            r.map_or("–".to_string(), |b| format!("{:.2}", on_wire / b)),
        );
    }
    if let Err(e) = redis {
        let _ = writeln!(t);
        let _ = writeln!(t, "Redis column skipped: {e}");
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "Braid link details (us → eu):");
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| workload | compression | ops sent / write | segments | ops / segment | segments compressed | raw bytes/op | wire bytes/op | wire/raw | writes/s until eu had them |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for (label, runs) in [("on", on), ("off", off)] {
        for (w, r) in Workload::ALL.iter().zip(runs) {
            let d = r.delta;
            let _ = writeln!(
                t,
                "| {:?} | {label} | {:.3} | {} | {:.0} | {} | {} | {} | {:.3} | {:.0} |",
                w,
                d.ops as f64 / n as f64,
                d.segments,
                d.ops as f64 / d.segments.max(1) as f64,
                d.compressed,
                per_op(d.raw, n),
                per_op(d.wire, n),
                d.wire as f64 / d.raw.max(1) as f64,
                n as f64 / r.secs,
            );
        }
    }
    t
}

// ------------------------------------------------------------------ main

fn main() {
    // `cargo bench` passes `--bench` (and any filter); nothing to parse.
    let s = Settings::from_env();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!("# Braid replication benchmark");
    println!();
    let links = match &s.wan {
        None => "loopback".to_string(),
        Some(w) => format!(
            "braid-relay WAN links ({}, jitter ±{}%)",
            w.iter()
                .map(|((a, b), d)| format!("{}–{} {d} ms", REGIONS[*a].0, REGIONS[*b].0))
                .collect::<Vec<_>>()
                .join(", "),
            s.jitter_pct
        ),
    };
    println!(
        "3 regions (us, eu, asia), full mesh over {links}, fsync={}, {cores} cores; settings: {s:?}",
        s.fsync
    );
    println!();
    let begin = Instant::now();
    let mut complaints = Vec::new();

    if s.lag {
        let cluster = Cluster::start(&s, None);
        let runs: Vec<LagRun> = s
            .rates
            .iter()
            .enumerate()
            .map(|(run, &rate)| {
                eprintln!("lag: {rate} ops/s for {} s…", s.secs);
                measure_lag(&cluster, &s, run, rate)
            })
            .collect();
        println!("## Replication lag");
        println!();
        println!("{}", lag_table(&runs, &s));
        complaints.extend(cluster.guard.complaints());
    }

    if s.wire {
        eprintln!("wire: redis…");
        let redis = redis_wire(&s);
        eprintln!("wire: braid, compression on…");
        let (on, c1) = braid_wire(&s, true);
        eprintln!("wire: braid, compression off…");
        let (off, c2) = braid_wire(&s, false);
        complaints.extend(c1);
        complaints.extend(c2);
        println!("## Wire bytes per operation");
        println!();
        println!("{}", wire_tables(&s, &redis, &on, &off));
    }

    println!("## Server warnings and errors");
    println!();
    if complaints.is_empty() {
        println!("none");
    } else {
        println!("{} line(s); the first 20:", complaints.len());
        println!();
        println!("```");
        for l in complaints.iter().take(20) {
            println!("{l}");
        }
        println!("```");
    }
    println!();
    println!("total run time {:.0} s", begin.elapsed().as_secs_f64());
}
