//! Knowing cheaply that a generation on disk is still exactly as its manifest says.
//!
//! The pulling side must not trust its current generation's manifest alone: an application may
//! write into `ROOT/current` (while this node is master, or by mistake), and claiming such a
//! generation to the server would make it answer "unchanged" over a tree that is not. Checking
//! every entry (rsync's quick check, one `lstat` each, [`super::store::matches_disk`]) costs tens
//! of milliseconds for 10,000 files, on every poll.
//!
//! A [`GenWatch`] makes the repeated check nearly free: an inotify instance (inotify(7)) with a
//! watch on every directory of the generation, armed *before* the full check, so that anything
//! changed after the check shows up as an event. Watches on directories report changes to the
//! directory itself and to the entries named in it (data written, attributes, mtime, creation,
//! removal, renames); access events are not asked for, so readers cost nothing and *any* queued
//! event, a queue overflow (`IN_Q_OVERFLOW`) or a removed watch (`IN_IGNORED`) means "check
//! again". The kernel queues an event inside the system call that caused it, so a change that
//! finished before [`GenWatch::clean`] reads the queue is always seen: there is no window in
//! which a completed write goes unnoticed, unlike a watcher thread that may not have run yet.
//!
//! inotify reports a change to the watch of the directory it went through, so a change to an
//! inode the current generation shares (as a hard link) with the previous one, made through the
//! previous generation's path (`ROOT/.gens/<older id>/...`), is not an event of the current
//! generation's watch. The store therefore keeps the previous generation's watch after a switch
//! and trusts the current one's only while both saw nothing; after a store is opened, until its
//! first commit, the other generation on disk is not watched and such a change would go
//! unseen by polls (nothing of ours writes there; the round that reuses that generation audits
//! it on disk).
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use inotify::{Inotify, WatchMask};

use super::manifest::{GenId, Manifest};
use super::store::verified;

/// Events that may mean an entry no longer matches its manifest (no access events).
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW
}

/// An inotify watch over one generation's directory tree, armed when the tree was found intact.
#[derive(Debug)]
pub struct GenWatch {
    id: GenId,
    inotify: Inotify,
    /// An event was seen (the answer stays `false` from then on).
    changed: bool,
}

