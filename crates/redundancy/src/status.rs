//! The status report a node gives on its control socket (serde, printed as text or JSON).
//!
//! Times are wall-clock seconds since the Unix epoch (`f64`), so that another process can
//! compare them with its own clock; `None` (JSON `null`) means "never".

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{BackupMode, Direction, Role};

/// Seconds since the Unix epoch.
pub fn unix_time(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The node's overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Starting; no instance has settled yet.
    Starting,
    /// Holds the virtual addresses (at least one instance is master).
    Operational,
    /// Standby: no instance is master.
    Standby,
    /// An instance is in fault (tracked interface down): addresses released.
    Fault,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Starting => "starting",
            NodeState::Operational => "operational",
            NodeState::Standby => "standby",
            NodeState::Fault => "fault",
        })
    }
}

/// One VRRP instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Instance name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// Router state: `initialize`, `backup`, `master` or `fault`.
    pub state: String,
    /// Effective priority.
    pub priority: u8,
    /// Virtual addresses (`address/prefix`).
    pub virtual_addresses: Vec<String>,
    /// Advertisements accepted so far.
    pub adverts_received: u64,
    /// When the VRRP runtime read the last advertisement its router accepted (the receive
    /// time itself, from the runtime's snapshot).
    pub last_advert_seen: Option<f64>,
    /// Received packets dropped, by reason (absent in older reports: all zero).
    #[serde(default)]
    pub statistics: VrrpStatistics,
}

/// Received VRRP packets one instance dropped, by reason, named after the VRRP MIB's
/// statistics (RFC 2787 `vrrpRouterStatsTable` and the router-wide checksum, version and VRID
/// error counters; RFC 6527 `vrrpv3StatisticsTable`). `ip_ttl_errors`, `vrid_errors` and part
/// of `packet_length_errors` are counted per interface and family (before a packet is matched
/// to an instance), so every instance there shows the same figures for them.
///
/// The runtime's own counters (the vrrp crate's `serde` feature gives them their JSON form, one
/// field per counter under the same name), so the report cannot drift from what is counted.
pub type VrrpStatistics = vrrp::linux::Drops;

/// A peer node, as heard through the pair heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its node id.
    pub node_id: String,
    /// The address it was heard from.
    pub address: String,
    /// Its configuration role.
    pub role: Role,
    /// Its backup mode.
    pub mode: BackupMode,
    /// Its overall state.
    pub state: NodeState,
    /// Since when it has been heard without a gap (heartbeat).
    pub connected_since: Option<f64>,
    /// When it was last heard.
    pub last_seen: Option<f64>,
    /// Whether it is heard now (within three heartbeat periods).
    pub up: bool,
}

/// One sync set, from this node's view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetStatus {
    /// Set name.
    pub name: String,
    /// Direction.
    pub direction: Direction,
    /// Whether this node serves it now.
    pub serving: bool,
    /// Whether this node pulls it now.
    pub pulling: bool,
    /// The configured pull interval, seconds.
    pub interval: f64,
    /// Where it is pulled from (when pulling).
    pub source: Option<String>,
    /// The generation current in this node's store (hex), if any.
    pub generation: Option<String>,
    /// When the last successful pull round ended.
    pub last_sync: Option<f64>,
    /// Duration of the last successful round, seconds.
    pub duration: Option<f64>,
    /// Bytes on the wire (sent + received) in the last successful round.
    pub bytes: Option<u64>,
    /// The last round's error, cleared by a successful round.
    pub last_error: Option<String>,
}

/// A standby as seen by the master (its pull rounds and heartbeat).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandbyStatus {
    /// Its node id.
    pub node_id: String,
    /// Its backup mode.
    pub mode: BackupMode,
    /// When it was last heard (pull or heartbeat).
    pub last_seen: Option<f64>,
    /// Whether it held our generation of every set we serve at its last pull.
    pub in_sync: bool,
    /// Whether it is heard now.
    pub up: bool,
}

/// The last run of a hook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookStatus {
    /// `operational`, `standby` or `fault`.
    pub event: String,
    /// The command.
    pub command: String,
    /// Whether it exited with status 0 in time.
    pub ok: bool,
    /// How it ended.
    pub outcome: String,
    /// When it ended.
    pub at: f64,
}

/// The hook commands in force (after reloads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HookCommands {
    /// Run on becoming operational.
    pub operational: Vec<String>,
    /// Run on becoming standby.
    pub standby: Vec<String>,
    /// Run on fault.
    pub fault: Vec<String>,
    /// Time limit of one command, seconds.
    pub timeout: f64,
}

