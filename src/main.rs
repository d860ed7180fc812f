//! `braid-server`: runs one Braid region.

mod demo;
mod simulate;

use braid::config::{ByteSize, Config, FsyncPolicy, LogFormat, PeerConfig};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the write path allocates small,
/// short-lived buffers on many threads, where glibc's arenas spent ~15 % of
/// the server's CPU (perf, SET -P 16).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Braid: an active-active, geo-replicated, durable key-value store that
/// speaks the Redis protocol. Runs one region. Every option can also be set
/// in a TOML file (`--config`) under the same name with `_` for `-`; flags
/// override the file.
#[derive(Parser, Debug)]
#[command(name = "braid-server", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on for clients [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Port to listen on for clients [default: 7379].
    #[arg(long)]
    port: Option<u16>,
    /// Directory holding the op log and snapshots [default: ./braid-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Name of this region [default: local].
    #[arg(long)]
    region: Option<String>,
    /// Stable numeric id of this region, unique in the cluster [default: 1].
    #[arg(long)]
    region_id: Option<u16>,
    /// When writes are acknowledged: always (fsync before replying, group
    /// commit), everysec, or no [default: always].
    #[arg(long, value_name = "POLICY")]
    fsync: Option<FsyncPolicy>,
    /// Password clients must AUTH with [default: none].
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// Memory limit (e.g. 4gb); writes get Redis' OOM error beyond it, nothing
    /// is evicted [default: 0 = no limit].
    #[arg(long, value_name = "BYTES")]
    maxmemory: Option<ByteSize>,
    /// Snapshot after this many operations [default: 1000000; 0 = never by count].
    #[arg(long, value_name = "N")]
    snapshot_every_ops: Option<u64>,
    /// Snapshot after this many seconds if anything changed [default: 300; 0 = never by time].
    #[arg(long, value_name = "SECS")]
    snapshot_every_secs: Option<u64>,
    /// Snapshots kept on disk [default: 2].
    #[arg(long, value_name = "N")]
    snapshots_keep: Option<usize>,
    /// Maximum simultaneous clients [default: 10000].
    #[arg(long, value_name = "N")]
    maxclients: Option<usize>,
    /// Largest bulk string a client may send [default: 512mb].
    #[arg(long, value_name = "BYTES")]
    proto_max_bulk_len: Option<ByteSize>,
    /// Most arguments in one request [default: 1048576].
    #[arg(long, value_name = "N")]
    proto_max_multibulk_len: Option<u64>,
    /// Most bytes of a client's request being read plus its MULTI queue;
    /// the client is disconnected beyond it [default: 1gb].
    #[arg(long, value_name = "BYTES")]
    client_query_buffer_limit: Option<ByteSize>,
    /// Unread replies beyond which a client's commands wait until it reads
    /// (backpressure) [default: 16mb].
    #[arg(long, value_name = "BYTES")]
    client_output_buffer_limit: Option<ByteSize>,
    /// Most pipelined commands of a client parsed but not yet answered
    /// [default: 1024].
    #[arg(long, value_name = "N")]
    client_pipeline_depth: Option<usize>,
    /// Threads serving clients and peers [default: 0 = one per core, at
    /// least two with replication].
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    /// Conflicts kept for BRAID.CONFLICTS, the latest ones [default: 1024; 0 = counts only].
    #[arg(long, value_name = "N")]
    conflict_journal_len: Option<usize>,
    /// Log format: text or json [default: text]. Filter with RUST_LOG.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// UDP address of this region's replication endpoint (QUIC); replication
    /// is off without it [config: replication.listen].
    #[arg(long, value_name = "ADDR")]
    replication_listen: Option<std::net::SocketAddr>,
    /// Address peers dial back [default: the listen address; config:
    /// replication.advertise].
    #[arg(long, value_name = "ADDR")]
    advertise: Option<std::net::SocketAddr>,
    /// Directory with ca.pem, <region>.pem and <region>.key from `gen-certs`
    /// [default: ./certs; config: replication.tls_dir].
    #[arg(long, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// A peer region, name=id@host:port; repeat for each. Replaces the
    /// file's replication.peers.
    #[arg(long = "peer", value_name = "NAME=ID@ADDR")]
    peers: Vec<PeerConfig>,
    /// Relay other regions' operations to peers at once (hub, ring,
    /// multi-tier topologies) [config: replication.forward].
    #[arg(long)]
    forward: bool,
    /// TCP address of the Prometheus metrics endpoint (`GET /metrics`),
    /// e.g. 127.0.0.1:9121; off without it [config: metrics.listen].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a three-region cluster on this machine (us, eu, asia on client
    /// ports 7379-7381), replicating over QUIC, until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Simulate regions in one process without network: concurrent writes
    /// during a partition, then healing; prints each region's digest.
    Simulate(simulate::SimulateArgs),
    /// Generate a cluster CA and one certificate per region (mutual TLS
    /// between regions): ca.pem, ca.key, <region>.pem, <region>.key.
    GenCerts(GenCertsArgs),
}

