//! A network-namespace lab for tests, benchmarks and demos.
//!
//! A [`Lab`] owns a *switch* namespace holding one bridge (`stp_state 0 forward_delay 0
//! mcast_snooping 0`, so multicast floods and ports forward at once) and any number of *member*
//! namespaces, each attached to the bridge by a veth pair that is created inside the switch
//! namespace with its peer (`eth0`) placed straight into the member. Nothing is created in the
//! root namespace, so the machine's own interfaces are never touched.
//!
//! Every namespace name starts with a prefix unique to the lab (process id, a counter and a
//! tag). Dropping the lab kills every process it started and deletes every namespace it made.
//!
//! ```no_run
//! # fn main() -> Result<(), netlab::Error> {
//! if let Some(reason) = netlab::skip_reason() {
//!     eprintln!("skipped: {reason}");
//!     return Ok(());
//! }
//! let mut lab = netlab::Lab::new("doc")?;
//! let a = lab.add_member("a", &["10.99.0.1/24"])?;
//! let b = lab.add_member("b", &["10.99.0.2/24"])?;
//! lab.run(&a, &["ping", "-c", "1", "-W", "1", "10.99.0.2"])?;
//! lab.set_port(&b, false)?; // cut b off the bridge
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod keepalived;
mod monitor;
mod netns;
mod process;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub use keepalived::Keepalived;
pub use monitor::{AddressEvent, AddressMonitor};
pub use netns::{enter, NetnsGuard};
pub use process::Process;

/// What went wrong in the lab, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file or namespace operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A member name was used twice or is unknown.
    #[error("bad member name `{0}`")]
    Member(String),
}

/// Why namespace tests cannot run here, or `None` when they can (root, `ip` present).
///
/// Tests call this first and return early with the printed reason, so that a non-root run
/// skips instead of failing.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("needs root for network namespaces (euid {euid})"));
    }
    if !tool_exists("ip") {
        return Some("the `ip` tool (iproute2) is not installed".into());
    }
    None
}

/// Like [`skip_reason`], but also requires the named tools (e.g. `keepalived`, `arping`).
pub fn skip_reason_with(tools: &[&str]) -> Option<String> {
    if let Some(r) = skip_reason() {
        return Some(r);
    }
    tools
        .iter()
        .find(|t| !tool_exists(t))
        .map(|t| format!("the `{t}` tool is not installed"))
}

/// Prints the reason and returns `true` when the test must be skipped; for
/// `if netlab::require_root(&[]) { return; }` at the top of a test.
pub fn require_root(tools: &[&str]) -> bool {
    match skip_reason_with(tools) {
        Some(reason) => {
            eprintln!("skipped: {reason}");
            true
        }
        None => false,
    }
}

fn tool_exists(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(tool).is_file())
}

/// One member namespace: its name, its interface and its port on the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's short name given to [`Lab::add_member`].
    pub name: String,
    /// The network namespace's name (under `/run/netns/`).
    pub netns: String,
    /// The member's interface, always `eth0`.
    pub ifname: String,
    /// The member's port (veth peer) inside the switch namespace.
    pub port: String,
    /// The addresses given at creation, as `ADDR/PREFIX`.
    pub addresses: Vec<String>,
}

impl Member {
    /// The first configured address without its prefix length, e.g. `10.99.0.1`.
    pub fn addr(&self) -> &str {
        self.addresses
            .first()
            .and_then(|a| a.split('/').next())
            .unwrap_or("")
    }
}

