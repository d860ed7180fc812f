//! The op log: every operation a region applied (its own and its peers'),
//! in RocksDB, keyed by (origin, sequence), each record checksummed.
//!
//! Layout (see `storage-format.md`, "Op log"): column family `log` maps
//! `origin (u16 BE) ‖ first seq (u64 BE)` to a record of that origin's
//! consecutive operations from there ([`record`]); column family `meta`
//! holds the data directory's identity and format.

pub mod commit;
pub mod inspect;
pub mod record;

pub use record::{
    decode_record, encode_record, parse_record_key, record_key, record_span, MAX_RECORD_OPS,
};

use rocksdb::{
    ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions, DB,
};
use std::path::{Path, PathBuf};

use crate::crdt::{Operation, RegionId, Seq, VersionVector};

/// Version of the record layout (the operation inside has its own): 2 is a
/// run of operations per record; a log in format 1 (one operation per
/// record) is rewritten in format 2 when the server first opens it.
pub const RECORD_FORMAT_VERSION: u8 = 2;
const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const META_FORMAT: &[u8] = b"format";
const META_REGION_ID: &[u8] = b"region_id";
const META_REGION_NAME: &[u8] = b"region_name";

/// Why the op log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpLogError {
    /// RocksDB failed.
    #[error("op log at {path}: {source}")]
    Db {
        /// Data directory.
        path: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A record failed its checksum or does not decode.
    #[error(
        "corrupt op-log record {origin}:{seq} (key {key_hex}) in {path}: {reason}. \
         The log is intact up to the record before it; truncate the log of region \
         {origin} after its last good record (braid-log repair) or restore a backup"
    )]
    Corrupt {
        /// Data directory.
        path: PathBuf,
        /// Origin region of the bad record.
        origin: RegionId,
        /// Its sequence.
        seq: Seq,
        /// Its RocksDB key, hex.
        key_hex: String,
        /// What is wrong.
        reason: String,
    },
    /// The data directory belongs to another region or a newer format.
    #[error("data directory {path}: {message}")]
    Identity {
        /// Data directory.
        path: PathBuf,
        /// What does not match.
        message: String,
    },
    /// Records are missing: the log cannot be replayed in causal order.
    #[error("op log at {path} has a gap: {message}")]
    Gap {
        /// Data directory.
        path: PathBuf,
        /// Which operation is missing.
        message: String,
    },
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Lower-case hex of a key, as error messages and tools print it.
pub fn key_hex(key: &[u8]) -> String {
    hex(key)
}

/// The smallest key above every key of `origin` (well-formed or not),
/// `None` for the last possible origin (nothing sorts after it).
fn origin_end(origin: RegionId) -> Option<[u8; 2]> {
    origin.0.checked_add(1).map(u16::to_be_bytes)
}

/// What the `meta` column family says about a data directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogIdentity {
    /// The record format version (`None`: nothing was ever written).
    pub format: Option<Vec<u8>>,
    /// The region the directory belongs to.
    pub region_id: Option<RegionId>,
    /// That region's name.
    pub region_name: Option<String>,
}

/// One raw record: its key and value as stored.
pub type RawRecord<'a> = (&'a [u8], &'a [u8]);

/// A forward scan over the raw records of the `log` column family, in key
/// order: every key and value as stored, without checking or decoding them,
/// so a bad record does not end the scan (see [`inspect`] for checking).
/// Not a `std::iter::Iterator`: each record borrows from the scan.
pub struct RawRecords<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    started: bool,
    done: bool,
    path: &'a Path,
}

impl RawRecords<'_> {
    /// The next record as (key, value), `None` at the end of the column
    /// family; a RocksDB read error ends the scan after it is returned.
    pub fn next_record(&mut self) -> Option<Result<RawRecord<'_>, OpLogError>> {
        if self.done {
            return None;
        }
        if self.started {
            self.it.next();
        }
        self.started = true;
        if !self.it.valid() {
            self.done = true;
            return match self.it.status() {
                Ok(()) => None,
                Err(source) => Some(Err(OpLogError::Db {
                    path: self.path.to_path_buf(),
                    source,
                })),
            };
        }
        match (self.it.key(), self.it.value()) {
            (Some(k), Some(v)) => Some(Ok((k, v))),
            _ => {
                self.done = true;
                None
            }
        }
    }
}

impl std::fmt::Debug for RawRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRecords")
            .field("path", &self.path)
            .field("done", &self.done)
            .finish()
    }
}

/// A region's op log.
pub struct OpLog {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for OpLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpLog").field("path", &self.path).finish()
    }
}

