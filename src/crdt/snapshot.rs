//! The snapshot encoding: a [`FrozenState`] written as one self-checking
//! stream, and read back into a [`State`] indistinguishable from the one
//! frozen, metadata included (counter bases and what they cover,
//! increments, folded sums, tags, list positions, expiry entries, hidden
//! type-conflict contents, version vector, max HLC).
//!
//! A region snapshots so that restarting, or bringing up a new region,
//! does not replay the whole op log. The stream is written in chunks of about
//! [`CHUNK_TARGET`] bytes, each with its own CRC-32, so that a writer needs
//! only one chunk of memory beyond the frozen state and a reader can name the
//! chunk that is damaged. The exact layout is in `storage-format.md`,
//! section "Snapshots".
//!
//! Pure: any [`Write`] in, any [`Read`] out, no files (those are
//! [`crate::snapshot`]'s business). Decoding treats its input as hostile: it
//! never panics, allocates only what the bytes actually read justify, checks
//! every CRC, the key count and the digest, and refuses trailing bytes.

use bytes::Bytes;
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::codec::{self, DecodeError, Reader};
use super::entry::Entry;
use super::hlc::Hlc;
use super::state::{FrozenState, State};
use super::vv::VersionVector;

/// First bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"BRAIDSNP";
/// Version of the snapshot format, the byte after the magic. Bumped on any
/// change of layout, including of the content encodings it embeds.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 1;
/// A chunk is closed once its payload reaches this many bytes (a chunk is
/// larger only by its last entry).
pub const CHUNK_TARGET: usize = 64 * 1024;
/// Largest header a reader accepts: a version vector of every possible
/// region (65 536 × 13 bytes) fits with room to spare.
pub const MAX_HEADER_LEN: u32 = 1 << 20;

/// Frame marker: a chunk of entries follows.
const MARKER_CHUNK: u8 = 0x01;
/// Frame marker: the footer follows.
const MARKER_END: u8 = 0x00;
/// Fewest bytes an entry takes (key length, content count, expiry count):
/// bounds a chunk's declared entry count by its payload length.
const MIN_ENTRY: u32 = 3;
/// Offset of the header body: magic, version, header length.
const HEADER_AT: u64 = 8 + 1 + 4;

/// What the header says about a snapshot: enough to choose one (and to
/// resume a clock) without reading the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Version vector of the frozen state: which operations it includes.
    pub version_vector: VersionVector,
    /// Highest HLC of any operation it includes.
    pub max_hlc: Hlc,
    /// Number of entries (keys, visible or not) it holds.
    pub key_count: u64,
    /// The state's convergence digest, re-checked on decode.
    pub digest: u128,
}

/// What [`encode`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeSummary {
    /// Bytes written, footer included.
    pub bytes: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Entries written.
    pub keys: u64,
}

