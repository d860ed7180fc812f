//! Reply values and their wire encoding in RESP2 and RESP3.
//!
//! Command code builds a [`Frame`] once, in RESP3 terms (maps, sets,
//! doubles, booleans...), and the connection encodes it for whichever
//! protocol the client negotiated with `HELLO`. The RESP2 downgrades are the
//! ones Redis 7 applies (`addReplyMap`, `addReplyDouble`, `addReplyBool`...
//! in `networking.c`), so a RESP2 client sees exactly what Redis would send.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

/// The protocol version a client speaks; chosen per connection with `HELLO`.
///
/// Why an explicit value rather than two encoders: the same reply is
/// encoded differently for the two versions, and the choice can change in the
/// middle of a connection (`HELLO 3`, then `HELLO 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// RESP2, the default for every new connection (as in Redis).
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`: native maps, sets, doubles, booleans, nulls.
    Resp3,
}

/// One reply value, possibly nested.
///
/// The variants are RESP3's types; [`Frame::write_to`] downgrades them for
/// RESP2 clients. `Error` and `Simple` hold text that is sent as one line:
/// any `\r` or `\n` inside is replaced by a space when written, so a reply can
/// never break the framing. Differs from Redis: Redis does this for formatted
/// errors only and would send a status line with a CR/LF broken.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A status line such as `+OK`: short, binary-unsafe text (borrowed
    /// when fixed, so that the commonest replies allocate nothing).
    Simple(Cow<'static, str>),
    /// An error line, including its code: `ERR unknown command`,
    /// `WRONGTYPE ...`. Written as `-<text>\r\n` in both protocols.
    Error(String),
    /// A signed 64-bit integer, `:<n>`.
    Integer(i64),
    /// A binary-safe string, `$<len>`.
    Bulk(Bytes),
    /// A missing value (`GET` of a missing key): `$-1` in RESP2, `_` in RESP3.
    Null,
    /// A missing aggregate (`LPOP missing 2`, `BLPOP` timeout): `*-1` in RESP2,
    /// `_` in RESP3.
    NullArray,
    /// An ordered list of values, `*<n>`.
    Array(Vec<Frame>),
    /// Key/value pairs (`HGETALL`, `CONFIG GET`, `HELLO`): `%<n>` in RESP3, a
    /// flat array of `2n` elements (k1, v1, k2, v2...) in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// An unordered collection (`SMEMBERS`): `~<n>` in RESP3, an array in RESP2.
    Set(Vec<Frame>),
    /// A floating point number (`ZSCORE`, `INCRBYFLOAT`): `,<d>` in RESP3, a
    /// bulk string in RESP2; both use [`format_double`].
    Double(f64),
    /// A boolean: `#t`/`#f` in RESP3, the integer `1`/`0` in RESP2.
    Boolean(bool),
    /// An arbitrary-precision integer given as its decimal text: `(<digits>`
    /// in RESP3, a bulk string in RESP2.
    BigNumber(String),
    /// Text with a three-letter format (`txt`, `mkd`), as `INFO` and
    /// `CLIENT LIST` reply: `=<len>\r\n<fmt>:<text>` in RESP3, a bulk string
    /// of the text alone in RESP2.
    Verbatim {
        /// The format tag, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text, without the `fmt:` prefix.
        text: Bytes,
    },
    /// An out-of-band message (Pub/Sub delivery, client tracking
    /// invalidation): `><n>` in RESP3, an ordinary array in RESP2.
    Push(Vec<Frame>),
}

impl Frame {
    /// `+OK`, the most common reply; a constructor so call sites stay short.
    pub fn ok() -> Frame {
        Frame::Simple(Cow::Borrowed("OK"))
    }

    /// `+QUEUED`, the reply to every command inside `MULTI`.
    pub fn queued() -> Frame {
        Frame::Simple(Cow::Borrowed("QUEUED"))
    }

