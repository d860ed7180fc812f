//! Starting the real `braid-server` binary for integration tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `braid-server` process on a free port with its own data directory.
pub struct Braid {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Where the server's stderr goes (appended, across restarts) and its
    /// `RUST_LOG`; inherited from the test, at `warn`, when `None`.
    stderr_log: Option<(PathBuf, String)>,
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free UDP port on loopback (bound then released), for replication.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// Cluster certificates for `regions` (comma-separated) into `dir`, made by
/// `braid-server gen-certs` as a user would.
pub fn gen_certs(dir: &Path, regions: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_braid-server"))
        .args(["gen-certs", "--regions", regions, "--out"])
        .arg(dir)
        .output()
        .expect("gen-certs runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Braid {
    /// Starts a server with a fresh temporary data directory.
    pub fn start(extra: &[&str]) -> Braid {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut b = Braid {
            child: None,
            port: free_port(),
            dir,
            _tmp: Some(tmp),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            stderr_log: None,
        };
        b.spawn();
        b
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Braid {
        let mut b = Braid {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            _tmp: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            stderr_log: None,
        };
        b.spawn();
        b
    }

    /// Starts a server on an existing data directory with its stderr
    /// appended to `log` (this start and every restart), at `RUST_LOG`
    /// level `level`.
    pub fn start_in_logged(dir: &Path, extra: &[&str], log: &Path, level: &str) -> Braid {
        let mut b = Braid {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            _tmp: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            stderr_log: Some((log.to_path_buf(), level.to_string())),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let (stderr, level) = match &self.stderr_log {
            None => (Stdio::inherit(), "warn"),
            Some((path, level)) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("server log file");
                (Stdio::from(file), level.as_str())
            }
        };
        let child = Command::new(env!("CARGO_BIN_EXE_braid-server"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(&self.extra)
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("braid-server starts");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                if self.answered_by_another(stream) {
                    // Another test's server took the port between
                    // `free_port` and our bind: ours failed; try another.
                    if let Some(mut c) = self.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    self.port = free_port();
                    self.spawn();
                }
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("braid-server exited during start-up: {status}");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("braid-server did not start listening on {}", self.port);
    }

    /// Whether the server on our port is another process (its `INFO
    /// server` names another `process_id`).
    fn answered_by_another(&self, mut stream: std::net::TcpStream) -> bool {
        use std::io::{Read, Write};
        let Some(pid) = self.child.as_ref().map(|c| c.id()) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream
            .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            .is_err()
        {
            return false;
        }
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !reply.windows(11).any(|w| w == b"process_id:") || !reply.ends_with(b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => reply.extend_from_slice(&buf[..n]),
                // An error reply (a password is required) or a closed
                // connection says nothing about who answered.
                _ => return false,
            }
            if reply.starts_with(b"-") {
                return false;
            }
        }
        let text = String::from_utf8_lossy(&reply);
        !text.contains(&format!("process_id:{pid}\r\n"))
    }

    /// Restarts on the same data directory (after a kill or a stop).
    pub fn restart(&mut self) {
        self.port = free_port();
        self.spawn();
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().ok()
    }

    /// A `redis://` URL for this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A synchronous client connection.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("client connects")
    }
}

impl Drop for Braid {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `ok` every 10 ms until it holds; panics with `what()` after
/// `limit`. What the tests await instead of sleeping.
pub fn wait_until(limit: Duration, what: impl Fn() -> String, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A relay to `target` on a free loopback port that is none of `avoid`
/// (ports regions are about to bind: a relay must never squat them).
pub fn start_relay(
    rt: &tokio::runtime::Runtime,
    target: std::net::SocketAddr,
    link: braid::relay::LinkConditions,
    avoid: &[u16],
) -> braid::relay::RelayHandle {
    loop {
        let r = rt
            .block_on(braid::relay::Relay::start(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                target,
                link,
                link,
            ))
            .expect("relay starts");
        if !avoid.contains(&r.local_addr().port()) {
            return r;
        }
        r.stop();
    }
}
