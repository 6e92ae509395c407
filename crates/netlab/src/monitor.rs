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
        let mut monitor = AddressMonitor {
            child,
            events,
            reader,
        };
        // `ip monitor` prints nothing when it is ready, and a change made before its netlink
        // socket joined the address groups is lost. A fixed pause is not enough on a loaded
        // machine (a 50 ms one missed takeovers under load), so wait until the socket is
        // subscribed, as the kernel reports it.
        monitor.wait_subscribed(netns, SUBSCRIBE_WITHIN)?;
        Ok(monitor)
    }

    /// Waits until the `ip` process holds a NETLINK_ROUTE socket bound to at least one
    /// multicast group (`/proc/PID/net/netlink`, matched to its descriptors by inode).
    fn wait_subscribed(&mut self, netns: &str, within: Duration) -> Result<(), Error> {
        let pid = self.child.id();
        let deadline = Instant::now() + within;
        loop {
            if subscribed(pid) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Command {
                    command: format!("ip -n {netns} -ts monitor address"),
                    status: status.to_string(),
                    stderr: String::new(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "`ip -n {netns} monitor address` to subscribe"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
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

/// How long `ip monitor` may take to subscribe (wide: process start-up on a loaded machine).
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(20);

/// Whether process `pid` holds a NETLINK_ROUTE socket subscribed to some multicast group.
fn subscribed(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/netlink")) else {
        return false;
    };
    subscribed_in(&table, &inodes)
}

/// Whether a row of a `/proc/net/netlink` table is a NETLINK_ROUTE (protocol 0) socket with a
/// non-zero group mask whose inode is one of `inodes`.
fn subscribed_in(table: &str, inodes: &[String]) -> bool {
    let mut lines = table.lines();
    let Some(header) = lines.next() else {
        return false;
    };
    let column = |name: &str| header.split_whitespace().position(|h| h == name);
    let (Some(eth), Some(groups), Some(inode)) = (column("Eth"), column("Groups"), column("Inode"))
    else {
        return false;
    };
    lines.any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(eth) == Some(&"0")
            && f.get(groups)
                .and_then(|g| u32::from_str_radix(g, 16).ok())
                .is_some_and(|g| g != 0)
            && f.get(inode).is_some_and(|i| inodes.iter().any(|x| x == i))
    })
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

    #[test]
    fn subscription_is_read_from_the_netlink_table() {
        let table = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n\
            00000000dbf260e5 0   20726      00000110 0        0        0     2        0        1059654 \n\
            000000009726e4f9 0   2655730887 00000000 0        0        0     2        0        1059655 \n\
            0000000015855a8f 4   0          00000011 0        0        0     2        0        1059646 \n";
        let ours = |i: &[&str]| i.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(subscribed_in(table, &ours(&["1059654", "1059655"])));
        // Unsubscribed route socket, and a subscribed socket of another protocol: not yet.
        assert!(!subscribed_in(table, &ours(&["1059655"])));
        assert!(!subscribed_in(table, &ours(&["1059646"])));
        assert!(!subscribed_in("", &ours(&["1059654"])));
    }
}
