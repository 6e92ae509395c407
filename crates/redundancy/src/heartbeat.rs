//! The pair heartbeat: a small authenticated UDP datagram each node sends to its peers twice
//! a second, on the sync port number.
//!
//! The sync hello only tells the *serving* side who pulls; the pair needs more both ways: the
//! peer's configuration role (two primaries is an error), its VRRP settings (VRID, interval
//! and addresses must agree), its state and mode (who is operational, whom to pull from, which
//! standbys exist), the generations it serves (a swap waits for them) and the few commands of
//! a swap. Datagram: 32-byte HMAC-SHA256 tag over the JSON body, keyed with the pair's
//! pre-shared key, then the JSON body. A datagram with a bad tag is dropped.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::config::{BackupMode, Role};
use crate::status::NodeState;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Largest heartbeat datagram.
pub const MAX_DATAGRAM: usize = 16 * 1024;
const TAG: usize = 32;

/// One VRRP instance as announced to the peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Instance name.
    pub name: String,
    /// VRID.
    pub vrid: u8,
    /// Advertisement interval in milliseconds.
    pub interval_ms: u64,
    /// Virtual addresses (`address/prefix`).
    pub addresses: Vec<String>,
    /// Router state name.
    pub state: String,
    /// Effective priority (absent from older senders: 0).
    #[serde(default)]
    pub priority: u8,
}

/// A command carried by a heartbeat (sent a few times; `seq` de-duplicates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerCommand {
    /// Master to standby: start a planned swap (pull everything, then take over).
    Swap {
        /// The standby asked.
        to: String,
    },
    /// Standby to master: it holds every generation and takes over; release now.
    Release {
        /// The master asked.
        to: String,
    },
}

/// The heartbeat body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// Sender's node id.
    pub node_id: String,
    /// Its role.
    pub role: Role,
    /// Its backup mode.
    pub mode: BackupMode,
    /// Its overall state.
    pub state: NodeState,
    /// Its sync TCP port.
    pub sync_port: u16,
    /// Its VRRP instances.
    pub instances: Vec<InstanceInfo>,
    /// The generation (hex) of each set it serves.
    pub serving: BTreeMap<String, String>,
    /// The generation (hex) of each set in its store.
    pub holding: BTreeMap<String, String>,
    /// Identifies the sender's process run (its start time in nanoseconds): a restarted peer
    /// starts its command numbers again.
    pub boot: u64,
    /// Command sequence number (increases with each new command).
    pub seq: u64,
    /// The command, if any.
    pub command: Option<PeerCommand>,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the fallback is unreachable but keeps this panic-free.
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()))
}

/// Encodes and tags a heartbeat.
pub fn encode(key: &[u8], beat: &Beat) -> Vec<u8> {
    let body = serde_json::to_vec(beat).unwrap_or_default();
    let mut m = mac(key);
    m.update(&body);
    let tag = m.finalize().into_bytes();
    let mut out = Vec::with_capacity(TAG + body.len());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&body);
    out
}

/// Why a datagram was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BeatError {
    /// Too short or too long.
    #[error("heartbeat of {0} bytes has a bad length")]
    Length(usize),
    /// The tag does not verify: another key, or altered.
    #[error("heartbeat tag does not verify (wrong pre-shared key or altered datagram)")]
    Tag,
    /// The body does not decode.
    #[error("heartbeat body: {0}")]
    Body(String),
}

/// Verifies and decodes a datagram.
pub fn decode(key: &[u8], datagram: &[u8]) -> Result<Beat, BeatError> {
    if datagram.len() <= TAG || datagram.len() > MAX_DATAGRAM {
        return Err(BeatError::Length(datagram.len()));
    }
    let (tag, body) = datagram.split_at(TAG);
    let mut m = mac(key);
    m.update(body);
    m.verify_slice(tag).map_err(|_| BeatError::Tag)?;
    serde_json::from_slice(body).map_err(|e| BeatError::Body(e.to_string()))
}

