//! The replication protocol's messages and their framing on a QUIC stream.
//!
//! Pure encoding and decoding; the async read and write helpers at the end
//! only move whole frames. A frame is `length: u32 LE` (of what follows),
//! `type: u8`, then the body (see `storage-format.md`, "Replication
//! protocol").

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::crdt::codec::{put_bytes, put_varint, put_vv, DecodeError, Reader};
use crate::crdt::{RegionId, VersionVector};

/// Newest version of the replication protocol this build speaks. Version 2
/// adds [`Message::Heartbeat`]; a link uses the lower of the two sides'
/// versions (see `storage-format.md`, "Replication protocol").
pub const PROTOCOL_VERSION: u64 = 2;

/// Oldest version this build still speaks (a peer not yet upgraded).
pub const MIN_PROTOCOL_VERSION: u64 = 1;

/// First version with heartbeats.
pub const HEARTBEAT_VERSION: u64 = 2;

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const SEGMENT: u8 = 3;
const ACK: u8 = 4;
const REFUSE: u8 = 5;
const SNAPSHOT_BEGIN: u8 = 6;
const SNAPSHOT_CHUNK: u8 = 7;
const SNAPSHOT_END: u8 = 8;
const HEARTBEAT: u8 = 9;

/// Longest region name or address text in a handshake.
const MAX_TEXT: usize = 255;

/// One message of the replication protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Opens a link (sent by the dialing side, which ships its log).
    Hello(Greeting),
    /// The accepting side's answer: who it is and what it holds.
    Welcome(Greeting),
    /// A segment of operations (see [`super::segment`]), numbered per link.
    Segment {
        /// Link-local number, echoed by the ack (round-trip time).
        id: u64,
        /// The encoded segment.
        bytes: Bytes,
    },
    /// The receiver persisted and applied segments up to `id`; `durable` is
    /// everything it holds durably now.
    Ack {
        /// The last segment handled.
        id: u64,
        /// The receiver's durable version vector.
        durable: VersionVector,
    },
    /// The link is refused (version mismatch, wrong identity); then closed.
    Refuse {
        /// Why, for the other side's log.
        reason: String,
    },
    /// A snapshot file follows in chunks (the peer needs operations the
    /// sender's log no longer holds): its length and version vector.
    SnapshotBegin {
        /// Total bytes of the snapshot file.
        len: u64,
        /// What it covers.
        covers: VersionVector,
    },
    /// The next bytes of the snapshot file.
    SnapshotChunk {
        /// File bytes.
        bytes: Bytes,
    },
    /// The snapshot is complete; segments resume after it.
    SnapshotEnd,
    /// Region `origin` had applied its own operations up to `seq` at
    /// wall-clock time `unix_ms` (protocol version 2; see
    /// [`crate::metrics::consistency`]).
    Heartbeat {
        /// The region the heartbeat is about (the sender, or a region whose
        /// heartbeat the sender passes on).
        origin: RegionId,
        /// Its own sequence, as applied there.
        seq: u64,
        /// Its wall clock then, Unix milliseconds.
        unix_ms: u64,
    },
}

/// What a region says about itself when a link opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// Protocol version spoken.
    pub version: u64,
    /// Region id.
    pub region: RegionId,
    /// Region name (its certificate must name it).
    pub name: String,
    /// Where to dial it back (empty: do not).
    pub advertise: String,
    /// Random per process start: a peer that sees it change knows the
    /// region restarted (and that its own link to it may be dead).
    pub boot: u64,
    /// Its durable version vector.
    pub durable: VersionVector,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The stream failed or closed mid-frame.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Unknown message type.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A malformed body.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// Text that is not UTF-8 or too long.
    #[error("malformed message: {0}")]
    Text(&'static str),
    /// Bytes after the end of a body.
    #[error("malformed message: {0} trailing bytes")]
    Trailing(usize),
}

