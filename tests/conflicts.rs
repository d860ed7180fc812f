//! The conflict journal against real replicating `braid-server` processes.
//!
//! Regions talk through `braid::relay` relays. Each test cuts every link,
//! makes the regions write the same key concurrently, heals, waits for
//! convergence, and checks that `BRAID.CONFLICTS` on every region returns
//! the same entries (compared as sets) with the expected rule, winner and
//! loser, and that `INFO conflicts` counts them.

mod common;

use braid::relay::{Direction, LinkConditions, RelayHandle};
use common::server::{free_udp_port, gen_certs, start_relay, wait_until, Braid};
use redis::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// How long anything awaited may take.
const WAIT: Duration = Duration::from_secs(60);

/// Regions in a full mesh, each directed link through its own relay.
struct Mesh {
    servers: Vec<Braid>,
    relays: Vec<RelayHandle>,
    _certs: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl Mesh {
    fn start(names: &[&str]) -> Mesh {
        let certs = tempfile::tempdir().expect("temp dir");
        gen_certs(certs.path(), &names.join(","));
        let udp: Vec<u16> = names.iter().map(|_| free_udp_port()).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut relays = Vec::new();
        let mut peer_args: Vec<Vec<String>> = vec![Vec::new(); names.len()];
        for (a, args) in peer_args.iter_mut().enumerate() {
            for (b, name) in names.iter().enumerate() {
                if a == b {
                    continue;
                }
                let target = SocketAddr::from(([127, 0, 0, 1], udp[b]));
                let link = LinkConditions::delayed(Duration::from_millis(1));
                let relay = start_relay(&rt, target, link, &udp);
                args.push("--peer".into());
                args.push(format!("{name}={}@{}", b + 1, relay.local_addr()));
                relays.push(relay);
            }
        }
        let servers = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut args: Vec<String> = vec![
                    "--region".into(),
                    name.to_string(),
                    "--region-id".into(),
                    (i + 1).to_string(),
                    "--replication-listen".into(),
                    format!("127.0.0.1:{}", udp[i]),
                    "--tls-dir".into(),
                    certs.path().display().to_string(),
                    "--fsync".into(),
                    "no".into(),
                ];
                args.extend(peer_args[i].iter().cloned());
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                Braid::start(&refs)
            })
            .collect();
        let mesh = Mesh {
            servers,
            relays,
            _certs: certs,
            _rt: rt,
        };
        for i in 0..mesh.servers.len() {
            let mut c = mesh.conn(i);
            wait_until(
                WAIT,
                || format!("region {i} never took writes"),
                || {
                    redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut c)
                        .is_ok_and(|info| {
                            info.contains("writes:enabled")
                                && info
                                    .lines()
                                    .filter(|l| l.starts_with("peer") && l.contains("link=up"))
                                    .count()
                                    == mesh.servers.len() - 1
                        })
                },
            );
        }
        mesh
    }

    fn conn(&self, i: usize) -> redis::Connection {
        let c = self.servers[i].conn();
        let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
        c
    }

    /// Runs a command on region `i`.
    fn run<T: redis::FromRedisValue>(&self, i: usize, words: &[&str]) -> T {
        let mut cmd = redis::cmd(words[0]);
        for w in &words[1..] {
            cmd.arg(*w);
        }
        cmd.query(&mut self.conn(i))
            .unwrap_or_else(|e| panic!("{words:?} on region {i}: {e}"))
    }

    /// Cuts every link both ways.
    fn cut(&self) {
        for r in &self.relays {
            r.cut(Direction::Both);
        }
    }

    fn heal(&self) {
        for r in &self.relays {
            r.heal();
        }
    }

    /// Waits until every region has the same version vector and digest.
    fn await_convergence(&self) {
        let state = || -> Vec<(String, String)> {
            (0..self.servers.len())
                .map(|i| (self.run(i, &["BRAID.VV"]), self.run(i, &["BRAID.DIGEST"])))
                .collect()
        };
        wait_until(
            WAIT,
            || format!("no convergence: {:?}", state()),
            || state().windows(2).all(|w| w[0] == w[1]),
        );
    }

    /// Every region's journal, as sets of entries; asserted identical.
    fn journal(&self, args: &[&str]) -> BTreeSet<Entry> {
        let mut words = vec!["BRAID.CONFLICTS"];
        words.extend_from_slice(args);
        let all: Vec<BTreeSet<Entry>> = (0..self.servers.len())
            .map(|i| entries(&self.run::<Value>(i, &words)).into_iter().collect())
            .collect();
        for (i, j) in all.iter().enumerate().skip(1) {
            assert_eq!(j, &all[0], "region {} and region 1 disagree", i + 1);
        }
        all.into_iter().next().unwrap_or_default()
    }

    /// Writes and reads that set a key up, replicated everywhere.
    fn prepare(&self, words: &[&[&str]]) {
        for w in words {
            let _: Value = self.run(0, w);
        }
        self.await_convergence();
    }

    /// Cuts the links, runs `writes` (region, command) one after the other
    /// (a few milliseconds apart, so later ones have later stamps), heals,
    /// and waits for convergence.
    fn race(&self, writes: &[(usize, &[&str])]) {
        self.cut();
        for (i, w) in writes {
            std::thread::sleep(Duration::from_millis(5));
            let _: Value = self.run(*i, w);
        }
        self.heal();
        self.await_convergence();
    }
}

