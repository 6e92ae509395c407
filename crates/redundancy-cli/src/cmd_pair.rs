//! The pair daemon and its control commands: `run`, `status`, `swap`, `mode`, `takeover`,
//! `release` (all in `redundancy`; this module only parses arguments and prints).
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use redundancy::config::{BackupMode, Config};
use redundancy::control::{request, Request, Response};

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The node's configuration file (see examples/pair.toml).
    #[arg(long)]
    config: PathBuf,
    /// Only check the configuration file and exit.
    #[arg(long)]
    check: bool,
}

/// How a control command finds the daemon's socket.
#[derive(clap::Args, Debug)]
pub struct SocketArgs {
    /// The control socket.
    #[arg(long, conflicts_with = "config")]
    socket: Option<PathBuf>,
    /// The daemon's configuration file (its `node.control_socket` is used).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Arguments of `status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    target: SocketArgs,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `swap`, `takeover` and `release`.
#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    #[command(flatten)]
    target: SocketArgs,
}

/// Backup mode on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModeValue {
    /// Sync and take over when the master is lost.
    Active,
    /// Neither sync nor take over (only an explicit takeover).
    Passive,
}

/// Arguments of `mode`.
#[derive(clap::Args, Debug)]
pub struct ModeArgs {
    /// The new mode.
    #[arg(value_enum)]
    mode: ModeValue,
    #[command(flatten)]
    target: SocketArgs,
}

/// `run --config FILE`.
pub fn run(args: RunArgs) -> ExitCode {
    if args.check {
        return match Config::load(&args.config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} role, {} VRRP instance(s), {} sync set(s))",
                    args.config.display(),
                    c.role,
                    c.instances.len(),
                    c.sets.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    limit_malloc_arenas();
    match redundancy::run_foreground(&args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// glibc gives each new thread its own malloc arena (up to 8 per core), and an arena keeps a
/// few MiB resident after its thread is gone. The daemon's pull and serve threads are
/// short-lived, so its RSS would climb in 4 MiB steps for hours (measured by
/// tests/resource_pair.rs: +15 MiB over 80 failovers; with a second arena, one more 4 MiB
/// step). One arena keeps it flat. The daemon allocates little and glibc's per-thread caches
/// serve small allocations without the arena lock, so sharing it costs nothing measurable.
/// An explicit `MALLOC_ARENA_MAX` in the environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tunables; it is called before the daemon
        // starts any thread, with a valid parameter and value. A failure (0) leaves glibc's
        // default in place, which is harmless.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

fn socket_path(t: &SocketArgs) -> Result<PathBuf, String> {
    match (&t.socket, &t.config) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(c)) => Config::load(c)
            .map(|c| c.control_socket)
            .map_err(|e| e.to_string()),
        (None, None) => Err("give --socket PATH or --config FILE".into()),
    }
}

fn ask(t: &SocketArgs, req: &Request, timeout: Duration) -> Result<Response, String> {
    let path = socket_path(t)?;
    request(&path, req, timeout).map_err(|e| e.to_string())
}

/// `status [--json]`.
pub fn status(args: StatusArgs) -> ExitCode {
    match ask(&args.target, &Request::Status, Duration::from_secs(10)) {
        Err(e) => fail(&e),
        Ok(r) if !r.ok => fail(&r.message),
        Ok(r) => match r.status {
            None => fail("the daemon sent no status"),
            Some(s) if args.json => match serde_json::to_string_pretty(&s) {
                Ok(j) => {
                    println!("{j}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            },
            Some(s) => {
                print!("{}", s.to_text());
                ExitCode::SUCCESS
            }
        },
    }
}

fn simple(t: &SocketArgs, req: Request, timeout: Duration) -> ExitCode {
    match ask(t, &req, timeout) {
        Err(e) => fail(&e),
        Ok(r) if !r.ok => fail(&r.message),
        Ok(r) => {
            println!("{}", r.message);
            ExitCode::SUCCESS
        }
    }
}

/// `swap`.
pub fn swap(args: ControlArgs) -> ExitCode {
    simple(
        &args.target,
        Request::Swap,
        redundancy::supervisor::SWAP_TIMEOUT + Duration::from_secs(5),
    )
}

/// `mode active|passive`.
pub fn mode(args: ModeArgs) -> ExitCode {
    let mode = match args.mode {
        ModeValue::Active => BackupMode::Active,
        ModeValue::Passive => BackupMode::Passive,
    };
    simple(
        &args.target,
        Request::Mode { mode },
        Duration::from_secs(10),
    )
}

/// `takeover`.
pub fn takeover(args: ControlArgs) -> ExitCode {
    simple(&args.target, Request::Takeover, Duration::from_secs(10))
}

/// `release`.
pub fn release(args: ControlArgs) -> ExitCode {
    simple(&args.target, Request::Release, Duration::from_secs(10))
}
