//! Replication segments: a batch of operations on the wire.
//!
//! A region ships its log to a peer as segments. A segment is a header (what
//! it covers, how long it is, a CRC) and a payload holding the operations
//! delta-encoded against each other: sequences come from the header's origin
//! ranges, clocks and dependencies are differences, a repeated key is an
//! index. The payload is lz4-compressed when that pays, which
//! [`CompressionPolicy`] judges per link. Specified in `storage-format.md`
//! ("Replication segments").
//!
//! Pure: no I/O. Decoding treats its input as hostile: it never panics, and
//! every length is checked against [`SegmentLimits`] before anything is
//! allocated for it. Encoding is deterministic and decoding lossless, so a
//! receiver that applies a segment twice (deduplicating by version vector)
//! gets exactly the operations that were sent.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;

use crate::crdt::codec::{self, DecodeError, Reader};
use crate::crdt::{Body, Hlc, KeyWrite, Operation, RegionId, Seq, VersionVector};

/// Version of the segment format, its fifth byte. Bumped on any change to
/// the header or the payload (the effect encoding included), so a peer never
/// misreads another build's segments.
pub const SEGMENT_FORMAT_VERSION: u8 = 1;

/// First four bytes of every segment, so a stream that lost its framing is
/// refused at once rather than misread.
pub const SEGMENT_MAGIC: [u8; 4] = *b"BSEG";

/// Flag bit: the payload is one lz4 block. Other bits are reserved (zero).
pub const FLAG_LZ4: u8 = 0x01;

/// Length of the fixed part of the header: what a stream reader reads first
/// to learn the whole header's length.
pub const FIXED_HEADER_LEN: usize = 26;

/// Length of one origin range in the header.
pub const RANGE_LEN: usize = 18;

/// Fewest payload bytes one operation takes (range index, HLC delta, deps
/// change count, `txn_rest`, body byte): bounds the operation count by the
/// payload length before anything is allocated for the operations.
pub const MIN_OP_LEN: usize = 5;

/// Offset of the CRC field, which the CRC itself skips.
const CRC_AT: usize = 22;

/// Operations preallocated when decoding; more grow with the input actually
/// decoded, so a lying header cannot make us reserve memory.
const PREALLOC_OPS: usize = 4096;

/// Body byte bits: a key write (else FLUSHALL), fresh, key spelled out
/// (else an index into the keys already named).
const BODY_KEY: u8 = 0x01;
const BODY_FRESH: u8 = 0x02;
const BODY_NEW_KEY: u8 = 0x04;

/// One origin's contiguous run of sequence numbers inside a segment: the
/// segment holds exactly the operations `origin:first ..= origin:last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginRange {
    /// The region that originated these operations.
    pub origin: RegionId,
    /// First sequence (≥ 1).
    pub first: Seq,
    /// Last sequence (≥ `first`).
    pub last: Seq,
}

impl OriginRange {
    /// How many operations the range covers (of a valid range, `1 <= first
    /// <= last`, as the encoder and [`decode_header`] give them).
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// A segment's header, as encoded and as decoded: enough to know what the
/// segment covers and how many bytes it spans before reading its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// [`SEGMENT_FORMAT_VERSION`].
    pub version: u8,
    /// Bit 0 ([`FLAG_LZ4`]): the payload is lz4-compressed.
    pub flags: u8,
    /// What the segment covers, in the order the operations first use them.
    pub ranges: Vec<OriginRange>,
    /// Number of operations.
    pub op_count: u32,
    /// Payload length before compression.
    pub raw_len: u32,
    /// Payload length on the wire (`raw_len` when not compressed).
    pub wire_len: u32,
    /// CRC-32 of the whole segment except this field.
    pub crc32: u32,
}

impl SegmentHeader {
    /// How the payload is stored.
    pub fn compression(&self) -> Compression {
        if self.flags & FLAG_LZ4 != 0 {
            Compression::Lz4
        } else {
            Compression::Raw
        }
    }

    /// Length of the encoded header, ranges included.
    pub fn header_len(&self) -> usize {
        FIXED_HEADER_LEN + RANGE_LEN * self.ranges.len()
    }

    /// Length of the whole segment: header and payload.
    pub fn segment_len(&self) -> usize {
        self.header_len() + self.wire_len as usize
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SEGMENT_MAGIC);
        out.push(self.version);
        out.push(self.flags);
        out.extend_from_slice(&self.op_count.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.wire_len.to_le_bytes());
        out.extend_from_slice(&to_u32(self.ranges.len(), "ranges").to_le_bytes());
        out.extend_from_slice(&self.crc32.to_le_bytes());
        for g in &self.ranges {
            out.extend_from_slice(&g.origin.0.to_le_bytes());
            out.extend_from_slice(&g.first.to_le_bytes());
            out.extend_from_slice(&g.last.to_le_bytes());
        }
    }
}

/// How a segment's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// As is: for small or incompressible payloads.
    Raw,
    /// One lz4 block.
    Lz4,
}

/// What a receiver accepts, checked from the header before anything is
/// allocated or decompressed: a peer cannot make it reserve more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentLimits {
    /// Most operations in one segment.
    pub max_ops: u32,
    /// Longest payload, uncompressed (bounds decompression too).
    pub max_raw_len: u32,
}

impl Default for SegmentLimits {
    /// 1 Mi operations, 64 MiB: far above what a sender batches, far below
    /// what would hurt a region.
    fn default() -> Self {
        SegmentLimits {
            max_ops: 1 << 20,
            max_raw_len: 64 << 20,
        }
    }
}

