//! Surviving the WAN: real `braid-server` processes replicating through
//! user-space UDP relays (`braid::relay`) that add latency and jitter, drop
//! datagrams, cut links one way or both, and heal, under the test's
//! control, with no privileges.
//!
//! Every directed link `a → b` (a dials b) goes through its own relay: `a`
//! is started with `--peer b=ID@RELAY`, the relay forwards to `b`'s real
//! replication port (and `b`'s acknowledgements back). Regions run with
//! `--fsync always`, so an acknowledged write is a durable write.
//!
//! Each scenario runs one writer thread per region (INCRBY on a shared
//! counter, SADD of unique members to a shared set, SET of unique keys,
//! RPUSH to a per-region list and to a shared list, HINCRBY on shared
//! fields), recording every acknowledged write and every attempted one. A
//! write that fails in the client (the region is down, the connection
//! broke) is not acknowledged, though it may have been applied. After
//! healing, the test waits until every region reports the same version
//! vector and digest, then checks in every region, per docs/semantics.md:
//! counters and hash-field increments lie between the sum of acknowledged
//! and the sum of attempted increments (concurrent increments all count);
//! every acknowledged SADD member is there and no member that was never
//! written (add-wins set, no removes); every acknowledged SET key holds its
//! value (unique keys: no conflict); each region's pushes appear in its
//! order, every acknowledged one present and nothing never pushed (lists:
//! concurrent pushes all survive, each keeping its own order). Finally no
//! server log contains a panic.

mod common;

use braid::relay::{Direction, LinkConditions, Relay, RelayHandle};
use common::server::{free_udp_port, gen_certs, start_relay, wait_until, Braid};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long regions may take to converge once healed.
const CONVERGE: Duration = Duration::from_secs(120);
/// How long any other awaited condition may take.
const WAIT: Duration = Duration::from_secs(60);
/// Pause between two writes of a writer: about a thousand writes a second
/// per region (unpaced, a region takes several thousand on tmpfs, which
/// only makes the checks slower).
const PACE: Duration = Duration::from_millis(1);

/// A version vector as `BRAID.VV` prints it (`1=5,2=7`).
fn parse_vv(s: &str) -> BTreeMap<u16, u64> {
    s.split(',')
        .filter_map(|p| p.split_once('='))
        .filter_map(|(r, n)| Some((r.trim().parse().ok()?, n.trim().parse().ok()?)))
        .collect()
}

/// One region of the emulated WAN.
struct Region {
    name: String,
    id: u16,
    udp: u16,
    dir: PathBuf,
    log: PathBuf,
    server: Option<Braid>,
    /// The client port while the region runs, 0 while it is down (writers
    /// follow it across restarts).
    port: Arc<AtomicU16>,
}

/// Regions in a mesh, every directed link through its own relay.
struct Wan {
    regions: Vec<Region>,
    /// `(dialer, dialed)` → the relay the dialer sends to.
    relays: BTreeMap<(usize, usize), RelayHandle>,
    extra: Vec<String>,
    root: tempfile::TempDir,
    /// Runs the relays.
    _rt: tokio::runtime::Runtime,
}

