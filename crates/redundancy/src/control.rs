//! The control socket: a Unix stream socket, one JSON request and one JSON response per
//! connection.
//!
//! ```text
//! -> {"cmd":"status"}                 <- {"ok":true,"message":"","status":{...}}
//! -> {"cmd":"mode","mode":"passive"}  <- {"ok":true,"message":"mode passive","status":null}
//! ```
//!
//! The request is read up to end of line or end of stream (at most [`MAX_REQUEST`] bytes);
//! the server answers and closes. The socket file is created with mode 0600 (only its owner,
//! normally root, may control the node).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use serde::{Deserialize, Serialize};

use crate::config::BackupMode;
use crate::status::Status;

/// Largest request accepted.
pub const MAX_REQUEST: u64 = 4096;
/// Most control connections served at once.
pub const MAX_CLIENTS: usize = 8;
/// Largest response a client reads.
pub const MAX_RESPONSE: u64 = 4 << 20;

/// A control request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Report the status.
    Status,
    /// Planned swap with zero data loss.
    Swap,
    /// Switch the backup mode.
    Mode {
        /// The new mode.
        mode: BackupMode,
    },
    /// Become operational now.
    Takeover,
    /// Step down (priority 0, release the addresses).
    Release,
}

/// A control response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What happened, or what went wrong.
    pub message: String,
    /// The status (for `status`).
    pub status: Option<Status>,
}

impl Response {
    /// A success.
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: message.into(),
            status: None,
        }
    }

    /// A failure.
    pub fn err(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// Errors of the control socket, on either side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Socket I/O failed.
    #[error("control socket {path}: {op}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// What we were doing.
        op: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The other side sent something that is not a valid message.
    #[error("control socket {path}: bad message: {reason}")]
    Bad {
        /// The socket path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Another live daemon already listens on the socket.
    #[error("control socket {0}: another daemon is listening there")]
    InUse(String),
}

/// A request handed to the owner of the server, with the channel for its answer.
pub struct Incoming {
    /// The request.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Sender<Response>,
}

/// A running control server (stops and removes its socket file on drop).
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (removing a stale socket file that nobody answers on) and serves requests
    /// on a thread, handing each to `sink` and waiting up to `timeout` for the answer.
    pub fn start(
        path: &Path,
        sink: Sender<Incoming>,
        timeout: Duration,
    ) -> Result<ControlServer, ControlError> {
        let p = path.display().to_string();
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(p));
            }
            std::fs::remove_file(path).map_err(|source| ControlError::Io {
                path: p.clone(),
                op: "remove stale socket",
                source,
            })?;
        }
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|source| ControlError::Io {
                    path: p.clone(),
                    op: "create directory",
                    source,
                })?;
            }
        }
        let listener = UnixListener::bind(path).map_err(|source| ControlError::Io {
            path: p.clone(),
            op: "bind",
            source,
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ControlError::Io {
                path: p.clone(),
                op: "chmod",
                source,
            },
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let active = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    // A thread per connection (a swap answers only when done, and `status`
                    // must not wait for it), at most MAX_CLIENTS at once.
                    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        active.fetch_sub(1, Ordering::SeqCst);
                        continue;
                    }
                    let (sink, active2) = (sink.clone(), Arc::clone(&active));
                    let spawned = std::thread::Builder::new()
                        .name("control-conn".into())
                        .spawn(move || {
                            if let Err(e) = serve_one(conn, &sink, timeout) {
                                log::warn!("control: {e}");
                            }
                            active2.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
            .map_err(|source| ControlError::Io {
                path: p,
                op: "spawn thread",
                source,
            })?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(
    conn: UnixStream,
    sink: &Sender<Incoming>,
    timeout: Duration,
) -> Result<(), std::io::Error> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = Vec::new();
    BufReader::new((&conn).take(MAX_REQUEST)).read_until(b'\n', &mut line)?;
    let response = if line.is_empty() {
        // A bare connect (the server's own wake-up, or a liveness probe).
        return Ok(());
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Err(e) => Response::err(format!("bad request: {e}")),
            Ok(request) => {
                let (tx, rx) = bounded(1);
                if sink.send(Incoming { request, reply: tx }).is_err() {
                    Response::err("the supervisor has stopped")
                } else {
                    rx.recv_timeout(timeout)
                        .unwrap_or_else(|_| Response::err("no answer from the supervisor in time"))
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// Sends one request to the control socket at `path` and returns the response.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let p = path.display().to_string();
    let io = |op: &'static str| {
        let p = p.clone();
        move |source| ControlError::Io {
            path: p,
            op,
            source,
        }
    };
    let conn = UnixStream::connect(path).map_err(io("connect"))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(io("set timeout"))?;
    conn.set_write_timeout(Some(timeout))
        .map_err(io("set timeout"))?;
    let mut out = serde_json::to_vec(req).map_err(|e| ControlError::Bad {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    out.push(b'\n');
    (&conn).write_all(&out).map_err(io("write"))?;
    let mut buf = Vec::new();
    (&conn)
        .take(MAX_RESPONSE)
        .read_to_end(&mut buf)
        .map_err(io("read"))?;
    serde_json::from_slice(&buf).map_err(|e| ControlError::Bad {
        path: p,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_forms() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Mode {
                mode: BackupMode::Passive
            })
            .unwrap(),
            r#"{"cmd":"mode","mode":"passive"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
    }

    #[test]
    fn round_trip_over_a_socket_and_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<Incoming>();
        let server = ControlServer::start(&path, tx, Duration::from_secs(5)).unwrap();
        let answerer = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while let Ok(inc) = rx.recv() {
                let msg = format!("{:?}", inc.request);
                seen.push(inc.request);
                let _ = inc.reply.send(Response::ok(msg));
            }
            seen
        });
        let r = request(&path, &Request::Takeover, Duration::from_secs(5)).unwrap();
        assert!(r.ok);
        assert_eq!(r.message, "Takeover");
        let r = request(
            &path,
            &Request::Mode {
                mode: BackupMode::Passive,
            },
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.message, "Mode { mode: Passive }");

        // A malformed request gets an error answer and never reaches the supervisor.
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"{\"cmd\":\n").unwrap();
        let mut buf = String::new();
        c.read_to_string(&mut buf).unwrap();
        let resp: Response = serde_json::from_str(&buf).unwrap();
        assert!(!resp.ok && resp.message.starts_with("bad request"), "{buf}");

        // A second daemon on the same socket is refused.
        let (tx2, _rx2) = crossbeam_channel::unbounded::<Incoming>();
        assert!(matches!(
            ControlServer::start(&path, tx2, Duration::from_secs(1)),
            Err(ControlError::InUse(_))
        ));

        drop(server);
        assert!(!path.exists(), "socket file removed on drop");
        let seen = answerer.join().unwrap();
        assert_eq!(
            seen,
            vec![
                Request::Takeover,
                Request::Mode {
                    mode: BackupMode::Passive
                }
            ]
        );
    }

    #[test]
    fn client_error_names_the_socket() {
        let e = request(
            Path::new("/nonexistent/ctl.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("control socket /nonexistent/ctl.sock: connect"),
            "{e}"
        );
    }
}
