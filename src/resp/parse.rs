//! Parsing client requests, as Redis 7 does in `processInputBuffer`.
//!
//! A request is either *multibulk* (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what
//! every client library sends) or *inline* (`GET k\r\n`, what a human types
//! into `telnet`), chosen by its first byte being `*` or not. Both yield an
//! argument vector of binary-safe strings.
//!
//! The parser is a port of `processMultibulkBuffer`, `processInlineBuffer`,
//! `sdssplitargs` and `string2ll`, down to their quirks, so that Braid accepts
//! exactly what Redis accepts and rejects the rest with exactly Redis' error
//! text (clients and tests match on it):
//! - a bulk argument's trailing two bytes are skipped, not checked to be
//!   `\r\n`; likewise the byte after a header's `\r` is not checked to be `\n`;
//! - `*0` and negative counts, and empty inline lines, are no request at all
//!   and are skipped;
//! - header lines and inline lines are searched with C's `strchr`, which stops
//!   at a NUL byte: a NUL before the line end makes the line "not yet
//!   complete", so the client waits until the 64 KiB line limit errors out.
//!
//! Nothing is ever allocated from a declared length before the bytes have
//! arrived (a `*2147483647` header costs a 1024-slot vector at most), no
//! input can make the parser panic, and an incomplete request is reported as
//! such without consuming anything.

use bytes::Bytes;
use std::ops::Range;

/// Redis' `PROTO_INLINE_MAX_SIZE`: the longest inline request, and the longest
/// multibulk header line, that may sit in the buffer without its line end.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;

/// Redis' default `proto-max-bulk-len`.
pub const PROTO_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// Redis 7's cap on a multibulk count (`INT_MAX`).
pub const PROTO_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;

/// Redis' `PROTO_MBULK_BIG_ARG`: the connection copies arguments shorter
/// than this out of its read buffer and lets longer ones share it, as Redis
/// does.
pub const PROTO_MBULK_BIG_ARG: usize = 32 * 1024;

/// Most argument slots reserved up front for a multibulk request, whatever
/// count its header declares; the vector grows as arguments actually arrive.
const MAX_PREALLOC_ARGS: usize = 1024;

/// The size limits a request must respect; defaults are Redis 7's.
///
/// Why configurable: `proto-max-bulk-len` is a Redis setting, and the
/// pre-authentication caps only apply while a connection still has to log in
/// (the connection flips [`Limits::auth_required`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk argument (`proto-max-bulk-len`); longer is
    /// `invalid bulk length`. Default 512 MiB.
    pub max_bulk_len: usize,
    /// Largest argument count in a multibulk header; larger is
    /// `invalid multibulk length`. Default `INT_MAX`, as Redis 7.
    pub max_multibulk_len: usize,
    /// Longest inline request, or multibulk header line, buffered without a
    /// line end (`PROTO_INLINE_MAX_SIZE`, 64 KiB); more is `too big ...`.
    ///
    /// Differs from Redis only in timing: Redis applies it after each 16 KiB
    /// read, so a line slightly over 64 KiB may or may not pass depending on
    /// how it was split into reads; Braid accepts any line whose end is
    /// buffered and rejects one only when more than the limit is buffered
    /// without its end.
    pub max_inline_len: usize,
    /// True while the connection must still authenticate (a password is set
    /// and `AUTH` has not succeeded): Redis then caps requests far lower, so
    /// an anonymous peer cannot make the server buffer much.
    pub auth_required: bool,
    /// Argument-count cap before authentication (Redis: 10).
    pub max_unauthenticated_multibulk_len: usize,
    /// Bulk-length cap before authentication (Redis: 16 KiB).
    pub max_unauthenticated_bulk_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: PROTO_MAX_BULK_LEN,
            max_multibulk_len: PROTO_MAX_MULTIBULK_LEN,
            max_inline_len: PROTO_INLINE_MAX_SIZE,
            auth_required: false,
            max_unauthenticated_multibulk_len: 10,
            max_unauthenticated_bulk_len: 16 * 1024,
        }
    }
}

/// A malformed request. The server replies `-ERR <Display text>` and closes
/// the connection, as Redis does; the texts are Redis' own, verified against
/// `redis-server` 7 (see `tests/resp_vs_redis.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The `*<n>` count is not a canonical integer or exceeds the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$<n>` length is not a canonical integer, is negative, or exceeds
    /// the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An argument header does not start with `$`; holds the byte found.
    /// Redis prints the raw byte, with CR and LF shown as a space; the
    /// `Display` text shows a byte above 0x7F as the Unicode character of the
    /// same number, [`ProtocolError::reply_bytes`] is exact.
    #[error("Protocol error: expected '$', got '{}'", shown_byte(*.0))]
    ExpectedDollar(u8),
    /// An inline request longer than the inline limit without a line end.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// A `*<n>` header line longer than the inline limit without a `\r`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$<n>` header line longer than the inline limit without a `\r`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline request with an unterminated quote, or a closing quote not
    /// followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// More arguments than allowed before authentication.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A longer argument than allowed before authentication.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

