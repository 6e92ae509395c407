//! Helpers shared by the transfer tests: building trees, serving them on loopback, comparing.
#![allow(dead_code)]
pub mod fake;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use sync::transfer::auth::{Identity, Key};
use sync::transfer::msg::BackupMode;
use sync::transfer::puller::{pull_once, PullConfig, RoundReport};
use sync::transfer::server::{ServedSet, Server, ServerConfig, ServerHandle};
use sync::transfer::{ServerTransport, TransferError};
use sync::tree::exclude::Excludes;
use sync::tree::manifest::Limits;
use sync::tree::store::GenStore;
use tempfile::TempDir;

pub const KEY: &[u8] = b"0123456789abcdef-test-key";

pub fn key() -> Key {
    Key::from_bytes(KEY).unwrap()
}

pub fn serve(root: &Path, watch: bool) -> ServerHandle {
    serve_transport(root, watch, ServerTransport::default())
}

/// Serves `root` as set "data" (excluding `*.tmp`) on a loopback port with `transport`.
pub fn serve_transport(root: &Path, watch: bool, transport: ServerTransport) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = ServerConfig {
        key: key(),
        identity: Identity::new("primary", BackupMode::Active),
        sets: vec![ServedSet {
            name: "data".into(),
            root: root.to_path_buf(),
            excludes: Excludes::new(["*.tmp"]),
            watch,
        }],
        max_connections: 8,
        io_timeout: Duration::from_secs(20),
        transport,
    };
    Server::new(cfg).spawn(listener).unwrap()
}

/// One loopback sync: a source tree (filled before the server starts), a server of it, a
/// puller configuration for it (plain, right key) and a generation store in its own directory.
/// Fields drop store first, source last.
pub struct Loopback {
    pub store: GenStore,
    pub cfg: PullConfig,
    pub server: ServerHandle,
    pub dst: TempDir,
    pub src: TempDir,
}

impl Loopback {
    /// A plain server of the tree `fill` writes.
    pub fn new(watch: bool, fill: impl FnOnce(&Path)) -> Loopback {
        Loopback::with_transport(watch, ServerTransport::default(), fill)
    }

    /// A server with `transport` of the tree `fill` writes.
    pub fn with_transport(
        watch: bool,
        transport: ServerTransport,
        fill: impl FnOnce(&Path),
    ) -> Loopback {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fill(src.path());
        let server = serve_transport(src.path(), watch, transport);
        let cfg = pull_cfg(server.addr, key());
        let store = GenStore::open(dst.path()).unwrap();
        Loopback {
            store,
            cfg,
            server,
            dst,
            src,
        }
    }

    /// One pull round of `cfg` into `store`.
    pub fn pull(&self) -> Result<RoundReport, TransferError> {
        pull_once(&self.store, &self.cfg)
    }

    /// A round with `cfg` (a wrong key) fails authentication and leaves no trace on either
    /// side: no generation in the store, no peer recorded by the server.
    pub fn assert_auth_refused(&self) {
        let err = self.pull().unwrap_err();
        assert!(matches!(err, TransferError::Auth(_)), "{err}");
        assert!(self.store.current_id().unwrap().is_none());
        assert!(self.server.server.peers().is_empty());
    }
}

pub fn pull_cfg(addr: std::net::SocketAddr, key: Key) -> PullConfig {
    PullConfig {
        server: addr.to_string(),
        set: "data".into(),
        key,
        identity: Identity::new("standby", BackupMode::Passive),
        limits: Limits::default(),
        io_timeout: Duration::from_secs(20),
        use_delta: true,
        transport: Default::default(),
    }
}

pub fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap();
}

pub fn set_mtime(p: &Path, secs: u64, nsec: u32) {
    let f = fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| fs::File::open(p))
        .unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::new(secs, nsec))
        .unwrap();
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift), so content is not trivially compressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every difference between two trees (kind, content, mode, mtime, symlink target), ignoring
/// the generation store's own entries at the top of `b`'s store root.
pub fn tree_diff(a: &Path, b: &Path) -> Vec<String> {
    let mut out = Vec::new();
    cmp_entry(a, b, "", &mut out);
    out
}

fn cmp_entry(a: &Path, b: &Path, rel: &str, out: &mut Vec<String>) {
    // The replica's root is the `current` symlink: follow it, and only it.
    let stat = |p: &Path| {
        if rel.is_empty() {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        }
    };
    let (ma, mb) = match (stat(a), stat(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Ok(_), Err(_)) => return out.push(format!("missing in replica: {rel}")),
        (Err(_), Ok(_)) => return out.push(format!("extra in replica: {rel}")),
        (Err(_), Err(_)) => return,
    };
    if ma.file_type() != mb.file_type() {
        return out.push(format!("kind differs: {rel}"));
    }
    let ft = ma.file_type();
    if !ft.is_symlink() && ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        out.push(format!(
            "mode {:o} vs {:o}: {rel}",
            ma.mode() & 0o7777,
            mb.mode() & 0o7777
        ));
    }
    if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        out.push(format!("mtime differs: {rel}"));
    }
    if ft.is_symlink() {
        if fs::read_link(a).unwrap() != fs::read_link(b).unwrap() {
            out.push(format!("target differs: {rel}"));
        }
    } else if ft.is_file() {
        if fs::read(a).unwrap() != fs::read(b).unwrap() {
            out.push(format!("content differs: {rel}"));
        }
    } else if ft.is_dir() {
        let names = |d: &Path| {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.ends_with(".tmp"))
                .collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        for n in na.iter().chain(nb.iter().filter(|n| !na.contains(n))) {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            cmp_entry(&a.join(n), &b.join(n), &r, out);
        }
    }
}

/// What `rsync -a --dry-run --itemize-changes` would still change (empty when equal), or
/// `None` if rsync is not installed.
pub fn rsync_itemize(src: &Path, dst: &Path) -> Option<String> {
    let out = Command::new("rsync")
        .args([
            "-a",
            "--delete",
            "--dry-run",
            "--itemize-changes",
            "--exclude=*.tmp",
        ])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn current(store_root: &Path) -> PathBuf {
    store_root.join("current")
}
