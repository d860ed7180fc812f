//! Looking inside an op log and a snapshot directory, for `braid-log`: the
//! checks, statistics, filters and formats, as plain functions over raw
//! records (key, value as stored) so that they are tested without RocksDB.
//! The tool feeds them from [`super::OpLog::raw_records`].
//!
//! A *record* (one RocksDB key) holds a run of consecutive operations of one
//! origin, keyed by its first (format 2, [`super::record`]); statistics
//! count both records and operations. A record is *bad* when its key is
//! malformed, its CRC does not match, its count or an operation does not
//! decode, or its operations are not the ones its key names
//! ([`super::decode_record`]). A bad record's operations are unknown: only
//! its key's first sequence is certain (its header's count is shown, for
//! information only). A record that repeats operations of the one before it
//! (a run written twice) is not bad: readers take each operation once, and
//! so do the statistics and [`OnceEach`].
//! A *gap* is a sequence missing between two records of an origin (a record
//! starting above the previous record's last sequence + 1; a truncated log
//! legitimately starts above 1; after a bad record, whose end is unknown,
//! no gap is reported). A *recovery gap* is a hole between what the newest
//! valid snapshot covers and where the log of an origin starts: a restart
//! could not replay past it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::crdt::position::Position;
use crate::crdt::snapshot::{self as codec, SnapshotHeader};
use crate::crdt::{Body, Delta, Effect, Hlc, Operation, RegionId, Seq, TtlChange, VersionVector};

use super::{decode_record, key_hex, parse_record_key, record_key, record_span, MAX_RECORD_OPS};

/// A record that cannot be used, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Origin from the key's first two bytes (`None`: key shorter than that).
    pub origin: Option<RegionId>,
    /// The first sequence, from the key (`None`: malformed key).
    pub seq: Option<Seq>,
    /// The first and last sequence its header claims (key and count field,
    /// unchecked: for display only), `None` if unreadable.
    pub claimed: Option<(Seq, Seq)>,
    /// The RocksDB key as stored.
    pub key: Vec<u8>,
    /// Size of the stored value.
    pub value_len: usize,
    /// What is wrong.
    pub reason: String,
}

impl BadRecord {
    /// `r1:25` (the key's first sequence), `r1:?` for a malformed key, `?`
    /// without an origin.
    pub fn location(&self) -> String {
        match (self.origin, self.seq) {
            (Some(o), Some(s)) => format!("{o}:{s}"),
            (Some(o), None) => format!("{o}:?"),
            (None, _) => "?".to_string(),
        }
    }
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad record {} (key {}, {} bytes",
            self.location(),
            key_hex(&self.key),
            self.value_len,
        )?;
        if let Some((a, b)) = self.claimed {
            write!(f, ", header claims seq {a}..={b}")?;
        }
        write!(f, "): {}", self.reason)
    }
}

/// Sequences missing inside one origin's log: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The origin.
    pub origin: RegionId,
    /// First missing sequence.
    pub first: Seq,
    /// Last missing sequence.
    pub last: Seq,
}

impl Gap {
    /// How many sequences (operations) are missing.
    pub fn missing(&self) -> u64 {
        self.last - self.first + 1
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.missing();
        write!(
            f,
            "gap in {}: seq {}..={} missing ({n} {})",
            self.origin,
            self.first,
            self.last,
            if n == 1 { "operation" } else { "operations" }
        )
    }
}

/// The first place an origin's log goes wrong: where a repair cuts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Every key of the origin from this one on is dropped: a bad record's
    /// own key (the whole record goes), or for a gap the key its first
    /// missing sequence would have.
    pub key: Vec<u8>,
    /// The first sequence dropped (for a malformed key, the one after the
    /// last good operation).
    pub seq: Seq,
    /// Why the log is cut there.
    pub reason: String,
}

/// One origin's records, as a scan found them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginStats {
    /// The origin.
    pub origin: RegionId,
    /// First sequence present (the first record's key).
    pub first_seq: Option<Seq>,
    /// Last sequence present: the last operation of the last good record,
    /// or a bad last record's first sequence.
    pub last_seq: Option<Seq>,
    /// Records (keys) seen, bad ones included.
    pub records: u64,
    /// Operations in the good records, each counted once.
    pub ops: u64,
    /// Operations a good record holds again after an earlier one (a run
    /// written twice: readers take each operation once, so no problem).
    pub repeated: u64,
    /// Bytes of the records' values.
    pub bytes: u64,
    /// Bad records.
    pub bad: u64,
    /// Gaps between records.
    pub gaps: u64,
    /// Sequences missing in those gaps.
    pub missing: u64,
    /// Lowest HLC of a good operation.
    pub hlc_min: Option<Hlc>,
    /// Highest HLC of a good operation.
    pub hlc_max: Option<Hlc>,
    /// Operations of good records (each once) covered by the scan's `cover`
    /// (a snapshot's version vector).
    pub covered: u64,
    /// Records all of whose operations `cover` includes.
    pub covered_records: u64,
    /// Their bytes.
    pub covered_bytes: u64,
    /// The first bad record or gap, in key order.
    pub first_problem: Option<Cut>,
    /// Whether `last_seq` is where the previous record ends (false after a
    /// bad record, whose end is unknown).
    end_known: bool,
    /// The highest sequence of a good record so far (0: none).
    good_to: Seq,
}

impl OriginStats {
    fn new(origin: RegionId) -> Self {
        OriginStats {
            origin,
            first_seq: None,
            last_seq: None,
            records: 0,
            ops: 0,
            repeated: 0,
            bytes: 0,
            bad: 0,
            gaps: 0,
            missing: 0,
            hlc_min: None,
            hlc_max: None,
            covered: 0,
            covered_records: 0,
            covered_bytes: 0,
            first_problem: None,
            end_known: false,
            good_to: 0,
        }
    }

