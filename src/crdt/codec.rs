//! The binary encoding of an [`Operation`]: what the op log stores and the
//! replication stream carries.
//!
//! Hand-written rather than derived so that the bytes are compact (varints,
//! the origin's implicit dependency left out, list positions that mostly
//! refer to their own operation), stable across library upgrades, and
//! specified exactly in `storage-format.md`. The encoding is canonical: the
//! encoder is deterministic and the decoder accepts only what it produces, so
//! equal operations always have equal bytes.
//!
//! Decoding treats its input as hostile: it never panics, never allocates
//! more than the input's length justifies, and names the byte offset of
//! whatever it refuses.

use bytes::Bytes;
use smallvec::SmallVec;

use super::hlc::Hlc;
use super::id::{Dot, RegionId, Seq, Stamp, Tag};
use super::number::{Decimal, Delta};
use super::op::{Body, Effect, KeyWrite, Operation, TtlChange};
use super::position::{Position, Segment};
use super::vv::VersionVector;

/// Version of the operation encoding, its first byte. Bumped on any change
/// to the layout, so that stored and shipped bytes are never misread.
pub const OP_FORMAT_VERSION: u8 = 1;

/// Body byte: FLUSHALL.
const BODY_FLUSH_ALL: u8 = 0x00;
/// Body byte bit: a write to one key.
const BODY_KEY: u8 = 0x01;
/// Body byte bit: the key write is `fresh` (only with [`BODY_KEY`]).
const BODY_FRESH: u8 = 0x02;

/// Effect tags (0 is never used, so zeroed bytes are refused).
mod tag {
    pub const STR_SET: u8 = 0x01;
    pub const STR_INCR: u8 = 0x02;
    pub const DEL: u8 = 0x03;
    pub const EXPIRE: u8 = 0x04;
    pub const PERSIST: u8 = 0x05;
    pub const SET_ADD: u8 = 0x06;
    pub const SET_REM: u8 = 0x07;
    pub const HASH_SET: u8 = 0x08;
    pub const HASH_DEL: u8 = 0x09;
    pub const HASH_INCR: u8 = 0x0a;
    pub const ZADD: u8 = 0x0b;
    pub const ZINCR: u8 = 0x0c;
    pub const ZREM: u8 = 0x0d;
    pub const LIST_INSERT: u8 = 0x0e;
    pub const LIST_SET: u8 = 0x0f;
    pub const LIST_REMOVE: u8 = 0x10;
    pub const LIST_TRIM: u8 = 0x11;
}

/// TTL change tags.
const TTL_KEEP: u8 = 0x00;
const TTL_PERSIST: u8 = 0x01;
const TTL_EXPIRE_AT: u8 = 0x02;

/// Delta tags.
const DELTA_INT: u8 = 0x00;
const DELTA_FLOAT: u8 = 0x01;

/// List trim tags.
const TRIM_ALL: u8 = 0x00;
const TRIM_RANGE: u8 = 0x01;

/// Segment flag: region and seq are the operation's own (not written).
const SEG_OWN: u8 = 0x01;
/// Segment flag: last segment of the position.
const SEG_LAST: u8 = 0x02;
/// Segment flags: the digit's shift lives in the top six bits.
const SEG_SHIFT_BITS: u32 = 2;

/// Digits are written relative to this one, the first digit of an empty
/// list, around which pushes cluster.
const DIGIT_ORIGIN: u64 = 1 << 63;

/// Why bytes are not a valid encoded operation. Offsets count from the first
/// byte of the input (the version byte is offset 0).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first byte names a format this build cannot read.
    #[error("unsupported operation format version {found} (this build reads version {OP_FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The input ended inside a field.
    #[error("truncated at byte offset {offset}: {what} needs more bytes than remain")]
    Truncated {
        /// Offset of the first byte of the field that could not be read.
        offset: usize,
        /// The field.
        what: &'static str,
    },
    /// A varint runs past 10 bytes or 64 bits.
    #[error("varint {what} at byte offset {offset} exceeds 64 bits")]
    VarintOverflow {
        /// Offset of the varint's first byte.
        offset: usize,
        /// The field.
        what: &'static str,
    },
    /// A number does not fit the field it encodes.
    #[error("{what} at byte offset {offset} is {value}, above its maximum {max}")]
    OutOfRange {
        /// Offset of the field.
        offset: usize,
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The largest value the field allows.
        max: u64,
    },
    /// A length or element count promises more than the rest of the input
    /// can hold (refused before anything is allocated for it).
    #[error("{what} at byte offset {offset} declares {declared}, more than the {remaining} remaining bytes can hold")]
    LengthExceedsRemaining {
        /// Offset of the length or count.
        offset: usize,
        /// The field.
        what: &'static str,
        /// The declared length or count.
        declared: u64,
        /// Bytes left after it.
        remaining: usize,
    },
    /// The body byte is not one of the defined values.
    #[error("unknown body byte 0x{found:02x} at byte offset {offset}")]
    UnknownBody {
        /// Offset of the byte.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// The effect tag is not one of the defined values.
    #[error("unknown effect tag 0x{found:02x} at byte offset {offset}")]
    UnknownEffect {
        /// Offset of the tag.
        offset: usize,
        /// The tag found.
        found: u8,
    },
    /// A TTL, delta or trim tag is not one of the defined values.
    #[error("unknown {what} tag 0x{found:02x} at byte offset {offset}")]
    UnknownTag {
        /// Offset of the tag.
        offset: usize,
        /// Which kind of tag.
        what: &'static str,
        /// The tag found.
        found: u8,
    },
    /// A decimal's text is not UTF-8.
    #[error("invalid utf8 in decimal at byte offset {offset}")]
    InvalidUtf8 {
        /// Offset of the decimal's length prefix.
        offset: usize,
    },
    /// A decimal's text is not a finite number.
    #[error("invalid decimal {text:?} at byte offset {offset}")]
    InvalidDecimal {
        /// Offset of the decimal's length prefix.
        offset: usize,
        /// The text found.
        text: String,
    },
    /// A sorted-set score is NaN, which no score may be.
    #[error("NaN score at byte offset {offset}")]
    NanScore {
        /// Offset of the score's first byte.
        offset: usize,
    },
    /// A sequence number is 0 (they start at 1).
    #[error("{what} at byte offset {offset} is 0, sequences start at 1")]
    ZeroSeq {
        /// Offset of the sequence.
        offset: usize,
        /// The field.
        what: &'static str,
    },
    /// The dependency list breaks its rules.
    #[error("deps inconsistent at byte offset {offset}: {reason}")]
    DepsInconsistent {
        /// Offset of the offending entry.
        offset: usize,
        /// Which rule.
        reason: &'static str,
    },
    /// A position digit does not fit 64 bits once shifted back.
    #[error("position digit at byte offset {offset} overflows 64 bits")]
    DigitOverflow {
        /// Offset of the segment's flags byte.
        offset: usize,
    },
    /// The value is valid but not written the one way the encoder writes it
    /// (overlong varint, non-canonical decimal, digit or segment).
    #[error("non-canonical encoding at byte offset {offset}: {what}")]
    NonCanonical {
        /// Offset of the field.
        offset: usize,
        /// What is not canonical.
        what: &'static str,
    },
    /// Bytes follow a complete operation.
    #[error("{count} trailing bytes after the operation at byte offset {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: usize,
        /// How many there are.
        count: usize,
    },
}

