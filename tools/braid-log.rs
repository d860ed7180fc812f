//! braid-log: look inside a region's op log.
//!
//! Works on a data directory offline, and beside a running `braid-server`
//! without disturbing it: `summary`, `dump`, `verify` and `tail` open the
//! RocksDB op log as a secondary instance (no lock, no write; its own files
//! go to a temporary directory) and read snapshot files without touching
//! them. Only `repair` writes, and it needs the directory to itself.
//!
//! Exit codes: 0 fine, 1 problems found (or refused, or an error), 2 usage.

use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::crdt::{RegionId, Seq, VersionVector};
use braid::oplog::inspect::{
    self, check_record, format_json, format_text, human_bytes, list_snapshot_files,
    read_snapshot_header, scan_start, trusted_span, Dependents, Filter, LogScan, OnceEach,
    SnapshotCheckError, SnapshotFile,
};
use braid::oplog::{key_hex, parse_record_key, record_key, record_span, OpLog, OpLogError};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Look inside a Braid region's op log and snapshots: summary, dump,
/// verify, repair, tail. Safe beside a running server except `repair`,
/// which needs the server stopped.
#[derive(Parser, Debug)]
#[command(name = "braid-log", version, long_about = None)]
struct Cli {
    /// The region's data directory (holding oplog/ and snapshots/).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./braid-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Never draw progress bars (they are drawn only on a terminal, and
    /// only for long scans).
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Per origin: first and last sequence, operations, records, bytes,
    /// HLC range; the snapshots and the version vectors they cover; what the
    /// newest snapshot makes truncatable.
    Summary,
    /// Print operations as text or JSON lines, filtered.
    Dump(DumpArgs),
    /// Check every record (CRC, count, every operation's decoding, key),
    /// sequence gaps between records, every snapshot file and that the log
    /// continues the newest valid snapshot; print every problem's location;
    /// exit 1 if there is any.
    Verify(VerifyArgs),
    /// Drop an origin's operations from its first bad record (the whole
    /// record) or gap on. Prints what is dropped and asks for confirmation
    /// (or --yes). Needs the server stopped.
    Repair(RepairArgs),
    /// Print the last operations of each origin, and with -f follow new
    /// ones as a running server writes them.
    Tail(TailArgs),
}

/// Which operations to show.
#[derive(Args, Debug, Clone)]
struct FilterArgs {
    /// Only operations of this origin region id.
    #[arg(long, value_name = "ID")]
    origin: Option<u16>,
    /// Only keys matching this glob (Redis KEYS syntax: * ? [a-z] \x).
    #[arg(long, value_name = "PATTERN")]
    key: Option<String>,
    /// Only operations whose HLC time is at or after this Unix time in ms.
    #[arg(long, value_name = "UNIX_MS")]
    since: Option<u64>,
    /// Only operations whose HLC time is at or before this Unix time in ms.
    #[arg(long, value_name = "UNIX_MS")]
    until: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DumpArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Only sequences at or above this one.
    #[arg(long, value_name = "SEQ")]
    from: Option<Seq>,
    /// Only sequences at or below this one.
    #[arg(long, value_name = "SEQ")]
    to: Option<Seq>,
    /// Stop after this many operations.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Check only the op log, not the snapshot files (which are decoded
    /// whole, in memory, one at a time).
    #[arg(long)]
    no_snapshots: bool,
}

#[derive(Args, Debug)]
struct RepairArgs {
    /// The origin region id whose log is truncated.
    #[arg(long, value_name = "ID")]
    origin: u16,
    /// Also cut at this operation even if the operations from here on are
    /// good (e.g. the operations of another origin that depend on dropped
    /// ones); a record holding it and earlier operations is rewritten to
    /// keep those.
    #[arg(long, value_name = "SEQ")]
    from: Option<Seq>,
    /// Do not ask: drop the operations.
    #[arg(long)]
    yes: bool,
}

#[derive(Args, Debug)]
struct TailArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Start with the last N sequences of each origin (then the key and
    /// time filters apply).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
    lines: u64,
    /// Keep following new operations (Ctrl-C to stop).
    #[arg(short = 'f', long)]
    follow: bool,
    /// How often to look for new operations when following.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    interval_ms: u64,
}

/// Why a command ended early.
enum Fail {
    /// Print this and exit 1.
    Msg(String),
    /// stdout was closed (`| head`): stop quietly.
    Pipe,
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Fail::Pipe
        } else {
            Fail::Msg(format!("I/O error: {e}"))
        }
    }
}

impl From<OpLogError> for Fail {
    fn from(e: OpLogError) -> Self {
        Fail::Msg(e.to_string())
    }
}

type Outcome = Result<ExitCode, Fail>;

