//! Active-active replication between real `braid-server` processes over
//! real QUIC on loopback, driven by a real Redis client.

mod common;

use common::server::{free_udp_port, gen_certs, Braid};
use redis::Commands;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// One region of a test cluster.
struct Region {
    name: String,
    id: u16,
    udp: u16,
    server: Option<Braid>,
    dir: PathBuf,
}

/// Regions sharing one temporary root and one CA.
struct Cluster {
    root: tempfile::TempDir,
    regions: Vec<Region>,
}

impl Cluster {
    /// Regions named `names` with ids 1.., certificates from one CA.
    fn new(names: &[&str]) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        gen_certs(&root.path().join("certs"), &names.join(","));
        let regions = names
            .iter()
            .enumerate()
            .map(|(i, n)| Region {
                name: n.to_string(),
                id: i as u16 + 1,
                udp: free_udp_port(),
                server: None,
                dir: root.path().join(n),
            })
            .collect();
        Cluster { root, regions }
    }

    fn certs(&self) -> PathBuf {
        self.root.path().join("certs")
    }

    /// Starts region `i` with the given peers (indexes) and extra flags.
    fn start(&mut self, i: usize, peers: &[usize], extra: &[&str]) {
        let peer_args: Vec<String> = peers
            .iter()
            .map(|&j| {
                let p = &self.regions[j];
                format!("{}={}@127.0.0.1:{}", p.name, p.id, p.udp)
            })
            .collect();
        let r = &self.regions[i];
        let mut args: Vec<String> = vec![
            "--region".into(),
            r.name.clone(),
            "--region-id".into(),
            r.id.to_string(),
            "--replication-listen".into(),
            format!("127.0.0.1:{}", r.udp),
            "--tls-dir".into(),
            self.certs().display().to_string(),
            "--fsync".into(),
            "everysec".into(),
        ];
        for p in peer_args {
            args.push("--peer".into());
            args.push(p);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        std::fs::create_dir_all(&r.dir).expect("data dir");
        let server = Braid::start_in(&r.dir, &refs);
        self.regions[i].server = Some(server);
    }

    /// Starts every region as a full mesh.
    fn start_mesh(&mut self, extra: &[&str]) {
        let n = self.regions.len();
        for i in 0..n {
            let peers: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            self.start(i, &peers, extra);
        }
    }

    /// A client of region `i`, once it takes writes (a region starting on
    /// an empty data directory waits for a peer to greet it first).
    fn conn(&self, i: usize) -> redis::Connection {
        let mut c = self.regions[i].server.as_ref().expect("running").conn();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut c)
                .expect("info");
            if info.contains("writes:enabled") {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "region {i} never took writes: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every running region reports the same version vector and
    /// digest; panics with what each holds after `limit`.
    fn await_convergence(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let seen: Vec<(String, String)> = self
                .regions
                .iter()
                .filter(|r| r.server.is_some())
                .map(|r| {
                    let mut c = r.server.as_ref().expect("running").conn();
                    let vv: String = redis::cmd("BRAID.VV").query(&mut c).expect("vv");
                    let d: String = redis::cmd("BRAID.DIGEST").query(&mut c).expect("digest");
                    (vv, d)
                })
                .collect();
            if seen.windows(2).all(|w| w[0] == w[1]) {
                return seen[0].1.clone();
            }
            if Instant::now() > deadline {
                let info: Vec<String> = self
                    .regions
                    .iter()
                    .filter(|r| r.server.is_some())
                    .map(|r| {
                        let mut c = r.server.as_ref().expect("running").conn();
                        redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)
                            .unwrap_or_default()
                    })
                    .collect();
                panic!("regions did not converge: {seen:?}\n{}", info.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Everything a client can read, per key, in one region.
fn dump(c: &mut redis::Connection) -> BTreeMap<String, String> {
    let keys: Vec<String> = c.keys("*").expect("keys");
    let mut out = BTreeMap::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query(c).expect("type");
        let v = match t.as_str() {
            "string" => c.get::<_, String>(&k).unwrap_or_default(),
            "set" => {
                let mut m: Vec<String> = c.smembers(&k).expect("smembers");
                m.sort();
                m.join(",")
            }
            "hash" => {
                let m: BTreeMap<String, String> = c.hgetall(&k).expect("hgetall");
                format!("{m:?}")
            }
            "zset" => {
                let m: Vec<(String, f64)> = c.zrange_withscores(&k, 0, -1).expect("zrange");
                format!("{m:?}")
            }
            "list" => {
                let m: Vec<String> = c.lrange(&k, 0, -1).expect("lrange");
                m.join(",")
            }
            other => other.to_string(),
        };
        out.insert(format!("{k}:{t}"), v);
    }
    out
}

/// Random writes of every type on a few shared keys; returns the total
/// added to the shared counter `hits` and the members added to `seen`.
fn write_mix(c: &mut redis::Connection, seed: u64, n: usize) -> (i64, Vec<String>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut hits = 0;
    let mut seen = Vec::new();
    for i in 0..n {
        let k = rng.u8(0..6);
        let v = format!("v{seed}-{i}");
        let _: redis::RedisResult<redis::Value> = match rng.u8(0..12) {
            0 => {
                let by = rng.i64(1..10);
                hits += by;
                c.incr("hits", by)
            }
            1 => {
                seen.push(v.clone());
                c.sadd("seen", &v)
            }
            2 => c.set(format!("s{k}"), &v),
            3 => c.sadd(format!("set{k}"), &v),
            4 => c.srem(
                format!("set{k}"),
                format!("v{}-{}", rng.u64(0..4), rng.usize(0..=i)),
            ),
            5 => c.hset(format!("h{k}"), format!("f{}", rng.u8(0..4)), &v),
            6 => c.zadd(format!("z{k}"), &v, rng.i32(0..100)),
            7 => c.zincr(format!("z{k}"), format!("m{}", rng.u8(0..3)), 1.5),
            8 => c.lpush(format!("l{k}"), &v),
            9 => c.rpop(format!("l{k}"), None),
            10 => c.del(format!("s{k}")),
            _ => c.hincr(format!("h{k}"), "n", 2),
        };
    }
    (hits, seen)
}

#[test]
fn three_regions_take_concurrent_conflicting_writes_and_converge() {
    let mut cluster = Cluster::new(&["us", "eu", "asia"]);
    cluster.start_mesh(&[]);
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let mut c = cluster.conn(i);
            std::thread::spawn(move || write_mix(&mut c, i as u64 + 1, 1500))
        })
        .collect();
    let mut hits = 0;
    let mut seen = Vec::new();
    for h in handles {
        let (h, s) = h.join().expect("writer");
        hits += h;
        seen.extend(s);
    }
    cluster.await_convergence(Duration::from_secs(60));
    let dumps: Vec<_> = (0..3).map(|i| dump(&mut cluster.conn(i))).collect();
    assert_eq!(dumps[0], dumps[1], "us and eu read differently");
    assert_eq!(dumps[0], dumps[2], "us and asia read differently");
    // Counters: every increment made anywhere counts once.
    let total: i64 = cluster.conn(1).get("hits").expect("hits");
    assert_eq!(total, hits);
    // Add-only set: the union of every region's adds.
    let mut members: Vec<String> = cluster.conn(2).smembers("seen").expect("seen");
    members.sort();
    seen.sort();
    assert_eq!(members, seen);
}

#[test]
fn concurrent_set_resolves_to_the_same_value_everywhere() {
    let mut cluster = Cluster::new(&["us", "eu"]);
    cluster.start_mesh(&[]);
    for round in 0..20 {
        let _: () = cluster
            .conn(0)
            .set("color", format!("red{round}"))
            .expect("set");
        let _: () = cluster
            .conn(1)
            .set("color", format!("blue{round}"))
            .expect("set");
    }
    cluster.await_convergence(Duration::from_secs(30));
    let a: String = cluster.conn(0).get("color").expect("get");
    let b: String = cluster.conn(1).get("color").expect("get");
    assert_eq!(a, b);
    assert!(a == "red19" || a == "blue19", "{a}");
}

#[test]
fn a_stopped_region_catches_up_after_restart() {
    let mut cluster = Cluster::new(&["us", "eu", "asia"]);
    cluster.start_mesh(&[]);
    let _: () = cluster.conn(0).set("before", "1").expect("set");
    cluster.await_convergence(Duration::from_secs(30));
    cluster.regions[2]
        .server
        .as_mut()
        .expect("asia")
        .terminate();
    cluster.regions[2].server = None;
    for i in 0..200 {
        let _: () = cluster.conn(i % 2).incr("n", 1).expect("incr");
    }
    let _: () = cluster.conn(1).sadd("later", "x").expect("sadd");
    cluster.start(2, &[0, 1], &[]);
    cluster.await_convergence(Duration::from_secs(60));
    let n: i64 = cluster.conn(2).get("n").expect("n");
    assert_eq!(n, 200);
    let later: bool = cluster.conn(2).sismember("later", "x").expect("sismember");
    assert!(later);
}

#[test]
fn a_receiver_killed_repeatedly_mid_stream_loses_nothing() {
    let mut cluster = Cluster::new(&["us", "eu"]);
    cluster.start_mesh(&[]);
    let mut c = cluster.conn(0);
    let writer = std::thread::spawn(move || {
        for i in 0..3000 {
            let _: () = c.rpush("events", i).expect("rpush");
        }
    });
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        cluster.regions[1].server.as_mut().expect("eu").kill9();
        cluster.regions[1].server = None;
        cluster.start(1, &[0], &[]);
    }
    writer.join().expect("writer");
    cluster.await_convergence(Duration::from_secs(60));
    let len: usize = cluster.conn(1).llen("events").expect("llen");
    assert_eq!(len, 3000);
    let events: Vec<i64> = cluster.conn(1).lrange("events", 0, -1).expect("lrange");
    assert_eq!(events, (0..3000).collect::<Vec<i64>>());
}