    /// A status reply such as `+PONG`.
    pub fn simple(text: impl Into<Cow<'static, str>>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error reply. `msg` is the whole line after `-`, code included:
    /// `Frame::error("ERR syntax error")`, `Frame::error("WRONGTYPE ...")`.
    /// Keeping the code in the text (as Redis does) lets callers send any
    /// error class without a separate type.
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    /// An integer reply.
    pub fn integer(n: i64) -> Frame {
        Frame::Integer(n)
    }

    /// A bulk string from anything that converts to [`Bytes`] without a copy
    /// (`Bytes`, `Vec<u8>`, `String`, `&'static str`, `&'static [u8]`).
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// A bulk string copied from a borrowed slice, for data that is not
    /// `'static` and not already owned.
    pub fn bulk_copy(data: &[u8]) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(data))
    }

    /// A bulk string holding the decimal text of `n`, as Redis replies for
    /// integers stored in strings (`GET` of a counter).
    pub fn bulk_int(n: i64) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(
            itoa::Buffer::new().format(n).as_bytes(),
        ))
    }

    /// The null reply (`$-1` / `_`).
    pub fn null() -> Frame {
        Frame::Null
    }

    /// The null aggregate reply (`*-1` / `_`).
    pub fn null_array() -> Frame {
        Frame::NullArray
    }

    /// An array reply.
    pub fn array(items: impl IntoIterator<Item = Frame>) -> Frame {
        Frame::Array(items.into_iter().collect())
    }

    /// The empty array `*0`, as replied by `KEYS` with no match and many others.
    pub fn empty_array() -> Frame {
        Frame::Array(Vec::new())
    }

    /// An array of bulk strings, the shape of most multi-value replies
    /// (`LRANGE`, `KEYS`, `HKEYS`...).
    pub fn bulk_array<T: Into<Bytes>>(items: impl IntoIterator<Item = T>) -> Frame {
        Frame::Array(items.into_iter().map(|b| Frame::Bulk(b.into())).collect())
    }

    /// A map reply.
    pub fn map(pairs: impl IntoIterator<Item = (Frame, Frame)>) -> Frame {
        Frame::Map(pairs.into_iter().collect())
    }

    /// A set reply.
    pub fn set(items: impl IntoIterator<Item = Frame>) -> Frame {
        Frame::Set(items.into_iter().collect())
    }

    /// A push message.
    pub fn push(items: impl IntoIterator<Item = Frame>) -> Frame {
        Frame::Push(items.into_iter().collect())
    }

    /// A double reply.
    pub fn double(d: f64) -> Frame {
        Frame::Double(d)
    }

    /// A boolean reply.
    pub fn boolean(b: bool) -> Frame {
        Frame::Boolean(b)
    }

    /// A big-number reply from its decimal text.
    pub fn big_number(digits: impl Into<String>) -> Frame {
        Frame::BigNumber(digits.into())
    }

    /// A verbatim-string reply with format `txt`, as `INFO` uses.
    pub fn verbatim_txt(text: impl Into<Bytes>) -> Frame {
        Frame::Verbatim {
            format: *b"txt",
            text: text.into(),
        }
    }

    /// Encodes this frame for `proto`, appending to `out`.
    ///
    /// Why append to a caller-owned buffer: a connection queues many replies
    /// (a pipeline) into one write buffer and flushes them with one syscall.
    pub fn write_to(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Frame::Simple(s) => put_line(out, b'+', s.as_bytes()),
            Frame::Error(s) => put_line(out, b'-', s.as_bytes()),
            Frame::Integer(n) => put_int(out, b':', *n),
            Frame::Bulk(b) => put_bulk(out, b),
            Frame::Null if resp3 => out.put_slice(b"_\r\n"),
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => put_aggregate(out, b'*', items, proto),
            Frame::Set(items) => put_aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Frame::Push(items) => put_aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Frame::Map(pairs) => {
                if resp3 {
                    put_len(out, b'%', pairs.len());
                } else {
                    put_len(out, b'*', pairs.len().saturating_mul(2));
                }
                for (k, v) in pairs {
                    k.write_to(proto, out);
                    v.write_to(proto, out);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, text.as_bytes());
                }
            }
            Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Boolean(b) => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Frame::BigNumber(digits) if resp3 => put_line(out, b'(', digits.as_bytes()),
            Frame::BigNumber(digits) => put_bulk(out, digits.as_bytes()),
            Frame::Verbatim { format, text } if resp3 => {
                put_len(out, b'=', text.len().saturating_add(4));
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Verbatim { text, .. } => put_bulk(out, text),
        }
    }

    /// About how many bytes this frame encodes to (a little more, never
    /// much less), without encoding it.
    ///
    /// Why: the server stops executing a pipelining client's commands once
    /// the replies it holds for it reach `client_output_buffer_limit`, and
    /// decides that while holding the keyspace lock, where encoding would be
    /// wasted work.
    pub fn size_hint(&self) -> usize {
        // Type byte, length digits and CRLFs of one element, rounded up.
        const HEADER: usize = 16;
        let items = |v: &[Frame]| {
            v.iter()
                .fold(HEADER, |n, f| n.saturating_add(f.size_hint()))
        };
        match self {
            Frame::Simple(s) => s.len().saturating_add(HEADER),
            Frame::Error(s) | Frame::BigNumber(s) => s.len().saturating_add(HEADER),
            Frame::Bulk(b) => b.len().saturating_add(HEADER),
            Frame::Verbatim { text, .. } => text.len().saturating_add(HEADER + 4),
            Frame::Integer(_) | Frame::Double(_) => 2 * HEADER,
            Frame::Null | Frame::NullArray | Frame::Boolean(_) => HEADER,
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => items(v),
            Frame::Map(pairs) => pairs.iter().fold(HEADER, |n, (k, v)| {
                n.saturating_add(k.size_hint())
                    .saturating_add(v.size_hint())
            }),
        }
    }

    /// The encoding of this frame as one buffer; convenient in tests and for
    /// one-off replies written outside a [`Connection`](super::Connection).
    pub fn to_bytes(&self, proto: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.write_to(proto, &mut out);
        out.freeze()
    }
}

