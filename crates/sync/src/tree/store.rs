//! The pulling side's generation store and its atomic apply.
//!
//! # Layout
//!
//! ```text
//! ROOT/current -> .gens/<gen-id>        symlink, the only thing readers name
//! ROOT/.gens/<gen-id>/...               one complete tree per generation (64 hex digits)
//! ROOT/.gens/<gen-id>.manifest          its manifest (serde + bincode, see crate::codec)
//! ROOT/.gens/.staging-<gen-id>/         the generation being built (discarded on startup)
//! ROOT/.gens/.staging-<gen-id>.recycle/ inodes of files it dropped, to be overwritten by files
//!                                       it receives (see crate::tree::recycle; trashed after)
//! ROOT/.gens/.mirror-<gen-id>/          hard links of the current generation, built in the
//!                                       background when no earlier generation can be reused
//! ROOT/.partial/<hash of path>          data of files being received, kept across rounds
//! ROOT/.trash/                          entries waiting to be freed by a background thread
//! ROOT/.lock                            flock(2): one puller per store
//! ```
//!
//! After a round two generations are on disk: the current one and the one before it.
//!
//! # Applying a generation
//!
//! 1. Staging starts in `.gens` (same filesystem, so everything below is a rename or a link,
//!    never a cross-device copy). With [`StoreOptions::reuse`] (the default) the generation
//!    before the current one — complete, not current, and not otherwise needed — is *reused*:
//!    its directory is renamed to `.staging-<new id>` (from that instant it is no longer a
//!    generation) and only what differs between its manifest and the new one is touched
//!    ([`Staging::prepare`]): entries that differ or are gone are renamed into `.trash/` (a
//!    directory with all it holds in one rename; a large file no other generation links is
//!    kept instead, for a file of this round to be written into, see crate::tree::recycle),
//!    missing directories are created. A generation
//!    may have been changed in place since its manifest was written (the application writes
//!    into `current` while this node is master, and linked inodes are shared with the next
//!    generation), so its manifest is never trusted alone: every entry on disk is first checked
//!    against it by rsync's quick check ([`matches_disk`]: kind, size, mtime, mode) and what
//!    differs, is missing or is not listed leaves the reused tree (that audit is skipped only
//!    when inotify vouches for the tree instead: the reused generation's watch, armed when it
//!    was current and found intact, see [`crate::tree::watch`], saw nothing, and the current
//!    generation, which shares its unchanged inodes, passed [`GenStore::check_generation`]).
//!    Likewise only files of the
//!    current generation that pass the check are linked, copied or offered as a prefix. Unchanged
//!    files, which in a 1% round are 99% of the tree, cost nothing. Without a generation to reuse
//!    (the first rounds, or after a crash) staging starts from an empty directory.
//! 2. Missing files that are unchanged since the current generation are hard-linked from it (no
//!    data copied; a file is only ever linked when content *and* metadata are identical, because
//!    a linked inode is shared, and changing its mode or mtime would change the other generation
//!    too). Files with the same content but other metadata, and renamed files, are copied
//!    locally. New and changed files are received into `.partial/` and renamed into the staging
//!    tree once complete and verified against the manifest's BLAKE3 hash; their writeback starts
//!    at once (`sync_file_range`), so step 4 finds most data already on its way.
//!    No file is ever changed in place: a reused tree shares inodes with the current one, so a
//!    changed file always gets a new inode.
//! 3. Directory modes and mtimes are set last, deepest first (setting them earlier would be
//!    undone by the entries created inside, and a read-only directory could not be filled).
//! 4. The manifest is written, then `syncfs(2)` flushes the filesystem once: one call instead of
//!    one `fsync` per file and per directory (a round touching thousands of entries would pay
//!    milliseconds each), with the same guarantee for everything staged. With
//!    [`StoreOptions::fsync`] off this step and the directory fsyncs below are skipped (as rsync
//!    does): a process crash is still safe, a power failure is not.
//! 5. The staging directory is renamed to `.gens/<gen-id>`: from here on it is complete.
//! 6. A new symlink `.current.tmp -> .gens/<gen-id>` is renamed over `current` (rename(2) replaces
//!    atomically), and `ROOT` is fsynced so the switch itself is durable.
//! 7. Generations other than the new current and the previous one (left over by crashes or by
//!    rounds without reuse) are moved to `.trash/`. The trash is emptied by a background thread
//!    ([`GenStore::collect`]) started after the switch: freeing thousands of files' blocks takes
//!    hundreds of milliseconds on ext4 (more with online discard) and nobody waits for it; a
//!    round waits only if the previous collection is still running when it needs to start
//!    another. (Starting it when the next round begins staging, so that the freed page cache
//!    would be reused by that round's writes, was measured and dropped: on the development VM
//!    pages idle for a poll interval are cold anyway, and the deletions then compete with the
//!    round: 1% round 0.234 and 0.297 of rsync's time, against 0.227 and 0.238 collected after
//!    the switch, same run, 7 rounds each.)
//!
//! A crash before step 6 leaves `current` on the old, complete generation (the staging directory
//! is discarded by the next [`GenStore::open`]; the next round then builds from scratch); a crash
//! after it leaves the new, complete one. No file of any generation is ever modified in place,
//! so there is no instant at which a partial file is visible.
//!
//! # Reading
//!
//! Open `ROOT/current/<path>`. A reader that needs several files from one generation resolves the
//! link once (`readlink ROOT/current`, or open `ROOT/current` as a directory and use `openat`) and
//! reads everything below that generation directory (`ROOT/.gens/<gen-id>/...`); opening
//! `ROOT/current/a` and then `ROOT/current/b` may see two generations if a switch happens in
//! between. A generation stays on disk, unchanged, until the round after the one that replaced
//! it *starts*: that round renames it away before changing anything, so a reader that names
//! files by `ROOT/.gens/<gen-id>/...` gets "not found" (never a file of another generation) once
//! its generation is gone, and should then resolve `current` again. A reader that must hold a
//! generation longer keeps its files open (replaced files keep their inodes).
//!
//! renameat2(`RENAME_EXCHANGE`) of two directories would avoid the symlink, but it leaves the
//! reader no way to pin a snapshot by name; a symlink also works on every filesystem, so we keep
//! it.
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::manifest::{hex, Entry, EntryKind, GenId, Manifest, Meta};
use super::recycle::Recycler;
use super::scan::FileKey;
use super::watch::{intact_on_disk, GenWatch, WatchError};
use super::TreeError;

/// Directory holding the generations.
pub const GENS_DIR: &str = ".gens";
/// The symlink readers open.
pub const CURRENT: &str = "current";
/// Directory holding files being received.
pub const PARTIAL_DIR: &str = ".partial";
const STAGING_PREFIX: &str = ".staging-";
const MIRROR_PREFIX: &str = ".mirror-";
const CURRENT_TMP: &str = ".current.tmp";
const LOCK: &str = ".lock";
/// Directory of entries waiting to be freed by the collector thread.
const TRASH_DIR: &str = ".trash";

impl Drop for GenStore {
    fn drop(&mut self) {
        let slot = self
            .collector
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
        self.mirror
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join();
        self.watch
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join_arming();
    }
}