#[test]
fn hub_and_spoke_with_forwarding_converges() {
    let mut cluster = Cluster::new(&["hub", "a", "b"]);
    cluster.start(0, &[1, 2], &["--forward"]);
    cluster.start(1, &[0], &[]);
    cluster.start(2, &[0], &[]);
    for i in 0..50 {
        let _: () = cluster.conn(1).incr("x", 1).expect("incr");
        let _: () = cluster.conn(2).incr("x", 2).expect("incr");
        let _: () = cluster.conn(i % 3).sadd("m", i).expect("sadd");
    }
    cluster.await_convergence(Duration::from_secs(60));
    let x: i64 = cluster.conn(2).get("x").expect("x");
    assert_eq!(x, 150);
    let m: usize = cluster.conn(1).scard("m").expect("scard");
    assert_eq!(m, 50);
}

#[test]
fn ring_topology_converges() {
    let mut cluster = Cluster::new(&["r1", "r2", "r3", "r4"]);
    for i in 0..4 {
        cluster.start(i, &[(i + 1) % 4, (i + 3) % 4], &["--forward"]);
    }
    for i in 0..4 {
        let _: () = cluster.conn(i).hset("h", format!("f{i}"), i).expect("hset");
    }
    cluster.await_convergence(Duration::from_secs(60));
    let len: usize = cluster.conn(0).hlen("h").expect("hlen");
    assert_eq!(len, 4);
}