impl OpLog {
    /// Opens (creating if needed) the log in `dir`, checking that it belongs
    /// to region `region` (`name` is recorded on creation).
    pub fn open(dir: &Path, region: RegionId, name: &str) -> Result<OpLog, OpLogError> {
        let path = dir.join("oplog");
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_LOG, CF_META].map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(|source| OpLogError::Db {
            path: path.clone(),
            source,
        })?;
        let log = OpLog { db, path };
        log.check_identity(region, name)?;
        Ok(log)
    }

    fn db_err(&self, source: rocksdb::Error) -> OpLogError {
        OpLogError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, OpLogError> {
        self.db.cf_handle(name).ok_or_else(|| OpLogError::Identity {
            path: self.path.clone(),
            message: format!("column family '{name}' is missing"),
        })
    }

    fn check_identity(&self, region: RegionId, name: &str) -> Result<(), OpLogError> {
        let meta = self.cf(CF_META)?;
        let identity = |message: String| OpLogError::Identity {
            path: self.path.clone(),
            message,
        };
        match self
            .db
            .get_cf(meta, META_FORMAT)
            .map_err(|e| self.db_err(e))?
        {
            None => {
                let mut b = WriteBatch::default();
                b.put_cf(meta, META_FORMAT, [RECORD_FORMAT_VERSION]);
                b.put_cf(meta, META_REGION_ID, region.0.to_be_bytes());
                b.put_cf(meta, META_REGION_NAME, name.as_bytes());
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                self.db.write_opt(b, &wo).map_err(|e| self.db_err(e))?;
                // Flushed at once: a column family whose memtable is never
                // flushed pins every write-ahead log file written since.
                self.db.flush_cf(meta).map_err(|e| self.db_err(e))?;
                Ok(())
            }
            Some(v) if v.as_slice() != [RECORD_FORMAT_VERSION] && v.as_slice() != [1] => {
                Err(identity(format!(
                    "op-log format {v:?} is not supported (this build reads {RECORD_FORMAT_VERSION}, and upgrades 1)"
                )))
            }
            Some(v) => {
                let id = self
                    .db
                    .get_cf(meta, META_REGION_ID)
                    .map_err(|e| self.db_err(e))?;
                let id = id
                    .and_then(|v| v.try_into().ok())
                    .map(|b: [u8; 2]| u16::from_be_bytes(b));
                if id != Some(region.0) {
                    return Err(identity(format!(
                        "belongs to region id {id:?}, not {region}; point --data-dir elsewhere or fix --region-id"
                    )));
                }
                if v.as_slice() == [1] {
                    self.upgrade_from_format_1()?;
                }
                Ok(())
            }
        }
    }

    /// Rewrites a format-1 log (one operation per record) in format 2, a
    /// run of up to [`MAX_RECORD_OPS`] operations per atomic write, then
    /// records format 2 in `meta`. A crash part way is safe: records
    /// already rewritten decode as format 2 and are kept as they are.
    fn upgrade_from_format_1(&self) -> Result<(), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        tracing::info!(path = %self.path.display(), "upgrading the op log from format 1 to 2");
        let mut run: Vec<Operation> = Vec::new();
        let mut upgraded = 0u64;
        let write_run = |run: &mut Vec<Operation>| -> Result<(), OpLogError> {
            let (Some(first), Some(last)) = (run.first(), run.last()) else {
                return Ok(());
            };
            let mut batch = WriteBatch::default();
            debug_assert_eq!(last.seq - first.seq + 1, run.len() as u64);
            for op in run.iter() {
                batch.delete_cf(cf, record_key(op.origin, op.seq));
            }
            record::encode_records(run, |k, v| batch.put_cf(cf, k, v));
            self.db.write(batch).map_err(|e| self.db_err(e))?;
            run.clear();
            Ok(())
        };
        let mut records = self.raw_records(&[])?;
        while let Some(item) = records.next_record() {
            let (k, v) = item?;
            let Some((origin, seq)) = parse_record_key(k) else {
                continue;
            };
            // Format 2 first: its checks are strict enough that a format-1
            // record never passes them (both CRCs cover bytes 4..).
            if decode_record(k, v).is_ok() {
                write_run(&mut run)?;
                continue;
            }
            match record::decode_record_v1(k, v) {
                Ok(op) => {
                    let follows = run
                        .last()
                        .is_some_and(|l| l.origin == op.origin && l.seq + 1 == op.seq);
                    if !follows || run.len() >= MAX_RECORD_OPS {
                        write_run(&mut run)?;
                    }
                    run.push(op);
                    upgraded += 1;
                    if upgraded % 1_000_000 == 0 {
                        tracing::info!(operations = upgraded, "op-log upgrade in progress");
                    }
                }
                Err(reason) => {
                    return Err(OpLogError::Corrupt {
                        path: self.path.clone(),
                        origin,
                        seq,
                        key_hex: hex(k),
                        reason: format!(
                            "{reason} (while upgrading the log from format 1; repair it with the braid-log of the previous release, or restore a backup)"
                        ),
                    })
                }
            }
        }
        write_run(&mut run)?;
        drop(records);
        let meta = self.cf(CF_META)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_FORMAT, [RECORD_FORMAT_VERSION]);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))?;
        self.db.flush_cf(meta).map_err(|e| self.db_err(e))?;
        tracing::info!(operations = upgraded, "op log upgraded to format 2");
        Ok(())
    }

    /// Appends operations as one atomic write (a record per run of one
    /// origin's consecutive operations); `sync` makes it durable (fsync of
    /// the write-ahead log) before returning.
    pub fn append(&self, ops: &[Operation], sync: bool) -> Result<(), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        record::encode_records(ops, |k, v| batch.put_cf(cf, k, v));
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<(), OpLogError> {
        self.db.flush_wal(true).map_err(|e| self.db_err(e))
    }

    /// The origins that have records, in id order.
    pub fn origins(&self) -> Result<Vec<RegionId>, OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let mut out = Vec::new();
        let mut from = record_key(RegionId(0), 0);
        loop {
            let mut it = self
                .db
                .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward));
            let Some(item) = it.next() else { break };
            let (k, _) = item.map_err(|e| self.db_err(e))?;
            let Some((origin, _)) = parse_record_key(&k) else {
                break;
            };
            out.push(origin);
            match origin.0.checked_add(1) {
                Some(next) => from = record_key(RegionId(next), 0),
                None => break,
            }
        }
        Ok(out)
    }

    /// Reads one origin's operations with sequence above `after`, in order.
    pub fn read_origin(
        &self,
        origin: RegionId,
        after: Seq,
    ) -> Result<impl Iterator<Item = Result<Operation, OpLogError>> + '_, OpLogError> {
        Ok(self
            .origin_reader(origin, after)?
            .map(|r| r.map(|(op, _)| op)))
    }

    fn origin_reader(&self, origin: RegionId, after: Seq) -> Result<OriginReader<'_>, OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let mut it = self.db.raw_iterator_cf(cf);
        let from = after.saturating_add(1);
        // The record holding `from` may start before it. One whose header
        // does not read may hold it: read it, so that it is reported.
        it.seek_for_prev(record_key(origin, from));
        let holds_from = it.valid()
            && match (it.key(), it.value()) {
                (Some(k), Some(v)) => {
                    parse_record_key(k).is_some_and(|(o, _)| o == origin)
                        && record_span(k, v).is_none_or(|(_, _, last)| last >= from)
                }
                _ => false,
            };
        if !holds_from {
            it.seek(record_key(origin, from));
        }
        Ok(OriginReader {
            it,
            origin,
            after,
            ops: Vec::new().into_iter(),
            done: false,
            path: &self.path,
        })
    }

    /// The first sequence of `origin` still in the log, if any.
    pub fn first_seq(&self, origin: RegionId) -> Result<Option<Seq>, OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let start = record_key(origin, 0);
        let mut it = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, _) = item.map_err(|e| self.db_err(e))?;
                Ok(parse_record_key(&k)
                    .filter(|(o, _)| *o == origin)
                    .map(|(_, s)| s))
            }
        }
    }

    /// Reads one origin's operations with sequence in `(after, upto]`, in
    /// order, stopping after `max_ops` operations or once `max_bytes` are
    /// reached (at least one operation is read if any). Returns them with
    /// their total encoded size: what replication ships to a peer.
    pub fn read_range(
        &self,
        origin: RegionId,
        after: Seq,
        upto: Seq,
        max_ops: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Operation>, usize), OpLogError> {
        let mut ops = Vec::new();
        let mut bytes = 0usize;
        for item in self.origin_reader(origin, after)? {
            if ops.len() >= max_ops || (bytes >= max_bytes && !ops.is_empty()) {
                break;
            }
            let (op, size) = item?;
            if op.seq > upto {
                break;
            }
            bytes += size;
            ops.push(op);
        }
        Ok((ops, bytes))
    }

    /// Replays every operation not covered by `from`, in an order that
    /// respects causality (a k-way merge of the origins' logs, each
    /// operation taken once its dependencies are in). Stops at the first
    /// corrupt record or gap, naming it. Returns the number replayed.
    pub fn replay(
        &self,
        from: &VersionVector,
        mut apply: impl FnMut(Operation),
    ) -> Result<u64, OpLogError> {
        let origins = self.origins()?;
        let mut vv = from.clone();
        let mut iters = Vec::new();
        for o in &origins {
            let mut it = self.read_origin(*o, from.get(*o))?.peekable();
            // Materialize errors lazily: peek surfaces them.
            if let Some(Err(_)) = it.peek() {
                if let Some(Err(e)) = it.next() {
                    return Err(e);
                }
            }
            iters.push((*o, it));
        }
        let mut n = 0u64;
        loop {
            let mut progressed = false;
            let mut remaining = false;
            for (origin, it) in iters.iter_mut() {
                loop {
                    let ready = match it.peek() {
                        None => break,
                        Some(Err(_)) => {
                            return Err(match it.next() {
                                Some(Err(e)) => e,
                                _ => OpLogError::Gap {
                                    path: self.path.clone(),
                                    message: "iterator state".into(),
                                },
                            })
                        }
                        Some(Ok(op)) => {
                            if op.seq != vv.get(*origin) + 1 {
                                return Err(OpLogError::Gap {
                                    path: self.path.clone(),
                                    message: format!(
                                        "next record of {origin} is seq {} but {} was expected",
                                        op.seq,
                                        vv.get(*origin) + 1
                                    ),
                                });
                            }
                            vv.dominates(&op.deps)
                        }
                    };
                    if !ready {
                        remaining = true;
                        break;
                    }
                    if let Some(Ok(op)) = it.next() {
                        vv.set(*origin, op.seq);
                        apply(op);
                        n += 1;
                        progressed = true;
                    }
                }
            }
            if !remaining {
                return Ok(n);
            }
            if !progressed {
                return Err(OpLogError::Gap {
                    path: self.path.clone(),
                    message: format!(
                        "operations wait for dependencies the log does not hold (replayed up to {vv})"
                    ),
                });
            }
        }
    }

    /// Deletes every record whose operations `vv` all covers (they are in a
    /// snapshot). A record only partly covered stays whole.
    pub fn truncate_covered(&self, vv: &VersionVector) -> Result<(), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        for (origin, seq) in vv.iter() {
            let end = match self.record_at_or_before(origin, seq)? {
                None => continue,
                Some((first, last)) if last > seq => first,
                Some(_) => seq.saturating_add(1),
            };
            self.db
                .delete_range_cf(cf, record_key(origin, 0), record_key(origin, end))
                .map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    /// The first and last sequence of the last record of `origin` starting
    /// at or before `seq` (a header that does not read counts as holding
    /// its first operation only).
    fn record_at_or_before(
        &self,
        origin: RegionId,
        seq: Seq,
    ) -> Result<Option<(Seq, Seq)>, OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek_for_prev(record_key(origin, seq));
        if !it.valid() {
            it.status().map_err(|e| self.db_err(e))?;
            return Ok(None);
        }
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            return Ok(None);
        };
        Ok(match (parse_record_key(k), record_span(k, v)) {
            (Some((o, first)), span) if o == origin => {
                Some((first, span.map_or(first, |(_, _, last)| last)))
            }
            _ => None,
        })
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Access for tools (`braid-log`): opening a data directory whose region is
/// not known beforehand, read-only or beside a running server, and raw scans
/// and truncation. The server itself never uses these.
impl OpLog {
    fn existing_path(dir: &Path) -> Result<PathBuf, OpLogError> {
        let path = dir.join("oplog");
        if !path.join("CURRENT").is_file() {
            return Err(OpLogError::Identity {
                path,
                message: "no op log here (no RocksDB CURRENT file); is --data-dir right?".into(),
            });
        }
        Ok(path)
    }

