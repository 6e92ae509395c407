//! `redundancy-cli vrrp`: a configuration-less foreground VRRP node for test rigs, in the
//! manner of ucarp's flags. Logs every transition on stderr; SIGTERM / SIGINT send priority 0
//! and release the virtual addresses before exit.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use vrrp::linux::runtime::{Event, InstanceConfig, Node, Options};
use vrrp::linux::track::CheckConfig;
use vrrp::linux::VirtualAddress;
use vrrp::wire::{Auth, ChecksumForm, Version};

/// Flags of `redundancy-cli vrrp`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to run on.
    #[arg(long)]
    pub interface: String,
    /// Virtual Router Identifier, 1..=255.
    #[arg(long)]
    pub vrid: u8,
    /// Priority, 1..=255 (255: address owner).
    #[arg(long, default_value_t = 100)]
    pub priority: u8,
    /// Virtual address with prefix length (ADDR/PREFIX); repeat for several.
    #[arg(long = "vip", required = true)]
    pub vips: Vec<VirtualAddress>,
    /// VRRP version: 2 (RFC 3768, IPv4 only) or 3 (RFC 5798).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub version: u8,
    /// Advertisement interval, e.g. 1s, 100ms, 10ms (v2: whole seconds).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Do not preempt a lower-priority master.
    #[arg(long)]
    pub nopreempt: bool,
    /// Keep yielding to a lower-priority master this long before preempting.
    #[arg(long, value_parser = parse_duration)]
    pub preempt_delay: Option<Duration>,
    /// Unicast peer instead of multicast; repeat for several.
    #[arg(long = "unicast-peer")]
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv2 simple password (up to 8 bytes; keepalived's `auth_type PASS`).
    #[arg(long)]
    pub auth_pass: Option<String>,
    /// Checksum sent by VRRPv3 over IPv4.
    #[arg(long, default_value = "pseudo-header", value_parser = ["pseudo-header", "plain"])]
    pub v3_checksum: String,
    /// Command run on each transition with `INSTANCE name STATE priority`; repeatable.
    #[arg(long)]
    pub notify: Vec<String>,
    /// Interface whose loss of carrier puts the node in Fault; repeatable.
    #[arg(long = "track-interface")]
    pub track_interfaces: Vec<String>,
    /// Health-check command (every second, fall 1, rise 1; failure = Fault); repeatable.
    #[arg(long = "check")]
    pub checks: Vec<String>,
    /// SCHED_FIFO priority of the node's thread (1..=99); keeps 10 ms timers on time on a
    /// loaded machine.
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(i32).range(1..=99))]
    pub realtime_priority: Option<i32>,
    /// Instance name used in logs and notify arguments (default `VI_<vrid>`).
    #[arg(long)]
    pub name: Option<String>,
}

/// Parses `1s`, `100ms`, `1.5s`, `250us` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 1s, 100ms)"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, ms or us)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn build(args: &Args) -> Result<InstanceConfig, String> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("VI_{}", args.vrid));
    let mut c = InstanceConfig::new(&name, &args.interface, args.vrid, &args.vips);
    c.router.priority = args.priority;
    c.router.version = if args.version == 2 {
        Version::V2
    } else {
        Version::V3
    };
    c.router.advertisement_interval = args.interval;
    c.router.preempt = !args.nopreempt;
    if let Some(d) = args.preempt_delay {
        c.router.preempt_delay = d;
    }
    if let Some(p) = &args.auth_pass {
        let bytes = p.as_bytes();
        if bytes.len() > 8 {
            return Err("--auth-pass: at most 8 bytes".into());
        }
        let mut pw = [0u8; 8];
        pw[..bytes.len()].copy_from_slice(bytes);
        c.router.auth = Auth::SimplePassword(pw);
    }
    c.router.v3_ipv4_checksum = if args.v3_checksum == "plain" {
        ChecksumForm::Plain
    } else {
        ChecksumForm::PseudoHeader
    };
    c.unicast_peers = args.unicast_peers.clone();
    c.notify = args.notify.clone();
    c.track_interfaces = args.track_interfaces.clone();
    c.checks = args.checks.iter().map(|k| CheckConfig::new(k)).collect();
    Ok(c)
}

/// Runs the node until SIGTERM / SIGINT.
pub fn run(args: Args) -> ExitCode {
    let config = match build(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: vrrp: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = vrrp::linux::block_termination_signals() {
        eprintln!("error: vrrp: cannot block SIGTERM/SIGINT: {e}");
        return ExitCode::FAILURE;
    }
    let node = match Node::start(
        vec![config],
        Options {
            stop_on_signals: true,
            realtime_priority: args.realtime_priority,
        },
    ) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: vrrp on {}: {e}", args.interface);
            return ExitCode::FAILURE;
        }
    };
    // Transitions, errors and failed hooks are logged by the runtime as they happen.
    for ev in node.events().iter() {
        if ev == Event::Stopped {
            break;
        }
    }
    node.join();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
