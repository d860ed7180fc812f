//! A real `redis-server` for tests that compare Braid with Redis.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a free port, killed when dropped so a
/// failing test never leaks one.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts a server, or returns `None` (after printing why) if
    /// `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("note: redis-server is not on PATH; skipping the comparison with Redis");
            return None;
        }
        // A port just released by the OS can be taken by someone else before
        // Redis binds it; try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = tempfile::tempdir().expect("temp dir");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // exited, e.g. the port was taken
                }
                if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
                    if c.write_all(b"PING\r\n").is_ok() && read_line(&mut c) == b"+PONG\r\n" {
                        return Some(server);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start");
    }

    /// A connection with a 5 s read timeout.
    pub fn connect(&self) -> TcpStream {
        let c = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c
    }

    /// Runs one command on a fresh connection and returns its reply line.
    pub fn command(&self, line: &str) -> Vec<u8> {
        let mut c = self.connect();
        c.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        read_line(&mut c)
    }

    /// Sends `input` on a fresh connection; returns everything Redis replies
    /// within `wait`, and whether it closed the connection.
    pub fn send_raw(&self, input: &[u8], wait: Duration) -> (Vec<u8>, bool) {
        let mut c = self.connect();
        c.set_read_timeout(Some(wait)).expect("timeout");
        // Redis may close while a large input is still being written.
        let _ = c.write_all(input);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (out, false)
                }
                Err(_) => return (out, true),
            }
        }
    }
}

/// One reply line (up to and including `\n`).
pub fn read_line(c: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let _ = BufReader::new(c).read_until(b'\n', &mut line);
    line
}
