//! The connection under the frames: plain TCP or TLS (rustls) over TCP.
//!
//! [`Conn`] is what [`super::frame::FrameReader`] and [`super::frame::FrameWriter`] sit on. The
//! protocol is strictly turn-based (one side writes, flushes, then reads), so a TLS session can
//! be shared by the reading and the writing half through a mutex: [`Conn::try_clone`] gives the
//! second handle, as [`TcpStream::try_clone`] does for plain TCP. Socket timeouts are set on the
//! TCP socket before it is wrapped and so still apply under TLS.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::{ClientConnection, ServerConnection, StreamOwned};

/// A TLS session over TCP, client side.
pub type ClientStream = StreamOwned<ClientConnection, TcpStream>;
/// A TLS session over TCP, server side.
pub type ServerStream = StreamOwned<ServerConnection, TcpStream>;

/// A transport connection: plain TCP or TLS over TCP.
pub enum Conn {
    /// Plain TCP (the pre-shared key still authenticates every frame).
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
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Client(s) => lock(s).read(buf),
            Conn::Server(s) => lock(s).read(buf),
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