/// Why a stream is not a valid snapshot. Offsets count from the stream's
/// first byte (the magic at offset 0); chunks are numbered from 0.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading failed (not for lack of bytes).
    #[error("I/O error reading at byte offset {offset}: {source}")]
    Io {
        /// Offset of the read that failed.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The stream ended inside a field.
    #[error("truncated at byte offset {offset}: {what} needs more bytes than remain")]
    Truncated {
        /// Offset of the field that could not be read whole.
        offset: u64,
        /// The field.
        what: &'static str,
    },
    /// The first eight bytes are not [`MAGIC`].
    #[error("not a Braid snapshot: magic bytes {found:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// A format version this build cannot read.
    #[error("unsupported snapshot format version {found} (this build reads version {SNAPSHOT_FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The header length is above [`MAX_HEADER_LEN`].
    #[error("header length {declared} at byte offset 9 exceeds the {MAX_HEADER_LEN}-byte limit")]
    HeaderTooLarge {
        /// The declared length.
        declared: u32,
    },
    /// The header's CRC does not match its bytes.
    #[error("header CRC mismatch at byte offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderCrc {
        /// Offset of the stored CRC.
        offset: u64,
        /// CRC stored.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The header's CRC matches but its fields are invalid.
    #[error("malformed header: {source}")]
    Header {
        /// What is wrong, with the offset in the stream.
        #[source]
        source: DecodeError,
    },
    /// A frame starts with neither the chunk nor the end marker.
    #[error("unknown frame marker 0x{found:02x} at byte offset {offset} (where chunk {chunk} or the footer should start)")]
    UnknownMarker {
        /// Offset of the marker.
        offset: u64,
        /// The byte found.
        found: u8,
        /// Index the next chunk would have had.
        chunk: u64,
    },
    /// A chunk's frame header is impossible (checked before its payload is read).
    #[error("chunk {chunk} at byte offset {offset}: {reason}")]
    BadChunk {
        /// The chunk.
        chunk: u64,
        /// Offset of its marker.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A chunk's CRC does not match its bytes.
    #[error("chunk {chunk} at byte offset {offset}: CRC mismatch, stored {stored:#010x}, computed {computed:#010x}")]
    ChunkCrc {
        /// The chunk.
        chunk: u64,
        /// Offset of its marker.
        offset: u64,
        /// CRC stored.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// A chunk's CRC matches but an entry in it is invalid.
    #[error("chunk {chunk}: {source}")]
    Entry {
        /// The chunk.
        chunk: u64,
        /// What is wrong, with the offset in the stream.
        #[source]
        source: DecodeError,
    },
    /// A key appears twice.
    #[error("chunk {chunk}: duplicate key {key:?} at byte offset {offset}")]
    DuplicateKey {
        /// The chunk.
        chunk: u64,
        /// Offset of the second occurrence.
        offset: u64,
        /// The key.
        key: Bytes,
    },
    /// The chunks hold more entries than the header announced.
    #[error(
        "chunk {chunk} at byte offset {offset} takes the entry count above the header's {declared}"
    )]
    TooManyKeys {
        /// The chunk.
        chunk: u64,
        /// Offset of its marker.
        offset: u64,
        /// The header's key count.
        declared: u64,
    },
    /// The footer's CRC (of everything before it) does not match.
    #[error("footer CRC mismatch at byte offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    FooterCrc {
        /// Offset of the stored CRC.
        offset: u64,
        /// CRC stored.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// Header, footer and chunks disagree on the number of entries.
    #[error("key count mismatch: header {header}, footer {footer}, chunks hold {decoded}")]
    KeyCount {
        /// The header's count.
        header: u64,
        /// The footer's count.
        footer: u64,
        /// Entries decoded.
        decoded: u64,
    },
    /// The footer's chunk count is not the number of chunks read.
    #[error("chunk count mismatch: footer {footer}, stream holds {decoded}")]
    ChunkCount {
        /// The footer's count.
        footer: u64,
        /// Chunks read.
        decoded: u64,
    },
    /// The digest of the decoded entries is not the header's.
    #[error("digest mismatch: header {header:#034x}, recomputed {computed:#034x}")]
    DigestMismatch {
        /// The header's digest.
        header: u128,
        /// Digest of the decoded state.
        computed: u128,
    },
    /// Bytes follow the footer.
    #[error("trailing bytes after the footer, from byte offset {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: u64,
    },
}

/// Writes `frozen` to `out` as a snapshot stream and flushes it. Shards are
/// written in order and keys sorted within each shard, so equal states
/// (same keys, same per-key contents and orders) give equal bytes. Memory:
/// one chunk buffer and one shard's key list, beyond the frozen state.
pub fn encode<W: Write>(frozen: &FrozenState, out: W) -> io::Result<EncodeSummary> {
    let mut out = Output {
        w: out,
        crc: crc32fast::Hasher::new(),
        written: 0,
    };
    let header = SnapshotHeader {
        version_vector: frozen.version_vector().clone(),
        max_hlc: frozen.max_hlc(),
        key_count: frozen.key_count() as u64,
        digest: frozen.digest(),
    };
    out.put(&encode_header(&header))?;

    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_TARGET + CHUNK_TARGET / 4);
    let mut in_chunk: u32 = 0;
    let mut chunks: u64 = 0;
    let mut keys: u64 = 0;
    let mut sorted: Vec<(&Bytes, &Arc<Entry>)> = Vec::new();
    for shard in frozen.shards() {
        sorted.clear();
        sorted.extend(shard.iter());
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (key, entry) in &sorted {
            codec::put_bytes(&mut chunk, key);
            entry.encode(&mut chunk);
            in_chunk += 1;
            keys += 1;
            if chunk.len() >= CHUNK_TARGET {
                write_chunk(&mut out, &chunk, in_chunk)?;
                chunks += 1;
                chunk.clear();
                in_chunk = 0;
            }
        }
    }
    if in_chunk > 0 {
        write_chunk(&mut out, &chunk, in_chunk)?;
        chunks += 1;
    }
    if keys != header.key_count {
        return Err(io::Error::other("frozen state changed while encoding"));
    }
    let mut footer = [0u8; 17];
    footer[0] = MARKER_END;
    footer[1..9].copy_from_slice(&keys.to_le_bytes());
    footer[9..17].copy_from_slice(&chunks.to_le_bytes());
    out.put(&footer)?;
    let crc = out.crc.clone().finalize();
    out.put(&crc.to_le_bytes())?;
    out.w.flush()?;
    Ok(EncodeSummary {
        bytes: out.written,
        chunks,
        keys,
    })
}