/// The inotify watch over the current generation ([`GenStore::check_generation`]).
#[derive(Debug, Default)]
struct WatchSlot {
    /// A watch armed on a generation found intact.
    armed: Option<GenWatch>,
    /// The watch of the generation that was current before the last commit, kept so that
    /// the round reusing it need not audit it ([`GenStore::stage_reusing`]).
    previous: Option<GenWatch>,
    /// A watch being armed in the background after a commit.
    arming: Option<std::thread::JoinHandle<Result<Option<GenWatch>, WatchError>>>,
}

/// The mirror's work (see [`GenStore::mirror_in_background`]): directories and symlinks made
/// anew, every file a hard link to `src`'s, then renamed from `tmp` to `dst`.
fn build_mirror(src: &Path, tmp: &Path, dst: &Path, m: &Manifest) -> Result<(), TreeError> {
    if tmp.exists() {
        remove_tree(tmp)?;
    }
    fs::create_dir(tmp).map_err(|e| TreeError::io("create directory", tmp, e))?;
    // Sorted by path: a directory comes before everything inside it.
    for e in &m.entries {
        let to = tmp.join(&e.path);
        match &e.kind {
            EntryKind::Dir => {
                fs::create_dir(&to).map_err(|err| TreeError::io("create directory", &to, err))?
            }
            EntryKind::File { .. } => fs::hard_link(src.join(&e.path), &to)
                .map_err(|err| TreeError::io("hard link", &to, err))?,
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &to)
                    .map_err(|err| TreeError::io("create symlink", &to, err))?;
                apply_symlink_meta(&to, &e.meta)?;
            }
        }
    }
    fs::rename(tmp, dst).map_err(|e| TreeError::io("rename", dst, e))
}

/// Closes a generation watch on a thread of its own: closing an inotify descriptor that holds a
/// watch per directory waits for the kernel to destroy every mark (an SRCU grace period), which
/// measured 13-15 ms for a generation of 110 directories, on the round's path when done inline.
fn drop_in_background(w: GenWatch) {
    // Without a thread the closure, and the watch in it, is dropped here instead.
    let spawned = std::thread::Builder::new()
        .name("gen-watch-drop".into())
        .spawn(move || drop(w));
    if let Err(e) = spawned {
        log::debug!("closed a generation watch inline ({e})");
    }
}

/// A mirror being built ([`GenStore::mirror_in_background`]), then the inotify watch armed on
/// it once built and found intact.
#[derive(Debug, Default)]
struct MirrorSlot {
    building: Option<std::thread::JoinHandle<Option<GenWatch>>>,
    watch: Option<GenWatch>,
}

impl MirrorSlot {
    /// Waits for a build under way and keeps its watch.
    fn join(&mut self) {
        if let Some(h) = self.building.take() {
            match h.join() {
                Ok(w) => {
                    if let Some(old) = std::mem::replace(&mut self.watch, w) {
                        drop_in_background(old);
                    }
                }
                Err(_) => log::warn!("the thread building a mirror panicked"),
            }
        }
    }
}

impl WatchSlot {
    /// Waits for a watch being armed in the background and keeps it.
    fn join_arming(&mut self) {
        if let Some(h) = self.arming.take() {
            match h.join() {
                Ok(Ok(w)) => self.armed = w,
                Ok(Err(e)) => log::debug!("{e}"),
                Err(_) => log::warn!("the thread arming a generation watch panicked"),
            }
        }
    }
}

/// Removes everything inside `dir` (the collector's work; errors are logged, the next
/// collection tries again).
fn empty_dir(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for item in rd.flatten() {
        if let Err(e) = remove_tree(&item.path()) {
            log::warn!("collecting {}: {e}", item.path().display());
        }
    }
}

/// A generation store rooted at a directory (see the module documentation for the layout).
#[derive(Debug)]
pub struct GenStore {
    root: PathBuf,
    _lock: File,
    options: StoreOptions,
    /// The thread emptying `.trash` (see [`GenStore::collect`]).
    collector: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The mirror of the current generation being built, or its watch ([`GenStore::take_mirror`]).
    mirror: std::sync::Mutex<MirrorSlot>,
    trash_seq: std::sync::atomic::AtomicU64,
    /// What makes [`GenStore::check_generation`] cheap.
    watch: std::sync::Mutex<WatchSlot>,
    /// Walks of a whole generation done by [`GenStore::check_generation`] on the caller's thread.
    full_checks: std::sync::atomic::AtomicU64,
    /// Manifests recently written or read (see [`GenStore::load_manifest`]).
    manifests: std::sync::Mutex<std::collections::VecDeque<CachedManifest>>,
}

/// A stored manifest kept in memory with the identity of its file when it was written or read.
#[derive(Debug)]
struct CachedManifest {
    id: GenId,
    file: FileKey,
    manifest: std::sync::Arc<Manifest>,
}

/// Manifests kept in memory: the current generation's, the one before, and one more.
const CACHED_MANIFESTS: usize = 3;

/// How a [`GenStore`] applies generations. The defaults are what a deployment wants; the
/// others exist to measure what each costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Turn the generation before the current one into the next one, touching only what
    /// changed (default). Off: every round builds a complete new tree of hard links.
    pub reuse: bool,
    /// Make the staged generation durable before switching (default). Off: a power failure
    /// (not a process crash) may leave the new generation current but incomplete on disk, as
    /// with rsync, which never fsyncs.
    pub fsync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            reuse: true,
            fsync: true,
        }
    }
}