/// Compares the peer's announced settings with ours: the conflicts the pair reports.
pub fn conflicts(my_id: &str, my_role: Role, mine: &[InstanceInfo], peer: &Beat) -> Vec<String> {
    let mut out = Vec::new();
    if peer.node_id == my_id {
        out.push(format!("peer uses our node id `{my_id}`"));
    }
    if my_role == Role::Primary && peer.role == Role::Primary {
        out.push(format!(
            "both nodes claim the configuration primary role (this node `{my_id}` and `{}`)",
            peer.node_id
        ));
    }
    for m in mine {
        match peer.instances.iter().find(|p| p.vrid == m.vrid) {
            None => out.push(format!(
                "instance {} (VRID {}): peer `{}` has no instance with this VRID (its VRIDs: {:?})",
                m.name,
                m.vrid,
                peer.node_id,
                peer.instances.iter().map(|p| p.vrid).collect::<Vec<_>>()
            )),
            Some(p) => {
                if p.interval_ms != m.interval_ms {
                    out.push(format!(
                        "instance {} (VRID {}): advertisement interval {} ms here, {} ms on `{}`",
                        m.name, m.vrid, m.interval_ms, p.interval_ms, peer.node_id
                    ));
                }
                let mut a = m.addresses.clone();
                let mut b = p.addresses.clone();
                a.sort();
                b.sort();
                if a != b {
                    out.push(format!(
                        "instance {} (VRID {}): virtual addresses {:?} here, {:?} on `{}`",
                        m.name, m.vrid, a, b, peer.node_id
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, role: Role) -> Beat {
        Beat {
            node_id: id.into(),
            role,
            mode: BackupMode::Active,
            state: NodeState::Standby,
            sync_port: 8730,
            instances: vec![InstanceInfo {
                name: "pbx".into(),
                vrid: 51,
                interval_ms: 1000,
                addresses: vec!["10.99.0.100/24".into()],
                state: "backup".into(),
                priority: 100,
            }],
            serving: BTreeMap::new(),
            holding: BTreeMap::new(),
            boot: 1,
            seq: 0,
            command: None,
        }
    }

    #[test]
    fn tag_round_trip_and_rejections() {
        let key = b"0123456789abcdef0123";
        let b = beat("node-b", Role::Secondary);
        let d = encode(key, &b);
        assert_eq!(decode(key, &d), Ok(b));
        assert_eq!(decode(b"another key of 16+ bytes", &d), Err(BeatError::Tag));
        let mut flipped = d.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert_eq!(decode(key, &flipped), Err(BeatError::Tag));
        assert_eq!(decode(key, &d[..10]), Err(BeatError::Length(10)));
        assert!(matches!(
            decode(key, &vec![0u8; MAX_DATAGRAM + 1]),
            Err(BeatError::Length(_))
        ));
    }

    #[test]
    fn conflicts_found() {
        let me = beat("node-a", Role::Primary);
        let mut peer = beat("node-b", Role::Primary);
        let c = conflicts("node-a", Role::Primary, &me.instances, &peer);
        assert_eq!(c.len(), 1);
        assert!(c[0].contains("both nodes claim the configuration primary role"));
        peer.role = Role::Secondary;
        assert!(conflicts("node-a", Role::Primary, &me.instances, &peer).is_empty());
        peer.instances[0].interval_ms = 100;
        peer.instances[0].addresses = vec!["10.99.0.101/24".into()];
        let c = conflicts("node-a", Role::Primary, &me.instances, &peer);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].contains("interval 1000 ms here, 100 ms"));
        assert!(c[1].contains("virtual addresses"));
        peer.instances[0].vrid = 52;
        let c = conflicts("node-a", Role::Primary, &me.instances, &peer);
        assert!(c[0].contains("has no instance with this VRID"), "{c:?}");
    }
}