/// One journal entry as `BRAID.CONFLICTS` returns it (field → value).
type Entry = BTreeMap<String, String>;

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn entries(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else {
        panic!("BRAID.CONFLICTS returned {v:?}");
    };
    items
        .iter()
        .map(|e| match e {
            Value::Array(flat) => flat.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect(),
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
            other => panic!("entry {other:?}"),
        })
        .collect()
}

/// The entries of `journal` for `key` and `rule`.
fn find<'a>(journal: &'a BTreeSet<Entry>, key: &str, rule: &str) -> Vec<&'a Entry> {
    journal
        .iter()
        .filter(|e| e["key"] == key && e["rule"] == rule)
        .collect()
}

/// Checks the one entry for `key` and `rule`: its type and who won.
fn expect(
    journal: &BTreeSet<Entry>,
    key: &str,
    rule: &str,
    key_type: &str,
    winner: u16,
    loser: u16,
) {
    let found = find(journal, key, rule);
    assert_eq!(found.len(), 1, "{key} {rule}: {journal:#?}");
    let e = found[0];
    assert_eq!(e["type"], key_type, "{e:?}");
    assert_eq!(e["winner_region"], winner.to_string(), "{e:?}");
    assert_eq!(e["loser_region"], loser.to_string(), "{e:?}");
    assert!(
        !e["winner_hlc"].is_empty() && !e["loser_hlc"].is_empty(),
        "{e:?}"
    );
}

/// The HLC text `millis.logical` as a comparable pair.
fn hlc(s: &str) -> (u64, u64) {
    let (m, l) = s.split_once('.').expect("millis.logical");
    (m.parse().expect("millis"), l.parse().expect("logical"))
}

/// `INFO conflicts` of region `i`, as field → value.
fn info(mesh: &Mesh, i: usize) -> BTreeMap<String, String> {
    let text: String = mesh.run(i, &["INFO", "conflicts"]);
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn lww_loser_is_journaled_identically_and_count_match_work() {
    let mesh = Mesh::start(&["us", "eu"]);
    assert!(mesh.journal(&[]).is_empty());
    // us writes first, eu a little later: eu's stamps are greater.
    mesh.race(&[
        (0, &["SET", "user:1", "from-us"]),
        (0, &["SET", "user:2", "from-us"]),
        (0, &["HSET", "cart:1", "qty", "1"]),
        (1, &["SET", "user:1", "from-eu"]),
        (1, &["SET", "user:2", "from-eu"]),
        (1, &["HSET", "cart:1", "qty", "2"]),
    ]);
    let get: Option<String> = mesh.run(0, &["GET", "user:1"]);
    assert_eq!(get.as_deref(), Some("from-eu"));
    let journal = mesh.journal(&[]);
    assert_eq!(journal.len(), 3, "{journal:#?}");
    expect(&journal, "user:1", "lww", "string", 2, 1);
    expect(&journal, "user:2", "lww", "string", 2, 1);
    expect(&journal, "cart:1", "lww", "hash", 2, 1);
    for e in &journal {
        assert!(hlc(&e["winner_hlc"]) > hlc(&e["loser_hlc"]), "{e:?}");
    }

    // MATCH filters by key, COUNT keeps the newest.
    let users = mesh.journal(&["MATCH", "user:*"]);
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|e| e["key"].starts_with("user:")));
    assert_eq!(mesh.journal(&["MATCH", "user:*", "COUNT", "1"]).len(), 1);
    assert_eq!(mesh.journal(&["count", "5", "match", "cart:?"]).len(), 1);
    assert!(mesh.journal(&["MATCH", "nothing*"]).is_empty());
    let newest: Value = mesh.run(0, &["BRAID.CONFLICTS", "COUNT", "1"]);
    assert_eq!(entries(&newest).len(), 1);

    // Bad arguments get a clear error.
    for (args, err) in [
        (&["COUNT"][..], "syntax error"),
        (&["COUNT", "many"], "not an integer"),
        (&["COUNT", "0"], "COUNT must be a positive integer"),
        (&["LIMIT", "1"], "syntax error"),
        (&["MATCH"], "syntax error"),
    ] {
        let mut cmd = redis::cmd("BRAID.CONFLICTS");
        for a in args {
            cmd.arg(*a);
        }
        let e = cmd
            .query::<Value>(&mut mesh.conn(0))
            .expect_err("bad arguments are refused");
        assert!(e.to_string().contains(err), "{args:?}: {e}");
    }

    for i in 0..2 {
        let info = info(&mesh, i);
        assert_eq!(info["conflicts_resolved"], "3", "{info:?}");
        assert_eq!(info["conflicts_string_lww"], "2", "{info:?}");
        assert_eq!(info["conflicts_hash_lww"], "1", "{info:?}");
        assert_eq!(info["conflict_journal_len"], "3", "{info:?}");
    }
}

