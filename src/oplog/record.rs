//! One op-log record: a run of consecutive operations of one origin,
//! stored under the key of its first operation (format version 2; see
//! `storage-format.md`, "Op log").
//!
//! Why runs and not one record per operation: RocksDB's cost is per key
//! (memtable insert, write-batch entry, flush), and a group commit writes
//! hundreds of operations; one key per run made appending about seven times
//! cheaper (`benches/oplog.rs`).
//!
//! Pure: no RocksDB, no I/O, so every check is tested and fuzzed directly.

use crate::crdt::codec::{decode_op, encode_op};
use crate::crdt::{Operation, RegionId, Seq};

/// Most operations [`encode_records`] puts in one record.
pub const MAX_RECORD_OPS: usize = 1024;
/// Encoded bytes beyond which [`encode_records`] starts a new record (one larger
/// operation still makes a record of its own).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Bytes before the first operation: CRC32 and the operation count.
pub const RECORD_HEADER_LEN: usize = 8;

/// The RocksDB key of the record whose first operation is `seq` of `origin`.
pub fn record_key(origin: RegionId, seq: Seq) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&origin.0.to_be_bytes());
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The (origin, first sequence) a record key names; `None` unless the key
/// is exactly 10 bytes.
pub fn parse_record_key(k: &[u8]) -> Option<(RegionId, Seq)> {
    if k.len() != 10 {
        return None;
    }
    let origin = u16::from_be_bytes(k.get(..2)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?);
    Some((RegionId(origin), seq))
}

/// Encodes a record of `ops` (one origin, consecutive sequences, at least
/// one) into `out`, replacing its contents. Its key is
/// `record_key(ops[0].origin, ops[0].seq)`.
pub fn encode_record(ops: &[Operation], out: &mut Vec<u8>) {
    debug_assert!(!ops.is_empty(), "a record holds at least one operation");
    begin(out);
    for op in ops {
        push(out, op);
    }
    finish(out, ops.len());
}

/// Encodes `ops`, in the order written, as records: runs of one origin's
/// consecutive sequences, cut at [`MAX_RECORD_OPS`] operations or once
/// [`MAX_RECORD_BYTES`] are reached. Calls `emit(key, value)` per record;
/// each operation is encoded once.
pub fn encode_records(ops: &[Operation], mut emit: impl FnMut(&[u8; 10], &[u8])) {
    let mut out = Vec::with_capacity(4096);
    let mut head: Option<&Operation> = None;
    let mut last: Option<&Operation> = None;
    let mut count = 0usize;
    for op in ops {
        let continues = last
            .is_some_and(|l| l.origin == op.origin && l.seq.checked_add(1) == Some(op.seq))
            && count < MAX_RECORD_OPS
            && out.len() < MAX_RECORD_BYTES;
        if !continues {
            if let Some(h) = head {
                finish(&mut out, count);
                emit(&record_key(h.origin, h.seq), &out);
            }
            begin(&mut out);
            head = Some(op);
            count = 0;
        }
        push(&mut out, op);
        count += 1;
        last = Some(op);
    }
    if let Some(h) = head {
        finish(&mut out, count);
        emit(&record_key(h.origin, h.seq), &out);
    }
}

fn begin(out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
}

