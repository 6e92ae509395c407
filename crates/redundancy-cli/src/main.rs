//! `redundancy-cli`: parses arguments, sets up logging and calls into the library crates.
//!
//! Each subcommand lives in its own module (`cmd_<name>.rs`) holding its clap `Args` struct and a
//! `run(args) -> ExitCode` that calls the libraries. Errors print as one line on stderr that
//! says what and where, with a non-zero exit code.
mod cmd_decode;
mod cmd_sync;
mod cmd_vrrp;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// High-availability pair for PBX and intercom servers: VRRP election, virtual IP takeover and
/// rsync-style sync of configuration and voice data.
#[derive(Parser)]
#[command(name = "redundancy-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // One variant per subcommand, e.g. `Decode(cmd_decode::Args)`, kept in the order of the
    // design's CLI contract: decode, vrrp, signature, delta, patch, serve, pull, run, status,
    // swap, mode, takeover, release, demo.
    /// Decode VRRP advertisements from a pcap/pcapng capture or from hex.
    Decode(cmd_decode::Args),
    /// Run a configuration-less VRRP node in the foreground (for test rigs).
    Vrrp(cmd_vrrp::Args),
    /// Serve a directory tree to pullers (tree sync, issue 7).
    Serve(cmd_sync::ServeArgs),
    /// Pull a served tree into a generation store, once or periodically.
    Pull(cmd_sync::PullArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => cmd_decode::run(args),
        Command::Vrrp(args) => cmd_vrrp::run(args),
        Command::Serve(args) => cmd_sync::run_serve(args),
        Command::Pull(args) => cmd_sync::run_pull(args),
    }
}