impl DecodeError {
    /// The same error with its byte offset moved by `by`: for input decoded
    /// from a slice of a larger stream (a snapshot chunk), so that the offset
    /// counts from the start of that stream.
    pub fn shifted(self, by: usize) -> Self {
        use DecodeError::*;
        let s = |o: usize| o.saturating_add(by);
        match self {
            UnsupportedVersion { found } => UnsupportedVersion { found },
            Truncated { offset, what } => Truncated {
                offset: s(offset),
                what,
            },
            VarintOverflow { offset, what } => VarintOverflow {
                offset: s(offset),
                what,
            },
            OutOfRange {
                offset,
                what,
                value,
                max,
            } => OutOfRange {
                offset: s(offset),
                what,
                value,
                max,
            },
            LengthExceedsRemaining {
                offset,
                what,
                declared,
                remaining,
            } => LengthExceedsRemaining {
                offset: s(offset),
                what,
                declared,
                remaining,
            },
            UnknownBody { offset, found } => UnknownBody {
                offset: s(offset),
                found,
            },
            UnknownEffect { offset, found } => UnknownEffect {
                offset: s(offset),
                found,
            },
            UnknownTag {
                offset,
                what,
                found,
            } => UnknownTag {
                offset: s(offset),
                what,
                found,
            },
            InvalidUtf8 { offset } => InvalidUtf8 { offset: s(offset) },
            InvalidDecimal { offset, text } => InvalidDecimal {
                offset: s(offset),
                text,
            },
            NanScore { offset } => NanScore { offset: s(offset) },
            ZeroSeq { offset, what } => ZeroSeq {
                offset: s(offset),
                what,
            },
            DepsInconsistent { offset, reason } => DepsInconsistent {
                offset: s(offset),
                reason,
            },
            DigitOverflow { offset } => DigitOverflow { offset: s(offset) },
            NonCanonical { offset, what } => NonCanonical {
                offset: s(offset),
                what,
            },
            TrailingBytes { offset, count } => TrailingBytes {
                offset: s(offset),
                count,
            },
        }
    }
}

/// Appends the encoding of `op` to `out` (so a caller can reuse a buffer or
/// prefix its own framing). `op` must be well-formed, as
/// [`State::prepare`](super::state::State) makes them: `seq >= 1` and
/// `deps[origin] == seq - 1`, since that entry is not written but restored.
pub fn encode_op(op: &Operation, out: &mut Vec<u8>) {
    debug_assert!(
        op.seq >= 1 && op.deps.get(op.origin) == op.seq - 1,
        "malformed operation"
    );
    out.push(OP_FORMAT_VERSION);
    put_varint(out, u64::from(op.origin.0));
    put_varint(out, op.seq);
    put_varint(out, op.hlc.0);
    let others = || op.deps.iter().filter(|&(r, _)| r != op.origin);
    put_varint(out, others().count() as u64);
    for (r, s) in others() {
        put_varint(out, u64::from(r.0));
        put_varint(out, s);
    }
    put_varint(out, u64::from(op.txn_rest));
    match &op.body {
        Body::FlushAll => out.push(BODY_FLUSH_ALL),
        Body::Key(w) => {
            out.push(if w.fresh {
                BODY_KEY | BODY_FRESH
            } else {
                BODY_KEY
            });
            put_bytes(out, &w.key);
            put_effect(out, &w.effect, (op.origin, op.seq));
        }
    }
}

/// The encoding of `op` in a new buffer, for callers that keep it whole.
pub fn encode_op_to_vec(op: &Operation) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_op(op, &mut out);
    out
}

/// Decodes one operation that fills `bytes` exactly; refuses anything the
/// encoder would not have written (see [`DecodeError`]).
pub fn decode_op(bytes: &[u8]) -> Result<Operation, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.byte("version")?;
    if version != OP_FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let origin = r.region("origin")?;
    let seq_at = r.pos;
    let seq = r.varint("seq")?;
    if seq == 0 {
        return Err(DecodeError::ZeroSeq {
            offset: seq_at,
            what: "seq",
        });
    }
    let hlc = Hlc(r.varint("hlc")?);
    let deps = r.deps(origin, seq)?;
    let txn_rest = r.u32("txn_rest")?;
    let body_at = r.pos;
    let body = match r.byte("body byte")? {
        BODY_FLUSH_ALL => Body::FlushAll,
        b @ (BODY_KEY | 0x03) => {
            let key = Bytes::copy_from_slice(r.bytes("key")?);
            let effect = r.effect((origin, seq))?;
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
            })
        }
    };
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset: r.pos,
            count: bytes.len() - r.pos,
        });
    }
    Ok(Operation {
        origin,
        seq,
        hlc,
        deps,
        txn_rest,
        body,
    })
}

// ---------------------------------------------------------------- writing

/// LEB128: seven bits a byte, low first, high bit set on all but the last.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag, so that small negative numbers stay short too.
pub(crate) fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_list(out: &mut Vec<u8>, items: &[Bytes]) {
    put_varint(out, items.len() as u64);
    for b in items {
        put_bytes(out, b);
    }
}

pub(crate) fn put_decimal(out: &mut Vec<u8>, d: &Decimal) {
    put_bytes(out, canonical_decimal(d).as_bytes());
}

/// The one text of a decimal the format allows: `0`, or `[-]C` / `[-]CeE`
/// for ±C·10^E with C free of leading and trailing zeros and E non-zero.
/// Derived from `Decimal`'s display rather than being it, because that
/// display's choice between plain and scientific notation is a library
/// default (even a build-time setting) that stored bytes must not follow.
fn canonical_decimal(d: &Decimal) -> String {
    let text = d.to_string();
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (mantissa, mut exp) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, parse_exponent(e)),
        None => (rest, 0i64),
    };
    let mut digits = String::with_capacity(mantissa.len());
    let mut after_point = false;
    for c in mantissa.chars() {
        match c {
            '.' => after_point = true,
            '0'..='9' => {
                digits.push(c);
                if after_point {
                    exp = exp.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
    let digits = digits.trim_start_matches('0');
    let coefficient = digits.trim_end_matches('0');
    if coefficient.is_empty() {
        return "0".to_string();
    }
    exp = exp.saturating_add((digits.len() - coefficient.len()) as i64);
    let sign = if neg { "-" } else { "" };
    if exp == 0 {
        format!("{sign}{coefficient}")
    } else {
        format!("{sign}{coefficient}e{exp}")
    }
}

/// A display exponent (`+12`, `-3`, `7`), saturating rather than failing.
fn parse_exponent(e: &str) -> i64 {
    let (neg, digits) = match e.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, e.strip_prefix('+').unwrap_or(e)),
    };
    let v = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0i64, |v, b| {
            v.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        });
    if neg {
        -v
    } else {
        v
    }
}

/// Whether `s` is spelled as [`canonical_decimal`] spells numbers.
fn is_canonical_decimal(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let digits =
        |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && !t.starts_with('0');
    let body = s.strip_prefix('-').unwrap_or(s);
    let (coefficient, exp) = match body.split_once('e') {
        Some((c, e)) => (c, Some(e)),
        None => (body, None),
    };
    digits(coefficient)
        && !coefficient.ends_with('0')
        && exp.is_none_or(|e| digits(e.strip_prefix('-').unwrap_or(e)))
}

pub(crate) fn put_delta(out: &mut Vec<u8>, d: &Delta) {
    match d {
        Delta::Int(i) => {
            out.push(DELTA_INT);
            put_zigzag(out, *i);
        }
        Delta::Float(x) => {
            out.push(DELTA_FLOAT);
            put_decimal(out, x);
        }
    }
}

/// A digit as (shift, odd part) of its signed distance from [`DIGIT_ORIGIN`]:
/// pushes sit at multiples of 2^20 from it, so they shrink to a byte or two.
fn split_digit(digit: u64) -> (u8, i64) {
    let n = (digit ^ DIGIT_ORIGIN) as i64;
    if n == 0 {
        return (0, 0);
    }
    let shift = n.trailing_zeros();
    (shift as u8, n >> shift)
}

