//! The supervisor: one thread that wires the VRRP node, the sync sets, the hooks, the pair
//! heartbeat, the admin port forward and the control socket together.
//!
//! # What it does in each state
//!
//! | node state | serves | pulls | hooks |
//! |---|---|---|---|
//! | operational | every `from_operational` set; `from_primary` sets if primary | `from_primary` sets from the primary (secondary only) | `operational` |
//! | standby, active | `from_primary` sets if primary | every other set, on its interval | `standby` |
//! | standby, passive | nothing | nothing | `standby` |
//! | fault | nothing | nothing | `fault` (the runtime has already released the addresses) |
//!
//! The node is *operational* when at least one instance is master, in *fault* when one is in
//! fault (fault wins), else *standby*.
//!
//! # Data layout
//!
//! Each set's `root` is a generation store ([`sync::tree::store`]): applications read and write
//! `ROOT/current`. A node serves `ROOT/current` as a plain tree; a node pulls into the store, so
//! `ROOT/current` switches atomically to each complete generation, and an application started
//! by the `operational` hook after a takeover starts on the latest complete generation. A fresh
//! primary may hold `ROOT/current` as a plain directory (its seed data); if such a node ever has
//! to pull that set, the plain directory first becomes the store's generation where it is
//! (`GenStore::adopt_plain_current`), so it stays the basis and the data in `current`.
//!
//! # Failback without data loss (preempt hold)
//!
//! A node that enters standby while it outranks the master (a primary returning after an
//! outage, a fault, or a restart) holds preemption off until it has pulled every set that
//! flows from the operational node once, in a round started after it entered standby; then it
//! lets preemption go and takes over by the ordinary VRRP rules. So the data the PBX wrote on
//! the other node meanwhile is in its store before its applications start, and the other
//! node, now standby, pulls it back instead of losing it. `sync.preempt_hold_max` bounds the
//! hold (logged when it expires); a node that hears no master takes over as always. Pure
//! logic in [`crate::hold`].
//!
//! # Swap (zero data loss)
//!
//! `swap` on the master sends the heartbeat command `swap` to a standby. The standby (or a
//! `swap` given on the standby itself) pulls every set it pulls until its generations equal the
//! ones the master announces, then takes over (the router advertises priority 254 until
//! released, RFC 5798 section 6.4.3: the master yields on the first advertisement) and sends
//! the heartbeat command `release`, on which the master sends priority 0 and releases. The old
//! master keeps its backup mode. A graceful shutdown (SIGTERM) of a master with a standby in
//! sight does the same before stopping.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, tick, unbounded, Receiver, Sender};
use parking_lot::Mutex;

use sync::transfer::auth::{Identity, Key};
use sync::transfer::compress::Level;
use sync::transfer::msg::BackupMode as WireMode;
use sync::transfer::puller::{pull_once, PullConfig};
use sync::transfer::server::{ServedSet, Server, ServerConfig, ServerHandle};
use sync::transfer::{PullTransport, ServerTransport, TlsClient};
use sync::tree::exclude::Excludes;
use sync::tree::store::GenStore;
use vrrp::linux::{Command as NodeCommand, Event as NodeEvent, Node, Options};
use vrrp::router::{Mode, State};

use crate::config::{BackupMode, Config, Direction, Role, SyncSet};
use crate::control::{ControlError, ControlServer, Incoming, Request, Response};
use crate::heartbeat::{self, Beat, InstanceInfo, PeerCommand};
use crate::hold::{HoldEnd, PreemptHold};
use crate::status::{
    unix_time, AdminForwardStatus, HookCommands, HookStatus, InstanceStatus, NodeState, PeerStatus,
    PreemptHoldStatus, ReloadStatus, SetStatus, StandbyStatus, Status,
};

/// Heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A peer not heard for this long is down.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(1600);
/// How long a swap may take (pull rounds included).
pub const SWAP_TIMEOUT: Duration = Duration::from_secs(60);
/// Hook results kept in the status.
const HOOK_HISTORY: usize = 16;