impl GenStore {
    /// Opens (creating if needed) the store at `root`, takes its lock and removes leftovers of an
    /// interrupted round (staging directories, a temporary symlink). Partial files are kept: they
    /// are the basis of the next round.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, TreeError> {
        let root = root.into();
        for d in [
            root.clone(),
            root.join(GENS_DIR),
            root.join(PARTIAL_DIR),
            root.join(TRASH_DIR),
        ] {
            fs::create_dir_all(&d).map_err(|e| TreeError::io("create directory", &d, e))?;
        }
        let lock_path = root.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| TreeError::io("open", &lock_path, e))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(TreeError::Locked(root));
        }
        let store = GenStore {
            root,
            _lock: lock,
            options: StoreOptions::default(),
            collector: std::sync::Mutex::new(None),
            mirror: std::sync::Mutex::new(MirrorSlot::default()),
            trash_seq: std::sync::atomic::AtomicU64::new(0),
            watch: std::sync::Mutex::new(WatchSlot::default()),
            full_checks: std::sync::atomic::AtomicU64::new(0),
            manifests: std::sync::Mutex::new(std::collections::VecDeque::new()),
        };
        store.remove_leftovers()?;
        store.collect();
        Ok(store)
    }

    fn remove_leftovers(&self) -> Result<(), TreeError> {
        let gens = self.root.join(GENS_DIR);
        let rd = fs::read_dir(&gens).map_err(|e| TreeError::io("read directory", &gens, e))?;
        for item in rd {
            let item = item.map_err(|e| TreeError::io("read directory", &gens, e))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(STAGING_PREFIX) || name.ends_with(".tmp") {
                log::info!("removing leftover {}", item.path().display());
                self.trash(&item.path())?;
            }
        }
        let tmp = self.root.join(CURRENT_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TreeError::io("remove", &tmp, e)),
        }
        Ok(())
    }

    /// The options in force.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// Changes the options for the following rounds.
    pub fn set_options(&mut self, options: StoreOptions) {
        self.options = options;
    }

    /// Moves a file or tree out of the way at once (a rename into `ROOT/.trash`); the space is
    /// freed later by [`GenStore::collect`], off the round's critical path. Freeing the blocks
    /// of thousands of files is what costs (hundreds of milliseconds on ext4), not the rename.
    pub fn trash(&self, path: &Path) -> Result<(), TreeError> {
        let n = self
            .trash_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let to = self
            .root
            .join(TRASH_DIR)
            .join(format!("{}-{n}", std::process::id()));
        match fs::rename(path, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(TreeError::io("move to trash", path, e)),
        }
    }

    /// Removes a file or symlink leaving a tree (`md`: its metadata, not followed): unlinked at
    /// once when another path still links its inode (nothing is freed then, so there is nothing to defer, and an unlink costs half
    /// a rename into the trash: 3.0-3.3 against 6.7-7.1 ms for 254 files on the development
    /// machine), else moved to the trash like any entry ([`GenStore::trash`]).
    fn discard(&self, path: &Path, md: std::io::Result<fs::Metadata>) -> Result<(), TreeError> {
        match md {
            Ok(md) if !md.is_dir() && md.nlink() > 1 => match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(TreeError::io("remove", path, e)),
            },
            _ => self.trash(path),
        }
    }

    /// Empties `ROOT/.trash` on a background thread. A collection still running from an
    /// earlier call is waited for first (only then does a round wait for one).
    pub fn collect(&self) {
        let mut slot = self
            .collector
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
        let dir = self.root.join(TRASH_DIR);
        let spawned = std::thread::Builder::new()
            .name("gen-collector".into())
            .spawn(move || empty_dir(&dir));
        match spawned {
            Ok(h) => *slot = Some(h),
            Err(e) => {
                log::warn!("no collector thread ({e}); emptying the trash inline");
                empty_dir(&self.root.join(TRASH_DIR));
            }
        }
    }

    /// Waits for the store's background work to end: the trash collection, a mirror being
    /// built and the arming of the current generation's watch (all started by a commit). A
    /// puller never needs this; benchmarks call it so that no tool's timed round shares the
    /// machine with it.
    pub fn wait_background(&self) {
        let h = self
            .collector
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = h {
            let _ = h.join();
        }
        self.mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join();
        let mut slot = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.join_arming();
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/current`, the path readers open.
    pub fn current_path(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    /// The directory of a generation.
    pub fn gen_dir(&self, id: &GenId) -> PathBuf {
        self.root.join(GENS_DIR).join(id.to_hex())
    }

    fn manifest_path(&self, id: &GenId) -> PathBuf {
        self.root
            .join(GENS_DIR)
            .join(format!("{}.manifest", id.to_hex()))
    }

    /// Where the data of a file being received for relative path `rel` is kept.
    pub fn partial_path(&self, rel: &str) -> PathBuf {
        let h = blake3::hash(rel.as_bytes());
        self.root
            .join(PARTIAL_DIR)
            .join(hex(h.as_bytes().get(..16).unwrap_or_default()))
    }

    /// Removes all partial files (after a successful round).
    pub fn clear_partials(&self) -> Result<(), TreeError> {
        let dir = self.root.join(PARTIAL_DIR);
        let rd = fs::read_dir(&dir).map_err(|e| TreeError::io("read directory", &dir, e))?;
        for item in rd.flatten() {
            let p = item.path();
            fs::remove_file(&p).map_err(|e| TreeError::io("remove", &p, e))?;
        }
        Ok(())
    }

    /// The generation `current` points to, if any.
    pub fn current_id(&self) -> Result<Option<GenId>, TreeError> {
        let cur = self.current_path();
        let target = match fs::read_link(&cur) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(TreeError::Layout {
                    path: cur,
                    reason: "exists and is not a symlink".into(),
                })
            }
            Err(e) => return Err(TreeError::io("read link", &cur, e)),
        };
        let parsed = target
            .strip_prefix(GENS_DIR)
            .ok()
            .and_then(|p| p.to_str())
            .and_then(GenId::from_hex);
        match parsed {
            Some(id) => Ok(Some(id)),
            None => Err(TreeError::Layout {
                path: cur,
                reason: format!("points to {}, not .gens/<generation>", target.display()),
            }),
        }
    }

    /// The current generation with its manifest, if any.
    pub fn current(&self) -> Result<Option<(GenId, Manifest)>, TreeError> {
        match self.current_id()? {
            None => Ok(None),
            Some(id) => Ok(Some((id, self.load_manifest(&id)?))),
        }
    }

    /// Loads and verifies (its id must match) the stored manifest of a generation.
    ///
    /// A manifest this store wrote or read before comes from memory while its file is still the
    /// one it was (same inode, size, mtime and ctime: a rewritten, replaced or removed file is
    /// read again). A round needs the current generation's and the reused one's manifests, and
    /// decoding and re-hashing ten thousand entries costs milliseconds each time.
    pub fn load_manifest(&self, id: &GenId) -> Result<Manifest, TreeError> {
        let p = self.manifest_path(id);
        let key = fs::metadata(&p)
            .map(|md| FileKey::of(&md))
            .map_err(|e| TreeError::io("read", &p, e))?;
        {
            let cache = self
                .manifests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = cache.iter().find(|c| c.id == *id && c.file == key) {
                return Ok((*c.manifest).clone());
            }
        }
        let bytes = fs::read(&p).map_err(|e| TreeError::io("read", &p, e))?;
        let m: Manifest = crate::codec::decode(&bytes).map_err(|e| TreeError::StoredManifest {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if m.id() != *id {
            return Err(TreeError::StoredManifest {
                path: p,
                reason: "content does not match its generation id".into(),
            });
        }
        // Remembered under the identity seen before reading: a change since gives another.
        self.remember(*id, key, std::sync::Arc::new(m.clone()));
        Ok(m)
    }

    fn remember(&self, id: GenId, file: FileKey, manifest: std::sync::Arc<Manifest>) {
        let mut cache = self
            .manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|c| c.id != id);
        cache.push_front(CachedManifest { id, file, manifest });
        cache.truncate(CACHED_MANIFESTS);
    }

    /// Removes the stored manifest of a generation found unreadable, so that the next round
    /// pulls everything instead of failing on it again.
    pub fn discard_manifest(&self, id: &GenId) {
        let p = self.manifest_path(id);
        if let Err(e) = fs::remove_file(&p) {
            log::warn!("removing unreadable manifest {}: {e}", p.display());
        }
    }

    /// Whether generation `id` is on disk exactly as its stored manifest says: every entry passes
    /// the quick check ([`matches_disk`]) and nothing unlisted is there. A generation that may
    /// have been changed in place must pass this before it is claimed to a server or used as a
    /// source of links, copies or prefixes.
    ///
    /// Cheap when it can be: the first full check arms an inotify watch over the generation
    /// (see [`crate::tree::watch`]; a commit arms one in the background for the new current
    /// generation), and while that watch has seen no event the answer is `true` without
    /// touching the tree. Without inotify every call walks the whole generation (logged at
    /// debug level).
    pub fn check_generation(&self, id: &GenId) -> bool {
        let mut slot = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.join_arming();
        // The previous generation shares inodes with this one: a change through its paths is
        // an event of its watch only (see crate::tree::watch).
        let previous_clean = slot.previous.as_mut().is_none_or(GenWatch::clean);
        if let Some(w) = slot.armed.as_mut() {
            if w.id() == *id && w.clean() && previous_clean {
                return true;
            }
        }
        if let Some(w) = slot.armed.take() {
            drop_in_background(w);
        }
        let Ok(m) = self.load_manifest(id) else {
            return false;
        };
        self.full_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.gen_dir(id);
        match GenWatch::arm(*id, &dir, &m) {
            Ok(Some(w)) => {
                slot.armed = Some(w);
                true
            }
            Ok(None) => false,
            Err(e) => {
                log::debug!("{e}; checking every entry of generation {id} on each poll instead");
                intact_on_disk(&dir, &m)
            }
        }
    }

    /// Whether generation `id`, current before the last commit, has seen no change since its
    /// watch was armed (then it was intact, and nothing happened below it since). `false`
    /// without such a watch. The watch is dropped: the caller is about to turn that
    /// generation into staging, whose own changes would be its events.
    fn previous_unchanged(&self, id: &GenId) -> bool {
        let mut slot = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut w) = slot.previous.take() else {
            return false;
        };
        let unchanged = w.id() == *id && w.clean();
        drop_in_background(w);
        unchanged
    }

    /// How many times [`GenStore::check_generation`] had to walk a whole generation (for tests
    /// and benchmarks: a no-change poll with a working watch adds none).
    pub fn full_checks(&self) -> u64 {
        self.full_checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Arms the watch of [`GenStore::check_generation`] over the just-committed generation `id`
    /// on a background thread, so that the next poll finds it ready.
    fn arm_in_background(&self, id: GenId, manifest: std::sync::Arc<Manifest>) {
        let mut slot = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.join_arming();
        // The generation just replaced keeps its watch: while it sees nothing, that generation
        // is still as it was when it was last found intact.
        let armed = slot.armed.take();
        if let Some(w) = std::mem::replace(&mut slot.previous, armed) {
            drop_in_background(w);
        }
        let dir = self.gen_dir(&id);
        let spawned = std::thread::Builder::new()
            .name("gen-watch".into())
            .spawn(move || GenWatch::arm(id, &dir, &manifest));
        match spawned {
            Ok(h) => slot.arming = Some(h),
            // The next check arms it inline.
            Err(e) => log::debug!("no thread to arm the generation watch ({e})"),
        }
    }

    /// Whether a complete generation `id` is on disk (its directory and manifest exist).
    pub fn has_complete(&self, id: &GenId) -> bool {
        self.gen_dir(id).is_dir() && self.manifest_path(id).is_file()
    }

    /// Makes the complete generation `id` current (steps 6 and 7 of the module documentation).
    pub fn switch_to(&self, id: &GenId) -> Result<(), TreeError> {
        let keep = self.switch_only(id)?;
        self.gc(&keep)
    }

    /// Writes generation `id`'s manifest through a temporary file and a rename (fsynced first
    /// when `fsync`), so a manifest file is always whole.
    fn write_manifest(
        &self,
        id: &GenId,
        manifest: &std::sync::Arc<Manifest>,
        fsync: bool,
    ) -> Result<(), TreeError> {
        let mpath = self.manifest_path(id);
        let tmp = mpath.with_extension("manifest.tmp");
        let bytes = crate::codec::encode(&**manifest).map_err(|e| TreeError::StoredManifest {
            path: mpath.clone(),
            reason: e.to_string(),
        })?;
        {
            let mut f = File::create(&tmp).map_err(|e| TreeError::io("create", &tmp, e))?;
            f.write_all(&bytes)
                .map_err(|e| TreeError::io("write", &tmp, e))?;
            if fsync {
                f.sync_all().map_err(|e| TreeError::io("fsync", &tmp, e))?;
            }
        }
        fs::rename(&tmp, &mpath).map_err(|e| TreeError::io("rename", &mpath, e))?;
        if let Ok(md) = fs::metadata(&mpath) {
            self.remember(*id, FileKey::of(&md), std::sync::Arc::clone(manifest));
        }
        Ok(())
    }

    /// Turns a plain `ROOT/current` directory (seed data put there before the store existed)
    /// into a generation where it is: scanned, its manifest written, the directory renamed to
    /// `.gens/<id>` and `current` made the symlink to it. Returns the new id, or `None` when
    /// `current` is not a plain directory.
    ///
    /// Nothing is copied or moved aside, so a node whose first pull fails still serves and
    /// starts its applications on that data. Between the rename and the new symlink `current`
    /// is briefly missing (never a mix); after a crash in that instant the data is whole under
    /// `.gens/<id>` and the next adoption or pull finds it.
    pub fn adopt_plain_current(&self) -> Result<Option<GenId>, TreeError> {
        let cur = self.current_path();
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            _ => return Ok(None),
        }
        let mut scanner = super::scan::Scanner::new(&cur, Default::default());
        let (manifest, id) = scanner.manifest()?;
        self.write_manifest(&id, &manifest, self.options.fsync)?;
        let dst = self.gen_dir(&id);
        if dst.exists() {
            self.trash(&dst)?;
        }
        fs::rename(&cur, &dst).map_err(|e| TreeError::io("rename", &dst, e))?;
        self.switch_only(&id)?;
        Ok(Some(id))
    }

    /// Step 6 alone; returns the generations to keep (the new one and the previous one).
    fn switch_only(&self, id: &GenId) -> Result<Vec<GenId>, TreeError> {
        let previous = self.current_id().ok().flatten();
        let tmp = self.root.join(CURRENT_TMP);
        let _ = fs::remove_file(&tmp);
        let target = Path::new(GENS_DIR).join(id.to_hex());
        std::os::unix::fs::symlink(&target, &tmp)
            .map_err(|e| TreeError::io("create symlink", &tmp, e))?;
        let cur = self.current_path();
        fs::rename(&tmp, &cur).map_err(|e| TreeError::io("rename over", &cur, e))?;
        if self.options.fsync {
            fsync_dir(&self.root)?;
        }
        let mut keep = vec![*id];
        keep.extend(previous);
        Ok(keep)
    }

    /// Removes every generation not in `keep` (moved to the trash at once, freed by a background
    /// [`GenStore::collect`]).
    pub fn gc(&self, keep: &[GenId]) -> Result<(), TreeError> {
        let gens = self.root.join(GENS_DIR);
        let rd = fs::read_dir(&gens).map_err(|e| TreeError::io("read directory", &gens, e))?;
        for item in rd.flatten() {
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(MIRROR_PREFIX) && !name.ends_with(".tmp") {
                let ours = keep
                    .first()
                    .is_some_and(|k| name == format!("{MIRROR_PREFIX}{}", k.to_hex()));
                if !ours {
                    self.trash(&item.path())?;
                }
                continue;
            }
            let stem = name.strip_suffix(".manifest").unwrap_or(&name);
            let Some(id) = GenId::from_hex(stem) else {
                continue;
            };
            if keep.contains(&id) {
                continue;
            }
            self.trash(&item.path())?;
        }
        self.collect();
        Ok(())
    }

    /// Starts staging generation `id` with manifest `manifest` in a new, empty directory
    /// (step 1).
    pub fn stage(&self, id: GenId, manifest: Manifest) -> Result<Staging<'_>, TreeError> {
        let dir = self.staging_dir(&id);
        if dir.exists() {
            self.trash(&dir)?;
        }
        fs::create_dir(&dir).map_err(|e| TreeError::io("create directory", &dir, e))?;
        Ok(Staging::new(self, id, manifest, Manifest::default(), dir))
    }

    fn mirror_dir(&self, id: &GenId) -> PathBuf {
        self.root
            .join(GENS_DIR)
            .join(format!("{MIRROR_PREFIX}{}", id.to_hex()))
    }

    /// Builds, on a background thread, a tree of hard links to every file of the complete
    /// generation `id` (directories and symlinks made anew) as `.gens/.mirror-<id>`: what the
    /// next round stages into when there is no earlier generation to reuse (after the first
    /// full pull, or after a crash), instead of linking ten thousand files while the caller
    /// waits. Built under a `.tmp` name and renamed when complete, so a crash never leaves a
    /// partial mirror that looks whole ([`GenStore::open`] removes `.tmp` leftovers).
    fn mirror_in_background(&self, id: GenId, manifest: std::sync::Arc<Manifest>) {
        let mut slot = self
            .mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.join();
        if let Some(old) = slot.watch.take() {
            drop_in_background(old);
        }
        let src = self.gen_dir(&id);
        let dst = self.mirror_dir(&id);
        let spawned = std::thread::Builder::new()
            .name("gen-mirror".into())
            .spawn(move || {
                let tmp = dst.with_file_name(format!("{MIRROR_PREFIX}{}.tmp", id.to_hex()));
                if let Err(e) = build_mirror(&src, &tmp, &dst, &manifest) {
                    log::debug!("no mirror of generation {id}: {e}");
                    let _ = remove_tree(&tmp);
                    return None;
                }
                // Armed on the finished mirror, and only if it is intact: from here on any
                // change below it is an event, so the round using it can skip its audit.
                GenWatch::arm(id, &dst, &manifest).ok().flatten()
            });
        match spawned {
            Ok(h) => slot.building = Some(h),
            Err(e) => log::debug!("no thread to build a mirror ({e})"),
        }
    }

    /// The complete mirror of generation `current`, if one was built (waiting for a build
    /// under way), and whether its watch, armed when it was found intact after the build, has
    /// seen nothing since. The caller renames it into staging ([`GenStore::stage_from_mirror`]).
    pub fn take_mirror(&self, current: &GenId) -> Option<(PathBuf, bool)> {
        let mut slot = self
            .mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.join();
        // Asked before the caller's rename, which is itself an event of that watch.
        let unchanged = match slot.watch.take() {
            Some(mut w) => {
                let clean = w.id() == *current && w.clean();
                drop_in_background(w);
                clean
            }
            None => false,
        };
        let d = self.mirror_dir(current);
        d.is_dir().then_some((d, unchanged))
    }

    /// Starts staging generation `id` in the mirror `mirror` of the current generation, whose
    /// manifest is `current_manifest` (see [`GenStore::take_mirror`]): renamed to the staging
    /// name and audited entry by entry like a reused generation ([`GenStore::stage_reusing`]),
    /// since its files are the current generation's inodes and may have been changed through
    /// its paths. The audit (one `lstat` per entry, cheaper than linking every file anew) is
    /// skipped when `unchanged`: the caller sets it when the mirror's watch saw nothing since
    /// the mirror was found intact and [`GenStore::check_generation`] just confirmed the current
    /// generation (whose inodes the mirror's files are), as for a reused generation.
    pub fn stage_from_mirror(
        &self,
        id: GenId,
        manifest: Manifest,
        mirror: PathBuf,
        current_manifest: Manifest,
        unchanged: bool,
    ) -> Result<Staging<'_>, TreeError> {
        let dir = self.staging_dir(&id);
        if dir.exists() {
            self.trash(&dir)?;
        }
        fs::rename(&mirror, &dir).map_err(|e| TreeError::io("rename for staging", &mirror, e))?;
        make_dir_writable(&dir)?;
        if unchanged {
            return Ok(Staging::new(self, id, manifest, current_manifest, dir));
        }
        self.audited_staging(id, manifest, dir, current_manifest)
    }

    fn staging_dir(&self, id: &GenId) -> PathBuf {
        self.root
            .join(GENS_DIR)
            .join(format!("{STAGING_PREFIX}{}", id.to_hex()))
    }

    /// A complete generation other than `current` and `exclude` that a round may turn into the
    /// next one ([`GenStore::stage_reusing`]), with its manifest. Unreadable manifests are
    /// skipped (and their generation left to [`GenStore::gc`]).
    /// Always `None` when [`StoreOptions::reuse`] is off.
    pub fn spare(&self, current: Option<&GenId>, exclude: &GenId) -> Option<(GenId, Manifest)> {
        if !self.options.reuse {
            return None;
        }
        let gens = self.root.join(GENS_DIR);
        let rd = fs::read_dir(&gens).ok()?;
        for item in rd.flatten() {
            let name = item.file_name();
            let Some(id) = name.to_str().and_then(GenId::from_hex) else {
                continue;
            };
            if Some(&id) == current || id == *exclude || !self.has_complete(&id) {
                continue;
            }
            match self.load_manifest(&id) {
                Ok(m) => return Some((id, m)),
                Err(e) => log::warn!("not reusing generation {id}: {e}"),
            }
        }
        None
    }

    /// Starts staging generation `id` by taking over the complete, non-current generation
    /// `spare` whose manifest is `spare_manifest` (step 1, reusing layout): its directory is
    /// renamed to the staging name — from that instant it is no longer a generation, and a
    /// crash leaves a staging directory that [`GenStore::open`] removes — and its manifest
    /// file is removed. The caller then only changes what differs between `spare_manifest`
    /// and `manifest` ([`Staging::base`]).
    ///
    /// The spare is audited on disk first (see below) unless both of these hold: its inotify
    /// watch, kept since it was current, has seen nothing (nothing changed through its own
    /// paths), and `current_intact`, which the caller sets when [`GenStore::check_generation`]
    /// just confirmed the current generation (the files the spare shares with it as hard links
    /// were not changed through the current generation's paths either).
    pub fn stage_reusing(
        &self,
        id: GenId,
        manifest: Manifest,
        spare: GenId,
        spare_manifest: Manifest,
        current_intact: bool,
    ) -> Result<Staging<'_>, TreeError> {
        if self.current_id().ok().flatten() == Some(spare) {
            return Err(TreeError::Layout {
                path: self.gen_dir(&spare),
                reason: "the current generation cannot be reused for staging".into(),
            });
        }
        let dir = self.staging_dir(&id);
        if dir.exists() {
            self.trash(&dir)?;
        }
        // Asked before the rename below, which is itself an event of that watch.
        let previous_unchanged = self.previous_unchanged(&spare);
        let unchanged = current_intact && previous_unchanged;
        let from = self.gen_dir(&spare);
        fs::rename(&from, &dir).map_err(|e| TreeError::io("rename for staging", &from, e))?;
        let mpath = self.manifest_path(&spare);
        match fs::remove_file(&mpath) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TreeError::io("remove", &mpath, e)),
        }
        // The reused generation may have been changed in place since its manifest was written
        // (an application writes into `current` while this node is master, and a linked inode
        // is shared with the generation after it). Its manifest is therefore only a claim: every
        // entry on disk is checked against it (rsync's quick check: kind, size, mtime, mode) and
        // whatever differs, is missing or is not listed leaves the tree now; the base is what
        // passed. Directories may be read-only (their mode is part of the manifest); they are
        // made writable so entries can be replaced. Commit sets every directory's mode again.
        make_dir_writable(&dir)?;
        if unchanged {
            // Nothing to audit; only directories that their mode keeps us from filling are
            // opened up (commit sets every directory's mode again).
            for e in &spare_manifest.entries {
                if matches!(e.kind, EntryKind::Dir) && e.meta.mode & 0o700 != 0o700 {
                    make_dir_writable(&dir.join(&e.path))?;
                }
            }
            return Ok(Staging::new(self, id, manifest, spare_manifest, dir));
        }
        self.audited_staging(id, manifest, dir, spare_manifest)
    }

    /// Audits the tree at `dir` against `spare_manifest` ([`GenStore::audit_reused`]: what does
    /// not match leaves the tree) and makes it the staging of `id` with what passed as its base.
    fn audited_staging(
        &self,
        id: GenId,
        manifest: Manifest,
        dir: PathBuf,
        spare_manifest: Manifest,
    ) -> Result<Staging<'_>, TreeError> {
        let mut kept = std::collections::HashSet::new();
        self.audit_reused(&dir, "", &spare_manifest, &mut kept)?;
        let base = Manifest {
            root: spare_manifest.root,
            entries: spare_manifest
                .entries
                .into_iter()
                .filter(|e| kept.contains(e.path.as_str()))
                .collect(),
        };
        if base.entries.len() != kept.len() {
            return Err(TreeError::Layout {
                path: dir,
                reason: "reused generation audit lost track of its entries".into(),
            });
        }
        Ok(Staging::new(self, id, manifest, base, dir))
    }
}

/// Whether what is on disk at `path` still is `entry` by rsync's quick check: the same kind, and
/// for a file the same size, mtime and permission bits, for a symlink the same target. Content
/// changed without changing size or mtime is not seen (as with rsync without `--checksum`).
pub fn matches_disk(entry: &Entry, path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(md) => matches_meta(entry, path, &md),
        Err(_) => false,
    }
}

fn matches_meta(entry: &Entry, path: &Path, md: &fs::Metadata) -> bool {
    let ft = md.file_type();
    match &entry.kind {
        EntryKind::Dir => ft.is_dir(),
        EntryKind::Symlink { target } => {
            ft.is_symlink() && fs::read_link(path).is_ok_and(|t| t.as_os_str() == target.as_str())
        }
        EntryKind::File { size, .. } => {
            ft.is_file()
                && md.len() == *size
                && md.mtime() == entry.meta.mtime
                && md.mtime_nsec() == i64::from(entry.meta.mtime_nsec)
                && md.mode() & 0o7777 == entry.meta.mode & 0o7777
        }
    }
}

/// The entries of `manifest` that are on disk below `dir` as listed ([`matches_disk`]): what a
/// generation that may have been changed in place can still serve as (links, prefixes).
pub fn verified(dir: &Path, manifest: &Manifest) -> Manifest {
    Manifest {
        root: manifest.root,
        entries: manifest
            .entries
            .iter()
            .filter(|e| matches_disk(e, &dir.join(&e.path)))
            .cloned()
            .collect(),
    }
}

fn make_dir_writable(p: &Path) -> Result<(), TreeError> {
    let md = fs::symlink_metadata(p).map_err(|e| TreeError::io("stat", p, e))?;
    if md.mode() & 0o700 != 0o700 {
        fs::set_permissions(p, fs::Permissions::from_mode(0o700))
            .map_err(|e| TreeError::io("chmod", p, e))?;
    }
    Ok(())
}

impl GenStore {
    /// Walks a reused generation's directory `abs` (relative path `rel`): entries that match
    /// `m` stay (their paths go into `kept`), anything else is moved to the trash.
    fn audit_reused(
        &self,
        abs: &Path,
        rel: &str,
        m: &Manifest,
        kept: &mut std::collections::HashSet<String>,
    ) -> Result<(), TreeError> {
        let rd = fs::read_dir(abs).map_err(|e| TreeError::io("read directory", abs, e))?;
        for item in rd {
            let item = item.map_err(|e| TreeError::io("read directory", abs, e))?;
            let p = item.path();
            let name = item.file_name();
            let listed = name.to_str().and_then(|n| {
                let r = if rel.is_empty() {
                    n.to_string()
                } else {
                    format!("{rel}/{n}")
                };
                m.get(&r).map(|e| (r, e))
            });
            let ok = match (&listed, fs::symlink_metadata(&p)) {
                (Some((_, e)), Ok(md)) => matches_meta(e, &p, &md),
                _ => false,
            };
            match listed {
                Some((r, e)) if ok => {
                    if matches!(e.kind, EntryKind::Dir) {
                        make_dir_writable(&p)?;
                        self.audit_reused(&p, &r, m, kept)?;
                    }
                    kept.insert(r);
                }
                _ => self.trash(&p)?,
            }
        }
        Ok(())
    }
}

/// A generation being built; dropped without [`Staging::commit`] it is removed again.
#[derive(Debug)]
pub struct Staging<'s> {
    store: &'s GenStore,
    id: GenId,
    manifest: Manifest,
    base: Manifest,
    dir: PathBuf,
    committed: bool,
    recycler: Recycler,
}

impl<'s> Staging<'s> {
    /// The staging of generation `id` (`manifest`) in `dir`, which holds `base` already.
    fn new(
        store: &'s GenStore,
        id: GenId,
        manifest: Manifest,
        base: Manifest,
        dir: PathBuf,
    ) -> Self {
        Staging {
            store,
            id,
            manifest,
            base,
            recycler: Recycler::new(recycle_dir(&dir)),
            dir,
            committed: false,
        }
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest being staged.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the staging directory already holds: empty for [`GenStore::stage`], the reused
    /// generation's manifest for [`GenStore::stage_reusing`].
    pub fn base(&self) -> &Manifest {
        &self.base
    }

    /// Removes every entry of [`Staging::base`] that is not exactly the same entry in the new
    /// manifest (a directory that goes goes whole, by one rename), and creates the
    /// new manifest's directories that are missing. Afterwards every non-directory entry of
    /// the new manifest that is also in the base, unchanged, is in place; everything else is
    /// absent and must be linked, copied, received or created. Returns (entries kept in place,
    /// entries removed).
    ///
    /// A file is never changed in place: its inode may be shared (hard link) with the current
    /// generation, so a changed file is removed here and a new inode takes its place.
    pub fn prepare(&self) -> Result<(u64, u64), TreeError> {
        let (mut kept, mut removed) = (0u64, 0u64);
        // Entries leave by a rename into the trash (a directory with all it holds at once);
        // their space is freed after the switch, off the critical path.
        let mut gone_dirs: std::collections::HashSet<&str> = std::collections::HashSet::new();
        // Both lists are sorted by path: one pass over each (merge joins).
        let mut new_c = self.manifest.cursor();
        for b in &self.base.entries {
            let inside_gone = b
                .path
                .match_indices('/')
                .any(|(i, _)| gone_dirs.contains(b.path.get(..i).unwrap_or_default()));
            if inside_gone {
                continue;
            }
            let keep = match (new_c.get(&b.path), &b.kind) {
                (Some(n), EntryKind::Dir) => matches!(n.kind, EntryKind::Dir),
                (Some(n), _) => n == b,
                (None, _) => false,
            };
            if keep {
                if !matches!(b.kind, EntryKind::Dir) {
                    kept += 1;
                }
                continue;
            }
            let p = self.path_of(&b.path);
            if matches!(b.kind, EntryKind::Dir) {
                gone_dirs.insert(&b.path);
                self.store.trash(&p)?;
            } else {
                let md = fs::symlink_metadata(&p);
                // A large file no other generation links: its inode is overwritten by a file
                // this round writes, instead of being freed (see crate::tree::recycle).
                let recycled = matches!(b.kind, EntryKind::File { .. })
                    && md.as_ref().is_ok_and(|md| self.recycler.keep(&p, md));
                if !recycled {
                    self.store.discard(&p, md)?;
                }
            }
            removed += 1;
        }
        let mut base_c = self.base.cursor();
        for e in &self.manifest.entries {
            if matches!(e.kind, EntryKind::Dir)
                && !base_c
                    .get(&e.path)
                    .is_some_and(|b| matches!(b.kind, EntryKind::Dir))
            {
                let p = self.path_of(&e.path);
                fs::create_dir(&p).map_err(|err| TreeError::io("create directory", &p, err))?;
            }
        }
        Ok((kept, removed))
    }

    /// A file to write a new file of `size` bytes into, at `dst`: the inode of a file this
    /// round removed, overwritten instead of freed (see crate::tree::recycle), open for writing
    /// at its start, with its length now (bytes past what the caller writes must be cut off by
    /// it). `None`: the caller creates the file.
    pub(crate) fn recycled_file(&self, dst: &Path, size: u64) -> Option<(File, u64)> {
        self.recycler.take(dst, size)
    }

    /// Files written into recycled inodes so far (see `crate::tree::recycle`).
    pub fn files_recycled(&self) -> u64 {
        self.recycler.taken()
    }

    /// Recycled inodes not used go to the trash with their directory.
    fn release_recycled(&self) {
        if let Err(e) = self.store.trash(self.recycler.dir()) {
            log::warn!("{e}");
        }
    }

    /// Whether entry `rel` of the new manifest is already in place (see [`Staging::prepare`]).
    pub fn in_place(&self, entry: &Entry) -> bool {
        !matches!(entry.kind, EntryKind::Dir) && self.base.get(&entry.path) == Some(entry)
    }

    /// Where entry `rel` goes in the staging tree.
    pub fn path_of(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Creates every directory of the manifest (owner-writable for now; step 3 sets the modes).
    pub fn create_dirs(&self) -> Result<(), TreeError> {
        for e in &self.manifest.entries {
            if matches!(e.kind, EntryKind::Dir) {
                let p = self.path_of(&e.path);
                fs::create_dir(&p).map_err(|err| TreeError::io("create directory", &p, err))?;
            }
        }
        Ok(())
    }

    /// Hard-links an unchanged file from `src` (content and metadata identical). Returns
    /// `false` when `src` is gone (removed since it was checked): the caller fetches the file.
    pub fn link_from(&self, entry: &Entry, src: &Path) -> Result<bool, TreeError> {
        let dst = self.path_of(&entry.path);
        match fs::hard_link(src, &dst) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !src.exists() => Ok(false),
            Err(e) => Err(TreeError::io("hard link", &dst, e)),
        }
    }

    /// Copies a file with the same content from `src` and gives it `entry`'s metadata. Returns
    /// `false` when `src` is gone: the caller fetches the file.
    pub fn copy_from(&self, entry: &Entry, src: &Path) -> Result<bool, TreeError> {
        let dst = self.path_of(&entry.path);
        let mut from = match File::open(src) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(TreeError::io("open", src, e)),
        };
        let mut to = File::create(&dst).map_err(|e| TreeError::io("create", &dst, e))?;
        std::io::copy(&mut from, &mut to).map_err(|e| TreeError::io("copy to", &dst, e))?;
        apply_file_meta(&to, &dst, &entry.meta)?;
        Ok(true)
    }

    /// Creates a symlink entry.
    pub fn symlink(&self, entry: &Entry) -> Result<(), TreeError> {
        let EntryKind::Symlink { target } = &entry.kind else {
            return Err(TreeError::InvalidManifest(format!(
                "{:?} is not a symlink",
                entry.path
            )));
        };
        let dst = self.path_of(&entry.path);
        std::os::unix::fs::symlink(target, &dst)
            .map_err(|e| TreeError::io("create symlink", &dst, e))?;
        apply_symlink_meta(&dst, &entry.meta)
    }

    /// Moves a complete, verified file (normally in `.partial/`) into the staging tree after
    /// giving it `entry`'s metadata.
    pub fn install(&self, entry: &Entry, file: &File, from: &Path) -> Result<(), TreeError> {
        apply_file_meta(file, from, &entry.meta)?;
        if self.store.options.fsync {
            start_writeback(file);
        }
        let dst = self.path_of(&entry.path);
        fs::rename(from, &dst).map_err(|e| TreeError::io("rename into staging", &dst, e))
    }

    /// Steps 3 to 7: directory metadata, manifest, fsync, rename, switch, garbage collection.
    pub fn commit(mut self) -> Result<CommitTimes, TreeError> {
        let mut times = CommitTimes::default();
        let t = Instant::now();
        for e in self.manifest.entries.iter().rev() {
            if matches!(e.kind, EntryKind::Dir) {
                let p = self.path_of(&e.path);
                apply_dir_meta(&p, &e.meta)?;
            }
        }
        apply_dir_meta(&self.dir, &self.manifest.root)?;
        // Not fsynced here: the syncfs below covers it.
        let manifest = std::sync::Arc::new(std::mem::take(&mut self.manifest));
        self.store.write_manifest(&self.id, &manifest, false)?;
        times.finish = t.elapsed();
        let t = Instant::now();
        if self.store.options.fsync {
            syncfs(&self.dir)?;
        }
        times.sync = t.elapsed();
        let t = Instant::now();
        let final_dir = self.store.gen_dir(&self.id);
        if final_dir.exists() {
            // A generation of this id changed in place (see the puller): moved away in one
            // rename, so `current` dangles only between two renames.
            self.store.trash(&final_dir)?;
        }
        fs::rename(&self.dir, &final_dir).map_err(|e| TreeError::io("rename", &final_dir, e))?;
        self.committed = true;
        if self.store.options.fsync {
            fsync_dir(&self.store.root.join(GENS_DIR))?;
        }
        let keep = self.store.switch_only(&self.id)?;
        times.switch = t.elapsed();
        self.release_recycled();
        let mirror_of = std::sync::Arc::clone(&manifest);
        self.store.arm_in_background(self.id, manifest);
        let t = Instant::now();
        self.store.gc(&keep)?;
        times.gc = t.elapsed();
        if keep.len() == 1 && self.store.options.reuse {
            // No earlier generation for the next round to reuse: prepare one meanwhile.
            self.store.mirror_in_background(self.id, mirror_of);
        }
        Ok(times)
    }
}

/// Wall time of the steps of [`Staging::commit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitTimes {
    /// Step 3 and the manifest: directory metadata, manifest written.
    pub finish: Duration,
    /// Step 4: making the staged tree durable.
    pub sync: Duration,
    /// Steps 5 and 6: rename into place, switch `current`.
    pub switch: Duration,
    /// Step 7: removing generations no longer kept.
    pub gc: Duration,
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = remove_tree(&self.dir) {
                log::warn!("could not remove staging directory: {e}");
            }
            self.release_recycled();
        }
    }
}