/// The byte of an `expected '$'` error as Redis shows it: its error
/// formatter turns CR and LF into spaces.
fn redis_byte(b: u8) -> u8 {
    if b == b'\r' || b == b'\n' {
        b' '
    } else {
        b
    }
}

fn shown_byte(b: u8) -> char {
    char::from(redis_byte(b))
}

impl ProtocolError {
    /// The exact reply line Redis sends for this error, `-ERR ...\r\n`,
    /// byte for byte (the `Display` text can differ only for a non-ASCII byte
    /// in [`ProtocolError::ExpectedDollar`]).
    pub fn reply_bytes(&self) -> Vec<u8> {
        let mut out = b"-ERR ".to_vec();
        match self {
            ProtocolError::ExpectedDollar(b) => {
                out.extend_from_slice(b"Protocol error: expected '$', got '");
                out.push(redis_byte(*b));
                out.push(b'\'');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// What one call to [`Decoder::decode`] found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// No complete request yet; nothing may be discarded. Call again with the
    /// same buffer plus whatever arrives next.
    Incomplete,
    /// The first `n` bytes were a request without arguments (an empty inline
    /// line, `*0`, `*-1`): Redis ignores those. Discard them and decode again.
    Skipped(usize),
    /// An inline request: its arguments (unquoted, so owned) and its length.
    Inline {
        /// The arguments.
        args: Vec<Bytes>,
        /// Bytes the request occupied at the front of the buffer.
        consumed: usize,
    },
    /// A multibulk request: where its arguments lie in the buffer (so the
    /// caller can share or copy them as it prefers) and its length.
    Multibulk {
        /// Byte ranges of the arguments, relative to the buffer's start.
        args: Vec<Range<usize>>,
        /// Bytes the request occupied at the front of the buffer.
        consumed: usize,
    },
}

/// A resumable request parser.
///
/// Why resumable: a large request arrives over many reads. Re-parsing it from
/// its start after every read would cost time quadratic in its argument
/// count; the decoder instead remembers how far it got (arguments already
/// found, the current bulk length), so each byte is examined once.
///
/// Contract: between calls the buffer may only grow at its end, until a call
/// returns something other than [`Decoded::Incomplete`]; the caller then
/// removes the `consumed` (or skipped) bytes from the front before the next
/// call. After an error the decoder is reset; the connection should be closed.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    /// An emptied argument list handed back by [`recycle`](Self::recycle),
    /// reused by the next multibulk request: one allocation less per request.
    spare: Vec<Range<usize>>,
}

#[derive(Debug, Default)]
enum State {
    /// At the start of a request.
    #[default]
    Idle,
    /// Inside a multibulk request whose count header has been read.
    Multibulk(Progress),
}

#[derive(Debug)]
struct Progress {
    /// Arguments still to read.
    remaining: usize,
    /// Arguments read so far.
    args: Vec<Range<usize>>,
    /// Offset of the first byte not yet parsed.
    pos: usize,
    /// Length of the argument whose `$<n>` header has been read (its data
    /// starts at `pos`), or `None` before its header.
    bulk: Option<usize>,
}

impl Decoder {
    /// A decoder at the start of a request.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Hands back the argument ranges of a [`Decoded::Multibulk`] once they
    /// are used, for the next request to reuse (a list grown beyond
    /// [`MAX_PREALLOC_ARGS`] is dropped instead of kept).
    pub fn recycle(&mut self, mut args: Vec<Range<usize>>) {
        if args.capacity() <= MAX_PREALLOC_ARGS {
            args.clear();
            self.spare = args;
        }
    }

    /// Bytes at the front of the buffer already parsed into complete
    /// arguments (or headers) of the request in progress.
    ///
    /// Why: Redis' `client-query-buffer-limit` counts only the query buffer,
    /// which no longer holds arguments already parsed into `argv`; the
    /// connection subtracts this to apply the limit the same way.
    pub fn parsed_len(&self) -> usize {
        match &self.state {
            State::Idle => 0,
            State::Multibulk(p) => p.pos,
        }
    }

    /// Parses the next request at the front of `buf`; see [`Decoded`] and the
    /// type's contract.
    pub fn decode(&mut self, buf: &[u8], limits: &Limits) -> Result<Decoded, ProtocolError> {
        let result = self.decode_inner(buf, limits);
        if !matches!(result, Ok(Decoded::Incomplete)) {
            self.state = State::Idle;
        }
        result
    }

    fn decode_inner(&mut self, buf: &[u8], limits: &Limits) -> Result<Decoded, ProtocolError> {
        if let State::Idle = self.state {
            match buf.first() {
                None => return Ok(Decoded::Incomplete),
                Some(b'*') => {}
                Some(_) => return parse_inline(buf, limits),
            }
            let Some(cr) = find_line_end(buf, 0, b'\r') else {
                if buf.len() > limits.max_inline_len {
                    return Err(ProtocolError::TooBigMultibulkCount);
                }
                return Ok(Decoded::Incomplete);
            };
            // The byte after `\r` must have arrived (it is skipped unchecked).
            if cr + 2 > buf.len() {
                return Ok(Decoded::Incomplete);
            }
            let count = match string2ll(buf.get(1..cr).unwrap_or_default()) {
                Some(n) if !exceeds(n, limits.max_multibulk_len) => n,
                _ => return Err(ProtocolError::InvalidMultibulkLength),
            };
            if limits.auth_required && exceeds(count, limits.max_unauthenticated_multibulk_len) {
                return Err(ProtocolError::UnauthenticatedMultibulkLength);
            }
            let Ok(count) = usize::try_from(count) else {
                // Zero or negative: no request, Redis skips it.
                return Ok(Decoded::Skipped(cr + 2));
            };
            if count == 0 {
                return Ok(Decoded::Skipped(cr + 2));
            }
            let mut args = std::mem::take(&mut self.spare);
            args.reserve_exact(count.min(MAX_PREALLOC_ARGS));
            self.state = State::Multibulk(Progress {
                remaining: count,
                args,
                pos: cr + 2,
                bulk: None,
            });
        }
        let State::Multibulk(p) = &mut self.state else {
            return Ok(Decoded::Incomplete);
        };
        while p.remaining > 0 {
            let len = match p.bulk {
                Some(len) => len,
                None => {
                    let Some(cr) = find_line_end(buf, p.pos, b'\r') else {
                        if buf.len().saturating_sub(p.pos) > limits.max_inline_len {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        return Ok(Decoded::Incomplete);
                    };
                    if cr + 2 > buf.len() {
                        return Ok(Decoded::Incomplete);
                    }
                    let first = buf.get(p.pos).copied().unwrap_or(0);
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedDollar(first));
                    }
                    let digits = buf.get(p.pos + 1..cr).unwrap_or_default();
                    let len = match string2ll(digits) {
                        Some(n) if n >= 0 && !exceeds(n, limits.max_bulk_len) => n,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    if limits.auth_required && exceeds(len, limits.max_unauthenticated_bulk_len) {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    let Ok(len) = usize::try_from(len) else {
                        return Err(ProtocolError::InvalidBulkLength);
                    };
                    p.pos = cr + 2;
                    p.bulk = Some(len);
                    len
                }
            };
            // The data plus two trailing bytes (skipped unchecked, as Redis).
            let available = buf.len().saturating_sub(p.pos);
            if available < len.saturating_add(2) {
                return Ok(Decoded::Incomplete);
            }
            p.args.push(p.pos..p.pos + len);
            p.pos += len + 2;
            p.bulk = None;
            p.remaining -= 1;
        }
        let consumed = p.pos;
        let args = std::mem::take(&mut p.args);
        Ok(Decoded::Multibulk { args, consumed })
    }
}

/// Whether `n` is above `max` (compared without lossy casts).
fn exceeds(n: i64, max: usize) -> bool {
    u64::try_from(n).is_ok_and(|n| u64::try_from(max).is_ok_and(|max| n > max))
}

/// Redis' `strchr(buf + from, target)` on a NUL-terminated buffer: the offset
/// of the first `target` at or after `from`, or `None` if a NUL byte or the
/// end of the buffer comes first.
fn find_line_end(buf: &[u8], from: usize, target: u8) -> Option<usize> {
    let rest = buf.get(from..)?;
    let i = rest.iter().position(|&b| b == target || b == 0)?;
    (rest[i] == target).then_some(from + i)
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Decoded, ProtocolError> {
    let Some(nl) = find_line_end(buf, 0, b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(Decoded::Incomplete);
    };
    let end = if nl > 0 && buf.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    let line = buf.get(..end).unwrap_or_default();
    let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    let consumed = nl + 1;
    if args.is_empty() {
        return Ok(Decoded::Skipped(consumed));
    }
    Ok(Decoded::Inline {
        args: args.into_iter().map(Bytes::from).collect(),
        consumed,
    })
}

/// Parses one request from the front of `buf`.
///
/// Returns the argument vector and the number of bytes it occupied (leading
/// empty requests that Redis skips are counted in), or `Ok(None)` if `buf`
/// does not yet hold a whole request, in which case nothing is consumed.
/// Arguments are copied out of `buf`.
///
/// Why a stateless entry point next to [`Decoder`]: it is the simplest
/// contract to test and to use on a complete buffer (a replayed request, a
/// test); a connection uses the [`Decoder`] to avoid re-parsing.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Vec<Bytes>, usize)>, ProtocolError> {
    let mut offset = 0;
    loop {
        let rest = buf.get(offset..).unwrap_or_default();
        match Decoder::new().decode(rest, limits)? {
            Decoded::Incomplete => return Ok(None),
            Decoded::Skipped(n) => offset += n,
            Decoded::Inline { args, consumed } => return Ok(Some((args, offset + consumed))),
            Decoded::Multibulk { args, consumed } => {
                let args = args
                    .into_iter()
                    .map(|r| Bytes::copy_from_slice(rest.get(r).unwrap_or_default()))
                    .collect();
                return Ok(Some((args, offset + consumed)));
            }
        }
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline request line into arguments, exactly as Redis'
/// `sdssplitargs`; `None` means unbalanced quotes.
///
/// Arguments are separated by blanks. `"..."` takes the escapes `\n \r \t \b
/// \a`, `\xHH` and `\<any>` (that character); `'...'` takes only `\'`. A quote
/// may open in the middle of an argument (`foo"bar"` is `foobar`), but a
/// closing quote must be followed by a blank or the end of the line. Inside an
/// unquoted argument only space, tab, CR and LF end it (a vertical tab or
/// form feed is kept), while blanks between arguments are anything C's
/// `isspace` accepts. A NUL byte ends the line, as in C.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // The byte at `i`, with the end of the slice read as C's terminating NUL.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let (mut in_dq, mut in_sq, mut done) = (false, false, false);
        let mut current = Vec::new();
        while !done {
            let c = at(p);
            if in_dq {
                let hex = (at(p + 1) == b'x')
                    .then(|| hex_value(at(p + 2)).zip(hex_value(at(p + 3))))
                    .flatten();
                if let (b'\\', Some((hi, lo))) = (c, hex) {
                    current.push(hi * 16 + lo);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if in_sq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => current.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(current);
    }
}

/// Redis' `string2ll`: a strict decimal `i64` (no sign other than a leading
/// `-`, no leading zeros, no `-0`, no spaces, no overflow), as Redis demands
/// of every length in the protocol.
pub(crate) fn string2ll(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE: 21 bytes or more cannot be a valid long long.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    /// A parse result with owned arguments, for comparisons.
    type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, ProtocolError>;

    /// Every request found in an input, and how the input ended.
    type Requests = (Vec<Vec<Vec<u8>>>, Result<(), ProtocolError>);

    fn parse(buf: &[u8]) -> Parsed {
        parse_request(buf, &lim())
            .map(|o| o.map(|(args, n)| (args.into_iter().map(|b| b.to_vec()).collect(), n)))
    }

    fn args(list: &[&[u8]]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.to_vec()).collect()
    }

    /// Asserts `buf` parses to `want` and consumes all of `buf`.
    fn ok(buf: &[u8], want: &[&[u8]]) {
        assert_eq!(
            parse(buf),
            Ok(Some((args(want), buf.len()))),
            "{:?}",
            shown(buf)
        );
    }

    fn err(buf: &[u8], want: ProtocolError) {
        assert_eq!(parse(buf), Err(want), "{:?}", shown(buf));
    }

    fn incomplete(buf: &[u8]) {
        assert_eq!(parse(buf), Ok(None), "{:?}", shown(buf));
    }

    /// The start of `buf` for assertion messages.
    fn shown(buf: &[u8]) -> String {
        String::from_utf8_lossy(&buf[..buf.len().min(60)]).into_owned()
    }

    /// The multibulk encoding of `args`, what client libraries send.
    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// An inline encoding of `args` that quotes every argument and escapes
    /// every byte `sdssplitargs` would not take literally.
    fn encode_inline(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'"');
            for &b in a {
                match b {
                    b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                    0x20..=0x7e => out.push(b),
                    _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                }
            }
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn resp_parse_multibulk() {
        ok(b"*1\r\n$4\r\nPING\r\n", &[b"PING"]);
        ok(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
            &[b"SET", b"k", b""],
        );
        // Binary-safe: CR, LF and NUL inside an argument.
        ok(b"*1\r\n$5\r\na\r\n\0b\r\n", &[b"a\r\n\0b"]);
        // Exactly the maximum bulk length is accepted (header only here).
        incomplete(b"*1\r\n$536870912\r\n");
        incomplete(b"*2147483647\r\n");
        incomplete(b"*20000000\r\n");
    }

    #[test]
    fn resp_parse_multibulk_quirks_like_redis() {
        // The two bytes after a bulk's data are skipped, not checked.
        assert_eq!(
            parse(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n"),
            Ok(Some((args(&[b"PING"]), 14)))
        );
        // Likewise the byte after a header's CR.
        ok(b"*1\rx$4\r\nPING\r\n", &[b"PING"]);
        // Zero and negative counts are skipped, like empty lines.
        ok(b"*0\r\n*-10\r\n*1\r\n$4\r\nPING\r\n", &[b"PING"]);
        incomplete(b"*0\r\n");
        incomplete(b"*-1\r\n");
        // A NUL inside a header line: the line is never complete.
        incomplete(b"*1\0\r\n$4\r\nPING\r\n");
        incomplete(b"*1\r\n$4\0\r\nPING\r\n");
        // ... but a NUL inside bulk data is data.
        ok(b"*1\r\n$4\r\nPI\0G\r\n", &[b"PI\0G"]);
    }

    #[test]
    fn resp_parse_inline() {
        ok(b"PING\r\n", &[b"PING"]);
        ok(b"PING\n", &[b"PING"]);
        ok(b"SET k v\r\n", &[b"SET", b"k", b"v"]);
        ok(b"  SET   k\tv  \r\n", &[b"SET", b"k", b"v"]);
        // A lone CR inside the line separates arguments.
        ok(b"ECHO a\rb\r\n", &[b"ECHO", b"a", b"b"]);
        ok(b"ECHO a\r\r\n", &[b"ECHO", b"a"]);
        // Vertical tab and form feed are blanks between arguments but not
        // separators inside one.
        ok(b"ECHO a\x0bb\r\n", &[b"ECHO", b"a\x0bb"]);
        ok(b"ECHO\x0b\x0bb\r\n", &[b"ECHO\x0b\x0bb"]);
        ok(b"\x0bECHO\x0c b\r\n", &[b"ECHO\x0c", b"b"]);
        // Bytes above 0x7F are ordinary.
        ok(b"ECHO \xff\xfe\r\n", &[b"ECHO", b"\xff\xfe"]);
    }

    #[test]
    fn resp_parse_inline_quoting() {
        ok(b"ECHO \"a b\"\r\n", &[b"ECHO", b"a b"]);
        ok(
            b"ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\"\r\n",
            &[b"ECHO", b"\n\r\t\x08\x07\\\""],
        );
        ok(b"ECHO \"a\\x41\\n\"\r\n", &[b"ECHO", b"aA\n"]);
        ok(
            b"ECHO \"\\x4a\\x4A\\xff\\x00\"\r\n",
            &[b"ECHO", b"JJ\xff\0"],
        );
        // `\x` without two hex digits is an ordinary escape of `x`.
        ok(b"ECHO \"\\xZZ\\x4\"\r\n", &[b"ECHO", b"xZZx4"]);
        // Unknown escapes yield the character itself.
        ok(b"ECHO \"\\q\\'\"\r\n", &[b"ECHO", b"q'"]);
        ok(b"ECHO 'it\\'s'\r\n", &[b"ECHO", b"it's"]);
        // Single quotes take no other escape.
        ok(b"ECHO 'a\\nb\\\\x'\r\n", &[b"ECHO", b"a\\nb\\\\x"]);
        // ... so a backslash before the closing quote escapes it.
        err(b"ECHO 'a\\\\'\r\n", ProtocolError::UnbalancedQuotes);
        ok(b"ECHO \"\" ''\r\n", &[b"ECHO", b"", b""]);
        // A quote may open mid-argument.
        ok(b"ECHO foo\"bar\"\r\n", &[b"ECHO", b"foobar"]);
        ok(b"ECHO foo'b r' x\r\n", &[b"ECHO", b"foob r", b"x"]);
        // A closing quote may be followed by any isspace() byte.
        ok(b"ECHO \"a\"\x0b\r\n", &[b"ECHO", b"a"]);
        ok(b"ECHO \"a\"\tb\r\n", &[b"ECHO", b"a", b"b"]);
        // Quotes keep CR inside.
        ok(b"ECHO \"a\rb\"\r\n", &[b"ECHO", b"a\rb"]);
    }

    #[test]
    fn resp_parse_inline_unbalanced_quotes() {
        for bad in [
            &b"\"unbalanced\r\n"[..],
            b"'unbalanced\r\n",
            b"\"a\"b\r\n",
            b"'a'b\r\n",
            b"ECHO \"a\\\"\r\n",
            b"ECHO \"a\\\r\n",
            b"ECHO 'a\\'\r\n",
        ] {
            err(bad, ProtocolError::UnbalancedQuotes);
        }
    }

    #[test]
    fn resp_parse_inline_empty_lines_skipped() {
        incomplete(b"\r\n");
        incomplete(b"\n\r\n   \r\n");
        ok(b"\r\n\n  \t \r\nPING\r\n", &[b"PING"]);
        // A NUL before the line end: the line is never complete.
        incomplete(b"ECHO a\0b\r\n");
    }

    #[test]
    fn resp_split_args_edge_cases() {
        assert_eq!(split_args(b""), Some(vec![]));
        assert_eq!(split_args(b"   "), Some(vec![]));
        // A NUL ends the line, as in C.
        assert_eq!(split_args(b"a\0b"), Some(args(&[b"a"])));
        assert_eq!(split_args(b"\"a\0\""), None);
    }

    #[test]
    fn resp_parse_pipeline() {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        buf.extend_from_slice(b"SET a \"b c\"\r\n");
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n");
        buf.extend_from_slice(b"*1\r\n$4\r\nPI");
        let mut rest = &buf[..];
        let mut got = Vec::new();
        while let Some((a, n)) = parse(rest).expect("valid pipeline") {
            got.push(a);
            rest = &rest[n..];
        }
        assert_eq!(
            got,
            vec![
                args(&[b"PING"]),
                args(&[b"SET", b"a", b"b c"]),
                args(&[b"GET", b"a"]),
            ]
        );
        assert_eq!(rest, b"*1\r\n$4\r\nPI");
    }

    #[test]
    fn resp_parse_error_texts() {
        let cases: &[(&[u8], ProtocolError, &str)] = &[
            (
                b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
                ProtocolError::ExpectedDollar(b'f'),
                "Protocol error: expected '$', got 'f'",
            ),
            (
                b"*3000000000\r\n",
                ProtocolError::InvalidMultibulkLength,
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*1\r\n$-1\r\n",
                ProtocolError::InvalidBulkLength,
                "Protocol error: invalid bulk length",
            ),
            (
                b"\"x\r\n",
                ProtocolError::UnbalancedQuotes,
                "Protocol error: unbalanced quotes in request",
            ),
            (
                &[b'x'; PROTO_INLINE_MAX_SIZE + 1],
                ProtocolError::TooBigInline,
                "Protocol error: too big inline request",
            ),
        ];
        for (input, e, text) in cases {
            err(input, e.clone());
            assert_eq!(e.to_string(), *text);
            assert_eq!(e.reply_bytes(), format!("-ERR {text}\r\n").into_bytes());
        }
        let texts = [
            (
                ProtocolError::TooBigMultibulkCount,
                "Protocol error: too big mbulk count string",
            ),
            (
                ProtocolError::TooBigBulkCount,
                "Protocol error: too big bulk count string",
            ),
            (
                ProtocolError::UnauthenticatedMultibulkLength,
                "Protocol error: unauthenticated multibulk length",
            ),
            (
                ProtocolError::UnauthenticatedBulkLength,
                "Protocol error: unauthenticated bulk length",
            ),
        ];
        for (e, text) in texts {
            assert_eq!(e.to_string(), text);
        }
        // CR/LF are shown as a space, other bytes raw.
        err(b"*1\r\n\r\n", ProtocolError::ExpectedDollar(b'\r'));
        err(b"*1\r\n\n\r\n", ProtocolError::ExpectedDollar(b'\n'));
        assert_eq!(
            ProtocolError::ExpectedDollar(b'\r').reply_bytes(),
            b"-ERR Protocol error: expected '$', got ' '\r\n"
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(0xff).reply_bytes(),
            b"-ERR Protocol error: expected '$', got '\xff'\r\n"
        );
    }

    #[test]
    fn resp_parse_invalid_lengths() {
        for bad in [
            &b"*\r\n"[..],
            b"*abc\r\n",
            b"*01\r\n",
            b"*+1\r\n",
            b"*-0\r\n",
            b"* 1\r\n",
            b"*1 \r\n",
            b"*2147483648\r\n",
            b"*9223372036854775807\r\n",
            b"*99999999999999999999\r\n",
        ] {
            err(bad, ProtocolError::InvalidMultibulkLength);
        }
        for bad in [
            &b"*1\r\n$\r\n"[..],
            b"*1\r\n$abc\r\n",
            b"*1\r\n$01\r\n",
            b"*1\r\n$+1\r\n",
            b"*1\r\n$-0\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$536870913\r\n",
            b"*1\r\n$9223372036854775808\r\n",
        ] {
            err(bad, ProtocolError::InvalidBulkLength);
        }
        err(b"*1\r\nx\r\n", ProtocolError::ExpectedDollar(b'x'));
        err(
            b"*2\r\n$1\r\na\r\n:1\r\n",
            ProtocolError::ExpectedDollar(b':'),
        );
    }

    #[test]
    fn resp_string2ll_like_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"100000000000000000000",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn resp_parse_limits() {
        let max = PROTO_INLINE_MAX_SIZE;
        // Inline: exactly the limit without a line end still waits.
        incomplete(&vec![b'x'; max]);
        err(&vec![b'x'; max + 1], ProtocolError::TooBigInline);
        // A complete line is accepted whatever its length (Redis checks the
        // limit only while the line end is missing).
        let mut long = vec![b'x'; max + 10];
        long.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&long), Ok(Some(_))));
        // Multibulk header lines.
        let mut mb = b"*".to_vec();
        mb.extend(std::iter::repeat_n(b'1', max - 1));
        incomplete(&mb);
        mb.push(b'1');
        err(&mb, ProtocolError::TooBigMultibulkCount);
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'1', max - 1));
        incomplete(&bulk);
        bulk.push(b'1');
        err(&bulk, ProtocolError::TooBigBulkCount);
        let mut junk = b"*1\r\n".to_vec();
        junk.extend(std::iter::repeat_n(b'x', max + 1));
        err(&junk, ProtocolError::TooBigBulkCount);
        // Custom limits.
        let small = Limits {
            max_bulk_len: 3,
            max_multibulk_len: 2,
            max_inline_len: 4,
            ..Limits::default()
        };
        assert!(parse_request(b"*2\r\n$3\r\nabc\r\n$0\r\n\r\n", &small).is_ok());
        assert_eq!(
            parse_request(b"*3\r\n", &small),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_request(b"*1\r\n$4\r\n", &small),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse_request(b"PING", &small),
            Ok(None),
            "4 bytes is not above 4"
        );
        assert_eq!(
            parse_request(b"PING ", &small),
            Err(ProtocolError::TooBigInline)
        );
    }

    #[test]
    fn resp_parse_unauthenticated_limits() {
        let unauth = Limits {
            auth_required: true,
            ..Limits::default()
        };
        assert_eq!(parse_request(b"*10\r\n", &unauth), Ok(None));
        assert_eq!(
            parse_request(b"*11\r\n", &unauth),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(
            parse_request(b"*2\r\n$4\r\nAUTH\r\n$16384\r\n", &unauth),
            Ok(None)
        );
        assert_eq!(
            parse_request(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", &unauth),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
        // The generic checks come first, as in Redis.
        assert_eq!(
            parse_request(b"*2147483648\r\n", &unauth),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        // Skipped counts still pass.
        assert_eq!(parse_request(b"*-5\r\n", &unauth), Ok(None));
    }

    /// One decoder over a pipeline, its argument lists handed back between
    /// requests (as the connection does): each request is read whole, a
    /// longer one after a shorter one included, and a reused list keeps the
    /// preallocation bound.
    #[test]
    fn resp_parse_reuses_recycled_argument_lists() {
        let requests: Vec<Vec<Vec<u8>>> = vec![
            args(&[b"SET", b"k", b"v"]),
            args(&[b"GET", b"k"]),
            (0..40).map(|i| format!("a{i}").into_bytes()).collect(),
            args(&[b"PING"]),
        ];
        let mut buf: Vec<u8> = requests.iter().flat_map(|r| encode(r)).collect();
        let mut d = Decoder::new();
        for want in &requests {
            let Ok(Decoded::Multibulk { args, consumed }) = d.decode(&buf, &lim()) else {
                panic!("expected a whole request");
            };
            let got: Vec<Vec<u8>> = args.iter().map(|r| buf[r.clone()].to_vec()).collect();
            assert_eq!(&got, want);
            d.recycle(args);
            buf.drain(..consumed);
        }
        assert!(buf.is_empty());
        assert_no_large_preallocation(&mut d);
    }

    /// A huge declared count reserves at most `MAX_PREALLOC_ARGS` ranges.
    fn assert_no_large_preallocation(d: &mut Decoder) {
        assert_eq!(
            d.decode(b"*2147483647\r\n", &lim()),
            Ok(Decoded::Incomplete)
        );
        let State::Multibulk(p) = &d.state else {
            panic!("expected a multibulk in progress");
        };
        assert!(p.args.capacity() <= MAX_PREALLOC_ARGS);
    }

    #[test]
    fn resp_parse_no_large_preallocation() {
        assert_no_large_preallocation(&mut Decoder::new());
    }

    /// Every proper prefix of a request is incomplete, and the whole request
    /// parses, both stateless and through one resumed decoder.
    fn check_every_split(encoded: &[u8], want: &[Vec<u8>]) {
        let mut decoder = Decoder::new();
        for k in 0..encoded.len() {
            assert_eq!(parse(&encoded[..k]), Ok(None), "prefix {k}");
            assert_eq!(
                decoder.decode(&encoded[..k], &lim()),
                Ok(Decoded::Incomplete),
                "prefix {k}"
            );
        }
        assert_eq!(parse(encoded), Ok(Some((want.to_vec(), encoded.len()))));
        let got: Vec<Vec<u8>> = match decoder.decode(encoded, &lim()) {
            Ok(Decoded::Multibulk { args, consumed }) => {
                assert_eq!(consumed, encoded.len());
                args.into_iter().map(|r| encoded[r].to_vec()).collect()
            }
            Ok(Decoded::Inline { args, consumed }) => {
                assert_eq!(consumed, encoded.len());
                args.into_iter().map(|b| b.to_vec()).collect()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, want);
    }

    #[test]
    fn resp_parse_partial_at_every_split_point() {
        let a = args(&[b"SET", b"key", b"va\r\nlue", b""]);
        check_every_split(&encode(&a), &a);
        check_every_split(
            b"SET k \"a b\" 'c'\r\n",
            &args(&[b"SET", b"k", b"a b", b"c"]),
        );
        check_every_split(&encode_inline(&a), &a);
    }

    /// Feeds `input` to a [`Decoder`] in chunks split at `cuts`, collecting
    /// every request; must agree with repeated [`parse_request`].
    fn decode_in_chunks(input: &[u8], cuts: &[usize]) -> Requests {
        let mut decoder = Decoder::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.push(input.len());
        points.sort_unstable();
        let mut fed = 0;
        for p in points {
            buf.extend_from_slice(&input[fed..p]);
            fed = p;
            loop {
                match decoder.decode(&buf, &lim()) {
                    Ok(Decoded::Incomplete) => break,
                    Ok(Decoded::Skipped(n)) => {
                        buf.drain(..n);
                    }
                    Ok(Decoded::Inline { args, consumed }) => {
                        out.push(args.into_iter().map(|b| b.to_vec()).collect());
                        buf.drain(..consumed);
                    }
                    Ok(Decoded::Multibulk { args, consumed }) => {
                        out.push(args.into_iter().map(|r| buf[r].to_vec()).collect());
                        buf.drain(..consumed);
                    }
                    Err(e) => return (out, Err(e)),
                }
            }
        }
        (out, Ok(()))
    }

    fn parse_all(input: &[u8]) -> Requests {
        let mut rest = input;
        let mut out = Vec::new();
        loop {
            match parse(rest) {
                Ok(Some((a, n))) => {
                    out.push(a);
                    rest = &rest[n..];
                }
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    use proptest::prelude::*;

    fn arb_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8)
    }

    /// Bytes biased towards protocol syntax, so random inputs reach deep
    /// parser states.
    fn arb_protocolish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            Just(b"*".to_vec()),
            Just(b"$".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"'".to_vec()),
            Just(b"\\x".to_vec()),
            Just(b" ".to_vec()),
            (0u32..20).prop_map(|n| n.to_string().into_bytes()),
            Just(b"-1".to_vec()),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn resp_parse_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all(&bytes);
            let _ = decode_in_chunks(&bytes, &[bytes.len() / 2]);
        }

        #[test]
        fn resp_parse_protocolish_bytes_agree_when_chunked(
            bytes in arb_protocolish(),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            // The resumable decoder, fed in arbitrary chunks, finds the same
            // requests and the same error as parsing the whole input.
            prop_assert_eq!(decode_in_chunks(&bytes, &cuts), parse_all(&bytes));
        }

        #[test]
        fn resp_parse_multibulk_round_trips_at_every_split(a in arb_args()) {
            check_every_split(&encode(&a), &a);
        }

        #[test]
        fn resp_parse_inline_round_trips_at_every_split(a in arb_args()) {
            check_every_split(&encode_inline(&a), &a);
        }

        #[test]
        fn resp_parse_pipeline_round_trips(
            reqs in prop::collection::vec((arb_args(), any::<bool>()), 1..6),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut input = Vec::new();
            for (a, inline) in &reqs {
                input.extend(if *inline { encode_inline(a) } else { encode(a) });
            }
            let want: Vec<Vec<Vec<u8>>> = reqs.into_iter().map(|(a, _)| a).collect();
            prop_assert_eq!(parse_all(&input), (want.clone(), Ok(())));
            prop_assert_eq!(decode_in_chunks(&input, &cuts), (want, Ok(())));
        }
    }
}