    /// Whether a bad record or a gap was found.
    pub fn has_problems(&self) -> bool {
        self.first_problem.is_some()
    }
}

/// What one record turned out to be.
#[derive(Debug)]
pub struct Observed {
    /// Sequences missing just before this record, if any.
    pub gap: Option<Gap>,
    /// Its operations (at least one, consecutive), or why it is bad.
    pub record: Result<Vec<Operation>, BadRecord>,
}

fn key_origin(key: &[u8]) -> Option<RegionId> {
    key.get(..2)
        .map(|b| RegionId(u16::from_be_bytes([b[0], b[1]])))
}

fn bad_record(key: &[u8], value: &[u8], reason: String) -> BadRecord {
    BadRecord {
        origin: key_origin(key),
        seq: parse_record_key(key).map(|(_, s)| s),
        claimed: record_span(key, value).map(|(_, a, b)| (a, b)),
        key: key.to_vec(),
        value_len: value.len(),
        reason,
    }
}

/// Checks one raw record on its own: its key, CRC, count, every operation's
/// decoding, and that it holds the operations its key names.
pub fn check_record(key: &[u8], value: &[u8]) -> Result<Vec<Operation>, BadRecord> {
    if parse_record_key(key).is_none() {
        return Err(bad_record(
            key,
            value,
            format!("malformed key of {} bytes (expected 10)", key.len()),
        ));
    }
    decode_record(key, value).map_err(|reason| bad_record(key, value, reason))
}

/// A record's origin, first and last sequence from its key and count
/// ([`record_span`]) when its CRC matches, so that a scan may skip it
/// without decoding its operations; `None` when the CRC fails or the
/// header does not read (a bad record: what it holds is not known).
pub fn trusted_span(key: &[u8], value: &[u8]) -> Option<(RegionId, Seq, Seq)> {
    let stored = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
    if crc32fast::hash(value.get(4..)?) != stored {
        return None;
    }
    record_span(key, value)
}

/// Passes each operation of a scan in key order once: a run written twice
/// makes records that overlap, and readers of the log (replay, replication)
/// take each operation once, from the first record holding it.
#[derive(Clone, Debug, Default)]
pub struct OnceEach {
    upto: BTreeMap<RegionId, Seq>,
}

impl OnceEach {
    /// Whether `op` comes for the first time (its sequence is above every
    /// one passed of its origin).
    pub fn first_time(&mut self, op: &Operation) -> bool {
        let upto = self.upto.entry(op.origin).or_insert(0);
        if op.seq > *upto {
            *upto = op.seq;
            true
        } else {
            false
        }
    }
}

/// Where a forward scan must start to see every record holding sequence
/// `seq` of `origin` or later: the key of `seq - (MAX_RECORD_OPS - 1)`, as a
/// record starting before that would hold more than [`MAX_RECORD_OPS`]
/// operations, which no writer makes (records are cut by
/// [`super::record::encode_records`]). The scan then skips the records that end before
/// `seq` (their span, [`record_span`], tells without decoding).
pub fn scan_start(origin: RegionId, seq: Seq) -> [u8; 10] {
    record_key(origin, seq.saturating_sub(MAX_RECORD_OPS as Seq - 1))
}

/// Statistics and problems of a scan over raw records in key order (the
/// order RocksDB returns them): feed every record to [`LogScan::observe`].
#[derive(Clone, Debug, Default)]
pub struct LogScan {
    origins: BTreeMap<RegionId, OriginStats>,
    cover: VersionVector,
    /// Records (keys) seen.
    pub records: u64,
    /// Operations in the good records, each counted once.
    pub ops: u64,
    /// Operations held again by a later record (see [`OriginStats`]).
    pub repeated: u64,
    /// Bytes of the records' values.
    pub bytes: u64,
    /// Bad records seen.
    pub bad: u64,
    /// Bad records whose key does not even name an origin.
    pub bad_without_origin: u64,
    /// Gaps seen.
    pub gaps: u64,
}

impl LogScan {
    /// A scan counting, per origin, the operations `cover` includes (those a
    /// snapshot with that version vector makes unnecessary for recovery).
    pub fn new(cover: VersionVector) -> Self {
        LogScan {
            cover,
            ..LogScan::default()
        }
    }

    /// Takes the next record in key order.
    pub fn observe(&mut self, key: &[u8], value: &[u8]) -> Observed {
        self.records += 1;
        self.bytes += value.len() as u64;
        let record = check_record(key, value);
        let Some(origin) = key_origin(key) else {
            self.bad += 1;
            self.bad_without_origin += 1;
            return Observed { gap: None, record };
        };
        let covered_to = self.cover.get(origin);
        let st = self
            .origins
            .entry(origin)
            .or_insert_with(|| OriginStats::new(origin));
        st.records += 1;
        st.bytes += value.len() as u64;
        let mut gap = None;
        if let Some((_, first)) = parse_record_key(key) {
            // A record starting at or before the previous one's end (a run
            // written twice) is no problem: readers take each operation once.
            let prev_end = st.last_seq.filter(|_| st.end_known);
            if let Some(end) = prev_end {
                if first > end + 1 {
                    let g = Gap {
                        origin,
                        first: end + 1,
                        last: first - 1,
                    };
                    st.gaps += 1;
                    st.missing += g.missing();
                    self.gaps += 1;
                    if st.first_problem.is_none() {
                        st.first_problem = Some(Cut {
                            key: record_key(origin, g.first).to_vec(),
                            seq: g.first,
                            reason: g.to_string(),
                        });
                    }
                    gap = Some(g);
                }
            }
            st.first_seq.get_or_insert(first);
            match &record {
                Ok(ops) => {
                    let last = first + ops.len() as u64 - 1;
                    st.last_seq = Some(st.last_seq.map_or(last, |l| l.max(last)));
                    st.end_known = true;
                    if last <= covered_to {
                        st.covered_records += 1;
                        st.covered_bytes += value.len() as u64;
                    }
                }
                Err(_) => {
                    st.last_seq = Some(st.last_seq.map_or(first, |l| l.max(first)));
                    st.end_known = false;
                }
            }
        }
        match &record {
            Ok(ops) => {
                for op in ops {
                    if op.seq <= st.good_to {
                        st.repeated += 1;
                        self.repeated += 1;
                        continue;
                    }
                    st.good_to = op.seq;
                    st.ops += 1;
                    self.ops += 1;
                    if op.seq <= covered_to {
                        st.covered += 1;
                    }
                    st.hlc_min = Some(st.hlc_min.map_or(op.hlc, |h| h.min(op.hlc)));
                    st.hlc_max = Some(st.hlc_max.map_or(op.hlc, |h| h.max(op.hlc)));
                }
            }
            Err(b) => {
                st.bad += 1;
                self.bad += 1;
                if st.first_problem.is_none() {
                    st.first_problem = Some(Cut {
                        key: key.to_vec(),
                        seq: b.seq.unwrap_or_else(|| st.last_seq.map_or(1, |s| s + 1)),
                        reason: b.to_string(),
                    });
                }
            }
        }
        Observed { gap, record }
    }

