//! Braid's request parser against a real `redis-server`.
//!
//! Clients and test suites match on Redis' exact protocol-error lines, so for
//! every malformed input below the reply Braid would send (the replies to the
//! well-formed requests before it, then the error line) must equal, byte for
//! byte, what `redis-server` sends, and both must close the connection. Inputs
//! that Redis leaves waiting must leave Braid's parser waiting too, and inline
//! quoting must split arguments identically.
//!
//! Needs `redis-server` on PATH (CI installs it); without it each test prints
//! a note and passes.

use braid::resp::{parse_request, split_args, Connection, ConnectionError, Limits, ProtocolError};
use bytes::Bytes;
use std::io::{BufRead, BufReader, Write};

mod common;

use common::redis::RedisServer;
use std::time::Duration;

/// What Braid answers to `input`: `+PONG` for each request before the first
/// error (every case sends only `PING`s), then the error line. The second
/// value tells whether Braid closes (an error was found).
fn braid_reply(input: &[u8], limits: &Limits) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        match parse_request(rest, limits) {
            Ok(Some((args, n))) => {
                assert_eq!(args, [Bytes::from_static(b"PING")], "case sends PINGs only");
                out.extend_from_slice(b"+PONG\r\n");
                rest = &rest[n..];
            }
            Ok(None) => return (out, false),
            Err(e) => {
                out.extend_from_slice(&e.reply_bytes());
                return (out, true);
            }
        }
    }
}

fn shown(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned();
    if b.len() > 60 {
        format!("{s}... ({} bytes)", b.len())
    } else {
        s
    }
}

