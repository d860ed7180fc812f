//! `braid-log`: summary, dump, verify, repair and tail on data directories
//! written by the real `braid-server`, stopped and running.

mod common;

use braid::crdt::{Operation, RegionId};
use braid::oplog::{decode_record, encode_record, key_hex, record_key, record_span};
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

/// Every raw record of the `log` column family, in key order.
fn raw_records(db: &rocksdb::DB) -> Vec<(Vec<u8>, Vec<u8>)> {
    let log = db.cf_handle("log").unwrap();
    db.iterator_cf(log, rocksdb::IteratorMode::Start)
        .map(|item| {
            let (k, v) = item.expect("readable record");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// The record holding operation `seq` of `origin`: its key, value, first
/// and last sequence.
fn record_holding(db: &rocksdb::DB, origin: RegionId, seq: u64) -> (Vec<u8>, Vec<u8>, u64, u64) {
    raw_records(db)
        .into_iter()
        .find_map(|(k, v)| {
            let (o, first, last) = record_span(&k, &v)?;
            (o == origin && first <= seq && seq <= last).then_some((k, v, first, last))
        })
        .unwrap_or_else(|| panic!("no record holds {origin}:{seq}"))
}

/// Rewrites `origin`'s records as one record per run of `runs` (operations
/// in no run are dropped), so that a test knows where records start and end.
fn relayout(db: &rocksdb::DB, origin: RegionId, runs: &[std::ops::RangeInclusive<u64>]) {
    let log = db.cf_handle("log").unwrap();
    let mut ops = std::collections::BTreeMap::<u64, Operation>::new();
    for (k, v) in raw_records(db) {
        if k[..2] != origin.0.to_be_bytes() {
            continue;
        }
        for op in decode_record(&k, &v).expect("a good record") {
            ops.insert(op.seq, op);
        }
        db.delete_cf(log, &k).unwrap();
    }
    for run in runs {
        let run: Vec<Operation> = run.clone().map(|s| ops[&s].clone()).collect();
        let mut value = Vec::new();
        encode_record(&run, &mut value);
        db.put_cf(log, record_key(origin, run[0].seq), value)
            .unwrap();
    }
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
    let records = raw_records(&raw_db(&b.dir)).len();
    assert!((1..=30).contains(&records), "{records} records");
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
    // origin, first, last, operations, records.
    let n = records.to_string();
    assert_eq!(&cols[..5], ["r1", "1", "30", "30", n.as_str()], "{row}");
    assert!(r.stdout.contains("snapshots    0 in"), "{}", r.stdout);
    assert!(r.stdout.contains("truncatable  nothing (no snapshot)"));
    let last = r.stdout.lines().last().unwrap();
    let records = if records == 1 {
        "1 record".to_string()
    } else {
        format!("{records} records")
    };
    assert!(
        last.starts_with(&format!("summary: 1 origin, 30 operations in {records} (")),
        "{last}"
    );

    // Records of several operations: the same operations, fewer records.
    relayout(&raw_db(&b.dir), RegionId(1), &[1..=10, 11..=29, 30..=30]);
    let r = braid_log(&b.dir, &["summary"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let row = r.stdout.lines().find(|l| l.starts_with("r1 ")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..5], ["r1", "1", "30", "30", "3"], "{row}");
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("summary: 1 origin, 30 operations in 3 records ("),
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
    // Two records, so that --from starts inside one.
    relayout(&raw_db(&b.dir), RegionId(1), &[1..=3, 4..=8]);

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
    assert!(
        all.stderr
            .contains("dump: 8 operations shown of 8 in range, from 2 records read, 0 bad records"),
        "{}",
        all.stderr
    );

    let r = braid_log(&b.dir, &["dump", "--key", "user:*"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![1, 2, 3, 4, 5]);
    let r = braid_log(&b.dir, &["dump", "--key", "user:[13]"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![2, 4]);
    let r = braid_log(
        &b.dir,
        &["dump", "--origin", "1", "--from", "3", "--to", "6"],
    );
    assert_eq!(dumped_seqs(&r.stdout), vec![3, 4, 5, 6]);
    // From inside the record 4..=8: the record is found, its earlier
    // operations skipped.
    let r = braid_log(
        &b.dir,
        &["dump", "--origin", "1", "--from", "5", "--to", "6"],
    );
    assert_eq!(dumped_seqs(&r.stdout), vec![5, 6]);
    assert!(
        r.stderr
            .contains("dump: 2 operations shown of 2 in range, from 2 records read"),
        "{}",
        r.stderr
    );
    let r = braid_log(&b.dir, &["dump", "--from", "7"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![7, 8]);
    let r = braid_log(&b.dir, &["dump", "--origin", "1", "--to", "2"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![1, 2]);
    // The last 3 operations start inside the record 4..=8 too.
    let r = braid_log(&b.dir, &["tail", "-n", "3"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(dumped_seqs(&r.stdout), vec![6, 7, 8]);
    assert!(r.stderr.contains("tail: 3 operations"), "{}", r.stderr);
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

    // A run written twice (6..=7 again, inside 4..=8) is no problem, and
    // every operation is shown once.
    {
        let db = raw_db(&b.dir);
        let log = db.cf_handle("log").unwrap();
        let (key, value, ..) = record_holding(&db, RegionId(1), 6);
        let mut ops = decode_record(&key, &value).unwrap();
        ops.retain(|op| (6..=7).contains(&op.seq));
        let mut again = Vec::new();
        encode_record(&ops, &mut again);
        db.put_cf(log, record_key(RegionId(1), 6), again).unwrap();
    }
    let r = braid_log(&b.dir, &["dump"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(dumped_seqs(&r.stdout), (1..=8).collect::<Vec<_>>());
    let r = braid_log(&b.dir, &["dump", "--origin", "1", "--from", "7"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![7, 8]);
    let r = braid_log(&b.dir, &["tail", "-n", "3"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![6, 7, 8]);
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("note: 2 operations of r1 are held again by a later record"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("verify: 3 records (8 operations) of 1 origin"),
        "{}",
        r.stdout
    );
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
    // Records of 7 operations (the last of 5), so that the bad record holds
    // operations before and after r1:25.
    relayout(
        &raw_db(&b.dir),
        RegionId(1),
        &[1..=7, 8..=14, 15..=21, 22..=28, 29..=35, 36..=40],
    );
    assert_eq!(braid_log(&b.dir, &["verify"]).code, Some(0));
    // Flip one byte of the record holding r1:25 (SET k24), inside its last
    // operation: the CRC fails, the header still reads.
    let (first, last) = {
        let db = raw_db(&b.dir);
        let log = db.cf_handle("log").unwrap();
        let (key, mut value, first, last) = record_holding(&db, RegionId(1), 25);
        assert_eq!((first, last), (22, 28));
        let at = value.len() - 2;
        value[at] ^= 0x10;
        db.put_cf(log, key, value).unwrap();
        (first, last)
    };
    let key = key_hex(&record_key(RegionId(1), first));

    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let bad: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("bad record"))
        .collect();
    assert_eq!(bad.len(), 1, "{}", r.stdout);
    assert!(
        bad[0].starts_with(&format!("bad record r1:{first} (key {key}, ")),
        "{}",
        bad[0]
    );
    assert!(
        bad[0].contains(&format!("header claims seq {first}..={last}): ")),
        "{}",
        bad[0]
    );
    assert!(bad[0].contains("checksum mismatch"), "{}", bad[0]);
    assert!(r.stdout.contains("repair --origin 1"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("keep r1 up to seq {}", first - 1)),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 bad record, 0 gaps"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("verify: 6 records (33 operations in the good ones) of 1 origin,"),
        "{}",
        r.stdout
    );

    // No confirmation (stdin is not a terminal): refused, nothing changed.
    // The whole bad record goes, with the good records after it.
    let r = braid_log(&b.dir, &["repair", "--origin", "1"]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("first problem: bad record r1:{first}")),
        "{}",
        r.stdout
    );
    let drops = format!(
        "r1 seq {first}..=40: {} operations and 1 bad record (holding operations that cannot be read); 3 records deleted (",
        40 - last
    );
    assert!(
        r.stdout.contains(&format!("drops: {drops}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("keeps: r1 seq 1..={}", first - 1)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("refused, nothing changed"),
        "{}",
        r.stdout
    );
    // Before the bad record's key, a dump does not meet it.
    let before = (first - 1).to_string();
    let r = braid_log(&b.dir, &["dump", "--to", &before]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(dumped_seqs(&r.stdout), (1..first).collect::<Vec<_>>());
    // After the end its header claims, it may still hold anything (its CRC
    // fails, so its count is not trusted): it is skipped and named, from
    // inside it too.
    for from in [last + 1, 25] {
        let from = from.to_string();
        let r = braid_log(&b.dir, &["dump", "--origin", "1", "--from", &from]);
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("skipping bad record r1:{first} ")),
            "{}",
            r.stderr
        );
        assert_eq!(dumped_seqs(&r.stdout), (last + 1..=40).collect::<Vec<_>>());
    }
    let r = braid_log(&b.dir, &["dump"]);
    assert_eq!(r.code, Some(1), "a dump that skipped a bad record fails");
    assert!(
        r.stderr
            .contains(&format!("skipping bad record r1:{first} ")),
        "{}",
        r.stderr
    );
    let mut expected: Vec<u64> = (1..first).collect();
    expected.extend(last + 1..=40);
    assert_eq!(dumped_seqs(&r.stdout), expected);

    let r = braid_log(&b.dir, &["repair", "--origin", "1", "--yes"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("repair: dropped {drops}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("r1 now ends at seq {}", first - 1)),
        "{}",
        r.stdout
    );
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let r = braid_log(&b.dir, &["dump"]);
    assert_eq!(dumped_seqs(&r.stdout), (1..first).collect::<Vec<_>>());

    // The server starts on the repaired log and holds what preceded the
    // bad record, and only that (r1:i+1 set k<i>).
    b.restart();
    let mut c = b.conn();
    let kept = first as i64 - 1;
    for i in 0..kept {
        assert_eq!(c.get::<_, Option<i64>>(format!("k{i}")).unwrap(), Some(i));
    }
    for i in kept..40 {
        assert_eq!(c.get::<_, Option<i64>>(format!("k{i}")).unwrap(), None);
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, kept);
}

#[test]
fn verify_locates_gaps_undecodable_and_misplaced_records() {
    let b = stopped_region(40);
    {
        let db = raw_db(&b.dir);
        let log = db.cf_handle("log").unwrap();
        // 10..=11 missing (a gap), 20 and 30 replaced below.
        relayout(
            &db,
            RegionId(1),
            &[1..=5, 6..=9, 12..=19, 20..=20, 21..=29, 31..=33, 34..=40],
        );
        let k = |s| record_key(RegionId(1), s);
        // A record whose CRC is right but whose operation does not decode.
        let mut v = vec![0u8; 4];
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&[0x07, 1, 2, 3]);
        let crc = crc32fast::hash(&v[4..]);
        v[..4].copy_from_slice(&crc.to_le_bytes());
        db.put_cf(log, k(20), v).unwrap();
        // The record of r1:31..=33 under the key of r1:30.
        let moved = db.get_cf(log, k(31)).unwrap().unwrap();
        db.delete_cf(log, k(31)).unwrap();
        db.put_cf(log, k(30), moved).unwrap();
    }
    let r = braid_log(&b.dir, &["verify"]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let problems: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("bad record") || l.starts_with("gap"))
        .collect();
    // No gap after the record at 30: its end is unknown.
    assert_eq!(problems.len(), 3, "{}", r.stdout);
    assert_eq!(problems[0], "gap in r1: seq 10..=11 missing (2 operations)");
    assert!(
        problems[1].starts_with(
            "bad record r1:20 (key 00010000000000000014, 16 bytes, header claims seq 20..=20): "
        ),
        "{}",
        problems[1]
    );
    assert!(
        problems[1].contains("unsupported operation format version 7"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].starts_with("bad record r1:30 (key 0001000000000000001e"),
        "{}",
        problems[2]
    );
    assert!(
        problems[2].contains("header claims seq 30..=32"),
        "{}",
        problems[2]
    );
    assert!(
        problems[2].contains("holds r1:31 where r1:30 belongs"),
        "{}",
        problems[2]
    );
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
    // 12..=19, 21..=29 and 34..=40, and the two bad records.
    assert!(
        r.stdout.contains(
            "dropped r1 seq 10..=40: 24 operations and 2 bad records \
             (holding operations that cannot be read); 5 records deleted ("
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("r1 now ends at seq 9"), "{}", r.stdout);
    assert_eq!(braid_log(&b.dir, &["verify"]).code, Some(0));
    // Nothing left to repair.
    let r = braid_log(&b.dir, &["repair", "--origin", "1"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
    assert!(
        r.stdout.contains("seq 1..=9, 9 operations in 2 records"),
        "{}",
        r.stdout
    );
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
    // Region 1's log holding region 2's operations 1..=10 (three appends:
    // records 1..=4, 5..=7, 8..=10) and its own 1..=5 (one record), of
    // which 3..=5 saw region 2's first 6.
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = braid::oplog::OpLog::open(tmp.path(), RegionId(1), "one").unwrap();
        let theirs: Vec<_> = (1..=10).map(|s| op_at(2, s, 0)).collect();
        let ours: Vec<_> = (1..=5)
            .map(|s| op_at(1, s, if s >= 3 { 6 } else { 2 }))
            .collect();
        log.append(&theirs[..4], true).unwrap();
        log.append(&theirs[4..7], true).unwrap();
        log.append(&theirs[7..], true).unwrap();
        log.append(&ours, true).unwrap();
    }
    let r = braid_log(tmp.path(), &["summary"]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("summary: 2 origins, 15 operations in 4 records"),
        "{}",
        r.stdout
    );
    {
        let db = raw_db(tmp.path());
        let log = db.cf_handle("log").unwrap();
        let (key, mut v, first, last) = record_holding(&db, RegionId(2), 5);
        assert_eq!((first, last), (5, 7));
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
        r.stdout.contains(
            "drops: r2 seq 5..=10: 3 operations and 1 bad record \
             (holding operations that cannot be read); 2 records deleted ("
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "warning: 3 operations of r1 from seq 3 on depend on dropped operations of r2"
        ),
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
    // Region 1's own operations are untouched until asked for.
    let r = braid_log(tmp.path(), &["dump", "--origin", "1", "--json"]);
    assert_eq!(r.stdout.lines().count(), 5, "{}", r.stdout);
    // Cutting at 3 cuts inside the record 1..=5: it is rewritten to keep
    // 1..=2.
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
    assert!(r.stdout.contains("keeps: r1 seq 1..=2"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "dropped r1 seq 3..=5: 3 operations; the record of seq 1..=5 rewritten to keep seq 1..=2; \
             r1 now ends at seq 2"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(braid_log(tmp.path(), &["verify"]).code, Some(0));
    let r = braid_log(tmp.path(), &["dump", "--origin", "1"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![1, 2]);
    let r = braid_log(tmp.path(), &["summary"]);
    assert!(
        r.stdout
            .contains("summary: 2 origins, 6 operations in 2 records"),
        "{}",
        r.stdout
    );
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
        r.stdout.contains("summary: 1 origin, 20 operations in "),
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
        r.stdout.contains("summary: 1 origin, 40 operations in "),
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

#[test]
fn repair_inside_overlapping_records_leaves_nothing_from_the_cut() {
    // r1 1..=6, then 3..=6 and 4 written again: `--from 5` must cut the
    // first two, though the last record starting before 5 (4) ends before.
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = braid::oplog::OpLog::open(tmp.path(), RegionId(1), "one").unwrap();
        let ops: Vec<_> = (1..=6).map(|s| op_at(1, s, 0)).collect();
        log.append(&ops, true).unwrap();
        log.append(&ops[2..6], true).unwrap();
        log.append(&ops[3..4], true).unwrap();
    }
    let r = braid_log(tmp.path(), &["verify"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let r = braid_log(
        tmp.path(),
        &["repair", "--origin", "1", "--from", "5", "--yes"],
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "dropped r1 seq 5..=6: 2 operations; the record of seq 1..=6 rewritten to keep seq 1..=4, \
             the record of seq 3..=6 rewritten to keep seq 3..=4; r1 now ends at seq 4"
        ),
        "{}",
        r.stdout
    );
    let r = braid_log(tmp.path(), &["dump", "--origin", "1"]);
    assert_eq!(dumped_seqs(&r.stdout), vec![1, 2, 3, 4]);
    assert_eq!(braid_log(tmp.path(), &["verify"]).code, Some(0));
}
