//! `redundancy-cli`: parses arguments and calls into the library crates; nothing else.
use clap::Parser;

/// High-availability pair for PBX and intercom servers.
#[derive(Parser)]
#[command(name = "redundancy-cli", version, about)]
struct Cli {}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let _cli = Cli::parse();
}