    /// Refuses a directory written in a record format this build does not
    /// read. An empty `meta` (nothing written yet) is accepted.
    fn check_format(self) -> Result<OpLog, OpLogError> {
        if let Some(v) = self.identity()?.format {
            if v.as_slice() != [RECORD_FORMAT_VERSION] {
                return Err(OpLogError::Identity {
                    path: self.path.clone(),
                    message: format!(
                        "op-log format {v:?} is not supported (this build reads {RECORD_FORMAT_VERSION})"
                    ),
                });
            }
        }
        Ok(self)
    }

    /// Opens the existing log in `dir` read-only, whatever region it
    /// belongs to. Takes no lock and writes nothing, so it may be used while
    /// a server runs on `dir`, but it sees the log as of the moment it was
    /// opened (see [`OpLog::open_secondary`] to follow a running server).
    pub fn open_read_only(dir: &Path) -> Result<OpLog, OpLogError> {
        let path = Self::existing_path(dir)?;
        let db = DB::open_cf_for_read_only(&Options::default(), &path, [CF_LOG, CF_META], false)
            .map_err(|source| OpLogError::Db {
                path: path.clone(),
                source,
            })?;
        OpLog { db, path }.check_format()
    }

    /// Opens the existing log in `dir` as a RocksDB secondary instance: a
    /// reader beside the server (the primary), which it neither locks nor
    /// writes to; [`OpLog::catch_up`] brings it up to date with what the
    /// primary has written since. `secondary_dir` is a private directory
    /// for the secondary's own files (RocksDB's info log), e.g. a temporary
    /// directory. Works on a stopped server's directory too.
    pub fn open_secondary(dir: &Path, secondary_dir: &Path) -> Result<OpLog, OpLogError> {
        let path = Self::existing_path(dir)?;
        let mut opts = Options::default();
        // A secondary must keep every table file open: the primary may
        // delete files (compaction) while the secondary still reads them.
        opts.set_max_open_files(-1);
        let db = DB::open_cf_as_secondary(&opts, path.as_path(), secondary_dir, [CF_LOG, CF_META])
            .map_err(|source| OpLogError::Db {
                path: path.clone(),
                source,
            })?;
        OpLog { db, path }.check_format()
    }

