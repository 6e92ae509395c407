//! The pair's configuration file (TOML).
//!
//! The file is read in two steps: serde parses it into plain structures with wide numeric
//! types ([`raw`]), then [`Config::from_toml`] checks every value and builds the typed
//! [`Config`]. A problem is reported as `FILE: KEY: PROBLEM`, e.g.
//! `pair.toml: vrrp.instances[0].priority: 256 is out of range 1..=255`.
//! `examples/pair.toml` shows every key with a comment.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp::wire::{Auth, ChecksumForm, Version};

/// Default TCP port of the sync service (and UDP port of the pair heartbeat).
pub const DEFAULT_SYNC_PORT: u16 = 8730;
/// The least default of `sync.preempt_hold_max` (the default is three pull intervals of the
/// slowest set that flows from the operational node, and at least this).
pub const DEFAULT_PREEMPT_HOLD_MIN: Duration = Duration::from_secs(30);
/// Default admin port forwarded from the master to a standby (the product's port).
pub const DEFAULT_ADMIN_PORT: u16 = 8765;

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type, syntax).
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// The dotted key, e.g. `vrrp.instances[0].priority`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The configuration role of a node: configuration always flows from the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The fixed configuration primary.
    Primary,
    /// The configuration secondary.
    Secondary,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        })
    }
}

/// The backup mode: an active standby syncs and takes over; a passive one does neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    /// Listens to advertisements, syncs, takes over when the master is lost.
    Active,
    /// Neither listens, nor syncs, nor takes over (only an explicit takeover).
    Passive,
}

impl std::fmt::Display for BackupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackupMode::Active => "Active",
            BackupMode::Passive => "Passive",
        })
    }
}

/// Where a sync set's data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the configuration primary, whichever node is operational (configuration).
    FromPrimary,
    /// From the operational node (state, voice data).
    FromOperational,
}

/// One VRRP instance.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    /// A name for logs and hooks.
    pub name: String,
    /// The interface it runs on.
    pub interface: String,
    /// Virtual Router Identifier 1..=255.
    pub vrid: u8,
    /// Priority 1..=255.
    pub priority: u8,
    /// VRRP version.
    pub version: Version,
    /// Advertisement interval.
    pub interval: Duration,
    /// Virtual addresses (`address/prefix`).
    pub virtual_addresses: Vec<vrrp::linux::VirtualAddress>,
    /// Preempt mode.
    pub preempt: bool,
    /// Preempt delay.
    pub preempt_delay: Duration,
    /// VRRPv2 authentication.
    pub auth: Auth,
    /// VRRPv3-over-IPv4 checksum form sent.
    pub v3_checksum: ChecksumForm,
    /// Unicast peers (empty: multicast).
    pub unicast_peers: Vec<IpAddr>,
}

/// One sync set.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncSet {
    /// The set's name, as asked for on the wire.
    pub name: String,
    /// The set's generation store; applications use `ROOT/current`.
    pub root: PathBuf,
    /// How often a standby pulls it.
    pub interval: Duration,
    /// Where it comes from.
    pub direction: Direction,
    /// Excluded patterns.
    pub excludes: Vec<String>,
    /// zstd level (1-19) for this set's file data on the wire (`compress`; `None`: off). Used
    /// when both nodes have it for the set (negotiated in the sync hello).
    pub compress: Option<i32>,
}

/// `[sync.tls]`: the sync service and its pulls run over TLS (the pre-shared key still
/// authenticates both nodes inside it). Both nodes serve and pull, so each has all three files.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncTls {
    /// This node's certificate chain (PEM, leaf first), shown when serving.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA (PEM) that signed the peer's certificate (or the peer's self-signed certificate).
    pub ca: PathBuf,
    /// Name the peer's certificate must carry (default: the host part of its address, e.g. its
    /// IP address, which the certificate must then list).
    pub server_name: Option<String>,
}

impl SyncTls {
    /// The serving side's TLS settings (reads the certificate and key).
    pub fn server(&self) -> Result<sync::transfer::TlsServer, sync::transfer::TransferError> {
        sync::transfer::TlsServer::load(&self.cert, &self.key)
    }

