//! Loopback integration tests: a real server on 127.0.0.1 and a real puller into a generation
//! store; the replica is compared with the source by our own walk and by rsync's itemize.
mod transfer_common;

use std::fs;
use std::os::unix::fs::symlink;

use sync::transfer::auth::Key;
use sync::transfer::puller::pull_once;
use sync::tree::store::GenStore;
use transfer_common::*;

fn assert_same(src: &std::path::Path, store_root: &std::path::Path) {
    let cur = current(store_root);
    let d = tree_diff(src, &cur);
    assert!(d.is_empty(), "replica differs: {d:#?}");
    if let Some(items) = rsync_itemize(src, &cur) {
        assert!(items.trim().is_empty(), "rsync would change:\n{items}");
    } else {
        eprintln!("rsync not installed: skipping the rsync comparison");
    }
}

/// `assert_same` for a fixture: its replica equals its source.
fn assert_replica(lb: &Loopback) {
    assert_same(lb.src.path(), lb.dst.path());
}

fn build_source(src: &std::path::Path) {
    write(src, "etc/pbx.conf", b"[general]\nport=5060\n");
    write(src, "etc/users/100.conf", b"user 100\n");
    write(src, "etc/users/101.conf", b"user 101\n");
    write(src, "etc/empty", b"");
    write(src, "voice/greeting.wav", &noise(1, 3 << 20));
    write(src, "voice/menu.wav", &noise(2, 700_000));
    write(src, "scratch.tmp", b"excluded");
    fs::create_dir_all(src.join("spool/empty-dir")).unwrap();
    symlink("users/100.conf", src.join("etc/default.conf")).unwrap();
    symlink("../voice", src.join("etc/voice-link")).unwrap();
    chmod(&src.join("etc/users/101.conf"), 0o600);
    chmod(&src.join("voice/menu.wav"), 0o640);
    set_mtime(&src.join("etc/pbx.conf"), 1_600_000_000, 123_456_789);
    chmod(&src.join("spool"), 0o750);
}

#[test]
fn full_then_incremental_rounds_reproduce_the_source() {
    let lb = Loopback::new(false, build_source);

    // Round 1: everything is new.
    let r1 = lb.pull().unwrap();
    assert!(r1.changed);
    assert_eq!(r1.files_fetched, 6, "{r1}");
    assert!(!current(lb.dst.path()).join("scratch.tmp").exists());
    assert_replica(&lb);

    // Round 2: nothing changed: a generation compare, not a file list.
    let r2 = lb.pull().unwrap();
    assert!(!r2.changed);
    assert_eq!(r2.generation, r1.generation);
    assert!(r2.bytes_received + r2.bytes_sent < 1024, "{r2}");

    // Round 3: changed, deleted, renamed, new, chmod, touch, symlink retargeted, dir removed.
    let s = lb.src.path();
    write(s, "etc/pbx.conf", b"[general]\nport=5061\n");
    fs::remove_file(s.join("etc/users/101.conf")).unwrap();
    fs::rename(s.join("voice/menu.wav"), s.join("voice/main-menu.wav")).unwrap();
    write(s, "etc/users/102.conf", b"user 102\n");
    write(s, "new/dir/deep.conf", b"deep\n");
    chmod(&s.join("etc/users/100.conf"), 0o644);
    set_mtime(&s.join("etc/empty"), 1_500_000_000, 5);
    fs::remove_file(s.join("etc/default.conf")).unwrap();
    symlink("users/102.conf", s.join("etc/default.conf")).unwrap();
    fs::remove_dir(s.join("spool/empty-dir")).unwrap();
    let mut grown = fs::read(s.join("voice/greeting.wav")).unwrap();
    grown.extend_from_slice(&noise(3, 100_000));
    fs::write(s.join("voice/greeting.wav"), &grown).unwrap();

    let old_gen = r1.generation.unwrap();
    let r3 = lb.pull().unwrap();
    assert!(r3.changed, "{r3}");
    assert_replica(&lb);
    // The rename is a local copy, the appended voice file costs only the appended bytes.
    assert_eq!(r3.files_fetched, 4, "{r3}");
    assert!(r3.bytes_received < 300_000, "{r3}");
    // The previous generation is still there, intact, for readers that resolved it.
    let prev = lb.store.gen_dir(&old_gen);
    assert_eq!(
        fs::read(prev.join("etc/users/101.conf")).unwrap(),
        b"user 101\n"
    );
    assert_eq!(
        fs::read(prev.join("etc/pbx.conf")).unwrap(),
        b"[general]\nport=5060\n"
    );

    // Round 4: back to an older shape is just another generation; the one before the previous
    // is garbage-collected.
    write(s, "etc/pbx.conf", b"[general]\nport=5062\n");
    let r4 = lb.pull().unwrap();
    assert_replica(&lb);
    assert!(
        !lb.store.gen_dir(&old_gen).exists(),
        "two generations back must be collected"
    );
    assert!(lb.store.gen_dir(&r3.generation.unwrap()).exists());

    // The server recorded the puller and its generation.
    let peers = lb.server.server.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].node_id, "standby");
    assert_eq!(peers[0].generation, r4.generation);
    assert!(peers[0].in_sync());
    lb.server.stop();
}

