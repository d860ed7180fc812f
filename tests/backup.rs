//! `braid-backup`: online backups of real `braid-server` processes, their
//! verification, and restores (as the same region with peers, and as a new
//! region).

mod common;

use braid::backup::{self, archive::ArchiveReader, Manifest, Progress};
use common::server::{free_port, free_udp_port, gen_certs, Braid};
use redis::Commands;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid-backup"))
        .args(args)
        .output()
        .expect("braid-backup runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the tool, expecting success.
fn ok(args: &[&str]) -> String {
    let o = tool(args);
    assert!(
        o.status.success(),
        "braid-backup {args:?} failed: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs the tool, expecting failure (exit code 1); returns stderr.
fn fails(args: &[&str]) -> String {
    let o = tool(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "braid-backup {args:?}: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `braid-backup create` of the server on `port` into `dest`.
fn create(port: u16, dest: &Path, archive: bool) -> String {
    let port = port.to_string();
    let form = if archive { "--archive" } else { "--dir" };
    ok(&["create", "--port", &port, form, s(dest)])
}

fn manifest_of(backup: &Path) -> Manifest {
    backup::verify(backup, Progress::Hidden)
        .expect("backup verifies")
        .manifest
}

fn vv(c: &mut redis::Connection) -> String {
    redis::cmd("BRAID.VV").query(c).expect("vv")
}

fn digest(c: &mut redis::Connection) -> String {
    redis::cmd("BRAID.DIGEST").query(c).expect("digest")
}

/// Whether `dir` is absent or an empty directory.
fn absent_or_empty(dir: &Path) -> bool {
    !dir.exists()
        || fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
}

/// A server with a few keys of every type, and a backup of it in both
/// forms under `root`.
fn small_backups(root: &Path) -> (Braid, PathBuf, PathBuf) {
    let server = Braid::start(&[]);
    let mut c = server.conn();
    for i in 0..100 {
        let _: () = c.set(format!("k{i}"), format!("value-{i}")).expect("set");
    }
    let _: () = c.sadd("set", &["a", "b", "c"]).expect("sadd");
    let _: () = c.hset("hash", "f", "v").expect("hset");
    let _: () = c.rpush("list", &[1, 2, 3]).expect("rpush");
    let _: () = c.zadd("zset", "m", 1.5).expect("zadd");
    let _: () = c.incr("counter", 7).expect("incr");
    let dir = root.join("dir-backup");
    let archive = root.join("backup.braidbak");
    create(server.port, &dir, false);
    create(server.port, &archive, true);
    (server, dir, archive)
}

#[test]
fn a_backup_taken_while_writes_flow_restores_to_the_source_state_at_its_version_vector() {
    let root = tempfile::tempdir().expect("temp dir");
    let source = Braid::start(&["--fsync", "everysec"]);
    let _: () = source.conn().set("before", "1").expect("set");
    // One writer: SET w:<i> i, one operation each, numbered after `before`
    // (region 1's operation 1), so operation n of region 1 is w:<n-2>.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let mut c = source.conn();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: () = c.set(format!("w:{i}"), i).expect("set");
                i += 1;
                written.store(i, Ordering::Relaxed);
            }
        })
    };
    while written.load(Ordering::Relaxed) < 3000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let dir = root.path().join("b1");
    let archive = root.path().join("b2.braidbak");
    let at_start = written.load(Ordering::Relaxed);
    let summary = create(source.port, &dir, false);
    let between = written.load(Ordering::Relaxed);
    create(source.port, &archive, true);
    let at_end = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(
        summary.contains("backed up region local (id 1)"),
        "{summary}"
    );
    assert!(
        at_end > between && between > at_start,
        "writes did not continue during the backups ({at_start}, {between}, {at_end})"
    );

    for (backup, as_new) in [(&dir, true), (&archive, false)] {
        let m = manifest_of(backup);
        let own = m.vv().get(braid::crdt::RegionId(1));
        let keys = own - 1; // w:0 .. w:<own-2>, plus `before`
        assert!(keys >= 3000, "{m:?}");
        let target = root.path().join(format!(
            "restored-{}",
            backup.file_name().unwrap().to_string_lossy()
        ));
        let flags: Vec<&str> = if as_new {
            ok(&[
                "restore",
                s(backup),
                "--data-dir",
                s(&target),
                "--as-region",
                "copy",
                "--region-id",
                "9",
            ]);
            vec!["--region", "copy", "--region-id", "9"]
        } else {
            ok(&["restore", s(backup), "--data-dir", s(&target)]);
            assert!(target.join("RESTORED").exists());
            vec![]
        };
        let restored = Braid::start_in(&target, &flags);
        let mut c = restored.conn();
        assert_eq!(digest(&mut c), m.digest, "digest of {}", backup.display());
        assert_eq!(vv(&mut c), m.version_vector);
        let n: u64 = redis::cmd("DBSIZE").query(&mut c).expect("dbsize");
        assert_eq!(n, keys + 1, "keys of {}", backup.display());
        let before: Option<String> = c.get("before").expect("get");
        assert_eq!(before.as_deref(), Some("1"));
        let last: Option<u64> = c.get(format!("w:{}", keys - 1)).expect("get");
        assert_eq!(last, Some(keys - 1));
        let after: Option<u64> = c.get(format!("w:{keys}")).expect("get");
        assert_eq!(
            after, None,
            "a write after the backup's version vector is in it"
        );
        // Without peers the marker is dropped at start and writes go on.
        let _: () = c.set("new", "x").expect("writes are taken");
        assert!(!target.join("RESTORED").exists());
    }
}

#[test]
fn a_restored_directory_refuses_to_start_as_another_region() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_server, dir, _) = small_backups(root.path());
    let target = root.path().join("data");
    ok(&["restore", s(&dir), "--data-dir", s(&target)]);
    let out = Command::new(env!("CARGO_BIN_EXE_braid-server"))
        .args(["--port", &free_port().to_string(), "--data-dir", s(&target)])
        .args(["--region", "eu", "--region-id", "2"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("restored from a backup of region local (id 1)")
            && err.contains("configured as region eu (id 2)"),
        "{err}"
    );
    assert!(
        !target.join("oplog").exists(),
        "the refused start touched the directory"
    );
}