    /// The pulling side's TLS settings (reads the CA).
    pub fn client(&self) -> Result<sync::transfer::TlsClient, sync::transfer::TransferError> {
        sync::transfer::TlsClient::load(&self.ca, self.server_name.clone())
    }
}

/// The hook commands (run with `sh -c`, with `REDUNDANCY_*` environment variables).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hooks {
    /// Run when the node becomes operational (start the applications).
    pub operational: Vec<String>,
    /// Run when the node becomes standby (stop the applications).
    pub standby: Vec<String>,
    /// Run on fault (stop the applications).
    pub fault: Vec<String>,
    /// How long a hook may run before it is killed and reported failed.
    pub timeout: Duration,
}

/// The admin port forward on the master.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminForward {
    /// TCP port the master listens on (all addresses).
    pub listen_port: u16,
    /// The standby's admin address the bytes are copied to.
    pub standby_address: SocketAddr,
}

/// A peer node.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// Its sync address (TCP); the heartbeat uses the same address over UDP.
    pub address: SocketAddr,
}

/// The whole, validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it was read from (for messages).
    pub file: String,
    /// Node id (unique in the pair).
    pub node_id: String,
    /// Human-readable name.
    pub node_name: String,
    /// Configuration role.
    pub role: Role,
    /// Initial backup mode.
    pub mode: BackupMode,
    /// VRRP instances.
    pub instances: Vec<InstanceConfig>,
    /// Peers.
    pub peers: Vec<Peer>,
    /// Pre-shared key file.
    pub key_file: PathBuf,
    /// Sync listen address (TCP) and heartbeat (UDP).
    pub sync_listen: SocketAddr,
    /// Sync sets.
    pub sets: Vec<SyncSet>,
    /// `[sync.tls]` (`None`: plain TCP).
    pub sync_tls: Option<SyncTls>,
    /// The longest a returning node holds preemption while it waits to pull the sets that
    /// flow from the operational node (`sync.preempt_hold_max`; zero: no hold). See
    /// [`crate::hold`].
    pub preempt_hold_max: Duration,
    /// Hooks.
    pub hooks: Hooks,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// Optional admin port forward.
    pub admin_forward: Option<AdminForward>,
}

/// serde's view of the file: wide types, checked afterwards.
pub mod raw {
    use serde::Deserialize;

