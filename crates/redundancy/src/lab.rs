//! Configuration files for lab pairs: the one builder that `redundancy-cli demo` and the
//! namespace tests (`crates/redundancy-cli/tests/pair_*.rs`) use to write each node's
//! `pair.toml`, so that both exercise the same file a user writes.
//!
//! A lab node keeps everything under one directory `DIR`: `DIR/pair.toml`, the control socket
//! `DIR/ctl.sock` and one generation store per sync set, `DIR/<set>`. The text goes through
//! [`Config::from_toml`](crate::config::Config::from_toml) like any other file.
//!
//! ```
//! use redundancy::lab::PairConfigBuilder;
//! use redundancy::config::{Config, Direction, Role};
//!
//! let mut b = PairConfigBuilder::new("/tmp/lab/node-a", "node-a", Role::Primary, 200);
//! b.peers = vec!["10.99.0.2".into()];
//! b.key_file = "/tmp/lab/psk".into();
//! b.set("config", Direction::FromPrimary, "1s");
//! let cfg = Config::from_toml("pair.toml", &b.toml()).unwrap();
//! assert_eq!(cfg.instances[0].priority, 200);
//! assert_eq!(cfg.sets[0].root, std::path::Path::new("/tmp/lab/node-a/config"));
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{BackupMode, Direction, Role};

/// One sync set of a lab node; its root is `DIR/<name>`.
#[derive(Clone, Debug, PartialEq)]
pub struct LabSet {
    /// Set name.
    pub name: String,
    /// Where its data comes from.
    pub direction: Direction,
    /// Pull interval, e.g. `"1s"`.
    pub interval: String,
}

/// The configuration of one lab node; [`toml`](Self::toml) renders the file.
#[derive(Clone, Debug, PartialEq)]
pub struct PairConfigBuilder {
    /// The node's directory (config file, control socket, set stores).
    pub dir: PathBuf,
    /// `node.id`.
    pub id: String,
    /// `node.role`.
    pub role: Role,
    /// `node.mode`.
    pub mode: BackupMode,
    /// `node.peers` (`ip` or `ip:port`).
    pub peers: Vec<String>,
    /// `sync.key_file`.
    pub key_file: PathBuf,
    /// `sync.listen`.
    pub sync_listen: String,
    /// The one VRRP instance's interface.
    pub interface: String,
    /// Its VRID.
    pub vrid: u8,
    /// Its priority.
    pub priority: u8,
    /// Its advertisement interval (VRRPv3), e.g. `"100ms"`.
    pub advert_interval: String,
    /// Its virtual addresses (`address/prefix`).
    pub virtual_addresses: Vec<String>,
    /// Its preempt mode.
    pub preempt: bool,
    /// The sync sets.
    pub sets: Vec<LabSet>,
    /// `sync.preempt_hold_max` (`None`: the default).
    pub preempt_hold_max: Option<String>,
    /// `hooks.operational`.
    pub operational_hooks: Vec<String>,
    /// `hooks.standby`.
    pub standby_hooks: Vec<String>,
    /// `hooks.fault`.
    pub fault_hooks: Vec<String>,
    /// `hooks.timeout`.
    pub hook_timeout: String,
    /// `[admin_forward]`: listen port and the standby's admin address.
    pub admin_forward: Option<(u16, String)>,
}

impl PairConfigBuilder {
    /// A node with the lab defaults: interface `eth0`, VRID 51, VRRPv3 at 100 ms adverts,
    /// virtual address `10.99.0.100/24`, preempt on, active mode, sync on `0.0.0.0:8730`,
    /// no peers, no sets, no hooks (timeout 5 s), no admin forward.
    pub fn new(dir: impl Into<PathBuf>, id: &str, role: Role, priority: u8) -> PairConfigBuilder {
        let dir = dir.into();
        PairConfigBuilder {
            key_file: dir.join("psk"),
            dir,
            id: id.to_string(),
            role,
            mode: BackupMode::Active,
            peers: Vec::new(),
            sync_listen: "0.0.0.0:8730".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority,
            advert_interval: "100ms".into(),
            virtual_addresses: vec!["10.99.0.100/24".into()],
            preempt: true,
            sets: Vec::new(),
            preempt_hold_max: None,
            operational_hooks: Vec::new(),
            standby_hooks: Vec::new(),
            fault_hooks: Vec::new(),
            hook_timeout: "5s".into(),
            admin_forward: None,
        }
    }

    /// Adds a sync set rooted at `DIR/<name>`.
    pub fn set(&mut self, name: &str, direction: Direction, interval: &str) -> &mut Self {
        self.sets.push(LabSet {
            name: name.to_string(),
            direction,
            interval: interval.to_string(),
        });
        self
    }

