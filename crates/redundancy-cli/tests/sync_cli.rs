//! `redundancy-cli serve` / `pull` on loopback: a one-shot pull, a wrong key, and crash safety
//! (SIGKILL of the pulling process at random instants, many times, while a reader process checks
//! that it never sees two generations mixed).
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_redundancy-cli");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("sync-cli-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `serve` and waits for its "serving" line.
fn serve(root: &Path, key_file: &Path) -> (Proc, String) {
    serve_with(root, key_file, &[])
}

/// `serve` with extra arguments (TLS, compression).
fn serve_with(root: &Path, key_file: &Path, extra: &[&std::ffi::OsStr]) -> (Proc, String) {
    for _ in 0..5 {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", &addr, "--node-id", "primary"])
            .arg("--root")
            .arg(root)
            .arg("--key-file")
            .arg(key_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        if line.starts_with("serving") {
            return (Proc(child), addr);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("serve did not start");
}

fn pull_cmd(addr: &str, root: &Path, key_file: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["pull", "--once", "--from", addr, "--node-id", "standby"])
        .arg("--root")
        .arg(root)
        .arg("--key-file")
        .arg(key_file)
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn serve_and_pull_once() {
    let s = Scratch::new("once");
    let src = s.0.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/pbx.conf"), "port=5060\n").unwrap();
    std::os::unix::fs::symlink("pbx.conf", src.join("etc/link")).unwrap();
    let key = s.0.join("key");
    fs::write(&key, "a shared secret of some length\n").unwrap();
    let (_server, addr) = serve(&src, &key);
    let dst = s.0.join("dst");

    let out = pull_cmd(&addr, &dst, &key).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains("generation") && line.contains("fetched"),
        "{line}"
    );
    assert_eq!(
        fs::read_to_string(dst.join("current/etc/pbx.conf")).unwrap(),
        "port=5060\n"
    );
    assert_eq!(
        fs::read_link(dst.join("current/etc/link")).unwrap(),
        Path::new("pbx.conf")
    );

    let out = pull_cmd(&addr, &dst, &key).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged"));

    let wrong = s.0.join("wrong");
    fs::write(&wrong, "another secret entirely\n").unwrap();
    let out = pull_cmd(&addr, &s.0.join("dst2"), &wrong).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!s.0.join("dst2/current").exists());

    let out = pull_cmd(&addr, &dst, &s.0.join("missing-key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing-key"));
}

/// A CA and a server certificate for `localhost`, made at run time (no key is committed).
fn write_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn serve_and_pull_over_tls_with_compression() {
    let s = Scratch::new("tls");
    write_pki(&s.0);
    let src = s.0.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    let text = "extension = desk; codec = g722; voicemail = yes\n".repeat(2000);
    fs::write(src.join("etc/pbx.conf"), &text).unwrap();
    let key = s.0.join("key");
    fs::write(&key, "a shared secret of some length\n").unwrap();
    let os = |p: &Path| p.as_os_str().to_owned();
    let (cert, pkey, ca) = (
        os(&s.0.join("cert.pem")),
        os(&s.0.join("key.pem")),
        os(&s.0.join("ca.pem")),
    );
    let (_server, addr) = serve_with(
        &src,
        &key,
        &[
            "--tls-cert".as_ref(),
            &cert,
            "--tls-key".as_ref(),
            &pkey,
            "--compress".as_ref(),
            "3".as_ref(),
        ],
    );
    // The certificate is for localhost, the address is 127.0.0.1: the name is given.
    let dst = s.0.join("dst");
    let out = pull_cmd(&addr, &dst, &key)
        .arg("--tls-ca")
        .arg(&ca)
        .args(["--tls-server-name", "localhost", "--compress"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(dst.join("current/etc/pbx.conf")).unwrap(),
        text
    );
    // Compressed: far fewer bytes received than the file holds.
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let received: u64 = line
        .split(" B received")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    assert!(received * 10 < text.len() as u64, "{line}");

    // Without the name the certificate does not match 127.0.0.1.
    let out = pull_cmd(&addr, &s.0.join("dst2"), &key)
        .arg("--tls-ca")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS with") && err.contains("127.0.0.1"),
        "{err}"
    );
    // Without TLS the server says what is missing.
    let out = pull_cmd(&addr, &s.0.join("dst3"), &key).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("requires TLS"), "{err}");
    assert!(!s.0.join("dst2/current").exists() && !s.0.join("dst3/current").exists());

    // A bad PEM file: a clear error naming it, at start-up.
    let bad = s.0.join("bad.pem");
    fs::write(&bad, "not a certificate\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--root")
        .arg(&src)
        .arg("--key-file")
        .arg(&key)
        .arg("--tls-cert")
        .arg(&bad)
        .arg("--tls-key")
        .arg(&pkey)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.pem"), "{err}");
    let out = pull_cmd(&addr, &s.0.join("dst4"), &key)
        .arg("--tls-ca")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.pem"));
}

const FILES: usize = 200;

