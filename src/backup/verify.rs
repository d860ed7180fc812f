//! `verify`: every check a backup allows, without restoring it.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::archive::ArchiveReader;
use super::manifest::{crc_hex, digest_hex, parse_at, vv_text, FileEntry, Manifest};
use super::progress::bytes_bar;
use super::{BackupError, Progress, Result, MANIFEST_NAME};
use crate::crdt::snapshot as codec;

/// The two forms of a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// A directory with `manifest.toml` and the files.
    Directory,
    /// One archive file.
    Archive,
}

/// What [`verify`] checked.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The backup.
    pub path: PathBuf,
    /// Its form.
    pub form: Form,
    /// Its manifest.
    pub manifest: Manifest,
    /// Bytes read and checked.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Which form `path` has (an error if it is neither a directory nor a file).
pub(crate) fn form_of(path: &Path) -> Result<Form> {
    let meta =
        fs::metadata(path).map_err(|e| BackupError::at(path, format!("cannot open: {e}")))?;
    if meta.is_dir() {
        Ok(Form::Directory)
    } else if meta.is_file() {
        Ok(Form::Archive)
    } else {
        Err(BackupError::at(
            path,
            "neither a backup directory nor an archive file",
        ))
    }
}

/// Checks a backup (directory or archive): the manifest (checksum, version,
/// fields), every file's presence, size and CRC-32, the archive's structure
/// and trailer CRC, and that the snapshot decodes entirely (its chunk CRCs
/// and digest) to the version vector, digest and key count the manifest
/// states. Any problem is an error naming the file and what is wrong.
pub fn verify(path: &Path, progress: Progress) -> Result<VerifyReport> {
    let t0 = Instant::now();
    let form = form_of(path)?;
    let (manifest, bytes) = match form {
        Form::Directory => verify_dir(path, progress)?,
        Form::Archive => verify_archive(path, progress)?,
    };
    Ok(VerifyReport {
        path: path.to_path_buf(),
        form,
        manifest,
        bytes,
        elapsed: t0.elapsed(),
    })
}

/// Reads and checks a backup directory's manifest.
pub(crate) fn read_dir_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_NAME);
    let bytes = fs::read(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            BackupError::at(
                dir,
                format!("no {MANIFEST_NAME}: not a backup directory, or its manifest was lost"),
            )
        } else {
            BackupError::at(&path, format!("cannot read: {e}"))
        }
    })?;
    parse_at(&path, &bytes)
}

fn verify_dir(dir: &Path, progress: Progress) -> Result<(Manifest, u64)> {
    let manifest = read_dir_manifest(dir)?;
    let mut bytes = fs::metadata(dir.join(MANIFEST_NAME)).map_or(0, |m| m.len());
    let listing =
        fs::read_dir(dir).map_err(|e| BackupError::at(dir, format!("cannot list: {e}")))?;
    for item in listing {
        let item = item.map_err(|e| BackupError::at(dir, format!("cannot list: {e}")))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name != MANIFEST_NAME && !manifest.files.iter().any(|f| f.name == name) {
            return Err(BackupError::at(
                &item.path(),
                "not listed in the manifest (a renamed, damaged or foreign file)",
            ));
        }
    }
    for entry in &manifest.files {
        let path = dir.join(&entry.name);
        let file = File::open(&path).map_err(|e| {
            BackupError::at(
                &path,
                format!("listed in the manifest but cannot be opened: {e}"),
            )
        })?;
        let size = file
            .metadata()
            .map_err(|e| BackupError::at(&path, format!("cannot read its size: {e}")))?
            .len();
        if size != entry.size {
            return Err(BackupError::at(
                &path,
                format!(
                    "size {size} bytes, the manifest says {} (truncated or damaged)",
                    entry.size
                ),
            ));
        }
        check_content(
            BufReader::with_capacity(1 << 20, file),
            entry,
            &manifest,
            &path,
            progress,
        )?;
        bytes += size;
    }
    Ok((manifest, bytes))
}

