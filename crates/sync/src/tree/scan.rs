//! Scanning a live directory tree into a [`Manifest`], cheaply.
//!
//! The serving side serves a plain directory (the operational node's live data). Hashing every
//! byte on every poll would be far too slow, so content hashes are cached per path under a key of
//! (size, mtime, inode, ctime): any write, truncate, rename-over or `touch` changes at least one of
//! them. Kernel timestamps advance in coarse ticks, so a file whose ctime is within
//! [`RACY_WINDOW`] of the scan's start is hashed but not cached (the "racy git" rule): a write in
//! the same tick after our read would otherwise go unnoticed.
//!
//! With [`Scanner::watch`] an inotify watch (the `notify` crate) marks the tree dirty on any event;
//! while nothing happened, [`Scanner::manifest`] returns the previous manifest without touching
//! the disk, which makes a no-change poll nearly free. The dirty flag is cleared *before* a scan
//! starts, so an event during the scan forces the next poll to scan again. Watcher errors
//! (including inotify queue overflow) also mark the tree dirty.
//!
//! Entries the pulling side could not reproduce safely are skipped with a warning: device files,
//! fifos and sockets, names that are not UTF-8, and symlinks whose target leaves the tree. Other
//! errors (an unreadable directory or file) fail the scan: serving a manifest that silently lacks
//! a file would delete it on the standby.
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::exclude::Excludes;
use super::manifest::{Entry, EntryKind, GenId, Manifest, Meta};
use super::path::symlink_target_stays_inside;
use super::TreeError;

/// Files whose ctime is this close to the scan start are hashed but not cached.
pub const RACY_WINDOW: Duration = Duration::from_millis(50);

/// What identifies one version of a file's content without reading it (size, mtime, inode,
/// device, ctime): any write, truncate, rename-over or `touch` changes at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey {
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    dev: u64,
    ctime: (i64, i64),
}

impl FileKey {
    /// The key of a `stat`/`lstat` result.
    pub fn of(md: &fs::Metadata) -> Self {
        FileKey {
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }
}

/// Content hashes cached by a scan, by path, each with the key of the version hashed
/// ([`Scanner::hashes`]).
pub type ScanHashes = HashMap<String, (FileKey, [u8; 32])>;

/// A file that grew since the scan before, with its old content still its first bytes: found
/// while hashing it anyway, so that serving "the old version plus what was appended" needs no
/// second read of the old part ([`Scanner::grown`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrownFile {
    /// The version scanned (the file must still have this key).
    pub key: FileKey,
    /// Size of the earlier version.
    pub prefix_len: u64,
    /// BLAKE3 of the earlier version, equal to that of this version's first `prefix_len` bytes.
    pub prefix_hash: [u8; 32],
    /// BLAKE3 of this whole version.
    pub hash: [u8; 32],
}

/// Scans one root, caching content hashes and (optionally) watching for changes.
pub struct Scanner {
    root: PathBuf,
    excludes: Excludes,
    /// Shared with connections ([`Scanner::hashes`]); copied on write only while one holds it.
    cache: Arc<ScanHashes>,
    last: Option<(Arc<Manifest>, GenId)>,
    dirty: Arc<AtomicBool>,
    /// When the watch last reported a relevant event (milliseconds since the Unix epoch).
    last_event_ms: Arc<std::sync::atomic::AtomicU64>,
    watcher: Option<notify::RecommendedWatcher>,
    /// Counters for tests and benchmarks: (full scans, files hashed).
    stats: (u64, u64),
    /// Files that grew (see [`GrownFile`]), by path; only versions whose hash is cached.
    grown: HashMap<String, GrownFile>,
    /// The same, shared with connections after each scan.
    grown_snapshot: Arc<HashMap<String, GrownFile>>,
}

impl Scanner {
    /// A scanner for `root` with the given excludes (no watch yet).
    pub fn new(root: impl Into<PathBuf>, excludes: Excludes) -> Self {
        Scanner {
            root: root.into(),
            excludes,
            cache: Arc::default(),
            last: None,
            dirty: Arc::new(AtomicBool::new(true)),
            last_event_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            watcher: None,
            stats: (0, 0),
            grown: HashMap::new(),
            grown_snapshot: Arc::default(),
        }
    }

