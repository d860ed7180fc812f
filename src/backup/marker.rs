//! The `RESTORED` marker a restore leaves in a data directory, and what the
//! server does with it at start-up.
//!
//! A region restored from a backup as itself may have issued operations
//! after the backup that its peers hold: before it takes writes it must
//! learn its own high-water mark from a peer and get those operations back,
//! or it would reuse their sequence numbers. The snapshot in the directory
//! makes it look like a region that merely restarted, so the marker tells
//! the server to wait as it does on an empty data directory. The server
//! removes the marker once a peer has told it its high-water mark and it
//! holds everything up to it.
//!
//! A region restored as a new region gets a marker too, only so that the
//! first start checks that the server is configured as the region the
//! restore was made for; it is removed at that start.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name of the marker in the data directory.
pub const MARKER_NAME: &str = "RESTORED";

/// How the directory was restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// As the region the backup was taken from (disaster recovery).
    SameRegion,
    /// As another, new region (seeding it).
    NewRegion,
}

/// The marker's contents (TOML).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMarker {
    /// How the directory was restored.
    pub mode: RestoreMode,
    /// The region the server must be configured as.
    pub region: String,
    /// Its id.
    pub region_id: u16,
    /// Version vector of the backup (`BRAID.VV` form).
    pub version_vector: String,
    /// When the backup was made (Unix ms).
    pub backup_created_unix_ms: u64,
    /// When it was restored (Unix ms).
    pub restored_unix_ms: u64,
}

impl RestoreMarker {
    /// Where the marker of `data_dir` is.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(MARKER_NAME)
    }

    /// The marker in `data_dir`, if there is one.
    pub fn read(data_dir: &Path) -> Result<Option<RestoreMarker>, String> {
        let path = Self::path(data_dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read the restore marker {}: {e}",
                    path.display()
                ))
            }
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            format!(
                "restore marker {} is not valid ({e}); it was written by braid-backup restore — restore again rather than edit it",
                path.display()
            )
        })
    }

    /// Writes the marker into `dir` and syncs it.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let mut text = String::from(
            "# Written by `braid-backup restore`; braid-server removes it once the\n# restored region may take writes (storage-format.md, \"Backups\").\n",
        );
        text.push_str(&toml::to_string(self).map_err(io::Error::other)?);
        let mut f = fs::File::create(Self::path(dir))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    }

    /// Removes the marker from `data_dir` (durably).
    pub fn remove(data_dir: &Path) -> io::Result<()> {
        match fs::remove_file(Self::path(data_dir)) {
            Ok(()) => fs::File::open(data_dir)?.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An error unless the server is configured as the region the restore
    /// was made for.
    pub fn check_identity(
        &self,
        region: &str,
        region_id: u16,
        data_dir: &Path,
    ) -> Result<(), String> {
        if self.region == region && self.region_id == region_id {
            return Ok(());
        }
        let what = match self.mode {
            RestoreMode::SameRegion => "restored from a backup of region",
            RestoreMode::NewRegion => "restored from a backup to seed the new region",
        };
        Err(format!(
            "data directory {} was {what} {} (id {}), but this server is configured as region {region} (id {region_id}); start it with --region {} --region-id {}, or restore again",
            data_dir.display(),
            self.region,
            self.region_id,
            self.region,
            self.region_id
        ))
    }
}