fn push(out: &mut Vec<u8>, op: &Operation) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_op(op, out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn finish(out: &mut [u8], count: usize) {
    out[4..8].copy_from_slice(&(count as u32).to_le_bytes());
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
}

/// The origin and the first and last sequence a record holds, from its key
/// and its count field alone (no CRC check): `None` for a malformed key, a
/// value shorter than its header, or a count of 0.
pub fn record_span(key: &[u8], value: &[u8]) -> Option<(RegionId, Seq, Seq)> {
    let (origin, first) = parse_record_key(key)?;
    let count = u64::from(u32::from_le_bytes(value.get(4..8)?.try_into().ok()?));
    let last = first.checked_add(count.checked_sub(1)?)?;
    Some((origin, first, last))
}

/// Decodes a record: checks its CRC, its count, every operation's length
/// and encoding, and that the operations are the ones its key names (its
/// origin, sequences from the key's on, one apart).
pub fn decode_record(key: &[u8], value: &[u8]) -> Result<Vec<Operation>, String> {
    Ok(decode_record_sized(key, value)?
        .into_iter()
        .map(|(op, _)| op)
        .collect())
}

/// [`decode_record`], with each operation's encoded size (what it weighs
/// in a replication segment).
pub fn decode_record_sized(key: &[u8], value: &[u8]) -> Result<Vec<(Operation, usize)>, String> {
    let (origin, first) = parse_record_key(key).ok_or("malformed key")?;
    if first == 0 {
        return Err("key names sequence 0".into());
    }
    if value.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "record of {} bytes is shorter than its {RECORD_HEADER_LEN}-byte header",
            value.len()
        ));
    }
    check_crc(value)?;
    let count = u32::from_le_bytes([value[4], value[5], value[6], value[7]]) as usize;
    if count == 0 {
        return Err("record holds 0 operations".into());
    }
    // Each operation takes at least its 4-byte length and a few bytes.
    if count > (value.len() - RECORD_HEADER_LEN) / 5 {
        return Err(format!(
            "count {count} does not fit in {} bytes",
            value.len()
        ));
    }
    if first.checked_add(count as u64 - 1).is_none() {
        return Err(format!("count {count} runs past the last sequence"));
    }
    let mut ops = Vec::with_capacity(count);
    let mut at = RECORD_HEADER_LEN;
    for i in 0..count {
        let expected = first + i as u64;
        let len_bytes = value
            .get(at..at + 4)
            .ok_or_else(|| format!("operation {expected}: record ends before its length"))?;
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        at += 4;
        let body = at
            .checked_add(len)
            .and_then(|end| value.get(at..end))
            .ok_or_else(|| {
                format!(
                    "operation {expected}: length {len} runs past the record's {} bytes",
                    value.len()
                )
            })?;
        at += len;
        let op = decode_op(body).map_err(|e| format!("operation {expected}: {e}"))?;
        if op.origin != origin || op.seq != expected {
            return Err(format!(
                "record holds {}:{} where {origin}:{expected} belongs",
                op.origin, op.seq
            ));
        }
        ops.push((op, len));
    }
    if at != value.len() {
        return Err(format!(
            "{} bytes after the last operation",
            value.len() - at
        ));
    }
    Ok(ops)
}

/// Checks the CRC32 in bytes 0..4 against bytes 4.. (both formats; the
/// caller has checked that there are 4 bytes).
fn check_crc(value: &[u8]) -> Result<(), String> {
    let stored = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    let actual = crc32fast::hash(&value[4..]);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    Ok(())
}

/// Decodes a format-1 record (one operation, `CRC32 ‖ operation`), as logs
/// written before format 2 hold them: only [`super::OpLog`]'s upgrade reads
/// these.
pub fn decode_record_v1(key: &[u8], value: &[u8]) -> Result<Operation, String> {
    let (origin, seq) = parse_record_key(key).ok_or("malformed key")?;
    if value.len() < 4 {
        return Err(format!(
            "record of {} bytes is shorter than its checksum",
            value.len()
        ));
    }
    check_crc(value)?;
    let op = decode_op(&value[4..]).map_err(|e| e.to_string())?;
    if op.origin != origin || op.seq != seq {
        return Err(format!(
            "record holds {}:{} under the key of {origin}:{seq}",
            op.origin, op.seq
        ));
    }
    Ok(op)
}