/// Decodes a snapshot stream into the state it was made from, checking
/// everything (see [`SnapshotError`]). Reads `input` to its end.
pub fn decode<R: Read>(input: R) -> Result<State, SnapshotError> {
    decode_with_header(input).map(|(state, _)| state)
}

/// Reads and checks only the header (magic, version, header CRC): what a
/// snapshot holds, without reading its entries.
pub fn read_header<R: Read>(input: R) -> Result<SnapshotHeader, SnapshotError> {
    let mut input = Input::new(input);
    input.header()
}

/// [`decode`], also returning the header.
pub fn decode_with_header<R: Read>(input: R) -> Result<(State, SnapshotHeader), SnapshotError> {
    let mut input = Input::new(input);
    let header = input.header()?;
    let mut state = State::restoring(header.version_vector.clone(), header.max_hlc);
    let mut payload: Vec<u8> = Vec::new();
    let mut chunk: u64 = 0;
    let mut decoded: u64 = 0;
    loop {
        let marker_at = input.offset;
        let [marker] = input.array::<1>("frame marker")?;
        match marker {
            MARKER_CHUNK => {}
            MARKER_END => break,
            found => {
                return Err(SnapshotError::UnknownMarker {
                    offset: marker_at,
                    found,
                    chunk,
                })
            }
        }
        let entries = u32::from_le_bytes(input.array("chunk entry count")?);
        let len = u32::from_le_bytes(input.array("chunk length")?);
        let bad = |reason| SnapshotError::BadChunk {
            chunk,
            offset: marker_at,
            reason,
        };
        if entries == 0 {
            return Err(bad("no entries"));
        }
        if entries > len / MIN_ENTRY {
            return Err(bad("more entries than its length can hold"));
        }
        if decoded + u64::from(entries) > header.key_count {
            return Err(SnapshotError::TooManyKeys {
                chunk,
                offset: marker_at,
                declared: header.key_count,
            });
        }
        let payload_at = input.offset;
        input.payload(len, &mut payload)?;
        let stored = u32::from_le_bytes(input.array("chunk CRC")?);
        let mut h = crc32fast::Hasher::new();
        h.update(&[marker]);
        h.update(&entries.to_le_bytes());
        h.update(&len.to_le_bytes());
        h.update(&payload);
        let computed = h.finalize();
        if stored != computed {
            return Err(SnapshotError::ChunkCrc {
                chunk,
                offset: marker_at,
                stored,
                computed,
            });
        }
        let shift = |e: DecodeError| SnapshotError::Entry {
            chunk,
            source: e.shifted(to_usize(payload_at)),
        };
        let mut r = Reader::new(&payload);
        for _ in 0..entries {
            let key_at = r.pos();
            let key = r.owned("key").map_err(shift)?;
            let entry = Entry::decode(&mut r, &key).map_err(shift)?;
            if !state.insert_restored(key.clone(), entry) {
                return Err(SnapshotError::DuplicateKey {
                    chunk,
                    offset: payload_at + key_at as u64,
                    key,
                });
            }
        }
        if r.remaining() > 0 {
            return Err(shift(DecodeError::TrailingBytes {
                offset: r.pos(),
                count: r.remaining(),
            }));
        }
        decoded += u64::from(entries);
        chunk += 1;
    }
    let footer_keys = u64::from_le_bytes(input.array("footer key count")?);
    let footer_chunks = u64::from_le_bytes(input.array("footer chunk count")?);
    let computed = input.crc.clone().finalize();
    let crc_at = input.offset;
    let stored = u32::from_le_bytes(input.array("footer CRC")?);
    if stored != computed {
        return Err(SnapshotError::FooterCrc {
            offset: crc_at,
            stored,
            computed,
        });
    }
    if footer_keys != header.key_count || decoded != header.key_count {
        return Err(SnapshotError::KeyCount {
            header: header.key_count,
            footer: footer_keys,
            decoded,
        });
    }
    if footer_chunks != chunk {
        return Err(SnapshotError::ChunkCount {
            footer: footer_chunks,
            decoded: chunk,
        });
    }
    input.expect_end()?;
    if state.digest() != header.digest {
        return Err(SnapshotError::DigestMismatch {
            header: header.digest,
            computed: state.digest(),
        });
    }
    Ok((state, header))
}

