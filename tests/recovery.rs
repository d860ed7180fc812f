//! Recovery: newest snapshot plus the log after it; a corrupt log record
//! stops start-up with a message naming it and how to repair it.

mod common;

use common::server::Braid;
use redis::Commands;
use std::process::Command;

#[test]
fn restart_recovers_from_snapshot_plus_log_tail() {
    let mut b = Braid::start(&["--snapshot-every-ops", "20"]);
    {
        let mut c = b.conn();
        for i in 0..50 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
            // Give the background snapshotter a chance between batches.
            if i % 10 == 9 {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
    }
    b.kill9();
    let snapshots = std::fs::read_dir(b.dir.join("snapshots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".braid"))
        })
        .count();
    assert!(snapshots >= 1, "a snapshot was written");
    b.restart();
    let mut c = b.conn();
    for i in 0..50 {
        assert_eq!(c.get::<_, i64>(format!("k{i}")).unwrap(), i);
    }
}

#[test]
fn corrupt_log_record_stops_start_up_naming_it() {
    let mut b = Braid::start(&["--snapshot-every-ops", "0", "--snapshot-every-secs", "0"]);
    {
        let mut c = b.conn();
        for i in 0..40 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    assert!(b.terminate().expect("exits").success());
    // Damage the record holding operation r1:25 behind the server's back
    // (a record holds a run of operations, keyed by its first).
    let first = {
        let path = b.dir.join("oplog");
        let cfs = ["log", "meta"];
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, cfs).unwrap();
        let log = db.cf_handle("log").unwrap();
        let (key, mut value, first) = db
            .iterator_cf(log, rocksdb::IteratorMode::Start)
            .map(|item| item.expect("readable record"))
            .find_map(|(k, v)| {
                let (origin, first, last) = braid::oplog::record_span(&k, &v)?;
                (origin == braid::crdt::RegionId(1) && first <= 25 && 25 <= last)
                    .then(|| (k.to_vec(), v.to_vec(), first))
            })
            .expect("a record holds r1:25");
        let last = value.len() - 1;
        value[last] ^= 0xff;
        db.put_cf(log, key, value).unwrap();
        first
    };
    let out = Command::new(env!("CARGO_BIN_EXE_braid-server"))
        .args([
            "--port",
            &common::server::free_port().to_string(),
            "--data-dir",
        ])
        .arg(&b.dir)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start-up must refuse a corrupt log");
    assert!(
        stderr.contains(&format!("corrupt op-log record r1:{first} ")),
        "{stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains("repair"), "{stderr}");
}