    /// Per-origin statistics, in origin order.
    pub fn origins(&self) -> impl Iterator<Item = &OriginStats> {
        self.origins.values()
    }

    /// One origin's statistics.
    pub fn origin(&self, origin: RegionId) -> Option<&OriginStats> {
        self.origins.get(&origin)
    }

    /// Whether anything is wrong.
    pub fn has_problems(&self) -> bool {
        self.bad > 0 || self.gaps > 0
    }
}

/// A hole between a snapshot and the log: operations of `origin` after
/// `covered_to` and before `log_first` are in neither, so a restart from
/// that snapshot cannot replay the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryGap {
    /// The origin.
    pub origin: RegionId,
    /// What the snapshot covers of it (0: no snapshot).
    pub covered_to: Seq,
    /// Where its log starts.
    pub log_first: Seq,
}

impl fmt::Display for RecoveryGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "recovery gap in {}: the log starts at seq {} but the newest valid snapshot covers only up to {}; seq {}..={} are in neither",
            self.origin,
            self.log_first,
            self.covered_to,
            self.covered_to + 1,
            self.log_first - 1
        )
    }
}

/// The recovery gaps of a scanned log given the version vector of the
/// snapshot a restart would load (empty: none).
pub fn recovery_gaps(scan: &LogScan, snapshot: &VersionVector) -> Vec<RecoveryGap> {
    scan.origins()
        .filter_map(|st| {
            let first = st.first_seq?;
            let covered_to = snapshot.get(st.origin);
            (first > covered_to.saturating_add(1)).then_some(RecoveryGap {
                origin: st.origin,
                covered_to,
                log_first: first,
            })
        })
        .collect()
}

/// Which operations `dump` and `tail` show. Every bound is inclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this origin.
    pub origin: Option<RegionId>,
    /// Sequences from.
    pub from: Option<Seq>,
    /// Sequences up to.
    pub to: Option<Seq>,
    /// Keys matching this Redis glob (`KEYS` syntax); FLUSHALL has no key
    /// and never matches.
    pub key: Option<Vec<u8>>,
    /// HLC physical time (Unix ms) from.
    pub since_ms: Option<u64>,
    /// HLC physical time (Unix ms) up to.
    pub until_ms: Option<u64>,
}

impl Filter {
    /// Whether the operation of `origin` with sequence `seq` may match.
    pub fn wants(&self, origin: RegionId, seq: Seq) -> bool {
        self.wants_span(origin, seq, seq)
    }

    /// Whether a record of `origin` holding sequences `first..=last` may
    /// hold a match (so a scan can skip decoding the others).
    pub fn wants_span(&self, origin: RegionId, first: Seq, last: Seq) -> bool {
        self.origin.is_none_or(|o| o == origin)
            && self.from.is_none_or(|f| last >= f)
            && self.to.is_none_or(|t| first <= t)
    }

    /// Whether a raw record may hold a match: `false` only when its span
    /// ([`trusted_span`]: key and count, CRC checked, operations not
    /// decoded) is all outside the origin and sequence bounds, or its key
    /// alone puts it there (another origin, or a first sequence above
    /// `to`). A record whose CRC fails may hold anything from its key's
    /// sequence on: it is bad, and worth reporting.
    pub fn wants_record(&self, key: &[u8], value: &[u8]) -> bool {
        match trusted_span(key, value) {
            Some((o, first, last)) => self.wants_span(o, first, last),
            None => match parse_record_key(key) {
                Some((o, first)) => self.wants_span(o, first, Seq::MAX),
                None => match (self.origin, key_origin(key)) {
                    (Some(want), Some(o)) => want == o,
                    _ => true,
                },
            },
        }
    }

    /// Whether `op` is shown.
    pub fn matches(&self, op: &Operation) -> bool {
        let ms = op.hlc.millis();
        self.wants(op.origin, op.seq)
            && self.since_ms.is_none_or(|s| ms >= s)
            && self.until_ms.is_none_or(|u| ms <= u)
            && match &self.key {
                None => true,
                Some(p) => op
                    .key()
                    .is_some_and(|k| crate::command::glob::matches(p, k)),
            }
    }
}

/// Bytes as a quoted string: printable ASCII as is, `"` and `\` escaped,
/// everything else as `\n`, `\r`, `\t` or `\xNN`.
pub fn quote_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    s
}

/// Unix milliseconds as UTC ISO 8601, `2023-11-14T22:13:20.000Z`.
pub fn iso_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
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
        ms % 1000
    )
}

