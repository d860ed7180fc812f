//! Snapshot files: a directory of snapshots of a region's state, written
//! atomically and loaded with fallback.
//!
//! A region writes a snapshot (of a [`FrozenState`], so clients never wait)
//! to bound how much op log a restart replays. Each file is written to a
//! temporary name, synced, renamed into place and the directory synced, so a
//! crash leaves either the whole new file or none of it. A file that is
//! damaged anyway (disk corruption, a torn copy) is caught by the format's
//! CRCs and digest, and loading falls back to the previous snapshot.
//!
//! File names are `snapshot-<ops>-<unix ms>.braid`, where `<ops>` is the
//! total of the version vector (operations included), zero-padded to 20
//! digits. Newest means most operations, then latest write time.
//!
//! Blocking std I/O: the server calls this from a blocking thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::crdt::snapshot::{self as codec, SnapshotError, SnapshotHeader};
use crate::crdt::{FrozenState, State};

/// Prefix of snapshot file names.
const PREFIX: &str = "snapshot-";
/// Suffix of snapshot file names.
const SUFFIX: &str = ".braid";
/// Prefix of temporary files being written (hidden, never listed).
const TMP_PREFIX: &str = ".tmp-snapshot-";
/// Buffer size for reading and writing snapshot files.
const IO_BUFFER: usize = 1 << 20;

/// One snapshot file and what its header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Full path of the file.
    pub path: PathBuf,
    /// Operations included (version vector total), from the file name.
    pub ops: u64,
    /// When it was written (Unix ms), from the file name.
    pub unix_ms: u64,
    /// File size in bytes.
    pub size: u64,
    /// The file's header: version vector, max HLC, key count, digest.
    pub header: SnapshotHeader,
}

/// Why one snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// It could not be opened or its size read.
    #[error("cannot open: {0}")]
    Open(#[source] io::Error),
    /// Its contents are not a valid snapshot.
    #[error(transparent)]
    Invalid(#[from] SnapshotError),
    /// Its name and its header disagree (a renamed or mixed-up file).
    #[error("file name says {named} operations but the header's version vector totals {header}")]
    NameMismatch {
        /// Operations the name states.
        named: u64,
        /// Total of the header's version vector.
        header: u64,
    },
}

/// Why no snapshot could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be read.
    #[error("reading snapshot directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Snapshot files exist but none is valid. Not `Ok(None)`: starting from
    /// an empty state could lose whatever the op log no longer holds.
    #[error("none of the {} snapshot files in {dir} is valid (newest {}: {})", failures.len(), failures[0].0.display(), failures[0].1)]
    NoValidSnapshot {
        /// The directory.
        dir: PathBuf,
        /// Every file tried, newest first, with why it failed (never empty).
        failures: Vec<(PathBuf, SnapshotFileError)>,
    },
}

/// A directory of snapshot files (see the module doc). One writer at a time.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