#[test]
fn changed_large_file_travels_as_delta() {
    let mut data = noise(7, 2 << 20);
    let lb = Loopback::new(true, |s| write(s, "big.bin", &data));
    lb.pull().unwrap();
    // Change a few bytes in the middle, same length: the prefix does not help, the delta does.
    data[1_000_000..1_000_010].copy_from_slice(b"0123456789");
    fs::write(lb.src.path().join("big.bin"), &data).unwrap();
    let r = lb.pull().unwrap();
    assert_replica(&lb);
    assert_eq!(r.files_fetched, 1);
    assert!(r.bytes_received < 100_000, "{r}");
    lb.server.stop();
}

#[test]
fn interrupted_file_resumes_from_partial_data() {
    let data = noise(9, 4 << 20);
    let lb = Loopback::new(false, |s| write(s, "voice/long.wav", &data));
    // What an interrupted round leaves: the first 3 MiB in .partial.
    fs::write(lb.store.partial_path("voice/long.wav"), &data[..3 << 20]).unwrap();
    let r = lb.pull().unwrap();
    assert_replica(&lb);
    assert!(r.bytes_received < (1 << 20) + 50_000, "{r}");
    // Partial data that does not match is not trusted: the file comes whole and correct.
    let dst2 = tempfile::tempdir().unwrap();
    let store2 = GenStore::open(dst2.path()).unwrap();
    fs::write(store2.partial_path("voice/long.wav"), noise(10, 1 << 20)).unwrap();
    let r = pull_once(&store2, &lb.cfg).unwrap();
    assert_same(lb.src.path(), dst2.path());
    assert!(r.bytes_received > 4 << 20, "{r}");
    assert_eq!(
        fs::read_dir(dst2.path().join(".partial")).unwrap().count(),
        0
    );
    lb.server.stop();
}

#[test]
fn wrong_key_gets_no_data() {
    let mut lb = Loopback::new(false, |s| write(s, "secret.conf", b"secret"));
    lb.cfg.key = Key::from_bytes(b"another key, 16+ bytes").unwrap();
    lb.assert_auth_refused();
    lb.server.stop();
}

#[test]
fn unknown_set_is_a_clear_error() {
    let mut lb = Loopback::new(false, |_| {});
    lb.cfg.set = "nope".into();
    let err = pull_once(&lb.store, &lb.cfg).unwrap_err();
    assert!(err.to_string().contains("unknown sync set"), "{err}");
    lb.server.stop();
}

#[test]
fn second_puller_on_the_same_store_is_refused() {
    let dst = tempfile::tempdir().unwrap();
    let _a = GenStore::open(dst.path()).unwrap();
    assert!(GenStore::open(dst.path()).is_err());
}