/// `<prefix><text>\r\n`, with any CR/LF in `text` turned into spaces so the
/// line cannot end early or inject a second reply.
fn put_line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_len(out, b'$', data.len());
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_aggregate(out: &mut BytesMut, prefix: u8, items: &[Frame], proto: Protocol) {
    put_len(out, prefix, items.len());
    for item in items {
        item.write_to(proto, out);
    }
}

fn put_len(out: &mut BytesMut, prefix: u8, n: usize) {
    put_int(out, prefix, i64::try_from(n).unwrap_or(i64::MAX));
}

fn put_int(out: &mut BytesMut, prefix: u8, n: i64) {
    out.put_u8(prefix);
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
    out.put_slice(b"\r\n");
}

/// Formats a double exactly like Redis 7.2+ (`d2string` in `util.c`):
/// `nan`, `inf`, `-inf`, `0`, `-0`; an integral value within ±2^62 as a plain
/// integer (`3`, not `3.0`); anything else as the shortest text that reads
/// back to the same double, laid out like Redis' `fpconv_dtoa` (plain
/// notation for moderate exponents, otherwise `1.5e+300` / `1e-7`).
///
/// Why 7.2's rule: clients parse the text back into a double, and the
/// shortest round-trip form (`1.1`) is what current Redis versions send.
///
/// Differs from Redis: Redis 7.0 (the `redis-server` on the CI machine)
/// printed `%.17g` (`1.1000000000000001`, `1e+21`); Braid follows 7.2 and
/// later. Redis 7.2 uses Grisu2, which in rare cases emits one digit more
/// than the shortest form; Braid always emits the shortest (Rust's
/// formatter), and both read back to the same double.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Redis' `double2ll`: |d| <= LLONG_MAX/2 (as a double, 2^62) and integral.
    const LIMIT: f64 = 4_611_686_018_427_387_904.0;
    if (-LIMIT..=LIMIT).contains(&d) && d.trunc() == d {
        // In range and integral, so the conversion is exact.
        return (d as i64).to_string();
    }
    // Shortest round-trip digits and decimal exponent, e.g. "1.2345e-7".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp10: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let neg = d < 0.0;
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    emit_digits(&digits, exp10, &mut out);
    out
}