impl Wan {
    /// Starts regions `names` (ids 1..) in a full mesh, every link with
    /// `link` conditions both ways, each region with `extra` flags.
    fn start(names: &[&str], link: LinkConditions, extra: &[&str]) -> Wan {
        let root = tempfile::tempdir().expect("temp dir");
        gen_certs(&root.path().join("certs"), &names.join(","));
        let regions: Vec<Region> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Region {
                name: n.to_string(),
                id: i as u16 + 1,
                udp: free_udp_port(),
                dir: root.path().join(n),
                log: root.path().join(format!("{n}.log")),
                server: None,
                port: Arc::new(AtomicU16::new(0)),
            })
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let ports: Vec<u16> = regions.iter().map(|r| r.udp).collect();
        let mut relays = BTreeMap::new();
        for a in 0..regions.len() {
            for (b, dialed) in regions.iter().enumerate() {
                if a == b {
                    continue;
                }
                let target = SocketAddr::from(([127, 0, 0, 1], dialed.udp));
                let relay = start_relay(&rt, target, link, &ports);
                relays.insert((a, b), relay);
            }
        }
        let mut wan = Wan {
            regions,
            relays,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            root,
            _rt: rt,
        };
        for i in 0..wan.regions.len() {
            wan.launch(i);
        }
        // Fresh regions take writes once a peer has greeted them; a region
        // started before its peers reaches them on its next attempt.
        wan.await_links_up();
        wan
    }

    fn n(&self) -> usize {
        self.regions.len()
    }

    /// Starts region `i` (first start: its peers are the relays).
    fn launch(&mut self, i: usize) {
        let r = &self.regions[i];
        let mut args: Vec<String> = vec![
            "--region".into(),
            r.name.clone(),
            "--region-id".into(),
            r.id.to_string(),
            "--replication-listen".into(),
            format!("127.0.0.1:{}", r.udp),
            "--tls-dir".into(),
            self.root.path().join("certs").display().to_string(),
            "--fsync".into(),
            "always".into(),
        ];
        for (j, p) in self.regions.iter().enumerate() {
            if j != i {
                args.push("--peer".into());
                args.push(format!(
                    "{}={}@{}",
                    p.name,
                    p.id,
                    self.relays[&(i, j)].local_addr()
                ));
            }
        }
        args.extend(self.extra.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        std::fs::create_dir_all(&r.dir).expect("data dir");
        let server = Braid::start_in_logged(&r.dir, &refs, &r.log, "warn,braid=info");
        r.port.store(server.port, Ordering::SeqCst);
        self.regions[i].server = Some(server);
    }

    /// SIGKILL region `i`.
    fn kill9(&mut self, i: usize) {
        self.regions[i].port.store(0, Ordering::SeqCst);
        self.regions[i].server.as_mut().expect("running").kill9();
    }

    /// SIGTERM region `i` and wait for its exit.
    fn terminate(&mut self, i: usize) {
        self.regions[i].port.store(0, Ordering::SeqCst);
        let status = self.regions[i]
            .server
            .as_mut()
            .expect("running")
            .terminate();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} exited with {status:?}",
            self.regions[i].name
        );
    }

    /// Restarts a stopped region on its data directory and UDP port.
    fn restart(&mut self, i: usize) {
        let r = &mut self.regions[i];
        let s = r.server.as_mut().expect("started once");
        s.restart();
        r.port.store(s.port, Ordering::SeqCst);
    }

    fn relay(&self, dialer: usize, dialed: usize) -> &RelayHandle {
        &self.relays[&(dialer, dialed)]
    }

    /// Both relays between `a` and `b` (a's to b and b's to a).
    fn link(&self, a: usize, b: usize) -> [&RelayHandle; 2] {
        [self.relay(a, b), self.relay(b, a)]
    }

    fn every_relay(&self) -> impl Iterator<Item = &RelayHandle> {
        self.relays.values()
    }

    /// A client of region `i` once it takes writes.
    fn conn(&self, i: usize) -> redis::Connection {
        let s = self.regions[i].server.as_ref().expect("running");
        let mut c = s.conn();
        let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
        wait_until(
            WAIT,
            || format!("{} never took writes", self.regions[i].name),
            || {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
                    .is_ok_and(|i| i.contains("writes:enabled"))
            },
        );
        c
    }

    /// Waits until every region's link to every peer is up.
    fn await_links_up(&self) {
        let up = |i: usize| {
            self.info(i, "replication")
                .lines()
                .filter(|l| l.starts_with("peer") && l.contains("link=up"))
                .count()
                == self.n() - 1
        };
        wait_until(
            WAIT,
            || format!("links never came up: {}", self.report()),
            || (0..self.n()).all(up),
        );
    }

    fn info(&self, i: usize, section: &str) -> String {
        let mut c = self.conn(i);
        redis::cmd("INFO")
            .arg(section)
            .query(&mut c)
            .unwrap_or_default()
    }

    /// Region `i`'s version vector.
    fn vv(&self, i: usize) -> BTreeMap<u16, u64> {
        let mut c = self.conn(i);
        parse_vv(&redis::cmd("BRAID.VV").query::<String>(&mut c).expect("vv"))
    }

    /// How many operations of region `origin` region `i` has applied.
    fn seen(&self, i: usize, origin: usize) -> u64 {
        self.vv(i)
            .get(&self.regions[origin].id)
            .copied()
            .unwrap_or(0)
    }

    /// What every region and relay reports, for failure messages.
    fn report(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.regions.iter().enumerate() {
            if r.server.as_ref().is_some_and(|s| s.child.is_some()) {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    r.name,
                    self.info(i, "replication")
                ));
            }
        }
        for ((a, b), h) in &self.relays {
            out.push_str(&format!(
                "relay {}->{}: {:?}\n",
                self.regions[*a].name,
                self.regions[*b].name,
                h.stats()
            ));
        }
        out
    }

    /// Waits until every region reports the same version vector and digest.
    fn await_convergence(&self) -> Duration {
        let started = Instant::now();
        let snapshot = || -> Vec<(String, String)> {
            (0..self.n())
                .map(|i| {
                    let mut c = self.conn(i);
                    let vv: String = redis::cmd("BRAID.VV").query(&mut c).expect("vv");
                    let d: String = redis::cmd("BRAID.DIGEST").query(&mut c).expect("digest");
                    (vv, d)
                })
                .collect()
        };
        wait_until(
            CONVERGE,
            || format!("no convergence: {:?}\n{}", snapshot(), self.report()),
            || snapshot().windows(2).all(|w| w[0] == w[1]),
        );
        started.elapsed()
    }

    /// Fails if a server log holds a panic; prints its errors.
    fn check_logs(&self) {
        for r in &self.regions {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("ERROR")) {
                eprintln!("{} log: {line}", r.name);
            }
            assert!(
                !text.contains("panicked"),
                "{} panicked:\n{}",
                r.name,
                text.lines()
                    .filter(|l| l.contains("panick") || l.contains("ERROR"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// What one region's writer did.
#[derive(Default, Debug)]
struct Record {
    region: String,
    /// Sum of acknowledged / attempted INCRBY on `ctr`.
    incr_acked: i64,
    incr_tried: i64,
    /// Per field of hash `h`: acknowledged / attempted HINCRBY sums.
    hincr_acked: [i64; 4],
    hincr_tried: [i64; 4],
    /// SADD to `members`.
    members_acked: Vec<String>,
    members_tried: Vec<String>,
    /// SET of unique keys: (key, value).
    keys_acked: Vec<(String, String)>,
    /// RPUSH to this region's own list and to the shared `events`, in
    /// order.
    own_acked: Vec<String>,
    own_tried: Vec<String>,
    events_acked: Vec<String>,
    events_tried: Vec<String>,
    failed: u64,
    /// The first few errors, for the report.
    errors: Vec<String>,
}

/// A writer thread on one region.
struct Writer {
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Record>,
}

fn own_list(region: &str) -> String {
    format!("list:{region}")
}

/// Starts one writer per region.
fn start_writers(wan: &Wan) -> Vec<Writer> {
    wan.regions
        .iter()
        .map(|r| {
            let acked = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let port = r.port.clone();
            let name = r.name.clone();
            let (a, s) = (acked.clone(), stop.clone());
            let thread = std::thread::spawn(move || write_loop(&name, &port, &a, &s));
            Writer {
                acked,
                stop,
                thread,
            }
        })
        .collect()
}

fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    c.set_write_timeout(Some(Duration::from_secs(20))).ok()?;
    Some(c)
}

/// Writes until told to stop, following the region across restarts.
fn write_loop(region: &str, port: &AtomicU16, acked: &AtomicU64, stop: &AtomicBool) -> Record {
    let mut rec = Record {
        region: region.to_string(),
        ..Record::default()
    };
    let mut rng = fastrand::Rng::with_seed(u64::from(region.as_bytes()[0]));
    let mut conn: Option<redis::Connection> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            let p = port.load(Ordering::SeqCst);
            conn = if p == 0 { None } else { connect(p) };
            if conn.is_none() {
                // The region is down: poll for it to come back.
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        };
        i += 1;
        let v = format!("{region}-{i}");
        let ok = match i % 6 {
            0 => {
                let by = rng.i64(1..10);
                rec.incr_tried += by;
                let ok = redis::cmd("INCRBY")
                    .arg("ctr")
                    .arg(by)
                    .query::<i64>(c)
                    .map(drop);
                if ok.is_ok() {
                    rec.incr_acked += by;
                }
                ok
            }
            1 => {
                rec.members_tried.push(v.clone());
                let ok = redis::cmd("SADD")
                    .arg("members")
                    .arg(&v)
                    .query::<i64>(c)
                    .map(drop);
                if ok.is_ok() {
                    rec.members_acked.push(v);
                }
                ok
            }
            2 => {
                let k = format!("k:{v}");
                let ok = redis::cmd("SET").arg(&k).arg(&v).query::<()>(c).map(drop);
                if ok.is_ok() {
                    rec.keys_acked.push((k, v));
                }
                ok
            }
            3 => {
                rec.own_tried.push(v.clone());
                let ok = redis::cmd("RPUSH")
                    .arg(own_list(region))
                    .arg(&v)
                    .query::<i64>(c)
                    .map(drop);
                if ok.is_ok() {
                    rec.own_acked.push(v);
                }
                ok
            }
            4 => {
                let f = rng.usize(0..4);
                let by = rng.i64(1..5);
                rec.hincr_tried[f] += by;
                let ok = redis::cmd("HINCRBY")
                    .arg("h")
                    .arg(format!("f{f}"))
                    .arg(by)
                    .query::<i64>(c)
                    .map(drop);
                if ok.is_ok() {
                    rec.hincr_acked[f] += by;
                }
                ok
            }
            _ => {
                rec.events_tried.push(v.clone());
                let ok = redis::cmd("RPUSH")
                    .arg("events")
                    .arg(&v)
                    .query::<i64>(c)
                    .map(drop);
                if ok.is_ok() {
                    rec.events_acked.push(v);
                }
                ok
            }
        };
        if let Err(e) = &ok {
            if rec.errors.len() < 5 {
                rec.errors.push(format!("{}: {e}", i % 6));
            }
        }
        if ok.is_ok() {
            acked.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(PACE);
        } else {
            // Down, killed, or refusing: start over with a new connection.
            rec.failed += 1;
            conn = None;
        }
    }
    rec
}

fn acked(writers: &[Writer]) -> Vec<u64> {
    writers
        .iter()
        .map(|w| w.acked.load(Ordering::SeqCst))
        .collect()
}

/// Waits until each writer in `which` has `n` more acknowledged writes.
fn await_progress(writers: &[Writer], which: &[usize], n: u64) {
    let start = acked(writers);
    wait_until(
        WAIT,
        || {
            format!(
                "writers {which:?} stalled: {:?} from {start:?}",
                acked(writers)
            )
        },
        || {
            let now = acked(writers);
            which.iter().all(|&i| now[i] >= start[i] + n)
        },
    );
}

fn stop_writers(writers: Vec<Writer>) -> Vec<Record> {
    for w in &writers {
        w.stop.store(true, Ordering::SeqCst);
    }
    writers
        .into_iter()
        .map(|w| w.thread.join().expect("writer"))
        .collect()
}

/// Whether `small` appears in `big` in order.
fn is_subsequence(small: &[String], big: &[String]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

/// Checks every acknowledged write in every region (see the module
/// documentation).
fn verify(wan: &Wan, records: &[Record]) {
    for i in 0..wan.n() {
        let name = &wan.regions[i].name;
        let mut c = wan.conn(i);
        // Counter: every acknowledged increment counts, nothing beyond
        // what was attempted.
        let lo: i64 = records.iter().map(|r| r.incr_acked).sum();
        let hi: i64 = records.iter().map(|r| r.incr_tried).sum();
        let ctr: Option<i64> = redis::cmd("GET").arg("ctr").query(&mut c).expect("get");
        let ctr = ctr.unwrap_or(0);
        assert!(
            lo <= ctr && ctr <= hi,
            "{name}: ctr {ctr} outside acknowledged {lo} ..= attempted {hi}"
        );
        let h: HashMap<String, i64> = redis::cmd("HGETALL").arg("h").query(&mut c).expect("h");
        for f in 0..4 {
            let lo: i64 = records.iter().map(|r| r.hincr_acked[f]).sum();
            let hi: i64 = records.iter().map(|r| r.hincr_tried[f]).sum();
            let v = h.get(&format!("f{f}")).copied().unwrap_or(0);
            assert!(
                lo <= v && v <= hi,
                "{name}: h.f{f} {v} outside acknowledged {lo} ..= attempted {hi}"
            );
        }
        // Add-only set.
        let members: HashSet<String> = redis::cmd("SMEMBERS")
            .arg("members")
            .query(&mut c)
            .expect("smembers");
        let tried: HashSet<&String> = records.iter().flat_map(|r| &r.members_tried).collect();
        for r in records {
            for m in &r.members_acked {
                assert!(members.contains(m), "{name}: acknowledged SADD {m} lost");
            }
        }
        for m in &members {
            assert!(tried.contains(m), "{name}: member {m} never written");
        }
        // Unique keys.
        let keys: Vec<&(String, String)> = records.iter().flat_map(|r| &r.keys_acked).collect();
        for chunk in keys.chunks(500) {
            let mut cmd = redis::cmd("MGET");
            for (k, _) in chunk {
                cmd.arg(k);
            }
            let got: Vec<Option<String>> = cmd.query(&mut c).expect("mget");
            for ((k, v), g) in chunk.iter().zip(got) {
                assert_eq!(
                    g.as_deref(),
                    Some(v.as_str()),
                    "{name}: acknowledged SET {k} lost"
                );
            }
        }
        // Lists: per region, in push order.
        let events: Vec<String> = redis::cmd("LRANGE")
            .arg("events")
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .expect("lrange");
        for r in records {
            let own: Vec<String> = redis::cmd("LRANGE")
                .arg(own_list(&r.region))
                .arg(0)
                .arg(-1)
                .query(&mut c)
                .expect("lrange");
            assert!(
                is_subsequence(&r.own_acked, &own),
                "{name}: {}'s acknowledged pushes missing or out of order in {}",
                r.region,
                own_list(&r.region)
            );
            assert!(
                is_subsequence(&own, &r.own_tried),
                "{name}: {} holds elements never pushed, or out of order",
                own_list(&r.region)
            );
            let prefix = format!("{}-", r.region);
            let mine: Vec<String> = events
                .iter()
                .filter(|e| e.starts_with(&prefix))
                .cloned()
                .collect();
            assert!(
                is_subsequence(&r.events_acked, &mine),
                "{name}: {}'s acknowledged pushes to events missing or out of order",
                r.region
            );
            assert!(
                is_subsequence(&mine, &r.events_tried),
                "{name}: events holds {}'s elements never pushed, or out of order",
                r.region
            );
        }
    }
}

/// Stops the writers, waits for convergence, checks everything; returns
/// the records.
fn finish(wan: &Wan, writers: Vec<Writer>, what: &str, started: Instant) -> Vec<Record> {
    let records = stop_writers(writers);
    let took = wan.await_convergence();
    verify(wan, &records);
    wan.check_logs();
    let acked: Vec<usize> = records
        .iter()
        .map(|r| {
            r.members_acked.len() + r.keys_acked.len() + r.own_acked.len() + r.events_acked.len()
        })
        .collect();
    eprintln!(
        "{what}: converged {took:?} after the writers stopped; {:?} s in all; non-counter writes acknowledged per region {acked:?}; failed {:?}",
        started.elapsed().as_secs_f64(),
        records.iter().map(|r| r.failed).collect::<Vec<_>>()
    );
    for r in &records {
        if !r.errors.is_empty() {
            eprintln!("{what}: {} writer errors: {:?}", r.region, r.errors);
        }
    }
    records
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A few milliseconds of WAN everywhere.
fn base_link() -> LinkConditions {
    LinkConditions::delayed(ms(3)).with_jitter(ms(1))
}

#[test]
fn a_region_down_for_a_while_comes_back_with_everything() {
    let started = Instant::now();
    let mut wan = Wan::start(&["us", "eu", "asia"], base_link(), &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1, 2], 500);
    wan.terminate(2);
    // us and eu go on without asia for a few seconds.
    await_progress(&writers, &[0, 1], 3000);
    wan.restart(2);
    // asia catches up with what it missed while taking writes again.
    let us_now = wan.seen(0, 0);
    wait_until(
        WAIT,
        || format!("asia did not catch up: {}", wan.report()),
        || wan.seen(2, 0) >= us_now,
    );
    await_progress(&writers, &[0, 1, 2], 200);
    finish(&wan, writers, "region down then back", started);
}

#[test]
fn a_split_brain_of_two_heals_after_the_links_drop() {
    let started = Instant::now();
    let wan = Wan::start(&["us", "eu"], base_link(), &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1], 200);
    for r in wan.link(0, 1) {
        r.cut(Direction::Both);
    }
    // Both sides take writes, and both links notice the partition (idle
    // timeout or unacknowledged segments), which takes about 30 s.
    wait_until(
        WAIT,
        || format!("links never went down: {}", wan.report()),
        || {
            (0..2).all(|i| {
                let info = wan.info(i, "replication");
                !info.contains("link=up")
            })
        },
    );
    let us_saw_eu = wan.seen(0, 1);
    let eu_saw_us = wan.seen(1, 0);
    await_progress(&writers, &[0, 1], 100);
    assert_eq!(wan.seen(0, 1), us_saw_eu, "eu's writes crossed a cut link");
    assert_eq!(wan.seen(1, 0), eu_saw_us, "us's writes crossed a cut link");
    assert!(wan.seen(0, 0) > eu_saw_us && wan.seen(1, 1) > us_saw_eu);
    for r in wan.link(0, 1) {
        r.heal();
    }
    wan.await_links_up();
    await_progress(&writers, &[0, 1], 200);
    finish(&wan, writers, "split brain of two", started);
}

#[test]
fn a_link_cut_one_way_heals() {
    let started = Instant::now();
    let wan = Wan::start(&["us", "eu"], base_link(), &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1], 200);
    // us's datagrams to eu on us's link are dropped (eu's answers would
    // pass); eu's link to us is untouched.
    wan.relay(0, 1).cut(Direction::Forward);
    await_progress(&writers, &[0, 1], 100);
    let eu_saw_us = wan.seen(1, 0);
    let eu_at = wan.seen(1, 1);
    await_progress(&writers, &[0, 1], 1500);
    wait_until(
        WAIT,
        || format!("eu's writes stopped reaching us: {}", wan.report()),
        || wan.seen(0, 1) > eu_at,
    );
    assert_eq!(wan.seen(1, 0), eu_saw_us, "us's writes crossed a cut");
    wan.relay(0, 1).heal();
    await_progress(&writers, &[0, 1], 200);
    finish(&wan, writers, "one-way cut", started);
}

#[test]
fn three_regions_split_two_plus_one_and_heal() {
    let started = Instant::now();
    let wan = Wan::start(&["us", "eu", "asia"], base_link(), &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1, 2], 200);
    for other in [0, 1] {
        for r in wan.link(2, other) {
            r.cut(Direction::Both);
        }
    }
    // (What was already delivered when the cut came is applied by now.)
    await_progress(&writers, &[0, 1, 2], 100);
    let asia_saw_us = wan.seen(2, 0);
    // us and eu may still relay asia's last operations to each other.
    let asia_reached = wan.seen(0, 2).max(wan.seen(1, 2));
    let eu_saw_us = wan.seen(1, 0);
    await_progress(&writers, &[0, 1, 2], 2500);
    // us and eu still replicate to each other; asia is alone.
    let us_now = wan.seen(0, 0);
    wait_until(
        WAIT,
        || format!("us and eu stopped replicating: {}", wan.report()),
        || wan.seen(1, 0) >= us_now,
    );
    assert!(us_now > eu_saw_us);
    assert_eq!(wan.seen(2, 0), asia_saw_us, "us reached a cut-off asia");
    assert_eq!(wan.seen(0, 2), asia_reached, "a cut-off asia reached us");
    assert_eq!(wan.seen(1, 2), asia_reached, "a cut-off asia reached eu");
    assert!(
        wan.seen(2, 2) > asia_reached,
        "asia took no writes while cut off"
    );
    for other in [0, 1] {
        for r in wan.link(2, other) {
            r.heal();
        }
    }
    await_progress(&writers, &[0, 1, 2], 200);
    finish(&wan, writers, "split 2+1", started);
}