/// Options of `gen-certs`.
#[derive(clap::Args, Debug)]
struct GenCertsArgs {
    /// Comma-separated region names.
    #[arg(long, value_delimiter = ',', required = true)]
    regions: Vec<String>,
    /// Output directory.
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Sign with the existing CA in this directory (ca.pem, ca.key) instead
    /// of creating one: how certificates for a joining region are made.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    overwrite: bool,
}

fn gen_certs(args: &GenCertsArgs) -> ExitCode {
    use braid::replication::certs;
    let result = match &args.ca_dir {
        Some(ca) => certs::generate_with_ca(&args.regions, ca, &args.out, args.overwrite),
        None => certs::generate(&args.regions, &args.out, args.overwrite),
    };
    match result {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("braid-server gen-certs: {e}");
            ExitCode::from(2)
        }
    }
}

impl Cli {
    /// The file's settings (or defaults) with flags on top.
    fn config(&self) -> Result<Config, String> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        over!(
            bind,
            port,
            data_dir,
            region,
            region_id,
            fsync,
            maxmemory,
            snapshot_every_ops,
            snapshot_every_secs,
            snapshots_keep,
            maxclients,
            proto_max_bulk_len,
            proto_max_multibulk_len,
            client_query_buffer_limit,
            client_output_buffer_limit,
            client_pipeline_depth,
            worker_threads,
            conflict_journal_len,
            log_format
        );
        if let Some(p) = &self.requirepass {
            c.requirepass = Some(p.clone());
        }
        let r = &mut c.replication;
        if let Some(a) = self.replication_listen {
            r.listen = Some(a);
        }
        if let Some(a) = self.advertise {
            r.advertise = Some(a);
        }
        if let Some(d) = &self.tls_dir {
            r.tls_dir = d.clone();
        }
        if !self.peers.is_empty() {
            r.peers = self.peers.clone();
        }
        if self.forward {
            r.forward = true;
        }
        if let Some(a) = self.metrics_listen {
            c.metrics.listen = Some(a);
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Demo(args)) => {
            init_logging(LogFormat::Text, "warn");
            return demo::run(args);
        }
        Some(Command::Simulate(args)) => return simulate::run(args),
        Some(Command::GenCerts(args)) => return gen_certs(args),
        None => {}
    }
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("braid-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.effective_worker_threads())
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("braid-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Listen for signals before the port opens, so that a SIGTERM sent
        // as soon as the server accepts connections is a graceful stop.
        let signals = Signals::install();
        let running = match braid::server::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("braid-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stop = braid::server::Stopper::from(&running);
        let on_signal = tokio::spawn(async move {
            signals.wait().await;
            tracing::info!("signal received, shutting down");
            stop.stop();
        });
        running.wait().await;
        // Drop the last handle on the server so the op log closes here,
        // before the process exits.
        on_signal.abort();
        let _ = on_signal.await;
        ExitCode::SUCCESS
    })
}

/// SIGTERM and SIGINT, registered up front.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(mut self) {
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match self.int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = int => {}
        }
    }
}
