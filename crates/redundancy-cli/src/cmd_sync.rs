//! `serve` and `pull`: the tree sync of `sync::transfer` from the command line.
//!
//! `redundancy-cli serve --root DIR --listen ADDR --key-file F` serves DIR (a plain directory)
//! as sync set `default`; `redundancy-cli pull --from ADDR --root DIR --key-file F
//! [--once | --interval 60s]` keeps a generation store in DIR (`DIR/current` is the replica) and
//! prints one summary line per round. A one-shot pull on a terminal also shows a progress bar
//! of the file data received (on stderr; hidden when stderr is not a terminal).
//!
//! TLS: `serve --tls-cert F --tls-key F` and `pull --tls-ca F [--tls-server-name N]` (the
//! pre-shared key still authenticates both ends inside TLS). Compression: `serve --compress
//! LEVEL` offers zstd, `pull --compress` accepts it; it is used when both do.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sync::transfer::auth::{Identity, Key};
use sync::transfer::compress::Level;
use sync::transfer::msg::BackupMode;
use sync::transfer::puller::{pull_once, pull_once_with_progress, PullConfig, RoundReport};
use sync::transfer::server::{ServedSet, Server, ServerConfig};
use sync::transfer::{PullTransport, ServerTransport, TlsClient, TlsServer};
use sync::tree::exclude::Excludes;
use sync::tree::manifest::Limits;
use sync::tree::store::GenStore;

/// Backup mode as given on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModeArg {
    /// Operational node.
    Active,
    /// Standby node.
    Passive,
}

impl From<ModeArg> for BackupMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Active => BackupMode::Active,
            ModeArg::Passive => BackupMode::Passive,
        }
    }
}

/// Arguments of `serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory to serve (the live data).
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:7400.
    #[arg(long)]
    listen: String,
    /// File holding the pre-shared key (at least 16 bytes).
    #[arg(long)]
    key_file: PathBuf,
    /// Name of the sync set.
    #[arg(long, default_value = "default")]
    set: String,
    /// Exclude pattern (repeatable): `*.tmp`, `spool/*/lock`.
    #[arg(long)]
    exclude: Vec<String>,
    /// Scan on every poll instead of watching with inotify.
    #[arg(long)]
    no_watch: bool,
    /// Node id told to pullers (default: the host name).
    #[arg(long)]
    node_id: Option<String>,
    /// Backup mode told to pullers.
    #[arg(long, value_enum, default_value = "active")]
    mode: ModeArg,
    /// Serve over TLS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Offer zstd compression of file data at this level (1-19; 3 is a good default); used
    /// with pullers that accept it.
    #[arg(long, value_name = "LEVEL")]
    compress: Option<i32>,
}

/// Arguments of `pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Server address, e.g. 127.0.0.1:7400.
    #[arg(long)]
    from: String,
    /// Generation store directory (the replica is ROOT/current).
    #[arg(long)]
    root: PathBuf,
    /// File holding the pre-shared key.
    #[arg(long)]
    key_file: PathBuf,
    /// Name of the sync set.
    #[arg(long, default_value = "default")]
    set: String,
    /// Run one round and exit (status 0 on success).
    #[arg(long, conflicts_with = "interval")]
    once: bool,
    /// Time between rounds, e.g. 60s, 500ms, 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    interval: Duration,
    /// Send changed files whole instead of asking for deltas.
    #[arg(long)]
    no_delta: bool,
    /// Node id told to the server (default: the host name).
    #[arg(long)]
    node_id: Option<String>,
    /// Backup mode told to the server.
    #[arg(long, value_enum, default_value = "passive")]
    mode: ModeArg,
    /// Pull over TLS, trusting the CA (or self-signed server certificate) in this PEM file.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the host part of --from).
    #[arg(long, requires = "tls_ca")]
    tls_server_name: Option<String>,
    /// Accept zstd-compressed file data when the server offers it.
    #[arg(long)]
    compress: bool,
}

/// Parses `500ms`, `15s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 60s"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("{s:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

/// Runs `serve` until killed.
pub fn run_serve(args: ServeArgs) -> ExitCode {
    let key = match Key::load(&args.key_file) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    if !args.root.is_dir() {
        return fail(format!("--root {}: not a directory", args.root.display()));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match TlsServer::load(cert, key) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        _ => None,
    };
    let compression = match args.compress.map(Level::new).transpose() {
        Ok(l) => l,
        Err(e) => return fail(format!("--compress: {e}")),
    };
    let listener = match TcpListener::bind(&args.listen) {
        Ok(l) => l,
        Err(e) => return fail(format!("listening on {}: {e}", args.listen)),
    };
    let cfg = ServerConfig {
        key,
        identity: Identity::new(args.node_id.unwrap_or_else(host_name), args.mode.into()),
        sets: vec![ServedSet {
            name: args.set.clone(),
            root: args.root.clone(),
            excludes: Excludes::new(args.exclude),
            watch: !args.no_watch,
        }],
        max_connections: 16,
        io_timeout: Duration::from_secs(60),
        transport: ServerTransport { tls, compression },
    };
    let addr = listener
        .local_addr()
        .map_or(args.listen.clone(), |a| a.to_string());
    println!(
        "serving {} as set {:?} on {addr}{}{}",
        args.root.display(),
        args.set,
        if args.tls_cert.is_some() {
            " (TLS)"
        } else {
            ""
        },
        compression.map_or(String::new(), |l| format!(" (zstd level {})", l.get()))
    );
    Server::new(cfg).serve(listener);
    ExitCode::SUCCESS
}

/// Runs `pull` once or every `--interval`.
pub fn run_pull(args: PullArgs) -> ExitCode {
    let key = match Key::load(&args.key_file) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let tls = match &args.tls_ca {
        Some(ca) => match TlsClient::load(ca, args.tls_server_name.clone()) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let store = match GenStore::open(&args.root) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let cfg = PullConfig {
        server: args.from.clone(),
        set: args.set.clone(),
        key,
        identity: Identity::new(args.node_id.unwrap_or_else(host_name), args.mode.into()),
        limits: Limits::default(),
        io_timeout: Duration::from_secs(60),
        use_delta: !args.no_delta,
        transport: PullTransport {
            tls,
            compression: args.compress,
        },
    };
    loop {
        let started = std::time::Instant::now();
        let result = if args.once {
            pull_with_bar(&store, &cfg)
        } else {
            pull_once(&store, &cfg)
        };
        match result {
            Ok(report) => {
                println!("pull {} from {}: {report}", args.set, args.from);
                if args.once {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                if args.once {
                    return fail(format!("pull {} from {}: {e}", args.set, args.from));
                }
                eprintln!("error: pull {} from {}: {e}", args.set, args.from);
            }
        }
        std::thread::sleep(args.interval.saturating_sub(started.elapsed()));
    }
}

/// One round with a progress bar of the file data received, drawn on stderr only when it is a
/// terminal (a rig's log must not fill with bar redraws).
fn pull_with_bar(
    store: &GenStore,
    cfg: &PullConfig,
) -> Result<RoundReport, sync::transfer::TransferError> {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let result = pull_once_with_progress(store, cfg, &mut |received, expected| {
        bar.set_length(expected.max(received));
        bar.set_position(received);
    });
    bar.finish_and_clear();
    result
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("x").is_err());
    }
}
