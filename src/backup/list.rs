//! `list`: the backups in a directory (manifests only; `verify` checks the
//! contents).

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::archive::{ArchiveReader, MAGIC};
use super::manifest::Manifest;
use super::verify::read_dir_manifest;
use super::{BackupError, Result, MANIFEST_NAME};

/// One backup found by [`list`].
#[derive(Clone, Debug)]
pub struct ListEntry {
    /// The backup (directory or archive).
    pub path: PathBuf,
    /// Whether it is an archive.
    pub archive: bool,
    /// Its size on disk (a directory: its files).
    pub size: u64,
    /// Its manifest, or why it could not be read.
    pub manifest: std::result::Result<Manifest, String>,
}

/// The backups in `dir`: subdirectories holding a `manifest.toml` and files
/// starting with the archive magic (or named `*.braidbak`), by creation
/// time, unreadable ones last. Only manifests are read.
pub fn list(dir: &Path) -> Result<Vec<ListEntry>> {
    let items = fs::read_dir(dir).map_err(|e| BackupError::at(dir, format!("cannot list: {e}")))?;
    let mut out = Vec::new();
    for item in items {
        let item = item.map_err(|e| BackupError::at(dir, format!("cannot list: {e}")))?;
        let path = item.path();
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !path.join(MANIFEST_NAME).exists() {
                continue;
            }
            let size = fs::read_dir(&path)
                .map(|it| {
                    it.filter_map(|e| e.ok()?.metadata().ok())
                        .filter(|m| m.is_file())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            out.push(ListEntry {
                manifest: read_dir_manifest(&path).map_err(|e| e.0),
                path,
                archive: false,
                size,
            });
        } else if meta.is_file() {
            let named = path.extension().is_some_and(|e| e == "braidbak");
            let mut magic = [0u8; 8];
            let has_magic = File::open(&path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
                && magic == MAGIC;
            if !named && !has_magic {
                continue;
            }
            out.push(ListEntry {
                manifest: read_archive_manifest(&path),
                path,
                archive: true,
                size: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| {
        let key = |e: &ListEntry| match &e.manifest {
            Ok(m) => (0, m.created_unix_ms),
            Err(_) => (1, 0),
        };
        key(a).cmp(&key(b)).then_with(|| a.path.cmp(&b.path))
    });
    Ok(out)
}

/// An archive's manifest (header CRC and manifest checksum checked).
pub(crate) fn read_archive_manifest(path: &Path) -> std::result::Result<Manifest, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let (_, bytes) = ArchiveReader::open(BufReader::new(file))?;
    Manifest::parse(&bytes)
}