#[test]
fn multi_tier_topology_converges() {
    // Tier 1: us and eu in a mesh, forwarding. Tier 2: us-west attached to
    // us, eu-north attached to eu.
    let mut cluster = Cluster::new(&["us", "eu", "us-west", "eu-north"]);
    cluster.start(0, &[1, 2], &["--forward"]);
    cluster.start(1, &[0, 3], &["--forward"]);
    cluster.start(2, &[0], &[]);
    cluster.start(3, &[1], &[]);
    for i in 0..4 {
        let _: () = cluster.conn(i).incr("visits", 1 + i as i64).expect("incr");
        let _: () = cluster
            .conn(i)
            .rpush(format!("log{i}"), "x")
            .expect("rpush");
    }
    cluster.await_convergence(Duration::from_secs(60));
    let v: i64 = cluster.conn(3).get("visits").expect("visits");
    assert_eq!(v, 10);
    let d0 = dump(&mut cluster.conn(2));
    assert_eq!(d0, dump(&mut cluster.conn(3)));
    assert_eq!(d0.len(), 5);
}

#[test]
fn a_mesh_relays_around_a_missing_link() {
    // us and asia do not list each other: eu relays after relay_after_ms.
    let mut cluster = Cluster::new(&["us", "eu", "asia"]);
    cluster.start(0, &[1], &[]);
    cluster.start(1, &[0, 2], &[]);
    cluster.start(2, &[1], &[]);
    let _: () = cluster.conn(0).set("from-us", "1").expect("set");
    let _: () = cluster.conn(2).set("from-asia", "1").expect("set");
    cluster.await_convergence(Duration::from_secs(30));
    let got: Option<String> = cluster.conn(2).get("from-us").expect("get");
    assert_eq!(got.as_deref(), Some("1"));
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let mut cluster = Cluster::new(&["us", "eu"]);
    // eu presents a certificate from a different CA with the right name.
    let rogue = tempfile::tempdir().expect("temp dir");
    gen_certs(rogue.path(), "us,eu");
    cluster.start(0, &[1], &[]);
    let us = &cluster.regions[0];
    let eu = &cluster.regions[1];
    std::fs::create_dir_all(&eu.dir).expect("dir");
    let rogue_eu = Braid::start_in(
        &eu.dir,
        &[
            "--region",
            "eu",
            "--region-id",
            "2",
            "--replication-listen",
            &format!("127.0.0.1:{}", eu.udp),
            "--tls-dir",
            &rogue.path().display().to_string(),
            "--peer",
            &format!("us=1@127.0.0.1:{}", us.udp),
        ],
    );
    let mut rc = rogue_eu.conn();
    // No peer ever greets the rogue region: it takes writes once its
    // start-up wait for peers has passed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rc.set::<_, _, ()>("rogue", "1").is_err() {
        assert!(Instant::now() < deadline, "rogue region never took writes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _: () = cluster.conn(0).set("legit", "1").expect("set");
    // Both sides keep trying; give them time to (fail to) connect.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut us_conn = cluster.conn(0);
    while Instant::now() < deadline {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut us_conn)
            .expect("info");
        assert!(!info.contains("inbound=up"), "rogue link accepted: {info}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let leaked: Option<String> = us_conn.get("rogue").expect("get");
    assert_eq!(leaked, None, "a write from the rogue region reached us");
    let leaked: Option<String> = rc.get("legit").expect("get");
    assert_eq!(leaked, None, "us replicated to the rogue region");
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut us_conn)
        .expect("info");
    assert!(
        info.contains("link=connecting") || info.contains("link=down"),
        "{info}"
    );
}

#[test]
fn a_new_region_joins_a_running_cluster_from_a_snapshot() {
    let mut cluster = Cluster::new(&["us", "eu", "asia"]);
    // us and eu snapshot often, so their logs are truncated.
    cluster.start(0, &[1], &["--snapshot-every-ops", "50"]);
    cluster.start(1, &[0], &["--snapshot-every-ops", "50"]);
    for i in 0..400 {
        let _: () = cluster.conn(i % 2).set(format!("k{i}"), i).expect("set");
    }
    let _: () = cluster.conn(0).incr("total", 7).expect("incr");
    cluster.await_convergence(Duration::from_secs(30));
    // Wait until us has truncated its log (a snapshot and eu's ack).
    wait_for_info(&cluster, 0, "persistence", |i| {
        !i.contains("snapshots_written:0")
    });
    // asia is in no one's configuration: it dials them, they dial back.
    cluster.start(2, &[0, 1], &[]);
    cluster.await_convergence(Duration::from_secs(60));
    let mut asia = cluster.conn(2);
    let n: usize = redis::cmd("DBSIZE").query(&mut asia).expect("dbsize");
    assert_eq!(n, 401);
    let _: () = asia.incr("total", 3).expect("incr");
    cluster.await_convergence(Duration::from_secs(30));
    let total: i64 = cluster.conn(0).get("total").expect("total");
    assert_eq!(total, 10);
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut asia)
        .expect("info");
    assert!(
        info.contains("name=us") && info.contains("name=eu"),
        "{info}"
    );
}