/// A string write of `k<seq>`, operation `seq` of `origin`: what the op-log
/// tests store.
#[cfg(test)]
pub(crate) fn test_op(origin: u16, seq: Seq) -> Operation {
    use crate::crdt::{Body, Effect, Hlc, KeyWrite, TtlChange, VersionVector};
    let mut deps = VersionVector::new();
    deps.set(RegionId(origin), seq - 1);
    Operation {
        origin: RegionId(origin),
        seq,
        hlc: Hlc::new(1_000 + seq, 0),
        deps,
        txn_rest: 0,
        body: Body::Key(KeyWrite {
            key: format!("k{seq}").into(),
            fresh: false,
            effect: Effect::StrSet {
                value: "v".into(),
                ttl: TtlChange::Persist,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_op as op;

    fn encoded(ops: &[Operation]) -> (Vec<u8>, Vec<u8>) {
        let mut v = Vec::new();
        encode_record(ops, &mut v);
        (record_key(ops[0].origin, ops[0].seq).to_vec(), v)
    }

    #[test]
    fn a_record_round_trips_and_names_its_span() {
        let ops: Vec<_> = (5..=9).map(|s| op(3, s)).collect();
        let (k, v) = encoded(&ops);
        assert_eq!(decode_record(&k, &v).unwrap(), ops);
        assert_eq!(record_span(&k, &v), Some((RegionId(3), 5, 9)));
    }

    /// The spans `encode_records` writes for `ops`, after checking that
    /// each record decodes to the operations it was cut from.
    fn spans(ops: &[Operation]) -> Vec<(RegionId, Seq, Seq)> {
        let mut out = Vec::new();
        let mut at = 0;
        encode_records(ops, |k, v| {
            let (origin, first, last) = record_span(k, v).expect("header");
            let n = (last - first + 1) as usize;
            assert_eq!(decode_record(k, v).expect("decodes"), ops[at..at + n]);
            at += n;
            out.push((origin, first, last));
        });
        assert_eq!(at, ops.len(), "every operation in a record");
        out
    }

    #[test]
    fn records_are_cut_on_origin_gaps_count_and_size() {
        let mut ops: Vec<_> = (1..=3).map(|s| op(1, s)).collect();
        ops.push(op(2, 1));
        ops.push(op(1, 5));
        let r1 = RegionId(1);
        assert_eq!(
            spans(&ops),
            vec![(r1, 1, 3), (RegionId(2), 1, 1), (r1, 5, 5)]
        );
        let many: Vec<_> = (1..=(MAX_RECORD_OPS as u64 + 5))
            .map(|s| op(1, s))
            .collect();
        let last = MAX_RECORD_OPS as u64;
        assert_eq!(spans(&many), vec![(r1, 1, last), (r1, last + 1, last + 5)]);
        // Operations of half the byte limit: two fill a record.
        let big: Vec<_> = (1..=4)
            .map(|s| {
                let mut o = op(1, s);
                if let crate::crdt::Body::Key(w) = &mut o.body {
                    w.effect = crate::crdt::Effect::StrSet {
                        value: vec![b'x'; MAX_RECORD_BYTES / 2].into(),
                        ttl: crate::crdt::TtlChange::Persist,
                    };
                }
                o
            })
            .collect();
        assert_eq!(spans(&big), vec![(r1, 1, 2), (r1, 3, 4)]);
        assert_eq!(spans(&[]), Vec::new());
    }

    #[test]
    fn encode_records_writes_what_encode_record_does() {
        let ops: Vec<_> = (1..=3).map(|s| op(1, s)).collect();
        let mut got = Vec::new();
        encode_records(&ops, |k, v| got.push((k.to_vec(), v.to_vec())));
        assert_eq!(got, vec![encoded(&ops)]);
    }

    #[test]
    fn every_corruption_is_refused_with_a_reason() {
        let ops: Vec<_> = (1..=3).map(|s| op(1, s)).collect();
        let (k, v) = encoded(&ops);
        // Any single flipped bit fails the CRC or the checks behind it.
        for i in 0..v.len() {
            for bit in 0..8 {
                let mut bad = v.clone();
                bad[i] ^= 1 << bit;
                assert!(decode_record(&k, &bad).is_err(), "byte {i} bit {bit}");
            }
        }
        // Every truncation is refused.
        for n in 0..v.len() {
            assert!(decode_record(&k, &v[..n]).is_err(), "first {n} bytes");
        }
        // The key must name the first operation.
        let other = record_key(RegionId(1), 2);
        let err = decode_record(&other, &v).unwrap_err();
        assert!(
            err.contains("where r1:2 belongs") || err.contains("1:2"),
            "{err}"
        );
        assert!(decode_record(&k[..9], &v).is_err());
        assert!(decode_record(&record_key(RegionId(1), 0), &v).is_err());
    }

    #[test]
    fn a_well_formed_record_with_a_lying_count_is_refused() {
        let ops: Vec<_> = (1..=2).map(|s| op(1, s)).collect();
        let (k, mut v) = encoded(&ops);
        for count in [0u32, 1, 3, u32::MAX] {
            v[4..8].copy_from_slice(&count.to_le_bytes());
            let crc = crc32fast::hash(&v[4..]);
            v[..4].copy_from_slice(&crc.to_le_bytes());
            assert!(decode_record(&k, &v).is_err(), "count {count}");
        }
    }

    #[test]
    fn format_1_records_still_decode_for_the_upgrade() {
        let o = op(2, 4);
        let mut v = vec![0; 4];
        encode_op(&o, &mut v);
        let crc = crc32fast::hash(&v[4..]);
        v[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record_v1(&record_key(RegionId(2), 4), &v).unwrap(),
            o
        );
        assert!(decode_record_v1(&record_key(RegionId(2), 5), &v).is_err());
        // A format-2 record is not mistaken for a format-1 one.
        let (k, v2) = encoded(&[o]);
        assert!(decode_record_v1(&k, &v2).is_err());
    }
}