    /// `DIR/pair.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("pair.toml")
    }

    /// `DIR/ctl.sock`.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// `DIR/<set>`, the set's generation store.
    pub fn set_root(&self, set: &str) -> PathBuf {
        self.dir.join(set)
    }

    /// The file's text.
    pub fn toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[node]");
        let _ = writeln!(s, "id = {}", q(&self.id));
        let _ = writeln!(s, "role = \"{}\"", self.role);
        let mode = match self.mode {
            BackupMode::Active => "active",
            BackupMode::Passive => "passive",
        };
        let _ = writeln!(s, "mode = \"{mode}\"");
        let _ = writeln!(s, "peers = {}", list(&self.peers));
        let _ = writeln!(s, "control_socket = {}", qp(&self.control_socket()));
        let _ = writeln!(s, "\n[[vrrp.instances]]\nname = \"pbx\"");
        let _ = writeln!(s, "interface = {}", q(&self.interface));
        let _ = writeln!(s, "vrid = {}\npriority = {}", self.vrid, self.priority);
        let _ = writeln!(s, "version = 3\ninterval = {}", q(&self.advert_interval));
        let _ = writeln!(s, "virtual_addresses = {}", list(&self.virtual_addresses));
        let _ = writeln!(s, "preempt = {}", self.preempt);
        let _ = writeln!(s, "\n[sync]\nkey_file = {}", qp(&self.key_file));
        let _ = writeln!(s, "listen = {}", q(&self.sync_listen));
        if let Some(h) = &self.preempt_hold_max {
            let _ = writeln!(s, "preempt_hold_max = {}", q(h));
        }
        for set in &self.sets {
            let direction = match set.direction {
                Direction::FromPrimary => "from_primary",
                Direction::FromOperational => "from_operational",
            };
            let _ = writeln!(s, "\n[[sync.sets]]\nname = {}", q(&set.name));
            let _ = writeln!(s, "root = {}", qp(&self.set_root(&set.name)));
            let _ = writeln!(s, "interval = {}", q(&set.interval));
            let _ = writeln!(s, "direction = \"{direction}\"");
        }
        let _ = writeln!(s, "\n[hooks]");
        let _ = writeln!(s, "operational = {}", list(&self.operational_hooks));
        let _ = writeln!(s, "standby = {}", list(&self.standby_hooks));
        let _ = writeln!(s, "fault = {}", list(&self.fault_hooks));
        let _ = writeln!(s, "timeout = {}", q(&self.hook_timeout));
        if let Some((port, to)) = &self.admin_forward {
            let _ = writeln!(s, "\n[admin_forward]\nlisten_port = {port}");
            let _ = writeln!(s, "standby_address = {}", q(to));
        }
        s
    }

    /// Creates `DIR` and writes `DIR/pair.toml`; returns its path.
    pub fn write(&self) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.config_path();
        std::fs::write(&path, self.toml())?;
        Ok(path)
    }
}

/// A TOML basic string (JSON's string escapes are TOML's).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn qp(p: &Path) -> String {
    q(&p.display().to_string())
}

fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| q(i)).collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_field_reaches_the_validated_config() {
        let mut b = PairConfigBuilder::new("/lab/n2", "n2", Role::Secondary, 90);
        b.mode = BackupMode::Passive;
        b.peers = vec!["10.99.0.1".into(), "10.99.0.3:9000".into()];
        b.key_file = "/lab/psk".into();
        b.preempt = false;
        b.set("voice", Direction::FromOperational, "250ms");
        b.preempt_hold_max = Some("45s".into());
        b.operational_hooks = vec![r#"echo "$REDUNDANCY_NODE" > /lab/n2/op"#.into()];
        b.standby_hooks = vec!["echo s\\t".into()];
        b.admin_forward = Some((8765, "10.99.0.2:8765".into()));
        let c = Config::from_toml("lab.toml", &b.toml()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node_id, "n2");
        assert_eq!(c.role, Role::Secondary);
        assert_eq!(c.mode, BackupMode::Passive);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[1].address.port(), 9000);
        assert_eq!(c.control_socket, Path::new("/lab/n2/ctl.sock"));
        assert_eq!(c.instances[0].priority, 90);
        assert!(!c.instances[0].preempt);
        assert_eq!(c.sets[0].root, Path::new("/lab/n2/voice"));
        assert_eq!(c.sets[0].interval.as_millis(), 250);
        assert_eq!(c.preempt_hold_max.as_secs(), 45);
        assert_eq!(
            c.hooks.operational[0],
            r#"echo "$REDUNDANCY_NODE" > /lab/n2/op"#
        );
        assert_eq!(c.hooks.standby[0], "echo s\\t");
        let f = c.admin_forward.unwrap();
        assert_eq!(f.listen_port, 8765);
        assert_eq!(f.standby_address.to_string(), "10.99.0.2:8765");
    }
}