#[test]
fn named_sets_pull_independently_with_status() {
    use std::time::{Duration, Instant};
    use sync::syncset::{Direction, PullerSet, SyncSetConfig};
    use sync::transfer::auth::Identity;
    use sync::transfer::msg::BackupMode;
    use sync::transfer::server::{ServedSet, Server, ServerConfig};
    use sync::tree::exclude::Excludes;

    let cfg_src = tempfile::tempdir().unwrap();
    let voice_src = tempfile::tempdir().unwrap();
    write(cfg_src.path(), "pbx.conf", b"config");
    write(voice_src.path(), "msg.wav", &noise(4, 100_000));
    write(voice_src.path(), "msg.wav.part", b"ignored");
    let set = |name: &str, root: &std::path::Path, ex: &[&str]| ServedSet {
        name: name.into(),
        root: root.to_path_buf(),
        excludes: Excludes::new(ex.iter().copied()),
        watch: true,
    };
    let server = Server::new(ServerConfig {
        key: key(),
        identity: Identity::new("primary", BackupMode::Active),
        sets: vec![
            set("config", cfg_src.path(), &[]),
            set("voice", voice_src.path(), &["*.part"]),
        ],
        max_connections: 4,
        io_timeout: Duration::from_secs(20),
        transport: Default::default(),
    })
    .spawn(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
    .unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mk = |name: &str, secs: f64| SyncSetConfig {
        name: name.into(),
        root: dst.path().join(name),
        interval_secs: secs,
        direction: Direction::FromOperational,
        excludes: vec![],
    };
    let mut config = PullerSet::open(mk("config", 15.0)).unwrap();
    let mut voice = PullerSet::open(mk("voice", 60.0)).unwrap();
    let me = Identity::new("standby", BackupMode::Passive);
    let addr = server.addr.to_string();
    let now = Instant::now();
    assert!(config.due(now));
    let st = config.run_round(&addr, &key(), &me, now).clone();
    assert!(st.last_error.is_none(), "{st:?}");
    assert_eq!(st.files_changed, 1);
    assert!(!config.due(now + Duration::from_secs(14)));
    assert!(config.due(now + Duration::from_secs(15)));
    let st = voice.run_round(&addr, &key(), &me, now).clone();
    assert!(st.last_error.is_none(), "{st:?}");
    assert!(st.bytes_on_wire > 100_000);
    assert_same(cfg_src.path(), &dst.path().join("config"));
    assert!(!dst.path().join("voice/current/msg.wav.part").exists());
    assert_eq!(
        std::fs::read(dst.path().join("voice/current/msg.wav")).unwrap(),
        noise(4, 100_000)
    );
    // A round against a dead address fails, keeps the generation and reports the error.
    server.stop();
    let st = config.run_round(&addr, &key(), &me, now).clone();
    assert!(st.last_error.is_some());
    assert_eq!(st.rounds_failed, 1);
    assert!(st.generation.is_some());
}

#[test]
fn unreadable_stored_manifest_falls_back_to_a_full_pull() {
    let lb = Loopback::new(false, |s| write(s, "a.conf", b"a"));
    let r1 = lb.pull().unwrap();
    let id = r1.generation.unwrap();
    fs::write(
        lb.dst
            .path()
            .join(format!(".gens/{}.manifest", id.to_hex())),
        b"garbage",
    )
    .unwrap();
    write(lb.src.path(), "a.conf", b"b");
    // The damaged manifest is noticed (error, generation kept) and the next round recovers.
    let e = lb.pull().unwrap_err();
    assert!(e.to_string().contains("manifest"), "{e}");
    assert_eq!(
        fs::read(current(lb.dst.path()).join("a.conf")).unwrap(),
        b"a"
    );
    lb.pull().unwrap();
    assert_replica(&lb);
    lb.server.stop();
}

/// `cp -a` of a tree (keeps modes and nanosecond mtimes), to compare an older generation with
/// the source as it was.
fn snapshot(src: &std::path::Path, to: &std::path::Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn reused_generation_takes_every_change_and_leaves_the_current_one_alone() {
    let snaps = tempfile::tempdir().unwrap();
    let lb = Loopback::new(false, build_source);
    let s = lb.src.path();
    // Each step changes the source in a way the reused generation (two rounds old) must undo
    // or redo: kinds swapped both ways, metadata-only changes of files whose inode is shared
    // with the current generation, read-only directories, deletions and re-creations.
    let steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| write(s, "etc/pbx.conf", b"[general]\nport=5070\n")),
        Box::new(|| {
            fs::remove_file(s.join("etc/empty")).unwrap();
            write(s, "etc/empty/now-a-dir.conf", b"inside\n");
            fs::remove_dir(s.join("spool/empty-dir")).unwrap();
            write(s, "spool/empty-dir", b"now a file\n");
        }),
        Box::new(|| {
            // Metadata only: the file's inode is shared with the current generation.
            chmod(&s.join("etc/users/100.conf"), 0o604);
            set_mtime(&s.join("voice/menu.wav"), 1_400_000_000, 7);
            fs::remove_file(s.join("etc/voice-link")).unwrap();
            write(s, "etc/voice-link", b"was a symlink\n");
        }),
        Box::new(|| {
            fs::remove_dir_all(s.join("etc/empty")).unwrap();
            write(s, "etc/empty", b"");
            fs::remove_file(s.join("spool/empty-dir")).unwrap();
            symlink("../etc/pbx.conf", s.join("spool/empty-dir")).unwrap();
            write(s, "ro/locked.conf", b"v1\n");
            chmod(&s.join("ro"), 0o555);
        }),
        Box::new(|| {
            chmod(&s.join("ro"), 0o755);
            write(s, "ro/locked.conf", b"v2, longer\n");
            chmod(&s.join("ro"), 0o555);
            fs::remove_file(s.join("etc/users/101.conf")).unwrap();
        }),
        Box::new(|| write(s, "etc/users/101.conf", b"user 101 is back\n")),
    ];
    let r = lb.pull().unwrap();
    let mut prev = (r.generation.unwrap(), snaps.path().join("0"));
    snapshot(s, &prev.1);
    let mut reused = 0;
    for (i, step) in steps.iter().enumerate() {
        step();
        let r = lb.pull().unwrap();
        assert!(r.changed, "step {i}: {r}");
        assert_replica(&lb);
        if r.files_kept > 0 {
            reused += 1;
        }
        // The generation that was current until now is untouched: equal to the source as it
        // was when it was pulled.
        let d = tree_diff(&prev.1, &lb.store.gen_dir(&prev.0));
        assert!(
            d.is_empty(),
            "step {i}: previous generation changed: {d:#?}"
        );
        prev = (
            r.generation.unwrap(),
            snaps.path().join(format!("{}", i + 1)),
        );
        snapshot(s, &prev.1);
    }
    // Every round reuses a tree: the second one the mirror of the first generation (built in
    // the background after the first commit), the others the generation two rounds old.
    assert_eq!(reused, steps.len());
    chmod(&s.join("ro"), 0o755);
    lb.server.stop();
}

