//! The redundancy pair: a configuration file, a supervisor that wires the VRRP election
//! (`vrrp::linux`) and the tree sync (`sync::transfer`) together with hooks, a pair heartbeat
//! and an admin port forward, and a control socket for `status`, `swap`, `mode`, `takeover`
//! and `release`.
//!
//! * [`config`]: the TOML file and its validation.
//! * [`supervisor`]: the thread that reacts to the node's state (see its table).
//! * [`hold`]: the preempt hold of a returning node (no failback before it pulled).
//! * [`heartbeat`]: the authenticated UDP messages the two nodes exchange.
//! * [`control`]: the Unix control socket (JSON), client and server.
//! * [`status`]: the status report.
//! * [`lab`]: the configuration builder of the demo and the namespace tests.
//! * [`run_foreground`]: what `redundancy-cli run` does.
#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod heartbeat;
pub mod hold;
pub mod lab;
pub mod status;
pub mod supervisor;

use std::path::Path;

pub use config::Config;
pub use supervisor::{Supervisor, SupervisorError};

/// Errors of [`run_foreground`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The supervisor did not start.
    #[error(transparent)]
    Start(#[from] SupervisorError),
    /// Signal handling could not be set up.
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Runs a node in the foreground until SIGTERM or SIGINT (graceful: hand over to a standby
/// when operational, then priority 0 and release). SIGHUP reloads the file where possible.
pub fn run_foreground(config_path: &Path) -> Result<(), RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let cfg = Config::load(config_path)?;
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(RunError::Signals)?;
    let handle = signals.handle();
    let sup = Supervisor::start(cfg)?;
    // Poll for signals so that a supervisor that ended by itself (the VRRP runtime stopped)
    // also ends the process.
    'outer: while !sup.is_finished() {
        for sig in signals.pending() {
            match sig {
                SIGHUP => match Config::load(config_path) {
                    Ok(c) => sup.reload(c),
                    Err(e) => {
                        log::error!("reload refused, the old configuration stays in force: {e}");
                        sup.reload_failed(config_path, e.to_string());
                    }
                },
                _ => {
                    log::info!("signal {sig}: stopping gracefully");
                    break 'outer;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    handle.close();
    sup.shutdown();
    Ok(())
}