/// Scans of fewer operations than this draw no progress bar.
const PROGRESS_MIN_OPS: u64 = 200_000;
/// Snapshot checks of fewer bytes than this draw no progress bar.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;
/// Operations between two progress updates.
const PROGRESS_STEP: u64 = 16_384;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();
    let ui = Ui {
        progress: !cli.no_progress,
    };
    let result = match &cli.command {
        Command::Summary => summary(&cli.data_dir, ui),
        Command::Dump(a) => dump(&cli.data_dir, ui, a),
        Command::Verify(a) => verify(&cli.data_dir, ui, a),
        Command::Repair(a) => repair(&cli.data_dir, ui, a),
        Command::Tail(a) => tail(&cli.data_dir, ui, a),
    };
    match result {
        Ok(code) => code,
        Err(Fail::Pipe) => ExitCode::SUCCESS,
        Err(Fail::Msg(m)) => {
            eprintln!("braid-log: {m}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy)]
struct Ui {
    progress: bool,
}

impl Ui {
    /// A progress bar on stderr for `len` units, hidden when `len` is below
    /// `min`, when disabled, or when stderr is not a terminal (indicatif).
    fn bar(self, len: u64, min: u64, what: &str, bytes: bool) -> ProgressBar {
        if !self.progress || len < min {
            return ProgressBar::hidden();
        }
        let template = if bytes {
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({elapsed}, {eta} left)"
        } else {
            "{msg} [{bar:40}] {human_pos}/{human_len} ({elapsed}, {eta} left)"
        };
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(style);
        pb.set_message(what.to_string());
        pb
    }
}

/// The op log opened beside whatever else uses it.
struct Reader {
    log: OpLog,
    _secondary: tempfile::TempDir,
}

/// Clears a progress bar or spinner however the scope is left.
struct ClearOnDrop(ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Opens the op log of `data_dir` as a RocksDB secondary instance.
fn open_reader(data_dir: &Path, ui: Ui) -> Result<Reader, Fail> {
    let secondary = tempfile::Builder::new()
        .prefix("braid-log-")
        .tempdir()
        .map_err(|e| Fail::Msg(format!("cannot create a temporary directory: {e}")))?;
    // Opening replays the write-ahead log: show that it is under way when
    // there is much of it.
    let wal: u64 = std::fs::read_dir(data_dir.join("oplog"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let spinner = if ui.progress && wal >= PROGRESS_MIN_BYTES {
        let s = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        s.set_message(format!(
            "opening the op log ({} of write-ahead log to read)",
            human_bytes(wal)
        ));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    } else {
        ProgressBar::hidden()
    };
    let _clear = ClearOnDrop(spinner);
    let mut attempt = 0;
    loop {
        // A running server may be switching files under us: retry a little.
        match OpLog::open_secondary(data_dir, secondary.path()) {
            Ok(log) => {
                return Ok(Reader {
                    log,
                    _secondary: secondary,
                })
            }
            Err(e @ OpLogError::Db { .. }) if attempt < 3 => {
                tracing::debug!(error = %e, "retrying the open");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `last - first + 1` of `origin`: the operations a scan of it will see
/// (exactly, unless there are gaps or bad records).
fn expected_ops_of(log: &OpLog, origin: RegionId) -> Result<u64, OpLogError> {
    Ok(match (log.first_seq(origin)?, log.last_seq(origin)?) {
        (Some(a), Some(b)) => b.saturating_sub(a).saturating_add(1),
        _ => 0,
    })
}

/// Sum over the origins of [`expected_ops_of`].
fn expected_ops(log: &OpLog) -> Result<u64, OpLogError> {
    let mut n = 0u64;
    for o in log.origins()? {
        n = n.saturating_add(expected_ops_of(log, o)?);
    }
    Ok(n)
}

/// How many operations a raw record holds as its header says (1 when
/// unreadable): for progress bars only.
fn span_len(k: &[u8], v: &[u8]) -> u64 {
    record_span(k, v).map_or(1, |(_, a, b)| b - a + 1)
}

/// Advances a progress bar by operations, in steps of [`PROGRESS_STEP`].
struct Progress {
    pb: ProgressBar,
    pending: u64,
}

impl Progress {
    fn new(pb: ProgressBar) -> Self {
        Progress { pb, pending: 0 }
    }

    fn add(&mut self, n: u64) {
        self.pending += n;
        if self.pending >= PROGRESS_STEP {
            self.pb.inc(self.pending);
            self.pending = 0;
        }
    }

    fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

fn region_line(log: &OpLog) -> Result<String, OpLogError> {
    let id = log.identity()?;
    let format = match id.format.as_deref() {
        Some([v]) => v.to_string(),
        Some(v) => format!("{v:?}"),
        None => "none yet".into(),
    };
    Ok(match (id.region_id, id.region_name) {
        (Some(r), Some(n)) => format!("{r} \"{n}\" (op-log format {format})"),
        (Some(r), None) => format!("{r} (op-log format {format})"),
        _ => format!("unknown: nothing written yet (op-log format {format})"),
    })
}

/// Scans the whole log, calling `each` with what every record turned out
/// to be (inside the progress bar's suspension when it prints).
fn scan_all(
    log: &OpLog,
    ui: Ui,
    what: &str,
    cover: VersionVector,
    mut each: impl FnMut(&inspect::Observed) -> Result<(), Fail>,
) -> Result<LogScan, Fail> {
    let mut progress = Progress::new(ui.bar(expected_ops(log)?, PROGRESS_MIN_OPS, what, false));
    let mut scan = LogScan::new(cover);
    let mut records = log.raw_records(&[])?;
    while let Some(item) = records.next_record() {
        let (k, v) = item?;
        let seen = scan.observe(k, v);
        if seen.gap.is_some() || seen.record.is_err() {
            progress.pb.suspend(|| each(&seen))?;
        } else {
            each(&seen)?;
        }
        progress.add(span_len(k, v));
    }
    progress.finish();
    Ok(scan)
}

fn secs(t: Instant) -> String {
    format!("{:.2} s", t.elapsed().as_secs_f64())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(data_dir: &Path, ui: Ui) -> Outcome {
    let t0 = Instant::now();
    let reader = open_reader(data_dir, ui)?;
    let log = &reader.log;
    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(out, "data dir     {}", data_dir.display())?;
    writeln!(out, "region       {}", region_line(log)?)?;
    let snap_dir = data_dir.join("snapshots");
    let (files, temporary) = list_snapshot_files(&snap_dir)
        .map_err(|e| Fail::Msg(format!("reading {}: {e}", snap_dir.display())))?;
    let headers: Vec<_> = files.iter().map(read_snapshot_header).collect();
    let newest = files
        .iter()
        .zip(&headers)
        .find_map(|(f, h)| h.as_ref().ok().map(|h| (f, h)));
    let cover = newest.map_or_else(VersionVector::new, |(_, h)| h.version_vector.clone());
    let scan = scan_all(log, ui, "scanning", cover.clone(), |_| Ok(()))?;
    writeln!(
        out,
        "op log       {}, {} in {} ({})",
        plural(scan.origins().count() as u64, "origin", "origins"),
        plural(scan.ops, "operation", "operations"),
        plural(scan.records, "record", "records"),
        human_bytes(scan.bytes)
    )?;
    if scan.records > 0 {
        writeln!(out)?;
        writeln!(
            out,
            "{:<8} {:>12} {:>12} {:>12} {:>10} {:>11}  hlc range",
            "origin", "first", "last", "operations", "records", "bytes"
        )?;
    }
    let dash = || "-".to_string();
    for st in scan.origins() {
        let hlc = match (st.hlc_min, st.hlc_max) {
            (Some(a), Some(b)) => format!(
                "{} .. {}",
                inspect::describe_hlc(a),
                inspect::describe_hlc(b)
            ),
            _ => dash(),
        };
        write!(
            out,
            "{:<8} {:>12} {:>12} {:>12} {:>10} {:>11}  {hlc}",
            st.origin.to_string(),
            st.first_seq.map_or_else(dash, |s| s.to_string()),
            st.last_seq.map_or_else(dash, |s| s.to_string()),
            st.ops,
            st.records,
            human_bytes(st.bytes)
        )?;
        if st.repeated > 0 {
            write!(
                out,
                "  (+{} held again by overlapping records)",
                st.repeated
            )?;
        }
        if st.has_problems() {
            write!(
                out,
                "  [{}, {} ({} missing)]",
                plural(st.bad, "bad record", "bad records"),
                plural(st.gaps, "gap", "gaps"),
                st.missing
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "snapshots    {} in {}",
        files.len(),
        snap_dir.display()
    )?;
    for (f, h) in files.iter().zip(&headers) {
        match h {
            Ok(h) => writeln!(
                out,
                "  {}  written {}  {}  {} keys  max hlc {}  covers {}",
                f.name(),
                inspect::iso_ms(f.unix_ms),
                human_bytes(f.size),
                h.key_count,
                h.max_hlc,
                h.version_vector
            )?,
            Err(e) => writeln!(out, "  {}  unreadable header: {e}", f.name())?,
        }
    }
    if !temporary.is_empty() {
        writeln!(
            out,
            "  (+{} being written, or left by a crash)",
            plural(temporary.len() as u64, "temporary file", "temporary files")
        )?;
    }
    // Covered operations, and the records and bytes wholly covered.
    let mut truncatable = (0u64, 0u64, 0u64);
    match newest {
        None => writeln!(out, "truncatable  nothing (no snapshot)")?,
        Some((f, h)) => {
            writeln!(
                out,
                "truncatable  what the newest snapshot ({}) covers, {}:",
                f.name(),
                h.version_vector
            )?;
            for st in scan.origins().filter(|s| s.covered > 0) {
                let upto = st.last_seq.unwrap_or(0).min(cover.get(st.origin));
                writeln!(
                    out,
                    "  {:<8} {} (seq {}..={}), {} wholly covered ({})",
                    st.origin.to_string(),
                    plural(st.covered, "operation", "operations"),
                    st.first_seq.unwrap_or(0),
                    upto,
                    plural(st.covered_records, "record", "records"),
                    human_bytes(st.covered_bytes)
                )?;
                truncatable.0 += st.covered;
                truncatable.1 += st.covered_records;
                truncatable.2 += st.covered_bytes;
            }
            if truncatable.0 == 0 {
                writeln!(out, "  nothing: the log holds only operations after it")?;
            } else {
                writeln!(
                    out,
                    "  the server drops the wholly covered records (one partly covered stays whole) after its next snapshot, once every configured peer has acknowledged them"
                )?;
            }
        }
    }
    let problems = scan.has_problems();
    write!(
        out,
        "summary: {}, {} in {} ({}), {}, {} truncatable ({} wholly covered, {})",
        plural(scan.origins().count() as u64, "origin", "origins"),
        plural(scan.ops, "operation", "operations"),
        plural(scan.records, "record", "records"),
        human_bytes(scan.bytes),
        plural(files.len() as u64, "snapshot", "snapshots"),
        plural(truncatable.0, "operation", "operations"),
        plural(truncatable.1, "record", "records"),
        human_bytes(truncatable.2),
    )?;
    if problems {
        write!(
            out,
            "; {} and {}: run braid-log verify",
            plural(scan.bad, "bad record", "bad records"),
            plural(scan.gaps, "gap", "gaps")
        )?;
    }
    writeln!(out, " ({})", secs(t0))?;
    out.flush()?;
    Ok(if problems {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn filter_of(f: &FilterArgs, from: Option<Seq>, to: Option<Seq>) -> Filter {
    Filter {
        origin: f.origin.map(RegionId),
        from,
        to,
        key: f.key.as_ref().map(|k| k.as_bytes().to_vec()),
        since_ms: f.since,
        until_ms: f.until,
    }
}

fn write_op(out: &mut impl Write, op: &braid::crdt::Operation, json: bool) -> io::Result<()> {
    if json {
        writeln!(out, "{}", format_json(op))
    } else {
        writeln!(out, "{}", format_text(op))
    }
}

fn dump(data_dir: &Path, ui: Ui, args: &DumpArgs) -> Outcome {
    let t0 = Instant::now();
    let filter = filter_of(&args.filter, args.from, args.to);
    let reader = open_reader(data_dir, ui)?;
    let log = &reader.log;
    // A bar only when the output goes elsewhere than the terminal.
    let ui = Ui {
        progress: ui.progress && !io::stdout().is_terminal(),
    };
    let expected = match filter.origin {
        Some(o) => expected_ops_of(log, o)?,
        None => expected_ops(log)?,
    };
    let mut progress = Progress::new(ui.bar(expected, PROGRESS_MIN_OPS, "dumping", false));
    // With --from, the record holding that sequence may start well before
    // it: scan the origin from its start and skip, by their CRC-checked
    // headers, the records that end before it (correct whatever the
    // records' length).
    let prefix = filter.origin.map(origin_prefix);
    let start = prefix.map_or_else(Vec::new, |p| p.to_vec());
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut records = log.raw_records(&start)?;
    let (mut read, mut decoded, mut shown, mut bad) = (0u64, 0u64, 0u64, 0u64);
    // Overlapping records (a run written twice) show each operation once.
    let mut once = OnceEach::default();
    'scan: while let Some(item) = records.next_record() {
        let (k, v) = item?;
        if let Some(p) = &prefix {
            if k.get(..2) != Some(&p[..]) {
                break;
            }
        }
        read += 1;
        progress.add(span_len(k, v));
        if !filter.wants_record(k, v) {
            continue;
        }
        match check_record(k, v) {
            Ok(ops) => {
                for op in &ops {
                    if !once.first_time(op) || !filter.wants(op.origin, op.seq) {
                        continue;
                    }
                    decoded += 1;
                    if filter.matches(op) {
                        write_op(&mut out, op, args.filter.json)?;
                        shown += 1;
                        if args.limit.is_some_and(|l| shown >= l) {
                            break 'scan;
                        }
                    }
                }
            }
            Err(b) => {
                bad += 1;
                out.flush()?;
                progress.pb.suspend(|| eprintln!("braid-log: skipping {b}"));
            }
        }
    }
    progress.finish();
    out.flush()?;
    drop(out);
    // The summary line goes to stderr so that stdout stays pure operations.
    eprintln!(
        "dump: {} shown of {} in range, from {} read, {} skipped ({})",
        plural(shown, "operation", "operations"),
        decoded,
        plural(read, "record", "records"),
        plural(bad, "bad record", "bad records"),
        secs(t0)
    );
    Ok(if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn verify(data_dir: &Path, ui: Ui, args: &VerifyArgs) -> Outcome {
    let t0 = Instant::now();
    let reader = open_reader(data_dir, ui)?;
    let log = &reader.log;
    let stdout = io::stdout();
    // Every problem is printed as it is found, so even an interrupted run
    // shows them; the log is scanned before the snapshots are listed so
    // that a snapshot taken meanwhile cannot make its truncation look like
    // a hole.
    let scan = scan_all(log, ui, "verifying records", VersionVector::new(), |seen| {
        if let Some(g) = &seen.gap {
            writeln!(stdout.lock(), "{g}")?;
        }
        if let Err(b) = &seen.record {
            writeln!(stdout.lock(), "{b}")?;
        }
        Ok(())
    })?;
    let mut out = stdout.lock();
    let (mut checked, mut bad_snapshots) = (0u64, 0u64);
    let mut valid_cover: Option<VersionVector> = None;
    let mut recovery = Vec::new();
    if !args.no_snapshots {
        let snap_dir = data_dir.join("snapshots");
        let (files, temporary) = list_snapshot_files(&snap_dir)
            .map_err(|e| Fail::Msg(format!("reading {}: {e}", snap_dir.display())))?;
        for f in &files {
            match check_one_snapshot(ui, f) {
                Ok(h) => {
                    checked += 1;
                    writeln!(
                        out,
                        "snapshot ok {} ({}, {} keys, covers {})",
                        f.name(),
                        human_bytes(f.size),
                        h.key_count,
                        h.version_vector
                    )?;
                    valid_cover.get_or_insert(h.version_vector);
                }
                Err(SnapshotCheckError::Vanished) => {
                    writeln!(
                        out,
                        "snapshot {} was removed while being checked (pruned by the server); skipped",
                        f.name()
                    )?;
                }
                Err(SnapshotCheckError::Invalid(e)) => {
                    checked += 1;
                    bad_snapshots += 1;
                    writeln!(out, "bad snapshot {}: {e}", f.path.display())?;
                }
            }
        }
        for t in &temporary {
            writeln!(
                out,
                "note: {} is a snapshot being written, or left by a crash (the server removes it at start-up)",
                t.display()
            )?;
        }
        recovery =
            inspect::recovery_gaps(&scan, valid_cover.as_ref().unwrap_or(&VersionVector::new()));
        for r in &recovery {
            writeln!(out, "{r}")?;
        }
    }
    let failed = scan.has_problems() || bad_snapshots > 0 || !recovery.is_empty();
    for st in scan.origins().filter(|st| st.repeated > 0) {
        writeln!(
            out,
            "note: {} of {} are held again by a later record (a run written twice); readers take each once",
            plural(st.repeated, "operation", "operations"),
            st.origin
        )?;
    }
    for st in scan.origins() {
        if let Some(cut) = &st.first_problem {
            let keep = cut.seq.saturating_sub(1);
            writeln!(
                out,
                "hint: to keep {} up to seq {keep} and drop the rest: braid-log --data-dir {} repair --origin {} (with the server stopped)",
                st.origin,
                data_dir.display(),
                st.origin.0
            )?;
        }
    }
    let snapshots = if args.no_snapshots {
        "snapshots not checked".to_string()
    } else {
        format!(
            "{} checked ({} bad), {}",
            plural(checked, "snapshot", "snapshots"),
            bad_snapshots,
            plural(recovery.len() as u64, "recovery gap", "recovery gaps")
        )
    };
    let missing: u64 = scan.origins().map(|s| s.missing).sum();
    let ops = plural(scan.ops, "operation", "operations");
    let ops = if scan.bad > 0 {
        format!("{ops} in the good ones")
    } else {
        ops
    };
    writeln!(
        out,
        "verify: {} ({ops}) of {}, {}, {} ({} missing), {snapshots} in {}: {}",
        plural(scan.records, "record", "records"),
        plural(scan.origins().count() as u64, "origin", "origins"),
        plural(scan.bad, "bad record", "bad records"),
        plural(scan.gaps, "gap", "gaps"),
        missing,
        secs(t0),
        if failed { "PROBLEMS FOUND" } else { "OK" }
    )?;
    out.flush()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn check_one_snapshot(
    ui: Ui,
    f: &SnapshotFile,
) -> Result<braid::crdt::snapshot::SnapshotHeader, SnapshotCheckError> {
    let pb = ui.bar(
        f.size,
        PROGRESS_MIN_BYTES,
        &format!("checking {}", f.name()),
        true,
    );
    let r = inspect::check_snapshot(f, |n| pb.inc(n));
    pb.finish_and_clear();
    r
}

/// The first key of `origin`: its two id bytes (malformed keys of the
/// origin, shorter than 10 bytes, sort from there).
fn origin_prefix(origin: RegionId) -> [u8; 2] {
    origin.0.to_be_bytes()
}

/// One dropped operation (or bad record) as a line of `repair`'s list.
fn dropped_line(op: &braid::crdt::Operation) -> String {
    let key = op.key().map_or_else(
        || "FLUSHALL".into(),
        |k| format!("key={}", inspect::quote_bytes(k)),
    );
    let effect = match &op.body {
        braid::crdt::Body::Key(w) => w.effect.name(),
        braid::crdt::Body::FlushAll => "",
    };
    format!("{}:{} {key} {effect}", op.origin, op.seq)
}

fn repair(data_dir: &Path, ui: Ui, args: &RepairArgs) -> Outcome {
    let origin = RegionId(args.origin);
    let log = match OpLog::open_existing(data_dir) {
        Ok(l) => l,
        Err(OpLogError::Db { path, source })
            if source.to_string().to_lowercase().contains("lock") =>
        {
            return Err(Fail::Msg(format!(
                "cannot lock the op log at {}: is braid-server running on this data directory? \
                 repair needs it to itself: stop the server first, nothing was changed ({source})",
                path.display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let own = log.identity()?.region_id;
    let prefix = origin_prefix(origin);
    let of_origin = |k: &[u8]| k.get(..2) == Some(&prefix[..]);

    // Pass 1: where the origin's log first goes wrong.
    let mut progress = Progress::new(ui.bar(
        expected_ops_of(&log, origin)?,
        PROGRESS_MIN_OPS,
        "checking",
        false,
    ));
    let mut scan = LogScan::new(VersionVector::new());
    let mut records = log.raw_records(&prefix)?;
    while let Some(item) = records.next_record() {
        let (k, v) = item?;
        if !of_origin(k) {
            break;
        }
        scan.observe(k, v);
        progress.add(span_len(k, v));
    }
    drop(records);
    progress.finish();
    let Some(st) = scan.origin(origin).cloned() else {
        return Err(Fail::Msg(format!(
            "the op log holds no record of {origin}; nothing to repair"
        )));
    };
    let problem = st.first_problem.clone();
    // Where to cut: at the first problem (a bad record goes whole: every key
    // from its own on), or at operation --from if that comes first (every
    // record before the problem is good, so the one holding it may be cut
    // in the middle: rewritten to keep what precedes).
    let forced = args.from.map(|s| s.max(1));
    let (cut_key, cut_seq, mid_record) = match (&problem, forced) {
        (Some(p), Some(f)) if record_key(origin, f).as_slice() < p.key.as_slice() => {
            (record_key(origin, f).to_vec(), f, true)
        }
        (Some(p), _) => (p.key.clone(), p.seq, false),
        (None, Some(f)) => (record_key(origin, f).to_vec(), f, true),
        (None, None) => {
            println!(
                "{origin}: seq {}..={}, {} in {}, no bad record and no gap: nothing to repair",
                st.first_seq.unwrap_or(0),
                st.last_seq.unwrap_or(0),
                plural(st.ops, "operation", "operations"),
                plural(st.records, "record", "records")
            );
            return Ok(ExitCode::SUCCESS);
        }
    };

    // Pass 2: what is dropped. Records from `cut_key` on go whole; with a
    // cut at an operation, the good record before it that holds it loses
    // its operations from `cut_seq` on.
    const SHOWN: usize = 20;
    let mut dropped_ops = 0u64;
    let mut dropped_bad = 0u64;
    let mut deleted = 0u64;
    let mut deleted_bytes = 0u64;
    // The records rewritten (several when runs overlap): their first and
    // last sequence (each keeps first..cut_seq).
    let mut rewritten: Vec<(Seq, Seq)> = Vec::new();
    let mut dropped_last = cut_seq;
    let mut lines = Vec::new();
    let mut once = OnceEach::default();
    let scan_from = if mid_record {
        prefix.to_vec()
    } else {
        cut_key.clone()
    };
    let mut records = log.raw_records(&scan_from)?;
    while let Some(item) = records.next_record() {
        let (k, v) = item?;
        if !of_origin(k) {
            break;
        }
        let whole = k >= cut_key.as_slice();
        if !whole && trusted_span(k, v).is_none_or(|(_, _, last)| last < cut_seq) {
            continue;
        }
        match check_record(k, v) {
            Ok(ops) => {
                if let (false, Some(a), Some(b)) = (whole, ops.first(), ops.last()) {
                    rewritten.push((a.seq, b.seq));
                }
                for op in ops.iter().filter(|op| op.seq >= cut_seq) {
                    if !once.first_time(op) {
                        continue;
                    }
                    dropped_ops += 1;
                    dropped_last = dropped_last.max(op.seq);
                    if lines.len() < SHOWN {
                        lines.push(dropped_line(op));
                    }
                }
            }
            // Only records from the cut key on can be bad: every record
            // before the first problem is good.
            Err(b) => {
                dropped_bad += 1;
                let claimed = b.claimed.map_or(b.seq.unwrap_or(0), |(_, last)| last);
                dropped_last = dropped_last.max(claimed);
                if lines.len() < SHOWN {
                    lines.push(b.to_string());
                }
            }
        }
        if whole {
            deleted += 1;
            deleted_bytes += v.len() as u64;
        }
    }
    drop(records);

    if deleted == 0 && rewritten.is_empty() {
        println!(
            "{origin}: no operation at or after seq {cut_seq} (the log ends at seq {}): nothing to drop",
            st.last_seq.unwrap_or(0)
        );
        return Ok(ExitCode::SUCCESS);
    }

    // Pass 3: what else the drop affects.
    let snap_dir = data_dir.join("snapshots");
    let cover = list_snapshot_files(&snap_dir)
        .ok()
        .and_then(|(files, _)| files.iter().find_map(|f| read_snapshot_header(f).ok()))
        .map(|h| h.version_vector)
        .unwrap_or_default();
    let mut dependents = Dependents::new(origin, cut_seq, cover.clone());
    let mut once = OnceEach::default();
    let mut progress = Progress::new(ui.bar(
        expected_ops(&log)?,
        PROGRESS_MIN_OPS,
        "looking for dependents",
        false,
    ));
    let mut records = log.raw_records(&[])?;
    while let Some(item) = records.next_record() {
        let (k, v) = item?;
        progress.add(span_len(k, v));
        if of_origin(k) {
            continue;
        }
        if let Ok(ops) = check_record(k, v) {
            for op in ops.iter().filter(|op| once.first_time(op)) {
                dependents.observe(op);
            }
        }
    }
    drop(records);
    progress.finish();

    let keeps_to = cut_seq.saturating_sub(1);
    let holds_to = keeps_to.max(cover.get(origin));
    // What goes, in words: "seq 25..=40: 15 operations and 1 bad record;
    // 16 records deleted (1.2 KiB)".
    let mut what = format!(
        "{origin} seq {cut_seq}..={dropped_last}: {}",
        plural(dropped_ops, "operation", "operations")
    );
    if dropped_bad > 0 {
        what.push_str(&format!(
            " and {} (holding operations that cannot be read)",
            plural(dropped_bad, "bad record", "bad records")
        ));
    }
    let mut how = Vec::new();
    for (first, last) in &rewritten {
        how.push(format!(
            "the record of seq {first}..={last} rewritten to keep seq {first}..={keeps_to}"
        ));
    }
    if deleted > 0 {
        how.push(format!(
            "{} deleted ({})",
            plural(deleted, "record", "records"),
            human_bytes(deleted_bytes)
        ));
    }
    let how = how.join(", ");
    let mut out = io::stdout().lock();
    writeln!(out, "repair of {origin} in {}", log.path().display())?;
    match &problem {
        Some(p) if !mid_record => writeln!(out, "  first problem: {}", p.reason)?,
        Some(p) => writeln!(
            out,
            "  first problem: {}; cutting before it, where --from says",
            p.reason
        )?,
        None => writeln!(out, "  no bad record or gap; cutting where --from says")?,
    }
    match st.first_seq.filter(|f| *f <= keeps_to) {
        Some(f) => writeln!(out, "  keeps: {origin} seq {f}..={keeps_to}")?,
        None => writeln!(out, "  keeps: no operation of {origin}")?,
    }
    writeln!(out, "  drops: {what}; {how}:")?;
    for l in &lines {
        writeln!(out, "    {l}")?;
    }
    let listed = dropped_ops + dropped_bad;
    if listed > lines.len() as u64 {
        writeln!(
            out,
            "    ... and {} more (braid-log dump --origin {} --from {cut_seq} lists them)",
            listed - lines.len() as u64,
            origin.0
        )?;
    }
    writeln!(
        out,
        "  after it, a restart holds {origin}'s operations up to seq {holds_to} (log, or newest snapshot {cover})"
    )?;
    if own == Some(origin) {
        writeln!(
            out,
            "  warning: {origin} is this region's own origin: it will number its next writes from {}. \
             If peers already received the dropped operations, the same sequence numbers would name \
             different operations in different regions: drop a region's own operations only if they never left it",
            holds_to + 1
        )?;
    } else {
        writeln!(
            out,
            "  note: a peer that still holds the dropped operations of {origin} can send them again through replication"
        )?;
    }
    for (other, (seq, count)) in &dependents.found {
        writeln!(
            out,
            "  warning: {} of {other} from seq {seq} on depend on dropped operations of {origin}: \
             a restart stops replay there until they come back from a peer; to drop them too: \
             braid-log repair --origin {} --from {seq}",
            plural(*count, "operation", "operations"),
            other.0
        )?;
    }
    out.flush()?;
    drop(out);

    if !args.yes {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            println!(
                "repair: refused, nothing changed: confirm on a terminal, or pass --yes to drop {origin} seq {cut_seq}..={dropped_last}"
            );
            return Ok(ExitCode::FAILURE);
        }
        eprint!("type yes to continue: ");
        io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("repair: not confirmed, nothing changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    if !rewritten.is_empty() {
        // Keeps the operations before `cut_seq` of the record holding it.
        log.truncate_after(origin, keeps_to)?;
    } else {
        log.delete_from(origin, &cut_key)?;
    }
    // Check the cut: no record of the origin may still reach `cut_seq`
    // (a check of OpLog::truncate_after and delete_from).
    let mut now: Option<Seq> = None;
    let mut left = None;
    let mut records = log.raw_records(&prefix)?;
    while let Some(item) = records.next_record() {
        let (k, v) = item?;
        if !of_origin(k) {
            break;
        }
        let last = record_span(k, v)
            .map(|(_, _, l)| l)
            .or_else(|| parse_record_key(k).map(|(_, s)| s));
        if let Some(l) = last {
            now = Some(now.map_or(l, |n| n.max(l)));
        }
        if k >= cut_key.as_slice() || last.is_some_and(|l| l >= cut_seq) {
            left.get_or_insert_with(|| key_hex(k));
        }
    }
    drop(records);
    if let Some(key) = left {
        return Err(Fail::Msg(format!(
            "repair incomplete: after the cut, the record with key {key} still holds \
             operations of {origin} from seq {cut_seq} on (braid-log dump --origin {} --from {cut_seq} shows them)",
            origin.0
        )));
    }
    println!(
        "repair: dropped {what}; {how}; {origin} now {}",
        now.map_or_else(
            || "has no operation".to_string(),
            |s| format!("ends at seq {s}")
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The last operation of `origin` in the log: the highest that a record's
/// checked header names among the records that may reach past the last
/// one's start
/// (a run written twice makes records overlap, so the last record does not
/// always hold the last operation).
fn last_op(log: &OpLog, origin: RegionId) -> Result<Option<Seq>, OpLogError> {
    let Some(last) = log.last_seq(origin)? else {
        return Ok(None);
    };
    let mut records = log.raw_records(&scan_start(origin, last))?;
    let mut max = last;
    while let Some(item) = records.next_record() {
        let (k, v) = item?;
        if k.get(..2) != Some(&origin.0.to_be_bytes()[..]) {
            break;
        }
        if let Some((_, _, l)) = trusted_span(k, v) {
            max = max.max(l);
        }
    }
    Ok(Some(max))
}

/// Set once SIGINT or SIGTERM arrives, so that `tail -f` ends cleanly
/// (its summary line printed, its temporary directory removed).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => {
            std::thread::spawn(move || {
                rt.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        return;
                    };
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    flag.store(true, Ordering::Relaxed);
                });
            });
        }
        Err(e) => tracing::warn!(error = %e, "no signal handling: Ctrl-C ends tail abruptly"),
    }
    stop
}

fn tail(data_dir: &Path, ui: Ui, args: &TailArgs) -> Outcome {
    let filter = filter_of(&args.filter, None, None);
    let stop = if args.follow {
        stop_on_signal()
    } else {
        Arc::new(AtomicBool::new(false))
    };
    let reader = open_reader(data_dir, ui)?;
    let log = &reader.log;
    let mut out = BufWriter::new(io::stdout().lock());
    // The next sequence to show, per origin.
    let mut next: std::collections::BTreeMap<RegionId, Seq> = Default::default();
    let mut shown = 0u64;
    let mut bad_seen = std::collections::BTreeSet::new();
    let mut first_pass = true;
    let mut last_error: Option<String> = None;
    loop {
        for origin in log.origins()? {
            if filter.origin.is_some_and(|o| o != origin) {
                continue;
            }
            let from = match next.get(&origin) {
                Some(s) => *s,
                None if first_pass => match last_op(log, origin)? {
                    Some(last) => last.saturating_add(1).saturating_sub(args.lines),
                    None => continue,
                },
                // An origin that appeared while following: all of it is new.
                None => 0,
            };
            // The record holding `from` may start before it: start early
            // enough, and skip what ends before it by the records'
            // CRC-checked headers.
            let mut records = log.raw_records(&scan_start(origin, from))?;
            while let Some(item) = records.next_record() {
                let (k, v) = item?;
                let Some((o, first)) = parse_record_key(k) else {
                    if k.get(..2) != Some(&origin.0.to_be_bytes()[..]) {
                        break;
                    }
                    continue;
                };
                if o != origin {
                    break;
                }
                if trusted_span(k, v).is_some_and(|(_, _, last)| last < from) {
                    continue;
                }
                // Each operation once, even from overlapping records (a run
                // written twice).
                let upto = next.get(&origin).copied().unwrap_or(from);
                match check_record(k, v) {
                    Ok(ops) => {
                        for op in ops.iter().filter(|op| op.seq >= upto) {
                            next.insert(origin, op.seq.saturating_add(1));
                            if filter.matches(op) {
                                write_op(&mut out, op, args.filter.json)?;
                                shown += 1;
                            }
                        }
                    }
                    Err(b) => {
                        // Its end is unknown: what follows is read from the
                        // next record on.
                        next.insert(origin, upto.max(first.saturating_add(1)));
                        if bad_seen.insert(key_hex(k)) {
                            out.flush()?;
                            eprintln!("braid-log: skipping {b}");
                        }
                    }
                }
            }
            next.entry(origin).or_insert(from);
        }
        out.flush()?;
        first_pass = false;
        if !args.follow {
            break;
        }
        // Sleep in short steps so that a signal ends the wait soon.
        let wake = Instant::now() + Duration::from_millis(args.interval_ms.max(10));
        while Instant::now() < wake && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(wake - Instant::now()));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match log.catch_up() {
            Ok(()) => last_error = None,
            Err(e) => {
                let m = e.to_string();
                if last_error.as_ref() != Some(&m) {
                    eprintln!("braid-log: cannot catch up with the server (retrying): {m}");
                    last_error = Some(m);
                }
            }
        }
    }
    drop(out);
    eprintln!("tail: {}", plural(shown, "operation", "operations"));
    Ok(ExitCode::SUCCESS)
}