impl Message {
    /// The frame: length, type, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        match self {
            Message::Hello(g) => {
                out.push(HELLO);
                put_greeting(&mut out, g);
            }
            Message::Welcome(g) => {
                out.push(WELCOME);
                put_greeting(&mut out, g);
            }
            Message::Segment { id, bytes } => {
                out.reserve(bytes.len() + 10);
                out.push(SEGMENT);
                put_varint(&mut out, *id);
                out.extend_from_slice(bytes);
            }
            Message::Ack { id, durable } => {
                out.push(ACK);
                put_varint(&mut out, *id);
                put_vv(&mut out, durable);
            }
            Message::Refuse { reason } => {
                out.push(REFUSE);
                let r = reason.as_bytes();
                put_bytes(&mut out, &r[..r.len().min(MAX_TEXT)]);
            }
            Message::SnapshotBegin { len, covers } => {
                out.push(SNAPSHOT_BEGIN);
                put_varint(&mut out, *len);
                put_vv(&mut out, covers);
            }
            Message::SnapshotChunk { bytes } => {
                out.reserve(bytes.len() + 1);
                out.push(SNAPSHOT_CHUNK);
                out.extend_from_slice(bytes);
            }
            Message::SnapshotEnd => out.push(SNAPSHOT_END),
            Message::Heartbeat {
                origin,
                seq,
                unix_ms,
            } => {
                out.push(HEARTBEAT);
                put_varint(&mut out, u64::from(origin.0));
                put_varint(&mut out, *seq);
                put_varint(&mut out, *unix_ms);
            }
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Decodes a frame's type and body (the length already stripped).
    pub fn decode(frame: Bytes) -> Result<Message, MessageError> {
        let Some(&kind) = frame.first() else {
            return Err(MessageError::Text("empty frame"));
        };
        let body = frame.slice(1..);
        let mut r = Reader::new(&body);
        let msg = match kind {
            HELLO => Message::Hello(greeting(&mut r)?),
            WELCOME => Message::Welcome(greeting(&mut r)?),
            SEGMENT => {
                let id = r.varint("segment id")?;
                let at = r.pos();
                return Ok(Message::Segment {
                    id,
                    bytes: body.slice(at..),
                });
            }
            ACK => Message::Ack {
                id: r.varint("ack id")?,
                durable: r.vv()?,
            },
            REFUSE => Message::Refuse {
                reason: text(&mut r, "refusal reason")?,
            },
            SNAPSHOT_BEGIN => Message::SnapshotBegin {
                len: r.varint("snapshot length")?,
                covers: r.vv()?,
            },
            SNAPSHOT_CHUNK => return Ok(Message::SnapshotChunk { bytes: body }),
            SNAPSHOT_END => Message::SnapshotEnd,
            HEARTBEAT => Message::Heartbeat {
                origin: RegionId(r.bounded("heartbeat origin", u64::from(u16::MAX))? as u16),
                seq: r.varint("heartbeat sequence")?,
                unix_ms: r.varint("heartbeat time")?,
            },
            other => return Err(MessageError::UnknownType(other)),
        };
        match r.remaining() {
            0 => Ok(msg),
            n => Err(MessageError::Trailing(n)),
        }
    }
}

fn put_greeting(out: &mut Vec<u8>, g: &Greeting) {
    put_varint(out, g.version);
    put_varint(out, u64::from(g.region.0));
    put_bytes(out, g.name.as_bytes());
    put_bytes(out, g.advertise.as_bytes());
    put_varint(out, g.boot);
    put_vv(out, &g.durable);
}

fn greeting(r: &mut Reader<'_>) -> Result<Greeting, MessageError> {
    let version = r.varint("protocol version")?;
    let region = r.bounded("region id", u64::from(u16::MAX))? as u16;
    Ok(Greeting {
        version,
        region: RegionId(region),
        name: text(r, "region name")?,
        advertise: text(r, "advertised address")?,
        boot: r.varint("boot id")?,
        durable: r.vv()?,
    })
}

fn text(r: &mut Reader<'_>, what: &'static str) -> Result<String, MessageError> {
    let b = r.bytes(what)?;
    if b.len() > MAX_TEXT {
        return Err(MessageError::Text("text field longer than 255 bytes"));
    }
    String::from_utf8(b.to_vec()).map_err(|_| MessageError::Text("text field is not UTF-8"))
}

