//! The serving side: answers pull rounds for named plain directory trees.
//!
//! Each accepted connection gets its own thread (at most [`ServerConfig::max_connections`]; more
//! are closed at once). Per set, one [`Scanner`] behind a mutex produces the manifest (cached
//! hashes, optional inotify watch) and a short history of recently served manifests, so that a
//! puller one or a few generations behind receives only the manifest *difference*; a puller
//! further behind receives the whole manifest.
//!
//! File data is read from the live tree when a puller asks. A file that changed since the
//! manifest was made is still sent, with the hash of what was actually read; the puller notices
//! the mismatch, keeps the old generation and retries next round. Only paths that are files of
//! the manifest announced on this connection are served, opened with `O_NOFOLLOW`.
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::auth::{server_handshake, variant_name, Identity, Key};
use super::compress::FEATURE_ZSTD;
use super::frame::{FrameReader, FrameWriter};
use super::msg::{BackupMode, Encoding, FetchItem, Msg};
use super::tls::Conn;
use super::{ServerTransport, TransferError};
use crate::delta::{diff, Signature};
use crate::tree::exclude::Excludes;
use crate::tree::manifest::{GenId, Manifest, ManifestDelta};
use crate::tree::scan::{FileKey, GrownFile, ScanHashes, Scanner};

/// Most items a puller may ask for in one fetch.
pub const MAX_FETCH_ITEMS: usize = 4096;
/// Size of one data chunk.
pub const CHUNK: usize = 256 << 10;
/// Manifest parts are cut at about this many encoded bytes.
const PART_BYTES: usize = 1 << 20;
/// Manifests remembered per set for difference answers.
const HISTORY: usize = 8;

/// One directory tree served under a name.
#[derive(Clone, Debug)]
pub struct ServedSet {
    /// Name the puller asks for.
    pub name: String,
    /// The live directory.
    pub root: PathBuf,
    /// Excluded patterns.
    pub excludes: Excludes,
    /// Watch the tree with inotify so polls without change skip the scan.
    pub watch: bool,
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Pre-shared key.
    pub key: Key,
    /// Who we are.
    pub identity: Identity,
    /// The sets served.
    pub sets: Vec<ServedSet>,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Read/write timeout on connections.
    pub io_timeout: Duration,
    /// TLS and compression (both off by default).
    pub transport: ServerTransport,
}

/// What the server knows about one puller ("backup ... is UP (active), in sync").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The puller's node id.
    pub node_id: String,
    /// Its software version.
    pub software: String,
    /// Its backup mode.
    pub mode: BackupMode,
    /// Its address.
    pub addr: Option<SocketAddr>,
    /// The set it pulled last.
    pub set: String,
    /// When we last heard from it.
    pub last_seen: SystemTime,
    /// The generation it reported holding.
    pub generation: Option<GenId>,
    /// Our generation of that set when it was last seen.
    pub served: Option<GenId>,
}

impl PeerRecord {
    /// Whether the puller held our generation at its last contact.
    pub fn in_sync(&self) -> bool {
        self.generation.is_some() && self.generation == self.served
    }
}

struct SetState {
    scanner: Scanner,
    history: VecDeque<(GenId, Arc<Manifest>)>,
}