fn compare(server: &RedisServer, cases: &[Vec<u8>], limits: &Limits) {
    let mut failures = Vec::new();
    for input in cases {
        let (want, braid_closes) = braid_reply(input, limits);
        // Cases where Redis keeps waiting need a timeout to observe; keep it
        // short, and long enough for a closing reply to arrive otherwise.
        let wait = Duration::from_millis(if braid_closes { 2000 } else { 300 });
        let (got, redis_closed) = server.send_raw(input, wait);
        if got != want || redis_closed != braid_closes {
            failures.push(format!(
                "input {:?}\n  redis: {:?} (closed: {redis_closed})\n  braid: {:?} (closes: {braid_closes})",
                shown(input),
                shown(&got),
                shown(&want)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn malformed_cases() -> Vec<Vec<u8>> {
    let big = 64 * 1024 + 100;
    let mut cases: Vec<Vec<u8>> = [
        // expected '$'
        &b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"[..],
        b"*1\r\nx\r\n",
        b"*1\r\n:1\r\n",
        b"*1\r\n\r\n",
        b"*1\r\n\n\r\n",
        b"*1\r\n\xff\r\n",
        b"*1\r\n\x01\r\n",
        b"*2\r\n$4\r\nPING\r\n*1\r\n",
        // invalid multibulk length
        b"*\r\n",
        b"*abc\r\n",
        b"*01\r\n",
        b"*+1\r\n",
        b"*-0\r\n",
        b"* 1\r\n",
        b"*1 \r\n",
        b"*3000000000\r\n",
        b"*2147483648\r\n",
        b"*9223372036854775807\r\n",
        b"*99999999999999999999\r\n",
        // invalid bulk length
        b"*1\r\n$-1\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$01\r\n",
        b"*1\r\n$+4\r\n",
        b"*1\r\n$-0\r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$9223372036854775808\r\n",
        // unbalanced quotes
        b"\"unbalanced\r\n",
        b"'unbalanced\r\n",
        b"\"a\"b\r\n",
        b"'a'b\r\n",
        b"PING \"a\\\"\r\n",
        b"PING 'a\\'\r\n",
        // good requests first, then the error
        b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n",
        b"*1\r\n$4\r\nPING\r\n\"\r\n",
        b"\r\n*0\r\n*-5\r\nPING\r\n*1\r\n$4\r\nPINGxx*1\r\nfoo\r\n",
        // Redis leaves these waiting (no reply, connection open)
        b"*20000000\r\n",
        b"*2147483647\r\n",
        b"*1\r\n$536870912\r\n",
        b"*1\r\n$4\r\nPING\r",
        b"PING\r\nPI",
        b"PING a\0b\r\n",
        b"*1\0\r\n$4\r\nPING\r\n",
        b"\r\n*0\r\n",
    ]
    .iter()
    .map(|c| c.to_vec())
    .collect();
    // too big inline request / mbulk count string / bulk count string
    cases.push(vec![b'x'; big]);
    cases.push(b"PING\r\n".iter().copied().chain(vec![b'x'; big]).collect());
    let mut mb = b"*".to_vec();
    mb.extend(vec![b'1'; big]);
    cases.push(mb);
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(vec![b'1'; big]);
    cases.push(bulk);
    let mut junk = b"*1\r\n".to_vec();
    junk.extend(vec![b'x'; big]);
    cases.push(junk);
    cases
}

#[test]
fn resp_vs_redis_malformed_requests() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    compare(&server, &malformed_cases(), &Limits::default());
}

#[test]
fn resp_vs_redis_unauthenticated_limits() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    assert_eq!(server.command("CONFIG SET requirepass pw"), b"+OK\r\n");
    let cases: Vec<Vec<u8>> = [
        &b"*11\r\n"[..],
        b"*10\r\n",
        b"*2\r\n$4\r\nAUTH\r\n$16385\r\n",
        b"*2\r\n$4\r\nAUTH\r\n$16384\r\n",
        b"*3000000000\r\n",
    ]
    .iter()
    .map(|c| c.to_vec())
    .collect();
    let limits = Limits {
        auth_required: true,
        ..Limits::default()
    };
    compare(&server, &cases, &limits);
}

/// Reads one RESP2 reply; enough of the protocol for `LRANGE`.
fn read_reply(r: &mut impl BufRead) -> Vec<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("reply line");
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    match line[0] {
        b'*' => {
            let n: usize = text.parse().expect("array length");
            (0..n).flat_map(|_| read_reply(r)).collect()
        }
        b'$' => {
            let n: usize = text.parse().expect("bulk length");
            let mut data = vec![0u8; n + 2];
            r.read_exact(&mut data).expect("bulk data");
            data.truncate(n);
            vec![data]
        }
        b':' | b'+' => vec![],
        _ => panic!("unexpected reply {:?}", String::from_utf8_lossy(&line)),
    }
}

#[test]
fn resp_vs_redis_inline_quoting() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let lines: &[&[u8]] = &[
        b"a b c",
        b"  a\t\tb  ",
        b"\"a b\" 'c d'",
        b"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"",
        b"\"\\x41\\x4a\\x4A\\xff\\x00\\xZZ\\x4\"",
        b"'it\\'s' 'a\\nb\\\\x'",
        b"foo\"bar baz\" qux'x y'",
        b"\"\" ''",
        b"a\x0bb \x0cc",
        b"\x0b\x0ca\x0b",
        b"a\rb",
        b"\"a\"\x0b'b'\x0c\"c\"",
        b"\"a\rb\"",
        b"\xff\xfe \"\xc3\xa9\"",
    ];
    let conn = server.connect();
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    for line in lines {
        let mut full = b"RPUSH l ".to_vec();
        full.extend_from_slice(line);
        let want = split_args(&full).expect("balanced");
        writer
            .write_all(b"DEL l\r\n")
            .and_then(|_| writer.write_all(&full))
            .and_then(|_| writer.write_all(b"\r\nLRANGE l 0 -1\r\n"))
            .expect("write");
        read_reply(&mut reader); // DEL
        read_reply(&mut reader); // RPUSH
        let got = read_reply(&mut reader);
        assert_eq!(
            got,
            want[2..],
            "inline line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn resp_vs_redis_query_buffer_limit() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    assert_eq!(
        server.command("CONFIG SET client-query-buffer-limit 1mb"),
        b"+OK\r\n"
    );
    let mut input = b"*1\r\n$3000000\r\n".to_vec();
    input.extend(vec![b'x'; 2_000_000]);
    // Redis closes such a client without any reply.
    let (got, closed) = server.send_raw(&input, Duration::from_secs(5));
    assert_eq!((got.as_slice(), closed), (&b""[..], true));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let (server_side, mut client) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(server_side);
        conn.set_query_buffer_limit(1024 * 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = client.write_all(&input).await;
        });
        let result = conn.read_request().await;
        drop(conn);
        let _ = writer.await;
        result
    });
    assert!(
        matches!(result, Err(ConnectionError::QueryBufferLimit { .. })),
        "{result:?}"
    );
}

/// The error texts Braid knows, each produced by some case above against
/// the real server (a guard against a variant no case exercises).
#[test]
fn resp_vs_redis_cases_cover_every_error() {
    let mut seen = std::collections::HashSet::new();
    for input in malformed_cases() {
        let mut rest = &input[..];
        while let Ok(Some((_, n))) = parse_request(rest, &Limits::default()) {
            rest = &rest[n..];
        }
        if let Err(e) = parse_request(rest, &Limits::default()) {
            seen.insert(std::mem::discriminant(&e));
        }
    }
    for e in [
        ProtocolError::InvalidMultibulkLength,
        ProtocolError::InvalidBulkLength,
        ProtocolError::ExpectedDollar(b'x'),
        ProtocolError::TooBigInline,
        ProtocolError::TooBigMultibulkCount,
        ProtocolError::TooBigBulkCount,
        ProtocolError::UnbalancedQuotes,
    ] {
        assert!(
            seen.contains(&std::mem::discriminant(&e)),
            "no case for {e}"
        );
    }
}
