//! Bodies of the fuzz targets in `fuzz/`, one function per decoder of
//! outside input.
//!
//! Why in the library: the fuzz targets and `tests/fuzz_regressions.rs` (which
//! replays the kept corpus and every crashing input in the ordinary test
//! suite) must run exactly the same code. Each function takes arbitrary
//! bytes, must never panic on them, and panics when a property fails: where a
//! decoder has an encoder, what decodes must encode back (to the same bytes
//! where the encoding is canonical) and decode again to the same value.
//!
//! Checksums would stop a fuzzer at the first byte it changes, so several
//! targets read their first byte as a mode whose low bit asks to recompute
//! the checksums of the rest before decoding (see each function).

use std::io::{self, Read};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::backup::archive::{ArchiveReader, ArchiveWriter};
use crate::backup::manifest::Manifest;
use crate::config::Config;
use crate::crdt::codec::{decode_op, encode_op_to_vec};
use crate::crdt::snapshot as snap;
use crate::crdt::{Operation, VersionVector};
use crate::oplog::inspect::{
    check_record, format_json, format_text, trusted_span, Filter, LogScan,
};
use crate::oplog::{decode_record, encode_record, record_key, record_span};
use crate::replication::message::{read_message, Message};
use crate::replication::segment::{
    decode_header, decode_segment, encode_segment, Compression, SegmentLimits, FIXED_HEADER_LEN,
    FLAG_LZ4, RANGE_LEN,
};
use crate::resp::parse::{parse_request, Decoded, Decoder, Limits};

/// Splits off the mode byte; the empty input is mode 0 with no data.
fn mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&m, rest)) => (m, rest),
        None => (0, data),
    }
}

// ---------------------------------------------------------------- RESP

/// The limits a fuzz input runs under, chosen by its mode byte, so that the
/// small and the pre-authentication caps are reached too.
fn resp_limits(mode: u8) -> Limits {
    match mode % 3 {
        0 => Limits::default(),
        1 => Limits {
            auth_required: true,
            ..Limits::default()
        },
        _ => Limits {
            max_bulk_len: 16,
            max_multibulk_len: 4,
            max_inline_len: 32,
            ..Limits::default()
        },
    }
}

/// Every request in `input` parsed one after another with [`parse_request`],
/// and how the input ended.
type Requests = (Vec<Vec<Bytes>>, Result<(), crate::resp::ProtocolError>);

fn resp_parse_all(input: &[u8], limits: &Limits) -> Requests {
    let mut rest = input;
    let mut out = Vec::new();
    loop {
        match parse_request(rest, limits) {
            Ok(Some((args, n))) => {
                assert!(n > 0 && n <= rest.len(), "consumed {n} of {}", rest.len());
                out.push(args);
                rest = &rest[n..];
            }
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// The same through one resumable [`Decoder`], fed `step` bytes at a time
/// as a connection would be.
fn resp_decode_chunked(input: &[u8], limits: &Limits, step: usize) -> Requests {
    let mut decoder = Decoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let decoded = decoder.decode(&buf, limits);
            let n = match decoded {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Skipped(n)) => n,
                Ok(Decoded::Inline { args, consumed }) => {
                    out.push(args);
                    consumed
                }
                Ok(Decoded::Multibulk { args, consumed }) => {
                    let args = args
                        .into_iter()
                        .map(|r| Bytes::copy_from_slice(&buf[r]))
                        .collect();
                    out.push(args);
                    consumed
                }
                Err(e) => return (out, Err(e)),
            };
            assert!(n > 0 && n <= buf.len(), "consumed {n} of {}", buf.len());
            buf.drain(..n);
        }
    }
    (out, Ok(()))
}

