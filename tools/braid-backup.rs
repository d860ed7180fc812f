//! `braid-backup`: online backup, verification, restore and listing of a
//! Braid region's state. The format is in `storage-format.md`, "Backups".
//!
//! Exit codes: 0 success, 1 failure (the message names the file and what is
//! wrong), 2 usage error.

use braid::backup::{
    self, human_bytes, manifest::format_utc, marker::RestoreMode, CreateOptions, Destination,
    Progress, RestoreOptions,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Snapshot backup and restore for Braid regions.
#[derive(Parser, Debug)]
#[command(name = "braid-backup", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars (they are drawn on stderr, only on a terminal and
    /// for files of 16 MiB or more).
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Back up a running region: it writes a fresh snapshot (writes
    /// continue), which is copied with a manifest into a new directory or
    /// archive. Run it on the region's machine: the snapshot is read from
    /// the region's data directory.
    Create(CreateArgs),
    /// Check a backup (directory or archive) without restoring it: the
    /// manifest, every file's size and CRC-32, the archive structure, and
    /// the snapshot decoded entirely against the manifest's version vector,
    /// digest and key count.
    Verify {
        /// The backup directory or archive file.
        backup: PathBuf,
    },
    /// Restore a backup into a new, empty data directory (nothing is written
    /// unless the whole backup verifies). By default as the backed-up region
    /// (disaster recovery: at start it takes no writes until a peer has told
    /// it its own high-water mark and its later operations are back); with
    /// --as-region, as a new region seeded with the backup's data.
    Restore(RestoreArgs),
    /// List the backups in a directory: region, time, version vector, size.
    List {
        /// Directory holding backup directories and archives.
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["dir", "archive"])))]
struct CreateArgs {
    /// The region's client address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The region's client port.
    #[arg(long, short = 'p', default_value_t = 7379)]
    port: u16,
    /// Password, if the region requires AUTH.
    #[arg(long, short = 'a', value_name = "PASSWORD")]
    password: Option<String>,
    /// Write the backup as this new directory (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Write the backup as this single archive file (must not exist).
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// Longest wait for the region's snapshot, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Skip verifying the backup once written.
    #[arg(long)]
    no_verify: bool,
}

#[derive(Args, Debug)]
struct RestoreArgs {
    /// The backup directory or archive file.
    backup: PathBuf,
    /// The data directory to create (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Restore as this new region instead of the backed-up one (needs
    /// --region-id).
    #[arg(long, value_name = "NAME", requires = "region_id")]
    as_region: Option<String>,
    /// Id of the new region (with --as-region); no region may have used it.
    #[arg(long, value_name = "ID", requires = "as_region")]
    region_id: Option<u16>,
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn run(cli: &Cli) -> Result<String, backup::BackupError> {
    let progress = if cli.quiet {
        Progress::Hidden
    } else {
        Progress::Auto
    };
    match &cli.command {
        Command::Create(a) => {
            let destination = match (&a.dir, &a.archive) {
                (Some(d), _) => Destination::Directory(d.clone()),
                (None, Some(f)) => Destination::Archive(f.clone()),
                (None, None) => unreachable!("clap requires one"),
            };
            let r = backup::create(&CreateOptions {
                host: a.host.clone(),
                port: a.port,
                password: a.password.clone(),
                destination,
                timeout: Duration::from_secs(a.timeout),
                verify: !a.no_verify,
                progress,
            })?;
            let m = &r.manifest;
            Ok(format!(
                "backed up region {} (id {}) at {} ({} keys, digest {}) to {}: {}; snapshot {}, copy {}{}",
                m.region,
                m.region_id,
                if m.version_vector.is_empty() { "-" } else { &m.version_vector },
                m.key_count,
                m.digest,
                r.path.display(),
                human_bytes(r.bytes),
                seconds(r.snapshot),
                seconds(r.copy),
                r.verify
                    .map_or_else(|| ", not verified".to_string(), |v| format!(", verify {}", seconds(v))),
            ))
        }
        Command::Verify { backup: path } => {
            let r = backup::verify(path, progress)?;
            let m = &r.manifest;
            Ok(format!(
                "ok: {} is a valid backup of region {} (id {}) at {} ({} keys, digest {}, {}), checked in {}",
                path.display(),
                m.region,
                m.region_id,
                if m.version_vector.is_empty() { "-" } else { &m.version_vector },
                m.key_count,
                m.digest,
                human_bytes(r.bytes),
                seconds(r.elapsed)
            ))
        }
        Command::Restore(a) => {
            let r = backup::restore(&RestoreOptions {
                backup: a.backup.clone(),
                data_dir: a.data_dir.clone(),
                as_region: a.as_region.clone().zip(a.region_id),
                progress,
            })?;
            let m = &r.manifest;
            let how = match r.mode {
                RestoreMode::SameRegion => format!(
                    "as region {} (id {}); start braid-server on it as that region with its peers: it takes writes once a peer has told it its own high-water mark",
                    r.region.0, r.region.1
                ),
                RestoreMode::NewRegion => format!(
                    "as new region {} (id {}) seeded from region {}; start braid-server on it with --region {} --region-id {}",
                    r.region.0, r.region.1, m.region, r.region.0, r.region.1
                ),
            };
            Ok(format!(
                "restored {} ({} keys at {}) into {} {how}; verify {}, copy {}",
                a.backup.display(),
                m.key_count,
                if m.version_vector.is_empty() {
                    "-"
                } else {
                    &m.version_vector
                },
                r.data_dir.display(),
                seconds(r.verify),
                seconds(r.copy)
            ))
        }
        Command::List { dir } => {
            let entries = backup::list(dir)?;
            let mut out = format!(
                "{:<40} {:<14} {:<24} {:>10} {:>10}  {}\n",
                "BACKUP", "REGION", "CREATED (UTC)", "KEYS", "SIZE", "VERSION VECTOR"
            );
            for e in &entries {
                let name = e.path.file_name().map_or_else(
                    || e.path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let name = if e.archive { name } else { format!("{name}/") };
                match &e.manifest {
                    Ok(m) => out.push_str(&format!(
                        "{:<40} {:<14} {:<24} {:>10} {:>10}  {}\n",
                        name,
                        format!("{} ({})", m.region, m.region_id),
                        format_utc(m.created_unix_ms),
                        m.key_count,
                        human_bytes(e.size),
                        if m.version_vector.is_empty() {
                            "-"
                        } else {
                            &m.version_vector
                        },
                    )),
                    Err(why) => out.push_str(&format!("{:<40} UNREADABLE: {why}\n", name)),
                }
            }
            out.push_str(&format!("{} backup(s) in {}", entries.len(), dir.display()));
            Ok(out)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("braid-backup: error: {e}");
            ExitCode::FAILURE
        }
    }
}
