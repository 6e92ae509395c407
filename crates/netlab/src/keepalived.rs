//! keepalived as a peer: foreground, own pid files, log captured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{signal_pid, Process};
use crate::Error;

/// A keepalived started inside a namespace with `-n -l -D` (foreground, log to the console,
/// detailed), its own configuration file and pid files in the lab's directory.
pub struct Keepalived {
    process: Process,
    vrrp_pidfile: PathBuf,
}

impl Keepalived {
    pub(crate) fn start(netns: &str, dir: &Path, config: &str) -> Result<Keepalived, Error> {
        let conf = dir.join(format!("keepalived-{netns}.conf"));
        let pidfile = dir.join(format!("keepalived-{netns}.pid"));
        let vrrp_pidfile = dir.join(format!("keepalived-{netns}-vrrp.pid"));
        std::fs::write(&conf, config).map_err(|source| Error::Io {
            what: format!("write {}", conf.display()),
            source,
        })?;
        let (c, p, v) = (
            conf.display().to_string(),
            pidfile.display().to_string(),
            vrrp_pidfile.display().to_string(),
        );
        let process = Process::spawn_in(
            netns,
            &["keepalived", "-n", "-l", "-D", "-f", &c, "-p", &p, "-r", &v],
            &[],
        )?;
        Ok(Keepalived {
            process,
            vrrp_pidfile,
        })
    }

    /// The parent process (SIGTERM to it stops keepalived, which then sends priority 0).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The parent process, mutably (for waiting on its exit).
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// The captured log so far.
    pub fn log(&self) -> String {
        self.process.output_text()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, Error> {
        self.process.wait_for_output(needle, timeout)
    }

    /// Log lines that say an advertisement was rejected or looked wrong (bad checksum, TTL,
    /// interval, address list, authentication, version...).
    pub fn rejections(&self) -> Vec<String> {
        const MARKERS: &[&str] = &[
            "invalid",
            "Invalid",
            "checksum",
            "TTL",
            "advertisement interval mismatch",
            "interval mismatch",
            "address mismatch",
            "ip address associated with VRID",
            "not matching",
            "bogus",
            "auth",
            "malformed",
            "wrong",
        ];
        self.process
            .output()
            .into_iter()
            .filter(|l| MARKERS.iter().any(|m| l.contains(m)))
            .collect()
    }

    /// Stops keepalived with SIGTERM and waits for it (it releases its addresses and sends a
    /// priority-0 advertisement first).
    pub fn stop(&mut self) -> Result<(), Error> {
        self.process.signal(libc::SIGTERM)?;
        self.process.wait_timeout(Duration::from_secs(5))?;
        Ok(())
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // The VRRP child is ours too (forked by the parent we started): make sure it goes even
        // if the parent has been killed.
        let vrrp_pid = std::fs::read_to_string(&self.vrrp_pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if self.process.is_running() {
            let _ = self.process.signal(libc::SIGTERM);
            let _ = self.process.wait_timeout(Duration::from_secs(3));
        }
        if let Some(pid) = vrrp_pid {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = signal_pid(pid, libc::SIGKILL);
            }
        }
    }
}
