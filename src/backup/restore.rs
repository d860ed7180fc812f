//! `restore`: a verified backup into an empty data directory, all or
//! nothing.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::archive::ArchiveReader;
use super::manifest::{crc_hex, Manifest};
use super::marker::{RestoreMarker, RestoreMode};
use super::progress::bytes_bar;
use super::verify::{verify, Form};
use super::{BackupError, Progress, Result};
use crate::crdt::RegionId;

/// What to restore where.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The backup (directory or archive).
    pub backup: PathBuf,
    /// The data directory to create; must not exist or be empty.
    pub data_dir: PathBuf,
    /// Restore as this new region (name, id) instead of the backed-up one.
    pub as_region: Option<(String, u16)>,
    /// Progress bars.
    pub progress: Progress,
}

/// What [`restore`] did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The data directory written.
    pub data_dir: PathBuf,
    /// The region it is for (name, id).
    pub region: (String, u16),
    /// As the same region (waits for peers at start) or a new one.
    pub mode: RestoreMode,
    /// Time spent verifying the backup.
    pub verify: Duration,
    /// Time spent copying it into place.
    pub copy: Duration,
}

/// Refuses a target that exists and is anything but an empty directory.
pub(crate) fn check_empty_target(dir: &Path, what: &str) -> Result<()> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::at(dir, format!("cannot inspect: {e}"))),
        Ok(m) if !m.is_dir() => Err(BackupError::at(
            dir,
            format!("refusing to {what}: it exists and is not a directory"),
        )),
        Ok(_) => {
            let mut items =
                fs::read_dir(dir).map_err(|e| BackupError::at(dir, format!("cannot list: {e}")))?;
            match items.next() {
                None => Ok(()),
                Some(item) => {
                    let example = item.map_or_else(
                        |_| "?".into(),
                        |i| i.file_name().to_string_lossy().into_owned(),
                    );
                    Err(BackupError::at(
                        dir,
                        format!("refusing to {what}: the directory is not empty (it holds {example}, among others); nothing was changed"),
                    ))
                }
            }
        }
    }
}

/// A hidden sibling of `target` to build into before renaming it into place.
pub(crate) fn staging_path(target: &Path, tag: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| BackupError::at(target, "needs a final path component"))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(
        ".{}.{tag}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Makes a directory's entries durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames the staged directory `tmp` to `target` (absent or an empty
/// directory, which the rename replaces) and syncs the parent.
pub(crate) fn move_into_place(tmp: &Path, target: &Path) -> io::Result<()> {
    fs::rename(tmp, target)?;
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Restores `opts.backup` into `opts.data_dir`: refuses a non-empty target
/// before anything else, verifies the whole backup, then builds the data
/// directory beside the target and renames it into place, so a failure at
/// any point leaves the target as it was.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreReport> {
    check_empty_target(&opts.data_dir, "restore into it")?;
    if let Some((name, id)) = &opts.as_region {
        if name.is_empty() || *id == 0 {
            return Err(BackupError(
                "--as-region needs a non-empty name and --region-id a non-zero id".into(),
            ));
        }
    }
    let t0 = Instant::now();
    let verified = verify(&opts.backup, opts.progress)?;
    let verify_time = t0.elapsed();
    let manifest = verified.manifest;
    let vv = manifest.vv();
    let (mode, region) = match &opts.as_region {
        None => (
            RestoreMode::SameRegion,
            (manifest.region.clone(), manifest.region_id),
        ),
        Some((name, id)) => {
            let used = vv.get(RegionId(*id));
            if used > 0 {
                return Err(BackupError(format!(
                    "cannot restore as new region {name} (id {id}): the backup's version vector {} already holds {used} operations of region id {id}, so that id was used; pick an id no region ever had",
                    manifest.version_vector
                )));
            }
            if *id == manifest.region_id || *name == manifest.region {
                return Err(BackupError(format!(
                    "--as-region {name} --region-id {id} names the backed-up region {} (id {}); restore without --as-region to recover that region, or pick a new name and id",
                    manifest.region, manifest.region_id
                )));
            }
            (RestoreMode::NewRegion, (name.clone(), *id))
        }
    };
    let tmp = staging_path(&opts.data_dir, "tmp-restore")?;
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| {
            BackupError::at(
                &tmp,
                format!("cannot remove a stale staging directory: {e}"),
            )
        })?;
    }
    let t1 = Instant::now();
    let built = build(&tmp, opts, verified.form, &manifest, mode, &region).and_then(|()| {
        move_into_place(&tmp, &opts.data_dir).map_err(|e| {
            BackupError::at(
                &opts.data_dir,
                format!("cannot move the restored directory into place: {e}"),
            )
        })
    });
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(RestoreReport {
        manifest,
        data_dir: opts.data_dir.clone(),
        region,
        mode,
        verify: verify_time,
        copy: t1.elapsed(),
    })
}