/// Distinguishes temporary files of concurrent writes within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl SnapshotStore {
    /// Opens (creating it if needed) a snapshot directory, and removes the
    /// temporary files of writes a crash interrupted.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        for item in fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name();
            if name.to_string_lossy().starts_with(TMP_PREFIX) {
                tracing::info!(file = %item.path().display(), "removing unfinished snapshot");
                fs::remove_file(item.path())?;
            }
        }
        Ok(SnapshotStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot of `frozen` atomically: to a temporary file in the
    /// same directory, fsync'd, renamed to its final name, then the directory
    /// fsync'd so the rename survives a crash too.
    pub fn write(&self, frozen: &FrozenState) -> io::Result<SnapshotInfo> {
        let ops = frozen.version_vector().total();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let name = file_name(ops, unix_ms);
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            name
        ));
        let path = self.dir.join(&name);
        let written = (|| {
            let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let mut out = BufWriter::with_capacity(IO_BUFFER, file);
            let summary = codec::encode(frozen, &mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)?;
            Ok(summary)
        })();
        let summary = match written {
            Ok(s) => s,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(SnapshotInfo {
            path,
            ops,
            unix_ms,
            size: summary.bytes,
            header: SnapshotHeader {
                version_vector: frozen.version_vector().clone(),
                max_hlc: frozen.max_hlc(),
                key_count: summary.keys,
                digest: frozen.digest(),
            },
        })
    }

    /// A temporary file in the store, for a snapshot arriving from a peer;
    /// removed at the next open if never adopted.
    pub fn incoming_path(&self) -> PathBuf {
        self.dir.join(format!(
            "{TMP_PREFIX}{}-{}-incoming",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Validates a snapshot file received from a peer (every chunk's CRC and
    /// the digest), then makes it this store's newest snapshot atomically.
    /// Returns the state it holds. The file is removed if it is invalid.
    pub fn adopt(&self, tmp: &Path) -> Result<(State, SnapshotInfo), SnapshotFileError> {
        let loaded = (|| {
            let (reader, size) = open(tmp)?;
            let (state, header) = codec::decode_with_header(reader)?;
            File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(SnapshotFileError::Open)?;
            Ok::<_, SnapshotFileError>((state, header, size))
        })();
        let (state, header, size) = match loaded {
            Ok(x) => x,
            Err(e) => {
                let _ = fs::remove_file(tmp);
                return Err(e);
            }
        };
        let ops = header.version_vector.total();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let path = self.dir.join(file_name(ops, unix_ms));
        fs::rename(tmp, &path)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(SnapshotFileError::Open)?;
        Ok((
            state,
            SnapshotInfo {
                path,
                ops,
                unix_ms,
                size,
                header,
            },
        ))
    }

    /// The snapshots whose header reads correctly, newest first. Only the
    /// headers are read; a file with a bad header is logged and left out.
    pub fn list(&self) -> io::Result<Vec<SnapshotInfo>> {
        let mut out = Vec::new();
        for (path, ops, unix_ms) in self.candidates()? {
            match read_info(&path, ops, unix_ms) {
                Ok(info) => out.push(info),
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "unreadable snapshot header");
                }
            }
        }
        Ok(out)
    }

    /// Loads the newest snapshot that is entirely valid. When a newer one is
    /// corrupt, logs a warning naming it and the error and tries the one
    /// before. `Ok(None)`: the directory holds no snapshot at all.
    pub fn load_newest_valid(&self) -> Result<Option<(State, SnapshotInfo)>, LoadError> {
        let candidates = self.candidates().map_err(|source| LoadError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        let mut failures = Vec::new();
        for (path, ops, unix_ms) in candidates {
            match load(&path, ops, unix_ms) {
                Ok(found) => return Ok(Some(found)),
                Err(error) => {
                    tracing::warn!(
                        file = %path.display(),
                        %error,
                        "snapshot is not valid; falling back to the previous one"
                    );
                    failures.push((path, error));
                }
            }
        }
        if failures.is_empty() {
            Ok(None)
        } else {
            Err(LoadError::NoValidSnapshot {
                dir: self.dir.clone(),
                failures,
            })
        }
    }

    /// Keeps the `keep` newest snapshots whose header reads correctly and
    /// deletes every snapshot file older than the oldest of them (files
    /// newer than it stay, even damaged ones, until they age out). With
    /// fewer than `keep` readable snapshots nothing is deleted; `keep = 0`
    /// deletes every snapshot. Returns the files removed.
    pub fn prune(&self, keep: usize) -> io::Result<Vec<PathBuf>> {
        let mut readable = 0;
        let mut removed = Vec::new();
        for (path, ops, unix_ms) in self.candidates()? {
            if readable < keep {
                if read_info(&path, ops, unix_ms).is_ok() {
                    readable += 1;
                }
                continue;
            }
            fs::remove_file(&path)?;
            removed.push(path);
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Snapshot files by name, newest first: (path, ops, unix ms).
    fn candidates(&self) -> io::Result<Vec<(PathBuf, u64, u64)>> {
        let mut out = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            let name = item.file_name();
            if let Some((ops, ms)) = name.to_str().and_then(parse_name) {
                out.push((item.path(), ops, ms));
            }
        }
        out.sort_by(|a, b| (b.1, b.2, &b.0).cmp(&(a.1, a.2, &a.0)));
        Ok(out)
    }
}

/// `snapshot-<ops, 20 digits>-<unix ms>.braid`.
fn file_name(ops: u64, unix_ms: u64) -> String {
    format!("{PREFIX}{ops:020}-{unix_ms}{SUFFIX}")
}

/// The (ops, unix ms) of a snapshot file name, `None` for any other name.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (ops, ms) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if ops.len() != 20 || !digits(ops) || !digits(ms) {
        return None;
    }
    Some((ops.parse().ok()?, ms.parse().ok()?))
}

fn open(path: &Path) -> Result<(BufReader<File>, u64), SnapshotFileError> {
    let file = File::open(path).map_err(SnapshotFileError::Open)?;
    let size = file.metadata().map_err(SnapshotFileError::Open)?.len();
    Ok((BufReader::with_capacity(IO_BUFFER, file), size))
}

fn check_name(ops: u64, header: &SnapshotHeader) -> Result<(), SnapshotFileError> {
    let total = header.version_vector.total();
    if total != ops {
        return Err(SnapshotFileError::NameMismatch {
            named: ops,
            header: total,
        });
    }
    Ok(())
}

fn read_info(path: &Path, ops: u64, unix_ms: u64) -> Result<SnapshotInfo, SnapshotFileError> {
    let (reader, size) = open(path)?;
    let header = codec::read_header(reader)?;
    check_name(ops, &header)?;
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        ops,
        unix_ms,
        size,
        header,
    })
}

fn load(path: &Path, ops: u64, unix_ms: u64) -> Result<(State, SnapshotInfo), SnapshotFileError> {
    let (reader, size) = open(path)?;
    let (state, header) = codec::decode_with_header(reader)?;
    check_name(ops, &header)?;
    let info = SnapshotInfo {
        path: path.to_path_buf(),
        ops,
        unix_ms,
        size,
        header,
    };
    Ok((state, info))
}

/// Makes a directory's entries (a rename, a removal) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let n = file_name(42, 1_700_000_000_123);
        assert_eq!(n, "snapshot-00000000000000000042-1700000000123.braid");
        assert_eq!(parse_name(&n), Some((42, 1_700_000_000_123)));
        for bad in [
            "snapshot-42-1.braid",
            "snapshot-0000000000000000004x-1.braid",
            "snapshot-00000000000000000042-.braid",
            "snapshot-00000000000000000042-1.braid.tmp",
            ".tmp-snapshot-1-0-snapshot-00000000000000000042-1.braid",
            "other",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