fn system_time(secs: i64, nsec: u32) -> SystemTime {
    let nsec = nsec.min(999_999_999);
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nsec)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(nsec as u64)
    }
}

fn chown_if_needed(file: &File, path: &Path, meta: &Meta) -> Result<(), TreeError> {
    let md = file
        .metadata()
        .map_err(|e| TreeError::io("stat", path, e))?;
    if md.uid() != meta.uid || md.gid() != meta.gid {
        match std::os::unix::fs::fchown(file, Some(meta.uid), Some(meta.gid)) {
            Ok(()) => {}
            // A puller that is not root cannot give files away: keep its own ownership.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(TreeError::io("chown", path, e)),
        }
    }
    Ok(())
}

/// Owner, mode, then mtime (chown clears setuid bits, so it comes first).
fn apply_file_meta(file: &File, path: &Path, meta: &Meta) -> Result<(), TreeError> {
    chown_if_needed(file, path, meta)?;
    file.set_permissions(fs::Permissions::from_mode(meta.mode))
        .map_err(|e| TreeError::io("chmod", path, e))?;
    let t = system_time(meta.mtime, meta.mtime_nsec);
    file.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .map_err(|e| TreeError::io("set mtime", path, e))
}

fn apply_dir_meta(path: &Path, meta: &Meta) -> Result<(), TreeError> {
    let f = File::open(path).map_err(|e| TreeError::io("open directory", path, e))?;
    apply_file_meta(&f, path, meta)
}

