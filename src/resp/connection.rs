//! One client connection: requests in, replies out.
//!
//! Why a buffered connection type (as in mini-redis) rather than reading the
//! socket in command code: requests arrive fragmented and pipelined, replies
//! are cheaper written many at a time. [`Connection`] keeps a read buffer that
//! the [`Decoder`] turns into argument vectors, and a write buffer that
//! replies are queued into and flushed from. The server loop is:
//!
//! ```text
//! while let Some(args) = conn.read_request().await? {   // waits for one
//!     run(args, &mut conn);                              // conn.queue(&reply)
//!     while let Some(args) = conn.try_next_buffered()? { // rest of the pipeline
//!         run(args, &mut conn);
//!     }
//!     conn.flush().await?;                               // one write per batch
//! }
//! ```
//!
//! On [`ConnectionError::Protocol`] the server flushes the replies of the
//! requests before the bad one, sends [`Connection::send_protocol_error`] and
//! closes, like Redis.

use super::frame::{Frame, Protocol};
use super::parse::{Decoded, Decoder, Limits, ProtocolError, PROTO_MBULK_BIG_ARG};

/// Largest request whose arguments share the read buffer (see
/// `Connection::take_multibulk`).
const SMALL_REQUEST: usize = 256;

// Every argument of a small request is short enough that the state copies
// it when keeping it, rather than pin the read buffer.
const _: () = assert!(crate::crdt::detach::DETACH_MAX >= SMALL_REQUEST);
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Redis' default `client-query-buffer-limit`: 1 GiB.
pub const DEFAULT_QUERY_BUFFER_LIMIT: usize = 1024 * 1024 * 1024;

/// The query buffer limit before a client has authenticated (Redis 7's
/// fixed 1 MiB), so that an anonymous peer cannot make the server buffer
/// much.
pub const UNAUTHENTICATED_QUERY_BUFFER_LIMIT: usize = 1024 * 1024;

/// Bytes the read buffer is grown by before each read (Redis'
/// `PROTO_IOBUF_LEN`): enough for a typical pipeline chunk, small enough that
/// an idle connection costs little.
const READ_CHUNK: usize = 16 * 1024;

/// Free room in the read buffer below which a new one is allocated before
/// reading (see `read_request`).
const MIN_READ_ROOM: usize = 4 * 1024;

/// Why a connection stopped yielding requests.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The client sent a malformed request; reply with
    /// [`Connection::send_protocol_error`], then close.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The request being read (plus commands queued in a MULTI) exceeded
    /// `client-query-buffer-limit`. Redis closes such a client without any
    /// reply (it only logs), so the server should just close.
    ///
    /// Differs from Redis: Redis does not count the arguments of the
    /// request in progress that it has already parsed, so one request of
    /// many large arguments can grow without bound; Braid counts the whole
    /// request (its parsed arguments stay in the read buffer anyway).
    #[error("closing client that reached max query buffer length ({len} bytes, limit {limit})")]
    QueryBufferLimit {
        /// Unparsed bytes held when the limit was crossed.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The peer closed its side in the middle of a request.
    #[error("connection reset by peer")]
    ResetByPeer,
}

