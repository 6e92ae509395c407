//! Entering a network namespace on the current thread, for in-process sockets.

use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;

use crate::Error;

/// While alive, the current thread is inside another network namespace; drop returns it to
/// the namespace it was in. Sockets opened meanwhile stay in the entered namespace for their
/// whole life, and threads spawned meanwhile start in it.
///
/// Not `Send`: `setns(2)` changes only the calling thread, so the guard must be dropped there.
pub struct NetnsGuard {
    original: File,
    _not_send: PhantomData<*const ()>,
}

/// Moves the current thread into the named namespace (`/run/netns/NAME`).
pub fn enter(netns: &str) -> Result<NetnsGuard, Error> {
    let original = File::open("/proc/thread-self/ns/net").map_err(|source| Error::Io {
        what: "open /proc/thread-self/ns/net".into(),
        source,
    })?;
    let path = format!("/run/netns/{netns}");
    let target = File::open(&path).map_err(|source| Error::Io {
        what: format!("open {path}"),
        source,
    })?;
    setns(&target, &path)?;
    Ok(NetnsGuard {
        original,
        _not_send: PhantomData,
    })
}

fn setns(file: &File, what: &str) -> Result<(), Error> {
    // SAFETY: the descriptor is open for the duration of the call; setns(2) only switches the
    // calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(Error::Io {
            what: format!("setns {what}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = setns(&self.original, "back to the original namespace");
    }
}
