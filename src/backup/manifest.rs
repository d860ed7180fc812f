//! The backup manifest: a TOML document ending with a line that holds the
//! CRC-32 of everything above it, so that any change to it is caught.

use serde::{Deserialize, Serialize};

use super::{BackupError, Result};
use crate::crdt::{RegionId, VersionVector};

/// Version of the backup format (manifest and archive layout). Bumped on any
/// change; readers refuse versions they do not know.
pub const BACKUP_FORMAT_VERSION: u32 = 1;

/// First line of every manifest.
const FIRST_LINE: &str = "# Braid backup manifest (storage-format.md, section \"Backups\")\n";
/// Start of the last line; 8 lowercase hex digits and a newline follow.
const CRC_LINE: &str = "# manifest-crc32 ";

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`BACKUP_FORMAT_VERSION`].
    pub format_version: u32,
    /// When the backup was made (Unix ms, the backup tool's clock).
    pub created_unix_ms: u64,
    /// The same, as RFC 3339 UTC, for people.
    pub created: String,
    /// Name of the region backed up.
    pub region: String,
    /// Its numeric id.
    pub region_id: u16,
    /// `host:port` the backup was taken from.
    pub source: String,
    /// `braid_version` the source reported.
    pub braid_version: String,
    /// Version vector the backup covers, `id=seq` pairs by region id,
    /// comma-separated (as `BRAID.VV` prints it; empty: no operation).
    pub version_vector: String,
    /// The state's convergence digest, 32 lowercase hex digits (as
    /// `BRAID.DIGEST` prints it).
    pub digest: String,
    /// Entries (keys, visible or not) in the snapshot.
    pub key_count: u64,
    /// Name of the snapshot file among `files`.
    pub snapshot: String,
    /// Every file of the backup.
    pub files: Vec<FileEntry>,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name (no directory part).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 (IEEE) of its bytes, 8 lowercase hex digits.
    pub crc32: String,
}

impl Manifest {
    /// The manifest's bytes: TOML, then the CRC line.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("a manifest always serializes");
        let mut text = String::with_capacity(body.len() + 128);
        text.push_str(FIRST_LINE);
        text.push_str(&body);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let crc = crc32fast::hash(text.as_bytes());
        text.push_str(&format!("{CRC_LINE}{crc:08x}\n"));
        text
    }

    /// Parses and checks a manifest's bytes (CRC line, version, fields).
    /// Errors say what is wrong, without naming the file (callers do).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Manifest, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|e| format!("manifest is not UTF-8 ({e})"))?;
        let body_text = text
            .strip_suffix('\n')
            .ok_or("manifest does not end with a newline (truncated?)")?;
        let start = body_text.rfind('\n').map_or(0, |i| i + 1);
        let last = &body_text[start..];
        let hex = last.strip_prefix(CRC_LINE).ok_or_else(|| {
            format!(
                "manifest's last line is not its checksum line ({CRC_LINE}…): truncated or edited"
            )
        })?;
        let stored = parse_crc(hex)
            .ok_or_else(|| format!("manifest checksum {hex:?} is not 8 hex digits"))?;
        let body = &text[..start];
        let computed = crc32fast::hash(body.as_bytes());
        if stored != computed {
            return Err(format!(
                "manifest checksum mismatch: stored {stored:08x}, computed {computed:08x} (the manifest was changed or damaged)"
            ));
        }
        let table: toml::Table =
            toml::from_str(body).map_err(|e| format!("manifest is not valid TOML: {e}"))?;
        match table.get("format_version").and_then(|v| v.as_integer()) {
            Some(v) if v == i64::from(BACKUP_FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "unsupported backup format version {v} (this build reads version {BACKUP_FORMAT_VERSION})"
                ))
            }
            None => return Err("manifest has no format_version".into()),
        }
        let m: Manifest =
            toml::from_str(body).map_err(|e| format!("manifest fields are invalid: {e}"))?;
        m.check()?;
        Ok(m)
    }

    /// Checks the fields' own consistency.
    fn check(&self) -> std::result::Result<(), String> {
        parse_vv(&self.version_vector)?;
        if self.digest.len() != 32 || !self.digest.bytes().all(is_lower_hex) {
            return Err(format!("digest {:?} is not 32 hex digits", self.digest));
        }
        if self.files.is_empty() {
            return Err("manifest lists no files".into());
        }
        for (i, f) in self.files.iter().enumerate() {
            check_file_name(&f.name)?;
            if parse_crc(&f.crc32).is_none() {
                return Err(format!(
                    "file {}: crc32 {:?} is not 8 hex digits",
                    f.name, f.crc32
                ));
            }
            if self.files[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("file {} is listed twice", f.name));
            }
        }
        if !self.files.iter().any(|f| f.name == self.snapshot) {
            return Err(format!("snapshot {} is not among the files", self.snapshot));
        }
        if self.files.len() != 1 {
            return Err(format!(
                "format version 1 holds exactly one file (the snapshot); the manifest lists {}",
                self.files.len()
            ));
        }
        let ops = snapshot_name_ops(&self.snapshot)
            .ok_or_else(|| format!("{} is not a snapshot file name", self.snapshot))?;
        let total = parse_vv(&self.version_vector)?.total();
        if ops != total {
            return Err(format!(
                "snapshot name {} says {ops} operations but the version vector totals {total}",
                self.snapshot
            ));
        }
        Ok(())
    }

    /// The version vector.
    pub fn vv(&self) -> VersionVector {
        parse_vv(&self.version_vector).unwrap_or_default()
    }

    /// The snapshot's entry in `files`.
    pub fn snapshot_file(&self) -> &FileEntry {
        self.files
            .iter()
            .find(|f| f.name == self.snapshot)
            .unwrap_or(&self.files[0])
    }

    /// Total size of the files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A name without directory parts or anything odd.
