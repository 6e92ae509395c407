//! The `signature` / `delta` / `patch` subcommands, run as the real binary.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_redundancy-cli")
}

fn run(args: &[&Path]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn redundancy-cli")
}

fn run_stdin(args: &[&Path], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redundancy-cli");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect()
}

/// A scratch directory of this test, removed on drop.
struct Files {
    dir: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Files {
    fn new() -> Files {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rdiff-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.p(name);
        fs::write(&p, data).unwrap();
        p
    }
    /// Names in the directory (to check that no temporary file was left behind).
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn sample() -> (Vec<u8>, Vec<u8>) {
    let base = pseudo_random(300_000, 1);
    let mut new = base.clone();
    new[100_000..100_500].fill(9);
    new.splice(200_000..200_000, b"inserted".iter().copied());
    (base, new)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn round_trip_through_files() {
    let f = Files::new();
    let (base, new) = sample();
    let (b, n) = (f.write("base", &base), f.write("new", &new));
    let (s, d, o) = (f.p("base.sig"), f.p("new.delta"), f.p("out"));
    let r = run(&[p("signature"), &b, &s]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = run(&[p("delta"), &s, &n, &d]);
    assert!(r.status.success(), "{}", stderr(&r));
    // The delta is small: a few blocks of literal, not the file.
    assert!(fs::metadata(&d).unwrap().len() < 10_000);
    let r = run(&[p("patch"), &b, &d, &o]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(fs::read(&o).unwrap() == new);
    assert_eq!(f.names(), ["base", "base.sig", "new", "new.delta", "out"]);
}

#[test]
fn round_trip_through_stdin_and_stdout() {
    let f = Files::new();
    let (base, new) = sample();
    let b = f.write("base", &base);
    let dash = p("-");
    // signature from stdin to stdout, with an explicit block size.
    let r = run_stdin(
        &[p("signature"), dash, dash, p("--block-size"), p("1024")],
        &base,
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let s = f.write("sig", &r.stdout);
    // delta: NEW from stdin, delta to stdout.
    let r = run_stdin(&[p("delta"), &s, dash, dash], &new);
    assert!(r.status.success(), "{}", stderr(&r));
    let delta = r.stdout;
    // patch: delta from stdin, output to stdout.
    let r = run_stdin(&[p("patch"), &b, dash, dash], &delta);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(r.stdout == new);
    // Same delta when the signature comes from stdin instead.
    let n = f.write("new", &new);
    let r = run_stdin(&[p("delta"), dash, &n, dash], &fs::read(&s).unwrap());
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(r.stdout == delta);
}

#[test]
fn missing_and_unreadable_files_exit_100() {
    let f = Files::new();
    let missing = f.p("missing");
    let (xs, xd, xo) = (f.p("x.sig"), f.p("x.delta"), f.p("x.out"));
    let cases: [Vec<&Path>; 3] = [
        vec![p("signature"), &missing, &xs],
        vec![p("delta"), &missing, &missing, &xd],
        vec![p("patch"), &missing, &missing, &xo],
    ];
    for args in cases {
        let r = run(&args);
        assert_eq!(r.status.code(), Some(100), "{args:?}: {}", stderr(&r));
        let e = stderr(&r);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("missing") && e.contains("No such file"), "{e}");
    }
    // Output directory that does not exist.
    let b = f.write("base", b"abc");
    let r = run(&[p("signature"), &b, &f.p("nodir/x.sig")]);
    assert_eq!(r.status.code(), Some(100), "{}", stderr(&r));
    // A directory is not a readable base.
    let r = run(&[p("signature"), &f.dir, &f.p("y.sig")]);
    assert_eq!(r.status.code(), Some(100), "{}", stderr(&r));
    assert!(!f.p("y.sig").exists());
}

#[test]
fn mismatched_and_corrupt_inputs() {
    let f = Files::new();
    let (base, new) = sample();
    let (b, n) = (f.write("base", &base), f.write("new", &new));
    let (s, d) = (f.p("sig"), f.p("delta"));
    assert!(run(&[p("signature"), &b, &s]).status.success());
    assert!(run(&[p("delta"), &s, &n, &d]).status.success());

    // Patching the wrong base: hash mismatch, exit 106, and OUT never appears.
    let mut other = base.clone();
    other[5] ^= 1;
    let wrong = f.write("wrong", &other);
    let out = f.p("out");
    let r = run(&[p("patch"), &wrong, &d, &out]);
    assert_eq!(r.status.code(), Some(106), "{}", stderr(&r));
    assert!(stderr(&r).contains("hash mismatch"), "{}", stderr(&r));
    assert!(!out.exists(), "a failed patch left OUT behind");
    // An existing OUT is left untouched by a failed patch.
    fs::write(&out, b"previous").unwrap();
    let r = run(&[p("patch"), &wrong, &d, &out]);
    assert_eq!(r.status.code(), Some(106));
    assert_eq!(fs::read(&out).unwrap(), b"previous");

    // A signature given where a delta is expected, and the other way round: bad magic, 104.
    let r = run(&[p("patch"), &b, &s, &f.p("o2")]);
    assert_eq!(r.status.code(), Some(104), "{}", stderr(&r));
    let r = run(&[p("delta"), &d, &n, &f.p("d2")]);
    assert_eq!(r.status.code(), Some(104), "{}", stderr(&r));

    // A truncated delta: 103.
    let full = fs::read(&d).unwrap();
    let cut = f.write("cut", &full[..full.len() / 2]);
    let r = run(&[p("patch"), &b, &cut, &f.p("o3")]);
    assert_eq!(r.status.code(), Some(103), "{}", stderr(&r));
    // A truncated signature: 103.
    let sig = fs::read(&s).unwrap();
    let cut = f.write("cutsig", &sig[..sig.len() - 3]);
    let r = run(&[p("delta"), &cut, &n, &f.p("d3")]);
    assert_eq!(r.status.code(), Some(103), "{}", stderr(&r));
    // Trailing bytes after a signature: 106.
    let mut long = sig.clone();
    long.push(0);
    let long = f.write("longsig", &long);
    let r = run(&[p("delta"), &long, &n, &f.p("d4")]);
    assert_eq!(r.status.code(), Some(106), "{}", stderr(&r));
    for name in ["o2", "o3", "d2", "d3", "d4"] {
        assert!(!f.p(name).exists(), "{name} left behind");
    }
    assert!(
        !f.names().iter().any(|n| n.contains(".tmp-")),
        "{:?}",
        f.names()
    );
}

#[test]
fn bad_parameters() {
    let f = Files::new();
    let b = f.write("base", b"abcdef");
    // Block size outside the accepted range: 108.
    let r = run(&[p("signature"), &b, &f.p("s"), p("--block-size"), p("1")]);
    assert_eq!(r.status.code(), Some(108), "{}", stderr(&r));
    // patch's BASE cannot be stdin: 108.
    let r = run(&[p("patch"), p("-"), &b, &f.p("o")]);
    assert_eq!(r.status.code(), Some(108), "{}", stderr(&r));
    // Missing arguments: a usage error (clap's 2).
    let r = run(&[p("patch"), &b]);
    assert_eq!(r.status.code(), Some(2));
}

/// Interop-style check: our CLI and rdiff agree on what the patched file is, for the same
/// base and new files (the formats differ, the results must not).
#[test]
fn same_result_as_rdiff() {
    let Ok(status) = Command::new("rdiff").arg("--version").output() else {
        println!("skipped: rdiff is not installed");
        return;
    };
    assert!(status.status.success());
    let f = Files::new();
    let (base, new) = sample();
    let (b, n) = (f.write("base", &base), f.write("new", &new));
    let rdiff = |args: &[&Path]| Command::new("rdiff").args(args).status().unwrap().success();
    assert!(rdiff(&[p("signature"), &b, &f.p("r.sig")]));
    assert!(rdiff(&[p("delta"), &f.p("r.sig"), &n, &f.p("r.delta")]));
    assert!(rdiff(&[p("patch"), &b, &f.p("r.delta"), &f.p("r.out")]));
    assert!(run(&[p("signature"), &b, &f.p("o.sig")]).status.success());
    assert!(run(&[p("delta"), &f.p("o.sig"), &n, &f.p("o.delta")])
        .status
        .success());
    assert!(run(&[p("patch"), &b, &f.p("o.delta"), &f.p("o.out")])
        .status
        .success());
    assert!(fs::read(f.p("r.out")).unwrap() == fs::read(f.p("o.out")).unwrap());
    // rdiff's files are not ours: a clear bad-magic error, not garbage.
    let r = run(&[p("patch"), &b, &f.p("r.delta"), &f.p("x")]);
    assert_eq!(r.status.code(), Some(104), "{}", stderr(&r));
}
