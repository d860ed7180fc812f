//! The metrics endpoint, the INFO figures and the Grafana dashboard, against
//! real `braid-server` processes: scraped with a plain HTTP GET, with
//! conditions awaited (generous limits) rather than timed.

mod common;

use common::server::{free_port, free_udp_port, gen_certs, Braid};
use redis::Commands;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `GET path` on `127.0.0.1:port`: (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// One scrape of `/metrics`.
fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// Samples of `name` whose labels include every `k="v"` of `labels`.
fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, lab) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = n == name
                && labels
                    .iter()
                    .all(|(k, v)| lab.split(',').any(|p| p == format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .collect()
}

/// The one sample of `name` with `labels`, if there is exactly one.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match samples(text, name, labels).as_slice() {
        [v] => Some(*v),
        _ => None,
    }
}

/// Every sample name a scrape holds, and every name its `# TYPE` lines
/// declare (with `_bucket`, `_sum`, `_count` for histograms).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in text.lines() {
        if let Some(decl) = l.strip_prefix("# TYPE ") {
            let mut w = decl.split_whitespace();
            if let (Some(n), Some(kind)) = (w.next(), w.next()) {
                names.insert(n.to_string());
                if kind == "histogram" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{n}{suffix}"));
                    }
                }
            }
        } else if !l.starts_with('#') && !l.is_empty() {
            let end = l.find(['{', ' ']).unwrap_or(l.len());
            names.insert(l[..end].to_string());
        }
    }
    names
}