fn write_round(src: &Path, round: u64) {
    for i in 0..FILES {
        // Every file names the round; the filler makes the apply take a little while.
        let body = format!("round {round}\n{}\n", "x".repeat(2000 + i));
        fs::write(src.join(format!("cfg/f{i:03}.conf")), body).unwrap();
    }
    // One bigger file so that some kills land in the middle of a data transfer.
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i as u64 * (round + 3)) as u8)
        .collect();
    let mut data = format!("round {round}\n").into_bytes();
    data.extend_from_slice(&big);
    fs::write(src.join("voice.bin"), data).unwrap();
}

/// The round tag of every file of one generation directory, or None if the generation vanished
/// (garbage-collected) while we read it.
fn generation_rounds(gen_dir: &Path) -> Option<Vec<String>> {
    let mut tags = Vec::new();
    for i in 0..FILES {
        match fs::read(gen_dir.join(format!("cfg/f{i:03}.conf"))) {
            Ok(b) => tags.push(
                String::from_utf8_lossy(&b)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if gen_dir.exists() {
                    tags.push("MISSING".into());
                } else {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    match fs::read(gen_dir.join("voice.bin")) {
        Ok(b) => tags.push(
            String::from_utf8_lossy(&b[..b.len().min(12)])
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        Err(_) if !gen_dir.exists() => return None,
        Err(_) => tags.push("MISSING".into()),
    }
    Some(tags)
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn sigkill_during_apply_leaves_exactly_one_generation() {
    let s = Scratch::new("crash");
    let src = s.0.join("src");
    fs::create_dir_all(src.join("cfg")).unwrap();
    let key = s.0.join("key");
    fs::write(&key, "crash test shared key material").unwrap();
    let dst = s.0.join("dst");
    write_round(&src, 0);
    let (_server, addr) = serve(&src, &key);

    // Round 0 completes: the reference time of one round.
    let t0 = Instant::now();
    let st = pull_cmd(&addr, &dst, &key).status().unwrap();
    assert!(st.success());
    let round_time = t0.elapsed();

    // A reader that resolves `current` once per pass and checks every file of that generation.
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, passes, dst) = (stop.clone(), passes.clone(), dst.clone());
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::SeqCst) {
                let Ok(target) = fs::read_link(dst.join("current")) else {
                    continue;
                };
                let Some(tags) = generation_rounds(&dst.join(&target)) else {
                    continue;
                };
                // A generation two rounds old may be garbage-collected while we read it; that
                // shows as missing files of a generation that is no longer current.
                if tags.iter().any(|t| t == "MISSING")
                    && fs::read_link(dst.join("current")).ok() != Some(target.clone())
                {
                    continue;
                }
                if tags.iter().any(|t| t != &tags[0]) {
                    return Err(format!("mixed generation in {}: {:?}", target.display(), {
                        let mut u = tags.clone();
                        u.dedup();
                        u
                    }));
                }
                passes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    };

    let mut rng = 0x2545_F491_4F6C_DD1D_u64 ^ u64::from(std::process::id());
    let mut last_complete = 0u64;
    let mut kills = 0;
    let mut killed_after_switch = 0;
    for round in 1..=30u64 {
        write_round(&src, round);
        let delay =
            Duration::from_micros(xorshift(&mut rng) % (round_time.as_micros() as u64 * 3 / 2 + 1));
        let mut child = pull_cmd(&addr, &dst, &key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        // After every kill: `current` is one complete generation, the old or the new one.
        let target = fs::read_link(dst.join("current")).unwrap();
        let tags = generation_rounds(&dst.join(&target)).expect("current generation exists");
        let first = tags[0].clone();
        assert!(
            tags.iter().all(|t| *t == first),
            "round {round}: mixed {tags:?}"
        );
        let shown: u64 = first.trim_start_matches("round ").parse().unwrap();
        assert!(
            shown == round || shown == last_complete,
            "round {round}: current shows round {shown}, last complete {last_complete}"
        );
        if status.success() {
            assert_eq!(shown, round);
        } else if shown == round {
            killed_after_switch += 1;
        }
        last_complete = shown;
        // Now and then a round that is allowed to finish.
        if round % 5 == 0 {
            let st = pull_cmd(&addr, &dst, &key)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            let target = fs::read_link(dst.join("current")).unwrap();
            let tags = generation_rounds(&dst.join(&target)).unwrap();
            assert!(
                tags.iter().all(|t| *t == format!("round {round}")),
                "{tags:?}"
            );
            last_complete = round;
            // A completed round leaves exactly current and previous (directory + manifest
            // each): whatever killed rounds left behind has been collected.
            let mut gens: Vec<String> = fs::read_dir(dst.join(".gens"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            gens.sort();
            assert!(gens.len() <= 4, "left in .gens: {gens:?}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap().unwrap();
    assert!(
        kills >= 10,
        "only {kills} rounds were killed; timing too loose"
    );
    assert!(
        passes.load(Ordering::SeqCst) > 0,
        "the reader never completed a pass"
    );
    eprintln!(
        "{kills} kills ({killed_after_switch} after the switch), {} consistent reader passes, \
         round time {round_time:?}",
        passes.load(Ordering::SeqCst)
    );
}
