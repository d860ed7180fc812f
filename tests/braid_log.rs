//! `braid-log`: summary, dump, verify, repair and tail on data directories
//! written by the real `braid-server`, stopped and running.

mod common;

use braid::crdt::RegionId;
use braid::oplog::record_key;
use common::server::Braid;
use redis::Commands;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Snapshots off, so the log holds every operation.
const NO_SNAPSHOTS: &[&str] = &["--snapshot-every-ops", "0", "--snapshot-every-secs", "0"];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `braid-log --data-dir DIR ARGS` with stdin closed (not a terminal).
fn braid_log(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_braid-log"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("braid-log runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A stopped region whose log holds `SET k<i> <i>` for i in 0..n: the
/// operation r1:(i+1) sets k<i>.
fn stopped_region(n: usize) -> Braid {
    let mut b = Braid::start(NO_SNAPSHOTS);
    {
        let mut c = b.conn();
        for i in 0..n {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    assert!(b.terminate().expect("exits").success());
    b
}

/// Opens the stopped region's RocksDB directly, to damage it.
fn raw_db(dir: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        dir.join("oplog"),
        ["log", "meta"],
    )
    .expect("op log opens")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The lines of `dump` output, each starting with `r1:<seq> `.
fn dumped_seqs(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("r1:").expect("a text record line");
            rest.split(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn summary_counts_each_origin_and_reports_snapshots() {
    let b = stopped_region(30);
    let r = braid_log(&b.dir, &["summary"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("region       r1 \"local\""),
        "{}",
        r.stdout
    );
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("r1 "))
        .expect("a row for r1");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], ["r1", "1", "30", "30"], "{row}");
    assert!(r.stdout.contains("snapshots    0 in"), "{}", r.stdout);
    assert!(r.stdout.contains("truncatable  nothing (no snapshot)"));
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("summary: 1 origin, 30 records ("),
        "{last}"
    );

    // With snapshots: the log is truncated to what follows the newest one.
    let mut s = Braid::start(&["--snapshot-every-ops", "20"]);
    {
        let mut c = s.conn();
        for i in 0..25 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    let snapshot_written = || {
        std::fs::read_dir(s.dir.join("snapshots"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".braid"))
            })
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !snapshot_written() {
        assert!(Instant::now() < deadline, "no snapshot was written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the truncation that follows the snapshot finish, then write some
    // more so that the log holds operations after the snapshot.
    std::thread::sleep(Duration::from_millis(300));
    {
        let mut c = s.conn();
        for i in 25..30 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    assert!(s.terminate().expect("exits").success());
    let r = braid_log(&s.dir, &["summary"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("snapshots    1 in"), "{}", r.stdout);
    assert!(r.stdout.contains("covers {r1:"), "{}", r.stdout);
    let row = r.stdout.lines().find(|l| l.starts_with("r1 "));
    let last = row.map(|l| l.split_whitespace().nth(2).unwrap().to_string());
    assert_eq!(last.as_deref(), Some("30"), "{}", r.stdout);
}

#[test]
fn dump_filters_by_origin_sequence_key_and_time() {
    let mut b = Braid::start(NO_SNAPSHOTS);
    let boundary;
    {
        let mut c = b.conn();
        for i in 0..5 {
            let _: () = c.set(format!("user:{i}"), i).unwrap();
        }
        let _: () = c.set("other", "x").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        boundary = now_ms();
        std::thread::sleep(Duration::from_millis(100));
        let _: () = c.hset("late:h", "f", "v\"\n").unwrap();
        let _: () = c.set("late:s", "y").unwrap();
    }
    assert!(b.terminate().expect("exits").success());

    let all = braid_log(&b.dir, &["dump"]);
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    assert_eq!(dumped_seqs(&all.stdout), (1..=8).collect::<Vec<_>>());
    assert!(all
        .stdout
        .lines()
        .next()
        .unwrap()
        .contains("key=\"user:0\""));
    assert!(all
        .stdout
        .contains("StrSet { value: b\"0\", ttl: Persist }"));
    assert!(all.stderr.contains("dump: 8 operations shown of 8 scanned"));

    let r = braid_log(&b.dir, &["dump", "--key", "user:*"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![1, 2, 3, 4, 5]);
    let r = braid_log(&b.dir, &["dump", "--key", "user:[13]"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![2, 4]);
    let r = braid_log(
        &b.dir,
        &["dump", "--origin", "1", "--from", "3", "--to", "6"],
    );
    assert_eq!(dumped_seqs(&r.stdout), vec![3, 4, 5, 6]);
    let r = braid_log(&b.dir, &["dump", "--from", "7"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![7, 8]);
    let r = braid_log(&b.dir, &["dump", "--origin", "2"]);
    assert_eq!(r.stdout, "");
    let r = braid_log(&b.dir, &["dump", "--limit", "2"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![1, 2]);
    let since = boundary.to_string();
    let r = braid_log(&b.dir, &["dump", "--since", &since]);
    assert_eq!(dumped_seqs(&r.stdout), vec![7, 8]);
    let r = braid_log(&b.dir, &["dump", "--until", &since]);
    assert_eq!(dumped_seqs(&r.stdout), (1..=6).collect::<Vec<_>>());

    let r = braid_log(&b.dir, &["dump", "--json", "--key", "late:*"]);
    assert_eq!(r.code, Some(0));
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')));
    assert!(
        lines[0].starts_with("{\"origin\":1,\"seq\":7,"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\"key\":\"late:h\",\"fresh\":"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\"effect\":\"hash_set\",\"args\":{\"fields\":[[\"f\",\"v\\\"\\n\"]]}}"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\"effect\":\"str_set\""), "{}", lines[1]);
}

#[test]
fn verify_passes_on_a_good_log_with_a_snapshot() {
    let mut b = Braid::start(&["--snapshot-every-ops", "10"]);
    {
        let mut c = b.conn();
        for i in 0..15 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = std::fs::read_dir(b.dir.join("snapshots"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".braid"))
                    .count()
            })
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot was written");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    {
        let mut c = b.conn();
        for i in 15..18 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    assert!(b.terminate().expect("exits").success());
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("snapshot ok snapshot-"), "{}", r.stdout);
    let last = r.stdout.lines().last().unwrap();
    assert!(last.starts_with("verify: "), "{last}");
    assert!(last.contains("0 bad records, 0 gaps"), "{last}");
    assert!(last.ends_with(": OK"), "{last}");

    // A damaged snapshot is named, and fails the check.
    let snap = std::fs::read_dir(b.dir.join("snapshots"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".braid"))
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&snap, bytes).unwrap();
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let name = snap.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("bad snapshot ") && l.contains(&name)),
        "{}",
        r.stdout
    );
    // Without its snapshot, the truncated log no longer starts at 1.
    assert!(r.stdout.contains("recovery gap in r1"), "{}", r.stdout);
    assert!(r.stdout.contains("PROBLEMS FOUND"));
    let r = braid_log(&b.dir, &["verify", "--no-snapshots"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}

#[test]
fn verify_finds_a_corrupted_record_and_repair_truncates_only_from_it() {
    let mut b = stopped_region(40);
    assert_eq!(braid_log(&b.dir, &["verify"]).code, Some(0));
    // Flip one byte of r1:25 (SET k24).
    {
        let db = raw_db(&b.dir);
        let log = db.cf_handle("log").unwrap();
        let key = record_key(RegionId(1), 25);
        let mut value = db.get_cf(log, key).unwrap().expect("record 25 exists");
        let at = value.len() - 2;
        value[at] ^= 0x10;
        db.put_cf(log, key, value).unwrap();
    }

    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let bad: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("bad record"))
        .collect();
    assert_eq!(bad.len(), 1, "{}", r.stdout);
    assert!(
        bad[0].starts_with("bad record r1:25 (key 00010000000000000019, "),
        "{}",
        bad[0]
    );
    assert!(bad[0].contains("checksum mismatch"), "{}", bad[0]);
    assert!(r.stdout.contains("repair --origin 1"), "{}", r.stdout);
    assert!(r.stdout.contains("1 bad record, 0 gaps"), "{}", r.stdout);

    // No confirmation (stdin is not a terminal): refused, nothing changed.
    let r = braid_log(&b.dir, &["repair", "--origin", "1"]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("first problem: bad record r1:25"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("drops: 16 records of r1, seq 25..=40"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("keeps: r1 seq 1..=24"), "{}", r.stdout);
    assert!(
        r.stdout.contains("refused, nothing changed"),
        "{}",
        r.stdout
    );
    let r = braid_log(&b.dir, &["dump", "--from", "26"]);
    assert_eq!(dumped_seqs(&r.stdout), (26..=40).collect::<Vec<_>>());
    let r = braid_log(&b.dir, &["dump"]);
    assert_eq!(r.code, Some(1), "a dump that skipped a bad record fails");
    assert!(
        r.stderr.contains("skipping bad record r1:25"),
        "{}",
        r.stderr
    );

    let r = braid_log(&b.dir, &["repair", "--origin", "1", "--yes"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("repair: dropped 16 records of r1, seq 25..=40"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("r1 now ends at seq 24"), "{}", r.stdout);
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let r = braid_log(&b.dir, &["dump"]);
    assert_eq!(dumped_seqs(&r.stdout), (1..=24).collect::<Vec<_>>());

    // The server starts on the repaired log and holds what preceded the
    // bad record, and only that.
    b.restart();
    let mut c = b.conn();
    for i in 0..24 {
        assert_eq!(c.get::<_, Option<i64>>(format!("k{i}")).unwrap(), Some(i));
    }
    for i in 24..40 {
        assert_eq!(c.get::<_, Option<i64>>(format!("k{i}")).unwrap(), None);
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 24);
}

#[test]
fn verify_locates_gaps_undecodable_and_misplaced_records() {
    let b = stopped_region(40);
    {
        let db = raw_db(&b.dir);
        let log = db.cf_handle("log").unwrap();
        let k = |s| record_key(RegionId(1), s);
        db.delete_cf(log, k(10)).unwrap();
        db.delete_cf(log, k(11)).unwrap();
        // A record whose CRC is right but whose operation does not decode.
        let garbage = [0x07u8, 1, 2, 3];
        let mut v = crc32fast::hash(&garbage).to_le_bytes().to_vec();
        v.extend_from_slice(&garbage);
        db.put_cf(log, k(20), v).unwrap();
        // r1:31's record under the key of r1:30.
        let moved = db.get_cf(log, k(31)).unwrap().unwrap();
        db.put_cf(log, k(30), moved).unwrap();
    }
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let problems: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("bad record") || l.starts_with("gap"))
        .collect();
    assert_eq!(problems.len(), 3, "{}", r.stdout);
    assert_eq!(problems[0], "gap in r1: seq 10..=11 missing (2 records)");
    assert!(problems[1].starts_with("bad record r1:20 (key 00010000000000000014"));
    assert!(problems[1].contains("unsupported operation format version 7"));
    assert!(problems[2].starts_with("bad record r1:30 (key 0001000000000000001e"));
    assert!(problems[2].contains("holds r1:31 under the key of r1:30"));
    assert!(
        r.stdout.contains("2 bad records, 1 gap (2 missing)"),
        "{}",
        r.stdout
    );

    // Repair cuts at the first problem: the gap.
    let r = braid_log(&b.dir, &["repair", "--origin", "1", "--yes"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("first problem: gap in r1: seq 10..=11"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("dropped 29 records of r1, seq 12..=40"),
        "{}",
        r.stdout
    );
    assert_eq!(braid_log(&b.dir, &["verify"]).code, Some(0));
    // Nothing left to repair.
    let r = braid_log(&b.dir, &["repair", "--origin", "1"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
}

/// An operation of `origin` at `seq` having seen `seen` of region 2.
fn op_at(origin: u16, seq: u64, seen: u64) -> braid::crdt::Operation {
    use braid::crdt::{Body, Effect, Hlc, KeyWrite, Operation, TtlChange, VersionVector};
    let mut deps = VersionVector::new();
    deps.set(RegionId(origin), seq - 1);
    if origin != 2 {
        deps.set(RegionId(2), seen);
    }
    Operation {
        origin: RegionId(origin),
        seq,
        hlc: Hlc::new(1_700_000_000_000 + seq, origin),
        deps,
        txn_rest: 0,
        body: Body::Key(KeyWrite {
            key: format!("r{origin}-{seq}").into(),
            fresh: false,
            effect: Effect::StrSet {
                value: "v".into(),
                ttl: TtlChange::Keep,
            },
        }),
    }
}

#[test]
fn repair_names_the_operations_of_other_origins_that_depend_on_dropped_ones() {
    // Region 1's log holding region 2's operations 1..=10 and its own
    // 1..=5, of which 3..=5 saw region 2's first 6.
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = braid::oplog::OpLog::open(tmp.path(), RegionId(1), "one").unwrap();
        let theirs: Vec<_> = (1..=10).map(|s| op_at(2, s, 0)).collect();
        let ours: Vec<_> = (1..=5)
            .map(|s| op_at(1, s, if s >= 3 { 6 } else { 2 }))
            .collect();
        log.append(&theirs, true).unwrap();
        log.append(&ours, true).unwrap();
    }
    let r = braid_log(tmp.path(), &["summary"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("summary: 2 origins, 15 records"),
        "{}",
        r.stdout
    );
    {
        let db = raw_db(tmp.path());
        let log = db.cf_handle("log").unwrap();
        let key = record_key(RegionId(2), 5);
        let mut v = db.get_cf(log, key).unwrap().unwrap();
        v[0] ^= 1;
        db.put_cf(log, key, v).unwrap();
    }
    let r = braid_log(tmp.path(), &["verify"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout
            .contains("bad record r2:5 (key 00020000000000000005"),
        "{}",
        r.stdout
    );

    let r = braid_log(tmp.path(), &["repair", "--origin", "2", "--yes"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("drops: 6 records of r2, seq 5..=10"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("warning: 3 records of r1 from seq 3 on depend on dropped operations of r2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("repair --origin 1 --from 3"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("note: a peer that still holds"),
        "{}",
        r.stdout
    );
    let r = braid_log(tmp.path(), &["dump", "--origin", "2"]);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    // Region 1's own records are untouched until asked for.
    let r = braid_log(tmp.path(), &["dump", "--origin", "1", "--json"]);
    assert_eq!(r.stdout.lines().count(), 5, "{}", r.stdout);
    let r = braid_log(
        tmp.path(),
        &["repair", "--origin", "1", "--from", "3", "--yes"],
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("warning: r1 is this region's own origin"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("dropped 3 records of r1, seq 3..=5"),
        "{}",
        r.stdout
    );
    assert_eq!(braid_log(tmp.path(), &["verify"]).code, Some(0));
}

#[test]
fn read_only_commands_beside_a_running_server_do_not_disturb_it() {
    let b = Braid::start(NO_SNAPSHOTS);
    let mut c = b.conn();
    for i in 0..20 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    let r = braid_log(&b.dir, &["summary"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("summary: 1 origin, 20 records"),
        "{}",
        r.stdout
    );
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let r = braid_log(&b.dir, &["dump", "--key", "k1*"]);
    assert_eq!(
        dumped_seqs(&r.stdout),
        vec![2, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    );
    // Repair needs the directory to itself, and says so.
    let r = braid_log(&b.dir, &["repair", "--origin", "1", "--yes"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("is braid-server running"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);

    // The server went on serving and writing throughout.
    for i in 20..40 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    for i in 0..40 {
        assert_eq!(c.get::<_, i64>(format!("k{i}")).unwrap(), i);
    }
    let r = braid_log(&b.dir, &["summary"]);
    assert!(
        r.stdout.contains("summary: 1 origin, 40 records"),
        "{}",
        r.stdout
    );
}

#[test]
fn tail_follow_prints_new_operations_live() {
    let b = Braid::start(NO_SNAPSHOTS);
    let mut c = b.conn();
    let _: () = c.set("before", 1).unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_braid-log"))
        .arg("--data-dir")
        .arg(&b.dir)
        .args(["tail", "-f", "-n", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tail starts");
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Write until tail shows a write (it may not be following yet when the
    // first ones land: -n 0 then skips them).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    let line = loop {
        assert!(Instant::now() < deadline, "tail -f printed nothing");
        let _: () = c.set(format!("live{i}"), i).unwrap();
        i += 1;
        match rx.recv_timeout(Duration::from_millis(300)) {
            Ok(line) => break line.expect("utf-8 line"),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => panic!("tail ended: {e}"),
        }
    };
    // SIGTERM ends it cleanly.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(tail.id().to_string())
        .status();
    let status = tail.wait().expect("tail exits");
    assert!(status.success(), "{status}");
    assert!(line.starts_with("r1:"), "{line}");
    assert!(line.contains("key=\"live"), "{line}");
    assert!(!line.contains("before"), "{line}");
}

/// Not a check: writes a big op log for timing `braid-log verify`.
/// `BRAID_LOG_BIG_DIR=/path BRAID_LOG_BIG_OPS=10000000 cargo test --release
/// --test braid_log -- --ignored write_big_log`
#[test]
#[ignore]
fn write_big_log() {
    use braid::crdt::{Body, Effect, Hlc, KeyWrite, Operation, TtlChange, VersionVector};
    let dir = std::env::var("BRAID_LOG_BIG_DIR").expect("BRAID_LOG_BIG_DIR");
    let ops: u64 = std::env::var("BRAID_LOG_BIG_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let log = braid::oplog::OpLog::open(Path::new(&dir), RegionId(1), "big").unwrap();
    let t0 = now_ms();
    let mut batch = Vec::with_capacity(10_000);
    for seq in 1..=ops {
        let mut deps = VersionVector::new();
        deps.set(RegionId(1), seq - 1);
        batch.push(Operation {
            origin: RegionId(1),
            seq,
            hlc: Hlc::new(t0 + seq / 1000, (seq % 1000) as u16),
            deps,
            txn_rest: 0,
            body: Body::Key(KeyWrite {
                key: format!("user:{}", seq % 100_000).into(),
                fresh: false,
                effect: Effect::StrSet {
                    value: format!("value-{seq}").into(),
                    ttl: TtlChange::Persist,
                },
            }),
        });
        if batch.len() == 10_000 {
            log.append(&batch, false).unwrap();
            batch.clear();
        }
    }
    log.append(&batch, true).unwrap();
}