/// Why bytes are not a valid segment. Offsets inside an operation count from
/// the first byte of the uncompressed payload.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The input ends before the segment does: `needed` bytes are known to be
    /// required so far (a stream reader reads that many and tries again).
    #[error("incomplete segment: {needed} bytes needed so far, {available} available")]
    Truncated {
        /// Bytes known to be needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// The first four bytes are not `BSEG`.
    #[error("not a Braid segment (magic {found:02x?})")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A format this build cannot read.
    #[error("unsupported segment format version {found} (this build reads version {SEGMENT_FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// Reserved flag bits are set.
    #[error("unknown segment flags 0x{found:02x}")]
    UnknownFlags {
        /// The flags byte found.
        found: u8,
    },
    /// More operations than the limits allow.
    #[error("segment holds {count} operations, above the limit of {max}")]
    TooManyOps {
        /// Declared count.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// A longer payload than the limits allow.
    #[error("segment payload is {len} bytes uncompressed, above the limit of {max}")]
    PayloadTooLong {
        /// Declared uncompressed length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// Header fields contradict each other.
    #[error("inconsistent segment header: {reason}")]
    InvalidHeader {
        /// Which rule.
        reason: &'static str,
    },
    /// An origin range is malformed.
    #[error("origin range {index} is invalid: {reason}")]
    InvalidRange {
        /// Its index in the header (from 0).
        index: u32,
        /// Which rule.
        reason: &'static str,
    },
    /// Bytes follow the segment: a caller hands exactly one segment.
    #[error("{count} bytes after the end of the segment")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The segment was damaged in transit (or is not what the header says).
    #[error("segment CRC mismatch: header says {stored:08x}, bytes give {computed:08x}")]
    CrcMismatch {
        /// The header's CRC.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// The lz4 block is malformed or decompresses past `raw_len`.
    #[error("corrupt lz4 payload: {0}")]
    Lz4(#[source] lz4_flex::block::DecompressError),
    /// The lz4 block decompresses to fewer bytes than `raw_len`.
    #[error("lz4 payload decompresses to {actual} bytes, header says {declared}")]
    RawLenMismatch {
        /// The header's `raw_len`.
        declared: u32,
        /// Bytes decompressed.
        actual: usize,
    },
    /// An operation does not decode (offsets in `source` count from the
    /// start of the uncompressed payload).
    #[error("operation {index} of the segment: {source}")]
    Op {
        /// The operation's index in the segment (from 0).
        index: u32,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// An operation names a range that is unknown, not yet due or used up.
    #[error(
        "operation {index} (payload offset {offset}) does not match the origin ranges: {reason}"
    )]
    RangeMismatch {
        /// The operation's index.
        index: u32,
        /// Offset of its range index.
        offset: usize,
        /// Which rule.
        reason: &'static str,
    },
    /// An operation refers to a key the segment has not named.
    #[error("operation {index} (payload offset {offset}) refers to key {key}, but only {known} keys were named")]
    UnknownKey {
        /// The operation's index.
        index: u32,
        /// Offset of the key index.
        offset: usize,
        /// The index found.
        key: u64,
        /// Keys named so far.
        known: usize,
    },
    /// Payload bytes follow the last operation.
    #[error("{count} payload bytes after the last operation, at payload offset {offset}")]
    TrailingPayload {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many.
        count: usize,
    },
}

// ---------------------------------------------------------------- encoding

/// Encodes `ops` (in this order, which the receiver keeps) into one segment:
/// header, then payload, lz4-compressed when `compression` is
/// [`Compression::Lz4`] and that made it smaller (else raw, flag clear).
/// Returns the bytes and their header. Deterministic: equal inputs give
/// equal bytes.
///
/// Operations must be well-formed, as regions prepare them (`seq >= 1`,
/// `deps[origin] == seq - 1`), as for [`codec::encode_op`].
///
/// # Panics
/// If the segment would exceed 4 GiB or 2^32 − 1 operations; senders keep
/// segments far below any receiver's [`SegmentLimits`].
pub fn encode_segment(ops: &[Operation], compression: Compression) -> (Vec<u8>, SegmentHeader) {
    let (ranges, raw) = encode_payload(ops);
    seal(ranges, ops.len(), raw, compression)
}

/// [`encode_segment`] with the compression chosen by the link's `policy`
/// from the real payload length, and the outcome recorded in it.
pub fn encode_segment_adaptive(
    ops: &[Operation],
    policy: &mut CompressionPolicy,
) -> (Vec<u8>, SegmentHeader) {
    let (ranges, raw) = encode_payload(ops);
    let compression = policy.choose(raw.len());
    let (bytes, header) = seal(ranges, ops.len(), raw, compression);
    policy.record(header.raw_len as usize, header.wire_len as usize);
    (bytes, header)
}

/// The origin ranges (in order of first use) and the uncompressed payload.
fn encode_payload(ops: &[Operation]) -> (Vec<OriginRange>, Vec<u8>) {
    let mut ranges: Vec<OriginRange> = Vec::new();
    let mut open: HashMap<RegionId, usize> = HashMap::new();
    let mut prev_deps: HashMap<RegionId, VersionVector> = HashMap::new();
    let mut keys: HashMap<&[u8], u64> = HashMap::new();
    let mut prev_hlc = 0u64;
    let mut out = Vec::with_capacity(ops.len() * 16);
    for op in ops {
        debug_assert!(
            op.seq >= 1 && op.deps.get(op.origin) == op.seq - 1,
            "malformed operation"
        );
        // Continue the origin's open range, or open a new one.
        let range = match open.get(&op.origin) {
            Some(&i) if ranges[i].last.checked_add(1) == Some(op.seq) => {
                ranges[i].last = op.seq;
                i
            }
            _ => {
                ranges.push(OriginRange {
                    origin: op.origin,
                    first: op.seq,
                    last: op.seq,
                });
                open.insert(op.origin, ranges.len() - 1);
                ranges.len() - 1
            }
        };
        codec::put_varint(&mut out, range as u64);
        codec::put_zigzag(&mut out, op.hlc.0.wrapping_sub(prev_hlc) as i64);
        prev_hlc = op.hlc.0;
        put_deps(&mut out, prev_deps.entry(op.origin).or_default(), op);
        codec::put_varint(&mut out, u64::from(op.txn_rest));
        match &op.body {
            Body::FlushAll => out.push(0),
            Body::Key(w) => {
                let fresh = if w.fresh { BODY_FRESH } else { 0 };
                if let Some(&i) = keys.get(&w.key[..]) {
                    out.push(BODY_KEY | fresh);
                    codec::put_varint(&mut out, i);
                } else {
                    out.push(BODY_KEY | BODY_NEW_KEY | fresh);
                    codec::put_bytes(&mut out, &w.key);
                    keys.insert(&w.key[..], keys.len() as u64);
                }
                codec::put_effect(&mut out, &w.effect, (op.origin, op.seq));
            }
        }
    }
    (ranges, out)
}

/// Writes the entries of `op.deps` (its origin's own left out) that differ
/// from `prev`, the previous deps of the same origin, then makes them `prev`.
fn put_deps(out: &mut Vec<u8>, prev: &mut VersionVector, op: &Operation) {
    let next = VersionVector::from_entries(op.deps.iter().filter(|&(r, _)| r != op.origin));
    let mut regions: Vec<RegionId> = prev.iter().chain(next.iter()).map(|e| e.0).collect();
    regions.sort_unstable();
    regions.dedup();
    regions.retain(|&r| prev.get(r) != next.get(r));
    codec::put_varint(out, regions.len() as u64);
    for r in regions {
        codec::put_varint(out, u64::from(r.0));
        codec::put_zigzag(out, next.get(r).wrapping_sub(prev.get(r)) as i64);
    }
    *prev = next;
}

/// Compresses if asked and worth it, and prefixes the header.
fn seal(
    ranges: Vec<OriginRange>,
    op_count: usize,
    raw: Vec<u8>,
    compression: Compression,
) -> (Vec<u8>, SegmentHeader) {
    let compressed = match compression {
        Compression::Lz4 => Some(lz4_flex::block::compress(&raw)).filter(|c| c.len() < raw.len()),
        Compression::Raw => None,
    };
    let (flags, payload) = match &compressed {
        Some(c) => (FLAG_LZ4, c),
        None => (0, &raw),
    };
    let mut header = SegmentHeader {
        version: SEGMENT_FORMAT_VERSION,
        flags,
        ranges,
        op_count: to_u32(op_count, "operations"),
        raw_len: to_u32(raw.len(), "payload bytes"),
        wire_len: to_u32(payload.len(), "payload bytes"),
        crc32: 0,
    };
    let mut out = Vec::with_capacity(header.segment_len());
    header.write(&mut out);
    out.extend_from_slice(payload);
    header.crc32 = crc_of(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&header.crc32.to_le_bytes());
    (out, header)
}

/// A count that the format stores in 32 bits (see [`encode_segment`]'s panics).
fn to_u32(n: usize, what: &str) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("segment too large: {n} {what}"))
}

/// CRC-32 of a whole segment except its CRC field.
fn crc_of(segment: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&segment[..CRC_AT]);
    h.update(&segment[CRC_AT + 4..]);
    h.finalize()
}

