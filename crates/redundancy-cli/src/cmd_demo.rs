//! `demo`: the pair end to end in network namespaces it builds and removes itself.
//!
//! Two nodes and a client on a bridge (netlab: nothing is created in the root namespace, and
//! every address is a 10.99.0.x that exists only inside the lab), both nodes running this very
//! binary's `run` under `ip netns exec`. Narrated: election, first sync, a change synced, the
//! master's link cut and the measured takeover, client reachability, a swap with zero data
//! loss, passive mode.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use netlab::{Lab, Member, Process};
use redundancy::config::{Direction, Role};
use redundancy::control::{request, Request};
use redundancy::lab::PairConfigBuilder;
use redundancy::status::{NodeState, Status};

const VIP: &str = "10.99.0.100";

/// Arguments of `demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep going quietly: print only the summary lines.
    #[arg(long)]
    quiet: bool,
}

struct DemoNode {
    id: &'static str,
    member: Member,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    process: Option<Process>,
}

impl DemoNode {
    fn status(&self) -> Option<Status> {
        request(&self.socket, &Request::Status, Duration::from_secs(5))
            .ok()
            .and_then(|r| r.status)
    }
    fn state(&self) -> String {
        self.status()
            .map(|s| s.state.to_string())
            .unwrap_or_default()
    }
    fn data(&self, set: &str) -> PathBuf {
        self.dir.join(set).join("current")
    }
    fn start(&mut self, lab: &Lab, exe: &str) -> Result<(), String> {
        let cfg = self.config.display().to_string();
        let p = lab
            .spawn_env(
                &self.member,
                &[exe, "run", "--config", &cfg],
                &[("RUST_LOG", "info")],
            )
            .map_err(|e| e.to_string())?;
        self.process = Some(p);
        if !wait(Duration::from_secs(15), || self.status().is_some()) {
            return Err(format!("{} did not start: {}", self.id, self.log()));
        }
        Ok(())
    }
    fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.signal(15);
            let _ = p.wait_timeout(Duration::from_secs(10));
        }
    }
    fn log(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.output_text())
            .unwrap_or_default()
    }
}

fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// The node's configuration: the library's lab builder (the namespace tests use it too).
fn node_config(
    dir: &Path,
    id: &str,
    role: Role,
    priority: u8,
    peer: &str,
    psk: &Path,
) -> PairConfigBuilder {
    let mut b = PairConfigBuilder::new(dir, id, role, priority);
    b.peers = vec![peer.to_string()];
    b.key_file = psk.to_path_buf();
    b.virtual_addresses = vec![format!("{VIP}/24")];
    b.preempt = false;
    b.set("config", Direction::FromPrimary, "1s");
    b.set("voice", Direction::FromOperational, "1s");
    let log = dir.join("hooks.log");
    b.operational_hooks = vec![format!(
        "echo \"$(date +%T) $REDUNDANCY_NODE operational on $REDUNDANCY_SET_VOICE\" >> {}",
        log.display()
    )];
    b.standby_hooks = vec![format!(
        "echo \"$(date +%T) $REDUNDANCY_NODE standby\" >> {}",
        log.display()
    )];
    b
}

