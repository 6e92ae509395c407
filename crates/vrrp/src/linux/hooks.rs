//! Notify hooks: on every state change run a command with keepalived's arguments
//! (`CMD INSTANCE name STATE priority`), bounded by a timeout.
//!
//! A hook that cannot be started, exits non-zero, is killed by a signal or overruns its
//! timeout is reported as a failure, never as success. Hooks run asynchronously: the runtime
//! never waits for one, it reaps them on its next wake-up.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// Exit status 0.
    Succeeded,
    /// Could not be started at all.
    NotStarted(String),
    /// Exited with this status (or was killed by a signal: `None`).
    Failed(Option<i32>),
    /// Killed after overrunning its timeout.
    TimedOut(Duration),
}

impl HookOutcome {
    /// True only for [`HookOutcome::Succeeded`].
    pub fn is_success(&self) -> bool {
        *self == HookOutcome::Succeeded
    }
}

impl std::fmt::Display for HookOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookOutcome::Succeeded => write!(f, "succeeded"),
            HookOutcome::NotStarted(e) => write!(f, "could not be started: {e}"),
            HookOutcome::Failed(Some(c)) => write!(f, "failed with exit status {c}"),
            HookOutcome::Failed(None) => write!(f, "was killed by a signal"),
            HookOutcome::TimedOut(t) => write!(f, "timed out after {t:?} and was killed"),
        }
    }
}

/// A started hook.
pub struct RunningHook {
    child: Child,
    deadline: Instant,
    timeout: Duration,
    /// The command line as run (for reports).
    pub description: String,
}

/// Starts `command` through `sh -c` with the keepalived-style arguments appended as
/// positional parameters (`INSTANCE name STATE priority`, STATE in capitals as keepalived
/// writes it). Failing to start is an outcome, returned at once.
pub fn start(
    command: &str,
    instance: &str,
    state: &str,
    priority: u8,
    timeout: Duration,
    now: Instant,
) -> Result<RunningHook, HookOutcome> {
    let state = state.to_ascii_uppercase();
    let prio = priority.to_string();
    let description = format!("{command} INSTANCE {instance} {state} {prio}");
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{command} \"$@\""))
        .arg("sh")
        .args(["INSTANCE", instance, &state, &prio])
        .stdin(Stdio::null())
        .spawn()
        .map(|child| RunningHook {
            child,
            deadline: now + timeout,
            timeout,
            description,
        })
        .map_err(|e| HookOutcome::NotStarted(e.to_string()))
}

impl RunningHook {
    /// When the hook must have finished.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Checks the hook without blocking: `Some(outcome)` once it has ended (or was killed for
    /// overrunning its timeout at `now`).
    pub fn poll(&mut self, now: Instant) -> Option<HookOutcome> {
        match self.child.try_wait() {
            Ok(Some(status)) if status.success() => Some(HookOutcome::Succeeded),
            Ok(Some(status)) => Some(HookOutcome::Failed(status.code())),
            Ok(None) if now >= self.deadline => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Some(HookOutcome::TimedOut(self.timeout))
            }
            Ok(None) => None,
            Err(e) => Some(HookOutcome::NotStarted(e.to_string())),
        }
    }

    /// Waits for the hook up to its deadline (used at shutdown).
    pub fn finish(mut self) -> HookOutcome {
        loop {
            let now = Instant::now();
            if let Some(o) = self.poll(now) {
                return o;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: &str, timeout: Duration) -> HookOutcome {
        match start(cmd, "VI_1", "master", 150, timeout, Instant::now()) {
            Ok(h) => h.finish(),
            Err(o) => o,
        }
    }

    #[test]
    fn arguments_are_keepalived_style() {
        let dir = std::env::temp_dir().join(format!("vrrp-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("args");
        let cmd = format!("printf '%s ' > {}", out.display());
        assert!(run(&cmd, Duration::from_secs(5)).is_success());
        let written = std::fs::read_to_string(&out).expect("hook wrote its arguments");
        assert_eq!(written.trim(), "INSTANCE VI_1 MASTER 150");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_are_failures() {
        assert_eq!(
            run("exit 3", Duration::from_secs(5)),
            HookOutcome::Failed(Some(3))
        );
        assert_eq!(
            run("/nonexistent/hook", Duration::from_secs(5)),
            HookOutcome::Failed(Some(127))
        );
        assert_eq!(
            run("sleep 5 #", Duration::from_millis(100)),
            HookOutcome::TimedOut(Duration::from_millis(100))
        );
    }
}
