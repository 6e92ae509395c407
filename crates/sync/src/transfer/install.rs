//! Installing received files into the staging tree on a helper thread.
//!
//! Once a received file is verified, putting it in place is a handful of system calls that
//! need nothing from the network: owner, mode and mtime, starting its writeback
//! (`sync_file_range`), and the rename from `.partial/` into the staging tree
//! ([`Staging::install`]). For a round of a hundred small configuration files that is about as
//! much time as receiving them; done here, on one helper thread, it overlaps with receiving the
//! next file. Installs run in the order given; the first failure stops the rest and is reported
//! by [`Installer::finish`], which the round calls before it commits (so a commit never sees a
//! file that is not in place).
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};

use crate::tree::manifest::Entry;
use crate::tree::store::Staging;
use crate::tree::TreeError;

struct Job<'m> {
    entry: &'m Entry,
    file: File,
    partial: PathBuf,
}

/// The helper thread of one round (see the module documentation).
pub(crate) struct Installer<'scope, 'm> {
    jobs: Option<mpsc::Sender<Job<'m>>>,
    thread: Option<ScopedJoinHandle<'scope, Result<u64, TreeError>>>,
    /// Installs done here because no thread could be started.
    inline: Option<&'scope Staging<'scope>>,
    done_inline: u64,
}

impl<'scope, 'm: 'scope> Installer<'scope, 'm> {
    /// Starts the helper in `scope`, installing into `staging`.
    pub(crate) fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        staging: &'scope Staging<'scope>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job<'m>>();
        let spawned = std::thread::Builder::new()
            .name("sync-install".into())
            .spawn_scoped(scope, move || {
                let mut n = 0u64;
                for j in rx {
                    staging.install(j.entry, &j.file, &j.partial)?;
                    n += 1;
                }
                Ok(n)
            });
        match spawned {
            Ok(h) => Installer {
                jobs: Some(tx),
                thread: Some(h),
                inline: None,
                done_inline: 0,
            },
            Err(e) => {
                log::debug!("no install thread ({e}); installing inline");
                Installer {
                    jobs: None,
                    thread: None,
                    inline: Some(staging),
                    done_inline: 0,
                }
            }
        }
    }
}

impl<'m> Installer<'_, 'm> {
    /// Installs `file` (complete and verified, at `partial`) as `entry`: queued for the helper,
    /// or done now without one. An error of the helper shows at [`Installer::finish`].
    pub(crate) fn install(
        &mut self,
        entry: &'m Entry,
        file: File,
        partial: PathBuf,
    ) -> Result<(), TreeError> {
        if let Some(staging) = self.inline {
            staging.install(entry, &file, &partial)?;
            self.done_inline += 1;
            return Ok(());
        }
        let job = Job {
            entry,
            file,
            partial,
        };
        match &self.jobs {
            // A send fails only when the helper stopped on an error: finish reports it.
            Some(tx) => {
                let _ = tx.send(job);
                Ok(())
            }
            None => Err(TreeError::Layout {
                path: job.partial,
                reason: "install after the installer finished".into(),
            }),
        }
    }

    /// Waits for every queued install; the number installed, or the first error.
    pub(crate) fn finish(&mut self) -> Result<u64, TreeError> {
        self.jobs = None;
        match self.thread.take() {
            Some(h) => match h.join() {
                Ok(r) => r.map(|n| n + self.done_inline),
                Err(_) => Err(TreeError::Layout {
                    path: PathBuf::from(".partial"),
                    reason: "the install thread panicked".into(),
                }),
            },
            None => Ok(self.done_inline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::manifest::{EntryKind, Manifest, Meta};
    use crate::tree::store::GenStore;
    use std::os::unix::fs::MetadataExt;

    fn entry(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size: 3,
                hash: *blake3::hash(b"abc").as_bytes(),
            },
            meta: Meta {
                mode: 0o640,
                mtime: 1_700_000_000,
                mtime_nsec: 5,
                uid: 0,
                gid: 0,
            },
        }
    }

    #[test]
    fn installs_in_place_and_reports_the_first_failure() {
        let t = tempfile::tempdir().unwrap();
        let store = GenStore::open(t.path().join("store")).unwrap();
        let (a, b) = (entry("a"), entry("b"));
        let m = Manifest {
            root: Meta::default(),
            entries: vec![a.clone(), b.clone()],
        };
        let staging = store.stage(m.id(), m).unwrap();
        let pa = t.path().join("partial-a");
        std::fs::write(&pa, b"abc").unwrap();
        let n = std::thread::scope(|scope| {
            let mut ins = Installer::start(scope, &staging);
            ins.install(&a, File::open(&pa).unwrap(), pa.clone())
                .unwrap();
            ins.finish()
        })
        .unwrap();
        assert_eq!(n, 1);
        let md = std::fs::metadata(staging.path_of("a")).unwrap();
        assert_eq!((md.mode() & 0o7777, md.mtime()), (0o640, 1_700_000_000));
        assert!(!pa.exists(), "moved, not copied");

        // A partial file that is gone cannot be renamed into place: finish says so.
        let pb = t.path().join("partial-b");
        std::fs::write(&pb, b"abc").unwrap();
        let f = File::open(&pb).unwrap();
        std::fs::remove_file(&pb).unwrap();
        let r = std::thread::scope(|scope| {
            let mut ins = Installer::start(scope, &staging);
            ins.install(&b, f, pb.clone()).unwrap();
            ins.finish()
        });
        let e = r.unwrap_err();
        assert!(e.to_string().contains("rename into staging"), "{e}");
        assert!(!staging.path_of("b").exists());
    }
}
