//! Writing a round's large new files into the inodes of the files it removes.
//!
//! When a generation is reused ([`super::store`], step 1), the files that changed since it was
//! current leave its tree; those that no other generation links (one link: the older version of
//! a file changed in the last round, a file deleted then) would be freed after the switch. The
//! same round writes about as many megabytes into new files (received voice files, copies of
//! appended ones). Overwriting a leaving inode instead of creating one writes into page-cache
//! pages that already exist, over blocks already allocated: no page allocation, no block
//! allocation now and no freeing later. On the development VM, whose host takes back free guest
//! memory (free page reporting), freshly allocated pages cost a host fault each: receiving a
//! 7 MB voice file took 21-29 ms of CPU in rounds that met such pages against 4-7 ms in rounds
//! that did not (thread CPU time, same data), the main cause of the round-to-round spread.
//! RocksDB recycles its log files for the same reasons (`recycle_log_file_num`).
//!
//! A leaving inode is taken only when it is certainly nobody else's:
//! - one link: no generation (nor anything else) names it, and once it is renamed into the
//!   staging's private recycle directory no reader can find it by name;
//! - a write lease (`fcntl(F_SETLEASE, F_WRLCK)`) is granted on it: the kernel grants one only
//!   when no other open file description exists for the inode (a reader that opened the file
//!   while it was in its generation, or mapped it, and still holds it: "a reader that must hold
//!   a generation longer keeps its files open", see [`super::store`]). The lease is released at
//!   once; nobody can open the file afterwards, having no name for it. Without lease support
//!   (another filesystem, no permission) nothing is recycled;
//! - no extended attributes (ACLs, labels, capabilities, user attributes set on a file of
//!   `current`): a file the store creates has none, and a recycled one must not bring any along
//!   (owner, mode and times are set on every received file anyway). A system that labels every
//!   file (SELinux) therefore recycles nothing.
//!
//! Only files of at least [`RECYCLE_MIN`] bytes are kept (a small file's single page is not
//! worth a rename), at most [`RECYCLE_MAX`] of them; what is not taken goes to the trash with the
//! recycle directory when the round ends (or is trashed with the other leftovers by the next
//! [`super::store::GenStore::open`] after a crash). A taken file is cut to at most the size it
//! will have and overwritten from its start; its old bytes past what was written are never part
//! of any generation (a received file is installed only complete and verified; an interrupted
//! one is cut back to what was written, so it stays a valid prefix for the next round).
use std::fs::{File, Metadata, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Smallest file kept for recycling.
pub const RECYCLE_MIN: u64 = 256 << 10;
/// Most files kept for recycling in one round.
pub const RECYCLE_MAX: usize = 256;

/// The leaving inodes of one staging (see the module documentation).
#[derive(Debug)]
pub(crate) struct Recycler {
    dir: PathBuf,
    pool: Mutex<Vec<(PathBuf, u64)>>,
    seq: AtomicU64,
    taken: AtomicU64,
}

impl Recycler {
    /// Keeps files in `dir` (created when the first one comes).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Recycler {
            dir,
            pool: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    /// The directory the kept files are in (to be trashed when the round ends).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Files handed out by [`Recycler::take`].
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Keeps the leaving file at `path` (its metadata `md`, not followed) if it qualifies:
    /// moved into the recycle directory, `true`; else untouched, `false`.
    pub(crate) fn keep(&self, path: &Path, md: &Metadata) -> bool {
        if !md.is_file() || md.nlink() != 1 || md.len() < RECYCLE_MIN {
            return false;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= RECYCLE_MAX {
            return false;
        }
        if pool.is_empty() {
            match std::fs::create_dir(&self.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => return false,
            }
        }
        let to = self
            .dir
            .join(self.seq.fetch_add(1, Ordering::Relaxed).to_string());
        if std::fs::rename(path, &to).is_err() {
            return false;
        }
        pool.push((to, md.len()));
        true
    }

    /// A kept file to write a new file of `size` bytes into, renamed to `dst` (replacing what
    /// was there), open for writing at its start and cut to at most `size` bytes; with its
    /// length now (old bytes the writer overwrites). `None`: none fits or none is certainly
    /// unshared (see the module documentation); the caller creates a file as usual.
    pub(crate) fn take(&self, dst: &Path, size: u64) -> Option<(File, u64)> {
        if size < RECYCLE_MIN {
            return None;
        }
        let (path, len) = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            // The smallest that holds it all, else the largest: as many old pages reused as
            // possible, as few cut off.
            let fits = pool
                .iter()
                .enumerate()
                .filter(|(_, (_, l))| *l >= size)
                .min_by_key(|(_, (_, l))| *l)
                .or_else(|| pool.iter().enumerate().max_by_key(|(_, (_, l))| *l))
                .map(|(i, _)| i)?;
            pool.swap_remove(fits)
        };
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        if !exclusive(&f) {
            // Held by someone: it stays in the recycle directory and leaves with it.
            return None;
        }
        std::fs::rename(&path, dst).ok()?;
        let len = if len > size {
            f.set_len(size).ok()?;
            size
        } else {
            len
        };
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some((f, len))
    }
}

/// Whether `f` (open read-write) is a regular file with one link and no extended attributes
/// that nobody else has open or mapped: a write lease is granted only then (fs/locks.c,
/// `check_conflicting_open`: the inode's writers and readers must be ours alone). Released at
/// once.
fn exclusive(f: &File) -> bool {
    match f.metadata() {
        Ok(md) if md.is_file() && md.nlink() == 1 => {}
        _ => return false,
    }
    let fd = f.as_raw_fd();
    // SAFETY: flistxattr with a null buffer and size 0 only returns the size the list of names
    // would need (0: none); no memory is written.
    if unsafe { libc::flistxattr(fd, std::ptr::null_mut(), 0) } != 0 {
        return false;
    }
    // SAFETY: fcntl F_SETLEASE on a descriptor we own, with an integer argument; no memory is
    // passed. A refusal (EAGAIN: open elsewhere; EACCES, EINVAL: no leases here) changes nothing.
    let granted = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) } == 0;
    if granted {
        // SAFETY: as above; releases the lease just taken.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory and a recycler keeping files in it.
    fn fresh() -> (tempfile::TempDir, Recycler) {
        let t = tempfile::tempdir().unwrap();
        let r = Recycler::new(t.path().join("recycle"));
        (t, r)
    }

    /// Keeps `p` for recycling, which must succeed.
    fn keep(r: &Recycler, p: &Path) {
        let md = std::fs::symlink_metadata(p).unwrap();
        assert!(r.keep(p, &md), "{}", p.display());
    }

    fn big(dir: &Path, name: &str, len: usize, byte: u8) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, vec![byte; len]).unwrap();
        p
    }

    #[test]
    fn keeps_only_large_unlinked_files_and_hands_out_the_best_fit() {
        let (t, r) = fresh();
        let small = big(t.path(), "small", 1000, 1);
        let linked = big(t.path(), "linked", 300 << 10, 2);
        std::fs::hard_link(&linked, t.path().join("linked2")).unwrap();
        let a = big(t.path(), "a", 400 << 10, 3);
        let b = big(t.path(), "b", 1 << 20, 4);
        for p in [&small, &linked, &a, &b] {
            let md = std::fs::symlink_metadata(p).unwrap();
            let kept = r.keep(p, &md);
            assert_eq!(kept, p == &a || p == &b, "{}", p.display());
            assert_eq!(p.exists(), !kept);
        }
        // Too small a request: a fresh file is cheaper.
        assert!(r.take(&t.path().join("x"), 1000).is_none());
        // 300 KiB: the 400 KiB one fits best, cut to 300 KiB, its old bytes still there.
        let (f, len) = r.take(&t.path().join("x"), 300 << 10).unwrap();
        assert_eq!(len, 300 << 10);
        assert_eq!(f.metadata().unwrap().len(), 300 << 10);
        assert_eq!(std::fs::read(t.path().join("x")).unwrap()[0], 3);
        // 2 MiB: none holds it, the largest is given (and not cut).
        let (_, len) = r.take(&t.path().join("y"), 2 << 20).unwrap();
        assert_eq!(len, 1 << 20);
        assert_eq!(r.taken(), 2);
        assert!(r.take(&t.path().join("z"), 300 << 10).is_none());
    }

    /// A file with an extended attribute (an ACL, a label, a user attribute) is not taken: the
    /// new file must not inherit it.
    #[test]
    fn a_file_with_extended_attributes_is_not_taken() {
        let (t, r) = fresh();
        let a = big(t.path(), "a", 400 << 10, 5);
        let name = std::ffi::CString::new(a.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: setxattr with NUL-terminated name and path and a 3-byte value we own.
        let rc = unsafe {
            libc::setxattr(
                name.as_ptr(),
                c"user.acl-ish".as_ptr(),
                b"yes".as_ptr().cast(),
                3,
                0,
            )
        };
        if rc != 0 {
            eprintln!("no user xattrs on this filesystem: skipping");
            return;
        }
        keep(&r, &a);
        assert!(r.take(&t.path().join("x"), 400 << 10).is_none());
        // The same without it: taken.
        let b = big(t.path(), "b", 400 << 10, 6);
        keep(&r, &b);
        assert!(r.take(&t.path().join("y"), 400 << 10).is_some());
    }

    /// A file someone still has open (a reader of an old generation) or mapped is never
    /// overwritten: the lease is refused and the file stays where it is.
    #[test]
    fn a_file_open_or_mapped_elsewhere_is_not_taken() {
        let (t, r) = fresh();
        let a = big(t.path(), "a", 400 << 10, 7);
        let reader = File::open(&a).unwrap();
        keep(&r, &a);
        assert!(r.take(&t.path().join("x"), 400 << 10).is_none());
        assert!(!t.path().join("x").exists());
        drop(reader);

        let b = big(t.path(), "b", 400 << 10, 8);
        let f = File::open(&b).unwrap();
        // SAFETY: a shared read-only mapping of a file we just wrote; unmapped below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        drop(f);
        keep(&r, &b);
        assert!(r.take(&t.path().join("y"), 400 << 10).is_none());
        // SAFETY: the mapping made above, of that length.
        unsafe { libc::munmap(map, 4096) };
        // Nobody holds it any more: taken.
        let a2 = big(t.path(), "c", 400 << 10, 9);
        keep(&r, &a2);
        assert!(r.take(&t.path().join("z"), 400 << 10).is_some());
    }
}