/// Waits until `cond` holds on a fresh scrape of `port`; panics with the
/// last scrape after `limit`.
fn await_scrape(port: u16, limit: Duration, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = scrape(port);
        if cond(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {limit:?}; last scrape:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info(c: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(c)
        .expect("INFO answers")
}

/// The value of `field=` in the INFO line starting with `prefix`.
fn info_field(info: &str, prefix: &str, field: &str) -> Option<String> {
    let line = info.lines().find(|l| l.starts_with(prefix))?;
    let body = line.split_once(':')?.1;
    body.split(',')
        .find_map(|p| p.strip_prefix(&format!("{field}=")))
        .map(str::to_string)
}

#[test]
fn endpoint_counts_commands_fsyncs_and_snapshots() {
    let mport = free_port();
    let addr = format!("127.0.0.1:{mport}");
    let b = Braid::start(&["--metrics-listen", &addr]);
    let before = scrape(mport);
    let cmds0 = sample(&before, "braid_commands_processed_total", &[]).expect("commands counter");
    assert_eq!(
        sample(&before, "braid_ops_applied_total", &[("origin", "local")]),
        Some(0.0),
        "{before}"
    );
    assert!(
        before.contains("# TYPE braid_conflicts_resolved_total counter"),
        "{before}"
    );

    let mut c = b.conn();
    for i in 0..50 {
        let _: () = c.set(format!("k{i}"), i).expect("SET");
    }
    let _: Option<String> = c.get("k1").expect("GET");
    let after = scrape(mport);
    let cmds = sample(&after, "braid_commands_processed_total", &[]).expect("commands counter");
    assert!(cmds >= cmds0 + 51.0, "{cmds0} -> {cmds}");
    assert_eq!(
        sample(&after, "braid_ops_applied_total", &[("origin", "local")]),
        Some(50.0)
    );
    let sets = sample(
        &after,
        "braid_command_duration_seconds_count",
        &[("command", "set")],
    );
    assert_eq!(sets, Some(50.0), "{after}");
    let set_inf = sample(
        &after,
        "braid_command_duration_seconds_bucket",
        &[("command", "set"), ("le", "+Inf")],
    );
    assert_eq!(set_inf, Some(50.0));
    // Under fsync always every acknowledged write went through a group
    // commit with an fsync.
    let fsyncs = sample(
        &after,
        "braid_fsync_duration_seconds_count",
        &[("kind", "group_commit")],
    )
    .expect("fsync histogram");
    assert!(fsyncs >= 1.0, "{after}");

    // INFO shows the same figures.
    let stats = info(&mut c, "commandstats");
    assert_eq!(
        info_field(&stats, "cmdstat_set:", "calls").as_deref(),
        Some("50"),
        "{stats}"
    );
    let lat = info(&mut c, "latencystats");
    assert!(lat.contains("latency_percentiles_usec_set:p50="), "{lat}");
    let persistence = info(&mut c, "persistence");
    let calls: u64 = info_field(&persistence, "fsync_group_commit:", "calls")
        .and_then(|v| v.parse().ok())
        .expect("fsync_group_commit calls");
    assert!(calls as f64 >= fsyncs, "{persistence}");
    // The sections every test reads are still there.
    assert!(persistence.contains("log_durable_lsn:"), "{persistence}");

    // A snapshot's duration is recorded.
    let _: u64 = redis::cmd("BRAID.SNAPSHOT")
        .query(&mut c)
        .expect("BRAID.SNAPSHOT");
    await_scrape(mport, Duration::from_secs(60), "a snapshot duration", |t| {
        sample(
            t,
            "braid_snapshot_duration_seconds_count",
            &[("kind", "local")],
        ) == Some(1.0)
    });
    let persistence = info(&mut c, "persistence");
    assert_eq!(
        info_field(&persistence, "snapshot_duration_local:", "count").as_deref(),
        Some("1"),
        "{persistence}"
    );

    let (status, _) = http_get(mport, "/nothing-here");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
}

#[test]
fn metrics_endpoint_is_off_by_default_and_a_busy_address_is_an_error() {
    let b = Braid::start(&[]);
    let mut c = b.conn();
    let all = info(&mut c, "all");
    assert!(all.contains("# Commandstats"), "{all}");
    // A second server cannot take the first one's metrics address. It exits
    // with an error, every time: it once aborted in about one start in ten,
    // as the group-commit threads still held RocksDB open at exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("address").to_string();
    // Port 0: the client port is the kernel's pick, so that these starts
    // never take a port another test has chosen but not bound yet.
    for _ in 0..20 {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_braid-server"))
            .args(["--port", "0", "--metrics-listen", &addr])
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .expect("braid-server runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot listen for metrics"), "{err}");
    }
}

/// Two regions (`us` id 1, `eu` id 2) with metrics endpoints, sharing one
/// CA, a config file for heartbeats every 200 ms.
struct Pair {
    root: tempfile::TempDir,
    udp: [u16; 2],
    metrics: [u16; 2],
}

const NAMES: [&str; 2] = ["us", "eu"];

impl Pair {
    fn new() -> Pair {
        let root = tempfile::tempdir().expect("temp dir");
        gen_certs(&root.path().join("certs"), "us,eu");
        std::fs::write(
            root.path().join("braid.toml"),
            "[replication]\nheartbeat_ms = 200\n",
        )
        .expect("config file");
        Pair {
            root,
            udp: [free_udp_port(), free_udp_port()],
            metrics: [free_port(), free_port()],
        }
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(NAMES[i])
    }

    /// Starts region `i`, replicating with the other one when `peered`.
    fn start(&self, i: usize, peered: bool) -> Braid {
        let j = 1 - i;
        let mut args: Vec<String> = vec![
            "--config".into(),
            self.root.path().join("braid.toml").display().to_string(),
            "--region".into(),
            NAMES[i].into(),
            "--region-id".into(),
            (i + 1).to_string(),
            "--replication-listen".into(),
            format!("127.0.0.1:{}", self.udp[i]),
            "--tls-dir".into(),
            cert_dir(self.root.path()),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", self.metrics[i]),
            "--fsync".into(),
            "everysec".into(),
        ];
        if peered {
            args.push("--peer".into());
            args.push(format!("{}={}@127.0.0.1:{}", NAMES[j], j + 1, self.udp[j]));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        std::fs::create_dir_all(self.dir(i)).expect("data dir");
        Braid::start_in(&self.dir(i), &refs)
    }
}

fn cert_dir(root: &Path) -> String {
    root.join("certs").display().to_string()
}

#[test]
fn two_regions_export_lag_consistency_lag_and_conflicts() {
    let pair = Pair::new();
    // Both regions write the same key while they do not replicate yet:
    // the two writes are concurrent, and merging them is a conflict.
    for (i, name) in NAMES.iter().enumerate() {
        let mut b = pair.start(i, false);
        let mut c = b.conn();
        let _: () = c.set("contested", *name).expect("SET");
        b.terminate();
    }
    let us = pair.start(0, true);
    let eu = pair.start(1, true);
    let [mus, meu] = pair.metrics;
    let limit = Duration::from_secs(60);

    // Writes in us are applied in eu and counted per origin.
    let mut cu = us.conn();
    for i in 0..20 {
        let _: () = cu.set(format!("w{i}"), i).expect("SET");
    }
    let eu_text = await_scrape(meu, limit, "eu applied us' writes", |t| {
        sample(t, "braid_ops_applied_total", &[("origin", "us")]).is_some_and(|n| n >= 21.0)
    });
    assert!(
        sample(&eu_text, "braid_version_vector", &[("origin", "us")]).is_some_and(|v| v >= 21.0),
        "{eu_text}"
    );

    // Heartbeats measure the consistency lag without client traffic.
    let eu_text = await_scrape(meu, limit, "eu's consistency lag of us", |t| {
        sample(
            t,
            "braid_consistency_lag_seconds_count",
            &[("origin", "us")],
        )
        .is_some_and(|n| n >= 3.0)
            && sample(t, "braid_replica_staleness_seconds", &[("origin", "us")]).is_some()
            && sample(
                t,
                "braid_consistency_lag_recent_seconds",
                &[("origin", "us"), ("quantile", "0.99")],
            )
            .is_some()
    });
    let before = sample(
        &eu_text,
        "braid_consistency_lag_seconds_count",
        &[("origin", "us")],
    )
    .unwrap_or_default();
    await_scrape(meu, limit, "more heartbeats with no traffic", |t| {
        sample(
            t,
            "braid_consistency_lag_seconds_count",
            &[("origin", "us")],
        )
        .is_some_and(|n| n >= before + 2.0)
    });
    let us_text = await_scrape(mus, limit, "us' view of eu and its link", |t| {
        sample(
            t,
            "braid_consistency_lag_seconds_count",
            &[("origin", "eu")],
        )
        .is_some_and(|n| n >= 1.0)
            && sample(
                t,
                "braid_replication_sent_bytes_total",
                &[("peer", "eu"), ("kind", "raw")],
            )
            .is_some_and(|n| n > 0.0)
    });
    for name in [
        "braid_replication_lag_operations",
        "braid_replication_lag_seconds",
        "braid_replication_rtt_seconds",
        "braid_replication_segments_sent_total",
    ] {
        assert!(
            sample(&us_text, name, &[("peer", "eu")]).is_some(),
            "{name} missing:\n{us_text}"
        );
    }
    assert!(
        sample(
            &us_text,
            "braid_replication_sent_bytes_total",
            &[("peer", "eu"), ("kind", "wire")]
        )
        .is_some_and(|n| n > 0.0),
        "{us_text}"
    );
    assert!(
        sample(
            &us_text,
            "braid_replication_segment_ops_count",
            &[("peer", "eu")]
        )
        .is_some_and(|n| n >= 1.0),
        "{us_text}"
    );
    assert_eq!(
        sample(
            &us_text,
            "braid_replication_protocol_version",
            &[("peer", "eu")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &us_text,
            "braid_replication_link_up",
            &[("peer", "eu"), ("direction", "outbound")]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &eu_text,
            "braid_fsync_duration_seconds_count",
            &[("kind", "replicated")]
        )
        .is_some_and(|n| n >= 1.0),
        "{eu_text}"
    );

    // The concurrent SETs were a conflict the merge resolved, counted by
    // whichever region applied the other's write over its own.
    let conflicts = |port: u16| -> f64 {
        samples(&scrape(port), "braid_conflicts_resolved_total", &[])
            .iter()
            .sum()
    };
    let deadline = Instant::now() + limit;
    while conflicts(mus) + conflicts(meu) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no conflict counted:\n{}\n{}",
            scrape(mus),
            scrape(meu)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // INFO replication shows the same figures.
    let mut ce = eu.conn();
    let repl = info(&mut ce, "replication");
    let p50 = info_field(&repl, "peer0:", "consistency_lag_p50_ms").expect("p50 field");
    let p99 = info_field(&repl, "peer0:", "consistency_lag_p99_ms").expect("p99 field");
    assert!(p50.parse::<u64>().is_ok(), "{repl}");
    assert!(p99.parse::<u64>().is_ok(), "{repl}");
    assert!(info_field(&repl, "peer0:", "lag_ms").is_some(), "{repl}");
    assert!(info_field(&repl, "peer0:", "lag_ops").is_some(), "{repl}");
    assert_eq!(
        info_field(&repl, "peer0:", "protocol").as_deref(),
        Some("2"),
        "{repl}"
    );
    assert_eq!(
        info_field(&repl, "consistency0:", "origin").as_deref(),
        Some("us"),
        "{repl}"
    );
    let beats: u64 = info_field(&repl, "consistency0:", "heartbeats")
        .and_then(|v| v.parse().ok())
        .expect("heartbeats");
    assert!(beats >= 3, "{repl}");

    // Every metric the dashboard queries is one the servers export.
    let mut exported = exported_names(&scrape(mus));
    exported.extend(exported_names(&scrape(meu)));
    let missing: Vec<String> = dashboard_metric_names()
        .into_iter()
        .filter(|n| !exported.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics no server exports: {missing:?}"
    );
    drop((us, eu));
}

/// The dashboard, parsed.
fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard file");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every `braid_…` metric name in the dashboard's queries.
fn dashboard_metric_names() -> BTreeSet<String> {
    let d = dashboard();
    let mut names = BTreeSet::new();
    let panels = d["panels"].as_array().expect("panels");
    let mut exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    for v in d["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(at) = rest.find("braid_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn dashboard_covers_the_required_panels() {
    let d = dashboard();
    assert_eq!(d["uid"], "braid-overview");
    let names = dashboard_metric_names();
    for needed in [
        "braid_replication_lag_operations",
        "braid_replication_lag_seconds",
        "braid_consistency_lag_seconds_bucket",
        "braid_conflicts_resolved_total",
        "braid_replication_sent_bytes_total",
        "braid_version_vector",
        "braid_command_duration_seconds_bucket",
        "braid_fsync_duration_seconds_bucket",
    ] {
        assert!(names.contains(needed), "{needed} not on the dashboard");
    }
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
}

#[test]
fn logs_follow_the_filter_and_the_json_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let b = Braid::start_in_logged(&data, &["--log-format", "json"], &log, "info");
    // Logged before the port opens, so it is in the file once we connect.
    let text = std::fs::read_to_string(&log).expect("log file");
    assert!(text.contains("ready to accept connections"), "{text}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    drop(b);

    // RUST_LOG=warn leaves the info lines out.
    let quiet_log = dir.path().join("quiet.log");
    let quiet_data = dir.path().join("quiet");
    std::fs::create_dir_all(&quiet_data).expect("data dir");
    let q = Braid::start_in_logged(&quiet_data, &[], &quiet_log, "warn");
    let mut c = q.conn();
    let _: () = c.set("k", "v").expect("SET");
    let text = std::fs::read_to_string(&quiet_log).expect("log file");
    assert!(!text.contains("ready to accept connections"), "{text}");
}