#[test]
fn a_truncated_or_corrupted_archive_gives_a_clear_error_and_restores_nothing() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_server, _, archive) = small_backups(root.path());
    let bytes = fs::read(&archive).expect("archive");
    let target = root.path().join("data");
    let broken = root.path().join("broken.braidbak");
    for cut in [10, 100, bytes.len() / 2, bytes.len() - 30, bytes.len() - 1] {
        fs::write(&broken, &bytes[..cut]).expect("write");
        let err = fails(&["restore", s(&broken), "--data-dir", s(&target)]);
        assert!(
            err.contains("broken.braidbak") && err.contains("truncated"),
            "cut at {cut}: {err}"
        );
        assert!(!target.exists(), "cut at {cut}: something was restored");
        let err = fails(&["verify", s(&broken)]);
        assert!(err.contains("truncated"), "{err}");
    }
    // An existing empty target stays empty.
    fs::create_dir(&target).expect("mkdir");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x04;
    fs::write(&broken, &damaged).expect("write");
    let err = fails(&["restore", s(&broken), "--data-dir", s(&target)]);
    assert!(err.contains("CRC"), "{err}");
    assert!(absent_or_empty(&target), "something was restored");
    let siblings: Vec<_> = fs::read_dir(root.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp-restore"))
        .collect();
    assert!(siblings.is_empty(), "staging left behind: {siblings:?}");
    // The intact archive restores into it.
    ok(&["restore", s(&archive), "--data-dir", s(&target)]);
    assert!(target.join("snapshots").is_dir());
}

