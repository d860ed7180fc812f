//! The op log: every operation a region applied (its own and its peers'),
//! in RocksDB, keyed by (origin, sequence), each record checksummed.
//!
//! Layout (see `storage-format.md`, "Op log"): column family `log` maps
//! `origin (u16 BE) ‖ seq (u64 BE)` to `crc32 (u32 LE) ‖ encoded operation`;
//! column family `meta` holds the data directory's identity.

pub mod commit;

use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::{Path, PathBuf};

use crate::crdt::codec::{decode_op, encode_op};
use crate::crdt::{Operation, RegionId, Seq, VersionVector};

/// Version of the record layout (the operation inside has its own).
pub const RECORD_FORMAT_VERSION: u8 = 1;
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

/// The RocksDB key of an operation.
pub fn record_key(origin: RegionId, seq: Seq) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&origin.0.to_be_bytes());
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn parse_key(k: &[u8]) -> Option<(RegionId, Seq)> {
    let origin = u16::from_be_bytes(k.get(..2)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?);
    (k.len() == 10).then_some((RegionId(origin), seq))
}

/// Encodes a record: CRC32 of the operation bytes, then the bytes.
pub fn encode_record(op: &Operation, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    encode_op(op, out);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a record, checking its CRC and that it is the operation its key
/// names.
pub fn decode_record(key: &[u8], value: &[u8]) -> Result<Operation, String> {
    let (origin, seq) = parse_key(key).ok_or("malformed key")?;
    if value.len() < 4 {
        return Err(format!(
            "record of {} bytes is shorter than its checksum",
            value.len()
        ));
    }
    let stored = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    let actual = crc32fast::hash(&value[4..]);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    let op = decode_op(&value[4..]).map_err(|e| e.to_string())?;
    if op.origin != origin || op.seq != seq {
        return Err(format!(
            "record holds {}:{} under the key of {origin}:{seq}",
            op.origin, op.seq
        ));
    }
    Ok(op)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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
                Ok(())
            }
            Some(v) if v.as_slice() != [RECORD_FORMAT_VERSION] => Err(identity(format!(
                "op-log format {v:?} is not supported (this build reads {RECORD_FORMAT_VERSION})"
            ))),
            Some(_) => {
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
                Ok(())
            }
        }
    }

    /// Appends operations as one atomic write; `sync` makes it durable
    /// (fsync of the write-ahead log) before returning.
    pub fn append(&self, ops: &[Operation], sync: bool) -> Result<(), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        let mut buf = Vec::with_capacity(128);
        for op in ops {
            encode_record(op, &mut buf);
            batch.put_cf(cf, record_key(op.origin, op.seq), &buf);
        }
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
            let Some((origin, _)) = parse_key(&k) else {
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

    /// Reads one origin's records with sequence above `after`, in order.
    pub fn read_origin(
        &self,
        origin: RegionId,
        after: Seq,
    ) -> Result<impl Iterator<Item = Result<Operation, OpLogError>> + '_, OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let start = record_key(origin, after.saturating_add(1));
        let it = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
        let path = self.path.clone();
        Ok(it
            .map(move |item| (item, path.clone()))
            .map_while(move |(item, path)| match item {
                Err(source) => Some(Err(OpLogError::Db { path, source })),
                Ok((k, v)) => {
                    let (o, seq) = parse_key(&k)?;
                    if o != origin {
                        return None;
                    }
                    Some(decode_record(&k, &v).map_err(|reason| OpLogError::Corrupt {
                        path,
                        origin,
                        seq,
                        key_hex: hex(&k),
                        reason,
                    }))
                }
            }))
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
                Ok(parse_key(&k).filter(|(o, _)| *o == origin).map(|(_, s)| s))
            }
        }
    }

    /// Reads one origin's records with sequence in `(after, upto]`, in
    /// order, stopping after `max_ops` records or once `max_bytes` are
    /// reached (at least one record is read if any). Returns them with their
    /// total record size: what replication ships to a peer.
    pub fn read_range(
        &self,
        origin: RegionId,
        after: Seq,
        upto: Seq,
        max_ops: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Operation>, usize), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        let start = record_key(origin, after.saturating_add(1));
        let it = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
        let mut ops = Vec::new();
        let mut bytes = 0usize;
        for item in it {
            if ops.len() >= max_ops || (bytes >= max_bytes && !ops.is_empty()) {
                break;
            }
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            match parse_key(&k) {
                Some((o, seq)) if o == origin && seq <= upto => {
                    let op = decode_record(&k, &v).map_err(|reason| OpLogError::Corrupt {
                        path: self.path.clone(),
                        origin,
                        seq,
                        key_hex: hex(&k),
                        reason,
                    })?;
                    bytes += v.len();
                    ops.push(op);
                }
                _ => break,
            }
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

    /// Deletes every record covered by `vv` (already in a snapshot).
    pub fn truncate_covered(&self, vv: &VersionVector) -> Result<(), OpLogError> {
        let cf = self.cf(CF_LOG)?;
        for (origin, seq) in vv.iter() {
            self.db
                .delete_range_cf(
                    cf,
                    record_key(origin, 0),
                    record_key(origin, seq.saturating_add(1)),
                )
                .map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
