//! Named sync sets and their status, as the products run them: e.g. `config` every 15 s from the
//! fixed configuration primary, `state` every 10 s and `voice` every 60 s from whichever node is
//! operational.
//!
//! The policy of *who* is the source (configuration primary or operational node) belongs to the
//! pair supervisor; a set only says which kind of source it follows ([`Direction`]), and a
//! [`PullerSet`] pulls from whatever address it is handed for a round. Status is kept per set:
//! generation, last success, duration, bytes on the wire, files changed, last error.
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::transfer::auth::{Identity, Key};
use crate::transfer::puller::{pull_once, PullConfig, RoundReport};
use crate::transfer::{PullTransport, TransferError};
use crate::tree::exclude::Excludes;
use crate::tree::manifest::{GenId, Limits};
use crate::tree::store::GenStore;
use crate::tree::TreeError;

/// Which node a set is pulled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the fixed configuration primary, whatever the VRRP state.
    FromConfigPrimary,
    /// From whichever node is currently operational (VRRP master).
    FromOperational,
}

/// Configuration of one named set (deserialisable from the pair's TOML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncSetConfig {
    /// Name, as asked for in the pull request.
    pub name: String,
    /// On the serving node: the live directory. On the pulling node: the generation store.
    pub root: PathBuf,
    /// Seconds between rounds.
    pub interval_secs: f64,
    /// Which node is the source.
    pub direction: Direction,
    /// Exclude patterns (see [`Excludes`]).
    #[serde(default)]
    pub excludes: Vec<String>,
}

impl SyncSetConfig {
    /// The interval as a duration (at least 100 ms, whatever the file says).
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval_secs.clamp(0.1, 86_400.0 * 365.0))
    }

    /// The excludes as a matcher.
    pub fn excludes(&self) -> Excludes {
        Excludes::new(self.excludes.iter().cloned())
    }
}

/// The status of one set on the pulling node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetStatus {
    /// Name of the set.
    pub name: String,
    /// The generation now current.
    pub generation: Option<GenId>,
    /// When the last round succeeded.
    pub last_success: Option<SystemTime>,
    /// Duration of the last round (successful or not).
    pub last_duration: Option<Duration>,
    /// Bytes on the wire in the last round, both ways.
    pub bytes_on_wire: u64,
    /// Entries changed or deleted in the last successful round.
    pub files_changed: u64,
    /// The last error, cleared by the next success.
    pub last_error: Option<String>,
    /// Successful rounds so far.
    pub rounds_ok: u64,
    /// Failed rounds so far.
    pub rounds_failed: u64,
}

impl SetStatus {
    /// Records the outcome of a round that ended at `now`.
    pub fn record(
        &mut self,
        now: SystemTime,
        took: Duration,
        result: &Result<RoundReport, TransferError>,
    ) {
        self.last_duration = Some(took);
        match result {
            Ok(r) => {
                self.generation = r.generation;
                self.last_success = Some(now);
                self.bytes_on_wire = r.bytes_sent + r.bytes_received;
                self.files_changed = r.entries_changed + r.entries_deleted;
                self.last_error = None;
                self.rounds_ok += 1;
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                self.rounds_failed += 1;
            }
        }
    }
}

/// One set on the pulling node: its store, schedule and status.
#[derive(Debug)]
pub struct PullerSet {
    config: SyncSetConfig,
    store: GenStore,
    status: SetStatus,
    next_due: Option<Instant>,
    transport: PullTransport,
}

impl PullerSet {
    /// Opens the set's generation store.
    pub fn open(config: SyncSetConfig) -> Result<PullerSet, TreeError> {
        let store = GenStore::open(&config.root)?;
        let status = SetStatus {
            name: config.name.clone(),
            generation: store.current_id().ok().flatten(),
            ..SetStatus::default()
        };
        Ok(PullerSet {
            config,
            store,
            status,
            next_due: None,
            transport: PullTransport::default(),
        })
    }

    /// Pulls with these transport options (TLS, compression) from now on.
    pub fn with_transport(mut self, transport: PullTransport) -> PullerSet {
        self.transport = transport;
        self
    }

    /// The set's configuration.
    pub fn config(&self) -> &SyncSetConfig {
        &self.config
    }

    /// The set's status.
    pub fn status(&self) -> &SetStatus {
        &self.status
    }

    /// Whether a round is due at `now` (the first one is due at once).
    pub fn due(&self, now: Instant) -> bool {
        self.next_due.is_none_or(|t| now >= t)
    }

    /// Runs one round against `server` and schedules the next one an interval after `now`.
    pub fn run_round(
        &mut self,
        server: &str,
        key: &Key,
        identity: &Identity,
        now: Instant,
    ) -> &SetStatus {
        let cfg = PullConfig {
            server: server.to_string(),
            set: self.config.name.clone(),
            key: key.clone(),
            identity: identity.clone(),
            limits: Limits::default(),
            io_timeout: Duration::from_secs(60),
            use_delta: true,
            transport: self.transport.clone(),
        };
        let started = Instant::now();
        let result = pull_once(&self.store, &cfg);
        self.status
            .record(SystemTime::now(), started.elapsed(), &result);
        self.next_due = Some(now + self.config.interval());
        &self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_records_success_and_failure() {
        let mut s = SetStatus::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let ok = RoundReport {
            generation: Some(GenId([1; 32])),
            changed: true,
            entries_changed: 3,
            entries_deleted: 2,
            bytes_sent: 10,
            bytes_received: 90,
            ..RoundReport::default()
        };
        s.record(t, Duration::from_millis(5), &Ok(ok));
        assert_eq!(s.generation, Some(GenId([1; 32])));
        assert_eq!(s.files_changed, 5);
        assert_eq!(s.bytes_on_wire, 100);
        assert_eq!(s.last_success, Some(t));
        let err = Err(TransferError::Remote("disk on fire".into()));
        s.record(t + Duration::from_secs(1), Duration::from_millis(7), &err);
        assert_eq!(s.last_success, Some(t), "a failure keeps the last success");
        assert_eq!(s.generation, Some(GenId([1; 32])));
        assert!(s.last_error.as_deref().unwrap().contains("disk on fire"));
        assert_eq!((s.rounds_ok, s.rounds_failed), (1, 1));
        assert_eq!(s.last_duration, Some(Duration::from_millis(7)));
    }

    #[test]
    fn config_from_toml_like_json() {
        // serde shape check through the crate's codec (round trip).
        let c = SyncSetConfig {
            name: "voice".into(),
            root: "/var/lib/pbx/voice".into(),
            interval_secs: 60.0,
            direction: Direction::FromOperational,
            excludes: vec!["*.tmp".into()],
        };
        let back: SyncSetConfig = crate::codec::decode(&crate::codec::encode(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.interval(), Duration::from_secs(60));
        assert!(c.excludes().is_excluded("a.tmp", "a.tmp"));
    }
}