/// Writes the data directory into `tmp`: `snapshots/<snapshot>` and the
/// marker.
fn build(
    tmp: &Path,
    opts: &RestoreOptions,
    form: Form,
    manifest: &Manifest,
    mode: RestoreMode,
    region: &(String, u16),
) -> Result<()> {
    let io_err = |p: &Path, what: &str| {
        let p = p.to_path_buf();
        let what = what.to_string();
        move |e: io::Error| BackupError::at(&p, format!("{what}: {e}"))
    };
    let snapshots = tmp.join("snapshots");
    fs::create_dir_all(&snapshots).map_err(io_err(&snapshots, "cannot create"))?;
    let entry = manifest.snapshot_file();
    let dest = snapshots.join(&entry.name);
    let source = opts.backup.join(&entry.name);
    match form {
        Form::Directory => {
            let file = File::open(&source).map_err(io_err(&source, "cannot open"))?;
            copy_checked(
                BufReader::with_capacity(1 << 20, file),
                &dest,
                entry.size,
                &entry.crc32,
                &source,
                opts.progress,
            )?;
        }
        Form::Archive => {
            let file = File::open(&opts.backup).map_err(io_err(&opts.backup, "cannot open"))?;
            let err = |e: String| BackupError::at(&opts.backup, e);
            let (mut archive, _) =
                ArchiveReader::open(BufReader::with_capacity(1 << 20, file)).map_err(err)?;
            loop {
                let f = archive
                    .next_file()
                    .map_err(err)?
                    .ok_or_else(|| err(format!("{} is missing", entry.name)))?;
                if f.name == entry.name {
                    copy_checked(
                        archive.content(f.size),
                        &dest,
                        entry.size,
                        &entry.crc32,
                        &source,
                        opts.progress,
                    )?;
                    break;
                }
                io::copy(&mut archive.content(f.size), &mut io::sink())
                    .map_err(|e| err(e.to_string()))?;
            }
        }
    }
    sync_dir(&snapshots).map_err(io_err(&snapshots, "cannot sync"))?;
    let marker = RestoreMarker {
        mode,
        region: region.0.clone(),
        region_id: region.1,
        version_vector: manifest.version_vector.clone(),
        backup_created_unix_ms: manifest.created_unix_ms,
        restored_unix_ms: crate::server::unix_ms(),
    };
    marker
        .write(tmp)
        .map_err(io_err(tmp, "cannot write the restore marker"))?;
    sync_dir(tmp).map_err(io_err(tmp, "cannot sync"))
}

/// Copies exactly `size` bytes from `r` to a new file `dest`, checking the
/// CRC, and syncs it. `source` names the origin in errors.
pub(crate) fn copy_checked(
    r: impl Read,
    dest: &Path,
    size: u64,
    crc32: &str,
    source: &Path,
    progress: Progress,
) -> Result<()> {
    let (copied, crc) = copy_file(r, dest, size, source, progress)?;
    if copied != size {
        return Err(BackupError::at(
            source,
            format!("ended after {copied} of {size} bytes"),
        ));
    }
    let got = crc_hex(crc);
    if got != crc32 {
        return Err(BackupError::at(
            source,
            format!("CRC-32 {got} while copying, expected {crc32} (changed since it was verified)"),
        ));
    }
    Ok(())
}

/// Copies at most `size` bytes from `r` to a new file `dest` and syncs it;
/// returns the bytes copied and their CRC-32. `source` names the origin in
/// errors.
pub(crate) fn copy_file(
    r: impl Read,
    dest: &Path,
    size: u64,
    source: &Path,
    progress: Progress,
) -> Result<(u64, u32)> {
    let bar = bytes_bar(progress, size, "copying");
    let mut r = bar.wrap_read(r.take(size));
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| BackupError::at(dest, format!("cannot create: {e}")))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BackupError::at(source, format!("read error: {e}"))),
        };
        crc.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| BackupError::at(dest, format!("write error: {e}")))?;
        copied += n as u64;
    }
    bar.finish_and_clear();
    let file = out
        .into_inner()
        .map_err(|e| BackupError::at(dest, format!("write error: {}", e.error())))?;
    file.sync_all()
        .map_err(|e| BackupError::at(dest, format!("cannot sync: {e}")))?;
    Ok((copied, crc.finalize()))
}