fn apply_symlink_meta(path: &Path, meta: &Meta) -> Result<(), TreeError> {
    match std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(TreeError::io("lchown", path, e)),
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| TreeError::io("set mtime", path, std::io::ErrorKind::InvalidInput.into()))?;
    let ts = libc::timespec {
        tv_sec: meta.mtime as libc::time_t,
        tv_nsec: meta.mtime_nsec.min(999_999_999) as libc::c_long,
    };
    let times = [ts, ts];
    // SAFETY: `c` is a valid NUL-terminated path and `times` two initialised timespecs that live
    // across the call; AT_SYMLINK_NOFOLLOW makes the call touch the link itself.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(TreeError::io(
            "set symlink mtime",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Where a staging directory's recycled inodes are kept (see crate::tree::recycle): beside it,
/// named after it, so a crash leaves it to [`GenStore::open`]'s removal of staging leftovers.
fn recycle_dir(staging: &Path) -> PathBuf {
    let mut name = staging.as_os_str().to_owned();
    name.push(".recycle");
    PathBuf::from(name)
}

/// Starts writing a file's dirty data back now, without waiting, so that the final flush
/// (step 4) finds most of it already on its way while later files are still being received.
/// Called when a file is installed, and also while it is still being written (a copied prefix,
/// every few MiB of a large file received): pages already on their way are not sent twice.
pub(crate) fn start_writeback(file: &File) {
    // SAFETY: sync_file_range on a descriptor we own; offset 0 and length 0 mean the whole
    // file; no memory is passed. A failure only loses the head start (step 4 still flushes).
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

fn fsync_dir(path: &Path) -> Result<(), TreeError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TreeError::io("fsync directory", path, e))
}