/// Magic, version, header length, header body and header CRC.
fn encode_header(h: &SnapshotHeader) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    codec::put_vv(&mut body, &h.version_vector);
    codec::put_varint(&mut body, h.max_hlc.0);
    codec::put_varint(&mut body, h.key_count);
    body.extend_from_slice(&h.digest.to_le_bytes());
    let mut out = Vec::with_capacity(HEADER_AT as usize + body.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.push(SNAPSHOT_FORMAT_VERSION);
    // A version vector holds at most 65 536 entries: far below u32::MAX.
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Marker, entry count, length, payload, CRC.
fn write_chunk<W: Write>(out: &mut Output<W>, payload: &[u8], entries: u32) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a single entry exceeds the 4 GiB chunk limit of snapshot format 1",
        )
    })?;
    let mut frame = [0u8; 9];
    frame[0] = MARKER_CHUNK;
    frame[1..5].copy_from_slice(&entries.to_le_bytes());
    frame[5..9].copy_from_slice(&len.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&frame);
    h.update(payload);
    out.put(&frame)?;
    out.put(payload)?;
    out.put(&h.finalize().to_le_bytes())
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The output stream, with the running CRC and byte count the footer needs.
struct Output<W> {
    w: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Output<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// The input stream, with the offset errors name and the running CRC the
/// footer is checked against.
struct Input<R> {
    r: R,
    offset: u64,
    crc: crc32fast::Hasher,
}

impl<R: Read> Input<R> {
    fn new(r: R) -> Self {
        Input {
            r,
            offset: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    fn io_error(&self, at: u64, what: &'static str, e: io::Error) -> SnapshotError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SnapshotError::Truncated { offset: at, what }
        } else {
            SnapshotError::Io {
                offset: at,
                source: e,
            }
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        let mut buf = [0u8; N];
        let at = self.offset;
        self.r
            .read_exact(&mut buf)
            .map_err(|e| self.io_error(at, what, e))?;
        self.crc.update(&buf);
        self.offset += N as u64;
        Ok(buf)
    }

    /// Reads `len` bytes into `buf`. The buffer grows only as bytes
    /// actually arrive, so a lying length costs no more than the input.
    fn payload(&mut self, len: u32, buf: &mut Vec<u8>) -> Result<(), SnapshotError> {
        buf.clear();
        let at = self.offset;
        let n = (&mut self.r)
            .take(u64::from(len))
            .read_to_end(buf)
            .map_err(|e| self.io_error(at, "chunk payload", e))?;
        if n < len as usize {
            return Err(SnapshotError::Truncated {
                offset: at,
                what: "chunk payload",
            });
        }
        self.crc.update(buf);
        self.offset += u64::from(len);
        Ok(())
    }

    fn header(&mut self) -> Result<SnapshotHeader, SnapshotError> {
        let magic = self.array::<8>("magic")?;
        if magic != MAGIC {
            return Err(SnapshotError::BadMagic { found: magic });
        }
        let [version] = self.array::<1>("format version")?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { found: version });
        }
        let len = u32::from_le_bytes(self.array("header length")?);
        if len > MAX_HEADER_LEN {
            return Err(SnapshotError::HeaderTooLarge { declared: len });
        }
        let mut body = Vec::new();
        let body_at = self.offset;
        self.payload(len, &mut body).map_err(|e| match e {
            SnapshotError::Truncated { offset, .. } => SnapshotError::Truncated {
                offset,
                what: "header",
            },
            e => e,
        })?;
        let computed = self.crc.clone().finalize();
        let crc_at = self.offset;
        let stored = u32::from_le_bytes(self.array("header CRC")?);
        if stored != computed {
            return Err(SnapshotError::HeaderCrc {
                offset: crc_at,
                stored,
                computed,
            });
        }
        let shift = |e: DecodeError| SnapshotError::Header {
            source: e.shifted(to_usize(body_at)),
        };
        let mut r = Reader::new(&body);
        let version_vector = r.vv().map_err(shift)?;
        let max_hlc = Hlc(r.varint("max hlc").map_err(shift)?);
        let key_count = r.varint("key count").map_err(shift)?;
        let digest_at = r.pos();
        let digest: [u8; 16] = r
            .take(16, "digest")
            .map_err(shift)?
            .try_into()
            .map_err(|_| {
                shift(DecodeError::Truncated {
                    offset: digest_at,
                    what: "digest",
                })
            })?;
        if r.remaining() > 0 {
            return Err(shift(DecodeError::TrailingBytes {
                offset: r.pos(),
                count: r.remaining(),
            }));
        }
        Ok(SnapshotHeader {
            version_vector,
            max_hlc,
            key_count,
            digest: u128::from_le_bytes(digest),
        })
    }

