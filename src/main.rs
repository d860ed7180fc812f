//! `braid-server`: runs a Braid region.
//!
//! The network server (RESP, op log, replication) is not built yet; for now
//! the binary offers `demo`, which runs the CRDT core on simulated regions in
//! one process to show convergence after a partition.

mod demo;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Braid: active-active, geo-replicated, durable key-value store.
#[derive(Parser, Debug)]
#[command(name = "braid-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate regions in one process: concurrent writes during a
    /// partition, then healing; prints each region's state and digest.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo(args)) => demo::run(&args),
        None => {
            eprintln!(
                "braid-server: the network server (Redis protocol, op log, replication) is not \
                 implemented yet.\nRun `braid-server demo` to see the CRDT core converge, or \
                 `braid-server --help`."
            );
            ExitCode::from(2)
        }
    }
}
