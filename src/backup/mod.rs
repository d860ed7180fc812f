//! Backups (`braid-backup`): an online, consistent copy of a region's state
//! that can be checked and restored elsewhere.
//!
//! A backup is a fresh snapshot of the running region (the complete state
//! and the version vector it covers, so no op-log tail is needed) plus a
//! manifest naming the region, the version vector, the digest and every
//! file's size and CRC-32. It is a directory (`manifest.toml` and the
//! snapshot file) or one archive file holding the same. The exact format is
//! in `storage-format.md`, section "Backups".
//!
//! - [`create`]: asks a running region for a snapshot (`BRAID.SNAPSHOT`),
//!   waits for it (`INFO persistence`) and copies it; writes continue.
//! - [`verify`]: checks the manifest, every size and CRC, the archive
//!   structure, and decodes the snapshot fully (chunk CRCs, digest).
//! - [`restore`]: into an empty data directory, as the same region (it
//!   then relearns its own numbering from its peers before taking writes,
//!   see [`marker`]) or as a new region.
//! - [`list`]: the backups in a directory.
//!
//! Blocking std I/O throughout: these run in the command-line tool.

pub mod archive;
mod create;
mod list;
pub mod manifest;
pub mod marker;
mod progress;
pub(crate) mod resp;
mod restore;
mod verify;

pub use create::{create, CreateOptions, CreateReport, Destination};
pub use list::{list, ListEntry};
pub use manifest::{FileEntry, Manifest, BACKUP_FORMAT_VERSION};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use verify::{verify, Form, VerifyReport};

use std::path::Path;

/// Name of the manifest inside a backup directory.
pub const MANIFEST_NAME: &str = "manifest.toml";

/// Why a backup operation failed: one message that names the file and what
/// is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

impl BackupError {
    /// An error about `path`.
    pub fn at(path: &Path, what: impl std::fmt::Display) -> Self {
        BackupError(format!("{}: {what}", path.display()))
    }
}

impl From<String> for BackupError {
    fn from(s: String) -> Self {
        BackupError(s)
    }
}

/// Result of the backup functions.
pub type Result<T> = std::result::Result<T, BackupError>;

/// Whether long work shows progress bars (on a terminal, for large files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Bars for files of 16 MiB and more, when stderr is a terminal.
    Auto,
    /// No bars.
    Hidden,
}

/// Human-readable byte count (`52.3 MB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod doc_example {
    use super::archive::ArchiveWriter;
    use super::manifest::{crc_hex, digest_hex, format_utc};
    use super::*;
    use crate::crdt::snapshot::encode;
    use crate::crdt::State;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The worked example of `storage-format.md`, "Backups": a backup of an
    /// empty region `us` (id 1) as an archive.
    #[test]
    fn worked_example_matches_storage_format_md() {
        let state = State::new();
        let mut snapshot = Vec::new();
        encode(&state.freeze(), &mut snapshot).expect("encode");
        let name = "snapshot-00000000000000000000-1700000000000.braid";
        let manifest = Manifest {
            format_version: BACKUP_FORMAT_VERSION,
            created_unix_ms: 1_700_000_000_000,
            created: format_utc(1_700_000_000_000),
            region: "us".into(),
            region_id: 1,
            source: "127.0.0.1:7379".into(),
            braid_version: "0.1.0".into(),
            version_vector: String::new(),
            digest: digest_hex(state.digest()),
            key_count: 0,
            snapshot: name.into(),
            files: vec![FileEntry {
                name: name.into(),
                size: snapshot.len() as u64,
                crc32: crc_hex(crc32fast::hash(&snapshot)),
            }],
        };
        let text = manifest.to_text();
        let mut w = ArchiveWriter::new(Vec::new(), text.as_bytes(), 1).expect("header");
        w.file(
            name,
            snapshot.len() as u64,
            crc32fast::hash(&snapshot),
            &snapshot[..],
        )
        .expect("file");
        let (archive, len) = w.finish().expect("finish");
        assert_eq!(len as usize, archive.len());
        let m = text.len();
        let head = &archive[..13];
        let after_manifest = &archive[13 + m..13 + m + 8];
        let file_header = &archive[13 + m + 8..13 + m + 8 + 2 + name.len() + 12];
        let trailer = &archive[archive.len() - 20..];
        let lines = [
            hex(head),
            hex(after_manifest),
            hex(&file_header[..2]),
            hex(&file_header[2 + name.len()..]),
            hex(trailer),
        ];
        println!("manifest:\n{text}");
        println!("archive ({} bytes):\n{}", archive.len(), lines.join("\n"));
        let doc = include_str!("../../storage-format.md");
        assert!(
            doc.contains(&format!("```toml\n{text}```")),
            "storage-format.md lacks the manifest example"
        );
        for l in &lines {
            assert!(doc.contains(l.as_str()), "storage-format.md lacks {l}");
        }
        assert!(doc.contains(&format!("({} bytes in all)", archive.len())));
        assert_eq!(Manifest::parse(text.as_bytes()).expect("parses"), manifest);
    }
}