fn syncfs(path: &Path) -> Result<(), TreeError> {
    let f = File::open(path).map_err(|e| TreeError::io("open", path, e))?;
    // SAFETY: syncfs on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(TreeError::io(
            "syncfs",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Removes a file or a whole tree, making read-only directories writable first if needed (a
/// generation may hold `0555` directories that a non-root puller cannot empty otherwise).
pub fn remove_tree(path: &Path) -> Result<(), TreeError> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TreeError::io("stat", path, e)),
    };
    if !md.is_dir() {
        return fs::remove_file(path).map_err(|e| TreeError::io("remove", path, e));
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_writable(path);
    fs::remove_dir_all(path).map_err(|e| TreeError::io("remove directory", path, e))
}

fn make_writable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(rd) = fs::read_dir(dir) {
        for item in rd.flatten() {
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&item.path());
            }
        }
    }
}

/// Puts the first `len` bytes of `src` at the start of the empty file `dst` without passing them
/// through user space, leaving `dst`'s offset at `len`: a reflink (`FICLONE`, shared blocks,
/// nothing written) where the filesystem has it and `src` is exactly `len` bytes long, else
/// `copy_file_range(2)` through `std::io::copy` (an in-kernel copy). Fails if `src` is shorter.
pub fn clone_prefix(src: &Path, len: u64, dst: &File) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let from = File::open(src)?;
    let have = from.metadata()?.len();
    if have < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} is shorter than {len} bytes", src.display()),
        ));
    }
    if have == len {
        // SAFETY: ioctl FICLONE with two descriptors we own; the argument is the source
        // descriptor by value, no memory is passed. On failure nothing was changed.
        let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) };
        if rc == 0 {
            let mut d = dst;
            d.seek(SeekFrom::Start(len))?;
            return Ok(());
        }
    }
    let mut d = dst;
    let copied = std::io::copy(&mut (&from).take(len), &mut d)?;
    if copied != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} is shorter than {len} bytes", src.display()),
        ));
    }
    Ok(())
}

/// Reads a file's first `len` bytes into `w`, feeding them to `hasher` too; fails if the file is
/// shorter.
pub fn copy_prefix(
    src: &Path,
    len: u64,
    w: &mut impl Write,
    hasher: &mut blake3::Hasher,
) -> std::io::Result<()> {
    let f = File::open(src)?;
    let mut r = f.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        w.write_all(chunk)?;
        done += n as u64;
    }
    if done != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} is shorter than {len} bytes", src.display()),
        ));
    }
    Ok(())
}
