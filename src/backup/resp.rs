//! A minimal blocking RESP2 client: enough for AUTH, INFO and
//! BRAID.SNAPSHOT.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest bulk reply accepted (INFO is a few kB).
const MAX_BULK: usize = 64 << 20;

/// Longest reply line accepted (a status, error or length line): a server
/// that sends a line without end must not make the client buffer without
/// bound.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Deepest nesting of arrays accepted: the commands used reply with flat
/// arrays at most; each level costs a stack frame.
pub(crate) const MAX_DEPTH: usize = 8;

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// One connection.
pub(crate) struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Client {
    /// Connects with a timeout for the connection and for each reply.
    pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<Client> {
        let mut last = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))?;
                    let _ = s.set_nodelay(true);
                    return Ok(Client {
                        r: BufReader::new(s.try_clone()?),
                        w: s,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| bad(format!("{host} resolves to no address"))))
    }

    /// Sends a command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.r, 0)
    }

    /// `INFO section` as key → value.
    pub(crate) fn info(&mut self, section: &str) -> io::Result<BTreeMap<String, String>> {
        match self.call(&["INFO", section])? {
            Reply::Bulk(Some(b)) => Ok(parse_info(&String::from_utf8_lossy(&b))),
            Reply::Error(e) => Err(io::Error::other(format!("INFO {section}: {e}"))),
            other => Err(bad(format!("INFO {section}: unexpected reply {other:?}"))),
        }
    }
}

/// One reply line without its CRLF, at most [`MAX_LINE`] bytes.
fn line<R: BufRead>(r: &mut R) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = Read::take(&mut *r, MAX_LINE as u64 + 2).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if !buf.ends_with(b"\r\n") {
        if n > MAX_LINE {
            return Err(bad(format!("reply line longer than {MAX_LINE} bytes")));
        }
        return Err(bad("reply line without CRLF"));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|_| bad("reply line is not UTF-8"))
}

/// Reads one reply nested `depth` arrays deep. Every length is checked
/// before anything is allocated for it; an array's elements are read (and
/// stored) one by one, so a lying count costs nothing.
pub(crate) fn read_reply<R: BufRead>(r: &mut R, depth: usize) -> io::Result<Reply> {
    let line = line(r)?;
    // By character, not byte: a reply line starting with a multi-byte
    // character made `split_at(1)` panic (found by fuzzing).
    let mut chars = line.chars();
    let kind = chars.next().map(String::from).unwrap_or_default();
    let rest = chars.as_str();
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| bad(format!("bad length {s:?}")))
    };
    Ok(match kind.as_str() {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Integer(int(rest)?),
        "$" => {
            let n = int(rest)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let n = usize::try_from(n).map_err(|_| bad("bulk length"))?;
                if n > MAX_BULK {
                    return Err(bad(format!("bulk reply of {n} bytes is too large")));
                }
                // Grows only as the bytes arrive: a short reply that
                // announces MAX_BULK costs what it sends.
                let mut buf = Vec::new();
                Read::take(&mut *r, n as u64 + 2).read_to_end(&mut buf)?;
                if buf.len() < n + 2 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection inside a bulk reply",
                    ));
                }
                if !buf.ends_with(b"\r\n") {
                    return Err(bad("bulk reply without CRLF"));
                }
                buf.truncate(n);
                Reply::Bulk(Some(buf))
            }
        }
        "*" => {
            let n = int(rest)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                if depth >= MAX_DEPTH {
                    return Err(bad(format!("reply nests arrays deeper than {MAX_DEPTH}")));
                }
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(read_reply(r, depth + 1)?);
                }
                Reply::Array(Some(items))
            }
        }
        _ => return Err(bad(format!("unexpected reply {line:?}"))),
    })
}

/// `key:value` lines of an INFO text (comments and blank lines skipped).
pub(crate) fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('\r').to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut &bytes[..], 0)
    }

    #[test]
    fn backup_resp_reads_replies() {
        assert_eq!(parse(b"+OK\r\n").ok(), Some(Reply::Simple("OK".into())));
        assert_eq!(parse(b":-3\r\n").ok(), Some(Reply::Integer(-3)));
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n").ok(),
            Some(Reply::Bulk(Some(b"a\r\n".to_vec())))
        );
        assert_eq!(
            parse(b"*2\r\n$-1\r\n*-1\r\n").ok(),
            Some(Reply::Array(Some(vec![
                Reply::Bulk(None),
                Reply::Array(None)
            ])))
        );
    }

    /// Found in the fuzzing audit: nested arrays recursed without bound (a stack
    /// overflow from a hostile or broken server).
    #[test]
    fn backup_resp_refuses_deep_nesting() {
        let mut deep = b"*1\r\n".repeat(MAX_DEPTH);
        deep.extend_from_slice(b"+x\r\n");
        assert!(parse(&deep).is_ok(), "MAX_DEPTH levels are fine");
        let deeper = b"*1\r\n".repeat(100_000);
        let e = parse(&deeper).expect_err("too deep");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    /// Found by fuzzing: a line starting with a multi-byte character
    /// panicked (a string split inside the character).
    #[test]
    fn backup_resp_multibyte_first_character_is_an_error() {
        let e = parse("\u{7b63}rver\r\n".as_bytes()).expect_err("unknown reply type");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(parse("é\r\n".as_bytes()).is_err());
    }

    /// A line without end, or a bulk length announcing more than is sent,
    /// is refused without buffering more than the limits.
    #[test]
    fn backup_resp_bounds_lines_and_bulks() {
        let mut long = b"+".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        long.extend_from_slice(b"\r\n");
        let e = parse(&long).expect_err("line too long");
        assert!(e.to_string().contains("longer than"), "{e}");
        let e = parse(b"$67108864\r\nabc").expect_err("short bulk");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = parse(b"$67108865\r\n").expect_err("bulk above the limit");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