/// After the first full pull there is no earlier generation to reuse: a mirror of hard links
/// is built in the background, and the next round stages into it (audited: what was changed
/// through its paths leaves it) instead of linking every file again.
#[test]
fn first_round_after_a_full_pull_stages_into_the_mirror() {
    let lb = Loopback::new(false, build_source);
    let r1 = lb.pull().unwrap();
    lb.store.wait_background();
    let id = r1.generation.unwrap();
    let mirror = lb
        .dst
        .path()
        .join(".gens")
        .join(format!(".mirror-{}", id.to_hex()));
    assert!(mirror.is_dir(), "no mirror after the first pull");
    // Tampered with: a stray file, and one entry replaced by other content.
    fs::write(mirror.join("stray.txt"), b"not in any manifest").unwrap();
    fs::remove_file(mirror.join("etc/users/100.conf")).unwrap();
    fs::write(mirror.join("etc/users/100.conf"), b"forged").unwrap();

    write(lb.src.path(), "etc/pbx.conf", b"[general]\nport=5071\n");
    let r2 = lb.pull().unwrap();
    assert!(r2.changed, "{r2}");
    assert!(r2.files_kept > 0, "nothing kept in place: {r2}");
    assert!(!mirror.exists(), "the mirror was not used");
    assert_replica(&lb);
    assert!(!current(lb.dst.path()).join("stray.txt").exists());
    // The first generation is untouched (its files are the mirror's inodes).
    let first = lb.store.gen_dir(&id);
    assert_eq!(
        fs::read(first.join("etc/pbx.conf")).unwrap(),
        b"[general]\nport=5060\n"
    );
    // Two generations now: the next rounds reuse the older one, and no mirror is made.
    lb.store.wait_background();
    let mirrors = fs::read_dir(lb.dst.path().join(".gens"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".mirror-")
        })
        .count();
    assert_eq!(mirrors, 0);
    lb.server.stop();
}