/// Smallest round-trip time region `i` reports over its links (0 when a
/// link has none yet).
fn min_rtt_ms(wan: &Wan, i: usize) -> f64 {
    wan.info(i, "replication")
        .lines()
        .filter(|l| l.starts_with("peer"))
        .map(|l| {
            l.split(',')
                .find_map(|f| f.strip_prefix("rtt_ms="))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Largest round-trip time region `i` reports over its links.
fn max_rtt_ms(wan: &Wan, i: usize) -> f64 {
    wan.info(i, "replication")
        .lines()
        .filter(|l| l.starts_with("peer"))
        .filter_map(|l| {
            l.split(',')
                .find_map(|f| f.strip_prefix("rtt_ms="))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .fold(0.0, f64::max)
}

#[test]
fn latency_spiking_tenfold_and_back() {
    let started = Instant::now();
    let normal = LinkConditions::delayed(ms(5)).with_jitter(ms(1));
    let spike = LinkConditions::delayed(ms(50)).with_jitter(ms(10));
    let wan = Wan::start(&["us", "eu", "asia"], normal, &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1, 2], 200);
    for r in wan.every_relay() {
        r.set(Direction::Both, spike);
    }
    // Every link's measured round trip reflects the spike (2 × 50 ms).
    wait_until(
        WAIT,
        || format!("the spike never showed: {}", wan.report()),
        || (0..3).all(|i| min_rtt_ms(&wan, i) >= 80.0),
    );
    await_progress(&writers, &[0, 1, 2], 300);
    for r in wan.every_relay() {
        r.set(Direction::Both, normal);
    }
    wait_until(
        WAIT,
        || format!("round trips never came back down: {}", wan.report()),
        || (0..3).all(|i| max_rtt_ms(&wan, i) < 50.0),
    );
    await_progress(&writers, &[0, 1, 2], 200);
    finish(&wan, writers, "latency spike", started);
}

#[test]
fn ten_percent_datagram_loss_on_every_link() {
    let started = Instant::now();
    let lossy = base_link().with_loss(0.10);
    let wan = Wan::start(&["us", "eu", "asia"], lossy, &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1, 2], 3000);
    // The loss stays on while the regions converge.
    finish(&wan, writers, "10 % loss", started);
    let (mut passed, mut lost) = (0, 0);
    for r in wan.every_relay() {
        let s = r.stats();
        passed += s.forward.passed + s.backward.passed;
        lost += s.forward.lost + s.backward.lost;
    }
    let rate = lost as f64 / (passed + lost) as f64;
    assert!(
        (0.07..0.13).contains(&rate),
        "relays dropped {lost} of {} datagrams",
        passed + lost
    );
}

#[test]
fn a_region_killed_with_sigkill_mid_stream_21_times() {
    const KILLS: usize = 21;
    let started = Instant::now();
    let victim = 1;
    let mut wan = Wan::start(
        &["us", "eu", "asia"],
        base_link(),
        &["--snapshot-every-ops", "2000"],
    );
    let writers = start_writers(&wan);
    let mut rng = fastrand::Rng::with_seed(21);
    await_progress(&writers, &[0, 1, 2], 100);
    for round in 0..KILLS {
        // Mid-stream: eu takes writes and ships them (while it receives
        // the others', when their links to it are up); kill it after a
        // random number of its writes.
        let us_saw_eu = wan.seen(0, victim);
        await_progress(&writers, &[victim], rng.u64(10..200));
        wait_until(
            WAIT,
            || format!("round {round}: eu's writes never left: {}", wan.report()),
            || wan.seen(0, victim) > us_saw_eu,
        );
        wan.kill9(victim);
        // Sometimes the others write on for a while before eu is back.
        if rng.bool() {
            await_progress(&writers, &[0, 2], rng.u64(10..100));
        }
        wan.restart(victim);
    }
    await_progress(&writers, &[0, 1, 2], 200);
    finish(&wan, writers, "SIGKILL x21", started);
}

/// Known bug (see the WAN report): a region that dialed a peer keeps its
/// QUIC connection to the peer's dead process after the peer restarts
/// from a SIGKILL, until the 30 s idle timeout; until then the restarted
/// region receives none of that region's writes. (A stopped region closes
/// its connections, so SIGTERM does not show it; nor does a kill while the
/// link is still connecting.)
#[test]
fn peers_resume_shipping_to_a_region_restarted_after_sigkill_within_seconds() {
    let started = Instant::now();
    let mut wan = Wan::start(&["us", "eu"], base_link(), &[]);
    let writers = start_writers(&wan);
    await_progress(&writers, &[0, 1], 200);
    wan.kill9(1);
    wan.restart(1);
    let eu_saw_us = wan.seen(1, 0);
    let restarted = Instant::now();
    wait_until(
        WAIT,
        || format!("us never shipped to eu again: {}", wan.report()),
        || wan.seen(1, 0) > eu_saw_us,
    );
    let took = restarted.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "us resumed shipping to the restarted eu only after {took:?}"
    );
    finish(&wan, writers, "resume after SIGKILL", started);
}

// The relay on its own.

async fn echo_server() -> SocketAddr {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn relay_to(target: SocketAddr, f: LinkConditions, b: LinkConditions) -> RelayHandle {
    Relay::start("127.0.0.1:0".parse().expect("addr"), target, f, b)
        .await
        .expect("relay")
}

async fn client_of(relay: &RelayHandle) -> tokio::net::UdpSocket {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    s.connect(relay.local_addr()).await.expect("connect");
    s
}

async fn recv(s: &tokio::net::UdpSocket, within: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(within, s.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn relay_carries_each_client_both_ways() {
    let relay = relay_to(
        echo_server().await,
        LinkConditions::CLEAR,
        LinkConditions::CLEAR,
    )
    .await;
    let (a, b) = (client_of(&relay).await, client_of(&relay).await);
    a.send(b"from a").await.expect("send");
    b.send(b"from b").await.expect("send");
    assert_eq!(recv(&a, ms(5000)).await.as_deref(), Some(&b"from a"[..]));
    assert_eq!(recv(&b, ms(5000)).await.as_deref(), Some(&b"from b"[..]));
    let s = relay.stats();
    assert_eq!((s.forward.passed, s.backward.passed, s.clients), (2, 2, 2));
    relay.stop();
}

#[tokio::test]
async fn relay_delays_each_direction_and_keeps_order() {
    let relay = relay_to(
        echo_server().await,
        LinkConditions::delayed(ms(40)).with_jitter(ms(20)),
        LinkConditions::delayed(ms(60)),
    )
    .await;
    let a = client_of(&relay).await;
    let started = Instant::now();
    a.send(&[0]).await.expect("send");
    assert_eq!(recv(&a, ms(5000)).await, Some(vec![0]));
    let rtt = started.elapsed();
    assert!(rtt >= ms(80) && rtt < ms(400), "{rtt:?}");
    for i in 1..=100u8 {
        a.send(&[i]).await.expect("send");
    }
    for i in 1..=100u8 {
        assert_eq!(recv(&a, ms(5000)).await, Some(vec![i]), "reordered");
    }
}

#[tokio::test]
async fn relay_cuts_one_way_drops_at_random_and_heals() {
    let relay = relay_to(
        echo_server().await,
        LinkConditions::CLEAR,
        LinkConditions::CLEAR,
    )
    .await;
    let a = client_of(&relay).await;
    relay.cut(Direction::Backward);
    a.send(b"x").await.expect("send");
    assert_eq!(recv(&a, ms(300)).await, None);
    let s = relay.stats();
    assert_eq!((s.forward.passed, s.backward.cut), (1, 1));
    relay.heal();
    a.send(b"y").await.expect("send");
    assert_eq!(recv(&a, ms(5000)).await.as_deref(), Some(&b"y"[..]));
    // A cut also drops what is still waiting in the delay queue.
    relay.set_forward(LinkConditions::delayed(ms(200)));
    a.send(b"late").await.expect("send");
    relay.cut(Direction::Forward);
    assert_eq!(recv(&a, ms(500)).await, None);
    assert_eq!(relay.stats().forward.cut, 1);
    relay.set_forward(LinkConditions::CLEAR.with_loss(0.5));
    for _ in 0..400 {
        a.send(b"z").await.expect("send");
    }
    let mut got = 0;
    while recv(&a, ms(300)).await.is_some() {
        got += 1;
    }
    assert!(
        (100..300).contains(&got),
        "{got} of 400 passed at 50 % loss"
    );
    assert_eq!(relay.stats().forward.lost + got, 400);
}

#[tokio::test]
async fn relay_survives_its_target_going_away_and_coming_back() {
    let gone = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = gone.local_addr().expect("addr");
    drop(gone);
    let relay = relay_to(target, LinkConditions::CLEAR, LinkConditions::CLEAR).await;
    let a = client_of(&relay).await;
    for _ in 0..5 {
        a.send(b"nobody").await.expect("send");
    }
    let back = tokio::net::UdpSocket::bind(target).await.expect("rebind");
    let deadline = Instant::now() + ms(5000);
    let mut buf = [0u8; 64];
    loop {
        a.send(b"hello").await.expect("send");
        if let Ok(Ok((n, from))) = tokio::time::timeout(ms(50), back.recv_from(&mut buf)).await {
            // (Earlier datagrams may still have been on their way.)
            if &buf[..n] == b"hello" {
                back.send_to(b"hi", from).await.expect("reply");
                break;
            }
        }
        assert!(Instant::now() < deadline, "target never reached");
    }
    assert_eq!(recv(&a, ms(5000)).await.as_deref(), Some(&b"hi"[..]));
}