pub(crate) fn put_position(out: &mut Vec<u8>, p: &Position, own: (RegionId, Seq)) {
    let last = p.0.len().saturating_sub(1);
    for (i, s) in p.0.iter().enumerate() {
        let (shift, odd) = split_digit(s.digit);
        let is_own = (s.region, s.seq) == own;
        let mut flags = shift << SEG_SHIFT_BITS;
        if is_own {
            flags |= SEG_OWN;
        }
        if i == last {
            flags |= SEG_LAST;
        }
        out.push(flags);
        put_zigzag(out, odd);
        if !is_own {
            put_varint(out, u64::from(s.region.0));
            put_varint(out, s.seq);
        }
        put_varint(out, u64::from(s.idx));
    }
}

/// A tag: the writer's dot (region `varint16`, seq `varint` ≥ 1) and its
/// HLC (`varint`). Used by the snapshot encoding of content metadata.
pub(crate) fn put_tag(out: &mut Vec<u8>, t: &Tag) {
    put_varint(out, u64::from(t.dot.region.0));
    put_varint(out, t.dot.seq);
    put_varint(out, t.hlc.0);
}

/// A stamp: HLC (`varint`), then region (`varint16`).
pub(crate) fn put_stamp(out: &mut Vec<u8>, s: &Stamp) {
    put_varint(out, s.hlc.0);
    put_varint(out, u64::from(s.region.0));
}

/// A version vector: entry count, then (region, seq) pairs in region order
/// (the vector keeps them sorted, without zeros).
pub(crate) fn put_vv(out: &mut Vec<u8>, vv: &VersionVector) {
    put_varint(out, vv.len() as u64);
    for (r, s) in vv.iter() {
        put_varint(out, u64::from(r.0));
        put_varint(out, s);
    }
}