#[test]
fn a_joining_region_far_behind_gets_a_snapshot_even_from_a_full_log() {
    let mut cluster = Cluster::new(&["us", "eu", "asia"]);
    // Logs are never truncated here: only `join_snapshot_ops` sends the
    // snapshot.
    let config = cluster.root.path().join("join.toml");
    std::fs::write(&config, "[replication]\njoin_snapshot_ops = 100\n").expect("config");
    let config = config.display().to_string();
    for i in 0..2 {
        cluster.start(i, &[1 - i], &["--config", &config]);
    }
    for i in 0..300 {
        let _: () = cluster.conn(i % 2).set(format!("k{i}"), i).expect("set");
    }
    cluster.await_convergence(Duration::from_secs(30));
    cluster.start(2, &[0, 1], &[]);
    cluster.await_convergence(Duration::from_secs(60));
    let n: usize = redis::cmd("DBSIZE")
        .query(&mut cluster.conn(2))
        .expect("dbsize");
    assert_eq!(n, 300);
    let snapshots_sent = |cluster: &Cluster| -> u64 {
        (0..2)
            .map(|i| {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut cluster.conn(i))
                    .expect("info");
                info.lines()
                    .filter(|l| l.contains("name=asia"))
                    .filter_map(|l| l.split(',').find_map(|f| f.strip_prefix("snapshots_sent=")))
                    .map(|v| v.parse::<u64>().expect("counter"))
                    .sum::<u64>()
            })
            .sum()
    };
    let sent = snapshots_sent(&cluster);
    assert!(sent >= 1, "no snapshot was sent to the joining region");
    // Once asia holds data, a reconnect ships the log again.
    let asia = cluster.regions[2].server.as_mut().expect("asia");
    asia.terminate();
    asia.restart();
    let _: () = cluster.conn(0).set("after", 1).expect("set");
    cluster.await_convergence(Duration::from_secs(30));
    assert_eq!(
        snapshots_sent(&cluster),
        sent,
        "a region holding data got another snapshot"
    );
}