// ---------------------------------------------------------------- decoding

/// Reads and checks a segment's header (not its CRC, which needs the
/// payload): returns it and its length in bytes. The whole segment is then
/// [`SegmentHeader::segment_len`] bytes long.
///
/// Incomplete input is `Err(SegmentError::Truncated { needed, .. })`:
/// a stream reader reads [`FIXED_HEADER_LEN`] bytes, then `needed`, and
/// calls again. `needed` is bounded by the limits, which are checked first.
pub fn decode_header(
    bytes: &[u8],
    limits: &SegmentLimits,
) -> Result<(SegmentHeader, usize), SegmentError> {
    let truncated = |needed| SegmentError::Truncated {
        needed,
        available: bytes.len(),
    };
    let fixed = bytes
        .get(..FIXED_HEADER_LEN)
        .ok_or(truncated(FIXED_HEADER_LEN))?;
    let u32_at =
        |at: usize| u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    let magic = [fixed[0], fixed[1], fixed[2], fixed[3]];
    if magic != SEGMENT_MAGIC {
        return Err(SegmentError::BadMagic { found: magic });
    }
    let (version, flags) = (fixed[4], fixed[5]);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(SegmentError::UnsupportedVersion { found: version });
    }
    if flags & !FLAG_LZ4 != 0 {
        return Err(SegmentError::UnknownFlags { found: flags });
    }
    let (op_count, raw_len, wire_len) = (u32_at(6), u32_at(10), u32_at(14));
    let (range_count, crc32) = (u32_at(18), u32_at(22));
    if op_count > limits.max_ops {
        return Err(SegmentError::TooManyOps {
            count: op_count,
            max: limits.max_ops,
        });
    }
    if raw_len > limits.max_raw_len {
        return Err(SegmentError::PayloadTooLong {
            len: raw_len,
            max: limits.max_raw_len,
        });
    }
    let invalid = |reason| Err(SegmentError::InvalidHeader { reason });
    if flags & FLAG_LZ4 != 0 && wire_len >= raw_len {
        return invalid("a compressed payload must be shorter than the uncompressed one");
    }
    if flags & FLAG_LZ4 == 0 && wire_len != raw_len {
        return invalid("an uncompressed payload must have wire_len equal to raw_len");
    }
    if u64::from(op_count) * MIN_OP_LEN as u64 > u64::from(raw_len) {
        return invalid("more operations than the payload length can hold");
    }
    if range_count > op_count {
        return invalid("more origin ranges than operations");
    }
    // Bounded by the limits through op_count; checked for 32-bit targets.
    let header_len = usize::try_from(RANGE_LEN as u64 * u64::from(range_count))
        .ok()
        .and_then(|n| n.checked_add(FIXED_HEADER_LEN))
        .ok_or(SegmentError::InvalidHeader {
            reason: "range table longer than memory",
        })?;
    let table = bytes
        .get(FIXED_HEADER_LEN..header_len)
        .ok_or(truncated(header_len))?;
    let mut ranges = Vec::with_capacity(range_count as usize);
    let mut covered: u64 = 0;
    for (index, raw) in (0u32..).zip(table.chunks_exact(RANGE_LEN)) {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let range = OriginRange {
            origin: RegionId(u16::from_le_bytes([raw[0], raw[1]])),
            first: u64_at(2),
            last: u64_at(10),
        };
        let bad = |reason| Err(SegmentError::InvalidRange { index, reason });
        if range.first == 0 {
            return bad("sequences start at 1");
        }
        if range.last < range.first {
            return bad("last sequence below the first");
        }
        covered = covered.saturating_add(range.count());
        ranges.push(range);
    }
    if covered != u64::from(op_count) {
        return invalid("origin ranges do not cover exactly op_count operations");
    }
    let header = SegmentHeader {
        version,
        flags,
        ranges,
        op_count,
        raw_len,
        wire_len,
        crc32,
    };
    Ok((header, header_len))
}