struct Shared {
    cfg: ServerConfig,
    sets: HashMap<String, Mutex<SetState>>,
    peers: Mutex<HashMap<String, PeerRecord>>,
    active: AtomicUsize,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the whole server down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sync server.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

/// A server running on its own thread.
pub struct ServerHandle {
    /// The server (for status queries).
    pub server: Server,
    /// The address it listens on.
    pub addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting and waits for the accept loop to end.
    pub fn stop(mut self) {
        self.server.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    /// Prepares the sets (starting inotify watches where asked; a failed watch is logged and the
    /// set is scanned on every poll instead).
    pub fn new(cfg: ServerConfig) -> Server {
        let mut sets = HashMap::new();
        for s in &cfg.sets {
            let mut scanner = Scanner::new(s.root.clone(), s.excludes.clone());
            if s.watch {
                if let Err(e) = scanner.watch() {
                    log::warn!(
                        "set {}: no inotify watch on {} ({e}); scanning on every poll",
                        s.name,
                        s.root.display()
                    );
                }
            }
            sets.insert(
                s.name.clone(),
                Mutex::new(SetState {
                    scanner,
                    history: VecDeque::new(),
                }),
            );
        }
        Server {
            shared: Arc::new(Shared {
                cfg,
                sets,
                peers: Mutex::new(HashMap::new()),
                active: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
            }),
        }
    }

    /// The pullers seen so far.
    pub fn peers(&self) -> Vec<PeerRecord> {
        let mut v: Vec<_> = lock(&self.shared.peers).values().cloned().collect();
        v.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        v
    }

    /// The current generation of a set (scanning if needed).
    pub fn generation(&self, set: &str) -> Result<GenId, TransferError> {
        let st = self
            .shared
            .sets
            .get(set)
            .ok_or_else(|| TransferError::Protocol(format!("unknown set {set:?}")))?;
        Ok(lock(st).scanner.manifest()?.1)
    }

    /// Waits until the scan-ahead thread has caught up with every change to a watched set (its
    /// manifest is current), at most `timeout`; returns whether it has. Benchmarks call this
    /// before a timed round so that no tool's round shares the machine with our background
    /// scan; a puller never needs it. `false` at once for an unknown or unwatched set.
    pub fn wait_scanned(&self, set: &str, timeout: Duration) -> bool {
        let Some(st) = self.shared.sets.get(set) else {
            return false;
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            {
                let st = lock(st);
                if st.scanner.is_current() {
                    return true;
                }
                if !st.scanner.is_watched() {
                    return false;
                }
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// (full scans done, files hashed) of a set's scanner, or `None` for an unknown set.
    pub fn scan_stats(&self, set: &str) -> Option<(u64, u64)> {
        self.shared.sets.get(set).map(|st| lock(st).scanner.stats())
    }

    /// Runs the server on its own thread.
    pub fn spawn(self, listener: TcpListener) -> Result<ServerHandle, TransferError> {
        let addr = listener
            .local_addr()
            .map_err(|e| TransferError::io("local address", e))?;
        let server = self.clone();
        let thread = std::thread::Builder::new()
            .name("sync-server".into())
            .spawn(move || server.serve(listener))
            .map_err(|e| TransferError::io("spawning server thread", e))?;
        Ok(ServerHandle {
            server: self,
            addr,
            thread: Some(thread),
        })
    }

    /// Accepts connections until stopped, one thread each. Watched sets are rescanned in the
    /// background once their tree has been quiet for [`SCAN_AHEAD_QUIET`] after a change, so a
    /// puller normally finds the new manifest ready instead of waiting for the walk.
    pub fn serve(&self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
        let ahead = std::thread::Builder::new()
            .name("sync-scan-ahead".into())
            .spawn(move || scan_ahead(&shared));
        if let Err(e) = ahead {
            log::warn!("no scan-ahead thread ({e}); sets are scanned when a puller asks");
        }
        for conn in listener.incoming() {
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let n = self.shared.active.fetch_add(1, Ordering::SeqCst);
            if n >= self.shared.cfg.max_connections {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                log::warn!("refusing connection: {n} already active");
                continue;
            }
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("sync-conn".into())
                .spawn(move || {
                    let peer = stream.peer_addr().ok();
                    if let Err(e) = handle(&shared, stream) {
                        log::warn!(
                            "connection from {}: {e}",
                            peer.map_or("?".into(), |p| p.to_string())
                        );
                    }
                    shared.active.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                log::warn!("spawning connection thread: {e}");
            }
        }
    }
}

/// How long a watched tree must be quiet after a change before it is scanned ahead.
pub const SCAN_AHEAD_QUIET: Duration = Duration::from_millis(100);

/// The scan-ahead loop (see [`Server::serve`]); ends when the server stops.
fn scan_ahead(shared: &Shared) {
    // A set whose scan failed is left to the pullers for a while (they report the error)
    // instead of being rescanned every tick.
    let mut failed: HashMap<&str, std::time::Instant> = HashMap::new();
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(SCAN_AHEAD_QUIET / 2);
        for (name, state) in &shared.sets {
            if failed
                .get(name.as_str())
                .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
            {
                continue;
            }
            let mut st = lock(state);
            if st.scanner.wants_scan_ahead(SCAN_AHEAD_QUIET) {
                match st.scanner.manifest() {
                    Ok(_) => {
                        failed.remove(name.as_str());
                    }
                    Err(e) => {
                        log::debug!("scan ahead of set {name}: {e}");
                        failed.insert(name, std::time::Instant::now());
                    }
                }
            }
        }
    }
}

fn handle(shared: &Shared, stream: TcpStream) -> Result<(), TransferError> {
    let t = Some(shared.cfg.io_timeout);
    stream
        .set_read_timeout(t)
        .and_then(|()| stream.set_write_timeout(t))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| TransferError::io("configuring socket", e))?;
    let addr = stream.peer_addr().ok();
    let conn = super::tls::accept(shared.cfg.transport.tls.as_ref(), stream)?;
    let rs = conn
        .try_clone()
        .map_err(|e| TransferError::io("cloning socket", e))?;
    let mut r = FrameReader::new(rs);
    let mut w = FrameWriter::new(conn);
    let compression = shared.cfg.transport.compression;
    let mut me = shared.cfg.identity.clone();
    me.features = compression.map_or(0, |_| FEATURE_ZSTD);
    let hello = server_handshake(&mut r, &mut w, &shared.cfg.key, &me)?;
    if let Some(level) = compression.filter(|_| hello.features & FEATURE_ZSTD != 0) {
        w.compress_data(level)?;
    }
    let mut served: Option<(PathBuf, Arc<Manifest>)> = None;
    // Files of the served manifest that grew, with their old version's hash (see serve_file).
    let mut grown: Arc<HashMap<String, GrownFile>> = Arc::default();
    let mut hashes: Arc<ScanHashes> = Arc::default();
    let record = |set: &str, have: Option<GenId>, ours: Option<GenId>| {
        let mut peers = lock(&shared.peers);
        peers.insert(
            hello.node_id.clone(),
            PeerRecord {
                node_id: hello.node_id.clone(),
                software: hello.software.clone(),
                mode: hello.mode,
                addr,
                set: set.to_string(),
                last_seen: SystemTime::now(),
                generation: have,
                served: ours,
            },
        );
    };
    let mut last_set = String::new();
    while let Some(msg) = r.read_opt()? {
        match msg {
            Msg::Pull { set, have } => {
                let Some(state) = shared.sets.get(&set) else {
                    return refuse(&mut w, format!("unknown sync set {set:?}"));
                };
                let root = shared
                    .cfg
                    .sets
                    .iter()
                    .find(|s| s.name == set)
                    .map(|s| s.root.clone())
                    .unwrap_or_default();
                let (manifest, gen, base) = {
                    let mut st = lock(state);
                    let (m, gen) = match st.scanner.manifest() {
                        Ok(x) => x,
                        Err(e) => return refuse(&mut w, format!("scanning set {set:?}: {e}")),
                    };
                    if st.history.back().map(|h| h.0) != Some(gen) {
                        st.history.push_back((gen, Arc::clone(&m)));
                        if st.history.len() > HISTORY {
                            st.history.pop_front();
                        }
                    }
                    let base = have.and_then(|h| {
                        st.history
                            .iter()
                            .find(|(g, _)| *g == h)
                            .map(|(_, m)| Arc::clone(m))
                    });
                    grown = st.scanner.grown();
                    hashes = st.scanner.hashes();
                    (m, gen, base)
                };
                record(&set, have, Some(gen));
                last_set = set;
                if have == Some(gen) {
                    w.write(&Msg::Unchanged { gen })?;
                } else {
                    let base_id = base.as_ref().and(have);
                    send_manifest(&mut w, &manifest, gen, base.as_deref(), base_id)?;
                }
                w.flush()?;
                served = Some((root, manifest));
            }
            Msg::Fetch { items } => {
                let Some((root, manifest)) = &served else {
                    return refuse(&mut w, "Fetch before Pull".into());
                };
                if items.len() > MAX_FETCH_ITEMS {
                    return refuse(&mut w, format!("fetch of {} items", items.len()));
                }
                for (i, item) in items.iter().enumerate() {
                    serve_file(&mut w, root, (manifest, &grown, &hashes), i as u32, item)?;
                    // Each file goes out when it is complete, so the puller writes and
                    // verifies it while we prepare the next (a batch of small deltas would
                    // otherwise sit in the write buffer until it fills: no overlap at all).
                    w.flush()?;
                }
                w.write(&Msg::BatchEnd)?;
                w.flush()?;
            }
            Msg::Done { gen } => {
                let ours = served.as_ref().map(|(_, m)| m.id());
                record(&last_set, Some(gen), ours);
            }
            other => {
                return refuse(
                    &mut w,
                    format!("unexpected {} from puller", variant_name(&other)),
                )
            }
        }
    }
    Ok(())
}

fn refuse(w: &mut FrameWriter<Conn>, message: String) -> Result<(), TransferError> {
    let _ = w.write(&Msg::Error {
        message: message.clone(),
    });
    let _ = w.flush();
    Err(TransferError::Protocol(message))
}

fn send_manifest(
    w: &mut FrameWriter<Conn>,
    m: &Manifest,
    gen: GenId,
    base: Option<&Manifest>,
    base_id: Option<GenId>,
) -> Result<(), TransferError> {
    let d = match base {
        Some(b) => m.delta_from(b),
        None => ManifestDelta {
            root: m.root,
            upserts: m.entries.clone(),
            deletions: Vec::new(),
        },
    };
    w.write(&Msg::ManifestBegin {
        gen,
        base: base_id,
        root: d.root,
        upserts: d.upserts.len() as u64,
        deletions: d.deletions.len() as u64,
    })?;
    let mut ups = Vec::new();
    let mut dels = Vec::new();
    let mut size = 0usize;
    let mut flush = |ups: &mut Vec<_>, dels: &mut Vec<_>, size: &mut usize| {
        *size = 0;
        w.write(&Msg::ManifestPart {
            upserts: std::mem::take(ups),
            deletions: std::mem::take(dels),
        })
    };
    for e in d.upserts {
        size += e.path.len() + 96;
        if let crate::tree::manifest::EntryKind::Symlink { target } = &e.kind {
            size += target.len();
        }
        ups.push(e);
        if size >= PART_BYTES {
            flush(&mut ups, &mut dels, &mut size)?;
        }
    }
    for p in d.deletions {
        size += p.len() + 8;
        dels.push(p);
        if size >= PART_BYTES {
            flush(&mut ups, &mut dels, &mut size)?;
        }
    }
    if !ups.is_empty() || !dels.is_empty() {
        flush(&mut ups, &mut dels, &mut size)?;
    }
    Ok(())
}

/// Reads through to a hasher.
struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut blake3::Hasher,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Cuts a byte stream (the delta) into `HashedData` frames: the puller hashes the file it
/// rebuilds from them, every byte, and checks it against the manifest.
struct DataWriter<'a> {
    w: &'a mut FrameWriter<Conn>,
    buf: Vec<u8>,
}

impl DataWriter<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let sent = self.w.write_hashed_data(&self.buf);
        self.buf.clear();
        sent.map_err(std::io::Error::other)
    }
}

impl Write for DataWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK.saturating_sub(self.buf.len());
        let n = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A read buffer for `len` bytes: at most [`CHUNK`], at least one page (a file may have grown).
fn chunk_for(len: u64) -> usize {
    usize::try_from(len).map_or(CHUNK, |l| l.clamp(4096, CHUNK))
}

fn serve_file(
    w: &mut FrameWriter<Conn>,
    root: &std::path::Path,
    (manifest, grown, hashes): (&Manifest, &HashMap<String, GrownFile>, &ScanHashes),
    index: u32,
    item: &FetchItem,
) -> Result<(), TransferError> {
    let gone =
        |w: &mut FrameWriter<Conn>, reason: String| w.write(&Msg::FileGone { index, reason });
    let Some((size, want)) = manifest.get(&item.path).and_then(|e| e.file()) else {
        return gone(w, "not a file of the announced generation".into());
    };
    let path = root.join(&item.path);
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => return gone(w, format!("open: {e}")),
    };
    let io = |e| TransferError::io(format!("reading {}", path.display()), e);
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    // The scan that made this manifest found that the file grew from exactly the version the
    // puller offers: while the file is still the version scanned (same size, mtime, inode,
    // ctime), its old part needs no second read, and its whole hash is the scan's.
    let known = match (item.prefix, grown.get(&item.path)) {
        (Some((plen, phash)), Some(g)) if g.prefix_len == plen && g.prefix_hash == phash => file
            .metadata()
            .ok()
            .filter(|md| FileKey::of(md) == g.key)
            .map(|_| *g),
        _ => None,
    };
    if let Some(g) = known {
        file.seek(SeekFrom::Start(g.prefix_len)).map_err(io)?;
        offset = g.prefix_len;
    } else if let Some((plen, phash)) = item.prefix {
        if plen > 0 && plen <= size {
            // Large reads: BLAKE3 hashes big inputs several chunks at a time (SIMD), and
            // std::io::copy would feed it 8 KiB pieces.
            let copied = hash_prefix(&mut file, plen, &mut hasher).map_err(io)?;
            if copied == plen && *hasher.finalize().as_bytes() == phash {
                offset = plen;
            } else {
                hasher = blake3::Hasher::new();
                file.seek(SeekFrom::Start(0)).map_err(io)?;
            }
        }
    }
    if offset == 0 && !item.signature.is_empty() {
        match Signature::deserialize(&item.signature) {
            Ok(sig) => return send_delta(w, index, &sig, file, hasher),
            Err(e) => log::warn!("bad signature for {}: {e}; sending it whole", item.path),
        }
    }
    // A whole file that is still the version the scan hashed (its key now, and again after the
    // read, is the one the hash was cached under; see Scanner::hashes) is not hashed a second
    // time: the scan's hash, the manifest's, covers what is sent, as for a grown file above.
    let scanned = match (offset, hashes.get(&item.path)) {
        (0, Some(&(key, hash)))
            if hash == want && file.metadata().is_ok_and(|md| FileKey::of(&md) == key) =>
        {
            Some(key)
        }
        _ => None,
    };
    w.write(&Msg::FileBegin {
        index,
        encoding: Encoding::Literal { offset },
    })?;
    // Sized to the file: a small file does not zero a whole chunk.
    let mut buf = vec![0u8; chunk_for(size.saturating_sub(offset))];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if scanned.is_none() {
            hasher.update(chunk);
        }
        // A whole file is hashed by the puller itself, every byte (frame::Hashed data); the
        // tail of a resumed one may be taken on our word (our hash covers its prefix, which
        // the puller trusts), so each of its frames is tagged whole.
        if offset == 0 {
            w.write_hashed_data(chunk)?;
        } else {
            w.write_data(chunk)?;
        }
    }
    let still = |key: FileKey| file.metadata().is_ok_and(|md| FileKey::of(&md) == key);
    let hash = match (known, scanned) {
        // Still the scanned version after reading: the scan's hash covers what was sent. If it
        // changed meanwhile, the hash of the tail alone cannot match the manifest's, and the
        // puller keeps its generation and tries again next round.
        (Some(g), _) if still(g.key) => g.hash,
        (None, Some(key)) if still(key) => want,
        // Changed while being sent, and not hashed: the hash of nothing, which no non-empty
        // manifest entry has (the puller refuses the file and tries again next round; for an
        // empty entry, any byte sent is already more than its size).
        (None, Some(_)) => *blake3::Hasher::new().finalize().as_bytes(),
        _ => *hasher.finalize().as_bytes(),
    };
    w.write(&Msg::FileEnd { hash })
}

/// Feeds the first `len` bytes of `file` to `hasher`; returns how many there were.
fn hash_prefix(file: &mut File, len: u64, hasher: &mut blake3::Hasher) -> std::io::Result<u64> {
    let mut buf = vec![0u8; chunk_for(len)];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = match file.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        done += n as u64;
    }
    Ok(done)
}

fn send_delta(
    w: &mut FrameWriter<Conn>,
    index: u32,
    sig: &Signature,
    file: File,
    mut hasher: blake3::Hasher,
) -> Result<(), TransferError> {
    w.write(&Msg::FileBegin {
        index,
        encoding: Encoding::Delta,
    })?;
    let idx = sig.index();
    {
        let mut dw = DataWriter {
            w,
            buf: Vec::with_capacity(CHUNK),
        };
        diff(
            &idx,
            HashingReader {
                inner: std::io::BufReader::with_capacity(CHUNK, file),
                hasher: &mut hasher,
            },
            &mut dw,
        )?;
        dw.flush()
            .map_err(|e| TransferError::io("sending delta", e))?;
    }
    w.write(&Msg::FileEnd {
        hash: *hasher.finalize().as_bytes(),
    })
}