    /// The root being scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts an inotify watch on the whole tree so that polls without change skip the scan.
    /// On failure (e.g. `max_user_watches` reached) the scanner keeps working, scanning every time.
    pub fn watch(&mut self) -> Result<(), notify::Error> {
        use notify::{RecursiveMode, Watcher};
        let dirty = Arc::clone(&self.dirty);
        let last = Arc::clone(&self.last_event_ms);
        let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // Any event or error (overflow included) means "look again"; access events cannot
            // change the manifest, skip them so readers do not cause rescans.
            let relevant = match &ev {
                Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
                Err(_) => true,
            };
            if relevant {
                last.store(now_ms(), Ordering::SeqCst);
                dirty.store(true, Ordering::SeqCst);
            }
        })?;
        w.watch(&self.root, RecursiveMode::Recursive)?;
        self.watcher = Some(w);
        self.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Whether a watched tree changed and has been quiet (no event) for at least `quiet`: the
    /// moment to scan ahead of the next poll, so that the puller finds the manifest ready.
    /// Always false without a watch (such a tree is scanned when asked).
    pub fn wants_scan_ahead(&self, quiet: Duration) -> bool {
        self.watcher.is_some()
            && self.dirty.load(Ordering::SeqCst)
            && now_ms().saturating_sub(self.last_event_ms.load(Ordering::SeqCst))
                >= quiet.as_millis() as u64
    }

    /// Whether an inotify watch is active.
    pub fn is_watched(&self) -> bool {
        self.watcher.is_some()
    }

    /// Whether the last manifest is known to be current: a watched tree with no event since
    /// its scan. Without a watch always false (every poll scans).
    pub fn is_current(&self) -> bool {
        self.watcher.is_some() && self.last.is_some() && !self.dirty.load(Ordering::SeqCst)
    }

    /// The files of the last scan that grew since the scan before and whose earlier version is
    /// their prefix (see [`GrownFile`]).
    pub fn grown(&self) -> Arc<HashMap<String, GrownFile>> {
        Arc::clone(&self.grown_snapshot)
    }

    /// The content hashes the scans cached, by path, each with the key of the version hashed
    /// ([`FileKey`]; only versions older than the racy window are cached): while a file still
    /// has that key, its content is the one hashed. The server sends a whole file without
    /// hashing it again when the file has the key before and after the read.
    pub fn hashes(&self) -> Arc<ScanHashes> {
        Arc::clone(&self.cache)
    }

    /// (full scans done, files hashed) since creation.
    pub fn stats(&self) -> (u64, u64) {
        self.stats
    }

    /// The current manifest and its id: the cached one when a watch is active and reported
    /// nothing, else a fresh scan.
    pub fn manifest(&mut self) -> Result<(Arc<Manifest>, GenId), TreeError> {
        if self.watcher.is_some() && !self.dirty.load(Ordering::SeqCst) {
            if let Some(last) = &self.last {
                return Ok(last.clone());
            }
        }
        self.dirty.store(false, Ordering::SeqCst);
        let m = match self.scan() {
            Ok(m) => m,
            Err(e) => {
                self.dirty.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let id = m.id();
        let out = (Arc::new(m), id);
        self.last = Some(out.clone());
        Ok(out)
    }

    /// Forces a full scan on the next [`Scanner::manifest`].
    pub fn invalidate(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    fn scan(&mut self) -> Result<Manifest, TreeError> {
        self.stats.0 += 1;
        let start = SystemTime::now();
        let racy_after = start
            .checked_sub(RACY_WINDOW)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let rmd = fs::metadata(&self.root).map_err(|e| TreeError::io("stat", &self.root, e))?;
        if !rmd.is_dir() {
            return Err(TreeError::Layout {
                path: self.root.clone(),
                reason: "not a directory".into(),
            });
        }
        let mut entries = Vec::new();
        let mut seen = HashMap::new();
        let root = self.root.clone();
        self.walk(&root, "", &mut entries, &mut seen, racy_after)?;
        // Drop cache entries of vanished files so the cache cannot grow without bound.
        Arc::make_mut(&mut self.cache).retain(|k, _| seen.contains_key(k));
        let cache = &self.cache;
        self.grown
            .retain(|k, g| cache.get(k).is_some_and(|(key, _)| *key == g.key));
        self.grown_snapshot = Arc::new(self.grown.clone());
        entries.sort_by(|a: &Entry, b: &Entry| a.path.as_bytes().cmp(b.path.as_bytes()));
        Ok(Manifest {
            root: meta_of(&rmd),
            entries,
        })
    }

    fn walk(
        &mut self,
        dir: &Path,
        rel: &str,
        out: &mut Vec<Entry>,
        seen: &mut HashMap<String, ()>,
        racy_after: SystemTime,
    ) -> Result<(), TreeError> {
        let rd = fs::read_dir(dir).map_err(|e| TreeError::io("read directory", dir, e))?;
        for item in rd {
            let item = item.map_err(|e| TreeError::io("read directory", dir, e))?;
            let fname = item.file_name();
            let Some(name) = fname.to_str() else {
                log::warn!("skipping non-UTF-8 name {:?} in {}", fname, dir.display());
                continue;
            };
            let rel_path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if self.excludes.is_excluded(&rel_path, name) {
                continue;
            }
            let full = item.path();
            let md = match fs::symlink_metadata(&full) {
                Ok(md) => md,
                // Deleted between readdir and stat: it is simply not part of this snapshot.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(TreeError::io("stat", &full, e)),
            };
            let ft = md.file_type();
            let meta = meta_of(&md);
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                let key = FileKey::of(&md);
                let hash = match self.cache.get(&rel_path) {
                    Some((k, h)) if *k == key => *h,
                    cached => {
                        // A file that grew: note whether its old version is still its start
                        // while hashing it (a BLAKE3 state can be finalized mid-way).
                        let before = cached
                            .filter(|(k, _)| k.size > 0 && k.size < key.size)
                            .map(|(k, h)| (k.size, *h));
                        self.grown.remove(&rel_path);
                        let hashed = hash_file_with_prefix(&full, before.map_or(0, |b| b.0));
                        let (h, prefix) = match hashed {
                            Ok(x) => x,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(TreeError::io("read", &full, e)),
                        };
                        self.stats.1 += 1;
                        let ctime = SystemTime::UNIX_EPOCH
                            .checked_add(Duration::new(
                                key.ctime.0.max(0) as u64,
                                key.ctime.1.clamp(0, 999_999_999) as u32,
                            ))
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        if ctime < racy_after {
                            Arc::make_mut(&mut self.cache).insert(rel_path.clone(), (key, h));
                            if let (Some((prefix_len, prefix_hash)), Some(p)) = (before, prefix) {
                                if p == prefix_hash {
                                    self.grown.insert(
                                        rel_path.clone(),
                                        GrownFile {
                                            key,
                                            prefix_len,
                                            prefix_hash,
                                            hash: h,
                                        },
                                    );
                                }
                            }
                        } else {
                            Arc::make_mut(&mut self.cache).remove(&rel_path);
                        }
                        h
                    }
                };
                EntryKind::File {
                    size: md.size(),
                    hash,
                }
            } else if ft.is_symlink() {
                let target = match fs::read_link(&full) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(TreeError::io("read link", &full, e)),
                };
                let Some(target) = target.to_str().map(str::to_string) else {
                    log::warn!("skipping symlink {} with non-UTF-8 target", full.display());
                    continue;
                };
                if !symlink_target_stays_inside(&rel_path, &target) {
                    log::warn!(
                        "skipping symlink {} -> {}: it leaves the tree",
                        full.display(),
                        target
                    );
                    continue;
                }
                EntryKind::Symlink { target }
            } else {
                log::warn!(
                    "skipping {}: device files, fifos and sockets are not synced",
                    full.display()
                );
                continue;
            };
            seen.insert(rel_path.clone(), ());
            let is_dir = matches!(kind, EntryKind::Dir);
            out.push(Entry {
                path: rel_path.clone(),
                kind,
                meta,
            });
            if is_dir {
                self.walk(&full, &rel_path, out, seen, racy_after)?;
            }
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The replicated metadata of a `lstat` result.
pub fn meta_of(md: &fs::Metadata) -> Meta {
    Meta {
        mode: md.mode() & 0o7777,
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
        uid: md.uid(),
        gid: md.gid(),
    }
}

/// BLAKE3 of a file's content, read in 256 KiB pieces.
pub fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let f = fs::File::open(path)?;
    hash_reader(f)
}

/// BLAKE3 of a file's content and, when `prefix_len` is not 0, of its first `prefix_len` bytes
/// (`None` if the file is shorter), in one read.
pub fn hash_file_with_prefix(
    path: &Path,
    prefix_len: u64,
) -> std::io::Result<([u8; 32], Option<[u8; 32]>)> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    let mut prefix = None;
    loop {
        if prefix_len > 0 && done == prefix_len && prefix.is_none() {
            prefix = Some(*h.finalize().as_bytes());
        }
        // Stop one read exactly at the prefix's end.
        let want = if prefix_len > done {
            (prefix_len - done).min(buf.len() as u64) as usize
        } else {
            buf.len()
        };
        let n = match f.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.get(..n).unwrap_or_default());
        done += n as u64;
    }
    Ok((*h.finalize().as_bytes(), prefix))
}