    /// The top level.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        /// `[node]`
        pub node: Node,
        /// `[vrrp]`
        pub vrrp: Vrrp,
        /// `[sync]`
        #[serde(default)]
        pub sync: Option<Sync>,
        /// `[hooks]`
        #[serde(default)]
        pub hooks: Option<Hooks>,
        /// `[admin_forward]`
        #[serde(default)]
        pub admin_forward: Option<AdminForward>,
    }

    /// `[node]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Node {
        /// Node id.
        pub id: String,
        /// Name.
        #[serde(default)]
        pub name: Option<String>,
        /// primary | secondary.
        pub role: String,
        /// active | passive.
        #[serde(default)]
        pub mode: Option<String>,
        /// Peers `ip` or `ip:port`.
        #[serde(default)]
        pub peers: Vec<String>,
        /// Control socket path.
        #[serde(default)]
        pub control_socket: Option<String>,
    }

    /// `[vrrp]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Vrrp {
        /// `[[vrrp.instances]]`
        pub instances: Vec<Instance>,
    }

    /// `[[vrrp.instances]]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Instance {
        /// Name.
        #[serde(default)]
        pub name: Option<String>,
        /// Interface.
        pub interface: String,
        /// VRID.
        pub vrid: i64,
        /// Priority.
        #[serde(default)]
        pub priority: Option<i64>,
        /// 2 | 3.
        #[serde(default)]
        pub version: Option<i64>,
        /// e.g. "1s", "100ms".
        #[serde(default)]
        pub interval: Option<String>,
        /// `address/prefix`.
        pub virtual_addresses: Vec<String>,
        /// Preempt.
        #[serde(default)]
        pub preempt: Option<bool>,
        /// Preempt delay.
        #[serde(default)]
        pub preempt_delay: Option<String>,
        /// v2 simple password (up to 8 bytes).
        #[serde(default)]
        pub auth_pass: Option<String>,
        /// pseudo-header | plain.
        #[serde(default)]
        pub v3_checksum: Option<String>,
        /// Unicast peers.
        #[serde(default)]
        pub unicast_peers: Vec<String>,
    }

    /// `[sync]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sync {
        /// Pre-shared key file.
        pub key_file: String,
        /// Listen address.
        #[serde(default)]
        pub listen: Option<String>,
        /// `[[sync.sets]]`
        #[serde(default)]
        pub sets: Vec<Set>,
        /// The longest a returning node holds preemption until it pulled.
        #[serde(default)]
        pub preempt_hold_max: Option<String>,
        /// `[sync.tls]`
        #[serde(default)]
        pub tls: Option<Tls>,
    }

    /// `[sync.tls]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        /// This node's certificate chain (PEM).
        pub cert: String,
        /// Its private key (PEM).
        pub key: String,
        /// The CA (PEM) that signed the peer's certificate.
        pub ca: String,
        /// Name the peer's certificate must carry.
        #[serde(default)]
        pub server_name: Option<String>,
    }

    /// `[[sync.sets]]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Set {
        /// Name.
        pub name: String,
        /// Root.
        pub root: String,
        /// Interval.
        #[serde(default)]
        pub interval: Option<String>,
        /// from_primary | from_operational.
        pub direction: String,
        /// Excludes.
        #[serde(default)]
        pub excludes: Vec<String>,
        /// zstd level for the set's data.
        #[serde(default)]
        pub compress: Option<i64>,
    }

    /// `[hooks]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Hooks {
        /// Operational.
        #[serde(default)]
        pub operational: Vec<String>,
        /// Standby.
        #[serde(default)]
        pub standby: Vec<String>,
        /// Fault.
        #[serde(default)]
        pub fault: Vec<String>,
        /// Timeout.
        #[serde(default)]
        pub timeout: Option<String>,
    }

    /// `[admin_forward]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AdminForward {
        /// Listen port on the master.
        #[serde(default)]
        pub listen_port: Option<i64>,
        /// Standby admin address `ip` or `ip:port`.
        pub standby_address: String,
    }
}

/// Parses a duration: `250ms`, `1s`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 100ms, 1s, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn with_port(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, default_port)),
        Err(_) => Err(format!("`{s}` is not an address (`ip` or `ip:port`)")),
    }
}