/// Reads one frame; `Ok(None)` when the stream ended cleanly between frames.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: u64,
) -> Result<Option<Message>, MessageError> {
    let mut len = [0u8; 4];
    // End of stream is clean only before a frame's first byte.
    if r.read(&mut len[..1]).await? == 0 {
        return Ok(None);
    }
    r.read_exact(&mut len[1..]).await?;
    let len = u64::from(u32::from_le_bytes(len));
    if len > max_len {
        return Err(MessageError::TooLong { len, max: max_len });
    }
    // Grows as the bytes arrive: a peer that announces a long frame and
    // stalls holds no more memory than it sent.
    let mut frame = Vec::new();
    r.take(len).read_to_end(&mut frame).await?;
    if (frame.len() as u64) < len {
        return Err(MessageError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Message::decode(Bytes::from(frame)).map(Some)
}

/// Writes one frame.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> std::io::Result<()> {
    w.write_all(&m.encode()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(p: &[(u16, u64)]) -> VersionVector {
        VersionVector::from_entries(p.iter().map(|&(r, s)| (RegionId(r), s)))
    }

    fn all() -> Vec<Message> {
        let g = Greeting {
            version: PROTOCOL_VERSION,
            region: RegionId(2),
            name: "eu".into(),
            advertise: "127.0.0.1:7480".into(),
            boot: 0x1234_5678_9abc,
            durable: vv(&[(1, 5), (2, 9)]),
        };
        vec![
            Message::Hello(g.clone()),
            Message::Welcome(Greeting {
                advertise: String::new(),
                ..g
            }),
            Message::Segment {
                id: 7,
                bytes: Bytes::from_static(b"BSEG..."),
            },
            Message::Ack {
                id: 7,
                durable: vv(&[(3, 1)]),
            },
            Message::Refuse {
                reason: "protocol version 9 unsupported".into(),
            },
            Message::SnapshotBegin {
                len: 1 << 33,
                covers: vv(&[(1, 5), (4, 2)]),
            },
            Message::SnapshotChunk {
                bytes: Bytes::from_static(b"chunk of a snapshot file"),
            },
            Message::SnapshotEnd,
            Message::Heartbeat {
                origin: RegionId(3),
                seq: 300,
                unix_ms: 1_700_000_000_123,
            },
        ]
    }

    #[test]
    fn heartbeat_bytes_are_as_documented() {
        // storage-format.md, "Replication protocol": type 9, varint16
        // origin, varint seq, varint Unix ms.
        let m = Message::Heartbeat {
            origin: RegionId(3),
            seq: 300,
            unix_ms: 1_700_000_000_123,
        };
        let frame = m.encode();
        assert_eq!(
            frame,
            [0x0a, 0, 0, 0, 0x09, 0x03, 0xac, 0x02, 0xfb, 0xd0, 0x95, 0xff, 0xbc, 0x31]
        );
        assert_eq!(
            Message::decode(Bytes::from(frame[4..].to_vec())).unwrap(),
            m
        );
    }

    #[tokio::test]
    async fn every_message_roundtrips_through_a_stream() {
        let mut wire = Vec::new();
        for m in all() {
            write_message(&mut wire, &m).await.unwrap();
        }
        let mut r = &wire[..];
        for m in all() {
            assert_eq!(read_message(&mut r, 1 << 20).await.unwrap(), Some(m));
        }
        assert_eq!(read_message(&mut r, 1 << 20).await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_or_oversized_frames_are_errors() {
        for m in all() {
            let bytes = m.encode();
            for cut in 1..bytes.len() {
                let mut r = &bytes[..cut];
                let got = read_message(&mut r, 1 << 20).await;
                // A cut inside the length prefix or body is an error; only a
                // cut of the whole frame reads as "no frame".
                assert!(got.is_err(), "cut at {cut} of {m:?} gave {got:?}");
            }
            let mut r = &bytes[..];
            assert!(matches!(
                read_message(&mut r, 0).await,
                Err(MessageError::TooLong { .. })
            ));
        }
    }

    #[test]
    fn garbage_bodies_never_panic() {
        let mut rng = fastrand::Rng::with_seed(3);
        for m in all() {
            let frame = m.encode();
            for _ in 0..2000 {
                let mut f = frame[4..].to_vec();
                let i = rng.usize(0..f.len());
                f[i] = rng.u8(..);
                let _ = Message::decode(Bytes::from(f));
            }
        }
        assert!(matches!(
            Message::decode(Bytes::from_static(&[99])),
            Err(MessageError::UnknownType(99))
        ));
        let mut hello = all()[0].encode()[4..].to_vec();
        hello.push(0);
        assert!(matches!(
            Message::decode(Bytes::from(hello)),
            Err(MessageError::Trailing(1))
        ));
    }
}
