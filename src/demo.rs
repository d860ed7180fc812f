//! `braid-server demo`: a real three-region cluster on this machine.
//!
//! Each region is a full server (op log in RocksDB, snapshots, Redis
//! protocol) with its own data directory, replicating to the others over
//! QUIC with certificates generated for the demo. Connect with `redis-cli -p
//! 7379` (us), `7380` (eu), `7381` (asia), write conflicting values, and
//! watch them converge (`BRAID.DIGEST` is equal everywhere once they have).

use braid::config::{Config, FsyncPolicy, PeerConfig};
use braid::replication::certs;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of the demo.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Comma-separated region names (ids 1, 2, … in this order).
    #[arg(long, default_value = "us,eu,asia", value_delimiter = ',')]
    regions: Vec<String>,
    /// Client port of the first region; the others follow (replication
    /// uses the same numbers plus 100, over UDP).
    #[arg(long, default_value_t = 7379)]
    base_port: u16,
    /// Where the regions keep their data and certificates [default: a new
    /// temporary directory, removed on exit].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// fsync policy of every region.
    #[arg(long, default_value = "everysec")]
    fsync: FsyncPolicy,
}

/// Runs the cluster until Ctrl-C.
pub fn run(args: &DemoArgs) -> ExitCode {
    let n = args.regions.len();
    if n == 0 || n > 16 {
        eprintln!("braid-server demo: --regions takes 1 to 16 names");
        return ExitCode::from(2);
    }
    if usize::from(args.base_port) + n + 100 > usize::from(u16::MAX) {
        eprintln!("braid-server demo: --base-port too high");
        return ExitCode::from(2);
    }
    let (root, _temp) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => match tempfile::Builder::new().prefix("braid-demo-").tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("braid-server demo: cannot create a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let cert_dir = root.join("certs");
    if !cert_dir.join("ca.pem").exists() {
        if let Err(e) = certs::generate(&args.regions, &cert_dir, false) {
            eprintln!("braid-server demo: {e}");
            return ExitCode::FAILURE;
        }
    }
    let repl_addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], args.base_port + 100 + i as u16));
    let configs: Vec<Config> = args
        .regions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut c = Config {
                port: args.base_port + i as u16,
                data_dir: root.join(name),
                region: name.clone(),
                region_id: i as u16 + 1,
                fsync: args.fsync,
                ..Config::default()
            };
            c.replication.listen = Some(repl_addr(i));
            c.replication.tls_dir = cert_dir.clone();
            c.replication.peers = args
                .regions
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, peer)| PeerConfig {
                    name: peer.clone(),
                    id: j as u16 + 1,
                    addr: repl_addr(j),
                })
                .collect();
            c
        })
        .collect();
    for c in &configs {
        if let Err(e) = c.validate() {
            eprintln!("braid-server demo: {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("braid-server demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut running = Vec::new();
        for c in configs {
            let name = c.region.clone();
            match braid::server::start(c).await {
                Ok(r) => running.push((name, r)),
                Err(e) => {
                    eprintln!("braid-server demo: region {name}: {e}");
                    for (_, r) in running {
                        r.shutdown().await;
                    }
                    return ExitCode::FAILURE;
                }
            }
        }
        println!("Braid demo: {n} regions replicating over QUIC (mesh), data in {}", root.display());
        for (name, r) in &running {
            println!("  {name:<6} redis-cli -p {}", r.addr.port());
        }
        if let [(a, ra), (b, rb), ..] = &running[..] {
            println!();
            println!("Try a conflict: write in two regions at once, then read anywhere:");
            println!("  redis-cli -p {} SET color red & redis-cli -p {} SET color blue; sleep 0.5", ra.addr.port(), rb.addr.port());
            println!("  redis-cli -p {} INCRBY visits 5; redis-cli -p {} INCRBY visits 7", ra.addr.port(), rb.addr.port());
            for (name, r) in &running {
                println!("  redis-cli -p {} MGET color visits   # {name}", r.addr.port());
            }
            println!("  redis-cli -p {} BRAID.DIGEST; redis-cli -p {} BRAID.DIGEST   # equal once converged ({a}, {b})", ra.addr.port(), rb.addr.port());
        }
        println!();
        println!("Ctrl-C stops the demo.");
        let _ = tokio::signal::ctrl_c().await;
        println!("stopping…");
        for (_, r) in running {
            r.shutdown().await;
        }
        ExitCode::SUCCESS
    })
}