/// A byte count for people: `512 B`, `1.9 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// An HLC for people: `1700000000000.1 (2023-11-14T22:13:20.000Z)`.
pub fn describe_hlc(h: Hlc) -> String {
    format!("{h} ({})", iso_ms(h.millis()))
}

/// One operation as a line of text:
/// `r1:5 hlc=… deps={…} key="…" <effect in Debug form>`, with `txn+N` when
/// further operations belong to its transaction and `fresh` for a fresh
/// key write.
pub fn format_text(op: &Operation) -> String {
    let mut s = format!(
        "{}:{} hlc={} deps={}",
        op.origin,
        op.seq,
        describe_hlc(op.hlc),
        op.deps
    );
    if op.txn_rest > 0 {
        let _ = write!(s, " txn+{}", op.txn_rest);
    }
    match &op.body {
        Body::FlushAll => s.push_str(" FLUSHALL"),
        Body::Key(w) => {
            let _ = write!(s, " key={}", quote_bytes(&w.key));
            if w.fresh {
                s.push_str(" fresh");
            }
            let _ = write!(s, " {:?}", w.effect);
        }
    }
    s
}

/// Appends `v` as a JSON string.
fn json_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends bytes as JSON: a string when they are UTF-8, else
/// `{"hex":"…"}`.
fn json_bytes(out: &mut String, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => json_str(out, s),
        Err(_) => {
            out.push_str("{\"hex\":");
            json_str(out, &key_hex(b));
            out.push('}');
        }
    }
}

/// Appends a list of items as a JSON array.
fn json_list<T>(out: &mut String, items: &[T], mut item: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

fn json_delta(out: &mut String, d: &Delta) {
    match d {
        Delta::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Delta::Float(x) => json_str(out, &x.to_redis_string()),
    }
}

/// A score: a JSON number, or `"inf"` / `"-inf"` (JSON has no infinity).
fn json_score(out: &mut String, f: f64) {
    if f.is_finite() {
        let _ = write!(out, "{f:?}");
    } else if f > 0.0 {
        out.push_str("\"inf\"");
    } else {
        out.push_str("\"-inf\"");
    }
}

/// A list position as a string: its segments `digit:region:seq:idx`,
/// joined with `/`.
pub fn position_text(p: &Position) -> String {
    let mut s = String::new();
    for (i, seg) in p.0.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        let _ = write!(s, "{}:{}:{}:{}", seg.digit, seg.region.0, seg.seq, seg.idx);
    }
    s
}

fn json_pos(out: &mut String, p: &Position) {
    json_str(out, &position_text(p));
}

fn json_args(out: &mut String, e: &Effect) {
    out.push('{');
    match e {
        Effect::StrSet { value, ttl } => {
            out.push_str("\"value\":");
            json_bytes(out, value);
            out.push_str(",\"ttl\":");
            match ttl {
                TtlChange::Keep => out.push_str("\"keep\""),
                TtlChange::Persist => out.push_str("\"persist\""),
                TtlChange::ExpireAt(ms) => {
                    let _ = write!(out, "{{\"expire_at_ms\":{ms}}}");
                }
            }
        }
        Effect::StrIncr(d) => {
            out.push_str("\"delta\":");
            json_delta(out, d);
        }
        Effect::Del | Effect::Persist => {}
        Effect::Expire(ms) => {
            let _ = write!(out, "\"deadline_ms\":{ms}");
        }
        Effect::SetAdd(m) | Effect::SetRem(m) | Effect::ZRem(m) => {
            out.push_str("\"members\":");
            json_list(out, m, |o, b| json_bytes(o, b));
        }
        Effect::HashSet(fv) => {
            out.push_str("\"fields\":");
            json_list(out, fv, |o, (f, v)| {
                o.push('[');
                json_bytes(o, f);
                o.push(',');
                json_bytes(o, v);
                o.push(']');
            });
        }
        Effect::HashDel(f) => {
            out.push_str("\"fields\":");
            json_list(out, f, |o, b| json_bytes(o, b));
        }
        Effect::HashIncr { field, delta } => {
            out.push_str("\"field\":");
            json_bytes(out, field);
            out.push_str(",\"delta\":");
            json_delta(out, delta);
        }
        Effect::ZAdd(ms) => {
            out.push_str("\"members\":");
            json_list(out, ms, |o, (m, score)| {
                o.push('[');
                json_bytes(o, m);
                o.push(',');
                json_score(o, *score);
                o.push(']');
            });
        }
        Effect::ZIncr { member, delta } => {
            out.push_str("\"member\":");
            json_bytes(out, member);
            out.push_str(",\"delta\":");
            json_str(out, &delta.to_redis_string());
        }
        Effect::ListInsert(items) => {
            out.push_str("\"elements\":");
            json_list(out, items, |o, (p, v)| {
                o.push('[');
                json_pos(o, p);
                o.push(',');
                json_bytes(o, v);
                o.push(']');
            });
        }
        Effect::ListSet { pos, value } => {
            out.push_str("\"pos\":");
            json_pos(out, pos);
            out.push_str(",\"value\":");
            json_bytes(out, value);
        }
        Effect::ListRemove(ps) => {
            out.push_str("\"positions\":");
            json_list(out, ps, json_pos);
        }
        Effect::ListTrim(range) => {
            out.push_str("\"keep\":");
            match range {
                None => out.push_str("null"),
                Some((a, b)) => {
                    out.push('[');
                    json_pos(out, a);
                    out.push(',');
                    json_pos(out, b);
                    out.push(']');
                }
            }
        }
    }
    out.push('}');
}

