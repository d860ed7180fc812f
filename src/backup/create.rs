//! `create`: asks a running region for a fresh snapshot and copies it, with
//! a manifest, into a backup directory or archive.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::archive::ArchiveWriter;
use super::manifest::{
    crc_hex, digest_hex, format_utc, snapshot_name_ops, vv_text, FileEntry, Manifest,
};
use super::progress::bytes_bar;
use super::resp::{Client, Reply};
use super::restore::{check_empty_target, copy_file, move_into_place, staging_path, sync_dir};
use super::verify::verify;
use super::{BackupError, Progress, Result, BACKUP_FORMAT_VERSION, MANIFEST_NAME};
use crate::crdt::snapshot as codec;

/// Where a backup goes.
#[derive(Clone, Debug)]
pub enum Destination {
    /// A new directory (must not exist or be empty).
    Directory(PathBuf),
    /// A new archive file (must not exist).
    Archive(PathBuf),
}

impl Destination {
    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            Destination::Directory(p) | Destination::Archive(p) => p,
        }
    }
}

/// How to take a backup.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// The region's client address.
    pub host: String,
    /// Its client port.
    pub port: u16,
    /// AUTH password, if the region requires one.
    pub password: Option<String>,
    /// Where the backup goes.
    pub destination: Destination,
    /// Longest wait for the snapshot.
    pub timeout: Duration,
    /// Verify the backup once written (as `verify` does).
    pub verify: bool,
    /// Progress bars.
    pub progress: Progress,
}

/// What [`create`] did.
#[derive(Clone, Debug)]
pub struct CreateReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Where it is.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// Time from the request until the region had written the snapshot.
    pub snapshot: Duration,
    /// Time to copy it into the backup.
    pub copy: Duration,
    /// Time to verify the result, if it was verified.
    pub verify: Option<Duration>,
}

/// What `INFO persistence` says about the last snapshot.
struct LastSnapshot {
    file: PathBuf,
    vv: String,
    digest: String,
}

fn remote(opts: &CreateOptions, what: impl std::fmt::Display) -> BackupError {
    BackupError(format!("{}:{}: {what}", opts.host, opts.port))
}