/// An effect: tag byte, then its fields. `own` is the writing operation's
/// `(origin, seq)`, which positions refer to implicitly; also the effect
/// encoding of replication segments, which carry origin and seq themselves.
pub(crate) fn put_effect(out: &mut Vec<u8>, e: &Effect, own: (RegionId, Seq)) {
    match e {
        Effect::StrSet { value, ttl } => {
            out.push(tag::STR_SET);
            put_bytes(out, value);
            match ttl {
                TtlChange::Keep => out.push(TTL_KEEP),
                TtlChange::Persist => out.push(TTL_PERSIST),
                TtlChange::ExpireAt(at) => {
                    out.push(TTL_EXPIRE_AT);
                    put_varint(out, *at);
                }
            }
        }
        Effect::StrIncr(d) => {
            out.push(tag::STR_INCR);
            put_delta(out, d);
        }
        Effect::Del => out.push(tag::DEL),
        Effect::Expire(at) => {
            out.push(tag::EXPIRE);
            put_varint(out, *at);
        }
        Effect::Persist => out.push(tag::PERSIST),
        Effect::SetAdd(m) => {
            out.push(tag::SET_ADD);
            put_list(out, m);
        }
        Effect::SetRem(m) => {
            out.push(tag::SET_REM);
            put_list(out, m);
        }
        Effect::HashSet(fv) => {
            out.push(tag::HASH_SET);
            put_varint(out, fv.len() as u64);
            for (f, v) in fv {
                put_bytes(out, f);
                put_bytes(out, v);
            }
        }
        Effect::HashDel(f) => {
            out.push(tag::HASH_DEL);
            put_list(out, f);
        }
        Effect::HashIncr { field, delta } => {
            out.push(tag::HASH_INCR);
            put_bytes(out, field);
            put_delta(out, delta);
        }
        Effect::ZAdd(ms) => {
            out.push(tag::ZADD);
            put_varint(out, ms.len() as u64);
            for (m, score) in ms {
                put_bytes(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        Effect::ZIncr { member, delta } => {
            out.push(tag::ZINCR);
            put_bytes(out, member);
            put_decimal(out, delta);
        }
        Effect::ZRem(m) => {
            out.push(tag::ZREM);
            put_list(out, m);
        }
        Effect::ListInsert(items) => {
            out.push(tag::LIST_INSERT);
            put_varint(out, items.len() as u64);
            for (p, v) in items {
                put_position(out, p, own);
                put_bytes(out, v);
            }
        }
        Effect::ListSet { pos, value } => {
            out.push(tag::LIST_SET);
            put_position(out, pos, own);
            put_bytes(out, value);
        }
        Effect::ListRemove(ps) => {
            out.push(tag::LIST_REMOVE);
            put_varint(out, ps.len() as u64);
            for p in ps {
                put_position(out, p, own);
            }
        }
        Effect::ListTrim(None) => {
            out.push(tag::LIST_TRIM);
            out.push(TRIM_ALL);
        }
        Effect::ListTrim(Some((lo, hi))) => {
            out.push(tag::LIST_TRIM);
            out.push(TRIM_RANGE);
            put_position(out, lo, own);
            put_position(out, hi, own);
        }
    }
}

// ---------------------------------------------------------------- reading

/// Fewest bytes one encoded element can take, per kind: what bounds a
/// declared count by the input that remains.
pub(crate) const MIN_BYTES: usize = 1; // a length-prefixed byte string
pub(crate) const MIN_PAIR: usize = 2; // two byte strings, or a (region, seq) pair
pub(crate) const MIN_SCORED: usize = 9; // a byte string and an f64
pub(crate) const MIN_POSITION: usize = 3; // one own segment: flags, digit, idx
pub(crate) const MIN_TAG: usize = 3; // region, seq, hlc

/// Most elements reserved up front for a declared count. The count is
/// already bounded by the input left (see [`Reader::count`]), but one byte of
/// input can stand for an element of 30 bytes or more in memory: without this
/// cap a 64 MiB segment declaring 64 Mi empty members would reserve 2 GiB
/// before its first element failed to decode. Beyond the cap, vectors grow
/// with the elements actually decoded.
pub(crate) const PREALLOC_MAX: usize = 1024;

/// What to reserve for `n` declared elements: at most [`PREALLOC_MAX`].
pub(crate) fn prealloc(n: usize) -> usize {
    n.min(PREALLOC_MAX)
}

/// A cursor over untrusted input; every read is bounds-checked and reports
/// the offset of the field it failed on.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf` (error offsets count from its first byte).
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated {
            offset: self.pos,
            what,
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let offset = self.pos;
        let end = offset.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated { offset, what })?;
        self.pos = end;
        Ok(&self.buf[offset..end])
    }

    /// A minimal LEB128 varint of at most 10 bytes.
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let offset = self.pos;
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self
                .byte(what)
                .map_err(|_| DecodeError::Truncated { offset, what })?;
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow { offset, what });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError::NonCanonical {
                        offset,
                        what: "overlong varint",
                    });
                }
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow { offset, what })
    }

    pub(crate) fn zigzag(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let z = self.varint(what)?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(crate) fn bounded(&mut self, what: &'static str, max: u64) -> Result<u64, DecodeError> {
        let offset = self.pos;
        let value = self.varint(what)?;
        if value > max {
            return Err(DecodeError::OutOfRange {
                offset,
                what,
                value,
                max,
            });
        }
        Ok(value)
    }

    pub(crate) fn region(&mut self, what: &'static str) -> Result<RegionId, DecodeError> {
        Ok(RegionId(self.bounded(what, u64::from(u16::MAX))? as u16))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(self.bounded(what, u64::from(u32::MAX))? as u32)
    }

    /// An element count, refused when the remaining input cannot hold that
    /// many elements of at least `min` bytes each.
    pub(crate) fn count(&mut self, what: &'static str, min: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let declared = self.varint(what)?;
        let remaining = self.remaining();
        if declared > (remaining / min) as u64 {
            return Err(DecodeError::LengthExceedsRemaining {
                offset,
                what,
                declared,
                remaining,
            });
        }
        Ok(declared as usize)
    }

    /// A length-prefixed byte string.
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.count(what, 1)?;
        self.take(n, what)
    }

    pub(crate) fn owned(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        Ok(Bytes::copy_from_slice(self.bytes(what)?))
    }

    fn list(&mut self, what: &'static str) -> Result<Vec<Bytes>, DecodeError> {
        let n = self.count(what, MIN_BYTES)?;
        let mut v = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            v.push(self.owned(what)?);
        }
        Ok(v)
    }

    pub(crate) fn decimal(&mut self) -> Result<Decimal, DecodeError> {
        let offset = self.pos;
        let raw = self.bytes("decimal")?;
        let text = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 { offset })?;
        let d = Decimal::from_canonical(text).ok_or_else(|| DecodeError::InvalidDecimal {
            offset,
            text: text.to_string(),
        })?;
        if !is_canonical_decimal(text) {
            return Err(DecodeError::NonCanonical {
                offset,
                what: "decimal text",
            });
        }
        Ok(d)
    }

    pub(crate) fn delta(&mut self) -> Result<Delta, DecodeError> {
        let offset = self.pos;
        match self.byte("delta tag")? {
            DELTA_INT => Ok(Delta::Int(self.zigzag("integer delta")?)),
            DELTA_FLOAT => Ok(Delta::Float(self.decimal()?)),
            found => Err(DecodeError::UnknownTag {
                offset,
                what: "delta",
                found,
            }),
        }
    }

    pub(crate) fn score(&mut self) -> Result<f64, DecodeError> {
        let offset = self.pos;
        let raw: [u8; 8] =
            self.take(8, "score")?
                .try_into()
                .map_err(|_| DecodeError::Truncated {
                    offset,
                    what: "score",
                })?;
        let v = f64::from_le_bytes(raw);
        if v.is_nan() {
            return Err(DecodeError::NanScore { offset });
        }
        Ok(v)
    }

    /// A sequence number, which is never 0.
    pub(crate) fn seq(&mut self, what: &'static str) -> Result<Seq, DecodeError> {
        let offset = self.pos;
        let seq = self.varint(what)?;
        if seq == 0 {
            return Err(DecodeError::ZeroSeq { offset, what });
        }
        Ok(seq)
    }

    /// A tag written by [`put_tag`].
    pub(crate) fn tag(&mut self) -> Result<Tag, DecodeError> {
        let region = self.region("tag region")?;
        let seq = self.seq("tag seq")?;
        let hlc = Hlc(self.varint("tag hlc")?);
        Ok(Tag {
            dot: Dot::new(region, seq),
            hlc,
        })
    }

    /// A stamp written by [`put_stamp`].
    pub(crate) fn stamp(&mut self) -> Result<Stamp, DecodeError> {
        let hlc = Hlc(self.varint("stamp hlc")?);
        let region = self.region("stamp region")?;
        Ok(Stamp::new(hlc, region))
    }

    /// A version vector written by [`put_vv`]: regions strictly increasing,
    /// no zero sequence.
    pub(crate) fn vv(&mut self) -> Result<VersionVector, DecodeError> {
        let n = self.count("version vector count", MIN_PAIR)?;
        let mut pairs: SmallVec<[(RegionId, Seq); 4]> = SmallVec::with_capacity(prealloc(n));
        let mut prev: Option<RegionId> = None;
        for _ in 0..n {
            let offset = self.pos;
            let r = self.region("version vector region")?;
            let s = self.seq("version vector seq")?;
            if prev.is_some_and(|p| r <= p) {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "version vector regions not strictly increasing",
                });
            }
            prev = Some(r);
            pairs.push((r, s));
        }
        Ok(VersionVector::from_entries(pairs))
    }

    /// The dependencies without the origin's entry, which is restored.
    fn deps(&mut self, origin: RegionId, seq: Seq) -> Result<VersionVector, DecodeError> {
        let n = self.count("deps count", MIN_PAIR)?;
        let mut pairs: SmallVec<[(RegionId, Seq); 4]> = SmallVec::with_capacity(prealloc(n) + 1);
        let mut prev: Option<RegionId> = None;
        for _ in 0..n {
            let offset = self.pos;
            let r = self.region("deps region")?;
            let s = self.varint("deps seq")?;
            let inconsistent = |reason| Err(DecodeError::DepsInconsistent { offset, reason });
            if prev.is_some_and(|p| r <= p) {
                return inconsistent("regions not strictly increasing");
            }
            if r == origin {
                return inconsistent("entry for the origin, which is implicit (seq - 1)");
            }
            if s == 0 {
                return inconsistent("zero sequence");
            }
            prev = Some(r);
            pairs.push((r, s));
        }
        pairs.push((origin, seq - 1));
        Ok(VersionVector::from_entries(pairs))
    }

    pub(crate) fn position(&mut self, own: (RegionId, Seq)) -> Result<Position, DecodeError> {
        let mut segs: SmallVec<[Segment; 1]> = SmallVec::new();
        loop {
            let offset = self.pos;
            let flags = self.byte("segment flags")?;
            let shift = u32::from(flags >> SEG_SHIFT_BITS);
            let odd = self.zigzag("segment digit")?;
            if (odd == 0 && shift != 0) || (odd != 0 && odd & 1 == 0) {
                return Err(DecodeError::NonCanonical {
                    offset,
                    what: "position digit",
                });
            }
            let n = odd << shift;
            if n >> shift != odd {
                return Err(DecodeError::DigitOverflow { offset });
            }
            let digit = (n as u64) ^ DIGIT_ORIGIN;
            let (region, seq) = if flags & SEG_OWN != 0 {
                own
            } else {
                let region = self.region("segment region")?;
                let seq_at = self.pos;
                let seq = self.varint("segment seq")?;
                if seq == 0 {
                    return Err(DecodeError::ZeroSeq {
                        offset: seq_at,
                        what: "segment seq",
                    });
                }
                if (region, seq) == own {
                    return Err(DecodeError::NonCanonical {
                        offset,
                        what: "segment spells out the operation's own dot",
                    });
                }
                (region, seq)
            };
            let idx = self.u32("segment idx")?;
            segs.push(Segment {
                digit,
                region,
                seq,
                idx,
            });
            if flags & SEG_LAST != 0 {
                return Ok(Position(segs));
            }
        }
    }

    fn positions(
        &mut self,
        what: &'static str,
        own: (RegionId, Seq),
    ) -> Result<Vec<Position>, DecodeError> {
        let n = self.count(what, MIN_POSITION)?;
        let mut v = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            v.push(self.position(own)?);
        }
        Ok(v)
    }

    /// An effect written by [`put_effect`] for the operation `own`.
    pub(crate) fn effect(&mut self, own: (RegionId, Seq)) -> Result<Effect, DecodeError> {
        let offset = self.pos;
        Ok(match self.byte("effect tag")? {
            tag::STR_SET => {
                let value = self.owned("value")?;
                let ttl_at = self.pos;
                let ttl = match self.byte("ttl tag")? {
                    TTL_KEEP => TtlChange::Keep,
                    TTL_PERSIST => TtlChange::Persist,
                    TTL_EXPIRE_AT => TtlChange::ExpireAt(self.varint("expire_at")?),
                    found => {
                        return Err(DecodeError::UnknownTag {
                            offset: ttl_at,
                            what: "ttl",
                            found,
                        })
                    }
                };
                Effect::StrSet { value, ttl }
            }
            tag::STR_INCR => Effect::StrIncr(self.delta()?),
            tag::DEL => Effect::Del,
            tag::EXPIRE => Effect::Expire(self.varint("expire_at")?),
            tag::PERSIST => Effect::Persist,
            tag::SET_ADD => Effect::SetAdd(self.list("members")?),
            tag::SET_REM => Effect::SetRem(self.list("members")?),
            tag::HASH_SET => {
                let n = self.count("field count", MIN_PAIR)?;
                let mut fv = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    fv.push((self.owned("field")?, self.owned("value")?));
                }
                Effect::HashSet(fv)
            }
            tag::HASH_DEL => Effect::HashDel(self.list("fields")?),
            tag::HASH_INCR => Effect::HashIncr {
                field: self.owned("field")?,
                delta: self.delta()?,
            },
            tag::ZADD => {
                let n = self.count("member count", MIN_SCORED)?;
                let mut ms = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    ms.push((self.owned("member")?, self.score()?));
                }
                Effect::ZAdd(ms)
            }
            tag::ZINCR => Effect::ZIncr {
                member: self.owned("member")?,
                delta: self.decimal()?,
            },
            tag::ZREM => Effect::ZRem(self.list("members")?),
            tag::LIST_INSERT => {
                let n = self.count("element count", MIN_POSITION + 1)?;
                let mut items = Vec::with_capacity(prealloc(n));
                for _ in 0..n {
                    items.push((self.position(own)?, self.owned("element value")?));
                }
                Effect::ListInsert(items)
            }
            tag::LIST_SET => Effect::ListSet {
                pos: self.position(own)?,
                value: self.owned("element value")?,
            },
            tag::LIST_REMOVE => Effect::ListRemove(self.positions("position count", own)?),
            tag::LIST_TRIM => {
                let trim_at = self.pos;
                match self.byte("trim tag")? {
                    TRIM_ALL => Effect::ListTrim(None),
                    TRIM_RANGE => {
                        Effect::ListTrim(Some((self.position(own)?, self.position(own)?)))
                    }
                    found => {
                        return Err(DecodeError::UnknownTag {
                            offset: trim_at,
                            what: "trim",
                            found,
                        })
                    }
                }
            }
            found => return Err(DecodeError::UnknownEffect { offset, found }),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crdt::prepare::Intent;
    use crate::crdt::replica::Replica;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const T0: u64 = 1_700_000_000_000;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).expect("valid decimal")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn round_trip(op: &Operation) -> Vec<u8> {
        let bytes = encode_op_to_vec(op);
        let back =
            decode_op(&bytes).unwrap_or_else(|e| panic!("{e} decoding {op:?}\n{}", hex(&bytes)));
        assert_eq!(&back, op);
        assert_eq!(encode_op_to_vec(&back), bytes, "re-encoding differs");
        bytes
    }

    /// Operations as regions really prepare them: every effect variant,
    /// FLUSHALL, fresh writes, deps on three regions, positions from other
    /// operations and regions.
    pub(crate) fn prepared_ops() -> Vec<Operation> {
        let mut a = Replica::new(RegionId(1));
        let mut other = Replica::new(RegionId(2));
        let mut third = Replica::new(RegionId(3));
        let mut ops = Vec::new();
        let mut w = |r: &mut Replica, key: &str, intent: Intent, t: u64| -> Option<Operation> {
            let op = r.write(b(key), intent, t).expect("write accepted");
            if let Some(op) = &op {
                ops.push(op.clone());
            }
            op
        };
        // Remote history first, so that a's ops depend on three regions.
        let o1 = w(&mut other, "l", Intent::RPush(vec![b("r1"), b("r2")]), T0).expect("op");
        let o2 = w(&mut third, "t", Intent::SAdd(vec![b("m")]), T0).expect("op");
        a.receive(&o1, T0).expect("ready");
        a.receive(&o2, T0).expect("ready");
        let ex = T0 + 60_000;
        let intents = [
            (
                "s",
                Intent::Set {
                    value: b("v"),
                    ttl: TtlChange::Keep,
                },
            ),
            (
                "s",
                Intent::Set {
                    value: b("v2"),
                    ttl: TtlChange::ExpireAt(ex),
                },
            ),
            (
                "s",
                Intent::Set {
                    value: b("v3"),
                    ttl: TtlChange::Keep,
                },
            ),
            ("s", Intent::ExpireAt(ex)),
            ("s", Intent::Persist),
            ("s", Intent::Del),
            ("n", Intent::IncrBy(-5)),
            ("f", Intent::IncrByFloat(dec("1.5"))),
            ("set", Intent::SAdd(vec![b("a"), b("b")])),
            ("set", Intent::SRem(vec![b("a")])),
            ("h", Intent::HSet(vec![(b("f"), b("1")), (b("g"), b("x"))])),
            ("h", Intent::HDel(vec![b("g")])),
            ("h", Intent::HIncrBy(b("f"), 7)),
            ("h", Intent::HIncrByFloat(b("f"), dec("-0.25"))),
            (
                "z",
                Intent::ZAdd(vec![(b("a"), 1.5), (b("b"), f64::NEG_INFINITY)]),
            ),
            ("z", Intent::ZIncrBy(b("a"), 2.0)),
            ("z", Intent::ZRem(vec![b("b")])),
            ("l", Intent::RPush(vec![b("a"), b("b"), b("c")])),
            ("l", Intent::LPush(vec![b("x"), b("y")])),
            (
                "l",
                Intent::LInsert {
                    before: true,
                    pivot: b("b"),
                    value: b("i"),
                },
            ),
            (
                "l",
                Intent::LSet {
                    index: 0,
                    value: b("X"),
                },
            ),
            (
                "l",
                Intent::LSet {
                    index: -1,
                    value: b("R"),
                },
            ),
            (
                "l",
                Intent::LRem {
                    count: 0,
                    value: b("a"),
                },
            ),
            ("l", Intent::LPop(2)),
            ("l", Intent::LTrim { start: 1, stop: 2 }),
            ("l", Intent::LTrim { start: 5, stop: 9 }),
        ];
        for (key, intent) in intents {
            let what = format!("{key} {intent:?}");
            w(&mut a, key, intent, T0 + 1).unwrap_or_else(|| panic!("no op for {what}"));
        }
        // A key whose content expired: the next write to it is fresh.
        w(
            &mut a,
            "e",
            Intent::Set {
                value: b("old"),
                ttl: TtlChange::Persist,
            },
            T0 + 2,
        );
        w(&mut a, "e", Intent::ExpireAt(T0 + 10), T0 + 2);
        w(
            &mut a,
            "e",
            Intent::Set {
                value: b("new"),
                ttl: TtlChange::Persist,
            },
            T0 + 100,
        );
        ops.push(a.flush_all(T0 + 200));
        ops
    }

    #[test]
    fn every_variant_round_trips() {
        let ops = prepared_ops();
        let mut seen = BTreeSet::new();
        for op in &ops {
            round_trip(op);
            match &op.body {
                Body::FlushAll => seen.insert("flush_all"),
                Body::Key(w) => {
                    if w.fresh {
                        seen.insert("fresh");
                    }
                    if let Effect::StrSet { ttl, .. } = &w.effect {
                        seen.insert(match ttl {
                            TtlChange::Keep => "ttl_keep",
                            TtlChange::Persist => "ttl_persist",
                            TtlChange::ExpireAt(_) => "ttl_expire_at",
                        });
                    }
                    if let Effect::ListTrim(t) = &w.effect {
                        seen.insert(if t.is_some() {
                            "trim_range"
                        } else {
                            "trim_all"
                        });
                    }
                    if let Effect::StrIncr(d) | Effect::HashIncr { delta: d, .. } = &w.effect {
                        seen.insert(if matches!(d, Delta::Int(_)) {
                            "delta_int"
                        } else {
                            "delta_float"
                        });
                    }
                    seen.insert(w.effect.name())
                }
            };
        }
        let effects = [
            "str_set",
            "str_incr",
            "del",
            "expire",
            "persist",
            "set_add",
            "set_rem",
            "hash_set",
            "hash_del",
            "hash_incr",
            "zset_add",
            "zset_incr",
            "zset_rem",
            "list_insert",
            "list_set",
            "list_remove",
            "list_trim",
        ];
        let others = [
            "flush_all",
            "fresh",
            "ttl_keep",
            "ttl_persist",
            "ttl_expire_at",
            "trim_range",
            "trim_all",
            "delta_int",
            "delta_float",
        ];
        for name in effects.iter().chain(&others) {
            assert!(
                seen.contains(name),
                "no {name} among the prepared operations"
            );
        }
        let last = ops.last().expect("ops");
        assert_eq!(last.deps.len(), 3, "deps on three regions: {}", last.deps);
    }

    #[test]
    fn decimals_have_one_text() {
        for (input, text) in [
            ("0", "0"),
            ("1.5", "15e-1"),
            ("-0.25", "-25e-2"),
            ("100", "1e2"),
            ("3", "3"),
            ("10.50", "105e-1"),
            ("1e300", "1e300"),
            ("-1.5e-300", "-15e-301"),
            ("0.000001", "1e-6"),
            ("123456789.123", "123456789123e-3"),
        ] {
            let d = dec(input);
            assert_eq!(canonical_decimal(&d), text, "{input}");
            assert!(is_canonical_decimal(text), "{text}");
            assert_eq!(Decimal::from_canonical(text), Some(d), "{text}");
        }
    }

    #[test]
    fn positions_of_other_operations_round_trip() {
        // Hand-built: deep positions mixing own and foreign segments,
        // extreme digits and indexes.
        let own = (RegionId(4), 9);
        let seg = |digit, region: u16, seq, idx| Segment {
            digit,
            region: RegionId(region),
            seq,
            idx,
        };
        let deep = Position(SmallVec::from_vec(vec![
            seg(0, 1, 1, 0),
            seg(u64::MAX, 65535, u64::MAX, u32::MAX),
            seg(1 << 63, 4, 9, 3),
            seg((1 << 63) + 3 * (1 << 19), 4, 8, 0),
        ]));
        let op = Operation {
            origin: own.0,
            seq: own.1,
            hlc: Hlc(u64::MAX),
            deps: VersionVector::from_entries([
                (RegionId(0), 1),
                (own.0, 8),
                (RegionId(65535), u64::MAX),
            ]),
            txn_rest: u32::MAX,
            body: Body::Key(KeyWrite {
                key: Bytes::new(),
                fresh: true,
                effect: Effect::ListTrim(Some((deep.clone(), deep))),
            }),
        };
        round_trip(&op);
    }

    // ------------------------------------------------------------ sizes

    #[test]
    fn typical_sizes() {
        // Region 2 at seq 1000 has seen 1234 ops of region 1 and 5678 of
        // region 3; the HLC is a 2023 wall clock (a 9-byte varint).
        let hlc = Hlc::new(T0, 3);
        let deps = VersionVector::from_entries([
            (RegionId(1), 1234),
            (RegionId(2), 999),
            (RegionId(3), 5678),
        ]);
        let op = |effect, key: &str| Operation {
            origin: RegionId(2),
            seq: 1000,
            hlc,
            deps: deps.clone(),
            txn_rest: 0,
            body: Body::Key(KeyWrite {
                key: b(key),
                fresh: false,
                effect,
            }),
        };
        let incr = round_trip(&op(Effect::StrIncr(Delta::Int(1)), "c")).len();
        let set = round_trip(&op(
            Effect::StrSet {
                value: b("hello"),
                ttl: TtlChange::Persist,
            },
            "user:1",
        ))
        .len();
        let own =
            |i: u64| Position::between(None, None, RegionId(2), 1000, 0).0[0].digit + i * (1 << 20);
        let pushes: Vec<(Position, Bytes)> = (0..10u32)
            .map(|i| {
                let s = Segment {
                    digit: own(u64::from(i) + 40),
                    region: RegionId(2),
                    seq: 1000,
                    idx: i,
                };
                (Position(SmallVec::from_elem(s, 1)), b("v"))
            })
            .collect();
        let rpush10 = round_trip(&op(Effect::ListInsert(pushes), "list")).len();
        let flush = round_trip(&Operation {
            body: Body::FlushAll,
            ..op(Effect::Del, "")
        })
        .len();
        println!("INCR c: {incr} B, SET user:1 hello: {set} B, RPUSH list v*10: {rpush10} B, FLUSHALL: {flush} B");
        // 1 version + 1 origin + 2 seq + 9 hlc + 1 count + 2*(1+2) deps
        // + 1 txn + 1 body + 2 key + 1 tag + 2 delta.
        assert_eq!(incr, 27);
        assert_eq!(set, 37);
        // 29 bytes of header, key, tag and count, then 3 bytes of position
        // and 2 of value per element.
        assert_eq!(rpush10, 29 + 10 * (3 + 2));
        assert_eq!(flush, 22);
        // The same INCR early in a region's life with small sequences and a
        // small clock fits in under 20 bytes.
        let small = Operation {
            seq: 5,
            hlc: Hlc(1 << 20),
            deps: VersionVector::from_entries([
                (RegionId(1), 7),
                (RegionId(2), 4),
                (RegionId(3), 9),
            ]),
            ..op(Effect::StrIncr(Delta::Int(1)), "c")
        };
        let small = round_trip(&small).len();
        println!("INCR c, small seqs and clock: {small} B");
        assert_eq!(small, 18);
    }

    // ------------------------------------------------------------ documented examples

    /// The worked examples of `storage-format.md`; the test below keeps the
    /// document honest.
    fn doc_incr() -> Operation {
        Operation {
            origin: RegionId(2),
            seq: 5,
            hlc: Hlc::new(T0, 1),
            deps: VersionVector::from_entries([(RegionId(1), 300), (RegionId(2), 4)]),
            txn_rest: 0,
            body: Body::Key(KeyWrite {
                key: b("hits"),
                fresh: false,
                effect: Effect::StrIncr(Delta::Int(-2)),
            }),
        }
    }

    fn doc_rpush() -> Operation {
        let mut r = Replica::new(RegionId(1));
        r.write(b("q"), Intent::RPush(vec![b("a"), b("b")]), T0)
            .expect("write accepted")
            .expect("op")
    }

    const DOC_INCR_HEX: &str =
        "01 02 05 81 80 80 c0 d6 fc f3 c5 01 01 01 ac 02 00 01 04 68 69 74 73 02 00 03";
    const DOC_RPUSH_HEX: &str =
        "01 01 01 80 80 80 c0 d6 fc f3 c5 01 00 00 01 01 71 0e 02 03 00 00 01 61 53 02 01 01 62";

    #[test]
    fn worked_examples_match_storage_format_md() {
        let incr = round_trip(&doc_incr());
        let rpush = round_trip(&doc_rpush());
        println!("INCR example: {}", hex(&incr));
        println!("RPUSH example: {}", hex(&rpush));
        assert_eq!(hex(&incr), DOC_INCR_HEX);
        assert_eq!(hex(&rpush), DOC_RPUSH_HEX);
        let doc = include_str!("../../storage-format.md");
        assert!(
            doc.contains(DOC_INCR_HEX),
            "storage-format.md lacks the INCR example"
        );
        assert!(
            doc.contains(DOC_RPUSH_HEX),
            "storage-format.md lacks the RPUSH example"
        );
    }

    // ------------------------------------------------------------ hostile input

    #[test]
    fn every_truncation_is_an_error() {
        for op in prepared_ops() {
            let bytes = encode_op_to_vec(&op);
            for n in 0..bytes.len() {
                assert!(
                    decode_op(&bytes[..n]).is_err(),
                    "prefix {n} of {}",
                    hex(&bytes)
                );
            }
        }
        assert_eq!(
            decode_op(&[]),
            Err(DecodeError::Truncated {
                offset: 0,
                what: "version"
            })
        );
    }

    #[test]
    fn specific_errors() {
        let good = encode_op_to_vec(&doc_incr());
        let with = |i: usize, v: u8| {
            let mut x = good.clone();
            x[i] = v;
            decode_op(&x)
        };
        assert_eq!(
            with(0, 2),
            Err(DecodeError::UnsupportedVersion { found: 2 })
        );
        assert_eq!(
            with(2, 0),
            Err(DecodeError::ZeroSeq {
                offset: 2,
                what: "seq"
            })
        );
        // The deps entry names the origin itself.
        assert!(matches!(
            with(13, 2),
            Err(DecodeError::DepsInconsistent { offset: 13, .. })
        ));
        assert_eq!(
            with(17, 0x04),
            Err(DecodeError::UnknownBody {
                offset: 17,
                found: 4
            })
        );
        assert_eq!(
            with(23, 0x7f),
            Err(DecodeError::UnknownEffect {
                offset: 23,
                found: 0x7f
            })
        );
        assert!(matches!(
            with(24, 9),
            Err(DecodeError::UnknownTag { what: "delta", .. })
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode_op(&trailing),
            Err(DecodeError::TrailingBytes {
                offset: good.len(),
                count: 1
            })
        );
        let msg = with(23, 0x7f).expect_err("bad tag").to_string();
        assert_eq!(msg, "unknown effect tag 0x7f at byte offset 23");

        // An overlong varint (seq 5 as 85 00).
        let mut overlong = good[..2].to_vec();
        overlong.extend_from_slice(&[0x85, 0x00]);
        overlong.extend_from_slice(&good[3..]);
        assert!(matches!(
            decode_op(&overlong),
            Err(DecodeError::NonCanonical { offset: 2, .. })
        ));

        // Deps out of order, zero seq.
        let header = |deps: &[u8]| {
            let mut v = vec![1, 9, 1, 0];
            v.extend_from_slice(deps);
            v.extend_from_slice(&[0, 0]);
            v
        };
        assert!(matches!(
            decode_op(&header(&[2, 3, 1, 1, 1])),
            Err(DecodeError::DepsInconsistent {
                offset: 7,
                reason: "regions not strictly increasing"
            })
        ));
        assert!(matches!(
            decode_op(&header(&[1, 3, 0])),
            Err(DecodeError::DepsInconsistent {
                reason: "zero sequence",
                ..
            })
        ));
        assert!(decode_op(&header(&[2, 1, 1, 3, 1])).is_ok());
        // Region above u16.
        assert!(matches!(
            decode_op(&[1, 0x80, 0x80, 0x04, 1, 0, 0, 0, 0]),
            Err(DecodeError::OutOfRange {
                what: "origin",
                value: 65536,
                ..
            })
        ));
        // 11-byte varint.
        let mut long = vec![1, 1, 1];
        long.extend_from_slice(&[0xff; 10]);
        long.push(0x01);
        assert!(matches!(
            decode_op(&long),
            Err(DecodeError::VarintOverflow {
                offset: 3,
                what: "hlc"
            })
        ));
    }

    #[test]
    fn bad_values_are_refused() {
        let key = |effect: &[u8]| {
            let mut v = vec![1, 1, 1, 0, 0, 0, BODY_KEY, 1, b'k'];
            v.extend_from_slice(effect);
            v
        };
        let nan = f64::NAN.to_le_bytes();
        let mut zadd = vec![tag::ZADD, 1, 1, b'm'];
        zadd.extend_from_slice(&nan);
        assert_eq!(
            decode_op(&key(&zadd)),
            Err(DecodeError::NanScore { offset: 13 })
        );
        let mut zadd_inf = vec![tag::ZADD, 1, 1, b'm'];
        zadd_inf.extend_from_slice(&f64::INFINITY.to_le_bytes());
        assert!(decode_op(&key(&zadd_inf)).is_ok());

        assert!(matches!(
            decode_op(&key(&[tag::ZINCR, 1, b'm', 2, 0xff, 0xfe])),
            Err(DecodeError::InvalidUtf8 { offset: 12 })
        ));
        for bad in ["nan", "inf", "1e999", "abc", ""] {
            let mut e = vec![tag::ZINCR, 1, b'm', bad.len() as u8];
            e.extend_from_slice(bad.as_bytes());
            assert!(
                matches!(decode_op(&key(&e)), Err(DecodeError::InvalidDecimal { .. })),
                "{bad}"
            );
        }
        // Fine numbers, but not the canonical text of theirs.
        let float = |text: &str| {
            let mut e = vec![tag::STR_INCR, DELTA_FLOAT, text.len() as u8];
            e.extend_from_slice(text.as_bytes());
            decode_op(&key(&e))
        };
        for bad in [
            "1.5", "1.50", "150e-2", "+15e-1", "15E-1", "15e+1", "15e01", "15e0", "015", "-0",
            "00", "1e-0",
        ] {
            assert!(
                matches!(
                    float(bad),
                    Err(DecodeError::NonCanonical {
                        what: "decimal text",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        for good in [
            "15e-1",
            "0",
            "-3",
            "1e2",
            "123456789123e-3",
            "5e-324",
            "17976931348623157e292",
        ] {
            assert!(float(good).is_ok(), "{good}");
        }

        // Segments: a digit with an even odd part, a shifted zero, an
        // overflowing shift, a foreign segment spelling out the own dot.
        let seg = |s: &[u8]| key(&[&[tag::LIST_REMOVE, 1][..], s].concat());
        assert!(decode_op(&seg(&[0x03, 0x00, 0x00])).is_ok());
        assert!(matches!(
            decode_op(&seg(&[0x03, 0x04, 0x00])),
            Err(DecodeError::NonCanonical { .. })
        ));
        assert!(matches!(
            decode_op(&seg(&[0x07, 0x00, 0x00])),
            Err(DecodeError::NonCanonical { .. })
        ));
        assert!(matches!(
            decode_op(&seg(&[0xff, 0x06, 0x00])),
            Err(DecodeError::DigitOverflow { offset: 11 })
        ));
        assert!(matches!(
            decode_op(&seg(&[0x02, 0x00, 0x01, 0x01, 0x00])),
            Err(DecodeError::NonCanonical { .. })
        ));
        assert!(decode_op(&seg(&[0x02, 0x00, 0x01, 0x02, 0x00])).is_ok());
        assert!(matches!(
            decode_op(&seg(&[0x02, 0x00, 0x01, 0x00, 0x00])),
            Err(DecodeError::ZeroSeq { .. })
        ));
        // A segment without the last flag needs another one.
        assert!(matches!(
            decode_op(&seg(&[0x01, 0x00, 0x00])),
            Err(DecodeError::Truncated { .. })
        ));
        // Fresh without a key.
        assert!(matches!(
            decode_op(&[1, 1, 1, 0, 0, 0, BODY_FRESH]),
            Err(DecodeError::UnknownBody { .. })
        ));
    }

    #[test]
    fn huge_declared_lengths_fail_before_allocating() {
        let huge = {
            let mut v = Vec::new();
            put_varint(&mut v, u64::MAX);
            v
        };
        let prefix = [1u8, 1, 1, 0];
        // Deps count.
        let deps = [&prefix[..], &huge].concat();
        assert!(matches!(
            decode_op(&deps),
            Err(DecodeError::LengthExceedsRemaining {
                offset: 4,
                what: "deps count",
                declared: u64::MAX,
                remaining: 0
            })
        ));
        let body = [1u8, 1, 1, 0, 0, 0, BODY_KEY];
        // Key length.
        let key = [&body[..], &huge, b"abc"].concat();
        assert!(matches!(
            decode_op(&key),
            Err(DecodeError::LengthExceedsRemaining {
                what: "key",
                remaining: 3,
                ..
            })
        ));
        // Element counts of every list-bearing effect, just above what fits.
        for (t, what) in [
            (tag::SET_ADD, "members"),
            (tag::HASH_SET, "field count"),
            (tag::ZADD, "member count"),
            (tag::LIST_INSERT, "element count"),
            (tag::LIST_REMOVE, "position count"),
        ] {
            let e = [&body[..], &[0, t], &huge, &[0; 8]].concat();
            match decode_op(&e) {
                Err(DecodeError::LengthExceedsRemaining { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{t:#x}: {other:?}"),
            }
        }
        // A count the remaining bytes could hold only as 1-byte elements is
        // refused for 9-byte scored members.
        let zadd = [&body[..], &[0, tag::ZADD, 2], &[0u8; 17]].concat();
        assert!(matches!(
            decode_op(&zadd),
            Err(DecodeError::LengthExceedsRemaining { declared: 2, .. })
        ));
    }

    // ------------------------------------------------------------ properties

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..10).prop_map(Bytes::from)
    }

    fn arb_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            any::<f64>().prop_filter_map("finite", Decimal::from_f64),
            (-1_000_000i64..1_000_000, 0u32..6).prop_map(|(m, e)| {
                let v = m as f64 / 10f64.powi(e as i32);
                Decimal::from_f64(v).expect("finite")
            }),
        ]
    }

    fn arb_delta() -> impl Strategy<Value = Delta> {
        prop_oneof![
            any::<i64>().prop_map(Delta::Int),
            arb_decimal().prop_map(Delta::Float)
        ]
    }

    fn arb_score() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("not NaN", |v| !v.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
    }

    fn arb_seq() -> impl Strategy<Value = Seq> {
        prop_oneof![1u64..200, 1..=u64::MAX]
    }

    fn arb_digit() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (-3000i64..3000, 0u32..64)
                .prop_map(|(k, s)| DIGIT_ORIGIN.wrapping_add((k as u64).wrapping_shl(s))),
            Just(0),
            Just(u64::MAX),
            Just(DIGIT_ORIGIN),
        ]
    }

    fn arb_position(own: (RegionId, Seq)) -> impl Strategy<Value = Position> {
        let seg = (
            arb_digit(),
            any::<bool>(),
            any::<u16>(),
            arb_seq(),
            prop_oneof![0u32..5, any::<u32>()],
        )
            .prop_map(move |(digit, is_own, region, seq, idx)| {
                let (region, seq) = if is_own { own } else { (RegionId(region), seq) };
                Segment {
                    digit,
                    region,
                    seq,
                    idx,
                }
            });
        prop::collection::vec(seg, 1..4).prop_map(|v| Position(SmallVec::from_vec(v)))
    }

    pub(crate) fn arb_effect(own: (RegionId, Seq)) -> impl Strategy<Value = Effect> {
        let list = || prop::collection::vec(arb_bytes(), 0..4);
        let pos = move || arb_position(own);
        let ttl = prop_oneof![
            Just(TtlChange::Keep),
            Just(TtlChange::Persist),
            any::<u64>().prop_map(TtlChange::ExpireAt)
        ];
        let strings = prop_oneof![
            (arb_bytes(), ttl).prop_map(|(value, ttl)| Effect::StrSet { value, ttl }),
            arb_delta().prop_map(Effect::StrIncr),
            Just(Effect::Del),
            any::<u64>().prop_map(Effect::Expire),
            Just(Effect::Persist),
        ];
        let collections = prop_oneof![
            list().prop_map(Effect::SetAdd),
            list().prop_map(Effect::SetRem),
            prop::collection::vec((arb_bytes(), arb_bytes()), 0..4).prop_map(Effect::HashSet),
            list().prop_map(Effect::HashDel),
            (arb_bytes(), arb_delta()).prop_map(|(field, delta)| Effect::HashIncr { field, delta }),
            prop::collection::vec((arb_bytes(), arb_score()), 0..4).prop_map(Effect::ZAdd),
            (arb_bytes(), arb_decimal())
                .prop_map(|(member, delta)| Effect::ZIncr { member, delta }),
            list().prop_map(Effect::ZRem),
        ];
        let lists = prop_oneof![
            prop::collection::vec((pos(), arb_bytes()), 0..4).prop_map(Effect::ListInsert),
            (pos(), arb_bytes()).prop_map(|(pos, value)| Effect::ListSet { pos, value }),
            prop::collection::vec(pos(), 0..4).prop_map(Effect::ListRemove),
            prop::option::of((pos(), pos())).prop_map(Effect::ListTrim),
        ];
        prop_oneof![strings, collections, lists]
    }

    pub(crate) fn arb_op() -> impl Strategy<Value = Operation> {
        let header = (
            any::<u16>(),
            arb_seq(),
            any::<u64>(),
            prop_oneof![Just(0u32), any::<u32>()],
            prop::collection::btree_map(any::<u16>(), arb_seq(), 0..5),
        );
        header.prop_flat_map(|(origin, seq, hlc, txn_rest, deps)| {
            let origin = RegionId(origin);
            let deps = VersionVector::from_entries(
                deps.into_iter()
                    .map(|(r, s)| (RegionId(r), s))
                    .filter(|&(r, _)| r != origin)
                    .chain([(origin, seq - 1)]),
            );
            let body = prop_oneof![
                1 => Just(Body::FlushAll),
                9 => (arb_bytes(), any::<bool>(), arb_effect((origin, seq)))
                    .prop_map(|(key, fresh, effect)| Body::Key(KeyWrite { key, fresh, effect })),
            ];
            body.prop_map(move |body| Operation {
                origin,
                seq,
                hlc: Hlc(hlc),
                deps: deps.clone(),
                txn_rest,
                body,
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every well-formed operation decodes to itself, and re-encodes to
        /// the same bytes.
        #[test]
        fn random_operations_round_trip(op in arb_op()) {
            let bytes = encode_op_to_vec(&op);
            let back = decode_op(&bytes);
            prop_assert_eq!(back.as_ref(), Ok(&op));
            prop_assert_eq!(encode_op_to_vec(&op), bytes);
        }

        /// Flipped bytes never panic; whatever still decodes is canonical
        /// (re-encodes to exactly the flipped bytes).
        #[test]
        fn byte_flips_never_panic(
            op in arb_op(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let mut bytes = encode_op_to_vec(&op);
            for (i, x) in flips {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            if let Ok(back) = decode_op(&bytes) {
                prop_assert_eq!(encode_op_to_vec(&back), bytes);
            }
        }

        /// Any decimal, however the library displays it, has one canonical
        /// text that reads back as itself.
        #[test]
        fn decimal_text_is_canonical(m in any::<i64>(), e in -330i32..300) {
            if let Some(d) = Decimal::from_canonical(&format!("{m}e{e}")) {
                let text = canonical_decimal(&d);
                prop_assert!(is_canonical_decimal(&text), "{}", text);
                prop_assert_eq!(Decimal::from_canonical(&text), Some(d));
            }
        }

        /// Arbitrary bytes after a valid version byte never panic.
        #[test]
        fn random_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..64)) {
            let bytes = [&[OP_FORMAT_VERSION][..], &tail].concat();
            if let Ok(back) = decode_op(&bytes) {
                prop_assert_eq!(encode_op_to_vec(&back), bytes);
            }
        }
    }
}