/// One operation as one line of JSON:
/// `{"origin":1,"seq":5,"hlc":…,"hlc_ms":…,"hlc_logical":…,"time":"…",
/// "deps":{"1":4},"txn_rest":0,"op":"key","key":"k","fresh":false,
/// "effect":"str_set","args":{…}}` (`"op":"flushall"` has no key, effect or
/// args). Byte strings are JSON strings when UTF-8, else `{"hex":"…"}`;
/// infinite scores are `"inf"` / `"-inf"`; decimals are strings.
pub fn format_json(op: &Operation) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "{{\"origin\":{},\"seq\":{},\"hlc\":{},\"hlc_ms\":{},\"hlc_logical\":{},\"time\":\"{}\",\"deps\":{{",
        op.origin.0,
        op.seq,
        op.hlc.0,
        op.hlc.millis(),
        op.hlc.logical(),
        iso_ms(op.hlc.millis())
    );
    for (i, (r, seq)) in op.deps.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"{}\":{seq}", r.0);
    }
    let _ = write!(s, "}},\"txn_rest\":{}", op.txn_rest);
    match &op.body {
        Body::FlushAll => s.push_str(",\"op\":\"flushall\""),
        Body::Key(w) => {
            s.push_str(",\"op\":\"key\",\"key\":");
            json_bytes(&mut s, &w.key);
            let _ = write!(
                s,
                ",\"fresh\":{},\"effect\":\"{}\",\"args\":",
                w.fresh,
                w.effect.name()
            );
            json_args(&mut s, &w.effect);
        }
    }
    s.push('}');
    s
}

/// Operations of the other origins that depend on operations a repair drops:
/// replay would stop at them (their dependencies are gone) unless the
/// dropped operations come back from a peer. Operations a snapshot covers
/// are never replayed, so `cover` (the version vector of the snapshot a
/// restart would load) excludes both dependents it covers and dependencies
/// it holds. Feed every good operation to [`Dependents::observe`].
#[derive(Clone, Debug)]
pub struct Dependents {
    origin: RegionId,
    threshold: Seq,
    cover: VersionVector,
    /// Per other origin: the first dependent operation and how many there
    /// are.
    pub found: BTreeMap<RegionId, (Seq, u64)>,
}

impl Dependents {
    /// Looks for operations depending on `origin`'s sequences `cut` and
    /// above that `cover` does not include.
    pub fn new(origin: RegionId, cut: Seq, cover: VersionVector) -> Self {
        Dependents {
            origin,
            threshold: cut.max(cover.get(origin).saturating_add(1)),
            cover,
            found: BTreeMap::new(),
        }
    }

    /// Takes one operation (of any origin).
    pub fn observe(&mut self, op: &Operation) {
        if op.origin != self.origin
            && op.seq > self.cover.get(op.origin)
            && op.deps.get(self.origin) >= self.threshold
        {
            self.found
                .entry(op.origin)
                .and_modify(|e| e.1 += 1)
                .or_insert((op.seq, 1));
        }
    }
}

/// A snapshot file found in a snapshot directory (by its name only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Full path.
    pub path: PathBuf,
    /// Operations included, as the name says.
    pub ops: u64,
    /// When it was written (Unix ms), as the name says.
    pub unix_ms: u64,
    /// Size in bytes.
    pub size: u64,
}

impl SnapshotFile {
    /// The file name.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The (ops, unix ms) of `snapshot-<20 digits>-<unix ms>.braid` (the names
/// [`crate::snapshot::SnapshotStore`] writes), `None` for any other name.
pub fn parse_snapshot_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("snapshot-")?.strip_suffix(".braid")?;
    let (ops, ms) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if ops.len() != 20 || !digits(ops) || !digits(ms) {
        return None;
    }
    Some((ops.parse().ok()?, ms.parse().ok()?))
}

/// The snapshot files of `dir`, newest first (most operations, then latest
/// time), and the temporary files of snapshots being written (or left by a
/// crash). Reads the directory only: unlike
/// [`crate::snapshot::SnapshotStore::open`] it removes nothing, so it is
/// safe beside a running server. A missing directory holds nothing.
pub fn list_snapshot_files(dir: &Path) -> io::Result<(Vec<SnapshotFile>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut temporary = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((files, temporary)),
        Err(e) => return Err(e),
    };
    for item in entries {
        let item = item?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".tmp-snapshot-") {
            temporary.push(item.path());
        } else if let Some((ops, unix_ms)) = parse_snapshot_name(&name) {
            let size = item.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(SnapshotFile {
                path: item.path(),
                ops,
                unix_ms,
                size,
            });
        }
    }
    files.sort_by(|a, b| (b.ops, b.unix_ms, &b.path).cmp(&(a.ops, a.unix_ms, &a.path)));
    temporary.sort();
    Ok((files, temporary))
}

/// Why a snapshot file failed its check.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotCheckError {
    /// The file disappeared before it could be read (the server pruned it).
    #[error("removed while being checked")]
    Vanished,
    /// It cannot be read or is not a valid snapshot.
    #[error("{0}")]
    Invalid(String),
}

