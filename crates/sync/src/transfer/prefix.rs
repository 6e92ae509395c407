//! Copying the old versions of grown files ahead of their data, on a helper thread.
//!
//! A file that grew (an appended voice message) is received as "our old version, then the new
//! tail": the old version is copied into `.partial/` in the kernel ([`clone_prefix`]; a reflink
//! where the filesystem has one, else a page-cache copy of megabytes) and the tail appended. The
//! puller knows which files those are before it sends its fetch, so the copies start then, on
//! one helper thread, while the server is still diffing the small files that come first; when
//! the puller reaches such a file the copy is normally done. Copies run in the order asked and
//! every result is waited for before the puller touches that partial file, so the helper and the
//! puller never write one file at the same time.
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::tree::store::{clone_prefix, start_writeback};

struct Job {
    ticket: usize,
    src: PathBuf,
    len: u64,
    dst: PathBuf,
    /// Already at `dst`, to copy into instead of creating it: a recycled inode (see
    /// crate::tree::recycle), at most `len` bytes long.
    into: Option<File>,
}

/// Copies the job's `len` bytes of `src` into `dst` (created or truncated, or `into`, already
/// there); with `writeback` (the store flushes before it switches) the copy's writeback starts
/// at once: megabytes copied early in the fetch need not wait for the file's tail to go to disk.
fn copy(j: Job, writeback: bool) -> std::io::Result<()> {
    let Job {
        src,
        len,
        dst,
        into,
        ..
    } = j;
    let f = match into {
        // Overwritten from its start; never longer than `len`, so exactly `len` after the copy.
        Some(f) => f,
        None => File::create(&dst)?,
    };
    clone_prefix(&src, len, &f)?;
    if writeback {
        start_writeback(&f);
    }
    Ok(())
}

/// The helper thread and the results it has reported.
pub(crate) struct PrefixCopier {
    jobs: Option<mpsc::Sender<Job>>,
    results: Option<mpsc::Receiver<(usize, std::io::Result<()>)>>,
    done: HashMap<usize, std::io::Result<()>>,
    /// Tickets whose result has not been given out yet.
    open: HashSet<usize>,
    next: usize,
    thread: Option<JoinHandle<()>>,
    /// Set when the round ends: copies not yet started are skipped (a round that failed, on a
    /// full disk say, must not go on filling it).
    cancel: Arc<AtomicBool>,
    /// Start each copy's writeback once it is done (see [`copy`]).
    writeback: bool,
}

impl PrefixCopier {
    /// No thread until the first copy is asked for; `writeback`: see [`copy`].
    pub(crate) fn new(writeback: bool) -> Self {
        PrefixCopier {
            jobs: None,
            results: None,
            done: HashMap::new(),
            open: HashSet::new(),
            next: 0,
            thread: None,
            cancel: Arc::new(AtomicBool::new(false)),
            writeback,
        }
    }

    fn start(&mut self) {
        let (jtx, jrx) = mpsc::channel::<Job>();
        let (rtx, rrx) = mpsc::channel();
        let cancel = Arc::clone(&self.cancel);
        let writeback = self.writeback;
        let spawned = std::thread::Builder::new()
            .name("sync-prefix".into())
            .spawn(move || {
                for j in jrx {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    if rtx.send((j.ticket, copy(j, writeback))).is_err() {
                        break;
                    }
                }
            });
        match spawned {
            Ok(h) => {
                self.jobs = Some(jtx);
                self.results = Some(rrx);
                self.thread = Some(h);
            }
            Err(e) => log::debug!("no prefix copy thread ({e}); copying inline"),
        }
    }

    /// Starts copying the first `len` bytes of `src` into `dst`; returns the ticket to
    /// [`PrefixCopier::wait`] for.
    /// `into`: the file already at `dst` to copy into (see [`Job`]).
    pub(crate) fn submit(
        &mut self,
        src: PathBuf,
        len: u64,
        dst: PathBuf,
        into: Option<File>,
    ) -> usize {
        let ticket = self.next;
        self.next += 1;
        self.open.insert(ticket);
        if self.thread.is_none() {
            self.start();
        }
        let job = Job {
            ticket,
            src,
            len,
            dst,
            into,
        };
        let unsent = match &self.jobs {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(j) = unsent {
            // No helper (or it ended): the copy is done here and now.
            self.done.insert(ticket, copy(j, self.writeback));
        }
        ticket
    }

    /// Waits for the copy of `ticket`; its result (each ticket's result is given once).
    pub(crate) fn wait(&mut self, ticket: usize) -> std::io::Result<()> {
        if !self.open.remove(&ticket) {
            return Err(std::io::Error::other("no such prefix copy"));
        }
        loop {
            if let Some(r) = self.done.remove(&ticket) {
                return r;
            }
            let got = self.results.as_ref().map(mpsc::Receiver::recv);
            match got {
                Some(Ok((t, r))) => {
                    self.done.insert(t, r);
                }
                _ => {
                    return Err(std::io::Error::other(
                        "the prefix copy thread ended before this copy",
                    ))
                }
            }
        }
    }
}

impl Drop for PrefixCopier {
    fn drop(&mut self) {
        // The helper ends after the copy under way (a round that failed leaves the copies done
        // in `.partial/` like any partial data; a successful round clears them).
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_in_order_and_reports_each_result() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("old");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let mut c = PrefixCopier::new(true);
        let a = c.submit(src.clone(), 300_000, t.path().join("a"), None);
        let b = c.submit(src.clone(), 1000, t.path().join("b"), None);
        let bad = c.submit(src.clone(), 300_001, t.path().join("c"), None);
        let missing = c.submit(t.path().join("nope"), 10, t.path().join("d"), None);
        // Into a file already there (a recycled inode, as long as the copy): overwritten.
        std::fs::write(t.path().join("e"), vec![0xEE; 2000]).unwrap();
        let into = std::fs::OpenOptions::new()
            .write(true)
            .open(t.path().join("e"))
            .unwrap();
        let e = c.submit(src.clone(), 2000, t.path().join("e"), Some(into));
        // Waited for out of order: results are kept until asked for.
        c.wait(b).unwrap();
        c.wait(a).unwrap();
        assert_eq!(std::fs::read(t.path().join("a")).unwrap(), data);
        assert_eq!(std::fs::read(t.path().join("b")).unwrap(), &data[..1000]);
        c.wait(e).unwrap();
        assert_eq!(std::fs::read(t.path().join("e")).unwrap(), &data[..2000]);
        let e = c.wait(bad).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let e = c.wait(missing).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        // A ticket is answered once.
        assert!(c.wait(a).is_err());
    }
}
