//! A minimal blocking RESP2 client: enough for AUTH, INFO and
//! BRAID.SNAPSHOT.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest bulk reply accepted (INFO is a few kB).
const MAX_BULK: usize = 64 << 20;

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

    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        if !buf.ends_with(b"\r\n") {
            return Err(bad("reply line without CRLF"));
        }
        buf.truncate(buf.len() - 2);
        String::from_utf8(buf).map_err(|_| bad("reply line is not UTF-8"))
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let int = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad(format!("bad length {s:?}")))
        };
        Ok(match kind {
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
                    let mut buf = vec![0u8; n + 2];
                    io::Read::read_exact(&mut self.r, &mut buf)?;
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
                    let mut items = Vec::new();
                    for _ in 0..n {
                        items.push(self.read_reply()?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(bad(format!("unexpected reply {line:?}"))),
        })
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

/// `key:value` lines of an INFO text (comments and blank lines skipped).
pub(crate) fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('\r').to_string()))
        .collect()
}