/// Runs the demo.
pub fn run(args: Args) -> ExitCode {
    if let Some(reason) = netlab::skip_reason_with(&["ip", "ping"]) {
        eprintln!("error: demo: {reason}; run it as root on a machine with iproute2 and ping");
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p.display().to_string(),
        Err(e) => {
            eprintln!("error: demo: cannot find this program's path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match demo(&exe, args.quiet) {
        Ok(()) => {
            println!(
                "demo finished in {:.1} s; everything it made is removed",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(exe: &str, quiet: bool) -> Result<(), String> {
    let say = |s: String| println!("{s}");
    let detail = |s: String| {
        if !quiet {
            println!("    {s}");
        }
    };
    let e = |x: netlab::Error| x.to_string();
    let mut lab = Lab::new("demo").map_err(e)?;
    let ma = lab.add_member("a", &["10.99.0.1/24"]).map_err(e)?;
    let mb = lab.add_member("b", &["10.99.0.2/24"]).map_err(e)?;
    let client = lab.add_member("client", &["10.99.0.10/24"]).map_err(e)?;
    say(format!(
        "1. lab: namespaces {}-{{a,b,client}} on a bridge; node-a 10.99.0.1, node-b 10.99.0.2, client 10.99.0.10, virtual IP {VIP}",
        lab.prefix()
    ));
    let root = lab.dir().to_path_buf();
    let psk = root.join("psk");
    std::fs::write(&psk, "demo pre-shared key, 32 bytes ok\n").map_err(|x| x.to_string())?;
    let mut nodes = Vec::new();
    for (id, m, role, prio, peer) in [
        ("node-a", &ma, Role::Primary, 200u8, "10.99.0.2"),
        ("node-b", &mb, Role::Secondary, 100u8, "10.99.0.1"),
    ] {
        let dir = root.join(id);
        let b = node_config(&dir, id, role, prio, peer, &psk);
        let config = b
            .write()
            .map_err(|x| format!("{}: {x}", b.config_path().display()))?;
        nodes.push(DemoNode {
            id,
            member: m.clone(),
            socket: b.control_socket(),
            dir,
            config,
            process: None,
        });
    }
    let [mut a, mut b] = <[DemoNode; 2]>::try_from(nodes).map_err(|_| "nodes".to_string())?;
    // Sample data on the primary: configuration and voice prompts / mailboxes.
    let io = |x: std::io::Error| x.to_string();
    std::fs::create_dir_all(a.data("config").join("extensions")).map_err(io)?;
    std::fs::create_dir_all(a.data("voice").join("mailbox/100")).map_err(io)?;
    for ext in 100..120 {
        std::fs::write(
            a.data("config").join(format!("extensions/{ext}.conf")),
            format!("[{ext}]\ncallerid = \"Desk {ext}\"\n"),
        )
        .map_err(io)?;
    }
    let prompt: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(a.data("voice").join("welcome.wav"), &prompt).map_err(io)?;
    std::fs::write(
        a.data("voice").join("mailbox/100/msg1.wav"),
        &prompt[..300_000],
    )
    .map_err(io)?;
    detail(format!(
        "configs and sample data written under {}",
        root.display()
    ));

    // Election.
    a.start(&lab, exe)?;
    if !wait(Duration::from_secs(20), || a.state() == "operational") {
        return Err(format!("node-a did not become operational: {}", a.log()));
    }
    b.start(&lab, exe)?;
    // Wait for the condition, never for a time: a loaded machine may be slow to settle.
    if !wait(Duration::from_secs(15), || b.state() == "standby") {
        return Err(format!("node-b did not become standby: {}", b.log()));
    }
    say(format!(
        "2. election: node-a (priority 200) is {}, node-b (priority 100) is {}; {VIP} on node-a: {}",
        a.state(),
        b.state(),
        lab.has_address(&ma, VIP).unwrap_or(false)
    ));

    // First sync.
    let t = Instant::now();
    let synced = |a: &DemoNode, b: &DemoNode| {
        let (Some(sa), Some(sb)) = (a.status(), b.status()) else {
            return false;
        };
        sa.sets.iter().all(|x| {
            x.generation.is_some()
                && sb
                    .sets
                    .iter()
                    .any(|y| y.name == x.name && y.generation == x.generation)
        })
    };
    if !wait(Duration::from_secs(40), || synced(&a, &b)) {
        return Err(format!("first sync did not finish: {}", b.log()));
    }
    let sb = b.status().ok_or("node-b gave no status")?;
    say(format!(
        "3. first sync: node-b holds every set {:.2} s after it was up ({})",
        t.elapsed().as_secs_f64() + 0.5,
        sb.sets
            .iter()
            .map(|s| format!("{} {} B", s.name, s.bytes.unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // node-a learns what node-b holds from its next heartbeat.
    let a_sees_b_in_sync = |a: &DemoNode| {
        a.status().is_some_and(|s| {
            s.standbys
                .iter()
                .any(|b| b.node_id == "node-b" && b.in_sync)
        })
    };
    wait(Duration::from_secs(10), || a_sees_b_in_sync(&a));
    if let Some(sa) = a.status() {
        for line in sa.to_text().lines().filter(|l| l.contains("backup ")) {
            detail(format!("node-a status:{line}"));
        }
    }

    // A change synced.
    std::fs::write(
        a.data("voice").join("mailbox/100/msg2.wav"),
        &prompt[..200_000],
    )
    .map_err(io)?;
    let t = Instant::now();
    if !wait(Duration::from_secs(20), || {
        b.data("voice").join("mailbox/100/msg2.wav").exists()
    }) {
        return Err("the new voice message did not reach node-b".into());
    }
    say(format!(
        "4. a new voicemail on node-a reached node-b after {:.2} s (interval 1 s; delta transfer, atomic generation switch)",
        t.elapsed().as_secs_f64()
    ));

    // Master's link cut.
    let mon = lab.monitor_addresses(&mb).map_err(e)?;
    std::thread::sleep(Duration::from_millis(300));
    let cut = Instant::now();
    lab.set_port(&ma, false).map_err(e)?;
    let ev = mon
        .wait_for_address(VIP, true, cut, Duration::from_secs(10))
        .ok_or_else(|| format!("node-b did not take over: {}", b.log()))?;
    let took = ev.at.saturating_duration_since(cut);
    // The client's neighbour entry follows node-b's gratuitous ARP; a few tries on a slow
    // machine.
    let reach = wait(Duration::from_secs(10), || {
        lab.succeeds(&client, &["ping", "-c", "1", "-W", "1", VIP])
    });
    say(format!(
        "5. node-a's switch port cut: {VIP} on node-b after {:.0} ms (bound: Master_Down_Interval ~361 ms after the last advert, 100 ms adverts); client reaches {VIP}: {reach}",
        took.as_secs_f64() * 1000.0
    ));
    if wait(Duration::from_secs(5), || {
        std::fs::read_to_string(b.dir.join("hooks.log")).is_ok_and(|l| l.contains("operational"))
    }) {
        detail(format!(
            "node-b operational hook: {}",
            std::fs::read_to_string(b.dir.join("hooks.log"))
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    // The dead node is stopped and comes back as standby (no preemption: the data now lives
    // on node-b).
    a.stop();
    lab.set_port(&ma, true).map_err(e)?;
    a.start(&lab, exe)?;
    if !wait(Duration::from_secs(40), || {
        // node-b must see node-a as an up standby too (its heartbeats), or a swap asked of
        // node-b has no one to hand over to.
        a.state() == "standby"
            && synced(&b, &a)
            && b.status().is_some_and(|s| {
                s.peers
                    .iter()
                    .any(|p| p.up && p.state == NodeState::Standby)
            })
    }) {
        return Err(format!("node-a did not rejoin as standby: {}", a.log()));
    }
    say("6. node-a restarted: standby, pulled the voice data back from node-b (configuration still flows from node-a, the primary)".into());

    // Swap with zero data loss.
    std::fs::write(
        b.data("voice").join("mailbox/100/msg3.wav"),
        &prompt[..100_000],
    )
    .map_err(io)?;
    let t = Instant::now();
    let r =
        request(&b.socket, &Request::Swap, Duration::from_secs(70)).map_err(|x| x.to_string())?;
    if !r.ok {
        return Err(format!("swap failed: {}", r.message));
    }
    let handover = t.elapsed();
    let kept = a.data("voice").join("mailbox/100/msg3.wav").exists();
    say(format!(
        "7. swap: node-a operational again after {:.0} ms; the voicemail written on node-b just before is on node-a: {kept}",
        handover.as_secs_f64() * 1000.0
    ));
    detail(r.message);

    // Passive mode.
    let r = request(
        &b.socket,
        &Request::Mode {
            mode: redundancy::config::BackupMode::Passive,
        },
        Duration::from_secs(5),
    )
    .map_err(|x| x.to_string())?;
    // node-a learns the mode from node-b's next heartbeats.
    let backup_line = |a: &DemoNode| {
        a.status()
            .map(|s| s.to_text())
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("backup node-b"))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    wait(Duration::from_secs(10), || {
        backup_line(&a).contains("(Passive mode)")
    });
    let line = backup_line(&a);
    say(format!("8. {}: node-a reports \"{line}\"; a passive standby neither syncs nor takes over (firmware upgrade)", r.message));
    b.stop();
    a.stop();
    Ok(())
}