    /// Opens the existing log in `dir` for writing, whatever region it
    /// belongs to, without creating anything. Exclusive: fails (RocksDB's
    /// `LOCK`) while a server or another writer has the directory open.
    pub fn open_existing(dir: &Path) -> Result<OpLog, OpLogError> {
        let path = Self::existing_path(dir)?;
        let cfs = [CF_LOG, CF_META].map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = DB::open_cf_descriptors(&Options::default(), &path, cfs).map_err(|source| {
            OpLogError::Db {
                path: path.clone(),
                source,
            }
        })?;
        OpLog { db, path }.check_format()
    }

    /// For a log opened with [`OpLog::open_secondary`]: reads what the
    /// primary has written since the last call (or the open). An error on
    /// any other kind of handle.
    pub fn catch_up(&self) -> Result<(), OpLogError> {
        self.db
            .try_catch_up_with_primary()
            .map_err(|e| self.db_err(e))
    }

    /// What the `meta` column family records about the directory.
    pub fn identity(&self) -> Result<LogIdentity, OpLogError> {
        let meta = self.cf(CF_META)?;
        let get = |k: &[u8]| self.db.get_cf(meta, k).map_err(|e| self.db_err(e));
        let format = get(META_FORMAT)?;
        let region_id = get(META_REGION_ID)?
            .and_then(|v| <[u8; 2]>::try_from(v.as_slice()).ok())
            .map(|b| RegionId(u16::from_be_bytes(b)));
        let region_name = get(META_REGION_NAME)?.map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(LogIdentity {
            format,
            region_id,
            region_name,
        })
    }

