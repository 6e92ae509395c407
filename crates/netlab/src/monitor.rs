//! `ip -ts monitor address` inside a namespace: address changes with the time they were seen.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;

/// One address added to or deleted from an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressEvent {
    /// When the monitor's line was read (monotonic clock of this process).
    pub at: Instant,
    /// `true` for an added address, `false` for a deleted one.
    pub added: bool,
    /// The interface name.
    pub ifname: String,
    /// The address without its prefix length.
    pub address: String,
    /// The monitor's own timestamp text (`ip -ts`).
    pub stamp: String,
}

#[derive(Default)]
struct Events {
    list: Mutex<Vec<AddressEvent>>,
    changed: Condvar,
}

/// A running `ip -ts monitor address`; drop stops it.
pub struct AddressMonitor {
    child: Child,
    events: Arc<Events>,
    reader: Option<JoinHandle<()>>,
}

impl AddressMonitor {
    pub(crate) fn start(netns: &str) -> Result<AddressMonitor, Error> {
        let mut child = Command::new("ip")
            .args(["-n", netns, "-ts", "monitor", "address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Spawn {
                command: format!("ip -n {netns} -ts monitor address"),
                source,
            })?;
        let events = Arc::new(Events::default());
        let reader = child.stdout.take().map(|out| {
            let events = events.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(out);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Some(e) = parse_line(&line, Instant::now()) {
                                if let Ok(mut l) = events.list.lock() {
                                    l.push(e);
                                }
                                events.changed.notify_all();
                            }
                        }
                    }
                }
            })
        });
        // `ip monitor` subscribes before printing anything; give it a moment to do so, so that
        // a change made right after start is not missed.
        std::thread::sleep(Duration::from_millis(50));
        Ok(AddressMonitor {
            child,
            events,
            reader,
        })
    }

    /// Every event seen so far.
    pub fn events(&self) -> Vec<AddressEvent> {
        self.events
            .list
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Waits for the first event (seen so far or later) for which `pred` holds.
    pub fn wait_for(
        &self,
        pred: impl Fn(&AddressEvent) -> bool,
        timeout: Duration,
    ) -> Option<AddressEvent> {
        let deadline = Instant::now() + timeout;
        let mut list = self.events.list.lock().ok()?;
        loop {
            if let Some(e) = list.iter().find(|e| pred(e)) {
                return Some(e.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            list = self
                .events
                .changed
                .wait_timeout(list, deadline - now)
                .ok()?
                .0;
        }
    }

    /// Waits for `address` to be added (`added = true`) or deleted, after `since`.
    pub fn wait_for_address(
        &self,
        address: &str,
        added: bool,
        since: Instant,
        timeout: Duration,
    ) -> Option<AddressEvent> {
        self.wait_for(
            |e| e.address == address && e.added == added && e.at >= since,
            timeout,
        )
    }
}

impl Drop for AddressMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Parses `[STAMP] [Deleted ]IDX: IFNAME    inet ADDR/PLEN ...`.
fn parse_line(line: &str, at: Instant) -> Option<AddressEvent> {
    let line = line.trim();
    let (stamp, rest) = match line.strip_prefix('[') {
        Some(r) => {
            let end = r.find(']')?;
            (r.get(..end)?.to_string(), r.get(end + 1..)?.trim_start())
        }
        None => (String::new(), line),
    };
    let (added, rest) = match rest.strip_prefix("Deleted ") {
        Some(r) => (false, r),
        None => (true, rest),
    };
    let mut words = rest.split_whitespace();
    let _index = words.next()?.strip_suffix(':')?;
    let ifname = words.next()?.to_string();
    let family = words.next()?;
    if family != "inet" && family != "inet6" {
        return None;
    }
    let address = words.next()?.split('/').next()?.to_string();
    Some(AddressEvent {
        at,
        added,
        ifname,
        address,
        stamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_added_and_deleted_lines() {
        let now = Instant::now();
        let e = parse_line(
            "[2026-11-22T11:30:00.123456] 2: eth0    inet 10.99.0.100/24 scope global eth0\n",
            now,
        )
        .expect("added line parses");
        assert!(e.added);
        assert_eq!(e.ifname, "eth0");
        assert_eq!(e.address, "10.99.0.100");
        assert_eq!(e.stamp, "2026-11-22T11:30:00.123456");
        let d = parse_line(
            "[2026-11-22T11:30:01.000001] Deleted 2: eth0    inet6 fd99::100/64 scope global",
            now,
        )
        .expect("deleted line parses");
        assert!(!d.added);
        assert_eq!(d.address, "fd99::100");
        assert!(parse_line("       valid_lft forever preferred_lft forever", now).is_none());
    }
}
