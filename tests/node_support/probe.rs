//! A client that pings the virtual address every millisecond and records, from a packet
//! socket, when each echo reply arrived and which MAC address sent it. Client recovery after a
//! fault is then the arrival of the first reply from the new master's MAC: an event seen by
//! a thread blocked in `recv`, not a forked poll.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// One echo reply seen by the client.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// When the packet socket returned it.
    pub at: Instant,
    /// The Ethernet source address.
    pub mac: [u8; 6],
}

/// A running prober; drop stops it.
pub struct Prober {
    stop: Arc<AtomicBool>,
    replies: Arc<Mutex<Vec<Reply>>>,
    threads: Vec<JoinHandle<()>>,
}

const ETH_P_IP: u16 = 0x0800;

fn rfc1071(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = match c {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Prober {
    /// Starts pinging `target` from inside `netns` every `every`.
    pub fn start(netns: &str, target: Ipv4Addr, every: Duration) -> std::io::Result<Prober> {
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let ns1 = netns.to_string();
        // Open both sockets inside the namespace first, so errors surface here.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = (|| -> std::io::Result<(Socket, OwnedFd)> {
                let _g = netlab::enter(&ns1).map_err(std::io::Error::other)?;
                let icmp = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
                // SAFETY: socket(2) returns a new descriptor or -1.
                let fd = unsafe {
                    libc::socket(
                        libc::AF_PACKET,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        i32::from(ETH_P_IP.to_be()),
                    )
                };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor owned by nobody else.
                let pkt = unsafe { OwnedFd::from_raw_fd(fd) };
                let tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 50_000,
                };
                // SAFETY: a live timeval of the stated size on a live descriptor.
                unsafe {
                    libc::setsockopt(
                        pkt.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_RCVTIMEO,
                        (&tv as *const libc::timeval).cast(),
                        std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                    );
                }
                Ok((icmp, pkt))
            })();
            let _ = tx.send(r);
        });
        let (icmp, pkt) = rx
            .recv()
            .map_err(|_| std::io::Error::other("prober set-up thread died"))??;
        let s1 = stop.clone();
        let sender = std::thread::spawn(move || {
            let dst = SockAddr::from(SocketAddrV4::new(target, 0));
            let mut seq: u16 = 0;
            let mut pkt = [0u8; 16];
            while !s1.load(Ordering::Relaxed) {
                seq = seq.wrapping_add(1);
                pkt.fill(0);
                pkt[0] = 8; // echo request
                pkt[4..6].copy_from_slice(&0x5eedu16.to_be_bytes());
                pkt[6..8].copy_from_slice(&seq.to_be_bytes());
                let c = rfc1071(&pkt);
                pkt[2..4].copy_from_slice(&c.to_be_bytes());
                let _ = icmp.send_to(&pkt, &dst);
                std::thread::sleep(every);
            }
        });
        let (s2, r2) = (stop.clone(), replies.clone());
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let target = target.octets();
            while !s2.load(Ordering::Relaxed) {
                // SAFETY: reads into a live local buffer of the stated length.
                let n =
                    unsafe { libc::recv(pkt.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                let at = Instant::now();
                let Ok(n) = usize::try_from(n) else { continue };
                let Some(frame) = buf.get(..n) else { continue };
                if let Some(mac) = echo_reply_from(frame, target) {
                    if let Ok(mut l) = r2.lock() {
                        l.push(Reply { at, mac });
                    }
                }
            }
        });
        Ok(Prober {
            stop,
            replies,
            threads: vec![sender, receiver],
        })
    }

    /// Waits for the first reply from `mac` that arrived at or after `since`.
    pub fn wait_reply_from(
        &self,
        mac: [u8; 6],
        since: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(l) = self.replies.lock() {
                if let Some(r) = l.iter().find(|r| r.mac == mac && r.at >= since) {
                    return Some(r.at);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The Ethernet source of an ICMP echo reply from `target`, if `frame` is one.
fn echo_reply_from(frame: &[u8], target: [u8; 4]) -> Option<[u8; 6]> {
    let mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    if frame.get(12..14)? != ETH_P_IP.to_be_bytes() {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 1 || ip.get(12..16)? != target {
        return None;
    }
    (*ip.get(ihl)? == 0).then_some(mac)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for m in mac.iter_mut() {
        *m = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}