/// A whole file is sent without hashing it again while it is still the version the server's
/// scan hashed; one changed while being sent must not pass for that version: the round fails
/// as a source change, the current generation stays, and the next round brings the new content.
#[test]
fn whole_file_changed_while_being_sent_is_refused_then_pulled() {
    use std::os::unix::fs::FileExt;
    let lb = Loopback::new(false, |s| write(s, "a.conf", b"a"));
    let r1 = lb.pull().unwrap();
    write(lb.src.path(), "b-small.conf", b"b");
    // Large enough that the server is still reading it when the puller has the file before.
    write(lb.src.path(), "c-big.wav", &noise(7, 64 << 20));
    // Older than the racy window, so the scan caches its hash.
    std::thread::sleep(sync::tree::scan::RACY_WINDOW * 3);
    let big = lb.src.path().join("c-big.wav");
    let mut changed = false;
    let err = sync::transfer::puller::pull_once_with_progress(&lb.store, &lb.cfg, &mut |_, _| {
        if !changed {
            changed = true;
            let f = fs::OpenOptions::new().write(true).open(&big).unwrap();
            // Near the end: bytes the server has not read yet, so what it sends is changed.
            f.write_all_at(b"changed in place", (64 << 20) - 100)
                .unwrap();
        }
    })
    .unwrap_err();
    assert!(changed);
    // Reported by the server (its hash cannot be the manifest's), not only caught by our own.
    assert!(
        matches!(err, sync::transfer::TransferError::SourceChanged(_)),
        "{err}"
    );
    assert_eq!(lb.store.current_id().unwrap(), r1.generation);
    lb.pull().unwrap();
    assert_replica(&lb);
    lb.server.stop();
}

#[test]
fn watched_set_is_scanned_ahead_of_the_next_poll() {
    let lb = Loopback::new(true, build_source);
    lb.pull().unwrap();
    let (scans, _) = lb.server.server.scan_stats("data").unwrap();
    write(lb.src.path(), "etc/pbx.conf", b"[general]\nport=5099\n");
    // No puller asks; the server scans once the tree has been quiet (wide margin).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while lb.server.server.scan_stats("data").unwrap().0 == scans {
        assert!(
            std::time::Instant::now() < deadline,
            "no scan ahead within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ahead = lb.server.server.scan_stats("data").unwrap().0;
    // The next poll uses that manifest: no scan of its own, and it gets the change.
    let r = lb.pull().unwrap();
    assert!(r.changed, "{r}");
    assert_replica(&lb);
    assert_eq!(lb.server.server.scan_stats("data").unwrap().0, ahead);
    lb.server.stop();
}

/// A node that was master wrote into `ROOT/current` in place (as the application does after a
/// takeover), then becomes standby again and pulls from a server whose tree differs: the store
/// must not trust the stale manifests of its generations (changed, added, removed files; the
/// generation before shares inodes with the changed one).
#[test]
fn generation_changed_in_place_is_not_trusted_as_a_basis() {
    let lb = Loopback::new(false, build_source);
    let s = lb.src.path();
    lb.pull().unwrap();
    write(s, "etc/users/103.conf", b"user 103\n");
    lb.pull().unwrap();
    assert_replica(&lb);

    // The application writes in place below current (same inodes as the generation before).
    let cur = fs::canonicalize(current(lb.dst.path())).unwrap();
    write(
        &cur,
        "etc/users/100.conf",
        b"user 100 changed on the master\n",
    );
    write(&cur, "etc/pbx.conf", b"[general]\nport=9999\n"); // same size as the source's
    write(&cur, "voice/call-1.dat", &noise(7, 50_000));
    write(&cur, "extra/dir/x.dat", b"extra");
    fs::remove_file(cur.join("etc/users/103.conf")).unwrap();
    fs::remove_dir_all(cur.join("spool")).unwrap();
    let mut grown = fs::read(cur.join("voice/greeting.wav")).unwrap();
    grown.extend_from_slice(&noise(8, 10_000));
    fs::write(cur.join("voice/greeting.wav"), &grown).unwrap();

    // Meanwhile the server's tree changed too, elsewhere.
    write(s, "etc/users/104.conf", b"user 104\n");
    write(s, "voice/menu.wav", &noise(9, 700_000));
    chmod(&s.join("voice/menu.wav"), 0o640);
    let r1 = lb.pull().unwrap();
    assert!(r1.changed, "{r1}");
    assert_replica(&lb);
    // Converges: the next round has nothing to do.
    let r2 = lb.pull().unwrap();
    assert!(!r2.changed, "{r2}");
    assert_replica(&lb);
    // The next change reuses the generation that was changed in place as staging basis.
    write(s, "etc/users/105.conf", b"user 105\n");
    let r3 = lb.pull().unwrap();
    assert!(r3.changed, "{r3}");
    assert_replica(&lb);
    let r4 = lb.pull().unwrap();
    assert!(!r4.changed, "{r4}");
    lb.server.stop();
}

/// The server's generation is one we hold, but it was changed in place: the puller must not
/// accept "unchanged" for it nor switch back to it as it is.
#[test]
fn current_changed_in_place_is_pulled_again_for_the_same_generation() {
    let lb = Loopback::new(false, build_source);
    let r0 = lb.pull().unwrap();
    let cur = fs::canonicalize(current(lb.dst.path())).unwrap();
    write(&cur, "etc/users/100.conf", b"changed in place\n");
    write(&cur, "added.dat", b"added in place");
    let r1 = lb.pull().unwrap();
    assert_eq!(r1.generation, r0.generation);
    assert_replica(&lb);
    let r2 = lb.pull().unwrap();
    assert!(!r2.changed, "{r2}");
    assert_replica(&lb);
    lb.server.stop();
}

#[test]
fn plain_seed_directory_is_adopted_in_place_and_then_pulled_over() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    build_source(src.path());
    // The node's seed data: a plain directory at ROOT/current, different from the server's.
    let seed = dst.path().join("current");
    write(&seed, "etc/users/100.conf", b"seed data\n");
    write(&seed, "only-in-seed.dat", b"kept until a pull replaces it");
    let store = GenStore::open(dst.path()).unwrap();
    let id = store
        .adopt_plain_current()
        .unwrap()
        .expect("a plain directory is adopted");
    // `current` is now the store's symlink to that generation, with the same files.
    assert!(fs::symlink_metadata(&seed)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(seed.join("only-in-seed.dat")).unwrap(),
        b"kept until a pull replaces it"
    );
    let (cur_id, manifest) = store.current().unwrap().expect("a current generation");
    assert_eq!(cur_id, id);
    assert!(manifest.get("only-in-seed.dat").is_some());
    // Nothing to adopt a second time.
    assert_eq!(store.adopt_plain_current().unwrap(), None);
    // A pull then makes it the server's tree exactly.
    let server = serve(src.path(), false);
    let cfg = pull_cfg(server.addr, key());
    pull_once(&store, &cfg).unwrap();
    assert_same(src.path(), dst.path());
    server.stop();
}

