//! Processes started inside a namespace, with their output captured.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;

/// The captured output lines of a process and a condition variable to wait for new ones.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) lines: Mutex<Vec<String>>,
    pub(crate) changed: Condvar,
}

impl Log {
    pub(crate) fn push(&self, line: String) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
        self.changed.notify_all();
    }
}

/// A process running inside a namespace (`ip netns exec NS ...`, which execs, so the pid is
/// the command's own). Its stdout and stderr lines are collected; drop kills it.
pub struct Process {
    child: Child,
    log: Arc<Log>,
    readers: Vec<JoinHandle<()>>,
    command: String,
}

impl Process {
    pub(crate) fn spawn_in(
        netns: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Process, Error> {
        let command = format!("ip netns exec {netns} {}", args.join(" "));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        let log = Arc::new(Log::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, log.clone()));
        }
        Ok(Process {
            child,
            log,
            readers,
            command,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        signal_pid(self.child.id(), signal)
    }

    /// Every output line so far (stdout and stderr interleaved as read).
    pub fn output(&self) -> Vec<String> {
        self.log.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// All output so far as one string.
    pub fn output_text(&self) -> String {
        self.output().join("\n")
    }

    /// Waits until an output line contains `needle`; returns that line.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> Result<String, Error> {
        self.wait_for_line(|l| l.contains(needle), timeout)
            .ok_or_else(|| Error::Timeout(format!("`{needle}` from `{}`", self.command)))
    }

    /// Waits until an output line from index `from` on satisfies `pred`; returns it.
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().ok()?;
        loop {
            if let Some(l) = lines.iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.log.changed.wait_timeout(lines, deadline - now).ok()?.0;
        }
    }

    /// Waits for the process to exit, up to `timeout`; returns its exit status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => return Err(Error::Timeout(format!("exit of `{}`", self.command))),
                Err(source) => {
                    return Err(Error::Io {
                        what: format!("wait for `{}`", self.command),
                        source,
                    })
                }
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = signal_pid(self.child.id(), libc::SIGTERM);
            if self.wait_timeout(Duration::from_secs(2)).is_err() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // The reader threads are detached, not joined: a grandchild that inherited the pipes
        // (a shell's child, say) can hold them open long after the process itself is gone, and
        // drop must not wait for it. The readers end when the last writer closes the pipe.
        self.readers.clear();
    }
}

pub(crate) fn signal_pid(pid: u32, signal: i32) -> Result<(), Error> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Error::Io {
        what: format!("signal pid {pid}"),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: kill(2) with a pid of a process this lab started; no memory is involved.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        return Err(Error::Io {
            what: format!("signal {signal} to pid {pid}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn reader(stream: impl Read + Send + 'static, log: Arc<Log>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => log.push(line.trim_end().to_string()),
            }
        }
    })
}