/// A lab: one switch namespace with a bridge, member namespaces on veth ports, and the
/// processes started inside them. Drop cleans everything up.
pub struct Lab {
    prefix: String,
    switch: String,
    members: Vec<Member>,
    dir: PathBuf,
    created: Vec<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Creates a lab whose namespaces are named `nl<pid>x<n><tag>-...` and its switch namespace
    /// with the bridge `br0`.
    pub fn new(tag: &str) -> Result<Lab, Error> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let prefix = format!("nl{}x{}{}", std::process::id(), n, tag);
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        let mut lab = Lab {
            switch: format!("{prefix}-sw"),
            prefix,
            members: Vec::new(),
            dir,
            created: Vec::new(),
        };
        let sw = lab.switch.clone();
        run_cmd(&["ip", "netns", "add", &sw])?;
        lab.created.push(sw.clone());
        run_cmd(&[
            "ip",
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        run_cmd(&["ip", "-n", &sw, "link", "set", "lo", "up"])?;
        Ok(lab)
    }

    /// The unique prefix of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The switch namespace's name.
    pub fn switch(&self) -> &str {
        &self.switch
    }

    /// A scratch directory private to this lab (removed on drop).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The members created so far.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Creates a member namespace `PREFIX-name` attached to the bridge, brings `lo` and `eth0`
    /// up and adds the given `ADDR/PREFIX` addresses to `eth0` (IPv6 ones with `nodad`, so they
    /// are usable at once).
    pub fn add_member(&mut self, name: &str, addresses: &[&str]) -> Result<Member, Error> {
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric())
            || self.members.iter().any(|m| m.name == name)
        {
            return Err(Error::Member(name.to_string()));
        }
        let netns = format!("{}-{}", self.prefix, name);
        let port = format!("p{}", self.members.len());
        run_cmd(&["ip", "netns", "add", &netns])?;
        self.created.push(netns.clone());
        let sw = self.switch.clone();
        run_cmd(&[
            "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &netns,
        ])?;
        run_cmd(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        run_cmd(&["ip", "-n", &netns, "link", "set", "lo", "up"])?;
        run_cmd(&["ip", "-n", &netns, "link", "set", "eth0", "up"])?;
        for a in addresses {
            if a.contains(':') {
                run_cmd(&["ip", "-n", &netns, "addr", "add", a, "dev", "eth0", "nodad"])?;
            } else {
                run_cmd(&["ip", "-n", &netns, "addr", "add", a, "dev", "eth0"])?;
            }
        }
        let member = Member {
            name: name.to_string(),
            netns,
            ifname: "eth0".into(),
            port,
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
        };
        self.members.push(member.clone());
        Ok(member)
    }

    /// Looks a member up by its short name.
    pub fn member(&self, name: &str) -> Result<&Member, Error> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::Member(name.to_string()))
    }

    /// Takes a member's switch port up or down: down cuts the member off the network while its
    /// own `eth0` stays up (what a failed cable or switch port looks like to the others).
    pub fn set_port(&self, member: &Member, up: bool) -> Result<(), Error> {
        let state = if up { "up" } else { "down" };
        run_cmd(&["ip", "-n", &self.switch, "link", "set", &member.port, state])?;
        Ok(())
    }

    /// Takes the member's own `eth0` up or down (its carrier as the member sees it).
    pub fn set_link(&self, member: &Member, up: bool) -> Result<(), Error> {
        let state = if up { "up" } else { "down" };
        run_cmd(&["ip", "-n", &member.netns, "link", "set", "eth0", state])?;
        Ok(())
    }

    /// Runs a command inside the member's namespace (`ip netns exec`), waits for it, and
    /// returns its stdout; a non-zero exit is an [`Error::Command`].
    pub fn run(&self, member: &Member, args: &[&str]) -> Result<String, Error> {
        run_in(&member.netns, args)
    }

    /// Like [`Lab::run`] but returns whether the command succeeded instead of an error.
    pub fn succeeds(&self, member: &Member, args: &[&str]) -> bool {
        run_in(&member.netns, args).is_ok()
    }

    /// Starts a long-running command inside the member's namespace with its stdout and stderr
    /// captured. The process is killed when the returned handle is dropped.
    pub fn spawn(&self, member: &Member, args: &[&str]) -> Result<Process, Error> {
        Process::spawn_in(&member.netns, args, &[])
    }

    /// Like [`Lab::spawn`], with extra environment variables.
    pub fn spawn_env(
        &self,
        member: &Member,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Process, Error> {
        Process::spawn_in(&member.netns, args, env)
    }

    /// Starts keepalived in the foreground inside the member with the given configuration
    /// text, its own pid files and its log captured.
    pub fn keepalived(&self, member: &Member, config: &str) -> Result<Keepalived, Error> {
        Keepalived::start(&member.netns, &self.dir, config)
    }

    /// Watches address changes inside the member (`ip -ts monitor address`).
    pub fn monitor_addresses(&self, member: &Member) -> Result<AddressMonitor, Error> {
        AddressMonitor::start(&member.netns)
    }

    /// The MAC address of the member's `eth0`, as `ip` prints it (`aa:bb:...`).
    pub fn mac(&self, member: &Member) -> Result<String, Error> {
        // /sys shows the mounting namespace's devices; `ip netns exec` remounts it.
        let out = run_in(&member.netns, &["cat", "/sys/class/net/eth0/address"])?;
        Ok(out.trim().to_string())
    }

    /// The member's neighbour entry for `ip` (`ip neigh show ADDR dev eth0`): the MAC, if any.
    pub fn neighbour_mac(&self, member: &Member, ip: &str) -> Result<Option<String>, Error> {
        let out = run_in(&member.netns, &["ip", "neigh", "show", ip, "dev", "eth0"])?;
        Ok(out
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(str::to_string))
    }

    /// Whether the member's `eth0` holds `ip` (without prefix).
    pub fn has_address(&self, member: &Member, ip: &str) -> Result<bool, Error> {
        let out = run_in(&member.netns, &["ip", "-o", "addr", "show", "dev", "eth0"])?;
        Ok(out
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(ip)))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Members first, then the switch: deleting a namespace destroys its veth ends.
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command inside a namespace and returns its stdout.
pub fn run_in(netns: &str, args: &[&str]) -> Result<String, Error> {
    let mut full = vec!["ip", "netns", "exec", netns];
    full.extend_from_slice(args);
    run_cmd(&full)
}

fn run_cmd(args: &[&str]) -> Result<String, Error> {
    let command = args.join(" ");
    let (prog, rest) = args.split_first().ok_or_else(|| Error::Spawn {
        command: command.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let out = Command::new(prog)
        .args(rest)
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