/// Offsets of interest in an archive: the manifest, the snapshot's first,
/// middle and last bytes, the trailer.
fn archive_landmarks(path: &Path) -> Vec<(String, usize)> {
    let len = fs::metadata(path).expect("size").len() as usize;
    let file = fs::File::open(path).expect("open");
    let (mut a, manifest) = ArchiveReader::open(BufReader::new(file)).expect("archive");
    let f = a.next_file().expect("file").expect("one file");
    let start = f.offset as usize;
    let end = start + f.size as usize;
    vec![
        ("magic".into(), 0),
        ("version".into(), 8),
        ("manifest length".into(), 10),
        ("manifest".into(), 13 + manifest.len() / 2),
        ("file count".into(), 13 + manifest.len() + 4),
        ("file header".into(), start - 5),
        ("snapshot start".into(), start),
        ("snapshot middle".into(), (start + end) / 2),
        ("snapshot end".into(), end - 1),
        ("trailer".into(), end + 2),
        ("trailer crc".into(), len - 1),
    ]
}

#[test]
fn verify_catches_one_flipped_byte_anywhere() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_server, dir, archive) = small_backups(root.path());
    ok(&["verify", s(&dir)]);
    ok(&["verify", s(&archive)]);

    // Through the tool, at landmarks: exit code 1 and the file named.
    let manifest = dir.join("manifest.toml");
    let snapshot = dir.join(manifest_of(&dir).snapshot);
    let snap_len = fs::metadata(&snapshot).expect("size").len() as usize;
    let man_len = fs::metadata(&manifest).expect("size").len() as usize;
    let mut cases: Vec<(PathBuf, String, usize)> = vec![
        (manifest.clone(), "manifest start".into(), 0),
        (manifest.clone(), "manifest middle".into(), man_len / 2),
        (manifest.clone(), "manifest checksum".into(), man_len - 3),
        (snapshot.clone(), "snapshot start".into(), 0),
        (snapshot.clone(), "snapshot middle".into(), snap_len / 2),
        (snapshot.clone(), "snapshot end".into(), snap_len - 1),
    ];
    for (what, at) in archive_landmarks(&archive) {
        cases.push((archive.clone(), format!("archive {what}"), at));
    }
    for (file, what, at) in &cases {
        let original = fs::read(file).expect("read");
        let mut b = original.clone();
        b[*at] ^= 0x01;
        fs::write(file, &b).expect("write");
        let backup = if file == &archive { &archive } else { &dir };
        let err = fails(&["verify", s(backup)]);
        let named = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            err.contains(&named) || err.contains(&s(backup).to_string()),
            "{what}: {err}"
        );
        fs::write(file, &original).expect("restore the byte");
    }

    // In-process, every byte of every file, each bit position in turn.
    let mut checked = 0;
    for file in [&manifest, &snapshot, &archive] {
        let original = fs::read(file).expect("read");
        let backup = if file == &archive { &archive } else { &dir };
        for at in 0..original.len() {
            let mut b = original.clone();
            b[at] ^= 1 << (at % 8);
            fs::write(file, &b).expect("write");
            assert!(
                backup::verify(backup, Progress::Hidden).is_err(),
                "flipped bit {} of byte {at} of {} not caught",
                at % 8,
                file.display()
            );
            checked += 1;
        }
        fs::write(file, &original).expect("restore the byte");
    }
    assert!(checked > 1000);
    backup::verify(&dir, Progress::Hidden).expect("intact again");
    // A file that is not in the manifest, or a missing one.
    fs::write(dir.join("extra"), b"x").expect("write");
    let err = fails(&["verify", s(&dir)]);
    assert!(err.contains("extra") && err.contains("not listed"), "{err}");
    fs::remove_file(dir.join("extra")).expect("rm");
    fs::remove_file(&snapshot).expect("rm");
    let err = fails(&["verify", s(&dir)]);
    assert!(err.contains("cannot be opened"), "{err}");
}