fn open_snapshot(file: &SnapshotFile) -> Result<BufReader<File>, SnapshotCheckError> {
    match File::open(&file.path) {
        Ok(f) => Ok(BufReader::with_capacity(1 << 20, f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SnapshotCheckError::Vanished),
        Err(e) => Err(SnapshotCheckError::Invalid(format!("cannot open: {e}"))),
    }
}

fn check_name(file: &SnapshotFile, header: &SnapshotHeader) -> Result<(), SnapshotCheckError> {
    let total = header.version_vector.total();
    if total != file.ops {
        return Err(SnapshotCheckError::Invalid(format!(
            "file name says {} operations but the header's version vector totals {total}",
            file.ops
        )));
    }
    Ok(())
}

/// Reads and checks only a snapshot's header (and that its name agrees).
pub fn read_snapshot_header(file: &SnapshotFile) -> Result<SnapshotHeader, SnapshotCheckError> {
    let header = codec::read_header(open_snapshot(file)?)
        .map_err(|e| SnapshotCheckError::Invalid(e.to_string()))?;
    check_name(file, &header)?;
    Ok(header)
}

/// Counts the bytes read through it.
struct Counting<R, F> {
    inner: R,
    progress: F,
}

impl<R: Read, F: FnMut(u64)> Read for Counting<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Decodes a whole snapshot file as a restart would (every chunk's CRC,
/// the file CRC, the key counts, the recomputed digest) and checks that its
/// name agrees with its header. `progress` gets the bytes read as they are.
/// Holds the decoded state in memory while it runs.
pub fn check_snapshot(
    file: &SnapshotFile,
    progress: impl FnMut(u64),
) -> Result<SnapshotHeader, SnapshotCheckError> {
    let reader = Counting {
        inner: open_snapshot(file)?,
        progress,
    };
    let (state, header) = codec::decode_with_header(reader)
        .map_err(|e| SnapshotCheckError::Invalid(e.to_string()))?;
    drop(state);
    check_name(file, &header)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{KeyWrite, Operation};
    use crate::oplog::encode_record;
    use bytes::Bytes;

    fn op(origin: u16, seq: Seq, key: &str, ms: u64) -> Operation {
        let mut deps = VersionVector::new();
        deps.set(RegionId(origin), seq - 1);
        Operation {
            origin: RegionId(origin),
            seq,
            hlc: Hlc::new(ms, 0),
            deps,
            txn_rest: 0,
            body: Body::Key(KeyWrite {
                key: Bytes::copy_from_slice(key.as_bytes()),
                fresh: false,
                effect: Effect::StrSet {
                    value: Bytes::from_static(b"v"),
                    ttl: TtlChange::Persist,
                },
            }),
        }
    }

    /// The record of `ops` (one origin, consecutive), as stored.
    fn rec(ops: &[Operation]) -> (Vec<u8>, Vec<u8>) {
        let mut v = Vec::new();
        encode_record(ops, &mut v);
        (record_key(ops[0].origin, ops[0].seq).to_vec(), v)
    }

    /// The record of `origin`'s operations `seqs`.
    fn run(origin: u16, seqs: std::ops::RangeInclusive<Seq>, ms: u64) -> (Vec<u8>, Vec<u8>) {
        let ops: Vec<_> = seqs.map(|s| op(origin, s, "k", ms + s)).collect();
        rec(&ops)
    }

    fn scan(records: &[(Vec<u8>, Vec<u8>)], cover: VersionVector) -> (LogScan, Vec<String>) {
        let mut s = LogScan::new(cover);
        let mut found = Vec::new();
        for (k, v) in records {
            let o = s.observe(k, v);
            if let Some(g) = o.gap {
                found.push(g.to_string());
            }
            if let Err(b) = o.record {
                found.push(b.to_string());
            }
        }
        (s, found)
    }

    #[test]
    fn a_good_log_has_no_problems_and_its_statistics() {
        // r1: records 5..=6 and 7..=9; r2: one record 1..=3.
        let recs = vec![
            run(1, 5..=6, 1000),
            run(1, 7..=9, 1000),
            run(2, 1..=3, 2000),
        ];
        let cover = VersionVector::from_entries([(RegionId(1), 7)]);
        let (s, found) = scan(&recs, cover);
        assert!(found.is_empty(), "{found:?}");
        assert!(!s.has_problems());
        assert_eq!((s.records, s.ops), (3, 8));
        let r1 = s.origin(RegionId(1)).expect("r1");
        assert_eq!(
            (r1.first_seq, r1.last_seq, r1.records, r1.ops),
            (Some(5), Some(9), 2, 5)
        );
        assert_eq!(r1.hlc_min, Some(Hlc::new(1005, 0)));
        assert_eq!(r1.hlc_max, Some(Hlc::new(1009, 0)));
        // 5, 6 and 7 are covered; only the record 5..=6 is wholly.
        assert_eq!((r1.covered, r1.covered_records), (3, 1));
        assert_eq!(r1.covered_bytes, recs[0].1.len() as u64);
        assert_eq!(r1.bytes, recs[..2].iter().map(|r| r.1.len() as u64).sum());
        let r2 = s.origin(RegionId(2)).expect("r2");
        assert_eq!(
            (r2.first_seq, r2.last_seq, r2.records, r2.ops, r2.covered),
            (Some(1), Some(3), 1, 3, 0)
        );
    }

    #[test]
    fn bad_records_and_gaps_are_located_and_the_first_is_the_cut() {
        let mut recs = vec![
            run(1, 1..=3, 1000),
            run(1, 4..=5, 1000),
            run(1, 6..=7, 1000),
            // r1:9's record under the key of r1:8.
            (record_key(RegionId(1), 8).to_vec(), run(1, 9..=9, 1000).1),
            run(1, 9..=10, 1000),
            // 11..=12 missing.
            run(1, 13..=14, 1000),
            // Repeats 14 (a run written twice): no problem.
            run(1, 14..=15, 1000),
            // 16 missing.
            run(1, 17..=17, 1000),
        ];
        // r1:4..=5 gets a flipped byte (CRC).
        let last = recs[1].1.len() - 1;
        recs[1].1[last] ^= 0x01;
        // A truncated value and a malformed key of r2.
        recs.push((record_key(RegionId(2), 1).to_vec(), vec![1, 2]));
        recs.push((vec![0, 2, 9], vec![0; 8]));
        let (s, found) = scan(&recs, VersionVector::new());
        assert_eq!(s.bad, 4, "{found:?}");
        assert_eq!(s.gaps, 2);
        assert_eq!(found.len(), 6, "{found:?}");
        let expected = format!(
            "bad record r1:4 (key 00010000000000000004, {} bytes, header claims seq 4..=5): ",
            recs[1].1.len()
        );
        assert!(found[0].starts_with(&expected), "{}", found[0]);
        assert!(found[0].contains("checksum mismatch"), "{}", found[0]);
        assert!(
            found[1].starts_with("bad record r1:8 ")
                && found[1].contains("holds r1:9 where r1:8 belongs"),
            "{}",
            found[1]
        );
        assert_eq!(found[2], "gap in r1: seq 11..=12 missing (2 operations)");
        assert_eq!(found[3], "gap in r1: seq 16..=16 missing (1 operation)");
        assert!(
            found[4].contains("r2:1") && found[4].contains("shorter than its 8-byte header"),
            "{}",
            found[4]
        );
        assert!(!found[4].contains("header claims"), "{}", found[4]);
        assert!(found[5].contains("r2:?") && found[5].contains("malformed key of 3 bytes"));
        let r1 = s.origin(RegionId(1)).expect("r1");
        let cut = r1.first_problem.as_ref().expect("cut");
        assert_eq!(
            (cut.seq, cut.key.as_slice()),
            (4, &record_key(RegionId(1), 4)[..])
        );
        assert_eq!((r1.gaps, r1.missing, r1.bad), (2, 3, 2));
        // Good records: 1..=3, 6..=7, 9..=10, 13..=14, 14..=15 (14 again),
        // 17.
        assert_eq!(
            (r1.records, r1.ops, r1.repeated, r1.last_seq),
            (8, 11, 1, Some(17))
        );
        let r2 = s.origin(RegionId(2)).expect("r2");
        assert_eq!(r2.first_problem.as_ref().map(|c| c.seq), Some(1));
        assert_eq!((s.records, s.ops, s.repeated), (10, 11, 1));
    }

    #[test]
    fn a_gap_alone_cuts_at_the_first_missing_sequence() {
        let recs = vec![run(1, 3..=4, 1), run(1, 7..=7, 1), run(1, 8..=12, 1)];
        let (s, found) = scan(&recs, VersionVector::new());
        assert_eq!(found, vec!["gap in r1: seq 5..=6 missing (2 operations)"]);
        let cut = s.origin(RegionId(1)).and_then(|o| o.first_problem.clone());
        assert_eq!(
            cut.map(|c| (c.seq, c.key)),
            Some((5, record_key(RegionId(1), 5).to_vec()))
        );
        // After a bad record, whose end is unknown, no gap is claimed; the
        // bad record is the cut (its key: the whole record goes).
        let mut recs = vec![run(1, 1..=2, 1), run(1, 3..=5, 1), run(1, 9..=9, 1)];
        recs[1].1[0] ^= 0x80;
        let (s, found) = scan(&recs, VersionVector::new());
        assert_eq!(found.len(), 1, "{found:?}");
        let r1 = s.origin(RegionId(1)).expect("r1");
        assert_eq!((r1.gaps, r1.bad, r1.ops), (0, 1, 3));
        let cut = r1.first_problem.clone().expect("cut");
        assert_eq!((cut.seq, cut.key), (3, record_key(RegionId(1), 3).to_vec()));
        // ...but a gap after the next good record is.
        recs.push(run(1, 11..=11, 1));
        let (s, found) = scan(&recs, VersionVector::new());
        assert_eq!(found[1], "gap in r1: seq 10..=10 missing (1 operation)");
        assert_eq!(s.gaps, 1);
    }

    #[test]
    fn overlapping_records_count_each_operation_once() {
        // 1..=6, then 3..=8 written again over it (a run written twice),
        // with a snapshot covering up to 5.
        let recs = vec![run(1, 1..=6, 1), run(1, 3..=8, 1), run(1, 9..=9, 1)];
        let cover = VersionVector::from_entries([(RegionId(1), 5)]);
        let (s, found) = scan(&recs, cover);
        assert!(found.is_empty(), "{found:?}");
        let r1 = s.origin(RegionId(1)).expect("r1");
        assert_eq!(
            (r1.ops, r1.repeated, r1.covered, r1.covered_records),
            (9, 4, 5, 0)
        );
        assert_eq!((r1.first_seq, r1.last_seq), (Some(1), Some(9)));
        let mut once = OnceEach::default();
        let passed: Vec<Seq> = recs
            .iter()
            .flat_map(|(k, v)| decode_record(k, v).expect("good"))
            .filter(|op| once.first_time(op))
            .map(|op| op.seq)
            .collect();
        assert_eq!(passed, (1..=9).collect::<Vec<_>>());
    }

    #[test]
    fn recovery_gaps_compare_the_log_start_with_the_snapshot() {
        let recs = vec![run(1, 10..=12, 1)];
        let (s, _) = scan(&recs, VersionVector::new());
        let gaps = recovery_gaps(&s, &VersionVector::new());
        assert_eq!(gaps.len(), 1);
        assert!(gaps[0].to_string().contains("seq 1..=9 are in neither"));
        let snap = VersionVector::from_entries([(RegionId(1), 9)]);
        assert!(recovery_gaps(&s, &snap).is_empty());
        let snap = VersionVector::from_entries([(RegionId(1), 20)]);
        assert!(recovery_gaps(&s, &snap).is_empty());
    }

    #[test]
    fn records_are_skipped_by_span_and_scans_start_early_enough() {
        let f = Filter {
            origin: Some(RegionId(1)),
            from: Some(10),
            to: Some(20),
            ..Filter::default()
        };
        assert!(f.wants_span(RegionId(1), 5, 10));
        assert!(f.wants_span(RegionId(1), 20, 30));
        assert!(f.wants_span(RegionId(1), 1, 100));
        assert!(!f.wants_span(RegionId(1), 5, 9));
        assert!(!f.wants_span(RegionId(1), 21, 30));
        assert!(!f.wants_span(RegionId(2), 10, 10));
        let (k, v) = run(1, 5..=12, 1);
        assert!(f.wants_record(&k, &v));
        let (k, v) = run(1, 1..=9, 1);
        assert!(!f.wants_record(&k, &v));
        // A failed CRC: the header is not trusted, the key is.
        let (k, mut v) = run(1, 1..=9, 1);
        v[5] ^= 1;
        assert_eq!(trusted_span(&k, &v), None);
        assert!(f.wants_record(&k, &v));
        let (k, mut v) = run(1, 21..=22, 1);
        assert_eq!(trusted_span(&k, &v), Some((RegionId(1), 21, 22)));
        v[5] ^= 1;
        assert!(!f.wants_record(&k, &v));
        // Unreadable spans: wanted unless of another origin.
        assert!(f.wants_record(&record_key(RegionId(1), 1), &[1, 2]));
        assert!(!f.wants_record(&record_key(RegionId(2), 1), &[1, 2]));
        assert!(f.wants_record(&[0, 1, 7], &[]));
        assert!(!f.wants_record(&[0, 2, 7], &[]));
        assert!(f.wants_record(&[0], &[]));
        assert!(Filter::default().wants_record(&[], &[]));
        // A record holding `seq` starts at or after `scan_start`.
        let max = MAX_RECORD_OPS as Seq;
        assert_eq!(scan_start(RegionId(1), 5), record_key(RegionId(1), 0));
        assert_eq!(
            scan_start(RegionId(1), 5000),
            record_key(RegionId(1), 5000 - max + 1)
        );
    }

    #[test]
    fn filters_by_origin_sequence_key_and_time() {
        let a = op(1, 5, "user:1", 1000);
        let b = op(2, 7, "other", 2000);
        let f = Filter {
            key: Some(b"user:*".to_vec()),
            ..Filter::default()
        };
        assert!(f.matches(&a) && !f.matches(&b));
        let f = Filter {
            origin: Some(RegionId(2)),
            ..Filter::default()
        };
        assert!(!f.matches(&a) && f.matches(&b));
        let f = Filter {
            from: Some(6),
            to: Some(7),
            ..Filter::default()
        };
        assert!(!f.matches(&a) && f.matches(&b));
        let f = Filter {
            since_ms: Some(1000),
            until_ms: Some(1999),
            ..Filter::default()
        };
        assert!(f.matches(&a) && !f.matches(&b));
        let mut flush = a.clone();
        flush.body = Body::FlushAll;
        let f = Filter {
            key: Some(b"*".to_vec()),
            ..Filter::default()
        };
        assert!(!f.matches(&flush));
        assert!(Filter::default().matches(&flush));
    }

    #[test]
    fn text_and_json_formats_escape_what_they_must() {
        let mut o = op(1, 2, "a\"b\\c\n\u{e9}", 1_700_000_000_000);
        o.hlc = Hlc::new(1_700_000_000_000, 3);
        let text = format_text(&o);
        assert_eq!(
            text,
            "r1:2 hlc=1700000000000.3 (2023-11-14T22:13:20.000Z) deps={r1:1} \
             key=\"a\\\"b\\\\c\\n\\xc3\\xa9\" StrSet { value: b\"v\", ttl: Persist }"
        );
        let json = format_json(&o);
        assert_eq!(
            json,
            "{\"origin\":1,\"seq\":2,\"hlc\":111411200000000003,\"hlc_ms\":1700000000000,\
             \"hlc_logical\":3,\"time\":\"2023-11-14T22:13:20.000Z\",\"deps\":{\"1\":1},\
             \"txn_rest\":0,\"op\":\"key\",\"key\":\"a\\\"b\\\\c\\n\u{e9}\",\"fresh\":false,\
             \"effect\":\"str_set\",\"args\":{\"value\":\"v\",\"ttl\":\"persist\"}}"
        );
        if let Body::Key(w) = &mut o.body {
            w.key = Bytes::from_static(b"\xff\x01");
            w.effect = Effect::ZAdd(vec![
                (Bytes::from_static(b"m"), f64::INFINITY),
                (Bytes::from_static(b"n"), 1.5),
            ]);
        }
        let json = format_json(&o);
        assert!(json.contains("\"key\":{\"hex\":\"ff01\"}"), "{json}");
        assert!(
            json.contains("\"args\":{\"members\":[[\"m\",\"inf\"],[\"n\",1.5]]}"),
            "{json}"
        );
        o.body = Body::FlushAll;
        assert!(format_json(&o).ends_with("\"txn_rest\":0,\"op\":\"flushall\"}"));
        assert!(format_text(&o).ends_with(" FLUSHALL"));
    }

    #[test]
    fn iso_dates_and_sizes() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn dependents_of_dropped_operations() {
        let mut d = Dependents::new(RegionId(1), 5, VersionVector::new());
        let mut a = op(2, 3, "k", 1);
        a.deps.set(RegionId(1), 4);
        d.observe(&a);
        a.seq = 4;
        a.deps.set(RegionId(1), 5);
        d.observe(&a);
        a.seq = 5;
        d.observe(&a);
        d.observe(&op(1, 9, "k", 1));
        assert_eq!(d.found.get(&RegionId(2)), Some(&(4, 2)));
        assert_eq!(d.found.len(), 1);
        // A snapshot covering r2:4, or r1:5, takes them out.
        let cover = VersionVector::from_entries([(RegionId(2), 4)]);
        let mut d = Dependents::new(RegionId(1), 5, cover);
        a.seq = 4;
        d.observe(&a);
        assert!(d.found.is_empty());
        let cover = VersionVector::from_entries([(RegionId(1), 5)]);
        let mut d = Dependents::new(RegionId(1), 5, cover);
        d.observe(&a);
        assert!(d.found.is_empty());
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(
            parse_snapshot_name("snapshot-00000000000000000042-1700000000123.braid"),
            Some((42, 1_700_000_000_123))
        );
        assert_eq!(parse_snapshot_name("snapshot-42-1.braid"), None);
        assert_eq!(parse_snapshot_name(".tmp-snapshot-1-0-x"), None);
    }
}
