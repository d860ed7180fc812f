//! braid-relay: WAN links between regions on one machine.
//!
//! Each link is a UDP relay (see `braid::relay`): it listens on one
//! address, forwards every datagram to a target and the target's replies
//! back, with a one-way delay, jitter and random loss per direction. Runs
//! until Ctrl-C (or SIGTERM), printing each link at start and counters
//! periodically. Needs no privileges.
//!
//! Exit codes: 0 stopped by a signal, 1 a link could not start, 2 usage.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use braid::relay::{LinkConditions, Relay, RelayHandle};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use serde::Deserialize;

const LONG_ABOUT: &str = "\
Emulates WAN links between Braid regions on one machine: each --link is a \
UDP relay that listens on LISTEN and forwards datagrams to TARGET (and the \
replies back), adding a one-way delay, jitter and random loss in each \
direction. No privileges needed.

A region that dials a peer sends to the relay instead of the peer: for \
regions us, eu, asia with replication ports 7401, 7402, 7403, start one \
relay per dialing region and peer, and give each region the relays as its \
peers' addresses, e.g. us runs with --peer eu=2@127.0.0.1:17412 \
--peer asia=3@127.0.0.1:17413:

  braid-relay \\
    --link 127.0.0.1:17412=127.0.0.1:7402,name=us-eu,delay=40ms,jitter=4ms \\
    --link 127.0.0.1:17421=127.0.0.1:7401,name=eu-us,delay=40ms,jitter=4ms \\
    --link 127.0.0.1:17413=127.0.0.1:7403,name=us-asia,delay=90ms,jitter=9ms \\
    --link 127.0.0.1:17431=127.0.0.1:7401,name=asia-us,delay=90ms,jitter=9ms \\
    --link 127.0.0.1:17423=127.0.0.1:7403,name=eu-asia,delay=120ms,jitter=12ms \\
    --link 127.0.0.1:17432=127.0.0.1:7402,name=asia-eu,delay=120ms,jitter=12ms

Link options (after LISTEN=TARGET, comma separated KEY=VALUE):
  name=TEXT              label in the output
  delay=DURATION         one-way delay, both directions (e.g. 40ms, 1.5s, 0)
  jitter=DURATION        delay varies within delay ± jitter (order is kept)
  loss=FRACTION          datagrams dropped at random: 0.01 or 1%
  forward-delay=, forward-jitter=, forward-loss=     LISTEN → TARGET only
  backward-delay=, backward-jitter=, backward-loss=  TARGET → LISTEN only

--config FILE reads links from TOML instead of (or besides) --link:

  stats_every = \"10s\"
  [[link]]
  name = \"us-eu\"
  listen = \"127.0.0.1:17412\"
  target = \"127.0.0.1:7402\"
  delay = \"40ms\"
  jitter = \"4ms\"
  loss = 0.001
  backward = { delay = \"45ms\" }   # overrides for one direction (or forward)

Exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 a link could not start, 2 usage.";

/// Emulates WAN links between Braid regions: UDP relays with delay, jitter
/// and loss.
#[derive(Parser, Debug)]
#[command(name = "braid-relay", version, long_about = LONG_ABOUT)]
struct Cli {
    /// A link: LISTEN=TARGET[,KEY=VALUE]... with keys name, delay, jitter,
    /// loss, forward-*, backward-* (repeatable; see --help).
    #[arg(long = "link", value_name = "LISTEN=TARGET[,KEY=VALUE]...", value_parser = parse_link)]
    links: Vec<LinkSpec>,
    /// Links from a TOML file (see --help).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print every link's counters this often (0: only at exit). Overrides
    /// the file's stats_every.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    stats_every: Option<Duration>,
}

/// One link to run.
#[derive(Clone, Debug)]
struct LinkSpec {
    name: String,
    listen: SocketAddr,
    target: SocketAddr,
    forward: LinkConditions,
    backward: LinkConditions,
}

/// Conditions given for both directions and per direction.
#[derive(Default)]
struct Settings {
    both: Partial,
    forward: Partial,
    backward: Partial,
}

#[derive(Default, Clone, Copy)]
struct Partial {
    delay: Option<Duration>,
    jitter: Option<Duration>,
    loss: Option<f64>,
}

impl Partial {
    fn over(self, base: Partial) -> LinkConditions {
        LinkConditions {
            delay: self.delay.or(base.delay).unwrap_or_default(),
            jitter: self.jitter.or(base.jitter).unwrap_or_default(),
            loss: self.loss.or(base.loss).unwrap_or_default(),
            cut: false,
        }
    }
}

impl Settings {
    fn build(&self) -> (LinkConditions, LinkConditions) {
        (self.forward.over(self.both), self.backward.over(self.both))
    }
}

/// `40ms`, `1.5s`, `250us`, `0`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?} needs a unit (us, ms or s), e.g. 40ms"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 40ms, 1.5s)"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        other => return Err(format!("{s:?}: unknown unit {other:?} (us, ms or s)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// `0.01` or `1%`, between 0 and 1.
fn parse_loss(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a fraction (e.g. 0.01 or 1%)"))?;
    check_loss(v).map_err(|e| format!("{s:?}: {e}"))
}

fn check_loss(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("loss must be between 0 and 1 (0% and 100%)".into())
    }
}