#[test]
fn concurrent_remove_and_add_is_journaled_as_add_wins() {
    let mesh = Mesh::start(&["us", "eu"]);
    mesh.prepare(&[&["SADD", "s", "a", "b"], &["HSET", "h", "f", "1"]]);
    mesh.race(&[
        (0, &["SREM", "s", "a"]),
        (0, &["DEL", "h"]),
        (1, &["SADD", "s", "a"]),
        (1, &["HSET", "h", "g", "2"]),
    ]);
    let members: BTreeSet<String> = mesh.run(1, &["SMEMBERS", "s"]);
    assert_eq!(members, BTreeSet::from(["a".to_string(), "b".to_string()]));
    let journal = mesh.journal(&[]);
    assert_eq!(journal.len(), 2, "{journal:#?}");
    // The write wins over the remove, whatever their stamps.
    expect(&journal, "s", "add_wins", "set", 2, 1);
    expect(&journal, "h", "add_wins", "hash", 2, 1);
}

#[test]
fn concurrent_types_are_journaled_as_type_conflict() {
    let mesh = Mesh::start(&["us", "eu"]);
    mesh.prepare(&[&["SET", "k", "5"]]);
    mesh.race(&[
        (0, &["DEL", "k"]),
        (0, &["SADD", "k", "m"]),
        (1, &["SET", "k", "w"]),
    ]);
    let t: String = mesh.run(0, &["TYPE", "k"]);
    assert_eq!(t, "string");
    let journal = mesh.journal(&[]);
    assert_eq!(journal.len(), 2, "{journal:#?}");
    expect(&journal, "k", "type", "string", 2, 1);
    assert_eq!(find(&journal, "k", "type")[0]["loser_type"], "set");
    // eu's SET also survived us' DEL.
    expect(&journal, "k", "add_wins", "string", 2, 1);
}

#[test]
fn concurrent_expiries_are_journaled_as_expiry() {
    let mesh = Mesh::start(&["us", "eu"]);
    mesh.prepare(&[&["SET", "k", "v"], &["SET", "p", "v"]]);
    mesh.race(&[
        // The later deadline wins although it was set first.
        (0, &["EXPIRE", "k", "5000"]),
        (1, &["EXPIRE", "k", "100"]),
        // PERSIST (a SET without KEEPTTL) beats a concurrent EXPIRE.
        (0, &["SET", "p", "w"]),
        (1, &["EXPIRE", "p", "100"]),
    ]);
    let ttl: i64 = mesh.run(1, &["TTL", "k"]);
    assert!(ttl > 100, "{ttl}");
    let ttl: i64 = mesh.run(1, &["TTL", "p"]);
    assert_eq!(ttl, -1);
    let journal = mesh.journal(&[]);
    assert_eq!(journal.len(), 2, "{journal:#?}");
    expect(&journal, "k", "expiry", "none", 1, 2);
    expect(&journal, "p", "expiry", "string", 1, 2);
}

#[test]
fn increments_on_a_non_numeric_base_are_journaled_as_dropped() {
    let mesh = Mesh::start(&["us", "eu"]);
    mesh.prepare(&[&["SET", "n", "1"]]);
    mesh.race(&[(0, &["SET", "n", "abc"]), (1, &["INCRBY", "n", "5"])]);
    let v: String = mesh.run(1, &["GET", "n"]);
    assert_eq!(v, "abc");
    let journal = mesh.journal(&[]);
    assert_eq!(journal.len(), 1, "{journal:#?}");
    expect(&journal, "n", "increments_dropped", "string", 1, 2);
}

#[test]
fn lset_against_a_concurrent_pop_is_journaled_as_remove_wins() {
    let mesh = Mesh::start(&["us", "eu"]);
    mesh.prepare(&[&["RPUSH", "l", "a", "b"]]);
    mesh.race(&[(0, &["LSET", "l", "0", "x"]), (1, &["LPOP", "l"])]);
    let l: Vec<String> = mesh.run(0, &["LRANGE", "l", "0", "-1"]);
    assert_eq!(l, ["b"]);
    let journal = mesh.journal(&[]);
    assert_eq!(journal.len(), 1, "{journal:#?}");
    expect(&journal, "l", "remove_wins", "list", 2, 1);
}

#[test]
fn three_regions_journal_every_pair_identically() {
    let mesh = Mesh::start(&["us", "eu", "asia"]);
    mesh.race(&[
        (0, &["SET", "k", "us"]),
        (1, &["SET", "k", "eu"]),
        (2, &["SET", "k", "asia"]),
    ]);
    let v: String = mesh.run(0, &["GET", "k"]);
    assert_eq!(v, "asia");
    let journal = mesh.journal(&[]);
    let pairs: BTreeSet<(String, String)> = journal
        .iter()
        .map(|e| (e["winner_region"].clone(), e["loser_region"].clone()))
        .collect();
    let expected =
        [("2", "1"), ("3", "1"), ("3", "2")].map(|(w, l)| (w.to_string(), l.to_string()));
    assert_eq!(pairs, BTreeSet::from(expected), "{journal:#?}");
    assert!(journal.iter().all(|e| e["rule"] == "lww"));
}
