//! The connection under the frames: plain TCP or TLS (rustls) over TCP.
//!
//! [`Conn`] is what [`super::frame::FrameReader`] and [`super::frame::FrameWriter`] sit on. The
//! protocol is strictly turn-based (one side writes, flushes, then reads), so a TLS session can
//! be shared by the reading and the writing half through a mutex: [`Conn::try_clone`] gives the
//! second handle, as [`TcpStream::try_clone`] does for plain TCP. Socket timeouts are set on the
//! TCP socket before it is wrapped and so still apply under TLS.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, ServerConnection, StreamOwned};

use super::frame::{FrameReader, FrameWriter};
use super::msg::Msg;
use super::TransferError;

/// A TLS session over TCP, client side.
pub type ClientStream = StreamOwned<ClientConnection, TcpStream>;
/// A TLS session over TCP, server side.
pub type ServerStream = StreamOwned<ServerConnection, TcpStream>;

/// A transport connection: plain TCP or TLS over TCP.
pub enum Conn {
    /// Plain TCP (the pre-shared key still authenticates every frame; see [`super`]).
    Plain(TcpStream),
    /// TLS, puller side (shared between the reading and the writing half).
    Client(Arc<Mutex<ClientStream>>),
    /// TLS, server side (shared between the reading and the writing half).
    Server(Arc<Mutex<ServerStream>>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A half that panicked leaves the session unusable anyway; later I/O reports the error.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Conn {
    /// A second handle on the same connection (for the other half of the frame layer).
    pub fn try_clone(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Conn::Plain(s) => Conn::Plain(s.try_clone()?),
            Conn::Client(s) => Conn::Client(Arc::clone(s)),
            Conn::Server(s) => Conn::Server(Arc::clone(s)),
        })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Conn::Plain(s) => s.peer_addr(),
            Conn::Client(s) => lock(s).sock.peer_addr(),
            Conn::Server(s) => lock(s).sock.peer_addr(),
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Conn::Plain(_))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = match self {
            Conn::Plain(s) => return s.read(buf),
            Conn::Client(s) => lock(s).read(buf),
            Conn::Server(s) => lock(s).read(buf),
        };
        match r {
            // rustls reports a TCP close without close_notify (RFC 8446 section 6.1) as
            // UnexpectedEof, to guard protocols that cannot tell a truncated stream. Ours can:
            // frames carry their length and a MAC, and a frame cut short is still an error in
            // the frame reader. So it is an end of stream here, as with plain TCP (a peer that
            // is done simply closes).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Client(s) => lock(s).write(buf),
            Conn::Server(s) => lock(s).write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Client(s) => lock(s).flush(),
            Conn::Server(s) => lock(s).flush(),
        }
    }
}

/// A TLS record of type handshake starts with this byte (RFC 8446 section 5.1,
/// `ContentType.handshake`); a plain frame starts with the high byte of a length below
/// [`super::frame::MAX_HANDSHAKE_FRAME`], which is 0.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Explicit provider: no process-wide default has to be installed first.
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TransferError {
    TransferError::TlsFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransferError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, pem_reason(e)))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM CERTIFICATE block in it"));
    }
    Ok(certs)
}

fn pem_reason(e: PemError) -> String {
    match e {
        PemError::Io(e) => e.to_string(),
        PemError::NoItemsFound => "no PEM block of the expected kind in it".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// TLS settings of a server: its certificate chain and private key.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer(..)")
    }
}

impl TlsServer {
    /// Loads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or
    /// SEC1). Errors name the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsServer, TransferError> {
        let certs = load_certs(cert)?;
        let private =
            PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, pem_reason(e)))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| file_error(cert, e))?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(|e| {
                file_error(
                    key,
                    format!("unusable with the certificate {}: {e}", cert.display()),
                )
            })?;
        // No TLS 1.3 session tickets: every round is a fresh connection with a full
        // handshake, and a ticket the puller never reads sits in its receive buffer when it
        // closes, so its kernel answers the close with a reset instead of a FIN and the server
        // sees "connection reset" instead of a clean end (seen 3 in 10 runs of
        // a_peer_closing_after_its_last_frame_is_a_clean_end_under_tls).
        config.send_tls13_tickets = 0;
        Ok(TlsServer {
            config: Arc::new(config),
        })
    }
}

/// TLS settings of a puller: the CA (or server certificate) it trusts and the name the server's
/// certificate must carry.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    ca: PathBuf,
    /// Name checked against the server's certificate; `None`: the host part of the server
    /// address (a DNS name or an IP address).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("ca", &self.ca)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsClient {
    /// Trusts the PEM certificates in `ca` (a CA, or the server's own self-signed certificate)
    /// and checks the server's certificate against `server_name` (default: the host part of
    /// the address pulled from). Errors name the file at fault.
    pub fn load(ca: &Path, server_name: Option<String>) -> Result<TlsClient, TransferError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in load_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| file_error(ca, format!("not a usable trust anchor: {e}")))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| file_error(ca, e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient {
            config: Arc::new(config),
            ca: ca.to_path_buf(),
            server_name,
        })
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub fn host_part(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match addr.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, _)) if !h.contains(':') => h,
        _ => addr,
    }
}