/// `127.0.0.1:7479`, `localhost:7479`, `[::1]:7479`, or a bare port
/// (loopback).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Ok(port) = t.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    t.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not an address (HOST:PORT): {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// `LISTEN=TARGET[,KEY=VALUE]...`.
fn parse_link(s: &str) -> Result<LinkSpec, String> {
    let mut parts = s.split(',');
    let head = parts.next().unwrap_or_default();
    let (listen, target) = head
        .split_once('=')
        .ok_or_else(|| format!("{head:?} should be LISTEN=TARGET"))?;
    let listen = parse_addr(listen).map_err(|e| format!("listen address: {e}"))?;
    let target = parse_addr(target).map_err(|e| format!("target address: {e}"))?;
    let mut name = None;
    let mut settings = Settings::default();
    for kv in parts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("{kv:?} should be KEY=VALUE"))?;
        let k = k.trim();
        let (p, key) = if let Some(key) = k.strip_prefix("forward-") {
            (&mut settings.forward, key)
        } else if let Some(key) = k.strip_prefix("backward-") {
            (&mut settings.backward, key)
        } else if k == "name" {
            name = Some(v.trim().to_string());
            continue;
        } else {
            (&mut settings.both, k)
        };
        match key {
            "delay" => p.delay = Some(parse_duration(v).map_err(|e| format!("{k}: {e}"))?),
            "jitter" => p.jitter = Some(parse_duration(v).map_err(|e| format!("{k}: {e}"))?),
            "loss" => p.loss = Some(parse_loss(v).map_err(|e| format!("{k}: {e}"))?),
            _ => {
                return Err(format!(
                    "unknown key {k:?} (name, delay, jitter, loss, forward-*, backward-*)"
                ))
            }
        }
    }
    let (forward, backward) = settings.build();
    Ok(LinkSpec {
        name: name.unwrap_or_default(),
        listen,
        target,
        forward,
        backward,
    })
}