#[test]
fn restore_refuses_a_non_empty_data_dir_and_a_used_region_id() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_server, dir, archive) = small_backups(root.path());
    let target = root.path().join("data");
    fs::create_dir(&target).expect("mkdir");
    fs::write(target.join("keep.txt"), b"mine").expect("write");
    let err = fails(&["restore", s(&archive), "--data-dir", s(&target)]);
    assert!(
        err.contains("not empty") && err.contains("keep.txt"),
        "{err}"
    );
    let names: Vec<_> = fs::read_dir(&target)
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);
    assert_eq!(fs::read(target.join("keep.txt")).expect("read"), b"mine");
    // A file where the directory should be.
    let err = fails(&[
        "restore",
        s(&dir),
        "--data-dir",
        s(&target.join("keep.txt")),
    ]);
    assert!(err.contains("not a directory"), "{err}");
    // Region id 1 issued the backup's operations: not a new region.
    let fresh = root.path().join("fresh");
    let err = fails(&[
        "restore",
        s(&dir),
        "--data-dir",
        s(&fresh),
        "--as-region",
        "sa",
        "--region-id",
        "1",
    ]);
    assert!(err.contains("id 1") && err.contains("was used"), "{err}");
    assert!(!fresh.exists());
    // Usage errors exit with 2.
    let o = tool(&[
        "restore",
        s(&dir),
        "--data-dir",
        s(&fresh),
        "--as-region",
        "sa",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = tool(&["create", "--port", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn list_shows_every_backup_and_the_unreadable_ones() {
    let root = tempfile::tempdir().expect("temp dir");
    let (_server, dir, archive) = small_backups(root.path());
    let m = manifest_of(&dir);
    let mut bytes = fs::read(&archive).expect("read");
    bytes[20] ^= 0xff;
    fs::write(root.path().join("bad.braidbak"), &bytes).expect("write");
    fs::write(root.path().join("notes.txt"), b"not a backup").expect("write");
    let out = ok(&["list", s(root.path())]);
    assert!(
        out.contains("dir-backup/") && out.contains("backup.braidbak"),
        "{out}"
    );
    assert!(
        out.contains("local (1)") && out.contains(&m.version_vector),
        "{out}"
    );
    assert!(
        out.contains(&backup::manifest::format_utc(m.created_unix_ms)),
        "{out}"
    );
    assert!(
        out.contains("bad.braidbak") && out.contains("UNREADABLE"),
        "{out}"
    );
    assert!(!out.contains("notes.txt"), "{out}");
    assert!(out.contains("3 backup(s)"), "{out}");
}

/// Two regions, us (1) and eu (2), replicating.
struct Pair {
    root: tempfile::TempDir,
    udp: [u16; 2],
    servers: [Option<Braid>; 2],
    extra: Vec<String>,
}

const NAMES: [&str; 2] = ["us", "eu"];

impl Pair {
    fn new(extra: &[&str]) -> Pair {
        let root = tempfile::tempdir().expect("temp dir");
        gen_certs(&root.path().join("certs"), "us,eu");
        // A restored region never stops waiting for its peers; a short
        // start-up wait shows that it does not give up.
        fs::write(
            root.path().join("braid.toml"),
            "[replication]\nstartup_peer_wait_ms = 300\n",
        )
        .expect("config");
        Pair {
            root,
            udp: [free_udp_port(), free_udp_port()],
            servers: [None, None],
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(NAMES[i])
    }

    fn start(&mut self, i: usize) {
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
            self.root.path().join("certs").display().to_string(),
            "--fsync".into(),
            "everysec".into(),
            "--peer".into(),
            format!("{}={}@127.0.0.1:{}", NAMES[j], j + 1, self.udp[j]),
        ];
        args.extend(self.extra.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.servers[i] = Some(Braid::start_in(&self.dir(i), &refs));
    }

    fn server(&self, i: usize) -> &Braid {
        self.servers[i].as_ref().expect("running")
    }

    /// A client once the region takes writes.
    fn conn(&self, i: usize) -> redis::Connection {
        let mut c = self.server(i).conn();
        let deadline = Instant::now() + Duration::from_secs(60);
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
                "{} never took writes: {info}",
                NAMES[i]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn converge(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen: Vec<(String, String)> = (0..2)
                .map(|i| {
                    let mut c = self.server(i).conn();
                    (vv(&mut c), digest(&mut c))
                })
                .collect();
            if seen[0] == seen[1] {
                return seen[0].0.clone();
            }
            assert!(Instant::now() < deadline, "no convergence: {seen:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn incr(&self, i: usize, times: usize) -> i64 {
        let mut c = self.conn(i);
        for _ in 0..times {
            let _: i64 = c.incr("n", 1).expect("incr");
        }
        times as i64
    }
}

/// Sequence of region `id` in a `BRAID.VV` text.
fn seq_of(vv: &str, id: u16) -> u64 {
    backup::manifest::parse_vv(vv)
        .expect("vv")
        .get(braid::crdt::RegionId(id))
}

/// Waits until `c`'s last snapshot is number `id` or later.
fn await_snapshot(c: &mut redis::Connection, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(c)
            .expect("info");
        let done: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("last_snapshot_id:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if done >= id {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "snapshot {id} never written: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `peer_snapshot`: eu truncates its log of us's operations first, so us
/// gets them back as a snapshot rather than from eu's log.
fn an_old_backup_of_a_region_with_peers_reuses_no_sequence_number(peer_snapshot: bool) {
    let mut pair = Pair::new(&[]);
    pair.start(0);
    pair.start(1);
    let mut total = pair.incr(0, 10) + pair.incr(1, 5);
    pair.converge();
    let bak = pair.root.path().join("us-old");
    create(pair.server(0).port, &bak, false);
    let old = manifest_of(&bak);
    assert_eq!(seq_of(&old.version_vector, 1), 10);
    // us goes on: eu gets operations 11..=30 of us.
    total += pair.incr(0, 20) + pair.incr(1, 3);
    let high = pair.converge();
    assert_eq!(seq_of(&high, 1), 30);
    if peer_snapshot {
        // Once us has acknowledged everything, a snapshot of eu truncates
        // eu's log of us's operations.
        let mut eu = pair.server(1).conn();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut eu)
                .expect("info");
            if info.contains("acked_vv={r1:30, r2:8}") {
                break;
            }
            assert!(Instant::now() < deadline, "us never acknowledged: {info}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let id: u64 = redis::cmd("BRAID.SNAPSHOT")
            .query(&mut eu)
            .expect("snapshot");
        await_snapshot(&mut eu, id);
    }

    // us loses its disk; eu is down while the old backup is restored.
    pair.servers[0].as_mut().expect("us").kill9();
    pair.servers[0] = None;
    pair.servers[1].as_mut().expect("eu").terminate();
    pair.servers[1] = None;
    fs::remove_dir_all(pair.dir(0)).expect("wipe us");
    ok(&["restore", s(&bak), "--data-dir", s(&pair.dir(0))]);
    pair.start(0);
    {
        // No peer has answered: no writes, well past the start-up wait.
        let mut c = pair.server(0).conn();
        std::thread::sleep(Duration::from_millis(1200));
        let err = c
            .set::<_, _, ()>("x", "1")
            .expect_err("a restored region waits for its peers");
        assert_eq!(err.code(), Some("LOADING"), "{err}");
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut c)
            .expect("info");
        assert!(
            info.contains("restored_from_backup:1") && info.contains("writes:waiting-for-peers"),
            "{info}"
        );
        assert!(pair.dir(0).join("RESTORED").exists());
    }
    pair.start(1);
    // Once eu greets it, us gets its operations 11..=30 back and numbers new
    // ones after them.
    drop(pair.conn(0));
    let adopted = fs::read_dir(pair.dir(0).join("snapshots"))
        .expect("snapshots")
        .any(|e| {
            let name = e.expect("entry").file_name();
            name.to_string_lossy()
                .starts_with("snapshot-00000000000000000038-")
        });
    assert_eq!(
        adopted, peer_snapshot,
        "a snapshot from eu was (not) installed"
    );
    total += pair.incr(0, 7);
    let end = pair.converge();
    assert_eq!(seq_of(&end, 1), 37, "{end}");
    for (i, name) in NAMES.iter().enumerate() {
        let n: i64 = pair.conn(i).get("n").expect("n");
        assert_eq!(
            n, total,
            "{name}: an increment was lost or a sequence number reused"
        );
    }
    assert!(
        !pair.dir(0).join("RESTORED").exists(),
        "marker kept after the sync"
    );
    let mut c = pair.conn(0);
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut c)
        .expect("info");
    assert!(info.contains("restored_from_backup:0"), "{info}");
}

#[test]
fn an_old_backup_restored_next_to_a_peer_log_reuses_no_sequence_number() {
    an_old_backup_of_a_region_with_peers_reuses_no_sequence_number(false);
}

#[test]
fn an_old_backup_restored_next_to_a_peer_snapshot_reuses_no_sequence_number() {
    an_old_backup_of_a_region_with_peers_reuses_no_sequence_number(true);
}

#[test]
fn create_authenticates_when_the_region_needs_a_password() {
    let server = Braid::start(&["--requirepass", "s3cret"]);
    let root = tempfile::tempdir().expect("temp dir");
    let dest = root.path().join("b");
    let port = server.port.to_string();
    let err = fails(&["create", "--port", &port, "--dir", s(&dest)]);
    assert!(err.contains("NOAUTH"), "{err}");
    let err = fails(&["create", "--port", &port, "-a", "wrong", "--dir", s(&dest)]);
    assert!(err.contains("AUTH failed"), "{err}");
    assert!(!dest.exists());
    ok(&["create", "--port", &port, "-a", "s3cret", "--dir", s(&dest)]);
    ok(&["verify", s(&dest)]);
}

#[test]
fn braid_snapshot_reports_through_info_persistence() {
    let server = Braid::start(&[]);
    let mut c = server.conn();
    let _: () = c.set("a", "1").expect("set");
    let id: u64 = redis::cmd("BRAID.SNAPSHOT")
        .query(&mut c)
        .expect("snapshot");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut c)
            .expect("info");
        if info.contains(&format!("last_snapshot_id:{id}\r\n")) {
            let field = |k: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}:")))
                    .expect(k)
                    .trim()
                    .to_string()
            };
            let file = PathBuf::from(field("last_snapshot_file"));
            assert!(file.is_absolute() && file.exists(), "{info}");
            assert_eq!(field("last_snapshot_vv"), vv(&mut c));
            assert_eq!(field("last_snapshot_digest"), digest(&mut c));
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One million keys: times `create`, `verify` and `restore` (and the
/// restored region's start). `cargo test --release --test backup -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: loads one million keys"]
fn one_million_keys_timings() {
    let keys: usize = std::env::var("BACKUP_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().expect("temp dir");
    let server = Braid::start(&["--fsync", "everysec", "--snapshot-every-ops", "0"]);
    let mut c = server.conn();
    let t = Instant::now();
    for start in (0..keys).step_by(10_000) {
        let mut p = redis::pipe();
        for i in start..(start + 10_000).min(keys) {
            p.cmd("SET")
                .arg(format!("key:{i:08}"))
                .arg(format!("value-{i:08}-abcdefghijklmnop"))
                .ignore();
        }
        let _: () = p.query(&mut c).expect("load");
    }
    println!("loaded {keys} keys in {:.2} s", t.elapsed().as_secs_f64());
    for (name, archive) in [("dir", false), ("archive", true)] {
        let dest = root.path().join(format!("bench-{name}"));
        let t = Instant::now();
        let out = create(server.port, &dest, archive);
        let create_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let nv = ok(&[
            "create",
            "--port",
            &server.port.to_string(),
            if archive { "--archive" } else { "--dir" },
            s(&root.path().join(format!("nv-{name}"))),
            "--no-verify",
        ]);
        let create_nv_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        ok(&["verify", s(&dest)]);
        let verify_s = t.elapsed().as_secs_f64();
        let target = root.path().join(format!("data-{name}"));
        let t = Instant::now();
        ok(&[
            "restore",
            s(&dest),
            "--data-dir",
            s(&target),
            "--as-region",
            "copy",
            "--region-id",
            "5",
        ]);
        let restore_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let restored = Braid::start_in(&target, &["--region", "copy", "--region-id", "5"]);
        let mut rc = restored.conn();
        let n: usize = redis::cmd("DBSIZE").query(&mut rc).expect("dbsize");
        let start_s = t.elapsed().as_secs_f64();
        assert_eq!(n, keys);
        println!("{name}: {out}");
        println!("{name} (no verify): {nv}");
        println!(
            "TIMING {name}: create {create_s:.2} s (without verify {create_nv_s:.2} s), verify {verify_s:.2} s, restore {restore_s:.2} s, restored server start {start_s:.2} s"
        );
    }
}
