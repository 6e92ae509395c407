//! Tracking: interface link state (a tracked interface without carrier puts the instance in
//! Fault) and health-check commands with interval, timeout, rise / fall and weight
//! (keepalived's `track_interface` and `vrrp_script`).
//!
//! Link changes arrive on an rtnetlink socket subscribed to link notifications; on any
//! notification the runtime re-reads the tracked interfaces' flags (`IFF_UP` and
//! `IFF_RUNNING`), so no message needs decoding.

use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `RTMGRP_LINK`: the multicast group of link notifications.
const RTMGRP_LINK: u32 = 1;

/// Listens to link notifications in the calling thread's namespace.
pub struct LinkWatch {
    socket: Socket,
}

impl LinkWatch {
    /// Opens and subscribes the netlink socket (non-blocking).
    pub fn new() -> std::io::Result<LinkWatch> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        socket.set_non_blocking(true)?;
        Ok(LinkWatch { socket })
    }

    /// Reads and discards every pending notification; true when there was at least one.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        while let Ok(n) = self.socket.recv(&mut &mut buf[..], 0) {
            if n == 0 {
                break;
            }
            any = true;
        }
        any
    }
}

impl AsRawFd for LinkWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Whether the interface is administratively up and has carrier (`IFF_UP | IFF_RUNNING`);
/// `false` when it does not exist.
pub fn link_is_up(interface: &str) -> bool {
    let Ok(s) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None) else {
        return false;
    };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return false;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes ifru_flags of `req`.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if rc != 0 {
        return false;
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
}

/// A health-check command (keepalived's `vrrp_script`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Run through `sh -c`; exit status 0 is success.
    pub command: String,
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// A run longer than this is killed and counts as a failure.
    pub timeout: Duration,
    /// Consecutive successes that make a failed check good again.
    pub rise: u32,
    /// Consecutive failures that make a good check failed.
    pub fall: u32,
    /// 0: a failed check puts the instance in Fault. Positive: added to the priority while
    /// the check is good. Negative: added (subtracted) while it is failed.
    pub weight: i16,
}

impl CheckConfig {
    /// A check with keepalived's defaults: every second, timeout = interval, rise 1, fall 1,
    /// weight 0.
    pub fn new(command: &str) -> CheckConfig {
        CheckConfig {
            command: command.to_string(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
            weight: 0,
        }
    }
}

/// A check's running state.
pub struct Check {
    config: CheckConfig,
    good: bool,
    streak: u32,
    next_run: Instant,
    running: Option<(Child, Instant)>,
    runs: u64,
}

impl Check {
    /// A check starting in the good state (as keepalived's scripts with `init_fail` off), first
    /// run at `now`.
    pub fn new(config: CheckConfig, now: Instant) -> Check {
        Check {
            config,
            good: true,
            streak: 0,
            next_run: now,
            running: None,
            runs: 0,
        }
    }

    /// How many runs have finished (or failed to start) so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// The configuration.
    pub fn config(&self) -> &CheckConfig {
        &self.config
    }

    /// Whether the check is currently good.
    pub fn is_good(&self) -> bool {
        self.good
    }

    /// The next time [`Check::poll`] has something to do.
    pub fn deadline(&self) -> Instant {
        match &self.running {
            // Poll a running check often enough to see it end; bounded by its timeout.
            Some((_, started)) => {
                (*started + self.config.timeout).min(Instant::now() + Duration::from_millis(20))
            }
            None => self.next_run,
        }
    }

    /// Starts a run when due, reaps a finished or overrunning one; returns `Some(good)` when
    /// the check's state flipped.
    pub fn poll(&mut self, now: Instant) -> Option<bool> {
        let mut result = None;
        if let Some((child, started)) = self.running.as_mut() {
            let r = match child.try_wait() {
                Ok(Some(status)) => Some(status.success()),
                Ok(None) if now >= *started + self.config.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Some(false)
                }
                Ok(None) => None,
                Err(_) => Some(false),
            };
            if let Some(ok) = r {
                self.running = None;
                result = self.record(ok);
            }
        }
        if self.running.is_none() && now >= self.next_run {
            self.next_run = now + self.config.interval;
            match Command::new("/bin/sh")
                .arg("-c")
                .arg(&self.config.command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => self.running = Some((child, now)),
                // Cannot even start: a failure, never a success.
                Err(_) => result = self.record(false).or(result),
            }
        }
        result
    }

    fn record(&mut self, ok: bool) -> Option<bool> {
        self.runs += 1;
        if ok == self.good {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if ok {
            self.config.rise
        } else {
            self.config.fall
        };
        if self.streak >= needed.max(1) {
            self.good = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }

    /// This check's contribution to the priority offset.
    pub fn offset(&self) -> i16 {
        match (self.good, self.config.weight) {
            (true, w) if w > 0 => w,
            (false, w) if w < 0 => w,
            _ => 0,
        }
    }

    /// Whether this check puts the instance in Fault (weight 0 and failed).
    pub fn faults(&self) -> bool {
        self.config.weight == 0 && !self.good
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        if let Some((mut c, _)) = self.running.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls until `runs` more runs have finished; returns the state flips seen.
    fn settle(check: &mut Check, runs: u64) -> Vec<bool> {
        let mut flips = Vec::new();
        let target = check.runs() + runs;
        let start = Instant::now();
        while check.runs() < target && start.elapsed() < Duration::from_secs(20) {
            if let Some(f) = check.poll(Instant::now()) {
                flips.push(f);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(check.runs(), target, "runs finished in time");
        flips
    }

    #[test]
    fn fall_and_rise_count_consecutive_results() {
        let dir = std::env::temp_dir().join(format!("vrrp-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let flag = dir.join("ok");
        let mut cfg = CheckConfig::new(&format!("test -e {}", flag.display()));
        cfg.interval = Duration::from_millis(10);
        cfg.rise = 2;
        cfg.fall = 3;
        cfg.weight = -20;
        let mut c = Check::new(cfg, Instant::now());
        // Failing: the state flips only on the third failure.
        let flips = settle(&mut c, 2);
        assert!(
            flips.is_empty() && c.is_good(),
            "two failures are not enough"
        );
        let flips = settle(&mut c, 1);
        assert_eq!(flips, vec![false]);
        assert_eq!(c.offset(), -20);
        assert!(!c.faults(), "a weighted check adjusts priority, no fault");
        // `poll` starts the next run as soon as one finishes and the interval has passed, so
        // one run may already be under way, checking for the flag before it exists: that run
        // fails and restarts the rise count. The flip must come after the next two successes,
        // so within three runs, and be the only flip.
        std::fs::write(&flag, b"").expect("flag");
        let before = c.runs();
        let mut flips = settle(&mut c, 2);
        if flips.is_empty() {
            flips = settle(&mut c, 1);
        }
        assert_eq!(flips, vec![true], "two successes make it good again");
        assert!(
            c.runs() - before <= 3,
            "flipped after {} runs",
            c.runs() - before
        );
        assert_eq!(c.offset(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_hanging_or_missing_check_fails() {
        let mut cfg = CheckConfig::new("sleep 5");
        cfg.timeout = Duration::from_millis(50);
        cfg.interval = Duration::from_millis(10);
        let mut c = Check::new(cfg, Instant::now());
        assert_eq!(settle(&mut c, 1), vec![false]);
        assert!(c.faults());
        let mut c = Check::new(CheckConfig::new("/nonexistent/check"), Instant::now());
        assert_eq!(settle(&mut c, 1), vec![false]);
    }
}