/// The TOML file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    stats_every: Option<String>,
    #[serde(default)]
    link: Vec<FileLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLink {
    name: Option<String>,
    listen: String,
    target: String,
    delay: Option<String>,
    jitter: Option<String>,
    loss: Option<FileLoss>,
    #[serde(default)]
    forward: FileConditions,
    #[serde(default)]
    backward: FileConditions,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConditions {
    delay: Option<String>,
    jitter: Option<String>,
    loss: Option<FileLoss>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum FileLoss {
    Number(f64),
    Text(String),
}

impl FileConditions {
    fn partial(&self, prefix: &str) -> Result<Partial, String> {
        let d = |v: &Option<String>, k: &str| {
            v.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| format!("{prefix}{k}: {e}"))
        };
        Ok(Partial {
            delay: d(&self.delay, "delay")?,
            jitter: d(&self.jitter, "jitter")?,
            loss: match &self.loss {
                None => None,
                Some(FileLoss::Number(v)) => Some(check_loss(*v)),
                Some(FileLoss::Text(t)) => Some(parse_loss(t)),
            }
            .transpose()
            .map_err(|e| format!("{prefix}loss: {e}"))?,
        })
    }
}

/// Links and the counter period from a TOML file.
fn read_config(path: &Path) -> Result<(Vec<LinkSpec>, Option<Duration>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    let stats = file
        .stats_every
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("stats_every: {e}"))?;
    let mut links = Vec::new();
    for (i, l) in file.link.iter().enumerate() {
        let at = |e: String| match &l.name {
            Some(n) => format!("link {} ({n}): {e}", i + 1),
            None => format!("link {}: {e}", i + 1),
        };
        let listen = parse_addr(&l.listen).map_err(|e| at(format!("listen: {e}")))?;
        let target = parse_addr(&l.target).map_err(|e| at(format!("target: {e}")))?;
        let settings = Settings {
            both: FileConditions {
                delay: l.delay.clone(),
                jitter: l.jitter.clone(),
                loss: l.loss.clone(),
            }
            .partial("")
            .map_err(at)?,
            forward: l.forward.partial("forward.").map_err(at)?,
            backward: l.backward.partial("backward.").map_err(at)?,
        };
        let (forward, backward) = settings.build();
        links.push(LinkSpec {
            name: l.name.clone().unwrap_or_default(),
            listen,
            target,
            forward,
            backward,
        });
    }
    Ok((links, stats))
}

fn usage_error(kind: ErrorKind, msg: String) -> ! {
    Cli::command().error(kind, msg).exit()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut links = cli.links.clone();
    let mut stats_every = Duration::from_secs(10);
    if let Some(path) = &cli.config {
        match read_config(path) {
            Ok((l, s)) => {
                links.extend(l);
                if let Some(s) = s {
                    stats_every = s;
                }
            }
            Err(e) => usage_error(
                ErrorKind::InvalidValue,
                format!("--config {}: {e}", path.display()),
            ),
        }
    }
    if let Some(s) = cli.stats_every {
        stats_every = s;
    }
    if links.is_empty() {
        usage_error(
            ErrorKind::MissingRequiredArgument,
            "no link: give at least one --link LISTEN=TARGET or a --config file with [[link]]"
                .into(),
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("braid-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(links, stats_every))
}

async fn run(links: Vec<LinkSpec>, stats_every: Duration) -> ExitCode {
    let mut running: Vec<(LinkSpec, RelayHandle)> = Vec::new();
    for mut l in links {
        match Relay::start(l.listen, l.target, l.forward, l.backward).await {
            Ok(h) => {
                if l.name.is_empty() {
                    l.name = format!("{}->{}", h.local_addr(), l.target);
                }
                println!(
                    "{}  {} -> {}  forward: {}  backward: {}",
                    l.name,
                    h.local_addr(),
                    l.target,
                    l.forward,
                    l.backward
                );
                running.push((l, h));
            }
            Err(e) => {
                eprintln!(
                    "braid-relay: link {} cannot listen on {}: {e}",
                    l.name, l.listen
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let width = running.iter().map(|(l, _)| l.name.len()).max().unwrap_or(0);
    let started = Instant::now();
    let print = |running: &[(LinkSpec, RelayHandle)]| {
        let secs = started.elapsed().as_secs();
        for (l, h) in running {
            let s = h.stats();
            println!(
                "[{secs}s] {:width$}  forward {}  backward {}  clients={}",
                l.name, s.forward, s.backward, s.clients
            );
        }
    };
    let mut tick = tokio::time::interval(if stats_every.is_zero() {
        Duration::from_secs(86_400 * 365)
    } else {
        stats_every
    });
    tick.tick().await;
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => print(&running),
            r = &mut stop => {
                if let Err(e) = r {
                    eprintln!("braid-relay: cannot wait for signals: {e}");
                }
                break;
            }
        }
    }
    print(&running);
    for (_, h) in &running {
        h.stop();
    }
    ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