/// The multibulk encoding of `args`.
fn resp_encode(args: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RESP request parser (`src/resp/parse.rs`). Mode byte: the limits (see
/// `resp_limits`) and the chunk size the resumable decoder is fed in.
///
/// Properties: the stateless and the resumable parser find the same requests
/// and the same error whatever the chunking; every request found, encoded as
/// multibulk, parses back to the same arguments.
pub fn resp_parse(data: &[u8]) {
    let (m, input) = mode(data);
    let limits = resp_limits(m);
    let whole = resp_parse_all(input, &limits);
    let step = usize::from(m >> 2) + 1;
    assert_eq!(resp_decode_chunked(input, &limits, input.len()), whole);
    let chunked = resp_decode_chunked(input, &limits, step);
    if chunked != whole {
        // The one documented difference (`Limits::max_inline_len`): fed in
        // chunks, a line is refused as soon as more than the limit is
        // buffered without its end, while a whole buffer holding the end
        // goes on. Everything found before must agree.
        use crate::resp::ProtocolError as E;
        assert!(
            matches!(
                chunked.1,
                Err(E::TooBigInline | E::TooBigMultibulkCount | E::TooBigBulkCount)
            ),
            "chunked: {chunked:?}, whole: {whole:?}"
        );
        assert!(whole.0.starts_with(&chunked.0), "chunked: {chunked:?}");
    }
    for args in &whole.0 {
        assert!(!args.is_empty(), "a request without arguments");
        let encoded = resp_encode(args);
        // Under default limits every argument fits again.
        let back = parse_request(&encoded, &Limits::default());
        assert_eq!(back, Ok(Some((args.clone(), encoded.len()))), "round trip");
    }
}

// ---------------------------------------------------------------- op log

/// Operation codec (`src/crdt/codec.rs`), as the op log and the op-log tool
/// read it. Properties: a decoded operation encodes back to exactly the
/// input (the encoding is canonical); its text and JSON renderings
/// (`braid-log`) do not panic.
pub fn op_codec(data: &[u8]) {
    let Ok(op) = decode_op(data) else {
        return;
    };
    assert_eq!(encode_op_to_vec(&op), data, "canonical round trip");
    assert_eq!(decode_op(&encode_op_to_vec(&op)).as_ref(), Ok(&op));
    let _ = format_text(&op);
    let _ = format_json(&op);
}

/// How many whole length-prefixed chunks (`len u32 LE ‖ len bytes`) `b`
/// starts with: the operations a record's body would hold.
fn length_prefixed_chunks(b: &[u8]) -> usize {
    let mut at = 0usize;
    let mut n = 0;
    while let Some(len) = b.get(at..at + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        match (at + 4).checked_add(len) {
            Some(end) if end <= b.len() => {
                at = end;
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// Op-log records (`src/oplog/record.rs`, format 2): key, CRC, count, then
/// the run of length-prefixed operations. Input: mode byte, a 10-byte key
/// (if that many bytes remain), the record value. Mode bit 2 sets the count
/// to the number of length-prefixed chunks the value holds, bit 1 makes the
/// key the one the first operation's origin and sequence give, and bit 0
/// then recomputes the value's CRC, so fuzzing reaches past all three.
///
/// Properties: no input panics; [`decode_record`], [`check_record`] and a
/// [`LogScan`] agree, and [`record_span`] names what a good record holds; a
/// good record re-encodes to exactly its value under exactly its key; its
/// first `k` operations and the rest each make a record that decodes back
/// to them, and the two records scan as one run without a problem.
pub fn oplog_record(data: &[u8]) {
    let (m, rest) = mode(data);
    let (key, value) = rest.split_at(rest.len().min(10));
    let mut key = key.to_vec();
    let mut value = value.to_vec();
    if m & 4 != 0 && value.len() >= 8 {
        let n = length_prefixed_chunks(&value[8..]) as u32;
        value[4..8].copy_from_slice(&n.to_le_bytes());
    }
    if m & 2 != 0 {
        let first = value.get(8..12).and_then(|len| {
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            value.get(12..12usize.checked_add(len)?)
        });
        if let Some(op) = first.and_then(|b| decode_op(b).ok()) {
            key = record_key(op.origin, op.seq).to_vec();
        }
    }
    if m & 1 != 0 && value.len() >= 4 {
        let crc = crc32fast::hash(&value[4..]);
        value[..4].copy_from_slice(&crc.to_le_bytes());
    }
    let span = record_span(&key, &value);
    let trusted = trusted_span(&key, &value);
    assert!(trusted.is_none() || trusted == span, "trusted span");
    let _ = Filter::default().wants_record(&key, &value);
    let decoded = decode_record(&key, &value);
    let checked = check_record(&key, &value);
    assert_eq!(
        decoded.as_ref().ok(),
        checked.as_ref().ok(),
        "decode vs check"
    );
    let mut scan = LogScan::new(VersionVector::new());
    let observed = scan.observe(&key, &value);
    assert_eq!(observed.record.is_ok(), decoded.is_ok(), "decode vs scan");
    assert_eq!(scan.has_problems(), decoded.is_err());
    let Ok(ops) = decoded else {
        return;
    };
    let (first, last) = match (ops.first(), ops.last()) {
        (Some(a), Some(b)) => (a, b),
        _ => panic!("a good record holds no operation"),
    };
    assert_eq!(span, Some((first.origin, first.seq, last.seq)), "span");
    assert_eq!(trusted, span, "a good record's span is trusted");
    assert_eq!(scan.ops, ops.len() as u64);
    let mut out = Vec::new();
    encode_record(&ops, &mut out);
    assert_eq!(out, value, "canonical record");
    assert_eq!(
        record_key(first.origin, first.seq).as_slice(),
        key.as_slice()
    );
    for op in &ops {
        let _ = format_text(op);
    }
    // Split in two: each part round-trips, and together they are one run.
    let k = ops.len().div_ceil(2);
    let (head, tail) = ops.split_at(k);
    let mut records = Vec::new();
    for part in [head, tail] {
        let Some(op) = part.first() else { continue };
        let mut v = Vec::new();
        encode_record(part, &mut v);
        let key = record_key(op.origin, op.seq);
        assert_eq!(decode_record(&key, &v).as_deref(), Ok(part), "round trip");
        records.push((key, v));
    }
    let cover = VersionVector::from_entries([(first.origin, head[k - 1].seq)]);
    let mut scan = LogScan::new(cover);
    for (key, v) in &records {
        assert!(scan.observe(key, v).record.is_ok(), "part of a good run");
    }
    assert!(!scan.has_problems(), "a run split in two");
    let st = scan.origin(first.origin).expect("scanned");
    assert_eq!(
        (
            st.first_seq,
            st.last_seq,
            st.ops,
            st.covered,
            st.covered_records
        ),
        (
            Some(first.seq),
            Some(last.seq),
            ops.len() as u64,
            k as u64,
            1
        )
    );
}

// ---------------------------------------------------------------- replication

/// Limits small enough that a fuzz input can reach them, large enough for
/// the seeds.
fn fuzz_segment_limits() -> SegmentLimits {
    SegmentLimits {
        max_ops: 4096,
        max_raw_len: 1 << 20,
    }
}

/// Offset of a segment's CRC field (after magic, version, flags, op count,
/// raw, wire length and range count).
const SEGMENT_CRC_AT: usize = 22;

/// Overwrites a segment's CRC field with the CRC of the rest.
fn fix_segment_crc(seg: &mut [u8]) {
    if seg.len() < FIXED_HEADER_LEN {
        return;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&seg[..SEGMENT_CRC_AT]);
    h.update(&seg[SEGMENT_CRC_AT + 4..]);
    let crc = h.finalize();
    seg[SEGMENT_CRC_AT..SEGMENT_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes `seg` under `limits` and checks the round trips of what decodes.
fn check_segment(seg: &[u8], limits: &SegmentLimits) {
    let header = decode_header(seg, limits);
    let Ok((h, ops)) = decode_segment(seg, limits) else {
        return;
    };
    let (h0, header_len) = header.expect("a segment that decodes has a header that decodes");
    assert_eq!(h0, h);
    assert_eq!(header_len + h.wire_len as usize, seg.len());
    assert_eq!(ops.len(), h.op_count as usize);
    for compression in [Compression::Raw, Compression::Lz4] {
        let (bytes, h2) = encode_segment(&ops, compression);
        let (h3, again) =
            decode_segment(&bytes, &SegmentLimits::default()).expect("an encoded segment decodes");
        assert_eq!(h3, h2);
        assert_eq!(again, ops, "segment round trip ({compression:?})");
        if compression == Compression::Raw {
            // The encoding of decoded operations is a fixed point.
            assert_eq!(encode_segment(&again, compression).0, bytes);
        }
    }
    for op in &ops {
        // Each operation also travels alone through the op log's codec.
        let one = encode_op_to_vec(op);
        assert_eq!(decode_op(&one).as_ref(), Ok(op), "op codec round trip");
    }
}

/// Replication segments, uncompressed or compressed as the bytes say
/// (`src/replication/segment.rs`). Mode bit 0 recomputes the CRC.
pub fn segment(data: &[u8]) {
    let (m, rest) = mode(data);
    let mut seg = rest.to_vec();
    if m & 1 != 0 {
        fix_segment_crc(&mut seg);
    }
    check_segment(&seg, &fuzz_segment_limits());
}

/// Replication segments with an lz4 payload. Input: mode byte, then a
/// segment whose payload is read as uncompressed. Mode bit 0: compress that
/// payload with lz4 and set the flag and lengths, so the decoder sees a
/// valid lz4 block around fuzzed operations; else the payload is taken as a
/// (fuzzed) lz4 block as it stands, flag set. Either way the CRC is
/// recomputed unless mode bit 1 is set.
pub fn segment_lz4(data: &[u8]) {
    let (m, rest) = mode(data);
    if rest.len() < FIXED_HEADER_LEN {
        return check_segment(rest, &fuzz_segment_limits());
    }
    let ranges = u32::from_le_bytes([rest[18], rest[19], rest[20], rest[21]]);
    let header_len = (ranges as usize)
        .checked_mul(RANGE_LEN)
        .and_then(|n| n.checked_add(FIXED_HEADER_LEN))
        .filter(|&n| n <= rest.len())
        .unwrap_or(FIXED_HEADER_LEN);
    let (head, payload) = rest.split_at(header_len);
    let mut seg = head.to_vec();
    seg[5] |= FLAG_LZ4;
    if m & 1 != 0 {
        let wire = lz4_flex::block::compress(payload);
        seg[10..14].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        seg[14..18].copy_from_slice(&(wire.len() as u32).to_le_bytes());
        seg.extend_from_slice(&wire);
    } else {
        seg[14..18].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        seg.extend_from_slice(payload);
    }
    if m & 2 == 0 {
        fix_segment_crc(&mut seg);
    }
    check_segment(&seg, &fuzz_segment_limits());
}

/// Largest frame the message target reads (a link allows 80 MiB).
const FUZZ_MAX_FRAME: u64 = 1 << 20;

/// Polls a future that never waits (its reads are from a byte slice).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a read from a byte slice waited"),
    }
}

/// Replication handshake and messages (`src/replication/message.rs`): the
/// input is a stream of frames read with [`read_message`], as a link reads
/// them. Properties: each frame read encodes back to exactly its bytes
/// (the encoding is canonical), and decoding a frame directly agrees.
pub fn message(data: &[u8]) {
    let mut stream = data;
    loop {
        let before = stream;
        match ready(read_message(&mut stream, FUZZ_MAX_FRAME)) {
            Ok(Some(msg)) => {
                let used = before.len() - stream.len();
                let frame = &before[..used];
                assert_eq!(msg.encode(), frame, "canonical frame");
                let direct = Message::decode(Bytes::copy_from_slice(&frame[4..]))
                    .expect("a frame read decodes directly");
                assert_eq!(direct, msg);
            }
            Ok(None) | Err(_) => break,
        }
    }
    // One frame body decoded on its own, however long.
    if let Ok(msg) = Message::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(&msg.encode()[4..], data, "canonical body");
    }
}

// ---------------------------------------------------------------- snapshots

/// Recomputes every CRC of a snapshot stream (header, chunks, footer) and,
/// if `digest` is given, writes it into the header first. Stops at the
/// first frame that does not fit; returns the new bytes.
fn fix_snapshot(input: &[u8], digest: Option<u128>) -> Vec<u8> {
    let mut s = input.to_vec();
    let Some(len) = s
        .get(9..13)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return s;
    };
    let body_end = 13 + len as usize;
    if s.len() < body_end + 4 {
        return s;
    }
    if let Some(d) = digest {
        if len >= 16 {
            s[body_end - 16..body_end].copy_from_slice(&d.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&s[..body_end]);
    s[body_end..body_end + 4].copy_from_slice(&crc.to_le_bytes());
    let mut at = body_end + 4;
    while let Some(&marker) = s.get(at) {
        if marker == 0x01 {
            let Some(len) = s.get(at + 5..at + 9) else {
                break;
            };
            let end = at + 9 + u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if s.len() < end + 4 {
                break;
            }
            let crc = crc32fast::hash(&s[at..end]);
            s[end..end + 4].copy_from_slice(&crc.to_le_bytes());
            at = end + 4;
        } else {
            if s.len() >= at + 21 {
                let crc = crc32fast::hash(&s[..at + 17]);
                s[at + 17..at + 21].copy_from_slice(&crc.to_le_bytes());
            }
            break;
        }
    }
    s
}

/// Snapshot streams (`src/crdt/snapshot.rs`, as `src/snapshot/` loads them
/// from disk and a link receives them from a peer). Mode bit 0 recomputes
/// every CRC and, if only the digest is then wrong, the digest too, so
/// fuzzing reaches every entry decoder and a full decode.
///
/// Properties: [`snap::read_header`] agrees with the full decode; a decoded
/// state encodes to a stream that decodes to the same header and re-encodes
/// to the same bytes.
pub fn snapshot(data: &[u8]) {
    let (m, rest) = mode(data);
    let mut input = rest.to_vec();
    if m & 1 != 0 {
        input = fix_snapshot(&input, None);
        if let Err(snap::SnapshotError::DigestMismatch { computed, .. }) =
            snap::decode(input.as_slice())
        {
            input = fix_snapshot(&input, Some(computed));
        }
    }
    let Ok((state, header)) = snap::decode_with_header(input.as_slice()) else {
        return;
    };
    let read = snap::read_header(input.as_slice()).expect("header of a valid snapshot");
    assert_eq!(read, header);
    assert_eq!(state.digest(), header.digest);
    let mut bytes = Vec::new();
    snap::encode(&state.freeze(), &mut bytes).expect("encode to memory");
    let (again, header2) =
        snap::decode_with_header(bytes.as_slice()).expect("an encoded snapshot decodes");
    assert_eq!(header2, header, "snapshot round trip");
    let mut bytes2 = Vec::new();
    snap::encode(&again.freeze(), &mut bytes2).expect("encode to memory");
    assert_eq!(bytes2, bytes, "snapshot encoding is a fixed point");
}

// ---------------------------------------------------------------- backups

/// The bytes of a manifest whose CRC line is recomputed: the input up to
/// its last line (which should be the CRC line) plus a correct CRC line.
fn fix_manifest(input: &[u8]) -> Vec<u8> {
    let body_end = match input.strip_suffix(b"\n") {
        Some(b) => b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1),
        None => input.len(),
    };
    let mut out = input[..body_end].to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(format!("# manifest-crc32 {crc:08x}\n").as_bytes());
    out
}

/// Checks a manifest that parsed: it prints back to text that parses to it.
fn check_manifest(m: &Manifest) {
    let text = m.to_text();
    let again = Manifest::parse(text.as_bytes()).expect("a printed manifest parses");
    assert_eq!(&again, m, "manifest round trip");
    assert_eq!(again.to_text(), text);
    let _ = (m.vv(), m.snapshot_file(), m.total_size());
}

/// Backup manifests (`src/backup/manifest.rs`). Mode bit 0 replaces the
/// last line with a correct CRC line. Property: a parsed manifest prints
/// back to text that parses to the same manifest.
pub fn manifest(data: &[u8]) {
    let (m, rest) = mode(data);
    let input = if m & 1 != 0 {
        fix_manifest(rest)
    } else {
        rest.to_vec()
    };
    if let Ok(parsed) = Manifest::parse(&input) {
        check_manifest(&parsed);
    }
}

/// Recomputes an archive's header CRC and its trailer (length and CRC),
/// reading its structure as far as it holds.
fn fix_archive(input: &[u8]) -> Vec<u8> {
    let mut s = input.to_vec();
    let Some(len) = s
        .get(9..13)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return s;
    };
    let at = 13 + len as usize;
    if s.len() < at + 8 {
        return s;
    }
    let crc = crc32fast::hash(&s[..at]);
    s[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    let count = u32::from_le_bytes([s[at + 4], s[at + 5], s[at + 6], s[at + 7]]);
    let mut at = at + 8;
    for _ in 0..count.min(64) {
        let Some(n) = s
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        else {
            return s;
        };
        let Some(size) = s.get(at + 2 + n..at + 10 + n) else {
            return s;
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(size);
        let content = at + 14 + n;
        let Some(end) = usize::try_from(u64::from_le_bytes(b))
            .ok()
            .and_then(|size| content.checked_add(size))
            .filter(|&e| e <= s.len())
        else {
            return s;
        };
        let crc = crc32fast::hash(&s[content..end]);
        s[at + 10 + n..at + 14 + n].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    if s.len() >= at + 20 && s[at..at + 8] == crate::backup::archive::TRAILER_MAGIC {
        s[at + 8..at + 16].copy_from_slice(&(at as u64).to_le_bytes());
        let crc = crc32fast::hash(&s[..at + 16]);
        s[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    s
}

/// A file read back from an archive.
type ArchivedContent = (String, u64, u32, Vec<u8>);

/// Reads a whole archive as `braid-backup verify` does; `None` if it is
/// invalid anywhere.
fn read_archive(bytes: &[u8]) -> Option<(Vec<u8>, Vec<ArchivedContent>)> {
    let (mut a, manifest) = ArchiveReader::open(bytes).ok()?;
    if let Ok(m) = Manifest::parse(&manifest) {
        check_manifest(&m);
    }
    let mut files = Vec::new();
    while let Some(f) = a.next_file().ok()? {
        let mut content = Vec::new();
        // Grows only with the bytes actually there, whatever `size` says.
        a.content(f.size).read_to_end(&mut content).ok()?;
        if content.len() as u64 != f.size || crc32fast::hash(&content) != f.crc {
            return None;
        }
        files.push((f.name, f.size, f.crc, content));
    }
    a.finish().ok()?;
    Some((manifest, files))
}

/// Single-file backup archives (`src/backup/archive.rs`) and the manifest
/// inside. Mode bit 0 recomputes the header CRC, every file CRC and the
/// trailer. Property: an archive that reads whole is rewritten by
/// [`ArchiveWriter`] to exactly its bytes.
pub fn archive(data: &[u8]) {
    let (m, rest) = mode(data);
    let input = if m & 1 != 0 {
        fix_archive(rest)
    } else {
        rest.to_vec()
    };
    let Some((manifest, files)) = read_archive(&input) else {
        return;
    };
    let count = u32::try_from(files.len()).expect("at most MAX_FILES");
    let write = || -> io::Result<Vec<u8>> {
        let mut w = ArchiveWriter::new(Vec::new(), &manifest, count)?;
        for (name, size, crc, content) in &files {
            w.file(name, *size, *crc, content.as_slice())?;
        }
        Ok(w.finish()?.0)
    };
    assert_eq!(
        write().expect("rewrite to memory"),
        input,
        "archive round trip"
    );
}

/// The RESP2 encoding of a reply, as a server sends it.
fn reply_bytes(r: &crate::backup::resp::Reply, out: &mut Vec<u8>) {
    use crate::backup::resp::Reply;
    match r {
        Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                reply_bytes(i, out);
            }
        }
    }
}

/// Replies `braid-backup` reads from the server it backs up
/// (`src/backup/resp.rs`): the input is a stream of replies. Property:
/// each reply read, encoded again, reads back to the same reply.
pub fn backup_reply(data: &[u8]) {
    use crate::backup::resp::read_reply;
    let mut stream = data;
    while let Ok(reply) = read_reply(&mut stream, 0) {
        let mut again = Vec::new();
        reply_bytes(&reply, &mut again);
        let back = read_reply(&mut again.as_slice(), 0).expect("an encoded reply reads");
        assert_eq!(back, reply, "reply round trip");
    }
}

// ---------------------------------------------------------------- config

/// The configuration file (`src/config.rs`): TOML, then validation, as the
/// server does at start. Property: parsing is deterministic. (No encoder.)
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Config::from_toml(text);
    if let Ok(c) = &parsed {
        let _ = c.validate();
        assert_eq!(Config::from_toml(text).as_ref(), Ok(c));
    }
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the regression test and the seed generator.
pub const TARGETS: &[(&str, Target)] = &[
    ("resp_parse", resp_parse),
    ("op_codec", op_codec),
    ("oplog_record", oplog_record),
    ("segment", segment),
    ("segment_lz4", segment_lz4),
    ("message", message),
    ("snapshot", snapshot),
    ("manifest", manifest),
    ("archive", archive),
    ("backup_reply", backup_reply),
    ("config", config),
];

/// Valid inputs per target, to seed the fuzzer's corpus: what Braid itself
/// writes, so mutations start deep in each decoder.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let ops = sample_ops();
    out.push(("resp_parse", b"\x00*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()));
    out.push((
        "resp_parse",
        b"\x01SET k \"a\\x41 b\" 'c'\r\nPING\r\n".to_vec(),
    ));
    out.push((
        "resp_parse",
        b"\x02*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*0\r\n\r\n".to_vec(),
    ));
    let record_seed = |run: &[Operation]| {
        let mut rec = Vec::new();
        encode_record(run, &mut rec);
        let mut r = vec![7u8];
        r.extend_from_slice(&record_key(run[0].origin, run[0].seq));
        r.extend_from_slice(&rec);
        ("oplog_record", r)
    };
    for op in &ops {
        let bytes = encode_op_to_vec(op);
        out.push(("op_codec", bytes.clone()));
        out.push(record_seed(std::slice::from_ref(op)));
    }
    // Records of several operations: each origin's operations in order.
    let mut by_origin = ops.clone();
    by_origin.sort_by_key(|op| (op.origin, op.seq));
    crate::oplog::record::encode_records(&by_origin, |k, v| {
        let mut r = vec![7u8];
        r.extend_from_slice(k);
        r.extend_from_slice(v);
        out.push(("oplog_record", r));
    });
    for compression in [Compression::Raw, Compression::Lz4] {
        let (seg, _) = encode_segment(&ops, compression);
        let mut s = vec![1u8];
        s.extend_from_slice(&seg);
        out.push(("segment", s));
    }
    let (raw_seg, _) = encode_segment(&ops, Compression::Raw);
    let mut s = vec![1u8];
    s.extend_from_slice(&raw_seg);
    out.push(("segment_lz4", s));
    for msg in sample_messages(&raw_seg) {
        out.push(("message", msg.encode()));
    }
    let state = sample_state(&ops);
    let mut snapshot = vec![1u8];
    snap::encode(&state.freeze(), &mut snapshot).expect("encode to memory");
    out.push(("snapshot", snapshot.clone()));
    let manifest = sample_manifest(&state);
    let mut m = vec![1u8];
    m.extend_from_slice(manifest.as_bytes());
    out.push(("manifest", m));
    let mut w = ArchiveWriter::new(vec![1u8], manifest.as_bytes(), 1).expect("to memory");
    let body = &snapshot[1..];
    w.file(
        &sample_manifest_struct(&state).snapshot,
        body.len() as u64,
        crc32fast::hash(body),
        body,
    )
    .expect("to memory");
    out.push(("archive", w.finish().expect("to memory").0));
    out.push((
        "backup_reply",
        b"+OK\r\n$12\r\n# Server\r\na:1\r\n*3\r\n:1\r\n$-1\r\n*1\r\n-ERR x\r\n".to_vec(),
    ));
    out.push(("config", SAMPLE_CONFIG.as_bytes().to_vec()));
    out
}

const SAMPLE_CONFIG: &str = r#"bind = "127.0.0.1"
port = 7379
data_dir = "./braid-data"
region = "us"
region_id = 1
fsync = "everysec"
maxmemory = "100mb"
proto_max_bulk_len = "512mb"
client_query_buffer_limit = "1gb"
log_format = "json"

[replication]
listen = "0.0.0.0:7380"
advertise = "10.0.0.1:7380"
max_segment_bytes = "1mb"
compress = true

[[replication.peers]]
name = "eu"
id = 2
addr = "10.0.0.2:7380"
"#;

/// Operations of every effect kind, from two regions with causal links.
fn sample_ops() -> Vec<Operation> {
    use crate::crdt::{Decimal, Intent, RegionId, Replica, TtlChange};
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let dec = |s: &str| Decimal::parse(s.as_bytes());
    let mut us = Replica::new(RegionId(1));
    let mut eu = Replica::new(RegionId(2));
    let t0 = 1_700_000_000_000;
    let mut intents = vec![
        (
            "s",
            Intent::Set {
                value: b("v"),
                ttl: TtlChange::Keep,
            },
        ),
        (
            "t",
            Intent::Set {
                value: b("w"),
                ttl: TtlChange::ExpireAt(t0 + 9_000),
            },
        ),
        ("s", Intent::Append(b("x"))),
        (
            "s",
            Intent::SetRange {
                offset: 3,
                data: b("yz"),
            },
        ),
        ("n", Intent::IncrBy(5)),
        ("set", Intent::SAdd(vec![b("a"), b("b")])),
        ("set", Intent::SRem(vec![b("a")])),
        ("h", Intent::HSet(vec![(b("f"), b("1")), (b("g"), b("x"))])),
        ("h", Intent::HIncrBy(b("f"), 2)),
        ("h", Intent::HDel(vec![b("g")])),
        (
            "z",
            Intent::ZAdd(vec![(b("a"), 1.5), (b("b"), f64::NEG_INFINITY)]),
        ),
        ("z", Intent::ZIncrBy(b("a"), 0.25)),
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
                index: 1,
                value: b("q"),
            },
        ),
        (
            "l",
            Intent::LRem {
                count: 0,
                value: b("b"),
            },
        ),
        ("l", Intent::LTrim { start: 0, stop: 2 }),
        ("l", Intent::RPop(1)),
        ("s", Intent::ExpireAt(t0 + 60_000)),
        ("s", Intent::Persist),
        ("n", Intent::Del),
    ];
    if let (Some(f), Some(h)) = (dec("1.5"), dec("-0.125")) {
        intents.push(("f", Intent::IncrByFloat(f)));
        intents.push(("h", Intent::HIncrByFloat(b("e"), h)));
    }
    // FLUSHALL first, so the state built from these operations is not empty.
    let flush = us.flush_all(t0 - 1);
    let _ = eu.receive(&flush, t0 - 1);
    let mut ops = vec![flush];
    for (i, (key, intent)) in intents.into_iter().enumerate() {
        let (from, to) = if i % 3 == 1 {
            (&mut eu, &mut us)
        } else {
            (&mut us, &mut eu)
        };
        if let Ok(Some(op)) = from.write(b(key), intent, t0 + i as u64) {
            // The other region applies it, so later writes depend on it.
            let _ = to.receive(&op, t0 + i as u64);
            ops.push(op);
        }
    }
    if let Ok(Some(op)) = eu.write(b("l"), Intent::RPush(vec![b("e")]), t0 + 1_001) {
        ops.push(op);
    }
    ops
}

fn sample_state(ops: &[Operation]) -> crate::crdt::State {
    let mut state = crate::crdt::State::new();
    for op in ops {
        let _ = state.apply(op);
    }
    state
}

fn sample_manifest_struct(state: &crate::crdt::State) -> Manifest {
    use crate::backup::manifest::{digest_hex, format_utc, vv_text};
    let vv = state.version_vector().clone();
    let ms = 1_700_000_000_123;
    Manifest {
        format_version: crate::backup::BACKUP_FORMAT_VERSION,
        created_unix_ms: ms,
        created: format_utc(ms),
        region: "us".into(),
        region_id: 1,
        source: "127.0.0.1:7379".into(),
        braid_version: "0.1.0".into(),
        version_vector: vv_text(&vv),
        digest: digest_hex(state.digest()),
        key_count: 0,
        snapshot: format!("snapshot-{:020}-{ms}.braid", vv.total()),
        files: vec![crate::backup::FileEntry {
            name: format!("snapshot-{:020}-{ms}.braid", vv.total()),
            size: 1,
            crc32: "0badf00d".into(),
        }],
    }
}

fn sample_manifest(state: &crate::crdt::State) -> String {
    sample_manifest_struct(state).to_text()
}

fn sample_messages(segment: &[u8]) -> Vec<Message> {
    use crate::replication::message::Greeting;
    let vv =
        VersionVector::from_entries([(crate::crdt::RegionId(1), 7), (crate::crdt::RegionId(3), 2)]);
    let greeting = Greeting {
        version: crate::replication::message::PROTOCOL_VERSION,
        region: crate::crdt::RegionId(1),
        name: "us".into(),
        advertise: "10.0.0.1:7380".into(),
        boot: 0x1234_5678_9abc,
        durable: vv.clone(),
    };
    vec![
        Message::Hello(greeting.clone()),
        Message::Welcome(greeting),
        Message::Segment {
            id: 9,
            bytes: Bytes::copy_from_slice(segment),
        },
        Message::Ack {
            id: 9,
            durable: vv.clone(),
        },
        Message::Refuse {
            reason: "wrong region".into(),
        },
        Message::SnapshotBegin {
            len: 4096,
            covers: vv,
        },
        Message::SnapshotChunk {
            bytes: Bytes::from_static(b"BRAIDSNP"),
        },
        Message::SnapshotEnd,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds must be valid encodings, or the fuzzer would start shallow.
    #[test]
    fn fuzz_seeds_decode() {
        let seeds = seeds();
        let limits = SegmentLimits::default();
        for (name, data) in &seeds {
            let rest = data.get(1..).unwrap_or_default();
            let ok = match *name {
                "resp_parse" => matches!(parse_request(rest, &Limits::default()), Ok(Some(_))),
                "op_codec" => decode_op(data).is_ok(),
                "oplog_record" => decode_record(&rest[..10], &rest[10..]).is_ok(),
                "segment" | "segment_lz4" => decode_segment(rest, &limits).is_ok(),
                "message" => Message::decode(Bytes::copy_from_slice(&data[4..])).is_ok(),
                "snapshot" => snap::decode(rest).is_ok_and(|s| s.key_count() > 3),
                "manifest" => Manifest::parse(rest).is_ok(),
                "archive" => read_archive(rest).is_some(),
                "backup_reply" => crate::backup::resp::read_reply(&mut data.as_slice(), 0).is_ok(),
                "config" => std::str::from_utf8(data)
                    .ok()
                    .and_then(|t| Config::from_toml(t).ok())
                    .is_some_and(|c| c.validate().is_ok()),
                other => panic!("seed for unknown target {other}"),
            };
            assert!(ok, "seed for {name} does not decode");
        }
        let names: std::collections::BTreeSet<_> = seeds.iter().map(|s| s.0).collect();
        assert_eq!(names.len(), TARGETS.len());
    }

    /// Every target accepts junk, the empty input and truncated seeds.
    #[test]
    fn fuzz_targets_survive_truncated_seeds() {
        for (name, data) in seeds() {
            let target = TARGETS
                .iter()
                .find(|t| t.0 == name)
                .map(|t| t.1)
                .expect("known target");
            target(&[]);
            for cut in (0..data.len()).step_by(7) {
                target(&data[..cut]);
            }
        }
    }
}