/// A no-change poll answers from the inotify watch on the current generation (no walk of the
/// tree), and a change made in place is still seen by the very next poll.
#[test]
fn no_change_polls_answer_from_the_watch_and_still_see_changes_in_place() {
    let lb = Loopback::new(false, build_source);
    let r0 = lb.pull().unwrap();
    assert!(r0.changed);
    // The commit armed the watch in the background: polls walk nothing.
    for _ in 0..3 {
        let r = lb.pull().unwrap();
        assert!(!r.changed, "{r}");
    }
    assert_eq!(
        lb.store.full_checks(),
        0,
        "a no-change poll walked the tree"
    );

    // Written in place, same size, deep in the tree: the next poll must not claim the generation.
    let cur = fs::canonicalize(current(lb.dst.path())).unwrap();
    write(&cur, "etc/users/101.conf", b"user 999\n");
    let r = lb.pull().unwrap();
    assert_eq!(r.generation, r0.generation);
    assert!(r.files_fetched >= 1, "{r}");
    assert_eq!(lb.store.full_checks(), 1);
    assert_replica(&lb);

    // Readers cost nothing: reading the tree is no event.
    let _ = fs::read(current(lb.dst.path()).join("voice/greeting.wav")).unwrap();
    let r = lb.pull().unwrap();
    assert!(!r.changed, "{r}");
    assert_eq!(
        lb.store.full_checks(),
        1,
        "a read made the next poll walk the tree"
    );

    // A new file in place: seen, and removed by the round it causes.
    write(&cur, "etc/users/stray.conf", b"stray");
    lb.pull().unwrap();
    assert_replica(&lb);
    lb.server.stop();
}

