//! `redundancy-cli`: parses arguments, sets up logging and calls into the library crates.
//!
//! Each subcommand lives in its own module (`cmd_<name>.rs`) holding its clap `Args` struct and a
//! `run(args) -> ExitCode` that calls the libraries. Errors print as one line on stderr that
//! says what and where, with a non-zero exit code.
mod cmd_decode;
mod cmd_demo;
mod cmd_pair;
mod cmd_rdiff;
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
    /// Write the signature of a base file (rdiff signature).
    Signature(cmd_rdiff::SignatureArgs),
    /// Write the delta from a signature to a new file (rdiff delta).
    Delta(cmd_rdiff::DeltaArgs),
    /// Rebuild and verify a new file from a base and a delta (rdiff patch).
    Patch(cmd_rdiff::PatchArgs),
    /// Serve a directory tree to pullers (tree sync).
    Serve(cmd_sync::ServeArgs),
    /// Pull a served tree into a generation store, once or periodically.
    Pull(cmd_sync::PullArgs),
    /// Run the pair daemon in the foreground (SIGTERM: graceful handover; SIGHUP: reload).
    Run(cmd_pair::RunArgs),
    /// Show a running node's status (text, or --json).
    Status(cmd_pair::StatusArgs),
    /// Planned swap with zero data loss: the standby pulls everything, then takes over.
    Swap(cmd_pair::ControlArgs),
    /// Switch the backup mode: active (sync, take over) or passive (neither).
    Mode(cmd_pair::ModeArgs),
    /// Become operational now.
    Takeover(cmd_pair::ControlArgs),
    /// Step down: priority 0, release the virtual addresses.
    Release(cmd_pair::ControlArgs),
    /// As root: build a namespace lab, run a pair in it and narrate failover, sync and swap.
    Demo(cmd_demo::Args),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => cmd_decode::run(args),
        Command::Vrrp(args) => cmd_vrrp::run(args),
        Command::Signature(args) => cmd_rdiff::run_signature(args),
        Command::Delta(args) => cmd_rdiff::run_delta(args),
        Command::Patch(args) => cmd_rdiff::run_patch(args),
        Command::Serve(args) => cmd_sync::run_serve(args),
        Command::Pull(args) => cmd_sync::run_pull(args),
        Command::Run(args) => cmd_pair::run(args),
        Command::Status(args) => cmd_pair::status(args),
        Command::Swap(args) => cmd_pair::swap(args),
        Command::Mode(args) => cmd_pair::mode(args),
        Command::Takeover(args) => cmd_pair::takeover(args),
        Command::Release(args) => cmd_pair::release(args),
        Command::Demo(args) => cmd_demo::run(args),
    }
}