    /// The last sequence of `origin` in the log, if any (from the last
    /// record's header; its first sequence if that does not read).
    pub fn last_seq(&self, origin: RegionId) -> Result<Option<Seq>, OpLogError> {
        Ok(self
            .record_at_or_before(origin, Seq::MAX)?
            .map(|(_, last)| last))
    }

    /// Scans the raw records from the first key at or above `from` (an
    /// empty slice: from the start) to the end of the log, in key order;
    /// the caller stops where it wants. Reads bypass the block cache, as
    /// fits a one-pass scan.
    pub fn raw_records(&self, from: &[u8]) -> Result<RawRecords<'_>, OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_readahead_size(4 << 20);
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        it.seek(from);
        Ok(RawRecords {
            it,
            started: false,
            done: false,
            path: &self.path,
        })
    }

    /// Deletes every record of `origin` whose key is `from` or above (the
    /// records of the origin from there on, including malformed keys that
    /// sort among them), as one synced write. `from` must start with the
    /// origin's two key bytes. Needs a handle from [`OpLog::open_existing`]
    /// (or [`OpLog::open`]).
    pub fn delete_from(&self, origin: RegionId, from: &[u8]) -> Result<(), OpLogError> {
        if from.get(..2) != Some(&origin.0.to_be_bytes()[..]) {
            return Err(OpLogError::Identity {
                path: self.path.clone(),
                message: format!("key {} is not a key of {origin}", hex(from)),
            });
        }
        let mut batch = WriteBatch::default();
        self.delete_from_in(&mut batch, origin, from)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))
    }

    /// Adds to `batch` the deletion of every key of `origin` from `from` on.
    fn delete_from_in(
        &self,
        batch: &mut WriteBatch,
        origin: RegionId,
        from: &[u8],
    ) -> Result<(), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        match origin_end(origin) {
            Some(end) => batch.delete_range_cf(cf, from, &end[..]),
            None => {
                // The last origin: no key bounds it from above, so delete
                // what is there one key at a time.
                let mut records = self.raw_records(from)?;
                while let Some(item) = records.next_record() {
                    let (k, _) = item?;
                    batch.delete_cf(cf, k);
                }
            }
        }
        Ok(())
    }

    /// Deletes every operation of `origin` with a sequence above `seq`,
    /// keeping `seq` and what precedes it (see [`OpLog::delete_from`]), in
    /// one synced write: a record holding both sides is rewritten with its
    /// operations up to `seq` (it must decode). For `braid-log repair`.
    pub fn truncate_after(&self, origin: RegionId, seq: Seq) -> Result<(), OpLogError> {
        let Some(next) = seq.checked_add(1) else {
            return Ok(());
        };
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        // Every record starting at or before `seq` that reaches past it
        // (normally only the last; runs written twice may overlap).
        let mut keep: Vec<Operation> = Vec::new();
        let mut records = self.raw_records(&record_key(origin, 0))?;
        while let Some(item) = records.next_record() {
            let (k, v) = item?;
            match parse_record_key(k) {
                Some((o, first))
                    if o == origin
                        && first <= seq
                        && record_span(k, v).is_some_and(|(_, _, last)| last > seq) =>
                {
                    let ops = decode_record(k, v).map_err(|reason| OpLogError::Corrupt {
                        path: self.path.clone(),
                        origin,
                        seq: first,
                        key_hex: hex(k),
                        reason,
                    })?;
                    batch.delete_cf(cf, k);
                    keep.extend(ops.into_iter().filter(|op| op.seq <= seq));
                }
                Some((o, first)) if o == origin && first <= seq => {}
                Some(_) => break,
                None => {}
            }
        }
        drop(records);
        self.delete_from_in(&mut batch, origin, &record_key(origin, next))?;
        keep.sort_by_key(|op| op.seq);
        keep.dedup_by_key(|op| op.seq);
        record::encode_records(&keep, |k, v| batch.put_cf(cf, k, v));
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))
    }
}