/// Generations share unchanged files as hard links. A change made through the previous
/// generation's path changes the current one too without being an event of its watch: the
/// previous generation's watch sees it, and the next poll checks the current one in full and
/// pulls the file again.
#[test]
fn change_through_the_previous_generation_is_seen() {
    let lb = Loopback::new(false, build_source);
    let s = lb.src.path();
    let r0 = lb.pull().unwrap();
    write(s, "etc/users/103.conf", b"user 103\n");
    let r1 = lb.pull().unwrap();
    assert!(r1.changed, "{r1}");
    let r = lb.pull().unwrap();
    assert!(!r.changed, "{r}");
    let before = lb.store.full_checks();

    // etc/pbx.conf is one inode in both generations; written through the older one's path.
    let a = lb
        .dst
        .path()
        .join(".gens")
        .join(r0.generation.unwrap().to_hex());
    write(&a, "etc/pbx.conf", b"[general]\nport=9999\n");
    let r = lb.pull().unwrap();
    assert!(r.files_fetched >= 1, "{r}");
    assert!(lb.store.full_checks() > before);
    assert_replica(&lb);
    let r = lb.pull().unwrap();
    assert!(!r.changed, "{r}");
    lb.server.stop();
}

/// Voice files appended to after the server's scan cached them: the server knows from the scan
/// that the puller's old version is its start (no second read of it), the puller clones its
/// old version as prefix; only the appended bytes travel and the result is exact. The large one
/// (3 MiB) is cloned ahead by the helper thread while the fetch is under way; the small one
/// (700 KB, offered with a signature as well) only once the server has chosen to resume.
#[test]
fn appended_file_travels_as_its_tail_from_the_scan_and_the_clone() {
    // The scan caches only files older than its racy window; wait that out each time.
    let settle = || std::thread::sleep(sync::tree::scan::RACY_WINDOW * 2);
    let lb = Loopback::new(false, |s| {
        build_source(s);
        settle();
    });
    let s = lb.src.path();
    lb.pull().unwrap();
    for round in 0..3u64 {
        for (i, name) in ["voice/greeting.wav", "voice/menu.wav"].iter().enumerate() {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(s.join(name))
                .unwrap();
            std::io::Write::write_all(&mut f, &noise(20 + 2 * round + i as u64, 50_000)).unwrap();
        }
        settle();
        let r = lb.pull().unwrap();
        assert_eq!(r.files_fetched, 2, "{r}");
        assert!(r.bytes_received < 200_000, "{r}");
        assert_replica(&lb);
    }
    lb.server.stop();
}

/// A held file's bytes after a round and before it.
type HeldBytes = (Vec<u8>, Vec<u8>);

/// Three rounds: the third reuses the first generation, whose version of the replaced 3 MiB
/// voice file no other generation links any more. With `hold`, a reader opened that version
/// before the third round (as a reader of an old generation may) and still holds it.
/// Returns the third round's report and, with `hold`, the held file's bytes read after it and
/// what they were before.
fn replace_twice(hold: bool) -> (sync::transfer::puller::RoundReport, Option<HeldBytes>) {
    use std::io::Read;
    let lb = Loopback::new(false, build_source);
    let s = lb.src.path();
    let first = lb.pull().unwrap().generation.unwrap();
    write(s, "voice/greeting.wav", &noise(40, 3 << 20));
    lb.pull().unwrap();
    assert_replica(&lb);
    let old = lb.store.gen_dir(&first).join("voice/greeting.wav");
    let held = hold.then(|| (fs::File::open(&old).unwrap(), fs::read(&old).unwrap()));
    // A new menu (700 KB, all new bytes): the round writes it while dropping that version.
    write(s, "voice/menu.wav", &noise(41, 700_000));
    let r3 = lb.pull().unwrap();
    assert_replica(&lb);
    let after = held.map(|(mut f, before)| {
        let mut now = Vec::new();
        f.read_to_end(&mut now).unwrap();
        (now, before)
    });
    // And once more: still exact, whatever was recycled.
    write(s, "voice/greeting.wav", &noise(42, 2 << 20));
    lb.pull().unwrap();
    assert_replica(&lb);
    lb.server.stop();
    (r3, after)
}

/// The dropped version's inode is overwritten with the new file instead of being freed (see
/// `crate::tree::recycle`), and the result is exact.
#[test]
fn a_dropped_inode_is_recycled_for_a_new_file() {
    let (r3, _) = replace_twice(false);
    assert_eq!(r3.files_recycled, 1, "{r3:?}");
}

/// An inode a reader still holds is never recycled: its bytes stay those of its generation.
#[test]
fn an_inode_a_reader_holds_is_not_recycled() {
    let (r3, held) = replace_twice(true);
    assert_eq!(r3.files_recycled, 0, "{r3:?}");
    let (now, before) = held.unwrap();
    assert!(now == before, "a held file of an old generation changed");
}