    /// Refuses any byte after the footer.
    fn expect_end(&mut self) -> Result<(), SnapshotError> {
        let mut one = [0u8; 1];
        loop {
            match self.r.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(SnapshotError::TrailingBytes {
                        offset: self.offset,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(SnapshotError::Io {
                        offset: self.offset,
                        source: e,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Intent, RegionId, Replica, TtlChange};

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The worked example of `storage-format.md`: region 1's first
    /// operation, `SET k v` at 1 700 000 000 000 ms.
    fn example() -> State {
        let mut r = Replica::new(RegionId(1));
        let set = Intent::Set {
            value: Bytes::from_static(b"v"),
            ttl: TtlChange::Persist,
        };
        r.write(Bytes::from_static(b"k"), set, 1_700_000_000_000)
            .expect("write");
        r.state
    }

    /// The example's bytes, one line per part, exactly as
    /// `storage-format.md` lists them.
    const DOC_EXAMPLE: [&str; 9] = [
        "42 52 41 49 44 53 4e 50 01 1d 00 00 00",
        "01 01 01 80 80 80 c0 d6 fc f3 c5 01 01",
        "b7 c2 41 b6 d4 11 00 a8 1b c6 48 3b 10 81 7e 29",
        "e4 97 5d 2c",
        "01 01 00 00 00 22 00 00 00",
        "01 6b 01 01 01 01 76 01 01 80 80 80 c0 d6 fc f3 c5 01 00 00 00",
        "01 01 01 80 80 80 c0 d6 fc f3 c5 01 00",
        "14 86 bb 37",
        "00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 1f 59 9c 46",
    ];

    #[test]
    fn worked_example_matches_storage_format_md() {
        let state = example();
        let mut out = Vec::new();
        let summary = encode(&state.freeze(), &mut out).expect("encode");
        println!("snapshot example: {}", hex(&out));
        assert_eq!(hex(&out), DOC_EXAMPLE.join(" "));
        assert_eq!(
            summary,
            EncodeSummary {
                bytes: 114,
                chunks: 1,
                keys: 1
            }
        );
        let doc = include_str!("../../storage-format.md");
        assert!(
            doc.contains(&DOC_EXAMPLE.join("\n")),
            "storage-format.md lacks the snapshot example"
        );
        let (back, header) = decode_with_header(&out[..]).expect("decode");
        assert_eq!(back.digest(), state.digest());
        assert_eq!(header.key_count, 1);
        assert_eq!(
            read_header(&out[..]).expect("header"),
            SnapshotHeader {
                version_vector: state.version_vector().clone(),
                max_hlc: state.max_hlc(),
                key_count: 1,
                digest: state.digest(),
            }
        );
    }

    /// Offsets inside chunks count from the start of the stream.
    #[test]
    fn entry_errors_name_chunk_and_stream_offset() {
        let mut out = Vec::new();
        encode(&example().freeze(), &mut out).expect("encode");
        // Make the content type byte (stream offset 58) unknown and fix the
        // chunk CRC and the file CRC so that only the entry is wrong.
        out[58] = 0x09;
        let chunk = 46..46 + 9 + 34;
        let crc = crc32fast::hash(&out[chunk.clone()]);
        out[chunk.end..chunk.end + 4].copy_from_slice(&crc.to_le_bytes());
        let n = out.len();
        let crc = crc32fast::hash(&out[..n - 4]);
        out[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let err = decode(&out[..]).expect_err("unknown content type");
        assert_eq!(
            err.to_string(),
            "chunk 0: unknown content type tag 0x09 at byte offset 58"
        );
    }
}