/// A client connection over any byte stream (a `TcpStream` in the server, an
/// in-memory duplex in tests).
#[derive(Debug)]
pub struct Connection<S = TcpStream> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    limits: Limits,
    query_buffer_limit: usize,
    /// Request bytes the client holds outside the read buffer (commands
    /// queued in a MULTI); they count against the query buffer limit too.
    held_elsewhere: usize,
    protocol: Protocol,
    /// Set after a protocol error: the stream is out of sync, so every
    /// further read reports the same error instead of guessing.
    failed: Option<ProtocolError>,
    bytes_in: u64,
    bytes_out: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection with Redis' default limits, speaking RESP2.
    pub fn new(stream: S) -> Self {
        Connection::with_limits(stream, Limits::default())
    }

    /// A connection with the given request limits (`proto-max-bulk-len` and
    /// friends), speaking RESP2.
    pub fn with_limits(stream: S, limits: Limits) -> Self {
        Connection {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            decoder: Decoder::new(),
            limits,
            query_buffer_limit: DEFAULT_QUERY_BUFFER_LIMIT,
            held_elsewhere: 0,
            protocol: Protocol::Resp2,
            failed: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Sets `client-query-buffer-limit` for this connection (it can change at
    /// run time with `CONFIG SET`).
    pub fn set_query_buffer_limit(&mut self, limit: usize) {
        self.query_buffer_limit = limit;
    }

    /// Tells the connection how many request bytes the client holds
    /// elsewhere (commands queued in a MULTI), which count against the
    /// query buffer limit, as in Redis 7.
    pub fn set_held_elsewhere(&mut self, bytes: usize) {
        self.held_elsewhere = bytes;
    }

    /// The query buffer limit in force: `client-query-buffer-limit`, or
    /// 1 MiB while the client has yet to authenticate (as Redis 7).
    pub fn effective_query_buffer_limit(&self) -> usize {
        if self.limits.auth_required {
            self.query_buffer_limit
                .min(UNAUTHENTICATED_QUERY_BUFFER_LIMIT)
        } else {
            self.query_buffer_limit
        }
    }

    /// Whether the client holds more request bytes (the request being read
    /// plus [`set_held_elsewhere`](Connection::set_held_elsewhere)) than the
    /// query buffer limit allows; logs and returns the error to close with.
    pub fn check_query_buffer(&self) -> Result<(), ConnectionError> {
        let len = self.rbuf.len().saturating_add(self.held_elsewhere);
        let limit = self.effective_query_buffer_limit();
        if len > limit {
            // The server logs the disconnection with the client's address.
            tracing::debug!(
                len,
                limit,
                "closing client that reached max query buffer length"
            );
            return Err(ConnectionError::QueryBufferLimit { len, limit });
        }
        Ok(())
    }

    /// The request limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the request limits, e.g. after `CONFIG SET proto-max-bulk-len`.
    /// Takes effect for the next request header parsed.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Turns the pre-authentication request caps on (a password is required
    /// and the client has not authenticated) or off (after `AUTH`).
    pub fn set_auth_required(&mut self, required: bool) {
        self.limits.auth_required = required;
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the reply protocol (`HELLO 2` / `HELLO 3`); applies to
    /// replies queued from now on.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Total bytes read from the client, for `INFO`'s `total_net_input_bytes`.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Total bytes written to the client, for `total_net_output_bytes`.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Bytes received but not yet returned as requests (`CLIENT LIST`'s
    /// `qbuf`).
    pub fn query_buffer_len(&self) -> usize {
        self.rbuf.len()
    }

    /// Bytes of replies queued but not yet flushed (`omem`); the server can
    /// flush early when a large pipeline piles replies up.
    pub fn pending_output(&self) -> usize {
        self.wbuf.len()
    }

    /// The underlying stream, e.g. for its peer address.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Waits for the next complete request and returns its arguments.
    ///
    /// `Ok(None)` means the client closed the connection cleanly between
    /// requests; closing in the middle of one is
    /// [`ConnectionError::ResetByPeer`]. Cancel-safe: dropping the future
    /// loses no received bytes, so it can sit in a `select!` with a shutdown
    /// signal.
    pub async fn read_request(&mut self) -> Result<Option<Vec<Bytes>>, ConnectionError> {
        loop {
            if let Some(args) = self.try_next_buffered()? {
                return Ok(Some(args));
            }
            // The buffer now holds only the start of one request: all of it
            // counts, parsed arguments included (they stay in the buffer).
            self.check_query_buffer()?;
            // Never read past the limit, so one read cannot overshoot it.
            let room = self
                .effective_query_buffer_limit()
                .saturating_sub(self.rbuf.len().saturating_add(self.held_elsewhere))
                .saturating_add(1);
            // Small requests share the buffer (see `take_multibulk`), so
            // `reserve` cannot reclaim it while they live: it allocates
            // anew. Only do so when little room is left, not on every read.
            if self.rbuf.capacity() - self.rbuf.len() < MIN_READ_ROOM {
                self.rbuf.reserve(READ_CHUNK.min(room));
            }
            let n = self
                .stream
                .read_buf(&mut (&mut self.rbuf).limit(room))
                .await?;
            if n == 0 {
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                tracing::debug!(
                    pending = self.rbuf.len(),
                    "client closed the connection mid-request"
                );
                return Err(ConnectionError::ResetByPeer);
            }
            self.bytes_in += n as u64;
        }
    }

    /// Returns the next request if it is already complete in the read
    /// buffer, without waiting for the socket.
    ///
    /// Why: a pipelining client sends many requests in one packet; the server
    /// drains them with this and answers the whole batch with one
    /// [`flush`](Connection::flush), as Redis does per read event.
    pub fn try_next_buffered(&mut self) -> Result<Option<Vec<Bytes>>, ConnectionError> {
        if let Some(e) = &self.failed {
            return Err(ConnectionError::Protocol(e.clone()));
        }
        loop {
            let decoded = match self.decoder.decode(&self.rbuf, &self.limits) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(error = %e, "protocol error from client");
                    self.failed = Some(e.clone());
                    return Err(ConnectionError::Protocol(e));
                }
            };
            match decoded {
                Decoded::Incomplete => return Ok(None),
                Decoded::Skipped(n) => self.rbuf.advance(n),
                Decoded::Inline { args, consumed } => {
                    self.rbuf.advance(consumed);
                    return Ok(Some(args));
                }
                Decoded::Multibulk { args, consumed } => {
                    return Ok(Some(self.take_multibulk(args, consumed)));
                }
            }
        }
    }

    /// Removes a parsed multibulk request from the read buffer.
    ///
    /// - A small request (up to [`SMALL_REQUEST`] bytes: most requests) is
    ///   not copied: its arguments share the read buffer. Copying cost an
    ///   allocation and a free per request, 10-15 % of a pipelined GET.
    ///   What keeps an argument for long copies it instead, so that it does
    ///   not pin the whole buffer: the state (`crdt::detach`), the expiry
    ///   index, conflict traces and the journal, WATCH and CLIENT SETNAME.
    /// - In a larger request, arguments are copied one by one, except those
    ///   of 32 KiB or more, which share the buffer (Redis makes the same
    ///   distinction), as they dominate what they pin.
    fn take_multibulk(
        &mut self,
        ranges: Vec<std::ops::Range<usize>>,
        consumed: usize,
    ) -> Vec<Bytes> {
        let args = self.args_of(&ranges, consumed);
        self.decoder.recycle(ranges);
        args
    }

    /// The arguments at `ranges`, removing the request's `consumed` bytes
    /// from the read buffer (see [`take_multibulk`](Self::take_multibulk)).
    fn args_of(&mut self, ranges: &[std::ops::Range<usize>], consumed: usize) -> Vec<Bytes> {
        if consumed <= SMALL_REQUEST {
            let request = self.rbuf.split_to(consumed.min(self.rbuf.len())).freeze();
            let arg = |r: &std::ops::Range<usize>| {
                if r.start <= r.end && r.end <= request.len() {
                    request.slice(r.clone())
                } else {
                    Bytes::new()
                }
            };
            let Some((last, first)) = ranges.split_last() else {
                return Vec::new();
            };
            let mut args = Vec::with_capacity(ranges.len());
            args.extend(first.iter().map(arg));
            // The last argument takes over the request's own handle: two
            // reference count updates less per request.
            let mut last_arg = request;
            if last.start <= last.end && last.end <= last_arg.len() {
                last_arg.truncate(last.end);
                last_arg.advance(last.start);
            } else {
                last_arg = Bytes::new();
            }
            args.push(last_arg);
            return args;
        }
        let has_big = ranges.iter().any(|r| r.len() >= PROTO_MBULK_BIG_ARG);
        if !has_big {
            let args = ranges
                .iter()
                .map(|r| Bytes::copy_from_slice(self.rbuf.get(r.clone()).unwrap_or_default()))
                .collect();
            self.rbuf.advance(consumed);
            return args;
        }
        let request = self.rbuf.split_to(consumed).freeze();
        ranges
            .iter()
            .map(|r| {
                if r.len() >= PROTO_MBULK_BIG_ARG && r.end <= request.len() {
                    request.slice(r.clone())
                } else {
                    Bytes::copy_from_slice(request.get(r.clone()).unwrap_or_default())
                }
            })
            .collect()
    }

    /// Appends a reply to the write buffer, encoded for the connection's
    /// current protocol. Nothing is sent until [`flush`](Connection::flush).
    pub fn queue(&mut self, frame: &Frame) {
        frame.write_to(self.protocol, &mut self.wbuf);
    }

    /// Appends pre-encoded reply bytes (e.g. a cached shared reply).
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Writes every queued reply to the socket and flushes it.
    ///
    /// Cancel-safe in the sense that bytes already written are not written
    /// again: the buffer is consumed as the socket accepts it.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.wbuf.is_empty() {
            let n = self.stream.write_buf(&mut self.wbuf).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.bytes_out += n as u64;
        }
        self.stream.flush().await
    }

    /// Sends Redis' reply for a protocol error (`-ERR Protocol error: ...`,
    /// byte-exact) after any replies already queued. The caller then drops
    /// the connection, as Redis closes it after the reply.
    pub async fn send_protocol_error(&mut self, err: &ProtocolError) -> io::Result<()> {
        self.wbuf.extend_from_slice(&err.reply_bytes());
        self.flush().await
    }

    /// Closes the write side after flushing, so the client sees the last
    /// reply followed by end-of-stream.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn pair() -> (Connection<DuplexStream>, DuplexStream) {
        let (server, client) = duplex(1 << 20);
        (Connection::new(server), client)
    }

    fn strs(args: &[Bytes]) -> Vec<&[u8]> {
        args.iter().map(|a| a.as_ref()).collect()
    }

    #[tokio::test]
    async fn resp_conn_reads_pipeline_as_batch() {
        let (mut conn, mut client) = pair();
        client
            .write_all(
                b"*1\r\n$4\r\nPING\r\nECHO hi\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$3\r\nGE",
            )
            .await
            .expect("write");
        let first = conn.read_request().await.expect("read").expect("request");
        assert_eq!(strs(&first), [&b"PING"[..]]);
        let second = conn.try_next_buffered().expect("ok").expect("buffered");
        assert_eq!(strs(&second), [&b"ECHO"[..], b"hi"]);
        let third = conn.try_next_buffered().expect("ok").expect("buffered");
        assert_eq!(strs(&third), [&b"GET"[..], b"k"]);
        assert!(conn.try_next_buffered().expect("ok").is_none());
        assert_eq!(conn.query_buffer_len(), b"*1\r\n$3\r\nGE".len());
        client.write_all(b"T\r\n").await.expect("write");
        let fourth = conn.read_request().await.expect("read").expect("request");
        assert_eq!(strs(&fourth), [&b"GET"[..]]);
        let sent =
            b"*1\r\n$4\r\nPING\r\nECHO hi\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$3\r\nGE"
                .len()
                + 3;
        assert_eq!(conn.bytes_in(), sent as u64);
    }

    #[tokio::test]
    async fn resp_conn_byte_by_byte() {
        let (mut conn, mut client) = pair();
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nv\0\r\n";
        let writer = tokio::spawn(async move {
            for b in req {
                client.write_all(&[*b]).await.expect("write");
                tokio::task::yield_now().await;
            }
            client
        });
        let args = conn.read_request().await.expect("read").expect("request");
        assert_eq!(strs(&args), [&b"SET"[..], b"k", b"v\r\nv\0"]);
        drop(writer.await.expect("join"));
        assert!(conn.read_request().await.expect("clean eof").is_none());
    }

    #[tokio::test]
    async fn resp_conn_eof_mid_request_is_reset() {
        let (mut conn, mut client) = pair();
        client.write_all(b"*1\r\n$4\r\nPI").await.expect("write");
        drop(client);
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::ResetByPeer)
        ));
    }

    #[tokio::test]
    async fn resp_conn_eof_after_skipped_lines_is_clean() {
        let (mut conn, mut client) = pair();
        client.write_all(b"\r\n*0\r\n").await.expect("write");
        drop(client);
        assert!(conn.read_request().await.expect("clean").is_none());
    }

    #[tokio::test]
    async fn resp_conn_protocol_error_after_good_requests() {
        let (mut conn, mut client) = pair();
        client
            .write_all(b"PING\r\n*1\r\nx\r\n")
            .await
            .expect("write");
        let first = conn.read_request().await.expect("read").expect("request");
        assert_eq!(strs(&first), [&b"PING"[..]]);
        conn.queue(&Frame::simple("PONG"));
        let err = match conn.try_next_buffered() {
            Err(ConnectionError::Protocol(e)) => e,
            other => panic!("expected a protocol error, got {other:?}"),
        };
        assert_eq!(err, ProtocolError::ExpectedDollar(b'x'));
        // The error sticks.
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::Protocol(_))
        ));
        conn.send_protocol_error(&err).await.expect("send");
        drop(conn);
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.expect("read");
        assert_eq!(
            reply,
            b"+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n"
        );
    }

    #[tokio::test]
    async fn resp_conn_query_buffer_limit() {
        let (mut conn, mut client) = pair();
        conn.set_query_buffer_limit(100);
        let mut req = b"*1\r\n$200\r\n".to_vec();
        req.extend_from_slice(&[b'x'; 150]);
        client.write_all(&req).await.expect("write");
        match conn.read_request().await {
            Err(ConnectionError::QueryBufferLimit { len, limit: 100 }) => {
                assert!(len > 100);
            }
            other => panic!("expected the query buffer limit, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn resp_conn_query_buffer_limit_counts_whole_request() {
        // Differs from Redis, which would not count the first, parsed
        // argument: two 80-byte arguments exceed a 100-byte limit.
        let (mut conn, mut client) = pair();
        conn.set_query_buffer_limit(100);
        let big = [b'y'; 80];
        let writer = tokio::spawn(async move {
            client.write_all(b"*2\r\n$80\r\n").await.expect("write");
            client.write_all(&big).await.expect("write");
            client.write_all(b"\r\n$80\r\n").await.expect("write");
            client.write_all(&big).await.expect("write");
            client.write_all(b"\r\n").await.expect("write");
            client
        });
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::QueryBufferLimit { limit: 100, .. })
        ));
        drop(writer.await.expect("join"));
    }

    #[tokio::test]
    async fn resp_conn_query_buffer_limit_not_hit_by_following_requests() {
        // A read that completes a request just under the limit and brings
        // the next requests along is not over the limit.
        let (mut conn, mut client) = pair();
        conn.set_query_buffer_limit(100);
        let mut req = b"*1\r\n$80\r\n".to_vec();
        req.extend_from_slice(&[b'a'; 80]);
        req.extend_from_slice(b"\r\n");
        for _ in 0..10 {
            req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        }
        client.write_all(&req).await.expect("write");
        let first = conn.read_request().await.expect("read").expect("request");
        assert_eq!(first[0].len(), 80);
        for _ in 0..10 {
            let next = conn.read_request().await.expect("read").expect("request");
            assert_eq!(strs(&next), [&b"PING"[..]]);
        }
    }

    #[tokio::test]
    async fn resp_conn_query_buffer_counts_held_elsewhere_and_auth() {
        let (mut conn, mut client) = pair();
        conn.set_query_buffer_limit(100);
        conn.set_held_elsewhere(101);
        client.write_all(b"PING\r\n").await.expect("write");
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::QueryBufferLimit { len: 101, .. })
        ));
        let (mut conn, _client) = pair();
        conn.set_auth_required(true);
        assert_eq!(
            conn.effective_query_buffer_limit(),
            UNAUTHENTICATED_QUERY_BUFFER_LIMIT
        );
        conn.set_auth_required(false);
        assert_eq!(
            conn.effective_query_buffer_limit(),
            DEFAULT_QUERY_BUFFER_LIMIT
        );
    }

    /// Small requests are not copied: their arguments share the read
    /// buffer. Arguments kept while many more requests are read, through
    /// several new buffers, still read what was sent.
    #[tokio::test]
    async fn resp_conn_small_requests_share_the_read_buffer() {
        let (mut conn, mut client) = pair();
        let request =
            |i: usize| format!("*3\r\n$3\r\nSET\r\n$6\r\nk{i:05}\r\n$2\r\nv{}\r\n", i % 10);
        let n = 3 * READ_CHUNK / request(0).len();
        let writer = tokio::spawn(async move {
            for i in 0..n {
                client
                    .write_all(request(i).as_bytes())
                    .await
                    .expect("write");
            }
            client
        });
        let first = conn.read_request().await.expect("read").expect("request");
        let second = conn.read_request().await.expect("read").expect("request");
        assert_eq!(strs(&first), [&b"SET"[..], b"k00000", b"v0"]);
        assert_eq!(
            first[1].as_ptr().wrapping_add(request(0).len()),
            second[1].as_ptr(),
            "consecutive small requests lie side by side in one buffer"
        );
        let mut kept = vec![first, second];
        for i in 2..n {
            let args = conn.read_request().await.expect("read").expect("request");
            assert_eq!(args[1], format!("k{i:05}").as_bytes());
            if i % 97 == 0 {
                kept.push(args);
            }
        }
        let _client = writer.await.expect("join");
        for args in &kept {
            let i: usize = std::str::from_utf8(&args[1][1..])
                .expect("utf8")
                .parse()
                .expect("index");
            assert_eq!(strs(args)[2], format!("v{}", i % 10).as_bytes());
        }
        assert!(kept.len() > 10);
    }

    #[tokio::test]
    async fn resp_conn_big_argument_shares_buffer() {
        let (mut conn, mut client) = pair();
        let big = vec![b'z'; PROTO_MBULK_BIG_ARG + 5];
        let mut req = format!("*2\r\n$3\r\nSET\r\n${}\r\n", big.len()).into_bytes();
        req.extend_from_slice(&big);
        req.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
        let writer = tokio::spawn(async move {
            client.write_all(&req).await.expect("write");
            client
        });
        let args = conn.read_request().await.expect("read").expect("request");
        assert_eq!(args[0].as_ref(), b"SET");
        assert_eq!(args[1].as_ref(), &big[..]);
        let _client = writer.await.expect("join");
        let next = conn.read_request().await.expect("read").expect("request");
        assert_eq!(strs(&next), [&b"PING"[..]]);
    }

    #[tokio::test]
    async fn resp_conn_queue_uses_protocol_and_counts_output() {
        let (mut conn, mut client) = pair();
        conn.queue(&Frame::Null);
        conn.set_protocol(Protocol::Resp3);
        assert_eq!(conn.protocol(), Protocol::Resp3);
        conn.queue(&Frame::Null);
        conn.queue(&Frame::map([(Frame::bulk("a"), Frame::boolean(true))]));
        assert_eq!(conn.pending_output(), 5 + 3 + 15);
        conn.flush().await.expect("flush");
        assert_eq!(conn.bytes_out(), 23);
        assert_eq!(conn.pending_output(), 0);
        let mut buf = vec![0u8; 23];
        client.read_exact(&mut buf).await.expect("read");
        assert_eq!(buf, b"$-1\r\n_\r\n%1\r\n$1\r\na\r\n#t\r\n");
    }

    #[tokio::test]
    async fn resp_conn_unauthenticated_caps() {
        let (mut conn, mut client) = pair();
        conn.set_auth_required(true);
        client.write_all(b"*11\r\n").await.expect("write");
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::Protocol(
                ProtocolError::UnauthenticatedMultibulkLength
            ))
        ));
        let (mut conn, mut client) = pair();
        conn.set_auth_required(true);
        conn.set_auth_required(false);
        assert!(!conn.limits().auth_required);
        client.write_all(b"*11\r\n").await.expect("write");
        drop(client);
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::ResetByPeer)
        ));
    }
}