/// One origin's operations from the log, record by record, from the first
/// sequence above `after`, each once and in increasing order: what replay
/// and replication read.
struct OriginReader<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
    origin: RegionId,
    after: Seq,
    ops: std::vec::IntoIter<(Operation, usize)>,
    done: bool,
    path: &'a Path,
}

impl Iterator for OriginReader<'_> {
    type Item = Result<(Operation, usize), OpLogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((op, size)) = self.ops.next() {
                // Skipping what was already yielded also makes a record
                // written twice (overlapping runs) harmless, as rewriting a
                // key is.
                if op.seq > self.after {
                    self.after = op.seq;
                    return Some(Ok((op, size)));
                }
                continue;
            }
            if self.done {
                return None;
            }
            if !self.it.valid() {
                self.done = true;
                return self.it.status().err().map(|source| {
                    Err(OpLogError::Db {
                        path: self.path.to_path_buf(),
                        source,
                    })
                });
            }
            let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
                self.done = true;
                return None;
            };
            let Some((o, first)) = parse_record_key(k).filter(|(o, _)| *o == self.origin) else {
                self.done = true;
                return None;
            };
            match record::decode_record_sized(k, v) {
                Ok(ops) => self.ops = ops.into_iter(),
                Err(reason) => {
                    self.done = true;
                    return Some(Err(OpLogError::Corrupt {
                        path: self.path.to_path_buf(),
                        origin: o,
                        seq: first,
                        key_hex: hex(k),
                        reason,
                    }));
                }
            }
            self.it.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::record::test_op as op;
    use super::*;

    fn keys(log: &OpLog, from: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut it = log.raw_records(from).expect("scan");
        while let Some(item) = it.next_record() {
            out.push(item.expect("record").0.to_vec());
        }
        out
    }

    fn read_all(log: &OpLog, origin: u16, after: Seq) -> Vec<Seq> {
        log.read_origin(RegionId(origin), after)
            .expect("read")
            .map(|r| r.expect("good record").seq)
            .collect()
    }

    /// A log holding operations 1..=6 of r1 and 1..=3 of r2, appended as one
    /// group commit.
    fn two_origins() -> (tempfile::TempDir, OpLog) {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
        let ops: Vec<_> = (1..=6)
            .map(|s| op(1, s))
            .chain((1..=3).map(|s| op(2, s)))
            .collect();
        log.append(&ops, true).expect("append");
        (dir, log)
    }

    #[test]
    fn a_group_commit_is_one_record_per_origin_run() {
        let (_dir, log) = two_origins();
        log.append(&[op(1, 7), op(1, 8)], true).expect("append");
        assert_eq!(
            keys(&log, &[]),
            vec![
                record_key(RegionId(1), 1).to_vec(),
                record_key(RegionId(1), 7).to_vec(),
                record_key(RegionId(2), 1).to_vec(),
            ]
        );
        assert_eq!(log.first_seq(RegionId(2)).expect("first"), Some(1));
        assert_eq!(log.first_seq(RegionId(1)).expect("first"), Some(1));
        assert_eq!(log.last_seq(RegionId(1)).expect("last"), Some(8));
        assert_eq!(log.last_seq(RegionId(2)).expect("last"), Some(3));
        assert_eq!(log.last_seq(RegionId(3)).expect("last"), None);
        // A run written again (overlapping the ones before) reads once.
        log.append(&[op(1, 6), op(1, 7)], true).expect("append");
        // Reads start inside a record as well as at its start.
        for after in 0..=8 {
            assert_eq!(
                read_all(&log, 1, after),
                (after + 1..=8).collect::<Vec<_>>()
            );
        }
        let (got, bytes) = log
            .read_range(RegionId(1), 3, 7, 100, 1 << 20)
            .expect("range");
        assert_eq!(
            got.iter().map(|o| o.seq).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        let one = crate::crdt::codec::encode_op_to_vec(&op(1, 4)).len();
        assert!(
            bytes >= 4 * one - 4 && bytes <= 4 * one + 4,
            "{bytes} vs {one}"
        );
        let (got, _) = log
            .read_range(RegionId(1), 0, 8, 3, 1 << 20)
            .expect("range");
        assert_eq!(got.len(), 3);
        let (got, _) = log.read_range(RegionId(1), 0, 8, 100, 1).expect("range");
        assert_eq!(got.len(), 1, "at least one operation whatever max_bytes");
    }

    #[test]
    fn a_bad_record_is_an_error_naming_its_first_operation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
        log.append(&(1..=2).map(|s| op(1, s)).collect::<Vec<_>>(), true)
            .expect("append");
        log.append(&(3..=5).map(|s| op(1, s)).collect::<Vec<_>>(), true)
            .expect("append");
        log.append(&[op(1, 6)], true).expect("append");
        let cf = log.cf(CF_LOG).expect("cf");
        log.db
            .put_cf(cf, record_key(RegionId(1), 3), [0u8; 9])
            .expect("damage");
        let read: Vec<_> = log.read_origin(RegionId(1), 0).expect("read").collect();
        assert_eq!(read.len(), 3, "two good operations, then the error");
        assert!(matches!(read[2], Err(OpLogError::Corrupt { seq: 3, .. })));
        // Starting inside the bad record finds it too.
        let read: Vec<_> = log.read_origin(RegionId(1), 3).expect("read").collect();
        assert!(matches!(read[0], Err(OpLogError::Corrupt { seq: 3, .. })));
        assert!(log.read_range(RegionId(1), 1, 6, 100, 1 << 20).is_err());
        let replayed = log.replay(&VersionVector::new(), |_| {});
        assert!(matches!(replayed, Err(OpLogError::Corrupt { seq: 3, .. })));
    }

    #[test]
    fn truncation_keeps_a_record_that_is_only_partly_covered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
        for run in [1..=3, 4..=6, 7..=9] {
            log.append(&run.map(|s| op(1, s)).collect::<Vec<_>>(), true)
                .expect("append");
        }
        let mut vv = VersionVector::new();
        vv.set(RegionId(1), 4);
        log.truncate_covered(&vv).expect("truncate");
        assert_eq!(log.first_seq(RegionId(1)).expect("first"), Some(4));
        assert_eq!(read_all(&log, 1, 4), vec![5, 6, 7, 8, 9]);
        vv.set(RegionId(1), 6);
        log.truncate_covered(&vv).expect("truncate");
        assert_eq!(log.first_seq(RegionId(1)).expect("first"), Some(7));
        let mut replayed = Vec::new();
        log.replay(&vv, |o| replayed.push(o.seq)).expect("replay");
        assert_eq!(replayed, vec![7, 8, 9]);
        vv.set(RegionId(1), 9);
        vv.set(RegionId(7), 3);
        log.truncate_covered(&vv).expect("truncate");
        assert_eq!(log.first_seq(RegionId(1)).expect("first"), None);
    }

    #[test]
    fn truncate_after_cuts_inside_a_record() {
        let (_dir, log) = two_origins();
        log.truncate_after(RegionId(1), 2).expect("truncate");
        assert_eq!(read_all(&log, 1, 0), vec![1, 2]);
        assert_eq!(read_all(&log, 2, 0), vec![1, 2, 3]);
        log.truncate_after(RegionId(1), 2)
            .expect("again: nothing to cut");
        assert_eq!(read_all(&log, 1, 0), vec![1, 2]);
        // Overlapping runs (one written twice) are both cut.
        log.append(&(3..=8).map(|s| op(1, s)).collect::<Vec<_>>(), true)
            .expect("append");
        log.append(&(5..=9).map(|s| op(1, s)).collect::<Vec<_>>(), true)
            .expect("append");
        log.truncate_after(RegionId(1), 6).expect("truncate");
        assert_eq!(read_all(&log, 1, 0), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(log.last_seq(RegionId(1)).expect("last"), Some(6));
        log.truncate_after(RegionId(1), 0).expect("truncate");
        assert_eq!(read_all(&log, 1, 0), Vec::<Seq>::new());
        assert!(log
            .delete_from(RegionId(1), &record_key(RegionId(2), 1))
            .is_err());
        let id = log.identity().expect("identity");
        assert_eq!(id.region_id, Some(RegionId(1)));
        assert_eq!(id.region_name.as_deref(), Some("a"));
        assert_eq!(id.format, Some(vec![RECORD_FORMAT_VERSION]));
    }

    /// Writes `ops` as a format-1 log would have: one record per operation.
    fn put_format_1(log: &OpLog, ops: &[Operation]) {
        let cf = log.cf(CF_LOG).expect("cf");
        for o in ops {
            let mut v = vec![0; 4];
            crate::crdt::codec::encode_op(o, &mut v);
            let crc = crc32fast::hash(&v[4..]);
            v[..4].copy_from_slice(&crc.to_le_bytes());
            log.db
                .put_cf(cf, record_key(o.origin, o.seq), v)
                .expect("put");
        }
    }

    #[test]
    fn a_format_1_log_is_upgraded_on_open_even_after_a_crash_part_way() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
            // A crash part way: region 1's operations 1..=3 already in
            // format 2, the rest still in format 1.
            log.append(&(1..=3).map(|s| op(1, s)).collect::<Vec<_>>(), true)
                .expect("append");
            let old: Vec<_> = (4..=(MAX_RECORD_OPS as u64 + 10))
                .map(|s| op(1, s))
                .chain((1..=5).map(|s| op(2, s)))
                .collect();
            put_format_1(&log, &old);
            let meta = log.cf(CF_META).expect("meta");
            log.db.put_cf(meta, META_FORMAT, [1u8]).expect("format 1");
        }
        let log = OpLog::open(dir.path(), RegionId(1), "a").expect("upgrades");
        assert_eq!(
            log.identity().expect("identity").format,
            Some(vec![RECORD_FORMAT_VERSION])
        );
        let last = MAX_RECORD_OPS as u64 + 10;
        assert_eq!(read_all(&log, 1, 0), (1..=last).collect::<Vec<_>>());
        assert_eq!(read_all(&log, 2, 0), (1..=5).collect::<Vec<_>>());
        // Records are runs now: far fewer keys than operations.
        let n = keys(&log, &[]).len();
        assert!(n <= 4, "{n} records");
        let mut replayed = 0;
        log.replay(&VersionVector::new(), |_| replayed += 1)
            .expect("replay");
        assert_eq!(replayed, last + 5);
    }

    #[test]
    fn a_format_1_log_with_a_bad_record_is_refused_not_half_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
            put_format_1(&log, &(1..=3).map(|s| op(1, s)).collect::<Vec<_>>());
            let cf = log.cf(CF_LOG).expect("cf");
            log.db
                .put_cf(cf, record_key(RegionId(1), 2), [1u8; 12])
                .expect("damage");
            let meta = log.cf(CF_META).expect("meta");
            log.db.put_cf(meta, META_FORMAT, [1u8]).expect("format 1");
        }
        let err = OpLog::open(dir.path(), RegionId(1), "a").expect_err("refused");
        assert!(err.to_string().contains("upgrading"), "{err}");
        assert!(matches!(err, OpLogError::Corrupt { seq: 2, .. }), "{err}");
    }

    #[test]
    fn the_last_origin_is_truncated_too() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
        let last = u16::MAX;
        log.append(&(1..=4).map(|s| op(last, s)).collect::<Vec<_>>(), true)
            .expect("append");
        log.truncate_after(RegionId(last), 1).expect("truncate");
        assert_eq!(log.last_seq(RegionId(last)).expect("last"), Some(1));
    }

    #[test]
    fn readers_beside_a_writer_and_the_writer_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OpLog::open(dir.path(), RegionId(1), "a").expect("opens");
        log.append(&[op(1, 1), op(1, 2)], true).expect("append");
        let secondary = tempfile::tempdir().expect("temp dir");
        let reader = OpLog::open_secondary(dir.path(), secondary.path()).expect("secondary");
        let ro = OpLog::open_read_only(dir.path()).expect("read-only");
        assert_eq!(reader.last_seq(RegionId(1)).expect("last"), Some(2));
        assert_eq!(ro.last_seq(RegionId(1)).expect("last"), Some(2));
        log.append(&[op(1, 3)], true).expect("append");
        reader.catch_up().expect("catch up");
        assert_eq!(reader.last_seq(RegionId(1)).expect("last"), Some(3));
        // A second writer is refused while the first holds the lock.
        let err = OpLog::open_existing(dir.path()).expect_err("locked");
        assert!(err.to_string().to_lowercase().contains("lock"), "{err}");
        drop(log);
        let writer = OpLog::open_existing(dir.path()).expect("unlocked");
        assert_eq!(writer.last_seq(RegionId(1)).expect("last"), Some(3));
        let missing = tempfile::tempdir().expect("temp dir");
        let err = OpLog::open_read_only(missing.path()).expect_err("no log");
        assert!(err.to_string().contains("no op log here"), "{err}");
    }
}