/// The layout step of `fpconv_dtoa` (`emit_digits`): the value is
/// `0.d1d2...dn * 10^(exp10+1)`, i.e. `digits * 10^k` with
/// `k = exp10 - (n - 1)`.
fn emit_digits(digits: &[u8], exp10: i32, out: &mut String) {
    let ndigits = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let k = exp10 - (ndigits - 1);
    let exp = (k + ndigits - 1).abs();
    let text = |d: &[u8]| String::from_utf8_lossy(d).into_owned();

    // Plain integer.
    if k >= 0 && exp < ndigits + 7 {
        out.push_str(&text(digits));
        for _ in 0..k {
            out.push('0');
        }
        return;
    }
    // Decimal without exponent.
    if k < 0 && (k > -7 || exp < 4) {
        let offset = ndigits - k.abs();
        if offset <= 0 {
            out.push_str("0.");
            for _ in 0..(-offset) {
                out.push('0');
            }
            out.push_str(&text(digits));
        } else {
            let split = usize::try_from(offset).unwrap_or(0).min(digits.len());
            out.push_str(&text(&digits[..split]));
            out.push('.');
            out.push_str(&text(&digits[split..]));
        }
        return;
    }
    // Scientific notation: d[.ddd]e(+|-)x
    if let Some((first, rest)) = digits.split_first() {
        out.push(char::from(*first));
        if !rest.is_empty() {
            out.push('.');
            out.push_str(&text(rest));
        }
    }
    out.push('e');
    out.push(if k + ndigits - 1 < 0 { '-' } else { '+' });
    out.push_str(&exp.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: Protocol) -> Vec<u8> {
        f.to_bytes(p).to_vec()
    }

    /// Asserts the RESP2 and RESP3 encodings of `f`.
    fn check(f: Frame, resp2: &[u8], resp3: &[u8]) {
        assert_eq!(
            enc(&f, Protocol::Resp2),
            resp2,
            "RESP2 of {f:?}: {:?}",
            String::from_utf8_lossy(&enc(&f, Protocol::Resp2))
        );
        assert_eq!(
            enc(&f, Protocol::Resp3),
            resp3,
            "RESP3 of {f:?}: {:?}",
            String::from_utf8_lossy(&enc(&f, Protocol::Resp3))
        );
    }

    #[test]
    fn resp_frame_size_hint_covers_encoding() {
        let frames = [
            Frame::ok(),
            Frame::error("ERR x"),
            Frame::Integer(i64::MIN),
            Frame::bulk(vec![b'x'; 100_000]),
            Frame::Null,
            Frame::NullArray,
            Frame::Double(-1.234_567_890_123_456_7e-300),
            Frame::big_number("123456789012345678901234567890"),
            Frame::verbatim_txt("some text"),
            Frame::map([(Frame::bulk("a"), Frame::array([Frame::Integer(1)]))]),
            Frame::set([Frame::boolean(true), Frame::bulk("")]),
            Frame::push([Frame::bulk("m"), Frame::Array(Vec::new())]),
        ];
        for f in &frames {
            for proto in [Protocol::Resp2, Protocol::Resp3] {
                let len = f.to_bytes(proto).len();
                let hint = f.size_hint();
                assert!(hint >= len, "{f:?} {proto:?}: hint {hint} < {len}");
                assert!(hint <= len.saturating_mul(2) + 64, "{f:?}: hint {hint}");
            }
        }
    }

    #[test]
    fn resp_frame_simple_and_error() {
        check(Frame::ok(), b"+OK\r\n", b"+OK\r\n");
        check(Frame::simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
        check(Frame::queued(), b"+QUEUED\r\n", b"+QUEUED\r\n");
        check(
            Frame::error("ERR syntax error"),
            b"-ERR syntax error\r\n",
            b"-ERR syntax error\r\n",
        );
        // CR/LF can never end the line early.
        check(
            Frame::error("ERR a\r\nb"),
            b"-ERR a  b\r\n",
            b"-ERR a  b\r\n",
        );
        check(Frame::simple("x\ny"), b"+x y\r\n", b"+x y\r\n");
    }

    #[test]
    fn resp_frame_integer() {
        check(Frame::integer(0), b":0\r\n", b":0\r\n");
        check(Frame::integer(-42), b":-42\r\n", b":-42\r\n");
        check(
            Frame::integer(i64::MIN),
            b":-9223372036854775808\r\n",
            b":-9223372036854775808\r\n",
        );
        check(
            Frame::integer(i64::MAX),
            b":9223372036854775807\r\n",
            b":9223372036854775807\r\n",
        );
    }

    #[test]
    fn resp_frame_bulk() {
        check(Frame::bulk("foo"), b"$3\r\nfoo\r\n", b"$3\r\nfoo\r\n");
        check(Frame::bulk(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
        check(
            Frame::bulk_copy(b"a\r\nb\0"),
            b"$5\r\na\r\nb\0\r\n",
            b"$5\r\na\r\nb\0\r\n",
        );
        check(Frame::bulk_int(-17), b"$3\r\n-17\r\n", b"$3\r\n-17\r\n");
    }

    #[test]
    fn resp_frame_nulls() {
        check(Frame::null(), b"$-1\r\n", b"_\r\n");
        check(Frame::null_array(), b"*-1\r\n", b"_\r\n");
    }

    #[test]
    fn resp_frame_aggregates() {
        check(Frame::empty_array(), b"*0\r\n", b"*0\r\n");
        check(
            Frame::array([Frame::integer(1), Frame::bulk("a"), Frame::Null]),
            b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n",
            b"*3\r\n:1\r\n$1\r\na\r\n_\r\n",
        );
        check(
            Frame::bulk_array(["a", "bc"]),
            b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n",
            b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n",
        );
        check(
            Frame::map([
                (Frame::bulk("k"), Frame::integer(1)),
                (Frame::bulk("d"), Frame::double(1.5)),
            ]),
            b"*4\r\n$1\r\nk\r\n:1\r\n$1\r\nd\r\n$3\r\n1.5\r\n",
            b"%2\r\n$1\r\nk\r\n:1\r\n$1\r\nd\r\n,1.5\r\n",
        );
        check(Frame::map([]), b"*0\r\n", b"%0\r\n");
        check(
            Frame::set([Frame::bulk("a")]),
            b"*1\r\n$1\r\na\r\n",
            b"~1\r\n$1\r\na\r\n",
        );
        check(
            Frame::push([Frame::bulk("message"), Frame::bulk("ch"), Frame::bulk("hi")]),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        );
        // Nesting downgrades every level.
        check(
            Frame::array([Frame::set([Frame::boolean(true)]), Frame::NullArray]),
            b"*2\r\n*1\r\n:1\r\n*-1\r\n",
            b"*2\r\n~1\r\n#t\r\n_\r\n",
        );
    }

    #[test]
    fn resp_frame_double() {
        check(Frame::double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n");
        check(Frame::double(3.0), b"$1\r\n3\r\n", b",3\r\n");
        check(Frame::double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
        check(
            Frame::double(f64::NEG_INFINITY),
            b"$4\r\n-inf\r\n",
            b",-inf\r\n",
        );
        check(Frame::double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
        check(Frame::double(-0.0), b"$2\r\n-0\r\n", b",-0\r\n");
        check(Frame::double(1.1), b"$3\r\n1.1\r\n", b",1.1\r\n");
    }

    #[test]
    fn resp_frame_boolean_bignumber_verbatim() {
        check(Frame::boolean(true), b":1\r\n", b"#t\r\n");
        check(Frame::boolean(false), b":0\r\n", b"#f\r\n");
        check(
            Frame::big_number("3492890328409238509324850943850943825024385"),
            b"$43\r\n3492890328409238509324850943850943825024385\r\n",
            b"(3492890328409238509324850943850943825024385\r\n",
        );
        check(
            Frame::verbatim_txt("Some string"),
            b"$11\r\nSome string\r\n",
            b"=15\r\ntxt:Some string\r\n",
        );
        check(
            Frame::Verbatim {
                format: *b"mkd",
                text: Bytes::new(),
            },
            b"$0\r\n\r\n",
            b"=4\r\nmkd:\r\n",
        );
    }

    #[test]
    fn resp_format_double_like_redis_7_2() {
        let cases: &[(f64, &str)] = &[
            (1.1, "1.1"),
            (0.1, "0.1"),
            (3.0, "3"),
            (-3.0, "-3"),
            (12345.678, "12345.678"),
            (1e15, "1000000000000000"),
            (1e18, "1000000000000000000"),
            (4_611_686_018_427_387_904.0, "4611686018427387904"),
            (-4_611_686_018_427_387_904.0, "-4611686018427387904"),
            (1.2345678901234568e17, "123456789012345680"),
            (5e18, "5e+18"),
            (4.7e18, "4.7e+18"),
            (1e19, "1e+19"),
            (1e21, "1e+21"),
            (1e300, "1e+300"),
            (1.5e300, "1.5e+300"),
            (1e105, "1e+105"),
            (-1e105, "-1e+105"),
            (1e-7, "1e-7"),
            (1.1e-7, "1.1e-7"),
            (1e-6, "0.000001"),
            (1.5e-6, "1.5e-6"),
            (0.001, "0.001"),
            (123.456, "123.456"),
            (-0.5, "-0.5"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (12.3456789012, "12.3456789012"),
            (1.234e-5, "1.234e-5"),
            (0.00001, "0.00001"),
            (0.0001234, "1.234e-4"),
            (0.001234, "0.001234"),
            (123456789.123, "123456789.123"),
        ];
        for &(d, want) in cases {
            assert_eq!(format_double(d), want, "format_double({d:e})");
            if d.is_finite() {
                assert_eq!(format_double(d).parse::<f64>().ok(), Some(d));
            }
        }
    }

    proptest::proptest! {
        /// Every finite double reads back exactly from its text.
        #[test]
        fn resp_format_double_round_trips(bits in proptest::num::u64::ANY) {
            let d = f64::from_bits(bits);
            let text = format_double(d);
            if d.is_finite() {
                proptest::prop_assert_eq!(text.parse::<f64>().ok(), Some(d), "{}", text);
            }
        }
    }
}