#[test]
fn a_region_that_lost_its_disk_recovers_its_numbering_from_peers() {
    let mut cluster = Cluster::new(&["us", "eu"]);
    cluster.start_mesh(&["--snapshot-every-ops", "20"]);
    for _ in 0..30 {
        let _: () = cluster.conn(1).incr("n", 1).expect("incr");
    }
    cluster.await_convergence(Duration::from_secs(30));
    cluster.regions[1].server.as_mut().expect("eu").kill9();
    cluster.regions[1].server = None;
    std::fs::remove_dir_all(&cluster.regions[1].dir).expect("wipe eu");
    for _ in 0..30 {
        let _: () = cluster.conn(0).incr("n", 1).expect("incr");
    }
    // eu comes back empty: it must learn that its own numbering reached 30
    // (from us, by snapshot or log) before writing again.
    cluster.start(1, &[0], &[]);
    for _ in 0..5 {
        let _: () = cluster.conn(1).incr("n", 1).expect("incr");
    }
    cluster.await_convergence(Duration::from_secs(60));
    let n: i64 = cluster.conn(0).get("n").expect("n");
    assert_eq!(n, 65, "an increment was lost or a sequence number reused");
    let mut eu = cluster.conn(1);
    let vv: String = redis::cmd("BRAID.VV").query(&mut eu).expect("vv");
    assert!(vv.contains("2=35"), "{vv}");
}

/// Waits until region `i`'s INFO section satisfies `ok`.
fn wait_for_info(cluster: &Cluster, i: usize, section: &str, ok: impl Fn(&str) -> bool) {
    let mut c = cluster.conn(i);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO").arg(section).query(&mut c).expect("info");
        if ok(&info) {
            return;
        }
        assert!(Instant::now() < deadline, "condition never held: {info}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gen_certs_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("temp dir");
    gen_certs(dir.path(), "us,eu");
    let out = Command::new(env!("CARGO_BIN_EXE_braid-server"))
        .args(["gen-certs", "--regions", "us", "--out"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}