/// Why a generation could not be watched (the caller then checks every entry each time).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify itself failed (no instance, `max_user_watches` reached, ...).
    #[error("inotify on {path}: {source}")]
    Inotify {
        /// The directory concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl GenWatch {
    /// The generation watched.
    pub fn id(&self) -> GenId {
        self.id
    }

    /// Arms a watch on every directory below `dir` (generation `id`, manifest `m`) and then
    /// checks the tree against the manifest: every entry passes the quick check and nothing
    /// unlisted is on disk. Returns `Ok(None)` when the tree is not intact (no watch kept),
    /// `Ok(Some(watch))` when it is, and an error when inotify is not available.
    pub fn arm(id: GenId, dir: &Path, m: &Manifest) -> Result<Option<GenWatch>, WatchError> {
        let inotify = Inotify::init().map_err(|source| WatchError::Inotify {
            path: dir.to_path_buf(),
            source,
        })?;
        // Watch first, check second: a change during the check is then an event.
        let Some(on_disk) = walk(Some(&inotify), dir)? else {
            return Ok(None);
        };
        if on_disk != m.entries.len() || verified(dir, m).entries.len() != m.entries.len() {
            return Ok(None);
        }
        Ok(Some(GenWatch {
            id,
            inotify,
            changed: false,
        }))
    }

    /// Whether nothing happened in the watched tree since it was armed. Reads the event queue
    /// (non-blocking): any event, an overflow or a read error answers `false`, and so does
    /// every later call (the caller drops the watch and re-arms after a full check).
    pub fn clean(&mut self) -> bool {
        if self.changed {
            return false;
        }
        // Large enough for one event with the longest name (16 + NAME_MAX + 1 bytes).
        let mut buf = [0u8; 1024];
        let clean = match self.inotify.read_events(&mut buf) {
            Ok(mut events) => events.next().is_none(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Err(e) => {
                log::debug!("reading inotify events of generation {}: {e}", self.id);
                false
            }
        };
        self.changed = !clean;
        clean
    }
}

/// The same check as [`GenWatch::arm`] without a watch (where inotify is not available): every
/// entry of `m` passes the quick check below `dir` and nothing unlisted is there.
pub fn intact_on_disk(dir: &Path, m: &Manifest) -> bool {
    matches!(walk(None, dir), Ok(Some(n)) if n == m.entries.len())
        && verified(dir, m).entries.len() == m.entries.len()
}

/// Walks `dir`, adding a watch to it and every directory below it when `inotify` is given;
/// returns the number of entries below `dir` (the root not counted), or `None` when the tree
/// vanished or is unreadable meanwhile.
fn walk(inotify: Option<&Inotify>, dir: &Path) -> Result<Option<usize>, WatchError> {
    let mut watches = inotify.map(Inotify::watches);
    let mut count = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        match watches.as_mut().map(|w| w.add(&d, mask())) {
            None | Some(Ok(_)) => {}
            // The tree changed under us (a directory went away): not intact.
            Some(Err(e)) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None)
            }
            Some(Err(source)) => return Err(WatchError::Inotify { path: d, source }),
        }
        let Ok(rd) = fs::read_dir(&d) else {
            return Ok(None);
        };
        for item in rd {
            let Ok(item) = item else {
                return Ok(None);
            };
            count += 1;
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(item.path());
            }
        }
    }
    Ok(Some(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::scan::Scanner;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> (tempfile::TempDir, Manifest, GenId) {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::write(t.path().join("a/b/f"), "one").unwrap();
        fs::write(t.path().join("top"), "two").unwrap();
        std::os::unix::fs::symlink("top", t.path().join("link")).unwrap();
        let (m, id) = Scanner::new(t.path(), Default::default())
            .manifest()
            .unwrap();
        ((t), (*m).clone(), id)
    }

    #[test]
    fn intact_tree_is_clean_until_something_changes() {
        let (t, m, id) = tree();
        let mut w = GenWatch::arm(id, t.path(), &m).unwrap().expect("intact");
        assert!(w.clean());
        // Reading is not a change.
        assert_eq!(fs::read(t.path().join("a/b/f")).unwrap(), b"one");
        assert!(w.clean());
        // Same size, written in place deep down: seen at once (no watcher thread to wait for).
        fs::write(t.path().join("a/b/f"), "ONE").unwrap();
        assert!(!w.clean());
        // Once changed, always changed (the event was consumed by the first answer).
        assert!(!w.clean());
    }

    #[test]
    fn each_kind_of_change_is_seen() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 5] = [
            ("chmod", |p| {
                fs::set_permissions(p.join("top"), fs::Permissions::from_mode(0o600)).unwrap()
            }),
            ("new file", |p| fs::write(p.join("a/new"), "x").unwrap()),
            ("remove", |p| fs::remove_file(p.join("link")).unwrap()),
            ("rename", |p| {
                fs::rename(p.join("top"), p.join("a/top")).unwrap()
            }),
            ("mtime", |p| {
                let f = fs::File::options().write(true).open(p.join("top")).unwrap();
                f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
            }),
        ];
        for (name, change) in changes {
            let (t, m, id) = tree();
            let mut w = GenWatch::arm(id, t.path(), &m).unwrap().expect("intact");
            change(t.path());
            assert!(!w.clean(), "{name} not seen");
        }
    }

    #[test]
    fn a_tree_that_differs_is_not_armed() {
        let (t, m, id) = tree();
        fs::write(t.path().join("extra"), "unlisted").unwrap();
        assert!(GenWatch::arm(id, t.path(), &m).unwrap().is_none());
        fs::remove_file(t.path().join("extra")).unwrap();
        fs::write(t.path().join("top"), "changed size").unwrap();
        assert!(GenWatch::arm(id, t.path(), &m).unwrap().is_none());
        fs::remove_dir_all(t.path()).unwrap();
        assert!(GenWatch::arm(id, t.path(), &m).unwrap().is_none());
    }
}