/// The admin port forward (configured on every node; it listens only while operational).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminForwardStatus {
    /// The TCP port the master listens on.
    pub listen_port: u16,
    /// The standby's admin address.
    pub standby_address: String,
    /// Whether this node listens now.
    pub listening: bool,
}

/// The outcome of the last configuration reload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// When it happened.
    pub at: f64,
    /// The file read.
    pub file: String,
    /// Whether the file was valid (if not, the old configuration stays in force).
    pub ok: bool,
    /// Keys applied live, e.g. `sync.sets[1].interval`, `hooks`.
    pub applied: Vec<String>,
    /// Keys changed in the file that need a restart to take effect (still the old values).
    pub restart_needed: Vec<String>,
    /// Why the file was refused.
    pub error: Option<String>,
}

/// A preempt hold in force (see [`crate::hold`]): this node outranks the master but waits to
/// pull the sets that flow from it before it preempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreemptHoldStatus {
    /// When the hold began.
    pub since: f64,
    /// The sets not yet pulled from the master since then.
    pub waiting_for: Vec<String>,
    /// When it ends at the latest (`sync.preempt_hold_max`), even if the pulls never succeed.
    pub expires: f64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Node id.
    pub node: String,
    /// Node name.
    pub name: String,
    /// Configuration role.
    pub role: Role,
    /// Backup mode.
    pub mode: BackupMode,
    /// Overall state.
    pub state: NodeState,
    /// Per VRRP instance.
    pub instances: Vec<InstanceStatus>,
    /// Peers heard.
    pub peers: Vec<PeerStatus>,
    /// Per sync set.
    pub sets: Vec<SetStatus>,
    /// On the master: each standby.
    pub standbys: Vec<StandbyStatus>,
    /// Recent hook runs (newest last).
    pub hooks: Vec<HookStatus>,
    /// The hook commands in force.
    pub hook_commands: HookCommands,
    /// The admin port forward in force, if configured.
    pub admin_forward: Option<AdminForwardStatus>,
    /// The configuration file in force.
    pub config_file: String,
    /// The outcome of the last reload (SIGHUP), if any.
    pub reload: Option<ReloadStatus>,
    /// Configuration conflicts with peers (both primary, VRID / interval / address mismatch).
    pub errors: Vec<String>,
    /// The preempt hold, while one is in force (`null` otherwise).
    #[serde(default)]
    pub preempt_hold: Option<PreemptHoldStatus>,
}

fn ago(t: Option<f64>, now: f64) -> String {
    match t {
        None => "never".into(),
        Some(t) => format!("{:.1} s ago", (now - t).max(0.0)),
    }
}