fn virtual_address(s: &str) -> Result<vrrp::linux::VirtualAddress, String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` needs a prefix length (`address/prefix`)"))?;
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("`{a}` is not an IP address"))?;
    let prefix_len: u8 = p
        .parse()
        .map_err(|_| format!("`{p}` is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        return Err(format!("prefix length {prefix_len} exceeds {max}"));
    }
    Ok(vrrp::linux::VirtualAddress { addr, prefix_len })
}

struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn range(&self, key: &str, v: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(key, format!("{v} is out of range {lo}..={hi}")))
        }
    }

    fn duration(
        &self,
        key: &str,
        v: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|p| self.err(key, p)),
        }
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::from_toml(&file, &text)
    }

    /// Validates TOML text; `file` names it in messages.
    pub fn from_toml(file: &str, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let c = Checker { file };
        let n = &raw.node;
        if n.id.trim().is_empty() || n.id.len() > 64 {
            return Err(c.err("node.id", "must be 1..=64 characters"));
        }
        let role = match n.role.as_str() {
            "primary" => Role::Primary,
            "secondary" => Role::Secondary,
            other => {
                return Err(c.err(
                    "node.role",
                    format!("`{other}` is not `primary` or `secondary`"),
                ))
            }
        };
        let mode = match n.mode.as_deref().unwrap_or("active") {
            "active" => BackupMode::Active,
            "passive" => BackupMode::Passive,
            other => {
                return Err(c.err(
                    "node.mode",
                    format!("`{other}` is not `active` or `passive`"),
                ))
            }
        };

        let (key_file, sync_listen, sets, preempt_hold_max) = match &raw.sync {
            None => (PathBuf::new(), None, Vec::new(), Duration::ZERO),
            Some(s) => {
                let listen = match &s.listen {
                    None => SocketAddr::from(([0, 0, 0, 0], DEFAULT_SYNC_PORT)),
                    Some(l) => {
                        with_port(l, DEFAULT_SYNC_PORT).map_err(|p| c.err("sync.listen", p))?
                    }
                };
                if s.key_file.is_empty() {
                    return Err(c.err("sync.key_file", "must name the pre-shared key file"));
                }
                let mut sets: Vec<SyncSet> = Vec::new();
                for (i, set) in s.sets.iter().enumerate() {
                    let k = |f: &str| format!("sync.sets[{i}].{f}");
                    let valid_name = !set.name.is_empty()
                        && set.name.len() <= 64
                        && set
                            .name
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
                    if !valid_name {
                        return Err(c.err(k("name"), "use 1..=64 letters, digits, - or _"));
                    }
                    if sets.iter().any(|o| o.name == set.name) {
                        return Err(c.err(k("name"), format!("`{}` is used twice", set.name)));
                    }
                    if set.root.is_empty() || !Path::new(&set.root).is_absolute() {
                        return Err(c.err(k("root"), "must be an absolute path"));
                    }
                    if sets.iter().any(|o| o.root == Path::new(&set.root)) {
                        return Err(c.err(k("root"), "is the root of another set"));
                    }
                    let direction = match set.direction.as_str() {
                        "from_primary" => Direction::FromPrimary,
                        "from_operational" => Direction::FromOperational,
                        other => {
                            return Err(c.err(
                                k("direction"),
                                format!("`{other}` is not `from_primary` or `from_operational`"),
                            ))
                        }
                    };
                    let interval = c.duration(
                        &k("interval"),
                        set.interval.as_deref(),
                        Duration::from_secs(15),
                    )?;
                    if interval < Duration::from_millis(100) {
                        return Err(c.err(k("interval"), "must be at least 100ms"));
                    }
                    let compress = match set.compress {
                        None => None,
                        Some(v) => Some(c.range(&k("compress"), v, 1, 19)? as i32),
                    };
                    sets.push(SyncSet {
                        name: set.name.clone(),
                        root: PathBuf::from(&set.root),
                        interval,
                        direction,
                        excludes: set.excludes.clone(),
                        compress,
                    });
                }
                // A few pull intervals of the slowest set that flows from the operational
                // node, and never less than 30 s: the first round after an absence may move
                // a day of voice data.
                let longest = sets
                    .iter()
                    .filter(|s| s.direction == Direction::FromOperational)
                    .map(|s| s.interval)
                    .max()
                    .unwrap_or_default();
                let hold = c.duration(
                    "sync.preempt_hold_max",
                    s.preempt_hold_max.as_deref(),
                    (longest * 3).max(DEFAULT_PREEMPT_HOLD_MIN),
                )?;
                if hold > Duration::from_secs(86_400) {
                    return Err(c.err("sync.preempt_hold_max", "must be at most 24h"));
                }
                (PathBuf::from(&s.key_file), Some(listen), sets, hold)
            }
        };
        let sync_listen =
            sync_listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_SYNC_PORT)));
        // The files are read now, so `--check` and a reload report an unusable one by name.
        let sync_tls = match raw.sync.as_ref().and_then(|s| s.tls.as_ref()) {
            None => None,
            Some(t) => {
                for (f, v) in [("cert", &t.cert), ("key", &t.key), ("ca", &t.ca)] {
                    if v.is_empty() || !Path::new(v).is_absolute() {
                        return Err(c.err(format!("sync.tls.{f}"), "must be an absolute path"));
                    }
                }
                if t.server_name.as_deref() == Some("") {
                    return Err(c.err("sync.tls.server_name", "must not be empty"));
                }
                let tls = SyncTls {
                    cert: PathBuf::from(&t.cert),
                    key: PathBuf::from(&t.key),
                    ca: PathBuf::from(&t.ca),
                    server_name: t.server_name.clone(),
                };
                tls.server()
                    .map_err(|e| c.err("sync.tls.cert/key", e.to_string()))?;
                tls.client()
                    .map_err(|e| c.err("sync.tls.ca", e.to_string()))?;
                Some(tls)
            }
        };

        let mut peers = Vec::new();
        for (i, p) in n.peers.iter().enumerate() {
            let address = with_port(p, sync_listen.port())
                .map_err(|e| c.err(format!("node.peers[{i}]"), e))?;
            peers.push(Peer { address });
        }

        if raw.vrrp.instances.is_empty() {
            return Err(c.err("vrrp.instances", "at least one instance is needed"));
        }
        let mut instances: Vec<InstanceConfig> = Vec::new();
        for (i, ins) in raw.vrrp.instances.iter().enumerate() {
            let k = |f: &str| format!("vrrp.instances[{i}].{f}");
            let vrid = c.range(&k("vrid"), ins.vrid, 1, 255)? as u8;
            let priority = c.range(&k("priority"), ins.priority.unwrap_or(100), 1, 255)? as u8;
            let version = match ins.version.unwrap_or(3) {
                2 => Version::V2,
                3 => Version::V3,
                v => return Err(c.err(k("version"), format!("{v} is not 2 or 3"))),
            };
            let interval = c.duration(
                &k("interval"),
                ins.interval.as_deref(),
                Duration::from_secs(1),
            )?;
            match version {
                Version::V2 => {
                    if interval.subsec_nanos() != 0 || !(1..=255).contains(&interval.as_secs()) {
                        return Err(c.err(
                            k("interval"),
                            format!("{interval:?}: VRRPv2 needs whole seconds 1s..=255s"),
                        ));
                    }
                }
                Version::V3 => {
                    let cs = interval.as_millis();
                    if cs % 10 != 0 || !(10..=40_950).contains(&cs) {
                        return Err(c.err(
                            k("interval"),
                            format!(
                                "{interval:?}: VRRPv3 needs a multiple of 10ms in 10ms..=40.95s"
                            ),
                        ));
                    }
                }
            }
            if ins.interface.is_empty() || ins.interface.len() > 15 {
                return Err(c.err(k("interface"), "must be an interface name (1..=15 bytes)"));
            }
            if ins.virtual_addresses.is_empty() {
                return Err(c.err(k("virtual_addresses"), "at least one address is needed"));
            }
            let mut vips = Vec::new();
            for (j, a) in ins.virtual_addresses.iter().enumerate() {
                let va = virtual_address(a)
                    .map_err(|p| c.err(format!("vrrp.instances[{i}].virtual_addresses[{j}]"), p))?;
                if let Some(first) = vips.first() {
                    let first: &vrrp::linux::VirtualAddress = first;
                    if first.addr.is_ipv4() != va.addr.is_ipv4() {
                        return Err(c.err(
                            format!("vrrp.instances[{i}].virtual_addresses[{j}]"),
                            "all addresses of an instance must be of one family",
                        ));
                    }
                }
                if version == Version::V2 && va.addr.is_ipv6() {
                    return Err(c.err(
                        format!("vrrp.instances[{i}].virtual_addresses[{j}]"),
                        "VRRPv2 carries IPv4 addresses only",
                    ));
                }
                vips.push(va);
            }
            let auth = match &ins.auth_pass {
                None => Auth::None,
                Some(p) => {
                    if version != Version::V2 {
                        return Err(c.err(k("auth_pass"), "authentication exists only in VRRPv2"));
                    }
                    if p.is_empty() || p.len() > 8 {
                        return Err(c.err(k("auth_pass"), "must be 1..=8 bytes"));
                    }
                    let mut b = [0u8; 8];
                    b[..p.len()].copy_from_slice(p.as_bytes());
                    Auth::SimplePassword(b)
                }
            };
            let v3_checksum = match ins.v3_checksum.as_deref().unwrap_or("pseudo-header") {
                "pseudo-header" => ChecksumForm::PseudoHeader,
                "plain" => ChecksumForm::Plain,
                other => {
                    return Err(c.err(
                        k("v3_checksum"),
                        format!("`{other}` is not `pseudo-header` or `plain`"),
                    ))
                }
            };
            let mut unicast_peers = Vec::new();
            for (j, p) in ins.unicast_peers.iter().enumerate() {
                let ip: IpAddr = p.parse().map_err(|_| {
                    c.err(
                        format!("vrrp.instances[{i}].unicast_peers[{j}]"),
                        format!("`{p}` is not an IP address"),
                    )
                })?;
                unicast_peers.push(ip);
            }
            let name = ins.name.clone().unwrap_or_else(|| format!("vrid{vrid}"));
            if instances
                .iter()
                .any(|o| o.vrid == vrid && o.interface == ins.interface)
            {
                return Err(c.err(
                    k("vrid"),
                    format!("VRID {vrid} is used twice on {}", ins.interface),
                ));
            }
            if instances.iter().any(|o| o.name == name) {
                return Err(c.err(k("name"), format!("`{name}` is used twice")));
            }
            instances.push(InstanceConfig {
                name,
                interface: ins.interface.clone(),
                vrid,
                priority,
                version,
                interval,
                virtual_addresses: vips,
                preempt: ins.preempt.unwrap_or(true),
                preempt_delay: c.duration(
                    &k("preempt_delay"),
                    ins.preempt_delay.as_deref(),
                    Duration::ZERO,
                )?,
                auth,
                v3_checksum,
                unicast_peers,
            });
        }

        let hooks = match &raw.hooks {
            None => Hooks {
                timeout: Duration::from_secs(30),
                ..Hooks::default()
            },
            Some(h) => Hooks {
                operational: h.operational.clone(),
                standby: h.standby.clone(),
                fault: h.fault.clone(),
                timeout: c.duration(
                    "hooks.timeout",
                    h.timeout.as_deref(),
                    Duration::from_secs(30),
                )?,
            },
        };

        let admin_forward = match &raw.admin_forward {
            None => None,
            Some(a) => {
                let listen_port = c.range(
                    "admin_forward.listen_port",
                    a.listen_port.unwrap_or(i64::from(DEFAULT_ADMIN_PORT)),
                    1,
                    65535,
                )? as u16;
                let standby_address = with_port(&a.standby_address, DEFAULT_ADMIN_PORT)
                    .map_err(|p| c.err("admin_forward.standby_address", p))?;
                Some(AdminForward {
                    listen_port,
                    standby_address,
                })
            }
        };

        let control_socket = PathBuf::from(
            n.control_socket
                .clone()
                .unwrap_or_else(|| format!("/run/redundancy-{}.sock", n.id)),
        );

        Ok(Config {
            file: file.to_string(),
            node_id: n.id.clone(),
            node_name: n.name.clone().unwrap_or_else(|| n.id.clone()),
            role,
            mode,
            instances,
            peers,
            key_file,
            sync_listen,
            sets,
            sync_tls,
            preempt_hold_max,
            hooks,
            control_socket,
            admin_forward,
        })
    }

    /// The VRRP runtime's configuration of instance `i`, in `mode`.
    pub fn runtime_instance(
        &self,
        i: usize,
        mode: BackupMode,
    ) -> Option<vrrp::linux::InstanceConfig> {
        let ins = self.instances.get(i)?;
        let mut rc = vrrp::linux::InstanceConfig::new(
            &ins.name,
            &ins.interface,
            ins.vrid,
            &ins.virtual_addresses,
        );
        rc.router.priority = ins.priority;
        rc.router.version = ins.version;
        rc.router.advertisement_interval = ins.interval;
        rc.router.preempt = ins.preempt;
        rc.router.preempt_delay = ins.preempt_delay;
        rc.router.auth = ins.auth;
        rc.router.v3_ipv4_checksum = ins.v3_checksum;
        rc.router.mode = match mode {
            BackupMode::Active => vrrp::router::Mode::Active,
            BackupMode::Passive => vrrp::router::Mode::Passive,
        };
        rc.unicast_peers = ins.unicast_peers.clone();
        Some(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
id = "node-a"
name = "PBX A"
role = "primary"
mode = "active"
peers = ["10.99.0.2"]
control_socket = "/tmp/a.sock"

[[vrrp.instances]]
name = "pbx"
interface = "eth0"
vrid = 51
priority = 200
version = 3
interval = "100ms"
virtual_addresses = ["10.99.0.100/24"]
preempt = false
preempt_delay = "2s"

[sync]
key_file = "/etc/psk"
listen = "10.99.0.1:8730"

[[sync.sets]]
name = "config"
root = "/var/lib/pbx/config"
interval = "15s"
direction = "from_primary"
excludes = ["*.tmp"]

[[sync.sets]]
name = "voice"
root = "/var/lib/pbx/voice"
direction = "from_operational"

[hooks]
operational = ["echo up"]
timeout = "5s"

[admin_forward]
standby_address = "10.99.0.2"
"#;

    fn err_of(text: &str) -> String {
        match Config::from_toml("pair.toml", text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sync_compress_and_tls_keys_are_checked() {
        let excl = "excludes = [\"*.tmp\"]\n";
        let c = Config::from_toml(
            "pair.toml",
            &GOOD.replace(excl, &format!("{excl}compress = 3\n")),
        )
        .unwrap();
        assert_eq!(c.sets[0].compress, Some(3));
        assert_eq!(c.sets[1].compress, None);
        assert!(c.sync_tls.is_none());
        let e = err_of(&GOOD.replace(excl, &format!("{excl}compress = 25\n")));
        assert!(e.contains("sync.sets[0].compress"), "{e}");

        let listen = "listen = \"10.99.0.1:8730\"\n";
        let tls = |cert: &str| {
            GOOD.replace(
                listen,
                &format!(
                    "{listen}\n[sync.tls]\ncert = \"{cert}\"\nkey = \"/nonexistent/k.pem\"\n\
                     ca = \"/nonexistent/ca.pem\"\n"
                ),
            )
        };
        let e = err_of(&tls("relative/cert.pem"));
        assert!(e.contains("sync.tls.cert") && e.contains("absolute"), "{e}");
        // The files are read while checking: a missing one is named.
        let e = err_of(&tls("/nonexistent/cert.pem"));
        assert!(
            e.contains("sync.tls") && e.contains("/nonexistent/cert.pem"),
            "{e}"
        );
        let e = err_of(&GOOD.replace(listen, &format!("{listen}\n[sync.tls]\ncert = \"/x\"\n")));
        assert!(e.contains("key") || e.contains("missing"), "{e}");
    }

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml("pair.toml", GOOD).unwrap();
        assert_eq!(c.node_id, "node-a");
        assert_eq!(c.role, Role::Primary);
        assert_eq!(c.instances[0].vrid, 51);
        assert_eq!(c.instances[0].interval, Duration::from_millis(100));
        assert!(!c.instances[0].preempt);
        assert_eq!(c.instances[0].preempt_delay, Duration::from_secs(2));
        assert_eq!(c.peers[0].address, "10.99.0.2:8730".parse().unwrap());
        assert_eq!(c.sets.len(), 2);
        assert_eq!(c.sets[1].interval, Duration::from_secs(15));
        assert_eq!(c.sets[1].direction, Direction::FromOperational);
        assert_eq!(c.hooks.timeout, Duration::from_secs(5));
        let fwd = c.admin_forward.clone().unwrap();
        assert_eq!(fwd.listen_port, DEFAULT_ADMIN_PORT);
        assert_eq!(fwd.standby_address, "10.99.0.2:8765".parse().unwrap());
        let rc = c.runtime_instance_dummy();
        assert_eq!(rc, (200, Duration::from_millis(100)));
    }

    impl Config {
        fn runtime_instance_dummy(&self) -> (u8, Duration) {
            let rc = self.runtime_instance(0, BackupMode::Passive).unwrap();
            assert_eq!(rc.router.mode, vrrp::router::Mode::Passive);
            (rc.router.priority, rc.router.advertisement_interval)
        }
    }

    #[test]
    fn priority_out_of_range_names_file_key_and_problem() {
        let t = GOOD.replace("priority = 200", "priority = 256");
        assert_eq!(
            err_of(&t),
            "pair.toml: vrrp.instances[0].priority: 256 is out of range 1..=255"
        );
    }

    #[test]
    fn each_bad_value_is_named() {
        let cases = [
            (
                "vrid = 51",
                "vrid = 0",
                "vrrp.instances[0].vrid: 0 is out of range",
            ),
            ("role = \"primary\"", "role = \"boss\"", "node.role: `boss`"),
            ("mode = \"active\"", "mode = \"lazy\"", "node.mode: `lazy`"),
            (
                "interval = \"100ms\"",
                "interval = \"105ms\"",
                "vrrp.instances[0].interval",
            ),
            ("version = 3", "version = 2", "vrrp.instances[0].interval"),
            (
                "version = 3",
                "version = 4",
                "vrrp.instances[0].version: 4 is not 2 or 3",
            ),
            (
                "\"10.99.0.100/24\"",
                "\"10.99.0.100\"",
                "virtual_addresses[0]: `10.99.0.100` needs a prefix",
            ),
            (
                "\"10.99.0.100/24\"",
                "\"10.99.0.100/33\"",
                "virtual_addresses[0]: prefix length 33",
            ),
            (
                "peers = [\"10.99.0.2\"]",
                "peers = [\"nowhere\"]",
                "node.peers[0]",
            ),
            (
                "direction = \"from_primary\"",
                "direction = \"sideways\"",
                "sync.sets[0].direction",
            ),
            (
                "root = \"/var/lib/pbx/config\"",
                "root = \"relative\"",
                "sync.sets[0].root: must be an absolute path",
            ),
            (
                "name = \"voice\"",
                "name = \"config\"",
                "sync.sets[1].name: `config` is used twice",
            ),
            ("timeout = \"5s\"", "timeout = \"soon\"", "hooks.timeout"),
            (
                "standby_address = \"10.99.0.2\"",
                "standby_address = \"x\"",
                "admin_forward.standby_address",
            ),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let e = err_of(&GOOD.replacen(from, to, 1));
            assert!(e.starts_with("pair.toml: "), "{e}");
            assert!(e.contains(want), "{from} -> {to}: got {e}");
        }
    }

    #[test]
    fn unknown_keys_and_type_errors_name_the_file() {
        let e = err_of(&GOOD.replace("preempt = false", "preempt = false\nprempt = 1"));
        assert!(e.starts_with("pair.toml: ") && e.contains("prempt"), "{e}");
        let e = err_of(&GOOD.replace("vrid = 51", "vrid = \"x\""));
        assert!(e.starts_with("pair.toml: ") && e.contains("vrid"), "{e}");
    }

    #[test]
    fn auth_only_with_v2() {
        let t = GOOD.replace("preempt = false", "preempt = false\nauth_pass = \"secret\"");
        assert!(err_of(&t)
            .contains("vrrp.instances[0].auth_pass: authentication exists only in VRRPv2"));
        let t2 = t
            .replace("version = 3", "version = 2")
            .replace("\"100ms\"", "\"1s\"");
        let c = Config::from_toml("pair.toml", &t2).unwrap();
        assert_eq!(c.instances[0].auth, Auth::SimplePassword(*b"secret\0\0"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e400s").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn the_sample_file_is_valid() {
        let text = include_str!("../../../examples/pair.toml");
        let c = Config::from_toml("examples/pair.toml", text).unwrap();
        assert_eq!(c.sets.len(), 3);
        assert_eq!(c.hooks.operational, vec!["systemctl start pbx".to_string()]);
        assert_eq!(c.admin_forward.unwrap().listen_port, 8765);
        assert_eq!(c.preempt_hold_max, Duration::from_secs(180));
    }

    #[test]
    fn preempt_hold_max_defaults_to_three_intervals_and_is_bounded() {
        // The sample without the key: state every 10 s, voice every 60 s -> 3 x 60 s.
        let text =
            include_str!("../../../examples/pair.toml").replace("preempt_hold_max = \"3m\"", "");
        let c = Config::from_toml("pair.toml", &text).unwrap();
        assert_eq!(c.preempt_hold_max, Duration::from_secs(180));
        // Fast sets: never below the floor.
        let fast = text.replace("interval = \"60s\"", "interval = \"1s\"");
        let fast = fast.replace("interval = \"10s\"", "interval = \"1s\"");
        let c = Config::from_toml("pair.toml", &fast).unwrap();
        assert_eq!(c.preempt_hold_max, DEFAULT_PREEMPT_HOLD_MIN);
        let long = include_str!("../../../examples/pair.toml")
            .replace("preempt_hold_max = \"3m\"", "preempt_hold_max = \"25h\"");
        assert_eq!(
            err_of(&long),
            "pair.toml: sync.preempt_hold_max: must be at most 24h"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/pair.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/pair.toml: "), "{e}");
    }
}