/// Decodes a segment that fills `bytes` exactly: checks the header against
/// `limits`, the CRC, decompresses into exactly `raw_len` bytes, decodes
/// every operation and checks that they are exactly those the ranges cover.
/// Returns no partial result.
pub fn decode_segment(
    bytes: &[u8],
    limits: &SegmentLimits,
) -> Result<(SegmentHeader, Vec<Operation>), SegmentError> {
    let (header, header_len) = decode_header(bytes, limits)?;
    let total =
        header_len
            .checked_add(header.wire_len as usize)
            .ok_or(SegmentError::InvalidHeader {
                reason: "segment longer than memory",
            })?;
    if bytes.len() < total {
        return Err(SegmentError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    if bytes.len() > total {
        return Err(SegmentError::TrailingBytes {
            count: bytes.len() - total,
        });
    }
    let computed = crc_of(bytes);
    if computed != header.crc32 {
        return Err(SegmentError::CrcMismatch {
            stored: header.crc32,
            computed,
        });
    }
    let wire = &bytes[header_len..];
    let raw: Cow<[u8]> = if header.flags & FLAG_LZ4 != 0 {
        // raw_len was checked against the limits: this is the bound.
        let mut buf = vec![0u8; header.raw_len as usize];
        let n = lz4_flex::block::decompress_into(wire, &mut buf).map_err(SegmentError::Lz4)?;
        if n != buf.len() {
            return Err(SegmentError::RawLenMismatch {
                declared: header.raw_len,
                actual: n,
            });
        }
        Cow::Owned(buf)
    } else {
        Cow::Borrowed(wire)
    };
    let ops = PayloadReader::new(&raw, &header.ranges).read_all(header.op_count)?;
    Ok((header, ops))
}

/// Decoding state across a payload's operations: the mirror of
/// [`encode_payload`]'s.
struct PayloadReader<'a> {
    r: Reader<'a>,
    ranges: &'a [OriginRange],
    /// Per range, how many of its sequences are still unused.
    left: Vec<u64>,
    /// Ranges used so far (the next new one must be this index).
    opened: usize,
    prev_hlc: u64,
    prev_deps: HashMap<RegionId, VersionVector>,
    keys: Vec<Bytes>,
}

/// What is wrong inside one operation, before its index is attached.
enum Fault {
    Decode(DecodeError),
    Range {
        offset: usize,
        reason: &'static str,
    },
    Key {
        offset: usize,
        key: u64,
        known: usize,
    },
}

impl From<DecodeError> for Fault {
    fn from(e: DecodeError) -> Self {
        Fault::Decode(e)
    }
}

impl Fault {
    fn at(self, index: u32) -> SegmentError {
        match self {
            Fault::Decode(source) => SegmentError::Op { index, source },
            Fault::Range { offset, reason } => SegmentError::RangeMismatch {
                index,
                offset,
                reason,
            },
            Fault::Key { offset, key, known } => SegmentError::UnknownKey {
                index,
                offset,
                key,
                known,
            },
        }
    }
}

impl<'a> PayloadReader<'a> {
    fn new(payload: &'a [u8], ranges: &'a [OriginRange]) -> Self {
        PayloadReader {
            r: Reader::new(payload),
            ranges,
            left: ranges.iter().map(OriginRange::count).collect(),
            opened: 0,
            prev_hlc: 0,
            prev_deps: HashMap::new(),
            keys: Vec::new(),
        }
    }

    /// Reads `op_count` operations, which must end the payload. The header
    /// check made the ranges cover exactly `op_count` sequences, so reading
    /// that many without overrunning a range uses every sequence once.
    fn read_all(mut self, op_count: u32) -> Result<Vec<Operation>, SegmentError> {
        let mut ops = Vec::with_capacity((op_count as usize).min(PREALLOC_OPS));
        for index in 0..op_count {
            ops.push(self.op().map_err(|f| f.at(index))?);
        }
        if self.r.remaining() > 0 {
            return Err(SegmentError::TrailingPayload {
                offset: self.r.pos(),
                count: self.r.remaining(),
            });
        }
        Ok(ops)
    }

    fn op(&mut self) -> Result<Operation, Fault> {
        let (origin, seq) = self.next_seq()?;
        let hlc = Hlc(self
            .prev_hlc
            .wrapping_add(self.r.zigzag("hlc delta")? as u64));
        self.prev_hlc = hlc.0;
        let deps = self.deps(origin, seq)?;
        let txn_rest = self.r.u32("txn_rest")?;
        let body_at = self.r.pos();
        let body = match self.r.byte("body byte")? {
            0 => Body::FlushAll,
            b if b & BODY_KEY != 0 && b & !(BODY_KEY | BODY_FRESH | BODY_NEW_KEY) == 0 => {
                let key = if b & BODY_NEW_KEY != 0 {
                    let key = self.r.owned("key")?;
                    self.keys.push(key.clone());
                    key
                } else {
                    self.known_key()?
                };
                let effect = self.r.effect((origin, seq))?;
                Body::Key(KeyWrite {
                    key,
                    fresh: b & BODY_FRESH != 0,
                    effect,
                })
            }
            found => {
                return Err(DecodeError::UnknownBody {
                    offset: body_at,
                    found,
                }
                .into())
            }
        };
        Ok(Operation {
            origin,
            seq,
            hlc,
            deps,
            txn_rest,
            body,
        })
    }

    /// The origin and sequence of the next operation: the next unused one
    /// of the range it names.
    fn next_seq(&mut self) -> Result<(RegionId, Seq), Fault> {
        let offset = self.r.pos();
        let named = self.r.varint("range index")?;
        let i = usize::try_from(named)
            .ok()
            .filter(|&i| i <= self.opened && i < self.ranges.len())
            .ok_or(Fault::Range {
                offset,
                reason: "names a range beyond the next unused one (ranges are listed in order of first use)",
            })?;
        let left = self.left[i];
        if left == 0 {
            return Err(Fault::Range {
                offset,
                reason: "names a range whose sequences are all used",
            });
        }
        if i == self.opened {
            self.opened += 1;
        }
        self.left[i] = left - 1;
        let g = &self.ranges[i];
        Ok((g.origin, g.last - (left - 1)))
    }

    /// The dependencies: the origin's previous ones in this segment with the
    /// listed changes, plus the implicit `origin: seq - 1`.
    fn deps(&mut self, origin: RegionId, seq: Seq) -> Result<VersionVector, DecodeError> {
        let n = self.r.count("deps changes", codec::MIN_PAIR)?;
        let prev = self.prev_deps.entry(origin).or_default();
        let mut last: Option<RegionId> = None;
        for _ in 0..n {
            let offset = self.r.pos();
            let region = self.r.region("deps region")?;
            let delta = self.r.zigzag("deps delta")?;
            let inconsistent = |reason| Err(DecodeError::DepsInconsistent { offset, reason });
            if last.is_some_and(|l| region <= l) {
                return inconsistent("regions not strictly increasing");
            }
            if region == origin {
                return inconsistent("entry for the origin, which is implicit (seq - 1)");
            }
            if delta == 0 {
                return inconsistent("an unchanged entry is listed");
            }
            prev.set(region, prev.get(region).wrapping_add(delta as u64));
            last = Some(region);
        }
        let mut deps = prev.clone();
        deps.set(origin, seq - 1);
        Ok(deps)
    }

    /// A key named by an earlier operation of the segment.
    fn known_key(&mut self) -> Result<Bytes, Fault> {
        let offset = self.r.pos();
        let key = self.r.varint("key index")?;
        let known = self.keys.len();
        usize::try_from(key)
            .ok()
            .and_then(|i| self.keys.get(i))
            .cloned()
            .ok_or(Fault::Key { offset, key, known })
    }
}

// ---------------------------------------------------------------- policy

/// Payloads shorter than this are sent raw: lz4 gains little on them.
pub const MIN_COMPRESS_LEN: usize = 256;

/// Compression is used while the recent ratio (wire / raw) is below this.
pub const PAYS_BELOW: f64 = 0.9;

/// While compression does not pay, every this-many-th eligible segment is
/// compressed anyway, to notice when the data becomes compressible again.
pub const REPROBE_EVERY: u32 = 16;

/// Weight of the newest measurement in the ratio's moving average.
const EMA_WEIGHT: f64 = 0.25;

/// Ratio assumed before the first measurement: optimistic, so a new link
/// tries compression first.
const INITIAL_RATIO: f64 = 0.5;

/// Per-link choice of compression: lz4 when the payload is large enough and
/// recent segments on this link compressed well; raw otherwise, so that
/// incompressible data (already compressed values, random bytes) costs no
/// CPU on every segment, with a re-probe now and then.
#[derive(Clone, Debug)]
pub struct CompressionPolicy {
    /// Moving average of wire / raw over compression attempts (`None`: none yet).
    ratio: Option<f64>,
    /// Eligible segments sent raw since the last attempt.
    since_probe: u32,
    /// The last choice, so [`record`](Self::record) learns only from attempts.
    last: Compression,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl CompressionPolicy {
    /// A new link's policy: it tries compression first.
    pub fn new() -> Self {
        CompressionPolicy {
            ratio: None,
            since_probe: 0,
            last: Compression::Raw,
        }
    }

    /// The compression for a segment whose payload is about `raw_len` bytes.
    pub fn choose(&mut self, raw_len: usize) -> Compression {
        self.last = if raw_len < MIN_COMPRESS_LEN {
            Compression::Raw
        } else if self.ratio() < PAYS_BELOW {
            self.since_probe = 0;
            Compression::Lz4
        } else {
            self.since_probe += 1;
            if self.since_probe >= REPROBE_EVERY {
                self.since_probe = 0;
                Compression::Lz4
            } else {
                Compression::Raw
            }
        };
        self.last
    }

    /// Learns from the segment just encoded with the last [`choose`](Self::choose):
    /// its header's `raw_len` and `wire_len`. Only compression attempts
    /// teach anything (an attempt that did not shrink the payload was sent
    /// raw: ratio 1); calls after a raw choice are ignored, so a caller may
    /// call this for every segment.
    pub fn record(&mut self, raw_len: usize, wire_len: usize) {
        if std::mem::replace(&mut self.last, Compression::Raw) != Compression::Lz4 || raw_len == 0 {
            return;
        }
        let sample = (wire_len as f64 / raw_len as f64).min(1.0);
        self.ratio = Some(match self.ratio {
            None => sample,
            Some(r) => r + EMA_WEIGHT * (sample - r),
        });
    }

    /// The recent compression ratio, wire / raw (1.0: lz4 saved nothing);
    /// before any measurement, an optimistic 0.5.
    pub fn ratio(&self) -> f64 {
        self.ratio.unwrap_or(INITIAL_RATIO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::codec::tests::{arb_effect, arb_op, prepared_ops};
    use crate::crdt::{Delta, Effect, Intent, Replica, TtlChange};
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn limits() -> SegmentLimits {
        SegmentLimits::default()
    }

    /// Encodes, decodes, and checks that nothing changed and that the
    /// header describes the bytes.
    fn round_trip(ops: &[Operation], c: Compression) -> (Vec<u8>, SegmentHeader) {
        let (bytes, header) = encode_segment(ops, c);
        let (back_header, back) = decode_segment(&bytes, &limits())
            .unwrap_or_else(|e| panic!("{e} decoding {}", hex(&bytes)));
        assert_eq!(back_header, header);
        assert_eq!(back, ops);
        assert_eq!(header.segment_len(), bytes.len());
        assert_eq!(header.op_count as usize, ops.len());
        let covered: u64 = header.ranges.iter().map(OriginRange::count).sum();
        assert_eq!(covered, ops.len() as u64);
        if header.compression() == Compression::Lz4 {
            assert_eq!(c, Compression::Lz4);
            assert!(header.wire_len < header.raw_len);
        }
        assert_eq!(encode_segment(ops, c).0, bytes, "not deterministic");
        (bytes, header)
    }

    /// Rewrites the CRC of a (tampered) segment so that it passes the check
    /// and what lies behind it is exercised.
    fn reseal(bytes: &mut [u8]) {
        if bytes.len() >= FIXED_HEADER_LEN {
            let crc = crc_of(bytes);
            bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// A raw segment with the given header ranges and hand-written payload.
    fn handmade(ranges: Vec<OriginRange>, op_count: usize, payload: &[u8]) -> Vec<u8> {
        seal(ranges, op_count, payload.to_vec(), Compression::Raw).0
    }

    fn range(origin: u16, first: Seq, last: Seq) -> OriginRange {
        OriginRange {
            origin: RegionId(origin),
            first,
            last,
        }
    }

    // ------------------------------------------------------------ round trips

    #[test]
    fn every_variant_round_trips() {
        let ops = prepared_ops();
        for c in [Compression::Raw, Compression::Lz4] {
            let (_, header) = round_trip(&ops, c);
            // r2's and r3's first operations, then r1's run.
            let n = ops.len() as u64 - 2;
            assert_eq!(
                header.ranges,
                vec![range(2, 1, 1), range(3, 1, 1), range(1, 1, n)]
            );
        }
        // One operation at a time, too (every op first of its origin).
        for op in &ops {
            round_trip(std::slice::from_ref(op), Compression::Raw);
        }
    }

    #[test]
    fn empty_segment_round_trips() {
        for c in [Compression::Raw, Compression::Lz4] {
            let (bytes, header) = round_trip(&[], c);
            assert_eq!(bytes.len(), FIXED_HEADER_LEN);
            assert_eq!(header.compression(), Compression::Raw);
        }
    }

    #[test]
    fn gaps_and_repeats_open_new_ranges() {
        let ops = prepared_ops();
        let r1: Vec<Operation> = ops.iter().filter(|o| o.origin.0 == 1).cloned().collect();
        // r1:1, r1:3, r1:4, r1:3 again, r1:5.
        let mixed = [&r1[0], &r1[2], &r1[3], &r1[2], &r1[4]].map(Operation::clone);
        let (_, header) = round_trip(&mixed, Compression::Raw);
        assert_eq!(
            header.ranges,
            vec![
                range(1, 1, 1),
                range(1, 3, 4),
                range(1, 3, 3),
                range(1, 5, 5)
            ]
        );
    }

    // ------------------------------------------------------------ worked example

    /// The worked example of `storage-format.md`: two operations of region 2
    /// on one key, then a FLUSHALL of region 1 that has seen them.
    fn doc_ops() -> Vec<Operation> {
        let key = |effect| {
            Body::Key(KeyWrite {
                key: b("hits"),
                fresh: false,
                effect,
            })
        };
        let vv = |p: &[(u16, Seq)]| {
            VersionVector::from_entries(p.iter().map(|&(r, s)| (RegionId(r), s)))
        };
        vec![
            Operation {
                origin: RegionId(2),
                seq: 5,
                hlc: Hlc::new(T0, 1),
                deps: vv(&[(1, 300), (2, 4)]),
                txn_rest: 0,
                body: key(Effect::StrIncr(Delta::Int(-2))),
            },
            Operation {
                origin: RegionId(2),
                seq: 6,
                hlc: Hlc::new(T0, 2),
                deps: vv(&[(1, 302), (2, 5)]),
                txn_rest: 0,
                body: key(Effect::StrSet {
                    value: b("7"),
                    ttl: TtlChange::Persist,
                }),
            },
            Operation {
                origin: RegionId(1),
                seq: 303,
                hlc: Hlc::new(T0 + 3, 0),
                deps: vv(&[(1, 302), (2, 6)]),
                txn_rest: 0,
                body: Body::FlushAll,
            },
        ]
    }

    /// One line per part: fixed header, two ranges, then each operation.
    const DOC_SEGMENT_HEX: [&str; 6] = [
        "42 53 45 47 01 00 03 00 00 00 2d 00 00 00 2d 00 00 00 02 00 00 00 7c f2 0c ff",
        "02 00 05 00 00 00 00 00 00 00 06 00 00 00 00 00 00 00",
        "01 00 2f 01 00 00 00 00 00 00 2f 01 00 00 00 00 00 00",
        "00 82 80 80 80 ad f9 e7 8b 03 01 01 d8 04 00 05 04 68 69 74 73 02 00 03",
        "00 02 01 01 04 00 01 00 01 01 37 01",
        "01 fc ff 17 01 02 0c 00 00",
    ];

    #[test]
    fn worked_example_matches_storage_format_md() {
        let (bytes, header) = round_trip(&doc_ops(), Compression::Raw);
        assert_eq!(hex(&bytes), DOC_SEGMENT_HEX.join(" "));
        assert_eq!(header.header_len(), 62);
        let plain: usize = doc_ops()
            .iter()
            .map(|op| codec::encode_op_to_vec(op).len())
            .sum();
        assert_eq!((bytes.len(), plain), (107, 71));
        let doc = include_str!("../../storage-format.md");
        for line in DOC_SEGMENT_HEX {
            assert!(doc.contains(line), "storage-format.md lacks {line}");
        }
    }

    // ------------------------------------------------------------ hostile input

    /// Segments to attack: every kind of operation raw, a compressed one, and
    /// the worked example.
    fn targets() -> Vec<Vec<u8>> {
        let (lz4, header) = encode_segment(&workload(40, json_value), Compression::Lz4);
        assert_eq!(header.compression(), Compression::Lz4);
        vec![
            encode_segment(&prepared_ops(), Compression::Raw).0,
            lz4,
            encode_segment(&doc_ops(), Compression::Raw).0,
        ]
    }

    #[test]
    fn every_byte_flip_is_refused() {
        for mut bytes in targets() {
            for i in 0..bytes.len() {
                for x in 1..=255u8 {
                    bytes[i] ^= x;
                    let result = decode_segment(&bytes, &limits());
                    bytes[i] ^= x;
                    assert!(result.is_err(), "byte {i} ^ {x:#04x} accepted");
                }
            }
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for bytes in targets() {
            for n in 0..bytes.len() {
                match decode_segment(&bytes[..n], &limits()) {
                    Err(SegmentError::Truncated { needed, available }) => {
                        assert_eq!(available, n);
                        assert!(needed > n && needed <= bytes.len(), "{needed} for {n}");
                    }
                    other => panic!("prefix of {n} bytes: {other:?}"),
                }
            }
            // A stream reader: fixed part, then the whole header.
            let (header, header_len) = decode_header(&bytes, &limits()).expect("header");
            let mut have = 0;
            let mut reads = 0;
            let found = loop {
                match decode_header(&bytes[..have], &limits()) {
                    Err(SegmentError::Truncated { needed, .. }) => {
                        assert!(needed > have);
                        have = needed;
                        reads += 1;
                    }
                    other => break other.expect("header"),
                }
            };
            assert_eq!(found, (header.clone(), header_len));
            assert!(reads <= 2);
            assert_eq!(header.segment_len(), bytes.len());
            let mut long = bytes.clone();
            long.push(0);
            assert!(matches!(
                decode_segment(&long, &limits()),
                Err(SegmentError::TrailingBytes { count: 1 })
            ));
        }
    }

    /// A fixed header with these fields (CRC zero, no ranges follow).
    fn fixed(flags: u8, op_count: u32, raw_len: u32, wire_len: u32, range_count: u32) -> Vec<u8> {
        let mut v = SEGMENT_MAGIC.to_vec();
        v.extend_from_slice(&[SEGMENT_FORMAT_VERSION, flags]);
        for x in [op_count, raw_len, wire_len, range_count, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocating() {
        let small = SegmentLimits {
            max_ops: 100,
            max_raw_len: 1000,
        };
        let err = |b: &[u8]| decode_header(b, &small).expect_err("accepted");
        assert!(matches!(
            err(&fixed(0, u32::MAX, 1000, 1000, 1)),
            SegmentError::TooManyOps {
                count: u32::MAX,
                max: 100
            }
        ));
        assert!(matches!(
            err(&fixed(FLAG_LZ4, 1, u32::MAX, 10, 1)),
            SegmentError::PayloadTooLong {
                len: u32::MAX,
                max: 1000
            }
        ));
        let reason = |b: &[u8]| match err(b) {
            SegmentError::InvalidHeader { reason } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(&fixed(0, 100, 1000, 1000, 101)),
            "more origin ranges than operations"
        );
        assert_eq!(
            reason(&fixed(0, 100, 499, 499, 1)),
            "more operations than the payload length can hold"
        );
        assert!(reason(&fixed(0, 1, 10, 9, 1)).contains("uncompressed"));
        assert!(reason(&fixed(FLAG_LZ4, 1, 10, 10, 1)).contains("compressed"));
        // The most a stream reader is asked to read for a header is bounded
        // by the limits.
        match decode_header(&fixed(0, 1 << 20, 64 << 20, 64 << 20, 1 << 20), &limits()) {
            Err(SegmentError::Truncated { needed, .. }) => {
                assert_eq!(needed, FIXED_HEADER_LEN + RANGE_LEN * (1 << 20))
            }
            other => panic!("{other:?}"),
        }

        // A compressed segment lying about raw_len, with a valid CRC: the
        // buffer is raw_len bytes and decompression stops at its end.
        let ops = workload(40, json_value);
        let (good, header) = encode_segment(&ops, Compression::Lz4);
        let with_raw_len = |raw_len: u32, limits: &SegmentLimits| {
            let mut bytes = good.clone();
            bytes[10..14].copy_from_slice(&raw_len.to_le_bytes());
            reseal(&mut bytes);
            decode_segment(&bytes, limits).expect_err("accepted")
        };
        assert!(matches!(
            with_raw_len(header.raw_len - 1, &limits()),
            SegmentError::Lz4(_)
        ));
        match with_raw_len(header.raw_len + 1, &limits()) {
            SegmentError::RawLenMismatch { declared, actual } => {
                assert_eq!(
                    (declared, actual),
                    (header.raw_len + 1, header.raw_len as usize)
                )
            }
            other => panic!("{other:?}"),
        }
        let tight = SegmentLimits {
            max_raw_len: header.raw_len - 1,
            ..limits()
        };
        assert!(matches!(
            decode_segment(&good, &tight),
            Err(SegmentError::PayloadTooLong { .. })
        ));
        let few = SegmentLimits {
            max_ops: header.op_count - 1,
            ..limits()
        };
        assert!(matches!(
            decode_segment(&good, &few),
            Err(SegmentError::TooManyOps { .. })
        ));
    }

    #[test]
    fn specific_errors() {
        let (good, _) = encode_segment(&doc_ops(), Compression::Raw);
        let with = |at: usize, v: u8| {
            let mut bytes = good.clone();
            bytes[at] = v;
            reseal(&mut bytes);
            decode_segment(&bytes, &limits()).expect_err("accepted")
        };
        assert!(matches!(
            with(0, b'X'),
            SegmentError::BadMagic { found } if &found == b"XSEG"
        ));
        assert!(matches!(
            with(4, 2),
            SegmentError::UnsupportedVersion { found: 2 }
        ));
        assert!(matches!(
            with(5, 0x02),
            SegmentError::UnknownFlags { found: 2 }
        ));
        // Range 0's first sequence (5) set to 0, to 7 (above its last, 6),
        // and range 1's last (303) to 304 (covers 4 sequences for 3 ops).
        let range_reason = |at, v| match with(at, v) {
            SegmentError::InvalidRange { index, reason } => (index, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(range_reason(28, 0), (0, "sequences start at 1"));
        assert_eq!(range_reason(28, 7), (0, "last sequence below the first"));
        assert!(matches!(
            with(54, 0x30),
            SegmentError::InvalidHeader { reason } if reason.contains("cover exactly")
        ));
        let mut flipped = good.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        let e = decode_segment(&flipped, &limits()).expect_err("accepted");
        assert!(matches!(e, SegmentError::CrcMismatch { .. }));
        assert!(e
            .to_string()
            .starts_with("segment CRC mismatch: header says ff0cf27c"));

        // Payloads written by hand; a FLUSHALL is 00 00 00 00 00 after its
        // range index (hlc delta, no deps change, txn_rest, body).
        let r1r2 = || vec![range(1, 1, 1), range(2, 1, 1)];
        let decode = |ranges, n, payload: &[u8]| {
            decode_segment(&handmade(ranges, n, payload), &limits()).expect_err("accepted")
        };
        let e = decode(r1r2(), 2, &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(
            matches!(e, SegmentError::RangeMismatch { index: 0, offset: 0, reason } if reason.contains("beyond")),
            "{e:?}"
        );
        let e = decode(r1r2(), 2, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(
            matches!(e, SegmentError::RangeMismatch { index: 1, offset: 5, reason } if reason.contains("used")),
            "{e:?}"
        );
        let e = decode(r1r2(), 2, &[0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        assert!(
            matches!(e, SegmentError::RangeMismatch { index: 1, .. }),
            "{e:?}"
        );
        // A reference to key 0 before any key was named (then DEL).
        let e = decode(vec![range(1, 1, 1)], 1, &[0, 0, 0, 0, BODY_KEY, 0, 0x03]);
        assert!(
            matches!(
                e,
                SegmentError::UnknownKey {
                    index: 0,
                    offset: 5,
                    key: 0,
                    known: 0
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "operation 0 (payload offset 5) refers to key 0, but only 0 keys were named"
        );
        let e = decode(vec![range(1, 1, 1)], 1, &[0, 0, 0, 0, 0, 9]);
        assert!(matches!(
            e,
            SegmentError::TrailingPayload {
                offset: 5,
                count: 1
            }
        ));
        // Deps: an entry for the origin itself, an unchanged entry, regions
        // out of order.
        for (payload, why) in [
            (&[0u8, 0, 1, 1, 2, 0, 0][..], "implicit"),
            (&[0, 0, 1, 2, 0, 0, 0], "unchanged"),
            (&[0, 0, 2, 3, 2, 2, 2, 0, 0], "strictly increasing"),
        ] {
            match decode(vec![range(1, 1, 1)], 1, payload) {
                SegmentError::Op {
                    index: 0,
                    source: DecodeError::DepsInconsistent { reason, .. },
                } => assert!(reason.contains(why), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        // Unknown body bytes: FLUSHALL with the fresh bit, an unknown bit.
        for body in [BODY_FRESH, 0x08 | BODY_KEY] {
            let e = decode(vec![range(1, 1, 1)], 1, &[0, 0, 0, 0, body, 0]);
            assert!(
                matches!(
                    e,
                    SegmentError::Op {
                        index: 0,
                        source: DecodeError::UnknownBody { offset: 4, .. }
                    }
                ),
                "{e:?}"
            );
        }
        // The second operation ends early: a new key of 5 bytes, none there.
        let e = decode(
            vec![range(1, 1, 2)],
            2,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, BODY_KEY | BODY_NEW_KEY, 5],
        );
        assert!(matches!(e, SegmentError::Op { index: 1, .. }), "{e:?}");
        // And the same operations well-formed decode.
        let ok = handmade(
            vec![range(1, 1, 1), range(2, 1, 1)],
            2,
            &[0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        );
        let (_, ops) = decode_segment(&ok, &limits()).expect("valid");
        assert_eq!(
            ops.iter().map(Operation::dot).collect::<Vec<_>>(),
            [
                crate::crdt::Dot::new(RegionId(1), 1),
                crate::crdt::Dot::new(RegionId(2), 1)
            ]
        );
    }

    // ------------------------------------------------------------ sizes and compression

    /// Region 1's log under a realistic load: counters, user records, session
    /// hashes and event lists over a few hundred keys, while regions 2 and 3
    /// write too and their operations reach region 1 (so its deps advance).
    /// `value` makes the values of records and events.
    fn workload(n: usize, value: fn(&mut fastrand::Rng) -> Bytes) -> Vec<Operation> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut r1 = Replica::new(RegionId(1));
        let mut others = [Replica::new(RegionId(2)), Replica::new(RegionId(3))];
        let mut log = Vec::with_capacity(n);
        let mut t = T0;
        while log.len() < n {
            t += rng.u64(0..5);
            if rng.u8(0..10) == 0 {
                let other = &mut others[rng.usize(0..2)];
                let key = format!("counter:{}", rng.u32(0..50));
                let op = other.write(b(&key), Intent::IncrBy(1), t).expect("write");
                r1.receive(&op.expect("op"), t).expect("in causal order");
                continue;
            }
            let (key, intent) = match rng.u8(0..4) {
                0 => (format!("counter:{}", rng.u32(0..50)), Intent::IncrBy(1)),
                1 => (
                    format!("user:{}", rng.u32(0..200)),
                    Intent::Set {
                        value: value(&mut rng),
                        ttl: TtlChange::Persist,
                    },
                ),
                2 => (
                    format!("session:{}", rng.u32(0..50)),
                    Intent::HSet(vec![(b("last_seen"), Bytes::from(t.to_string()))]),
                ),
                _ => (
                    format!("events:{}", rng.u32(0..10)),
                    Intent::RPush(vec![value(&mut rng)]),
                ),
            };
            if let Some(op) = r1.write(b(&key), intent, t).expect("write") {
                log.push(op);
            }
        }
        log
    }

    fn json_value(rng: &mut fastrand::Rng) -> Bytes {
        let v = format!(
            r#"{{"plan":"{}","visits":{}}}"#,
            ["free", "pro", "team"][rng.usize(0..3)],
            rng.u32(0..1000)
        );
        Bytes::from(v)
    }

    fn random_value(rng: &mut fastrand::Rng) -> Bytes {
        std::iter::repeat_with(|| rng.u8(..)).take(400).collect()
    }

    #[test]
    fn delta_encoding_is_much_smaller_than_separate_operations() {
        let ops = workload(2000, json_value);
        let plain: usize = ops.iter().map(|op| codec::encode_op_to_vec(op).len()).sum();
        // Effects are written alike by both encodings: what delta encoding
        // saves is in the rest.
        let effects: usize = ops
            .iter()
            .map(|op| match &op.body {
                Body::Key(w) => {
                    let mut v = Vec::new();
                    codec::put_effect(&mut v, &w.effect, (op.origin, op.seq));
                    v.len()
                }
                Body::FlushAll => 0,
            })
            .sum();
        let (mut raw, mut lz4) = (0, 0);
        for chunk in ops.chunks(500) {
            raw += round_trip(chunk, Compression::Raw).0.len();
            let (bytes, header) = round_trip(chunk, Compression::Lz4);
            assert_eq!(header.compression(), Compression::Lz4);
            lz4 += bytes.len();
        }
        // The numbers of storage-format.md, "Typical sizes".
        assert_eq!((plain, effects, raw), (105_607, 46_243, 69_100));
        assert!(raw * 10 < plain * 7, "delta {raw} B vs plain {plain} B");
        assert!(
            (raw - effects) * 2 < plain - effects,
            "delta {raw} B vs plain {plain} B, {effects} B of effects in each"
        );
        assert!(lz4 * 10 < raw * 7, "lz4 {lz4} B vs raw {raw} B");
    }

    #[test]
    fn policy_sends_incompressible_data_raw_and_reprobes() {
        // As a link does it: choose from the payload length, then record.
        fn send(policy: &mut CompressionPolicy, ops: &[Operation]) -> (Compression, SegmentHeader) {
            let (_, raw) = encode_payload(ops);
            let choice = policy.choose(raw.len());
            let (_, header) = encode_segment(ops, choice);
            policy.record(header.raw_len as usize, header.wire_len as usize);
            (choice, header)
        }
        let mut policy = CompressionPolicy::new();
        // Random values: the first segment tries lz4, then raw, with one
        // probe every REPROBE_EVERY segments.
        let random = workload(20 * 40, random_value);
        let choices: Vec<Compression> = random.chunks(20).map(|c| send(&mut policy, c).0).collect();
        let probes: Vec<usize> = (0..choices.len())
            .filter(|&i| choices[i] == Compression::Lz4)
            .collect();
        assert_eq!(probes, [0, 16, 32], "{choices:?}");
        assert!(policy.ratio() >= PAYS_BELOW);
        // Compressible values again: the next probe notices, and lz4 stays.
        let json = workload(20 * 40, json_value);
        let sent: Vec<(Compression, SegmentHeader)> =
            json.chunks(20).map(|c| send(&mut policy, c)).collect();
        let first = sent
            .iter()
            .position(|s| s.0 == Compression::Lz4)
            .expect("a probe");
        assert!(first < REPROBE_EVERY as usize);
        for (choice, header) in &sent[first..] {
            assert_eq!(*choice, Compression::Lz4);
            assert_eq!(header.compression(), Compression::Lz4);
            assert!(header.wire_len * 10 < header.raw_len * 6);
        }
        assert!(policy.ratio() < 0.6);
    }

    #[test]
    fn policy_sends_small_segments_raw_and_learns_only_from_attempts() {
        let mut policy = CompressionPolicy::new();
        assert_eq!(policy.choose(MIN_COMPRESS_LEN - 1), Compression::Raw);
        policy.record(MIN_COMPRESS_LEN - 1, MIN_COMPRESS_LEN - 1);
        assert_eq!(policy.ratio(), INITIAL_RATIO);
        assert_eq!(policy.choose(MIN_COMPRESS_LEN), Compression::Lz4);
        policy.record(1000, 1000);
        assert_eq!(policy.ratio(), 1.0);
        // A raw choice teaches nothing, however it is reported.
        assert_eq!(policy.choose(1000), Compression::Raw);
        policy.record(1000, 10);
        assert_eq!(policy.ratio(), 1.0);
        // The moving average: a probe compressing to 20% brings it to 0.8.
        let mut policy = CompressionPolicy::new();
        policy.choose(1000);
        policy.record(1000, 1000);
        for _ in 1..REPROBE_EVERY {
            assert_eq!(policy.choose(1000), Compression::Raw);
        }
        assert_eq!(policy.choose(1000), Compression::Lz4);
        policy.record(1000, 200);
        assert!((policy.ratio() - 0.8).abs() < 1e-9);
        assert_eq!(policy.choose(1000), Compression::Lz4);
    }

    // ------------------------------------------------------------ properties

    const KEYS: [&str; 6] = [
        "",
        "k",
        "user:1",
        "counter",
        "a rather longer key name",
        "k2",
    ];

    /// Operations as a region ships them: three origins, each a contiguous
    /// run from its own start, interleaved; clocks that mostly advance; deps
    /// that grow; keys from a small pool; every kind of effect.
    fn arb_history() -> impl Strategy<Value = Vec<Operation>> {
        let step = (
            0u16..3,
            0..KEYS.len(),
            any::<bool>(),
            0u8..12,
            -5000i64..200_000,
            prop::collection::vec((0u16..3, 0u64..5), 0..3),
            prop_oneof![Just(0u32), 0u32..4],
        );
        let clock = prop_oneof![Just(Hlc::new(T0, 0).0), any::<u64>()];
        (
            prop::collection::vec(step, 0..40),
            prop::collection::vec(1u64..1_000_000, 3),
            clock,
        )
            .prop_flat_map(|(steps, mut next, mut hlc)| {
                let mut seen = vec![VersionVector::new(); 3];
                let mut heads = Vec::new();
                for (o, key, fresh, kind, dh, bumps, txn_rest) in steps {
                    let (origin, i) = (RegionId(o + 1), usize::from(o));
                    let seq = next[i];
                    next[i] += 1;
                    hlc = hlc.wrapping_add(dh as u64);
                    for (r, by) in bumps.into_iter().filter(|&(r, _)| r != o) {
                        let r = RegionId(r + 1);
                        let v = seen[i].get(r) + by;
                        seen[i].set(r, v);
                    }
                    let deps =
                        VersionVector::from_entries(seen[i].iter().chain([(origin, seq - 1)]));
                    let head = Operation {
                        origin,
                        seq,
                        hlc: Hlc(hlc),
                        deps,
                        txn_rest,
                        body: Body::FlushAll,
                    };
                    heads.push((head, key, fresh, kind == 0));
                }
                let bodies: Vec<BoxedStrategy<Body>> = heads
                    .iter()
                    .map(|(h, key, fresh, flush)| {
                        let (key, fresh) = (b(KEYS[*key]), *fresh);
                        if *flush {
                            Just(Body::FlushAll).boxed()
                        } else {
                            arb_effect((h.origin, h.seq))
                                .prop_map(move |effect| {
                                    Body::Key(KeyWrite {
                                        key: key.clone(),
                                        fresh,
                                        effect,
                                    })
                                })
                                .boxed()
                        }
                    })
                    .collect();
                bodies.prop_map(move |bodies| {
                    heads
                        .iter()
                        .zip(bodies)
                        .map(|((h, ..), body)| Operation { body, ..h.clone() })
                        .collect::<Vec<_>>()
                })
            })
    }

    /// Arbitrary well-formed operations (any origin, sequence, clock, deps),
    /// some of them repeated.
    fn arb_ops_with_repeats() -> impl Strategy<Value = Vec<Operation>> {
        (
            prop::collection::vec(arb_op(), 1..10),
            prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        )
            .prop_map(|(mut ops, again)| {
                for i in again {
                    let op = ops[i.index(ops.len())].clone();
                    ops.push(op);
                }
                ops
            })
    }

    /// Whatever a tampered segment decodes to is still what its header says:
    /// the operations the ranges cover, well-formed.
    fn consistent(header: &SegmentHeader, ops: &[Operation]) -> bool {
        let mut want: Vec<(RegionId, Seq)> = header
            .ranges
            .iter()
            .flat_map(|g| (g.first..=g.last).map(move |s| (g.origin, s)))
            .collect();
        let mut got: Vec<(RegionId, Seq)> = ops.iter().map(|o| (o.origin, o.seq)).collect();
        want.sort_unstable();
        got.sort_unstable();
        want == got && ops.iter().all(|o| o.deps.get(o.origin) == o.seq - 1)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Shipped histories decode to themselves, raw and compressed, and
        /// encode deterministically.
        #[test]
        fn histories_round_trip(ops in arb_history()) {
            round_trip(&ops, Compression::Raw);
            round_trip(&ops, Compression::Lz4);
        }

        /// So do arbitrary operations, repeats and gaps included.
        #[test]
        fn arbitrary_operations_round_trip(ops in arb_ops_with_repeats()) {
            round_trip(&ops, Compression::Raw);
            round_trip(&ops, Compression::Lz4);
        }

        /// Damage behind a valid CRC (a buggy or hostile peer) never panics,
        /// and what still decodes matches its header.
        #[test]
        fn tampered_segments_never_panic(
            ops in arb_history(),
            lz4 in any::<bool>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            in_payload in any::<bool>(),
        ) {
            let c = if lz4 { Compression::Lz4 } else { Compression::Raw };
            let (mut bytes, header) = encode_segment(&ops, c);
            let start = if in_payload { header.header_len() } else { 0 };
            if bytes.len() > start {
                for (i, x) in flips {
                    let i = start + i.index(bytes.len() - start);
                    bytes[i] ^= x;
                }
            }
            reseal(&mut bytes);
            if let Ok((header, back)) = decode_segment(&bytes, &limits()) {
                prop_assert!(consistent(&header, &back));
            }
        }

        /// Arbitrary bytes behind a valid fixed header never panic.
        #[test]
        fn random_bytes_never_panic(
            fields in (any::<bool>(), 0u32..8, 0u32..300, 0u32..300, 0u32..4),
            tail in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let (lz4, ops, raw, wire, ranges) = fields;
            let mut bytes = fixed(u8::from(lz4), ops, raw, wire, ranges);
            bytes.extend_from_slice(&tail);
            reseal(&mut bytes);
            if let Ok((header, back)) = decode_segment(&bytes, &limits()) {
                prop_assert!(consistent(&header, &back));
            }
        }
    }
}