fn verify_archive(path: &Path, progress: Progress) -> Result<(Manifest, u64)> {
    let file = File::open(path).map_err(|e| BackupError::at(path, format!("cannot open: {e}")))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let err = |e: String| BackupError::at(path, e);
    let (mut archive, manifest_bytes) =
        ArchiveReader::open(BufReader::with_capacity(1 << 20, file)).map_err(err)?;
    let manifest = Manifest::parse(&manifest_bytes)
        .map_err(|e| BackupError::at(path, format!("manifest inside the archive: {e}")))?;
    if archive.file_count as usize != manifest.files.len() {
        return Err(err(format!(
            "the archive holds {} files, its manifest lists {}",
            archive.file_count,
            manifest.files.len()
        )));
    }
    for entry in &manifest.files {
        let f = archive
            .next_file()
            .map_err(err)?
            .ok_or_else(|| err("fewer files than announced".into()))?;
        if f.name != entry.name || f.size != entry.size || crc_hex(f.crc) != entry.crc32 {
            return Err(err(format!(
                "file at byte offset {}: {} ({} bytes, CRC-32 {:08x}) where the manifest lists {} ({} bytes, CRC-32 {}) (damaged)",
                f.offset, f.name, f.size, f.crc, entry.name, entry.size, entry.crc32
            )));
        }
        let member = path.join(&entry.name);
        check_content(archive.content(f.size), entry, &manifest, &member, progress)?;
    }
    let total = archive.offset();
    archive.finish().map_err(err)?;
    Ok((manifest, size.max(total)))
}

/// Passes what is read through to a CRC and a byte count.
struct Tee<R> {
    r: R,
    crc: crc32fast::Hasher,
    n: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.crc.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Checks one file's bytes (exactly `entry.size` of them are consumed from
/// `r` if present) against the manifest; the snapshot is decoded as well.
/// `path` names the file in errors.
pub(crate) fn check_content(
    r: impl Read,
    entry: &FileEntry,
    manifest: &Manifest,
    path: &Path,
    progress: Progress,
) -> Result<()> {
    let bar = bytes_bar(progress, entry.size, "verifying");
    let mut tee = Tee {
        r: bar.wrap_read(r.take(entry.size)),
        crc: crc32fast::Hasher::new(),
        n: 0,
    };
    let decoded = if entry.name == manifest.snapshot {
        Some(codec::decode_with_header(&mut tee).map(|(_, header)| header))
    } else {
        None
    };
    // Whatever the decoder left (after an error), for the CRC.
    let drained = io::copy(&mut tee, &mut io::sink());
    bar.finish_and_clear();
    drained.map_err(|e| BackupError::at(path, format!("read error: {e}")))?;
    let crc = tee.crc.clone().finalize();
    let decode_note = match &decoded {
        Some(Err(e)) => format!("; the snapshot does not decode: {e}"),
        _ => String::new(),
    };
    if tee.n != entry.size {
        return Err(BackupError::at(
            path,
            format!(
                "truncated: {} of the {} bytes the manifest lists{decode_note}",
                tee.n, entry.size
            ),
        ));
    }
    if crc_hex(crc) != entry.crc32 {
        return Err(BackupError::at(
            path,
            format!(
                "CRC-32 mismatch: computed {crc:08x}, the manifest says {} (the file is damaged){decode_note}",
                entry.crc32
            ),
        ));
    }
    let Some(decoded) = decoded else {
        return Ok(());
    };
    let header =
        decoded.map_err(|e| BackupError::at(path, format!("not a valid snapshot: {e}")))?;
    let vv = vv_text(&header.version_vector);
    let digest = digest_hex(header.digest);
    if vv != manifest.version_vector
        || digest != manifest.digest
        || header.key_count != manifest.key_count
    {
        return Err(BackupError::at(
            path,
            format!(
                "the snapshot covers {vv:?} with digest {digest} and {} keys; the manifest says {:?}, {}, {} keys",
                header.key_count, manifest.version_vector, manifest.digest, manifest.key_count
            ),
        ));
    }
    Ok(())
}
