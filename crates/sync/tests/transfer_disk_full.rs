//! A full disk on the pulling side: the round fails with a clear error, the old generation stays
//! current and intact, nothing is left that keeps the disk full, and a later round that fits
//! succeeds. Needs root to mount a small tmpfs (unmounted by a guard); skipped otherwise.
mod transfer_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sync::transfer::puller::{is_storage_full, pull_once};
use sync::tree::store::GenStore;
use transfer_common::*;

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .ok()?
        .success();
    ok.then(|| Mount(dir.to_path_buf()))
}

#[test]
fn full_disk_keeps_the_old_generation() {
    let scratch = tempfile::tempdir().unwrap();
    let mnt = scratch.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let Some(_guard) = mount_tmpfs(&mnt, "4m") else {
        eprintln!("skipping: cannot mount a tmpfs (not root?)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "etc/a.conf", b"version 1\n");
    write(src.path(), "voice/one.wav", &noise(1, 1 << 20));
    let server = serve(src.path(), false);
    let cfg = pull_cfg(server.addr, key());
    let store = GenStore::open(mnt.join("store")).unwrap();
    let r1 = pull_once(&store, &cfg).unwrap();

    // 5 MiB more cannot fit in 4 MiB.
    write(src.path(), "etc/a.conf", b"version 2\n");
    write(src.path(), "voice/two.wav", &noise(2, 5 << 20));
    let err = pull_once(&store, &cfg).unwrap_err();
    assert!(is_storage_full(&err), "not reported as a full disk: {err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(store.current_id().unwrap(), r1.generation);
    let cur = current(&mnt.join("store"));
    assert_eq!(fs::read(cur.join("etc/a.conf")).unwrap(), b"version 1\n");
    assert_eq!(
        fs::read(cur.join("voice/one.wav")).unwrap(),
        noise(1, 1 << 20)
    );
    assert!(!cur.join("voice/two.wav").exists());

    // Once the source fits again, the next round succeeds: nothing was left filling the disk.
    fs::remove_file(src.path().join("voice/two.wav")).unwrap();
    write(src.path(), "etc/a.conf", b"version 3\n");
    pull_once(&store, &cfg).unwrap();
    assert_eq!(fs::read(cur.join("etc/a.conf")).unwrap(), b"version 3\n");
    assert!(tree_diff(src.path(), &cur).is_empty());
    drop(store);
    server.stop();
}