/// BLAKE3 of everything a reader yields.
pub fn hash_reader(mut r: impl std::io::Read) -> std::io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Waits until every file written so far is older than the racy window (a condition on
    /// the clock, not a guess: the cache takes only files whose ctime is that old).
    fn past_racy_window() {
        std::thread::sleep(RACY_WINDOW * 2);
    }

    #[test]
    fn a_file_that_grew_is_known_with_its_old_version_as_prefix() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("voice.wav");
        let old: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&p, &old).unwrap();
        fs::write(t.path().join("other"), b"x").unwrap();
        past_racy_window();
        let mut s = Scanner::new(t.path(), Excludes::default());
        s.manifest().unwrap();
        assert!(s.grown().is_empty());

        fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&[9u8; 300_000])
            .unwrap();
        past_racy_window();
        let (m, _) = s.manifest().unwrap();
        let g = *s.grown().get("voice.wav").expect("grown file noted");
        assert_eq!(g.prefix_len, old.len() as u64);
        assert_eq!(g.prefix_hash, *blake3::hash(&old).as_bytes());
        assert_eq!(
            Some((1_000_000, g.hash)),
            m.get("voice.wav").unwrap().file()
        );
        assert_eq!(g.key, FileKey::of(&fs::metadata(&p).unwrap()));

        // Rewritten (not appended): its start changed, so it is not noted.
        let mut other = old.clone();
        other[0] ^= 1;
        other.extend_from_slice(&[1u8; 2_000_000]);
        fs::write(&p, &other).unwrap();
        past_racy_window();
        s.manifest().unwrap();
        assert!(s.grown().is_empty());
    }

    #[test]
    fn hash_with_prefix_matches_separate_hashes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(&p, &data).unwrap();
        for cut in [1u64, 262_144, 262_145, 599_999, 600_000] {
            let (whole, prefix) = hash_file_with_prefix(&p, cut).unwrap();
            assert_eq!(whole, *blake3::hash(&data).as_bytes());
            assert_eq!(
                prefix,
                Some(*blake3::hash(&data[..cut as usize]).as_bytes()),
                "cut {cut}"
            );
        }
        assert_eq!(hash_file_with_prefix(&p, 600_001).unwrap().1, None);
        assert_eq!(hash_file_with_prefix(&p, 0).unwrap().1, None);
    }
}
