//! TLS on loopback: a real server and puller with certificates made by rcgen at run time (no key
//! is committed). The tree arrives equal over TLS and its content is not readable on the wire;
//! a plain peer at a TLS end, an untrusted CA, a wrong server name and a wrong pre-shared key
//! inside TLS each fail with a clear error; bad PEM files are named in their error.
mod transfer_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use sync::transfer::auth::Key;
use sync::transfer::puller::pull_once;
use sync::transfer::{PullTransport, ServerTransport, TlsClient, TlsServer, TransferError};
use sync::tree::store::GenStore;
use transfer_common::*;

/// A CA and a server certificate it signed, written as PEM files into a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA named `ca_name` and a leaf for `names` (DNS names or IP addresses).
    fn new(ca_name: &str, names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        Pki { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn server(&self) -> TlsServer {
        TlsServer::load(&self.path("cert.pem"), &self.path("key.pem")).unwrap()
    }
    fn client(&self, server_name: Option<&str>) -> TlsClient {
        TlsClient::load(&self.path("ca.pem"), server_name.map(str::to_string)).unwrap()
    }
}

fn tls_server(pki: &Pki) -> ServerTransport {
    ServerTransport {
        tls: Some(pki.server()),
        compression: None,
    }
}

fn tls_puller(tls: TlsClient) -> PullTransport {
    PullTransport {
        tls: Some(tls),
        compression: false,
    }
}

const MARKER: &[u8] = b"SECRET-EXTENSION-PIN-4711";

fn build(src: &Path) {
    let mut conf = Vec::new();
    for i in 0..200 {
        conf.extend_from_slice(format!("user {i} pin ").as_bytes());
        conf.extend_from_slice(MARKER);
        conf.push(b'\n');
    }
    write(src, "etc/users.conf", &conf);
    write(src, "etc/pbx.conf", b"[general]\nport=5060\n");
    write(src, "voice/greeting.wav", &noise(3, 300_000));
}

/// Relays one connection to `to`, recording what the server sends.
fn relay(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = Arc::clone(&seen);
    std::thread::spawn(move || {
        let (client, _) = l.accept().unwrap();
        let server = TcpStream::connect(to).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
            let _ = s2.shutdown(std::net::Shutdown::Write);
        });
        let (mut s, mut c) = (server, client);
        let mut buf = [0u8; 16 << 10];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = c.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
    (addr, seen)
}

/// `err` is a TLS error (`what`) whose reason mentions `needle`.
fn assert_tls_refused(err: &TransferError, needle: &str, what: &str) {
    match err {
        TransferError::Tls { reason, .. } => assert!(reason.contains(needle), "{err}"),
        other => panic!("expected {what}, got {other}"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sync_over_tls_reproduces_the_tree_and_hides_the_content() {
    let pki = Pki::new("test CA", &["localhost", "127.0.0.1"]);
    let Loopback {
        store,
        server,
        dst,
        src,
        ..
    } = Loopback::with_transport(false, tls_server(&pki), build);

    // Through a recording relay: the file content must not be readable on the wire. The
    // relay's address is 127.0.0.1 too, so the default server name (the host part) applies.
    let (via, seen) = relay(server.addr);
    let mut cfg = pull_cfg(via, key());
    cfg.transport = tls_puller(pki.client(None));
    let r = pull_once(&store, &cfg).unwrap();
    assert!(r.changed && r.files_fetched == 3, "{r}");
    assert!(tree_diff(src.path(), &current(dst.path())).is_empty());
    let wire = seen.lock().unwrap().clone();
    assert!(wire.len() > 300_000, "relay saw only {} bytes", wire.len());
    assert!(
        !contains(&wire, MARKER),
        "file content readable on the TLS wire"
    );

    // A change arrives over TLS too (explicit server name this time), and a poll is unchanged.
    write(src.path(), "etc/pbx.conf", b"[general]\nport=5061\n");
    let mut cfg = pull_cfg(server.addr, key());
    cfg.transport = tls_puller(pki.client(Some("localhost")));
    let r = pull_once(&store, &cfg).unwrap();
    assert!(r.changed && r.files_fetched == 1, "{r}");
    assert!(tree_diff(src.path(), &current(dst.path())).is_empty());
    assert!(!pull_once(&store, &cfg).unwrap().changed);
    server
        .server
        .peers()
        .iter()
        .for_each(|p| assert!(p.in_sync()));

    // The same data over plain TCP shows the content: the relay check above is not vacuous.
    let plain_server = serve(src.path(), false);
    let (via, seen) = relay(plain_server.addr);
    let dst2 = tempfile::tempdir().unwrap();
    let store2 = GenStore::open(dst2.path()).unwrap();
    pull_once(&store2, &pull_cfg(via, key())).unwrap();
    assert!(contains(&seen.lock().unwrap(), MARKER));
    plain_server.stop();
    server.stop();
}

#[test]
fn plain_puller_at_a_tls_server_is_told_to_use_tls() {
    let pki = Pki::new("test CA", &["127.0.0.1"]);
    let lb = Loopback::with_transport(false, tls_server(&pki), build);
    let err = lb.pull().unwrap_err();
    match &err {
        TransferError::Remote(m) => assert!(m.contains("requires TLS"), "{err}"),
        other => panic!("expected the server's TLS-required error, got {other}"),
    }
    assert!(lb.store.current_id().unwrap().is_none());
    lb.server.stop();
}

#[test]
fn tls_puller_at_a_plain_server_fails_in_the_handshake() {
    let pki = Pki::new("test CA", &["127.0.0.1"]);
    let mut lb = Loopback::new(false, build);
    lb.cfg.transport = tls_puller(pki.client(None));
    let err = lb.pull().unwrap_err();
    assert_tls_refused(
        &err,
        "TLS configured on both sides",
        "a TLS handshake error",
    );
    assert!(lb.store.current_id().unwrap().is_none());
    lb.server.stop();
}

#[test]
fn untrusted_ca_and_wrong_server_name_are_refused() {
    let pki = Pki::new("test CA", &["pbx-a.example", "127.0.0.1"]);
    let other = Pki::new("another CA", &["pbx-a.example"]);
    let mut lb = Loopback::with_transport(false, tls_server(&pki), build);

    lb.cfg.transport = tls_puller(other.client(None));
    let err = lb.pull().unwrap_err();
    assert_tls_refused(
        &err,
        "not signed by a trusted CA",
        "an untrusted-certificate error",
    );

    lb.cfg.transport = tls_puller(pki.client(Some("pbx-b.example")));
    let err = lb.pull().unwrap_err();
    assert_tls_refused(&err, "pbx-b.example", "a server-name error");
    assert!(lb.store.current_id().unwrap().is_none());

    // The right name works against the same server.
    lb.cfg.transport = tls_puller(pki.client(Some("pbx-a.example")));
    assert!(lb.pull().unwrap().changed);
    lb.server.stop();
}

#[test]
fn wrong_key_inside_tls_gets_no_data() {
    let pki = Pki::new("test CA", &["127.0.0.1"]);
    let mut lb = Loopback::with_transport(false, tls_server(&pki), build);
    lb.cfg.key = Key::from_bytes(b"a valid certificate is not the key").unwrap();
    lb.cfg.transport = tls_puller(pki.client(None));
    lb.assert_auth_refused();
    lb.server.stop();
}

#[test]
fn bad_pem_files_are_named_in_the_error() {
    let pki = Pki::new("test CA", &["127.0.0.1"]);
    let other = Pki::new("another CA", &["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, b"this is not PEM\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let named = |err: TransferError, file: &Path| match &err {
        TransferError::TlsFile { path, .. } => {
            assert_eq!(Path::new(path), file, "{err}");
            err.to_string()
        }
        other => panic!(
            "expected a TLS file error for {}, got {other}",
            file.display()
        ),
    };
    named(
        TlsServer::load(&garbage, &pki.path("key.pem")).unwrap_err(),
        &garbage,
    );
    named(
        TlsServer::load(&pki.path("cert.pem"), &garbage).unwrap_err(),
        &garbage,
    );
    named(
        TlsServer::load(&pki.path("cert.pem"), &missing).unwrap_err(),
        &missing,
    );
    // A key that does not belong to the certificate.
    let msg = named(
        TlsServer::load(&pki.path("cert.pem"), &other.path("key.pem")).unwrap_err(),
        &other.path("key.pem"),
    );
    assert!(msg.contains("cert.pem"), "{msg}");
    // A key file where the CA should be, and a missing CA.
    named(
        TlsClient::load(&pki.path("key.pem"), None).unwrap_err(),
        &pki.path("key.pem"),
    );
    named(TlsClient::load(&missing, None).unwrap_err(), &missing);
}

#[test]
fn a_peer_closing_after_its_last_frame_is_a_clean_end_under_tls() {
    use sync::transfer::frame::{FrameReader, FrameWriter};
    use sync::transfer::msg::Msg;
    use sync::transfer::tls;
    let pki = Pki::new("test CA", &["127.0.0.1"]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let srv = pki.server();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = FrameReader::new(tls::accept(Some(&srv), s).unwrap());
        let first = r.read_opt().map_err(|e| e.to_string());
        let end = r.read_opt().map_err(|e| e.to_string());
        (first, end)
    });
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = tls::connect(Some(&pki.client(None)), s, &addr.to_string()).unwrap();
    assert!(conn.is_tls());
    let mut w = FrameWriter::new(conn);
    w.write(&Msg::BatchEnd).unwrap();
    w.flush().unwrap();
    // Closed without a TLS close_notify, as a puller that is done does.
    drop(w);
    let (first, end) = h.join().unwrap();
    assert_eq!(first, Ok(Some(Msg::BatchEnd)));
    assert_eq!(end, Ok(None));
}