/// Drives a TLS handshake to its end on a blocking socket (the socket's timeouts apply).
fn handshake<S: rustls::SideData>(
    conn: &mut rustls::ConnectionCommon<S>,
    sock: &mut TcpStream,
) -> std::io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// Explains a failed TLS handshake.
fn handshake_error(peer: &str, e: std::io::Error, hint: &str) -> TransferError {
    use rustls::{CertificateError, Error};
    let reason = match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            format!("the peer's certificate is not signed by a trusted CA ({hint})")
        }
        Some(Error::InvalidMessage(_)) | Some(Error::InappropriateMessage { .. }) => {
            format!("{e}: the peer does not speak TLS (is TLS configured on both sides?)")
        }
        Some(_) => e.to_string(),
        None if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
        ) =>
        {
            format!("connection closed during the TLS handshake ({e}): is TLS configured on both sides?")
        }
        None => e.to_string(),
    };
    TransferError::Tls {
        peer: peer.to_string(),
        reason,
    }
}

/// The puller's connection: plain, or TLS with the server's certificate checked against the
/// trusted CA and the server name (`server` is the address dialled, `host:port`).
pub fn connect(
    tls: Option<&TlsClient>,
    sock: TcpStream,
    server: &str,
) -> Result<Conn, TransferError> {
    let Some(tls) = tls else {
        return Ok(Conn::Plain(sock));
    };
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| host_part(server).to_string());
    let server_name = ServerName::try_from(name.clone()).map_err(|_| TransferError::Tls {
        peer: server.to_string(),
        reason: format!("{name:?} is not a valid server name (DNS name or IP address)"),
    })?;
    let conn = ClientConnection::new(Arc::clone(&tls.config), server_name).map_err(|e| {
        TransferError::Tls {
            peer: server.to_string(),
            reason: e.to_string(),
        }
    })?;
    let mut s = StreamOwned::new(conn, sock);
    let hint = format!("trusted: {}", tls.ca.display());
    handshake(&mut s.conn, &mut s.sock).map_err(|e| handshake_error(server, e, &hint))?;
    Ok(Conn::Client(Arc::new(Mutex::new(s))))
}

/// The server's side of a new connection: plain or TLS as configured. A peer that speaks the
/// other one gets a clear error: a plain puller at a TLS server receives a plain `Error` frame
/// saying so; a TLS puller at a plain server sees the connection closed during its handshake.
pub fn accept(tls: Option<&TlsServer>, sock: TcpStream) -> Result<Conn, TransferError> {
    let peer = sock
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let mut first = [0u8; 1];
    let n = loop {
        match sock.peek(&mut first) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TransferError::io(format!("reading from {peer}"), e)),
        }
    };
    if n == 0 {
        return Err(TransferError::Closed("before its first message"));
    }
    let speaks_tls = first[0] == TLS_HANDSHAKE_RECORD;
    match (tls, speaks_tls) {
        (None, false) => Ok(Conn::Plain(sock)),
        (None, true) => Err(TransferError::Tls {
            peer,
            reason: "the peer started a TLS handshake, but this server has no TLS certificate \
                     configured"
                .into(),
        }),
        (Some(_), false) => {
            refuse_plain(&sock);
            Err(TransferError::Tls {
                peer,
                reason: "the peer speaks plain TCP, but this server requires TLS".into(),
            })
        }
        (Some(t), true) => {
            let conn =
                ServerConnection::new(Arc::clone(&t.config)).map_err(|e| TransferError::Tls {
                    peer: peer.clone(),
                    reason: e.to_string(),
                })?;
            let mut s = StreamOwned::new(conn, sock);
            handshake(&mut s.conn, &mut s.sock)
                .map_err(|e| handshake_error(&peer, e, "puller certificates are not used"))?;
            Ok(Conn::Server(Arc::new(Mutex::new(s))))
        }
    }
}

/// Tells a plain puller, in its own framing, that TLS is required. Its hello is read first and
/// our side is shut down before closing, so the error is not lost to a reset.
fn refuse_plain(sock: &TcpStream) {
    let mut r = FrameReader::new(sock);
    let _ = r.read_opt();
    let mut w = FrameWriter::new(sock);
    let _ = w.write(&Msg::Error {
        message: "this server requires TLS: configure the puller with the CA that signed the \
                  server's certificate (pull --tls-ca, [sync.tls] ca)"
            .into(),
    });
    let _ = w.flush();
    drop(w);
    let _ = sock.shutdown(std::net::Shutdown::Write);
    // Wait (bounded by the socket's read timeout) for the puller to close after reading it.
    let mut sink = [0u8; 512];
    let mut s = sock;
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_part("pbx-a.example:7878"), "pbx-a.example");
        assert_eq!(host_part("10.99.0.1:7878"), "10.99.0.1");
        assert_eq!(host_part("[fd99::1]:7878"), "fd99::1");
        assert_eq!(host_part("fd99::1"), "fd99::1");
        assert_eq!(host_part("pbx-a"), "pbx-a");
    }
}