/// Errors starting the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The pre-shared key file is unusable.
    #[error("{file}: sync.key_file: {reason}")]
    Key {
        /// The configuration file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A `[sync.tls]` file is unusable.
    #[error("{file}: sync.tls: {reason}")]
    Tls {
        /// The configuration file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The VRRP node did not start.
    #[error("vrrp: {0}")]
    Vrrp(#[from] vrrp::linux::runtime::RuntimeError),
    /// The control socket did not start.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A socket or thread could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Messages to the supervisor thread from its handle.
enum Msg {
    Shutdown,
    Reload(Box<Config>),
    ReloadFailed { file: String, error: String },
}

/// A running supervisor.
pub struct Supervisor {
    thread: Option<JoinHandle<()>>,
    tx: Sender<Msg>,
}

impl Supervisor {
    /// Starts the VRRP node (in the calling thread's network namespace), the control socket,
    /// the heartbeat and the supervisor thread.
    pub fn start(cfg: Config) -> Result<Supervisor, SupervisorError> {
        let psk_bytes = std::fs::read(&cfg.key_file).map_err(|e| SupervisorError::Key {
            file: cfg.file.clone(),
            reason: format!("{}: {e}", cfg.key_file.display()),
        })?;
        let psk_bytes = psk_bytes.trim_ascii().to_vec();
        let key = Key::from_bytes(&psk_bytes).map_err(|e| SupervisorError::Key {
            file: cfg.file.clone(),
            reason: format!("{}: {e}", cfg.key_file.display()),
        })?;
        let tls = match &cfg.sync_tls {
            Some(t) => Some(t.client().map_err(|e| SupervisorError::Tls {
                file: cfg.file.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        // A node starts as a returning node: preemption held until it pulled (module docs).
        let held = holds_preemption(&cfg);
        let mut instances = Vec::new();
        for i in 0..cfg.instances.len() {
            if let Some(mut rc) = cfg.runtime_instance(i, cfg.mode) {
                if held && held_instance(&cfg, i) {
                    rc.router.preempt = false;
                }
                instances.push(rc);
            }
        }
        let mut hold = PreemptHold::new(cfg.preempt_hold_max);
        if held {
            let sets = awaited_sets(&cfg);
            log_hold_begins(&sets, cfg.preempt_hold_max);
            hold.begin(Instant::now(), sets);
        }
        let node = Arc::new(Node::start(instances, Options::default())?);
        let io = |what: &str| {
            let what = what.to_string();
            move |source| SupervisorError::Io { what, source }
        };
        let udp = UdpSocket::bind(cfg.sync_listen)
            .map_err(io(&format!("heartbeat socket on udp {}", cfg.sync_listen)))?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(io("heartbeat socket"))?;
        let (ctl_tx, ctl_rx) = unbounded();
        let control = ControlServer::start(&cfg.control_socket, ctl_tx, SWAP_TIMEOUT)?;

        let stop = Arc::new(AtomicBool::new(false));
        let (beat_tx, beat_rx) = unbounded();
        let recv_sock = udp.try_clone().map_err(io("heartbeat socket"))?;
        let psk_recv = psk_bytes.clone();
        let stop_recv = Arc::clone(&stop);
        let beat_thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || receive_beats(recv_sock, &psk_recv, &beat_tx, &stop_recv))
            .map_err(io("spawn heartbeat thread"))?;

        let (hook_tx, hook_rx) = unbounded();
        let (swap_tx, swap_rx) = unbounded();
        let pullers = cfg
            .sets
            .iter()
            .map(|s| PullerHandle::start(s.clone(), tls.clone(), key.clone(), cfg.node_id.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io("spawn puller thread"))?;
        let (tx, rx) = unbounded();
        let mode = cfg.mode;
        let n = cfg.instances.len();
        let mut sup = Sup {
            cfg,
            node,
            key,
            psk: psk_bytes,
            mode,
            state: NodeState::Starting,
            instance_states: vec![State::Initialize; n],
            udp,
            peers: BTreeMap::new(),
            server: None,
            pullers,
            admin: None,
            boot: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            seq: 0,
            outgoing: None,
            hook_tx,
            hooks: Vec::new(),
            errors: BTreeMap::new(),
            swap_tx,
            pending: None,
            serving_gens: BTreeMap::new(),
            serving_checked: None,
            stopping: None,
            reload: None,
            hold,
        };
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || {
                sup.run(&rx, &ctl_rx, &beat_rx, &hook_rx, &swap_rx);
                stop.store(true, Ordering::SeqCst);
                drop(control);
                let _ = beat_thread.join();
            })
            .map_err(io("spawn supervisor thread"))?;
        Ok(Supervisor {
            thread: Some(thread),
            tx,
        })
    }

    /// Graceful stop: hands over to a standby if this node is operational and one is in sight,
    /// then sends priority 0, releases the addresses and stops. Waits for the end.
    pub fn shutdown(mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Applies a new configuration where possible (hooks, peers, admin forward, backup mode,
    /// sync intervals and excludes, `sync.preempt_hold_max`, and each instance's priority and
    /// preempt, except to or from the owner's 255); other changes are logged and shown in `status` as needing
    /// a restart, and keep their old values.
    pub fn reload(&self, cfg: Config) {
        let _ = self.tx.send(Msg::Reload(Box::new(cfg)));
    }

    /// Records a reload that was refused (the file did not load): the old configuration stays
    /// in force, and `status` shows the error.
    pub fn reload_failed(&self, file: &Path, error: String) {
        let _ = self.tx.send(Msg::ReloadFailed {
            file: file.display().to_string(),
            error,
        });
    }

    /// Whether the supervisor thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.tx.send(Msg::Shutdown);
            let _ = t.join();
        }
    }
}

fn receive_beats(sock: UdpSocket, psk: &[u8], tx: &Sender<(Beat, SocketAddr)>, stop: &AtomicBool) {
    let mut buf = vec![0u8; heartbeat::MAX_DATAGRAM + 1];
    let mut last_warn: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => match heartbeat::decode(psk, buf.get(..n).unwrap_or(&[])) {
                Ok(b) => {
                    if tx.send((b, from)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        log::warn!("heartbeat from {from} dropped: {e}");
                        last_warn = Some(Instant::now());
                    }
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                log::warn!("heartbeat receive: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

// --- sync sets -------------------------------------------------------------------------------

/// What the supervisor tells a puller thread.
#[derive(Clone, Debug, Default)]
struct Plan {
    source: Option<SocketAddr>,
    mode: Option<WireMode>,
}

#[derive(Clone, Debug, Default)]
struct SetRuntime {
    /// When the last successful round started, and from where it pulled (the preempt hold
    /// counts only rounds started after it began, from the current master).
    last_ok_round: Option<(Instant, SocketAddr)>,
    last_sync: Option<SystemTime>,
    duration: Option<Duration>,
    bytes: Option<u64>,
    last_error: Option<String>,
}

enum PullReq {
    Now(Sender<Result<String, String>>),
    Stop,
}

struct PullerHandle {
    /// The set as configured; a reload may change its interval and excludes.
    set: Arc<Mutex<SyncSet>>,
    plan: Arc<Mutex<Plan>>,
    rt: Arc<Mutex<SetRuntime>>,
    tx: Sender<PullReq>,
    thread: Option<JoinHandle<()>>,
}

impl PullerHandle {
    fn start(
        set: SyncSet,
        tls: Option<TlsClient>,
        key: Key,
        node_id: String,
    ) -> std::io::Result<PullerHandle> {
        let plan = Arc::new(Mutex::new(Plan::default()));
        let rt = Arc::new(Mutex::new(SetRuntime::default()));
        let (tx, rx) = unbounded();
        let name = format!("pull-{}", set.name);
        let set = Arc::new(Mutex::new(set));
        let (p2, r2, s2) = (Arc::clone(&plan), Arc::clone(&rt), Arc::clone(&set));
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || puller_loop(&s2, tls.as_ref(), &key, &node_id, &p2, &r2, &rx))?;
        Ok(PullerHandle {
            set,
            plan,
            rt,
            tx,
            thread: Some(thread),
        })
    }
}

impl Drop for PullerHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(PullReq::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The generation `ROOT/current` points to (hex), read from the symlink.
fn holding_generation(root: &Path) -> Option<String> {
    let target = std::fs::read_link(root.join("current")).ok()?;
    let name = target.file_name()?.to_str()?;
    sync::tree::manifest::GenId::from_hex(name).map(|g| g.to_hex())
}

fn puller_loop(
    shared_set: &Mutex<SyncSet>,
    tls: Option<&TlsClient>,
    key: &Key,
    node_id: &str,
    plan: &Mutex<Plan>,
    rt: &Mutex<SetRuntime>,
    rx: &Receiver<PullReq>,
) {
    let mut store: Option<GenStore> = None;
    let mut next = Instant::now();
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let reply = match rx.recv_timeout(wait) {
            Ok(PullReq::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Ok(PullReq::Now(r)) => Some(r),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
        };
        let set = shared_set.lock().clone();
        let set = &set;
        next = Instant::now() + set.interval;
        let p = plan.lock().clone();
        let (Some(source), Some(mode)) = (p.source, p.mode) else {
            if let Some(r) = reply {
                let _ = r.send(Err(format!("set {}: not pulling now", set.name)));
            }
            continue;
        };
        let started = Instant::now();
        let result = pull_round(set, tls, key, node_id, source, mode, &mut store);
        let mut r = rt.lock();
        let answer = match result {
            Ok(rep) => {
                r.last_ok_round = Some((started, source));
                let gen = rep.generation.map(|g| g.to_hex());
                let bytes = rep.bytes_sent + rep.bytes_received;
                // One line per round, unchanged rounds included (issue 4: each sync round).
                log::info!("sync {}: from {source}: {rep}", set.name);
                r.last_sync = Some(SystemTime::now());
                r.duration = Some(rep.duration);
                r.bytes = Some(bytes);
                r.last_error = None;
                Ok(gen.unwrap_or_default())
            }
            Err(e) => {
                if r.last_error.as_deref() != Some(e.as_str()) {
                    log::warn!("sync {}: from {source}: {e}", set.name);
                }
                r.last_error = Some(e.clone());
                Err(e)
            }
        };
        drop(r);
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
    }
}

fn pull_round(
    set: &SyncSet,
    tls: Option<&TlsClient>,
    key: &Key,
    node_id: &str,
    source: SocketAddr,
    mode: WireMode,
    store: &mut Option<GenStore>,
) -> Result<sync::transfer::puller::RoundReport, String> {
    if store.is_none() {
        let st = GenStore::open(&set.root).map_err(|e| e.to_string())?;
        // A plain seed directory becomes the store's first generation where it is: moving it
        // aside would leave the set empty if this node took over before a pull succeeded.
        if let Some(id) = st.adopt_plain_current().map_err(|e| e.to_string())? {
            log::info!(
                "sync {}: plain directory {} adopted as generation {}",
                set.name,
                set.root.join("current").display(),
                id.to_hex()
            );
        }
        *store = Some(st);
    }
    let Some(st) = store.as_ref() else {
        return Err("no store".into());
    };
    let cfg = PullConfig {
        server: source.to_string(),
        set: set.name.clone(),
        key: key.clone(),
        identity: Identity::new(node_id, mode),
        limits: Default::default(),
        io_timeout: Duration::from_secs(10),
        use_delta: true,
        transport: PullTransport {
            tls: tls.cloned(),
            compression: set.compress.is_some(),
        },
    };
    pull_once(st, &cfg).map_err(|e| e.to_string())
}

// --- admin port forward ------------------------------------------------------------------------

struct AdminForward {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl AdminForward {
    fn start(port: u16, to: SocketAddr) -> std::io::Result<AdminForward> {
        let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("admin-forward".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let _ = std::thread::Builder::new()
                        .name("admin-conn".into())
                        .spawn(move || forward(client, to));
                }
            })?;
        log::info!("admin forward: port {port} -> {to}");
        Ok(AdminForward {
            stop,
            addr,
            thread: Some(thread),
        })
    }
}

impl Drop for AdminForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let wake = SocketAddr::from(([127, 0, 0, 1], self.addr.port()));
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward(client: TcpStream, to: SocketAddr) {
    let from = client
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let upstream = match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => {
            // Closing the accepted connection at once tells the client the standby is not
            // there (it reads end-of-stream before any byte) rather than leaving it hanging.
            log::warn!("admin forward: {from} -> {to}: standby unreachable ({e}); closing");
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
    };
    log::info!("admin forward: {from} -> {to} connected");
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let (mut c, mut u) = (client, upstream);
    let _ = std::io::copy(&mut u, &mut c);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

// --- hooks -------------------------------------------------------------------------------------

fn run_hooks(
    event: &'static str,
    commands: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    tx: Sender<HookStatus>,
) {
    if commands.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name(format!("hooks-{event}"))
        .spawn(move || {
            for cmd in commands {
                let (ok, outcome) = run_hook(&cmd, &env, timeout);
                if ok {
                    log::info!("hook {event}: `{cmd}` succeeded");
                } else {
                    log::warn!("hook {event}: `{cmd}` failed: {outcome}");
                }
                let _ = tx.send(HookStatus {
                    event: event.to_string(),
                    command: cmd,
                    ok,
                    outcome,
                    at: unix_time(SystemTime::now()),
                });
            }
        });
}

fn run_hook(cmd: &str, env: &[(String, String)], timeout: Duration) -> (bool, String) {
    let mut child = match Process::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (false, format!("could not start: {e}")),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return (true, "exit 0".into()),
            Ok(Some(st)) => return (false, format!("{st}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return (false, format!("killed after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return (false, format!("wait: {e}")),
        }
    }
}

// --- the supervisor thread ---------------------------------------------------------------------

struct PeerInfo {
    beat: Beat,
    addr: SocketAddr,
    connected_since: SystemTime,
    last_seen: Instant,
    last_seen_wall: SystemTime,
    acted_seq: u64,
}

impl PeerInfo {
    fn up(&self) -> bool {
        self.last_seen.elapsed() < PEER_TIMEOUT
    }
    fn sync_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), self.beat.sync_port)
    }
}

/// A long operation waiting for a condition before it answers its control client.
enum Swap {
    /// Master: waiting to become standby after asking `to` to swap.
    AsMaster {
        to: String,
        reply: Option<Sender<Response>>,
        deadline: Instant,
    },
    /// Standby: pull rounds running in a worker; then take over.
    Pulling {
        master: String,
        reply: Option<Sender<Response>>,
        deadline: Instant,
    },
    /// Standby: took over, waiting to be operational.
    TakingOver {
        reply: Option<Sender<Response>>,
        deadline: Instant,
        summary: String,
    },
}

struct Sup {
    cfg: Config,
    node: Arc<Node>,
    key: Key,
    psk: Vec<u8>,
    mode: BackupMode,
    state: NodeState,
    instance_states: Vec<State>,
    udp: UdpSocket,
    peers: BTreeMap<String, PeerInfo>,
    server: Option<(ServerHandle, Vec<String>)>,
    pullers: Vec<PullerHandle>,
    admin: Option<AdminForward>,
    boot: u64,
    seq: u64,
    outgoing: Option<(PeerCommand, u8)>,
    hook_tx: Sender<HookStatus>,
    hooks: Vec<HookStatus>,
    errors: BTreeMap<String, Vec<String>>,
    swap_tx: Sender<Result<String, String>>,
    pending: Option<Swap>,
    serving_gens: BTreeMap<String, String>,
    serving_checked: Option<Instant>,
    stopping: Option<Instant>,
    reload: Option<ReloadStatus>,
    hold: PreemptHold,
}

/// Whether `cfg` asks for a preempt hold: a bound above zero, a set that flows from the
/// operational node, and an instance that preempts.
fn holds_preemption(cfg: &Config) -> bool {
    !cfg.preempt_hold_max.is_zero()
        && cfg
            .sets
            .iter()
            .any(|s| s.direction == Direction::FromOperational)
        && (0..cfg.instances.len()).any(|i| held_instance(cfg, i))
}

/// Whether instance `i` is one the hold applies to: it preempts, and it is not the address
/// owner (which takes over at start-up whatever the hold says, RFC 5798 section 6.4.1).
fn held_instance(cfg: &Config, i: usize) -> bool {
    cfg.instances
        .get(i)
        .is_some_and(|ins| ins.preempt && ins.priority != 255)
}

fn log_hold_begins(sets: &[String], max: Duration) {
    log::info!(
        "preempt held: waiting for sets {} to be pulled from the master (at most {max:?})",
        sets.join(", ")
    );
}

/// The sets a hold waits for: those that flow from the operational node.
fn awaited_sets(cfg: &Config) -> Vec<String> {
    cfg.sets
        .iter()
        .filter(|s| s.direction == Direction::FromOperational)
        .map(|s| s.name.clone())
        .collect()
}

impl Sup {
    fn run(
        &mut self,
        rx: &Receiver<Msg>,
        ctl: &Receiver<Incoming>,
        beats: &Receiver<(Beat, SocketAddr)>,
        hooks: &Receiver<HookStatus>,
        swaps: &Receiver<Result<String, String>>,
    ) {
        log::info!(
            "node {} ({}) starting: {} role, {} mode, {} VRRP instance(s), {} sync set(s)",
            self.cfg.node_id,
            self.cfg.node_name,
            self.cfg.role,
            self.mode,
            self.cfg.instances.len(),
            self.cfg.sets.len()
        );
        let ticker = tick(Duration::from_millis(100));
        let mut last_beat = Instant::now() - HEARTBEAT;
        let events = self.node.events().clone();
        loop {
            select! {
                recv(rx) -> m => match m {
                    Ok(Msg::Shutdown) | Err(_) => self.begin_shutdown(),
                    Ok(Msg::Reload(c)) => self.reload(*c),
                    Ok(Msg::ReloadFailed { file, error }) => {
                        self.reload = Some(ReloadStatus {
                            at: unix_time(SystemTime::now()),
                            file,
                            ok: false,
                            applied: Vec::new(),
                            restart_needed: Vec::new(),
                            error: Some(error),
                        });
                    }
                },
                recv(ctl) -> m => if let Ok(inc) = m { self.control(inc) },
                recv(events) -> e => match e {
                    Ok(e) => self.node_event(e),
                    Err(_) => {
                        log::warn!("the VRRP runtime stopped");
                        break;
                    }
                },
                recv(beats) -> b => if let Ok((b, from)) = b { self.beat(b, from) },
                recv(hooks) -> h => if let Ok(h) = h {
                    self.hooks.push(h);
                    if self.hooks.len() > HOOK_HISTORY { self.hooks.remove(0); }
                },
                recv(swaps) -> s => if let Ok(s) = s { self.swap_pulled(s) },
                recv(ticker) -> _ => {},
            }
            if last_beat.elapsed() >= HEARTBEAT || self.outgoing.is_some() {
                last_beat = Instant::now();
                self.send_beats();
            }
            self.check_peers();
            self.check_pending();
            self.check_hold();
            if let Some(since) = self.stopping {
                let handing_over = matches!(self.pending, Some(Swap::AsMaster { .. }));
                if !handing_over || since.elapsed() > SWAP_TIMEOUT {
                    break;
                }
            }
        }
        // Stop: priority 0 and release (the runtime's shutdown), then the rest.
        log::info!("node {} stopping", self.cfg.node_id);
        self.admin = None;
        if let Some((h, _)) = self.server.take() {
            h.stop();
        }
        self.pullers.clear();
        for i in 0..self.cfg.instances.len() {
            self.node.command(NodeCommand::Release(i));
        }
        self.node.command(NodeCommand::Shutdown);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.node.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.state == NodeState::Operational {
            self.run_event_hooks("standby");
        }
        log::info!("node {} stopped", self.cfg.node_id);
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Instant::now());
        if self.state == NodeState::Operational && self.pending.is_none() {
            if let Some(to) = self.pick_standby() {
                log::info!("graceful shutdown: handing over to {to} first");
                self.start_swap_as_master(to, None);
            }
        }
    }

    fn reload(&mut self, new: Config) {
        let (applied, restart_needed) = reload_plan(&self.cfg, &new);
        // Live: hooks, peers, admin forward, mode, and each set's interval and excludes.
        let excludes_changed = self
            .cfg
            .sets
            .iter()
            .zip(&new.sets)
            .any(|(o, n)| o.name == n.name && o.excludes != n.excludes);
        for (old, (set, p)) in self
            .cfg
            .sets
            .iter_mut()
            .zip(new.sets.iter().zip(&self.pullers))
        {
            if old.name != set.name {
                continue;
            }
            if old.interval != set.interval || old.excludes != set.excludes {
                old.interval = set.interval;
                old.excludes = set.excludes.clone();
                *p.set.lock() = old.clone();
                // Start the new interval now rather than after the old one.
                let (tx, _rx) = bounded(1);
                let _ = p.tx.send(PullReq::Now(tx));
            }
        }
        // Priority and preempt of each instance (by name): live, RFC 5798 section 6.4.
        for (i, (old, n)) in self
            .cfg
            .instances
            .iter_mut()
            .zip(&new.instances)
            .enumerate()
        {
            if old.name != n.name {
                continue;
            }
            let owner = old.priority == 255 || n.priority == 255;
            if old.priority != n.priority && !owner {
                log::info!(
                    "vrrp {}: priority {} -> {}",
                    old.name,
                    old.priority,
                    n.priority
                );
                old.priority = n.priority;
                self.node.command(NodeCommand::SetPriority(i, n.priority));
            }
            if old.preempt != n.preempt {
                log::info!(
                    "vrrp {}: preempt {} -> {}",
                    old.name,
                    old.preempt,
                    n.preempt
                );
                old.preempt = n.preempt;
                // A hold in force keeps preemption off until it ends.
                let on = n.preempt && !(self.hold.is_held() && old.priority != 255);
                self.node.command(NodeCommand::SetPreempt(i, on));
            }
        }
        if self.cfg.preempt_hold_max != new.preempt_hold_max {
            self.cfg.preempt_hold_max = new.preempt_hold_max;
            self.hold.set_max(new.preempt_hold_max);
        }
        let admin_changed = self.cfg.admin_forward != new.admin_forward;
        self.cfg.hooks = new.hooks;
        self.cfg.admin_forward = new.admin_forward;
        if applied.iter().any(|k| k == "node.peers") {
            self.cfg.peers = new.peers;
        }
        if new.mode != self.cfg.mode {
            self.cfg.mode = new.mode;
            self.set_mode(new.mode);
        }
        self.cfg.file = new.file.clone();
        if restart_needed.is_empty() {
            log::info!(
                "configuration reloaded from {}: applied [{}]",
                new.file,
                applied.join(", ")
            );
        } else {
            log::warn!(
                "configuration reloaded from {}: applied [{}]; NOT applied until a restart: [{}]",
                new.file,
                applied.join(", "),
                restart_needed.join(", ")
            );
        }
        self.reload = Some(ReloadStatus {
            at: unix_time(SystemTime::now()),
            file: new.file,
            ok: true,
            applied,
            restart_needed,
            error: None,
        });
        if admin_changed {
            self.admin = None;
        }
        if excludes_changed {
            // The server takes its excludes when it starts.
            if let Some((h, _)) = self.server.take() {
                h.stop();
            }
        }
        self.apply_plan();
    }

    // --- state ---

    fn node_event(&mut self, e: NodeEvent) {
        match e {
            NodeEvent::StateChanged {
                instance,
                vrid,
                from,
                to,
                reason,
                ..
            } => {
                let name = self
                    .cfg
                    .instances
                    .get(instance)
                    .map_or("?", |i| i.name.as_str());
                log::info!(
                    "vrrp {name} (VRID {vrid}): {} -> {} ({})",
                    state_name(from),
                    state_name(to),
                    reason.name()
                );
                if let Some(s) = self.instance_states.get_mut(instance) {
                    *s = to;
                }
                self.update_state();
            }
            NodeEvent::Error { instance, message } => {
                log::warn!("vrrp instance {instance}: {message}");
            }
            NodeEvent::Hook { .. } | NodeEvent::LateWakeup(_) | NodeEvent::Stopped => {}
        }
    }

    fn update_state(&mut self) {
        let new = if self.instance_states.contains(&State::Fault) {
            NodeState::Fault
        } else if self.instance_states.contains(&State::Master) {
            NodeState::Operational
        } else if self.instance_states.contains(&State::Backup) {
            NodeState::Standby
        } else {
            NodeState::Starting
        };
        if new == self.state {
            return;
        }
        log::info!(
            "node {}: {} -> {} ({} mode)",
            self.cfg.node_id,
            self.state,
            new,
            self.mode
        );
        let old = self.state;
        self.state = new;
        match new {
            // At start-up the hold began with the node; otherwise the node returns now.
            NodeState::Standby if old != NodeState::Starting || !self.hold.is_held() => {
                self.begin_hold();
            }
            NodeState::Operational | NodeState::Fault => self.end_hold(None),
            NodeState::Standby | NodeState::Starting => {}
        }
        self.apply_plan();
        match new {
            NodeState::Operational => self.run_event_hooks("operational"),
            // Also at start-up: the applications must not run on a standby.
            NodeState::Standby => self.run_event_hooks("standby"),
            NodeState::Fault => self.run_event_hooks("fault"),
            NodeState::Starting => {}
        }
    }

    fn run_event_hooks(&self, event: &'static str) {
        let commands = match event {
            "operational" => self.cfg.hooks.operational.clone(),
            "standby" => self.cfg.hooks.standby.clone(),
            _ => self.cfg.hooks.fault.clone(),
        };
        let mut env = vec![
            ("REDUNDANCY_EVENT".to_string(), event.to_string()),
            ("REDUNDANCY_NODE".to_string(), self.cfg.node_id.clone()),
            ("REDUNDANCY_ROLE".to_string(), self.cfg.role.to_string()),
            ("REDUNDANCY_MODE".to_string(), self.mode.to_string()),
        ];
        for s in &self.cfg.sets {
            env.push((
                format!(
                    "REDUNDANCY_SET_{}",
                    s.name.to_ascii_uppercase().replace('-', "_")
                ),
                s.root.join("current").display().to_string(),
            ));
        }
        run_hooks(
            event,
            commands,
            env,
            self.cfg.hooks.timeout,
            self.hook_tx.clone(),
        );
    }

    /// Who serves what, who pulls what from where, the admin forward.
    fn apply_plan(&mut self) {
        let operational = self.state == NodeState::Operational;
        let standby = self.state == NodeState::Standby;
        let active = self.mode == BackupMode::Active;
        let primary = self.cfg.role == Role::Primary;
        let mut serve = Vec::new();
        for (set, p) in self.cfg.sets.iter().zip(&self.pullers) {
            let serves = match set.direction {
                Direction::FromPrimary => primary && (operational || (standby && active)),
                Direction::FromOperational => operational,
            };
            let pulls = !serves
                && match set.direction {
                    Direction::FromPrimary => !primary && (operational || (standby && active)),
                    Direction::FromOperational => standby && active,
                };
            let source = if pulls {
                self.peers
                    .values()
                    .filter(|pi| pi.up())
                    .find(|pi| match set.direction {
                        Direction::FromPrimary => pi.beat.role == Role::Primary,
                        Direction::FromOperational => pi.beat.state == NodeState::Operational,
                    })
                    .map(PeerInfo::sync_addr)
            } else {
                None
            };
            let wire_mode = match self.mode {
                BackupMode::Active => WireMode::Active,
                BackupMode::Passive => WireMode::Passive,
            };
            {
                let mut plan = p.plan.lock();
                let was = plan.source;
                plan.source = source;
                plan.mode = pulls.then_some(wire_mode);
                if was != source {
                    match source {
                        Some(s) => log::info!("sync {}: pulling from {s}", set.name),
                        None if was.is_some() => log::info!("sync {}: not pulling", set.name),
                        None => {}
                    }
                    if source.is_some() {
                        // First round at once rather than after a whole interval.
                        let (tx, _rx) = bounded(1);
                        let _ = p.tx.send(PullReq::Now(tx));
                    }
                }
            }
            if serves {
                serve.push(set.name.clone());
            }
        }
        let current = self
            .server
            .as_ref()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        if current != serve {
            if let Some((h, _)) = self.server.take() {
                h.stop();
            }
            if !serve.is_empty() {
                match self.start_server(&serve) {
                    Ok(h) => {
                        log::info!("sync: serving {} on {}", serve.join(", "), h.addr);
                        self.server = Some((h, serve));
                    }
                    Err(e) => log::warn!("sync: cannot serve {}: {e}", serve.join(", ")),
                }
            } else {
                log::info!("sync: serving nothing");
            }
            self.serving_checked = None;
        }
        match (&self.cfg.admin_forward, operational) {
            (Some(f), true) if self.admin.is_none() => {
                match AdminForward::start(f.listen_port, f.standby_address) {
                    Ok(a) => self.admin = Some(a),
                    Err(e) => log::warn!("admin forward on port {}: {e}", f.listen_port),
                }
            }
            (_, false) => self.admin = None,
            _ => {}
        }
    }

    fn start_server(&self, names: &[String]) -> Result<ServerHandle, String> {
        let mut sets = Vec::new();
        for s in self.cfg.sets.iter().filter(|s| names.contains(&s.name)) {
            let root = s.root.join("current");
            if std::fs::symlink_metadata(&root).is_err() {
                std::fs::create_dir_all(&root)
                    .map_err(|e| format!("creating {}: {e}", root.display()))?;
            }
            sets.push(ServedSet {
                name: s.name.clone(),
                root,
                excludes: Excludes::new(s.excludes.iter().cloned()),
                watch: false,
            });
        }
        // TLS as configured; a certificate that no longer loads means not serving (never a
        // silent fall back to plain TCP).
        let tls = match &self.cfg.sync_tls {
            Some(t) => Some(t.server().map_err(|e| e.to_string())?),
            None => None,
        };
        // One zstd level per server: the highest of the served sets that have `compress`. A set
        // without it is pulled without offering compression, so its data stays plain.
        let compression = self
            .cfg
            .sets
            .iter()
            .filter(|s| names.contains(&s.name))
            .filter_map(|s| s.compress)
            .max()
            .and_then(|l| Level::new(l).ok());
        let server = Server::new(ServerConfig {
            key: self.key.clone(),
            identity: Identity::new(
                self.cfg.node_id.clone(),
                match self.mode {
                    BackupMode::Active => WireMode::Active,
                    BackupMode::Passive => WireMode::Passive,
                },
            ),
            sets,
            max_connections: 16,
            io_timeout: Duration::from_secs(30),
            transport: ServerTransport { tls, compression },
        });
        // Retry a little: the previous listener's thread may still hold the port.
        let mut last = None;
        for _ in 0..20 {
            match TcpListener::bind(self.cfg.sync_listen) {
                Ok(l) => return server.spawn(l).map_err(|e| e.to_string()),
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Err(format!(
            "binding {}: {}",
            self.cfg.sync_listen,
            last.map_or_else(String::new, |e| e.to_string())
        ))
    }

    // --- heartbeat ---

    fn my_instances(&self) -> Vec<InstanceInfo> {
        let st = self.node.status();
        self.cfg
            .instances
            .iter()
            .zip(&self.instance_states)
            .enumerate()
            .map(|(k, (i, s))| InstanceInfo {
                priority: st.instances.get(k).map_or(i.priority, |r| r.priority),
                name: i.name.clone(),
                vrid: i.vrid,
                interval_ms: i.interval.as_millis() as u64,
                addresses: i.virtual_addresses.iter().map(|a| a.to_string()).collect(),
                state: state_name(*s).into(),
            })
            .collect()
    }

    fn send_beats(&mut self) {
        // Served generations cost a tree walk: refresh them once a second, or at once during
        // a swap.
        let swapping = self.pending.is_some() || self.stopping.is_some();
        if swapping
            || self
                .serving_checked
                .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        {
            self.serving_checked = Some(Instant::now());
            self.serving_gens.clear();
            if let Some((h, names)) = &self.server {
                for n in names {
                    match h.server.generation(n) {
                        Ok(g) => {
                            self.serving_gens.insert(n.clone(), g.to_hex());
                        }
                        Err(e) => log::debug!("sync {n}: generation: {e}"),
                    }
                }
            }
        }
        let holding = self
            .cfg
            .sets
            .iter()
            .filter_map(|s| holding_generation(&s.root).map(|g| (s.name.clone(), g)))
            .collect();
        let command = match &mut self.outgoing {
            Some((c, n)) => {
                let c = c.clone();
                let left = n.saturating_sub(1);
                if left == 0 {
                    self.outgoing = None;
                } else if let Some((_, n)) = &mut self.outgoing {
                    *n = left;
                }
                Some(c)
            }
            None => None,
        };
        let beat = Beat {
            node_id: self.cfg.node_id.clone(),
            role: self.cfg.role,
            mode: self.mode,
            state: self.state,
            sync_port: self.cfg.sync_listen.port(),
            instances: self.my_instances(),
            serving: self.serving_gens.clone(),
            holding,
            boot: self.boot,
            seq: self.seq,
            command,
        };
        let data = heartbeat::encode(&self.psk, &beat);
        for p in &self.cfg.peers {
            if let Err(e) = self.udp.send_to(&data, p.address) {
                log::debug!("heartbeat to {}: {e}", p.address);
            }
        }
    }

    fn send_command(&mut self, c: PeerCommand) {
        self.seq += 1;
        // Sent with the next five heartbeats (every 100 ms tick while pending): UDP may drop one.
        self.outgoing = Some((c, 5));
    }

    fn beat(&mut self, b: Beat, from: SocketAddr) {
        if b.node_id == self.cfg.node_id && self.cfg.peers.iter().all(|p| p.address != from) {
            // Our own datagram (a peer list naming ourselves) is not a peer.
            return;
        }
        let conflicts =
            heartbeat::conflicts(&self.cfg.node_id, self.cfg.role, &self.my_instances(), &b);
        let old = self.errors.get(&b.node_id).cloned().unwrap_or_default();
        if conflicts != old {
            for c in &conflicts {
                log::error!("pair conflict: {c}");
            }
            if conflicts.is_empty() {
                log::info!("pair conflicts with {} resolved", b.node_id);
            }
            if conflicts.is_empty() {
                self.errors.remove(&b.node_id);
            } else {
                self.errors.insert(b.node_id.clone(), conflicts);
            }
        }
        let now = Instant::now();
        let id = b.node_id.clone();
        if let Some(p) = self.peers.get_mut(&id) {
            if p.beat.boot != b.boot {
                // The peer restarted: its command numbers start again.
                p.acted_seq = 0;
            }
        }
        let command = b
            .command
            .clone()
            .filter(|_| self.peers.get(&id).is_none_or(|p| b.seq > p.acted_seq));
        let seq = b.seq;
        let changed = match self.peers.get_mut(&id) {
            Some(p) => {
                if !p.up() {
                    p.connected_since = SystemTime::now();
                    log::info!("peer {id} at {from} is back");
                }
                let changed = p.beat.state != b.state
                    || p.beat.mode != b.mode
                    || p.beat.role != b.role
                    || !p.up()
                    || p.addr != from;
                p.beat = b;
                p.addr = from;
                p.last_seen = now;
                p.last_seen_wall = SystemTime::now();
                changed
            }
            None => {
                log::info!(
                    "peer {id} at {from}: {} role, {} mode, {}",
                    b.role,
                    b.mode,
                    b.state
                );
                self.peers.insert(
                    id.clone(),
                    PeerInfo {
                        beat: b,
                        addr: from,
                        connected_since: SystemTime::now(),
                        last_seen: now,
                        last_seen_wall: SystemTime::now(),
                        acted_seq: 0,
                    },
                );
                true
            }
        };
        if let Some(c) = command {
            if let Some(p) = self.peers.get_mut(&id) {
                p.acted_seq = seq;
            }
            self.peer_command(&id, c);
        }
        if changed {
            self.apply_plan();
        }
    }

    fn peer_command(&mut self, from: &str, c: PeerCommand) {
        match c {
            PeerCommand::Swap { to } if to == self.cfg.node_id => {
                log::info!("swap requested by {from}");
                if self.pending.is_none() {
                    self.start_swap_as_standby(None);
                }
            }
            PeerCommand::Release { to } if to == self.cfg.node_id => {
                log::info!("{from} holds every generation and takes over: releasing");
                for i in 0..self.cfg.instances.len() {
                    self.node.command(NodeCommand::Release(i));
                }
            }
            _ => {}
        }
    }

    fn check_peers(&mut self) {
        // Peers that went silent change who we pull from.
        let lost: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.up() && p.last_seen.elapsed() < PEER_TIMEOUT + Duration::from_millis(150)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !lost.is_empty() {
            for l in &lost {
                log::warn!("peer {l} not heard for {PEER_TIMEOUT:?}");
            }
            self.apply_plan();
        }
    }

    // --- control ---

    fn control(&mut self, inc: Incoming) {
        let Incoming { request, reply } = inc;
        let resp = match request {
            Request::Status => Response {
                ok: true,
                message: String::new(),
                status: Some(self.status()),
            },
            Request::Mode { mode } => {
                self.set_mode(mode);
                Response::ok(format!("mode {mode}"))
            }
            Request::Takeover => {
                for i in 0..self.cfg.instances.len() {
                    self.node.command(NodeCommand::Takeover(i));
                }
                log::info!("takeover requested");
                Response::ok("takeover requested")
            }
            Request::Release => {
                for i in 0..self.cfg.instances.len() {
                    self.node.command(NodeCommand::Release(i));
                }
                log::info!("release requested");
                Response::ok("release requested")
            }
            Request::Swap => {
                if self.pending.is_some() {
                    Response::err("a swap is already in progress")
                } else if self.state == NodeState::Operational {
                    match self.pick_standby() {
                        Some(to) => {
                            self.start_swap_as_master(to, Some(reply));
                            return;
                        }
                        None => Response::err("swap: no standby is in sight"),
                    }
                } else if self.state == NodeState::Standby {
                    self.start_swap_as_standby(Some(reply));
                    return;
                } else {
                    Response::err(format!("swap: this node is {}", self.state))
                }
            }
        };
        let _ = reply.send(resp);
    }

    fn set_mode(&mut self, mode: BackupMode) {
        let m = match mode {
            BackupMode::Active => Mode::Active,
            BackupMode::Passive => Mode::Passive,
        };
        for i in 0..self.cfg.instances.len() {
            self.node.command(NodeCommand::SetMode(i, m));
        }
        if mode != self.mode {
            log::info!("node {}: mode {} -> {}", self.cfg.node_id, self.mode, mode);
        }
        let resumed = mode == BackupMode::Active && self.mode == BackupMode::Passive;
        self.mode = mode;
        if resumed && self.state == NodeState::Standby {
            // A passive standby did not pull: its data is as old as an absent node's.
            self.begin_hold();
        }
        self.apply_plan();
    }

    // --- preempt hold (module docs, crate::hold) ---

    /// Holds preemption off until the sets that flow from the operational node were pulled.
    fn begin_hold(&mut self) {
        if !holds_preemption(&self.cfg) {
            return;
        }
        let sets = awaited_sets(&self.cfg);
        log_hold_begins(&sets, self.cfg.preempt_hold_max);
        self.hold.begin(Instant::now(), sets);
        self.set_router_preempt(false);
    }

    /// Lets preemption go again (as configured), logging why unless `why` is `None`.
    fn end_hold(&mut self, why: Option<HoldEnd>) {
        let was = self.hold.is_held();
        self.hold.cancel();
        match why {
            Some(HoldEnd::Synced { sets, held }) => log::info!(
                "preempt hold released after {:.1} s: pulled {} from the master; preempting \
                 by the VRRP rules",
                held.as_secs_f64(),
                if sets.is_empty() {
                    "nothing (no set flows from the operational node)".to_string()
                } else {
                    sets.join(", ")
                }
            ),
            Some(HoldEnd::Expired { waiting, max }) => log::warn!(
                "preempt hold EXPIRED after {max:?} (sync.preempt_hold_max) without a pull of \
                 {} from the master: preempting anyway; data written there since this node \
                 last pulled may be lost",
                waiting.join(", ")
            ),
            None if was => log::debug!("preempt hold ended: node {}", self.state),
            None => {}
        }
        self.set_router_preempt(true);
    }

    /// Preempt_Mode of every held instance: `false` holds it, `true` restores the
    /// configuration's (RFC 5798 section 6.1, switched at run time).
    fn set_router_preempt(&self, on: bool) {
        for (i, ins) in self.cfg.instances.iter().enumerate() {
            if ins.priority != 255 {
                self.node
                    .command(NodeCommand::SetPreempt(i, ins.preempt && on));
            }
        }
    }

    /// Feeds the hold the pull rounds that succeeded from the current master, and ends it when
    /// every set was pulled or the bound passed.
    fn check_hold(&mut self) {
        if !self.hold.is_held()
            || self.state != NodeState::Standby
            || self.mode != BackupMode::Active
        {
            return;
        }
        let master = self
            .peers
            .values()
            .find(|p| p.up() && p.beat.state == NodeState::Operational)
            .map(PeerInfo::sync_addr);
        for (set, p) in self.cfg.sets.iter().zip(&self.pullers) {
            if set.direction != Direction::FromOperational {
                continue;
            }
            let last = p.rt.lock().last_ok_round;
            if let (Some((started, from)), Some(m)) = (last, master) {
                if from == m {
                    self.hold.pulled(&set.name, started);
                }
            }
        }
        if let Some(end) = self.hold.poll(Instant::now()) {
            self.end_hold(Some(end));
        }
    }

    fn pick_standby(&self) -> Option<String> {
        let mut c: Vec<&PeerInfo> = self
            .peers
            .values()
            .filter(|p| p.up() && p.beat.state == NodeState::Standby)
            .collect();
        // Prefer an active standby (it is in sync), then the highest priority (the one VRRP
        // would elect), then the lowest id for a stable choice.
        c.sort_by_key(|p| {
            (
                p.beat.mode != BackupMode::Active,
                std::cmp::Reverse(p.beat.instances.first().map(|i| i.priority)),
                p.beat.node_id.clone(),
            )
        });
        c.first().map(|p| p.beat.node_id.clone())
    }

    fn start_swap_as_master(&mut self, to: String, reply: Option<Sender<Response>>) {
        log::info!("swap: asking {to} to pull every set and take over");
        self.send_command(PeerCommand::Swap { to: to.clone() });
        self.pending = Some(Swap::AsMaster {
            to,
            reply,
            deadline: Instant::now() + SWAP_TIMEOUT,
        });
    }

    fn start_swap_as_standby(&mut self, reply: Option<Sender<Response>>) {
        let Some(master) = self
            .peers
            .values()
            .find(|p| p.up() && p.beat.state == NodeState::Operational)
            .map(|p| p.beat.node_id.clone())
        else {
            if let Some(r) = reply {
                let _ = r.send(Response::err("swap: no operational peer in sight"));
            }
            return;
        };
        // Pull the sets this node takes from the master even when passive: a swap is explicit.
        let mut jobs = Vec::new();
        for (set, p) in self.cfg.sets.iter().zip(&self.pullers) {
            let source = match set.direction {
                Direction::FromOperational => self.peers.get(&master).map(PeerInfo::sync_addr),
                Direction::FromPrimary if self.cfg.role == Role::Secondary => self
                    .peers
                    .values()
                    .find(|pi| pi.up() && pi.beat.role == Role::Primary)
                    .map(PeerInfo::sync_addr),
                Direction::FromPrimary => None,
            };
            if let Some(src) = source {
                let mut plan = p.plan.lock();
                plan.source = Some(src);
                plan.mode = Some(WireMode::Active);
                jobs.push((set.name.clone(), p.tx.clone()));
            }
        }
        log::info!(
            "swap: pulling {} from {master} before taking over",
            jobs.iter()
                .map(|j| j.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let tx = self.swap_tx.clone();
        let master_gens = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
        if let Some(p) = self.peers.get(&master) {
            *master_gens.lock() = p.beat.serving.clone();
        }
        let _ = std::thread::Builder::new()
            .name("swap-pull".into())
            .spawn(move || {
                let mut summary = Vec::new();
                for (name, ptx) in jobs {
                    let want = master_gens.lock().get(&name).cloned();
                    let mut got = Err(String::from("not pulled"));
                    // Pull until we hold the generation the master announced (the master may
                    // still be writing: a few rounds at most).
                    for _ in 0..5 {
                        let (rtx, rrx) = bounded(1);
                        if ptx.send(PullReq::Now(rtx)).is_err() {
                            break;
                        }
                        got = rrx
                            .recv_timeout(SWAP_TIMEOUT)
                            .unwrap_or_else(|_| Err("pull timed out".into()));
                        match (&got, &want) {
                            (Ok(g), Some(w)) if g == w => break,
                            (Ok(_), None) => break,
                            (Ok(_), Some(_)) => continue,
                            (Err(_), _) => break,
                        }
                    }
                    match got {
                        Ok(g) => summary.push(format!("{name} {}", &g.get(..12).unwrap_or(&g))),
                        Err(e) => {
                            let _ = tx.send(Err(format!("swap aborted: set {name}: {e}")));
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(summary.join(", ")));
            });
        self.pending = Some(Swap::Pulling {
            master,
            reply,
            deadline: Instant::now() + SWAP_TIMEOUT,
        });
    }

    fn swap_pulled(&mut self, result: Result<String, String>) {
        let Some(Swap::Pulling { master, reply, .. }) = self.pending.take() else {
            return;
        };
        self.apply_plan();
        match result {
            Err(e) => {
                log::warn!("{e}");
                if let Some(r) = reply {
                    let _ = r.send(Response::err(e));
                }
            }
            Ok(summary) => {
                log::info!("swap: holding {summary}; taking over from {master}");
                for i in 0..self.cfg.instances.len() {
                    self.node.command(NodeCommand::Takeover(i));
                }
                self.send_command(PeerCommand::Release { to: master });
                self.pending = Some(Swap::TakingOver {
                    reply,
                    deadline: Instant::now() + Duration::from_secs(10),
                    summary,
                });
            }
        }
    }

    fn check_pending(&mut self) {
        let done = match &self.pending {
            None => return,
            Some(Swap::AsMaster { to, deadline, .. }) => {
                if self.state == NodeState::Standby {
                    Some(Response::ok(format!(
                        "swapped: {to} is operational, this node is standby ({} mode)",
                        self.mode
                    )))
                } else if self.peers.get(to).is_none_or(|p| !p.up()) {
                    // Gone (link cut, stopped): waiting for it would only delay a shutdown by
                    // SWAP_TIMEOUT; this node stays master until then or stops now.
                    Some(Response::err(format!(
                        "swap: {to} went out of sight (no heartbeat for {PEER_TIMEOUT:?})"
                    )))
                } else if Instant::now() > *deadline {
                    Some(Response::err(format!(
                        "swap: {to} did not take over in time"
                    )))
                } else {
                    None
                }
            }
            Some(Swap::Pulling { deadline, .. }) => (Instant::now() > *deadline)
                .then(|| Response::err("swap: pulls did not finish in time")),
            Some(Swap::TakingOver {
                deadline, summary, ..
            }) => {
                if self.state == NodeState::Operational {
                    Some(Response::ok(format!(
                        "swapped: this node is operational, holding {summary}"
                    )))
                } else if Instant::now() > *deadline {
                    Some(Response::err("swap: takeover did not complete in time"))
                } else {
                    None
                }
            }
        };
        if let Some(resp) = done {
            if resp.ok {
                log::info!("{}", resp.message);
            } else {
                log::warn!("{}", resp.message);
            }
            let reply = match self.pending.take() {
                Some(Swap::AsMaster { reply, .. })
                | Some(Swap::Pulling { reply, .. })
                | Some(Swap::TakingOver { reply, .. }) => reply,
                None => None,
            };
            if let Some(r) = reply {
                let _ = r.send(resp);
            }
            self.apply_plan();
        }
    }

    // --- status ---

    fn status(&mut self) -> Status {
        let st = self.node.status();
        let instances = self
            .cfg
            .instances
            .iter()
            .enumerate()
            .map(|(i, ins)| {
                let rs = st.instances.get(i);
                InstanceStatus {
                    name: ins.name.clone(),
                    interface: ins.interface.clone(),
                    vrid: ins.vrid,
                    state: rs.map_or("initialize", |r| state_name(r.state)).into(),
                    priority: rs.map_or(ins.priority, |r| r.priority),
                    virtual_addresses: ins
                        .virtual_addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                    adverts_received: rs.map_or(0, |r| r.adverts_received),
                    last_advert_seen: rs.and_then(|r| r.last_advert).map(wall_time),
                    statistics: rs.map_or_else(Default::default, |r| r.drops),
                }
            })
            .collect();
        let peers = self
            .peers
            .values()
            .map(|p| PeerStatus {
                node_id: p.beat.node_id.clone(),
                address: p.addr.ip().to_string(),
                role: p.beat.role,
                mode: p.beat.mode,
                state: p.beat.state,
                connected_since: p.up().then(|| unix_time(p.connected_since)),
                last_seen: Some(unix_time(p.last_seen_wall)),
                up: p.up(),
            })
            .collect();
        let sets = self
            .cfg
            .sets
            .iter()
            .zip(&self.pullers)
            .map(|(s, p)| {
                let plan = p.plan.lock().clone();
                let rt = p.rt.lock().clone();
                let serving = self
                    .server
                    .as_ref()
                    .is_some_and(|(_, names)| names.contains(&s.name));
                SetStatus {
                    name: s.name.clone(),
                    direction: s.direction,
                    serving,
                    pulling: plan.source.is_some() && plan.mode.is_some(),
                    interval: s.interval.as_secs_f64(),
                    source: plan.source.map(|a| a.to_string()),
                    generation: if serving {
                        self.serving_gens.get(&s.name).cloned()
                    } else {
                        holding_generation(&s.root)
                    },
                    last_sync: rt.last_sync.map(unix_time),
                    duration: rt.duration.map(|d| d.as_secs_f64()),
                    bytes: rt.bytes,
                    last_error: rt.last_error,
                }
            })
            .collect();
        let mut standbys = Vec::new();
        if self.state == NodeState::Operational {
            let records = self
                .server
                .as_ref()
                .map(|(h, _)| h.server.peers())
                .unwrap_or_default();
            for p in self
                .peers
                .values()
                .filter(|p| p.beat.state != NodeState::Operational)
            {
                // In sync: it holds our generation of every set we serve that it takes from us.
                let in_sync = self.serving_gens.iter().all(|(set, g)| {
                    let takes = self.cfg.sets.iter().any(|s| {
                        &s.name == set
                            && (s.direction == Direction::FromOperational
                                || p.beat.role == Role::Secondary)
                    });
                    !takes || p.beat.holding.get(set) == Some(g)
                });
                let pulled = records
                    .iter()
                    .filter(|r| r.node_id == p.beat.node_id)
                    .map(|r| unix_time(r.last_seen))
                    .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))));
                let beat = unix_time(p.last_seen_wall);
                standbys.push(StandbyStatus {
                    node_id: p.beat.node_id.clone(),
                    mode: p.beat.mode,
                    last_seen: Some(pulled.map_or(beat, |t| t.max(beat))),
                    in_sync: in_sync && p.up(),
                    up: p.up(),
                });
            }
        }
        Status {
            node: self.cfg.node_id.clone(),
            name: self.cfg.node_name.clone(),
            role: self.cfg.role,
            mode: self.mode,
            state: self.state,
            instances,
            peers,
            sets,
            standbys,
            hooks: self.hooks.clone(),
            hook_commands: HookCommands {
                operational: self.cfg.hooks.operational.clone(),
                standby: self.cfg.hooks.standby.clone(),
                fault: self.cfg.hooks.fault.clone(),
                timeout: self.cfg.hooks.timeout.as_secs_f64(),
            },
            admin_forward: self.cfg.admin_forward.as_ref().map(|f| AdminForwardStatus {
                listen_port: f.listen_port,
                standby_address: f.standby_address.to_string(),
                listening: self.admin.is_some(),
            }),
            config_file: self.cfg.file.clone(),
            reload: self.reload.clone(),
            errors: self.errors.values().flatten().cloned().collect(),
            preempt_hold: self.hold.since().map(|since| PreemptHoldStatus {
                since: wall_time(since),
                waiting_for: self.hold.waiting(),
                expires: wall_time(since) + self.hold.max().as_secs_f64(),
            }),
        }
    }
}

/// A monotonic instant as wall-clock seconds since the Unix epoch.
fn wall_time(at: Instant) -> f64 {
    let ago = Instant::now().saturating_duration_since(at);
    unix_time(SystemTime::now()) - ago.as_secs_f64()
}

/// What a reload from `old` to `new` applies live, and which changed keys need a restart.
fn reload_plan(old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
    let mut applied = Vec::new();
    let mut restart = Vec::new();
    if old.hooks != new.hooks {
        applied.push("hooks".to_string());
    }
    if old.peers != new.peers {
        // A peer without a port takes the listen port; while the listener keeps its old port
        // (a restart is needed for that), the peers keep theirs too, or the heartbeats of a
        // pair that reloads both files would go where nobody listens yet.
        if old.sync_listen == new.sync_listen {
            applied.push("node.peers".to_string());
        } else {
            restart.push("node.peers".to_string());
        }
    }
    if old.admin_forward != new.admin_forward {
        applied.push("admin_forward".to_string());
    }
    if old.mode != new.mode {
        applied.push("node.mode".to_string());
    }
    if old.preempt_hold_max != new.preempt_hold_max {
        applied.push("sync.preempt_hold_max".to_string());
    }
    for (k, (a, b)) in [
        ("node.id", (&old.node_id, &new.node_id)),
        ("node.name", (&old.node_name, &new.node_name)),
    ] {
        if a != b {
            restart.push(k.to_string());
        }
    }
    if old.role != new.role {
        restart.push("node.role".into());
    }
    if old.control_socket != new.control_socket {
        restart.push("node.control_socket".into());
    }
    if old.key_file != new.key_file {
        restart.push("sync.key_file".into());
    }
    if old.sync_listen != new.sync_listen {
        restart.push("sync.listen".into());
    }
    // The server's TLS identity and the pullers' trust are loaded once, at start.
    if old.sync_tls != new.sync_tls {
        restart.push("sync.tls".into());
    }
    if old.instances.len() != new.instances.len() {
        restart.push("vrrp.instances".into());
    } else {
        for (i, (a, b)) in old.instances.iter().zip(&new.instances).enumerate() {
            let k = |f: &str| format!("vrrp.instances[{i}].{f}");
            if a.name == b.name {
                // Live (RFC 5798 section 6.4 computes everything from the current values),
                // except becoming or ceasing to be the address owner, which changes how the
                // router starts and what it accepts.
                if a.priority != b.priority {
                    if a.priority == 255 || b.priority == 255 {
                        restart.push(k("priority"));
                    } else {
                        applied.push(k("priority"));
                    }
                }
                if a.preempt != b.preempt {
                    applied.push(k("preempt"));
                }
            }
            let fields = [
                ("name", a.name != b.name),
                ("interface", a.interface != b.interface),
                ("vrid", a.vrid != b.vrid),
                ("priority", a.name != b.name && a.priority != b.priority),
                ("version", a.version != b.version),
                ("interval", a.interval != b.interval),
                (
                    "virtual_addresses",
                    a.virtual_addresses != b.virtual_addresses,
                ),
                ("preempt", a.name != b.name && a.preempt != b.preempt),
                ("preempt_delay", a.preempt_delay != b.preempt_delay),
                ("auth_pass", a.auth != b.auth),
                ("v3_checksum", a.v3_checksum != b.v3_checksum),
                ("unicast_peers", a.unicast_peers != b.unicast_peers),
            ];
            restart.extend(fields.iter().filter(|f| f.1).map(|f| k(f.0)));
        }
    }
    if old.sets.len() != new.sets.len() {
        restart.push("sync.sets".into());
    } else {
        for (i, (a, b)) in old.sets.iter().zip(&new.sets).enumerate() {
            let k = |f: &str| format!("sync.sets[{i}].{f}");
            if a.name != b.name {
                // Another set altogether: nothing of it is applied.
                restart.push(k("name"));
                continue;
            }
            if a.root != b.root {
                restart.push(k("root"));
            }
            if a.direction != b.direction {
                restart.push(k("direction"));
            }
            if a.interval != b.interval {
                applied.push(k("interval"));
            }
            if a.excludes != b.excludes {
                applied.push(k("excludes"));
            }
            // Offered in the hello of the server and of each puller, both built at start.
            if a.compress != b.compress {
                restart.push(k("compress"));
            }
        }
    }
    (applied, restart)
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "initialize",
        State::Backup => "backup",
        State::Master => "master",
        State::Fault => "fault",
    }
}

/// Where a set's applications read: `ROOT/current`.
pub fn current_dir(set: &SyncSet) -> PathBuf {
    set.root.join("current")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::PairConfigBuilder;

    fn cfg(f: impl Fn(&mut PairConfigBuilder)) -> Config {
        let mut b = PairConfigBuilder::new("/lab/n1", "n1", Role::Primary, 200);
        b.peers = vec!["10.99.0.2".into()];
        b.set("config", Direction::FromPrimary, "1s");
        b.set("state", Direction::FromOperational, "1s");
        f(&mut b);
        Config::from_toml("pair.toml", &b.toml()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reload_plan_separates_live_changes_from_restart_ones() {
        let old = cfg(|_| {});
        assert_eq!(reload_plan(&old, &old), (vec![], vec![]));
        let new = cfg(|b| {
            b.sets[1].interval = "3s".into();
            b.standby_hooks = vec!["true".into()];
            b.priority = 120;
            b.peers.push("10.99.0.3".into());
            b.mode = BackupMode::Passive;
            b.admin_forward = Some((8765, "10.99.0.2".into()));
        });
        let (applied, restart) = reload_plan(&old, &new);
        assert_eq!(
            applied,
            [
                "hooks",
                "node.peers",
                "admin_forward",
                "node.mode",
                "vrrp.instances[0].priority",
                "sync.sets[1].interval"
            ]
        );
        assert!(restart.is_empty(), "{restart:?}");
        // Preempt is live; becoming the address owner is not; nor is the interval.
        let new = cfg(|b| {
            b.preempt = false;
            b.priority = 255;
            b.advert_interval = "200ms".into();
            b.preempt_hold_max = Some("5s".into());
        });
        let (applied, restart) = reload_plan(&old, &new);
        assert_eq!(
            applied,
            ["sync.preempt_hold_max", "vrrp.instances[0].preempt"]
        );
        assert_eq!(
            restart,
            ["vrrp.instances[0].priority", "vrrp.instances[0].interval"]
        );
        let new = cfg(|b| {
            b.role = Role::Secondary;
            b.vrid = 52;
            b.sync_listen = "0.0.0.0:9000".into();
            b.sets[0].direction = Direction::FromOperational;
            b.sets.pop();
        });
        let (applied, restart) = reload_plan(&old, &new);
        assert!(applied.is_empty(), "{applied:?}");
        assert_eq!(
            restart,
            [
                "node.peers",
                "node.role",
                "sync.listen",
                "vrrp.instances[0].vrid",
                "sync.sets"
            ]
        );
        // TLS and compression are set up at start: reported, not silently ignored.
        let mut new = old.clone();
        new.sets[0].compress = Some(3);
        new.sync_tls = Some(crate::config::SyncTls {
            cert: "/etc/pair/cert.pem".into(),
            key: "/etc/pair/key.pem".into(),
            ca: "/etc/pair/ca.pem".into(),
            server_name: None,
        });
        let (applied, restart) = reload_plan(&old, &new);
        assert!(applied.is_empty(), "{applied:?}");
        assert_eq!(restart, ["sync.tls", "sync.sets[0].compress"]);
    }

    #[test]
    fn wall_time_of_an_instant_in_the_past() {
        // Bracketed by two wall-clock reads, so a stall between the lines cannot fail it.
        let before = unix_time(SystemTime::now());
        let t = wall_time(Instant::now() - Duration::from_millis(1500));
        let after = unix_time(SystemTime::now());
        assert!(
            before - 1.5 - 0.05 <= t && t <= after - 1.5 + 0.05,
            "{before} {t} {after}"
        );
    }
}