/// Takes an online backup: `BRAID.SNAPSHOT` makes the region freeze its
/// state (writes continue) and write it as a snapshot file; once `INFO
/// persistence` shows it written, the file is opened at once (an open file
/// survives the region pruning it) and copied with a manifest into the
/// destination, built beside it and renamed into place. Must run on the
/// region's machine: the snapshot is read from the region's data directory.
pub fn create(opts: &CreateOptions) -> Result<CreateReport> {
    let dest = opts.destination.path();
    match &opts.destination {
        Destination::Directory(p) => check_empty_target(p, "write a backup there")?,
        Destination::Archive(p) => {
            if p.exists() {
                return Err(BackupError::at(p, "refusing to overwrite an existing file"));
            }
        }
    }
    let t0 = Instant::now();
    let mut client = Client::connect(&opts.host, opts.port, Duration::from_secs(10))
        .map_err(|e| remote(opts, format!("cannot connect: {e}")))?;
    if let Some(pw) = &opts.password {
        match client.call(&["AUTH", pw]).map_err(|e| remote(opts, e))? {
            Reply::Simple(_) => {}
            Reply::Error(e) => return Err(remote(opts, format!("AUTH failed: {e}"))),
            other => return Err(remote(opts, format!("AUTH: unexpected reply {other:?}"))),
        }
    }
    let server = client.info("server").map_err(|e| remote(opts, e))?;
    let region = server
        .get("region")
        .cloned()
        .ok_or_else(|| remote(opts, "INFO server names no region: not a braid-server?"))?;
    let region_id: u16 = server
        .get("region_id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| remote(opts, "INFO server has no valid region_id"))?;
    let braid_version = server.get("braid_version").cloned().unwrap_or_default();

    // Open the file as soon as it is written: the region prunes old
    // snapshots, but an open file stays readable until it is closed. If
    // later snapshots pruned it first (a narrow window), ask again.
    let mut attempt = 1;
    let (last, file) = loop {
        let id = request_snapshot(&mut client, opts)?;
        let last = await_snapshot(&mut client, opts, id)?;
        match File::open(&last.file) {
            Ok(f) => break (last, f),
            // Only when its directory is here: on another machine a new
            // snapshot would not help.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && attempt < 3
                    && last.file.parent().is_some_and(Path::is_dir) =>
            {
                attempt += 1
            }
            Err(e) => {
                return Err(BackupError::at(
                    &last.file,
                    format!("cannot open the region's snapshot ({e}); braid-backup must run on the region's machine with read access to its data directory"),
                ))
            }
        }
    };
    let snapshot_time = t0.elapsed();
    let name = last
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| snapshot_name_ops(n).is_some())
        .ok_or_else(|| BackupError::at(&last.file, "not a snapshot file name"))?;
    let created_unix_ms = name
        .trim_end_matches(".braid")
        .rsplit('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(crate::server::unix_ms);
    let size = file
        .metadata()
        .map_err(|e| BackupError::at(&last.file, e))?
        .len();
    let mut file = file;
    let header = codec::read_header(BufReader::new(&mut file))
        .map_err(|e| BackupError::at(&last.file, format!("not a valid snapshot: {e}")))?;
    if vv_text(&header.version_vector) != last.vv || digest_hex(header.digest) != last.digest {
        return Err(BackupError::at(
            &last.file,
            format!(
                "covers {} with digest {}, but the region reported {} and {} for it",
                vv_text(&header.version_vector),
                digest_hex(header.digest),
                last.vv,
                last.digest
            ),
        ));
    }
    let mut manifest = Manifest {
        format_version: BACKUP_FORMAT_VERSION,
        created_unix_ms,
        created: format_utc(created_unix_ms),
        region,
        region_id,
        source: format!("{}:{}", opts.host, opts.port),
        braid_version,
        version_vector: last.vv.clone(),
        digest: last.digest.clone(),
        key_count: header.key_count,
        snapshot: name.clone(),
        files: Vec::new(),
    };

    let t1 = Instant::now();
    let bytes = match &opts.destination {
        Destination::Directory(target) => {
            let tmp = staging_path(target, "tmp-backup")?;
            let built = write_dir(
                &tmp,
                &mut file,
                &last.file,
                size,
                &mut manifest,
                opts.progress,
            )
            .and_then(|b| {
                move_into_place(&tmp, target).map_err(|e| {
                    BackupError::at(target, format!("cannot move the backup into place: {e}"))
                })?;
                Ok(b)
            });
            if built.is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
            built?
        }
        Destination::Archive(target) => {
            let tmp = staging_path(target, "tmp-backup")?;
            let built = write_archive(
                &tmp,
                &mut file,
                &last.file,
                size,
                &mut manifest,
                opts.progress,
            )
            .and_then(|b| {
                if target.exists() {
                    return Err(BackupError::at(
                        target,
                        "appeared while the backup was written; refusing to overwrite it",
                    ));
                }
                move_into_place(&tmp, target).map_err(|e| {
                    BackupError::at(target, format!("cannot move the archive into place: {e}"))
                })?;
                Ok(b)
            });
            if built.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            built?
        }
    };
    let copy = t1.elapsed();
    let verify_time = if opts.verify {
        let t2 = Instant::now();
        verify(dest, opts.progress)
            .map_err(|e| BackupError(format!("the backup was written but does not verify: {e}")))?;
        Some(t2.elapsed())
    } else {
        None
    };
    Ok(CreateReport {
        manifest,
        path: dest.to_path_buf(),
        bytes,
        snapshot: snapshot_time,
        copy,
        verify: verify_time,
    })
}

/// Sends `BRAID.SNAPSHOT` (waiting while another snapshot runs); returns the
/// number of the snapshot it started.
fn request_snapshot(client: &mut Client, opts: &CreateOptions) -> Result<u64> {
    let deadline = Instant::now() + opts.timeout;
    loop {
        match client.call(&["BRAID.SNAPSHOT"]).map_err(|e| remote(opts, e))? {
            Reply::Integer(n) if n > 0 => return Ok(n as u64),
            Reply::Error(e) if e.contains("in progress") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Reply::Error(e) if e.to_ascii_lowercase().contains("unknown command") => {
                return Err(remote(opts, "the region does not know BRAID.SNAPSHOT (a braid-server older than braid-backup?)"))
            }
            Reply::Error(e) => return Err(remote(opts, format!("BRAID.SNAPSHOT refused: {e}"))),
            other => return Err(remote(opts, format!("BRAID.SNAPSHOT: unexpected reply {other:?}"))),
        }
    }
}

fn field(info: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    info.get(key).and_then(|v| v.parse().ok())
}

/// Polls `INFO persistence` until snapshot `id` (or a later one) is written.
fn await_snapshot(client: &mut Client, opts: &CreateOptions, id: u64) -> Result<LastSnapshot> {
    let deadline = Instant::now() + opts.timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        let info = client.info("persistence").map_err(|e| remote(opts, e))?;
        if field(&info, "last_snapshot_id").is_some_and(|done| done >= id) {
            let get = |k: &str| info.get(k).cloned().unwrap_or_default();
            let file = get("last_snapshot_file");
            if file.is_empty() {
                return Err(remote(opts, "INFO persistence names no last_snapshot_file"));
            }
            return Ok(LastSnapshot {
                file: PathBuf::from(file),
                vv: get("last_snapshot_vv"),
                digest: get("last_snapshot_digest"),
            });
        }
        if field(&info, "last_failed_snapshot_id").is_some_and(|failed| failed >= id) {
            return Err(remote(
                opts,
                format!(
                    "the region could not write the snapshot: {}",
                    info.get("last_snapshot_error")
                        .map_or("(no reason given)", String::as_str)
                ),
            ));
        }
        if !info.contains_key("last_snapshot_id") {
            return Err(remote(opts, "INFO persistence has no last_snapshot_id (a braid-server older than braid-backup?)"));
        }
        if Instant::now() > deadline {
            return Err(remote(
                opts,
                format!(
                    "snapshot {id} not written after {} s",
                    opts.timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Builds a backup directory in `tmp`; returns the bytes written.
fn write_dir(
    tmp: &Path,
    file: &mut File,
    source: &Path,
    size: u64,
    manifest: &mut Manifest,
    progress: Progress,
) -> Result<u64> {
    fs::create_dir(tmp).map_err(|e| BackupError::at(tmp, format!("cannot create: {e}")))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| BackupError::at(source, e))?;
    // One pass: copy while computing the CRC the manifest records.
    let dest = tmp.join(&manifest.snapshot);
    let (copied, crc) = copy_file(
        BufReader::with_capacity(1 << 20, &mut *file),
        &dest,
        size,
        source,
        progress,
    )?;
    if copied != size {
        return Err(BackupError::at(
            source,
            format!("ended after {copied} of {size} bytes"),
        ));
    }
    manifest.files = vec![FileEntry {
        name: manifest.snapshot.clone(),
        size,
        crc32: crc_hex(crc),
    }];
    let text = manifest.to_text();
    let mpath = tmp.join(MANIFEST_NAME);
    (|| -> io::Result<()> {
        let mut f = File::create(&mpath)?;
        io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()?;
        sync_dir(tmp)
    })()
    .map_err(|e| BackupError::at(&mpath, format!("cannot write: {e}")))?;
    Ok(size + text.len() as u64)
}

/// Builds an archive in `tmp`; returns its length.
fn write_archive(
    tmp: &Path,
    file: &mut File,
    source: &Path,
    size: u64,
    manifest: &mut Manifest,
    progress: Progress,
) -> Result<u64> {
    // The manifest (with the CRC) comes first in the archive: checksum the
    // snapshot in a first pass (it is in the page cache for the second).
    file.seek(SeekFrom::Start(0))
        .map_err(|e| BackupError::at(source, e))?;
    let bar = bytes_bar(progress, size, "checksumming");
    let mut tee = CrcRead {
        r: bar.wrap_read(BufReader::with_capacity(1 << 20, &mut *file).take(size)),
        crc: crc32fast::Hasher::new(),
    };
    let n = io::copy(&mut tee, &mut io::sink()).map_err(|e| BackupError::at(source, e))?;
    bar.finish_and_clear();
    if n != size {
        return Err(BackupError::at(
            source,
            format!("ended after {n} of {size} bytes"),
        ));
    }
    let crc = tee.crc.finalize();
    manifest.files = vec![FileEntry {
        name: manifest.snapshot.clone(),
        size,
        crc32: crc_hex(crc),
    }];
    let text = manifest.to_text();
    file.seek(SeekFrom::Start(0))
        .map_err(|e| BackupError::at(source, e))?;
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| BackupError::at(tmp, format!("cannot create: {e}")))?;
    let bar = bytes_bar(progress, size, "archiving");
    let written = (|| -> io::Result<u64> {
        let mut a = ArchiveWriter::new(BufWriter::with_capacity(1 << 20, out), text.as_bytes(), 1)?;
        a.file(
            &manifest.snapshot,
            size,
            crc,
            bar.wrap_read(BufReader::with_capacity(1 << 20, &mut *file)),
        )?;
        let (w, len) = a.finish()?;
        let out = w.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        Ok(len)
    })()
    .map_err(|e| BackupError::at(tmp, format!("cannot write the archive: {e}")));
    bar.finish_and_clear();
    written
}

/// A reader that computes the CRC of what passes through.
struct CrcRead<R> {
    r: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}