pub(crate) fn check_file_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name != super::MANIFEST_NAME;
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not an acceptable file name"))
    }
}

/// `crc` as 8 lowercase hex digits.
pub fn crc_hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// Parses 8 hex digits.
pub fn parse_crc(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(is_lower_hex))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

/// `0-9` or `a-f`: hex as this format writes it (so that a flipped case bit
/// is caught too).
fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// A digest as `BRAID.DIGEST` prints it.
pub fn digest_hex(d: u128) -> String {
    format!("{d:032x}")
}

/// A version vector as `BRAID.VV` prints it: `1=5,2=7`.
pub fn vv_text(vv: &VersionVector) -> String {
    vv.iter()
        .map(|(r, s)| format!("{}={s}", r.0))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses [`vv_text`]'s form: region ids strictly increasing, sequences ≥ 1.
pub fn parse_vv(s: &str) -> std::result::Result<VersionVector, String> {
    let mut pairs = Vec::new();
    if s.is_empty() {
        return Ok(VersionVector::new());
    }
    let mut last: Option<u16> = None;
    for part in s.split(',') {
        let bad = || format!("version vector {s:?}: {part:?} is not id=seq");
        let (id, seq) = part.split_once('=').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(seq) {
            return Err(bad());
        }
        let id: u16 = id.parse().map_err(|_| bad())?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        if seq == 0 || last.is_some_and(|l| l >= id) {
            return Err(format!(
                "version vector {s:?}: ids must increase and sequences be at least 1"
            ));
        }
        last = Some(id);
        pairs.push((RegionId(id), seq));
    }
    Ok(VersionVector::from_entries(pairs))
}

/// The operations a snapshot file name states (`snapshot-<20 digits>-<ms>.braid`).
pub fn snapshot_name_ops(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("snapshot-")?.strip_suffix(".braid")?;
    let (ops, ms) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if ops.len() != 20 || !digits(ops) || !digits(ms) || ms.parse::<u64>().is_err() {
        return None;
    }
    ops.parse().ok()
}

/// Unix ms as RFC 3339 UTC with milliseconds: `2026-11-26T10:22:33.123Z`.
pub fn format_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Reads a manifest file (or manifest bytes from an archive) with errors
/// naming `path`.
pub(crate) fn parse_at(path: &std::path::Path, bytes: &[u8]) -> Result<Manifest> {
    Manifest::parse(bytes).map_err(|e| BackupError::at(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_version: 1,
            created_unix_ms: 1_700_000_000_123,
            created: format_utc(1_700_000_000_123),
            region: "us".into(),
            region_id: 1,
            source: "127.0.0.1:7379".into(),
            braid_version: "0.1.0".into(),
            version_vector: "1=5,2=7".into(),
            digest: "00112233445566778899aabbccddeeff".into(),
            key_count: 3,
            snapshot: "snapshot-00000000000000000012-1700000000100.braid".into(),
            files: vec![FileEntry {
                name: "snapshot-00000000000000000012-1700000000100.braid".into(),
                size: 200,
                crc32: "0a1b2c3d".into(),
            }],
        }
    }

    #[test]
    fn manifest_round_trips_and_every_flipped_byte_is_caught() {
        let m = sample();
        let text = m.to_text();
        assert_eq!(Manifest::parse(text.as_bytes()).expect("parses"), m);
        for i in 0..text.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut b = text.clone().into_bytes();
                b[i] ^= bit;
                assert!(
                    Manifest::parse(&b).is_err(),
                    "flip of bit {bit:#x} at {i} not caught"
                );
            }
        }
        assert!(Manifest::parse(&text.as_bytes()[..text.len() - 3]).is_err());
    }

    /// A version vector whose sum overflows u64 used to panic (overflow
    /// checks) or wrap (release) in the name check; the sum saturates now.
    #[test]
    fn manifest_vv_total_overflow_is_not_a_panic() {
        let mut m = sample();
        let name = "snapshot-18446744073709551615-1700000000100.braid";
        m.version_vector = "1=18446744073709551615,2=7".into();
        m.snapshot = name.into();
        m.files[0].name = name.into();
        let parsed = Manifest::parse(m.to_text().as_bytes()).expect("parses");
        assert_eq!(parsed.vv().total(), u64::MAX);
        m.snapshot = "snapshot-00000000000000000006-1700000000100.braid".into();
        m.files[0].name = m.snapshot.clone();
        assert!(Manifest::parse(m.to_text().as_bytes()).is_err());
    }

    #[test]
    fn vv_and_times() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        let vv = parse_vv("1=5,2=7").expect("vv");
        assert_eq!(vv_text(&vv), "1=5,2=7");
        assert_eq!(vv.total(), 12);
        assert!(parse_vv("2=5,1=7").is_err());
        assert!(parse_vv("1=0").is_err());
        assert!(parse_vv("1=").is_err());
        assert_eq!(parse_vv("").expect("empty").total(), 0);
        assert_eq!(
            snapshot_name_ops("snapshot-00000000000000000012-1700000000100.braid"),
            Some(12)
        );
        assert_eq!(snapshot_name_ops("snapshot-12-1.braid"), None);
    }
}