impl Status {
    /// Human-readable text, e.g. `backup node-b is UP (Active mode), in sync`.
    pub fn to_text(&self) -> String {
        let now = unix_time(SystemTime::now());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "node {} ({}), {} role, {} mode: {}",
            self.node, self.name, self.role, self.mode, self.state
        );
        for i in &self.instances {
            let _ = writeln!(
                s,
                "  vrrp {} on {} vrid {}: {} priority {} [{}], last advert seen {}",
                i.name,
                i.interface,
                i.vrid,
                i.state,
                i.priority,
                i.virtual_addresses.join(", "),
                ago(i.last_advert_seen, now)
            );
        }
        for p in &self.peers {
            let _ = writeln!(
                s,
                "  peer {} at {}: {} ({} role, {} mode), {}, connected since {}",
                p.node_id,
                p.address,
                if p.up { "UP" } else { "DOWN" },
                p.role,
                p.mode,
                p.state,
                ago(p.connected_since, now)
            );
        }
        for b in &self.standbys {
            let _ = writeln!(
                s,
                "  backup {} is {} ({} mode), {}",
                b.node_id,
                if b.up { "UP" } else { "DOWN" },
                b.mode,
                if b.in_sync { "in sync" } else { "NOT in sync" }
            );
        }
        for set in &self.sets {
            let role = if set.serving {
                "serving".to_string()
            } else if set.pulling {
                format!("pulling from {}", set.source.as_deref().unwrap_or("?"))
            } else {
                "idle".to_string()
            };
            let _ = writeln!(
                s,
                "  set {} ({:?}): {}, generation {}, last sync {}{}{}",
                set.name,
                set.direction,
                role,
                set.generation
                    .as_deref()
                    .map_or("none".to_string(), |g| g.chars().take(12).collect()),
                ago(set.last_sync, now),
                match (set.duration, set.bytes) {
                    (Some(d), Some(b)) => format!(" ({d:.3} s, {b} B)"),
                    _ => String::new(),
                },
                set.last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(", last error: {e}"))
            );
        }
        if let Some(h) = &self.preempt_hold {
            let _ = writeln!(
                s,
                "  preempt held: waiting for sets {} (held {:.1} s, at most {:.1} s more)",
                h.waiting_for.join(", "),
                (now - h.since).max(0.0),
                (h.expires - now).max(0.0)
            );
        }
        if let Some(r) = &self.reload {
            if r.ok {
                let _ = writeln!(
                    s,
                    "  reload {}: applied [{}]{}",
                    ago(Some(r.at), now),
                    r.applied.join(", "),
                    if r.restart_needed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; NOT applied, restart needed: [{}]",
                            r.restart_needed.join(", ")
                        )
                    }
                );
            } else {
                let _ = writeln!(
                    s,
                    "  reload {} REFUSED, old configuration kept: {}",
                    ago(Some(r.at), now),
                    r.error.as_deref().unwrap_or("?")
                );
            }
        }
        for e in &self.errors {
            let _ = writeln!(s, "  ERROR: {e}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            node: "node-a".into(),
            name: "A".into(),
            role: Role::Primary,
            mode: BackupMode::Active,
            state: NodeState::Operational,
            instances: vec![InstanceStatus {
                name: "pbx".into(),
                interface: "eth0".into(),
                vrid: 51,
                state: "master".into(),
                priority: 200,
                virtual_addresses: vec!["10.99.0.100/24".into()],
                adverts_received: 0,
                last_advert_seen: None,
                statistics: VrrpStatistics {
                    auth_failures: 3,
                    ..Default::default()
                },
            }],
            peers: vec![],
            sets: vec![SetStatus {
                name: "config".into(),
                direction: Direction::FromPrimary,
                serving: true,
                pulling: false,
                interval: 1.0,
                source: None,
                generation: Some("ab".repeat(32)),
                last_sync: None,
                duration: None,
                bytes: None,
                last_error: None,
            }],
            standbys: vec![StandbyStatus {
                node_id: "node-b".into(),
                mode: BackupMode::Active,
                // Exact binary fractions: serde_json's default float parsing may differ in
                // the last bit from the printed value for arbitrary times.
                last_seen: Some(1_700_000_000.25),
                in_sync: true,
                up: true,
            }],
            hooks: vec![],
            hook_commands: HookCommands::default(),
            admin_forward: None,
            config_file: "pair.toml".into(),
            reload: Some(ReloadStatus {
                at: 1_700_000_000.5,
                file: "pair.toml".into(),
                ok: true,
                applied: vec!["hooks".into()],
                restart_needed: vec!["vrrp.instances[0].priority".into()],
                error: None,
            }),
            errors: vec!["both nodes claim the primary role".into()],
            preempt_hold: None,
        }
    }

    #[test]
    fn text_shows_a_preempt_hold_and_its_sets() {
        let mut s = sample();
        assert!(!s.to_text().contains("preempt held"));
        let now = unix_time(SystemTime::now());
        s.preempt_hold = Some(PreemptHoldStatus {
            since: now - 2.0,
            waiting_for: vec!["state".into(), "voice".into()],
            expires: now + 28.0,
        });
        let t = s.to_text();
        assert!(
            t.contains("preempt held: waiting for sets state, voice (held 2."),
            "{t}"
        );
        // A report from before the field existed still parses.
        let mut j: serde_json::Value = serde_json::to_value(sample()).unwrap();
        j.as_object_mut().unwrap().remove("preempt_hold");
        let back: Status = serde_json::from_value(j).unwrap();
        assert_eq!(back.preempt_hold, None);
    }

    #[test]
    fn text_has_the_product_line() {
        let t = sample().to_text();
        assert!(
            t.contains("backup node-b is UP (Active mode), in sync"),
            "{t}"
        );
        assert!(
            t.contains("ERROR: both nodes claim the primary role"),
            "{t}"
        );
        assert!(t.contains("generation abababababab,"), "{t}");
        assert!(
            t.contains(
                "applied [hooks]; NOT applied, restart needed: [vrrp.instances[0].priority]"
            ),
            "{t}"
        );
    }

    #[test]
    fn json_round_trip() {
        let s = sample();
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"role\":\"primary\"") && j.contains("\"state\":\"operational\""));
        let back: Status = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn json_shows_the_drop_statistics_and_old_reports_parse() {
        let j: serde_json::Value = serde_json::to_value(sample()).unwrap();
        let stats = &j["instances"][0]["statistics"];
        assert_eq!(stats["auth_failures"], 3, "{stats}");
        assert_eq!(stats["ip_ttl_errors"], 0, "{stats}");
        let mut old = j.clone();
        old["instances"][0]
            .as_object_mut()
            .unwrap()
            .remove("statistics");
        let back: Status = serde_json::from_value(old).unwrap();
        assert_eq!(back.instances[0].statistics, VrrpStatistics::default());
    }
}
