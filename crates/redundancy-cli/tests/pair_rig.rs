//! The redundancy pair as users run it: two `redundancy-cli run` daemons and a client in
//! network namespaces built by netlab (skipped with a printed reason when not root).
//!
//! Each test builds its own lab (unique namespace names, removed on drop together with the
//! daemons it started). VRRPv3 at 100 ms adverts: Master_Down_Interval is
//! 3 * 100 ms + Skew_Time (about 61 ms at priority 100) = about 361 ms (RFC 5798 section 6.1).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netlab::{Lab, Member, Process};
use redundancy::config::{BackupMode, Direction, Role};
use redundancy::lab::PairConfigBuilder;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redundancy-cli");
const VIP: &str = "10.99.0.100";

struct Node {
    member: Member,
    /// The node's configuration; change it and `write()` it again for a reload.
    cfg: PairConfigBuilder,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    process: Option<Process>,
}

impl Node {
    fn status(&self) -> Option<Value> {
        let out = Command::new(BIN)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn ctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("run redundancy-cli");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn state(&self) -> String {
        self.status()
            .and_then(|s| s["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// `ROOT/current` of a set.
    fn data(&self, set: &str) -> PathBuf {
        self.dir.join(set).join("current")
    }

    fn log(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.output_text())
            .unwrap_or_default()
    }

    /// A set's entry in `status --json`.
    fn set_status(&self, set: &str) -> Value {
        self.status()
            .and_then(|s| {
                s["sets"]
                    .as_array()
                    .and_then(|v| v.iter().find(|x| x["name"] == *set).cloned())
            })
            .unwrap_or(Value::Null)
    }
}

struct Rig {
    lab: Lab,
    a: Node,
    b: Node,
    /// A third node (10.99.0.3) for the 1:N tests.
    c: Option<Node>,
    client: Member,
    psk: PathBuf,
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("timed out waiting for {what}");
    false
}

/// A lab node's configuration (the library's builder, as the demo uses it): sets `config`
/// (from the primary) and `state` (from the operational node), 1 s intervals, hooks that leave
/// traces in the node's directory.
fn node_config(
    dir: &Path,
    id: &str,
    role: Role,
    priority: u8,
    peers: &[&str],
    psk: &Path,
    mode: BackupMode,
) -> PairConfigBuilder {
    let mut c = PairConfigBuilder::new(dir, id, role, priority);
    c.mode = mode;
    c.peers = peers.iter().map(|p| p.to_string()).collect();
    c.key_file = psk.to_path_buf();
    c.virtual_addresses = vec![format!("{VIP}/24")];
    c.set("config", Direction::FromPrimary, "1s");
    c.set("state", Direction::FromOperational, "1s");
    let d = dir.display();
    c.operational_hooks = vec![format!(
        // The marker last: a test reads the listing as soon as the marker appears.
        "ls \"$REDUNDANCY_SET_STATE\" > {d}/state.listing; echo \"$REDUNDANCY_NODE\" > {d}/operational.ran"
    )];
    c.standby_hooks = vec![format!("echo standby >> {d}/standby.ran")];
    c
}

fn make_node(
    m: &Member,
    mut cfg: PairConfigBuilder,
    tweak: &dyn Fn(&mut PairConfigBuilder),
) -> Node {
    tweak(&mut cfg);
    let config = cfg.write().expect("write config");
    Node {
        member: m.clone(),
        socket: cfg.control_socket(),
        dir: cfg.dir.clone(),
        cfg,
        config,
        process: None,
    }
}

fn rig(tag: &str, b_role: &str, b_mode: &str) -> Option<Rig> {
    rig_with(tag, b_role, b_mode, false, &|_| {})
}

/// `three`: a third node c (secondary, priority 50) and every node lists both others as
/// peers. `tweak` changes every node's configuration before it is written.
fn rig_with(
    tag: &str,
    b_role: &str,
    b_mode: &str,
    three: bool,
    tweak: &dyn Fn(&mut PairConfigBuilder),
) -> Option<Rig> {
    if netlab::require_root(&[]) {
        return None;
    }
    let mut lab = Lab::new(tag).expect("lab");
    let ma = lab.add_member("a", &["10.99.0.1/24"]).expect("member a");
    let mb = lab.add_member("b", &["10.99.0.2/24"]).expect("member b");
    let mc = three.then(|| lab.add_member("n3", &["10.99.0.3/24"]).expect("member c"));
    let client = lab.add_member("c", &["10.99.0.10/24"]).expect("client");
    let root = lab.dir().to_path_buf();
    let psk = root.join("psk");
    std::fs::write(&psk, "a pre-shared key of the pair, test only\n").expect("psk");
    let role = |r: &str| {
        if r == "primary" {
            Role::Primary
        } else {
            Role::Secondary
        }
    };
    let mode = |m: &str| {
        if m == "passive" {
            BackupMode::Passive
        } else {
            BackupMode::Active
        }
    };
    let (pa, pb, pc): (&[&str], &[&str], &[&str]) = if three {
        (
            &["10.99.0.2", "10.99.0.3"],
            &["10.99.0.1", "10.99.0.3"],
            &["10.99.0.1", "10.99.0.2"],
        )
    } else {
        (&["10.99.0.2"], &["10.99.0.1"], &[])
    };
    let a = make_node(
        &ma,
        node_config(
            &root.join("node-a"),
            "node-a",
            Role::Primary,
            200,
            pa,
            &psk,
            BackupMode::Active,
        ),
        tweak,
    );
    let b = make_node(
        &mb,
        node_config(
            &root.join("node-b"),
            "node-b",
            role(b_role),
            100,
            pb,
            &psk,
            mode(b_mode),
        ),
        tweak,
    );
    let c = mc.map(|m| {
        make_node(
            &m,
            node_config(
                &root.join("node-c"),
                "node-c",
                Role::Secondary,
                50,
                pc,
                &psk,
                BackupMode::Active,
            ),
            tweak,
        )
    });
    // Seed data on the primary: plain directories as ROOT/current.
    for set in ["config", "state"] {
        std::fs::create_dir_all(a.data(set)).expect("seed dir");
    }
    std::fs::write(a.data("config").join("pbx.conf"), "extensions = 100\n").expect("seed");
    std::fs::write(a.data("state").join("calls.db"), vec![7u8; 100_000]).expect("seed");
    Some(Rig {
        lab,
        a,
        b,
        c,
        client,
        psk,
    })
}

impl Rig {
    fn node(&self, which: char) -> &Node {
        match which {
            'a' => &self.a,
            'b' => &self.b,
            _ => self.c.as_ref().expect("a third node"),
        }
    }

    fn start(&mut self, which: char) {
        let lab = &self.lab;
        let n = match which {
            'a' => &mut self.a,
            'b' => &mut self.b,
            _ => self.c.as_mut().expect("a third node"),
        };
        let cfg = n.config.display().to_string();
        let p = lab
            .spawn_env(
                &n.member,
                &[BIN, "run", "--config", &cfg],
                &[("RUST_LOG", "info")],
            )
            .expect("start daemon");
        n.process = Some(p);
        let n = self.node(which);
        assert!(
            wait_for("control socket", Duration::from_secs(20), || n
                .status()
                .is_some()),
            "daemon {which} did not come up:\n{}",
            n.log()
        );
    }

    /// Both up, a operational, b standby holding a's generation of both sets.
    fn start_both_synced(&mut self) {
        self.start('a');
        assert!(
            wait_for("a operational", Duration::from_secs(15), || self.a.state()
                == "operational"),
            "{}",
            self.a.log()
        );
        self.start('b');
        assert!(
            // In sync, and a sees b as an up standby (its heartbeats): a swap asked of a
            // right after needs that.
            wait_for("b synced", Duration::from_secs(30), || self.in_sync()
                && self.a.status().is_some_and(|s| {
                    s["peers"].as_array().is_some_and(|p| {
                        p.iter().any(|x| x["up"] == true && x["state"] == "standby")
                    })
                })),
            "a: {}\nb: {}\nb status: {:?}",
            self.a.log(),
            self.b.log(),
            self.b.status()
        );
    }

    fn gens(n: &Node) -> Vec<Option<String>> {
        let s = n.status().unwrap_or(Value::Null);
        ["config", "state"]
            .iter()
            .map(|name| {
                s["sets"].as_array().and_then(|sets| {
                    sets.iter()
                        .find(|x| x["name"] == *name)
                        .and_then(|x| x["generation"].as_str().map(str::to_string))
                })
            })
            .collect()
    }

    fn in_sync(&self) -> bool {
        Self::synced(&self.a, &self.b)
    }

    fn synced(x: &Node, y: &Node) -> bool {
        let gx = Self::gens(x);
        let gy = Self::gens(y);
        gx.iter().all(Option::is_some) && gx == gy
    }

    fn has_vip(&self, n: &Node) -> bool {
        self.lab.has_address(&n.member, VIP).unwrap_or(false)
    }
}

#[test]
fn pair_master_lost_standby_takes_over_runs_hook_and_serves_pulled_data() {
    let Some(mut r) = rig("pairlost", "secondary", "active") else {
        return;
    };
    r.start_both_synced();
    assert!(r.has_vip(&r.a) && !r.has_vip(&r.b));
    // A change on the master reaches the standby within its interval.
    std::fs::write(r.a.data("state").join("new-call"), "call 42\n").unwrap();
    assert!(
        wait_for("change synced", Duration::from_secs(15), || {
            std::fs::read_to_string(r.b.data("state").join("new-call"))
                .ok()
                .as_deref()
                == Some("call 42\n")
        }),
        "{}",
        r.b.log()
    );
    let mon = r.lab.monitor_addresses(&r.b.member).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let cut = Instant::now();
    r.lab.set_port(&r.a.member, false).unwrap();
    let ev = mon
        .wait_for_address(VIP, true, cut, Duration::from_secs(10))
        .expect("VIP on b");
    let took = ev.at.saturating_duration_since(cut);
    eprintln!("takeover after the master's port went down: {took:?}");
    // Master_Down_Interval ~361 ms; a wide margin for a loaded 2-core machine.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        wait_for("operational hook", Duration::from_secs(10), || {
            std::fs::read_to_string(r.b.dir.join("operational.ran"))
                .ok()
                .as_deref()
                == Some("node-b\n")
        }),
        "{}",
        r.b.log()
    );
    let listing = std::fs::read_to_string(r.b.dir.join("state.listing")).unwrap();
    assert!(
        listing.contains("calls.db") && listing.contains("new-call"),
        "{listing}"
    );
    // The new master serves what it pulled: the client pulls the state set through the VIP.
    let croot = r.lab.dir().join("client-state");
    let out = r
        .lab
        .run(
            &r.client,
            &[
                BIN,
                "pull",
                "--from",
                &format!("{VIP}:8730"),
                "--root",
                &croot.display().to_string(),
                "--key-file",
                &r.psk.display().to_string(),
                "--set",
                "state",
                "--once",
            ],
        )
        .unwrap_or_else(|e| panic!("client pull: {e}\n{}", r.b.log()));
    let _ = out;
    assert_eq!(
        std::fs::read_to_string(croot.join("current/new-call")).unwrap(),
        "call 42\n"
    );
    assert_eq!(
        std::fs::read(croot.join("current/calls.db")).unwrap(),
        vec![7u8; 100_000]
    );
}

#[test]
fn pair_swap_keeps_data_written_just_before() {
    let Some(mut r) = rig("pairswap", "secondary", "active") else {
        return;
    };
    r.start_both_synced();
    // Written on the master just before the swap: not yet pulled by an interval round.
    std::fs::write(r.a.data("state").join("last-second"), "voicemail 7\n").unwrap();
    let t = Instant::now();
    let (ok, out) = r.a.ctl(&["swap"]);
    eprintln!("swap took {:?}: {out}", t.elapsed());
    assert!(ok, "{out}\na: {}\nb: {}", r.a.log(), r.b.log());
    assert!(wait_for("b operational", Duration::from_secs(10), || r
        .b
        .state()
        == "operational"
        && r.a.state() == "standby"));
    assert_eq!(
        std::fs::read_to_string(r.b.data("state").join("last-second")).unwrap(),
        "voicemail 7\n"
    );
    assert!(wait_for("VIP moved", Duration::from_secs(5), || r
        .has_vip(&r.b)
        && !r.has_vip(&r.a)));
    // The old master keeps its mode and now pulls state from the new one.
    let s = r.a.status().unwrap();
    assert_eq!(s["mode"], "active");
    std::fs::write(r.b.data("state").join("after-swap"), "x\n").unwrap();
    assert!(
        wait_for("reverse sync", Duration::from_secs(15), || {
            r.a.data("state").join("after-swap").exists()
        }),
        "{}",
        r.a.log()
    );
}

#[test]
fn pair_passive_standby_never_takes_over_and_resyncs_when_active() {
    let Some(mut r) = rig("pairpass", "secondary", "active") else {
        return;
    };
    r.start_both_synced();
    let (ok, out) = r.b.ctl(&["mode", "passive"]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(500));
    r.lab.set_port(&r.a.member, false).unwrap();
    // Several Master_Down_Intervals: a passive standby stays standby.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(r.b.state(), "standby", "{}", r.b.log());
    assert!(!r.has_vip(&r.b));
    // A change while the standby is passive is not pulled ...
    r.lab.set_port(&r.a.member, true).unwrap();
    std::fs::write(r.a.data("state").join("while-passive"), "p\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!r.b.data("state").join("while-passive").exists());
    // ... and is pulled once it is active again.
    let (ok, out) = r.b.ctl(&["mode", "active"]);
    assert!(ok, "{out}");
    assert!(
        wait_for("resync", Duration::from_secs(15), || r
            .b
            .data("state")
            .join("while-passive")
            .exists()),
        "{}",
        r.b.log()
    );
    assert_eq!(r.a.state(), "operational");
}

#[test]
fn pair_both_primary_is_reported_and_status_json_has_every_field() {
    let Some(mut r) = rig("pairprim", "primary", "active") else {
        return;
    };
    r.start('a');
    r.start('b');
    let mut last = Value::Null;
    assert!(
        wait_for("conflict reported", Duration::from_secs(15), || {
            last = r.a.status().unwrap_or(Value::Null);
            last["errors"].as_array().is_some_and(|e| {
                e.iter().any(|x| {
                    x.as_str()
                        .unwrap_or("")
                        .contains("both nodes claim the configuration primary role")
                })
            })
        }),
        "{last:#}"
    );
    // Every field of the status, on the operational node.
    assert!(wait_for("a operational", Duration::from_secs(10), || r
        .a
        .state()
        == "operational"));
    assert!(wait_for("standby listed", Duration::from_secs(10), || {
        last = r.a.status().unwrap_or(Value::Null);
        last["standbys"].as_array().is_some_and(|s| !s.is_empty())
    }));
    for k in [
        "node",
        "name",
        "role",
        "mode",
        "state",
        "instances",
        "peers",
        "sets",
        "standbys",
        "hooks",
        "hook_commands",
        "admin_forward",
        "config_file",
        "reload",
        "errors",
    ] {
        assert!(last.get(k).is_some(), "status lacks {k}: {last:#}");
    }
    assert!(last["config_file"]
        .as_str()
        .is_some_and(|f| f.ends_with("node-a/pair.toml")));
    for k in ["operational", "standby", "fault", "timeout"] {
        assert!(
            last["hook_commands"].get(k).is_some(),
            "hook_commands lacks {k}: {last:#}"
        );
    }
    let i = &last["instances"][0];
    for k in [
        "name",
        "interface",
        "vrid",
        "state",
        "priority",
        "virtual_addresses",
        "adverts_received",
        "last_advert_seen",
    ] {
        assert!(i.get(k).is_some(), "instance lacks {k}: {i:#}");
    }
    assert_eq!(i["virtual_addresses"][0], "10.99.0.100/24");
    let p = &last["peers"][0];
    for k in [
        "node_id",
        "address",
        "role",
        "mode",
        "state",
        "connected_since",
        "last_seen",
        "up",
    ] {
        assert!(p.get(k).is_some(), "peer lacks {k}: {p:#}");
    }
    assert_eq!(p["node_id"], "node-b");
    assert!(p["connected_since"].as_f64().is_some());
    let s = &last["sets"][0];
    for k in [
        "name",
        "direction",
        "serving",
        "pulling",
        "interval",
        "source",
        "generation",
        "last_sync",
        "duration",
        "bytes",
        "last_error",
    ] {
        assert!(s.get(k).is_some(), "set lacks {k}: {s:#}");
    }
    let b = &last["standbys"][0];
    for k in ["node_id", "mode", "last_seen", "in_sync", "up"] {
        assert!(b.get(k).is_some(), "standby lacks {k}: {b:#}");
    }
    // The text form names the conflict too.
    let (ok, text) = r.a.ctl(&["status"]);
    assert!(ok && text.contains("ERROR: both nodes claim"), "{text}");
}

/// Skew_Time of the standby (priority 100, 100 ms adverts): (256 - 100) * 100 ms / 256
/// (RFC 5798 section 6.1).
const SKEW_B: Duration = Duration::from_micros(60_938);

#[test]
fn pair_sigterm_of_master_hands_over_gracefully_and_loses_nothing() {
    let Some(mut r) = rig("pairterm", "secondary", "active") else {
        return;
    };
    r.start_both_synced();
    // Written on the master just before the SIGTERM: no interval round has pulled it yet.
    std::fs::write(r.a.data("state").join("last-word"), vec![9u8; 300_000]).unwrap();
    let mon_a = r.lab.monitor_addresses(&r.a.member).unwrap();
    let mon_b = r.lab.monitor_addresses(&r.b.member).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    r.a.process.as_ref().unwrap().signal(libc::SIGTERM).unwrap();
    let added = mon_b
        .wait_for_address(VIP, true, t0, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("VIP never on b\na: {}\nb: {}", r.a.log(), r.b.log()));
    let deleted = mon_a
        .wait_for_address(VIP, false, t0, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("VIP never left a\na: {}", r.a.log()));
    let handover = added.at.saturating_duration_since(t0);
    // Time without the address anywhere: from the master's release to the standby's add
    // (zero when the standby added it first: it takes over before the master releases).
    let outage = added.at.saturating_duration_since(deleted.at);
    eprintln!(
        "SIGTERM handover: VIP on the standby {:.1} ms after SIGTERM (pull included), \
         released by the master {:.1} ms after SIGTERM, outage {:.1} ms",
        handover.as_secs_f64() * 1e3,
        deleted.at.saturating_duration_since(t0).as_secs_f64() * 1e3,
        outage.as_secs_f64() * 1e3
    );
    // A wide margin over Skew_Time for a loaded 2-core machine (the order of the log lines
    // below proves the mechanism; this bound only catches a handover that did not happen).
    assert!(
        outage < SKEW_B + Duration::from_secs(2),
        "outage {outage:?}"
    );
    let status =
        r.a.process
            .as_mut()
            .unwrap()
            .wait_timeout(Duration::from_secs(15));
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "{status:?}\n{}",
        r.a.log()
    );
    // Nothing lost: the file written just before is on the new master.
    assert_eq!(
        std::fs::read(r.b.data("state").join("last-word")).unwrap(),
        vec![9u8; 300_000]
    );
    // The standby pulled first, then took over; the master handed over before stopping.
    // (The logs are read by a thread: wait until the lines are in.)
    wait_for("logs", Duration::from_secs(5), || {
        r.b.log().contains("standby -> operational") && r.a.log().contains("stopped")
    });
    let (la, lb) = (r.a.log(), r.b.log());
    let pulled = lb.find("swap: holding").unwrap_or_else(|| panic!("{lb}"));
    let operational = lb
        .find("node node-b: standby -> operational")
        .unwrap_or_else(|| panic!("{lb}"));
    assert!(pulled < operational, "{lb}");
    let handing = la
        .find("graceful shutdown: handing over to node-b")
        .unwrap_or_else(|| panic!("{la}"));
    let stopped = la
        .find("node node-a stopped")
        .unwrap_or_else(|| panic!("{la}"));
    assert!(handing < stopped, "{la}");
    assert_eq!(r.b.state(), "operational");
    assert!(!r.has_vip(&r.a));
}

const ADMIN_SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 8765))
s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    line = c.recv(100)
    c.sendall(b"admin of node-b, you said " + line)
    c.close()
"#;

const ADMIN_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("10.99.0.100", 8765), timeout=15)
s.sendall(b"hello\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
sys.stdout.write("answer:" + data.decode())
"#;

#[test]
fn pair_admin_forward_reaches_the_standby_and_closes_when_it_is_gone() {
    if netlab::require_root(&["python3"]) {
        return;
    }
    let Some(mut r) = rig_with("pairadm", "secondary", "active", false, &|c| {
        let other = if c.id == "node-a" {
            "10.99.0.2:8765"
        } else {
            "10.99.0.1:8765"
        };
        c.admin_forward = Some((8765, other.into()));
    }) else {
        return;
    };
    r.start_both_synced();
    let mut server = r
        .lab
        .spawn(&r.b.member, &["python3", "-u", "-c", ADMIN_SERVER])
        .unwrap();
    server
        .wait_for_output("listening", Duration::from_secs(10))
        .unwrap();
    let s = r.a.status().unwrap();
    assert_eq!(s["admin_forward"]["listening"], true, "{s:#}");
    assert_eq!(s["admin_forward"]["standby_address"], "10.99.0.2:8765");
    assert_eq!(r.b.status().unwrap()["admin_forward"]["listening"], false);
    // The client reaches the standby's admin service through the virtual address.
    let out = r
        .lab
        .run(&r.client, &["python3", "-c", ADMIN_CLIENT])
        .unwrap_or_else(|e| panic!("{e}\na: {}", r.a.log()));
    assert_eq!(out.trim_end(), "answer:admin of node-b, you said hello");
    // The standby's admin service gone: the connection is closed at once, no byte sent,
    // and the master says why.
    server.signal(libc::SIGKILL).unwrap();
    let _ = server.wait_timeout(Duration::from_secs(5));
    let t = Instant::now();
    let out = r
        .lab
        .run(&r.client, &["python3", "-c", ADMIN_CLIENT])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.trim_end(), "answer:");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        wait_for("refusal logged", Duration::from_secs(5), || r
            .a
            .log()
            .contains("standby unreachable")),
        "{}",
        r.a.log()
    );
    // The standby node cut off altogether: closed after the connect timeout, not left open.
    r.lab.set_port(&r.b.member, false).unwrap();
    let t = Instant::now();
    let out = r
        .lab
        .run(&r.client, &["python3", "-c", ADMIN_CLIENT])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.trim_end(), "answer:");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn pair_sighup_reloads_what_it_can_and_reports_the_rest() {
    let Some(mut r) = rig("pairhup", "secondary", "active") else {
        return;
    };
    r.start_both_synced();
    // "last advertisement seen" is the receive time of the last advert: it advances with
    // every advert (100 ms) and is never older than a few intervals on a live pair.
    let seen = |n: &Node| n.status().unwrap()["instances"][0]["last_advert_seen"].as_f64();
    let first = seen(&r.b).expect("b has seen adverts");
    let mut second = first;
    wait_for("a later advert", Duration::from_secs(10), || {
        second = seen(&r.b).unwrap_or(first);
        second > first
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(second > first, "{first} {second}");
    assert!(now - second < 1.0, "last advert {:.3} s old", now - second);

    let sighup = |n: &Node| n.process.as_ref().unwrap().signal(libc::SIGHUP).unwrap();
    // Change a sync interval, a hook, the priority (live) and the advertisement interval
    // (needs a restart); SIGHUP.
    let hook = "echo reloaded >> /dev/null";
    {
        let c = &mut r.b.cfg;
        c.sets[1].interval = "3s".into();
        c.standby_hooks.push(hook.into());
        c.priority = 120;
        c.advert_interval = "200ms".into();
        c.write().unwrap();
    }
    sighup(&r.b);
    let mut s = Value::Null;
    assert!(
        wait_for("reload in status", Duration::from_secs(10), || {
            s = r.b.status().unwrap_or(Value::Null);
            s["reload"]["ok"] == true
        }),
        "{s:#}\n{}",
        r.b.log()
    );
    assert_eq!(r.b.set_status("state")["interval"], 3.0, "{s:#}");
    assert_eq!(r.b.set_status("config")["interval"], 1.0);
    let standby_hooks: Vec<&str> = s["hook_commands"]["standby"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(standby_hooks.contains(&hook), "{s:#}");
    let applied = s["reload"]["applied"].to_string();
    assert!(
        applied.contains("sync.sets[1].interval")
            && applied.contains("hooks")
            && applied.contains("vrrp.instances[0].priority"),
        "{applied}"
    );
    // The priority is live (RFC 5798 section 6.4); the interval needs a restart: reported,
    // and the old one stays.
    assert_eq!(
        s["reload"]["restart_needed"],
        serde_json::json!(["vrrp.instances[0].interval"])
    );
    assert!(
        wait_for("new priority in status", Duration::from_secs(5), || r
            .b
            .status()
            .is_some_and(|s| s["instances"][0]["priority"] == 120)),
        "{:#}",
        r.b.status().unwrap_or(Value::Null)
    );
    assert!(
        r.b.log()
            .contains("NOT applied until a restart: [vrrp.instances[0].interval]"),
        "{}",
        r.b.log()
    );
    let (ok, text) = r.b.ctl(&["status"]);
    assert!(
        ok && text.contains("NOT applied, restart needed: [vrrp.instances[0].interval]"),
        "{text}"
    );
    // The new interval is in force: over 6.5 s, rounds every 3 s (not every 1 s).
    let mut syncs = Vec::new();
    let end = Instant::now() + Duration::from_millis(6500);
    while Instant::now() < end {
        if let Some(t) = r.b.set_status("state")["last_sync"].as_f64() {
            if syncs.last() != Some(&t) {
                syncs.push(t);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        (2..=4).contains(&syncs.len()),
        "rounds at {syncs:?} ({})",
        r.b.log()
    );
    // An invalid file: refused with a clear error, the old configuration keeps running.
    let good = std::fs::read_to_string(&r.b.config).unwrap();
    std::fs::write(
        &r.b.config,
        good.replace("priority = 120", "priority = 999"),
    )
    .unwrap();
    sighup(&r.b);
    assert!(
        wait_for("refusal in status", Duration::from_secs(10), || {
            s = r.b.status().unwrap_or(Value::Null);
            s["reload"]["ok"] == false
        }),
        "{s:#}"
    );
    let err = s["reload"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("pair.toml: vrrp.instances[0].priority: 999 is out of range 1..=255"),
        "{err}"
    );
    assert!(r
        .b
        .log()
        .contains("reload refused, the old configuration stays in force"));
    assert_eq!(s["state"], "standby");
    assert_eq!(r.b.set_status("state")["interval"], 3.0);
    let (ok, text) = r.b.ctl(&["status"]);
    assert!(
        ok && text.contains("REFUSED, old configuration kept"),
        "{text}"
    );
    assert!(r.b.process.as_mut().unwrap().is_running());
    // The master's priority lowered by SIGHUP: its adverts carry the new value at once ...
    r.a.cfg.priority = 150;
    r.a.cfg.write().unwrap();
    sighup(&r.a);
    assert!(
        wait_for("a advertises 150", Duration::from_secs(20), || {
            // Three adverts from a seen on the wire by the client (tcpdump -v prints `prio`).
            r.lab
                .run(
                    &r.client,
                    &[
                        "timeout",
                        "5",
                        "tcpdump",
                        "-i",
                        "eth0",
                        "-nn",
                        "-v",
                        "-c",
                        "3",
                        "ip proto 112 and src 10.99.0.1",
                    ],
                )
                .is_ok_and(|out| out.matches("prio 150").count() == 3)
        }),
        "{}",
        r.a.log()
    );
    assert_eq!(r.a.status().unwrap()["instances"][0]["priority"], 150);
    assert_eq!(r.a.state(), "operational");
    // ... and below the standby's (120, preempt on), the standby preempts (RFC 5798 section
    // 6.4.2 (465)-(470)) without any restart.
    r.a.cfg.priority = 50;
    r.a.cfg.write().unwrap();
    sighup(&r.a);
    assert!(
        wait_for(
            "b preempts a at priority 50",
            Duration::from_secs(20),
            || r.b.state() == "operational" && r.a.state() == "standby"
        ),
        "a: {}\nb: {}",
        r.a.log(),
        r.b.log()
    );
    assert!(r.a.log().contains("vrrp pbx: priority 150 -> 50"));
    // Preempt is live too: back at 200 without preempt, a stays standby ...
    r.a.cfg.priority = 200;
    r.a.cfg.preempt = false;
    r.a.cfg.write().unwrap();
    sighup(&r.a);
    assert!(
        wait_for("a at 200 without preempt", Duration::from_secs(10), || r
            .a
            .status()
            .is_some_and(|s| s["instances"][0]["priority"] == 200
                && s["reload"]["applied"]
                    .to_string()
                    .contains("vrrp.instances[0].preempt"))),
        "{}",
        r.a.log()
    );
    // (many Master_Down_Intervals of 100 ms adverts)
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(r.a.state(), "standby", "{}", r.a.log());
    assert_eq!(r.b.state(), "operational");
    // ... and with preempt on again it takes over from b (120).
    r.a.cfg.preempt = true;
    r.a.cfg.write().unwrap();
    sighup(&r.a);
    assert!(
        wait_for("a preempts b", Duration::from_secs(20), || r.a.state()
            == "operational"
            && r.b.state() == "standby"),
        "a: {}\nb: {}",
        r.a.log(),
        r.b.log()
    );
    assert!(r.a.log().contains("vrrp pbx: preempt false -> true"));
}

#[test]
fn pair_one_master_two_standbys() {
    let Some(mut r) = rig_with("pair1n", "secondary", "active", true, &|_| {}) else {
        return;
    };
    r.start('a');
    assert!(wait_for("a operational", Duration::from_secs(15), || r
        .a
        .state()
        == "operational"));
    r.start('b');
    r.start('c');
    let c = r.node('c');
    assert!(
        wait_for("both standbys synced", Duration::from_secs(40), || {
            Rig::synced(&r.a, &r.b) && Rig::synced(&r.a, c)
        }),
        "b: {}\nc: {}",
        r.b.log(),
        c.log()
    );
    // The master lists both standbys, with mode and in-sync.
    let mut s = Value::Null;
    assert!(
        wait_for(
            "both standbys in sync on the master",
            Duration::from_secs(10),
            || {
                s = r.a.status().unwrap_or(Value::Null);
                let list = s["standbys"].as_array().cloned().unwrap_or_default();
                list.len() == 2
                    && list
                        .iter()
                        .all(|x| x["in_sync"] == true && x["mode"] == "active" && x["up"] == true)
            }
        ),
        "{s:#}"
    );
    let ids: Vec<&str> = s["standbys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["node_id"].as_str())
        .collect();
    assert_eq!(ids, ["node-b", "node-c"]);
    let (ok, text) = r.a.ctl(&["status"]);
    assert!(
        ok && text.contains("backup node-b is UP (Active mode), in sync")
            && text.contains("backup node-c is UP (Active mode), in sync"),
        "{text}"
    );
    // Master lost: exactly one standby (the higher priority, b) takes over ...
    let mon_b = r.lab.monitor_addresses(&r.b.member).unwrap();
    let cut = Instant::now();
    r.lab.set_port(&r.a.member, false).unwrap();
    let ev = mon_b
        .wait_for_address(VIP, true, cut, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("b did not take over\n{}", r.b.log()));
    eprintln!(
        "1:N takeover after the master's port went down: {:?}",
        ev.at.saturating_duration_since(cut)
    );
    let c = r.node('c');
    // ... and the other pulls from it.
    assert!(
        wait_for("c pulls state from b", Duration::from_secs(15), || {
            c.set_status("state")["source"] == "10.99.0.2:8730"
        }),
        "{:#}\n{}",
        c.set_status("state"),
        c.log()
    );
    std::fs::write(r.b.data("state").join("after-loss"), "b wrote this\n").unwrap();
    assert!(
        wait_for("c got b's change", Duration::from_secs(15), || {
            std::fs::read_to_string(c.data("state").join("after-loss"))
                .is_ok_and(|t| t == "b wrote this\n")
        }),
        "{}",
        c.log()
    );
    // Still exactly one operational node among the survivors.
    assert_eq!(r.b.state(), "operational");
    assert_eq!(c.state(), "standby");
    assert!(r.has_vip(&r.b) && !r.has_vip(c));
    // c never keeps the VIP. It may hold it for a moment: at 100 ms adverts b's and c's
    // Master_Down_Interval differ by only 19.5 ms of Skew_Time, each counted from when that
    // node processed a's last advert, so a loaded machine can let c's timer fire first; RFC
    // 5798 6.4.3 then makes c yield to b's higher-priority advert at once.
    let lc = c.log();
    if let Some(up) = lc.find("standby -> operational") {
        assert!(
            lc[up..].contains("operational -> standby") && lc.contains("higher priority"),
            "c became operational and did not yield to b\n{lc}"
        );
    }
    // The new master lists c as its standby.
    assert!(wait_for("b lists c", Duration::from_secs(10), || {
        r.b.status().is_some_and(|s| {
            s["standbys"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|x| x["node_id"] == "node-c" && x["up"] == true)
            })
        })
    }));
}

#[test]
fn pair_fault_releases_the_address_and_runs_the_fault_hook() {
    let Some(mut r) = rig_with("pairflt", "secondary", "active", false, &|c| {
        c.fault_hooks = vec![format!(
            "echo \"$REDUNDANCY_EVENT $REDUNDANCY_NODE\" > {}/fault.ran",
            c.dir.display()
        )];
    }) else {
        return;
    };
    r.start_both_synced();
    assert!(r.has_vip(&r.a));
    // The master's own link goes down (its tracked interface): fault.
    r.lab.set_link(&r.a.member, false).unwrap();
    assert!(
        wait_for("a in fault", Duration::from_secs(10), || r.a.state()
            == "fault"),
        "{}",
        r.a.log()
    );
    assert!(
        wait_for("fault hook", Duration::from_secs(10), || {
            std::fs::read_to_string(r.a.dir.join("fault.ran")).is_ok_and(|t| t == "fault node-a\n")
        }),
        "{}",
        r.a.log()
    );
    assert!(!r.has_vip(&r.a), "the address stayed on a faulty node");
    assert!(
        wait_for("b operational", Duration::from_secs(10), || r.b.state()
            == "operational"
            && r.has_vip(&r.b)),
        "{}",
        r.b.log()
    );
    let s = r.a.status().unwrap();
    assert_eq!(s["instances"][0]["state"], "fault");
    assert!(
        s["sets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["serving"] == false && x["pulling"] == false),
        "{s:#}"
    );
    // Link back: the fault clears.
    r.lab.set_link(&r.a.member, true).unwrap();
    assert!(
        wait_for("a out of fault", Duration::from_secs(10), || {
            let st = r.a.state();
            st == "standby" || st == "operational"
        }),
        "{}",
        r.a.log()
    );
}

#[test]
fn pair_vrrp_settings_mismatch_is_reported() {
    let Some(mut r) = rig_with("pairmis", "secondary", "active", false, &|c| {
        if c.id == "node-b" {
            c.advert_interval = "200ms".into();
        }
    }) else {
        return;
    };
    r.start('a');
    r.start('b');
    let want = "instance pbx (VRID 51): advertisement interval 100 ms here, 200 ms on `node-b`";
    let mut s = Value::Null;
    assert!(
        wait_for("mismatch in status", Duration::from_secs(15), || {
            s = r.a.status().unwrap_or(Value::Null);
            s["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x.as_str() == Some(want)))
        }),
        "{s:#}"
    );
    assert!(
        wait_for("mismatch logged", Duration::from_secs(5), || r
            .b
            .log()
            .contains(
                "advertisement interval 200 ms here, 100 ms on `node-a`"
            )),
        "{}",
        r.b.log()
    );
}

/// The primary lost without a handover: its link goes, then the process (SIGKILL). Waits until
/// b holds the address and is operational.
fn lose_primary(r: &mut Rig) {
    let mon_b = r.lab.monitor_addresses(&r.b.member).unwrap();
    let cut = Instant::now();
    r.lab.set_port(&r.a.member, false).unwrap();
    mon_b
        .wait_for_address(VIP, true, cut, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("b did not take over\n{}", r.b.log()));
    let p = r.a.process.as_mut().unwrap();
    p.signal(libc::SIGKILL).unwrap();
    let _ = p.wait_timeout(Duration::from_secs(10));
    assert!(
        wait_for("b operational", Duration::from_secs(10), || r.b.state()
            == "operational"),
        "{}",
        r.b.log()
    );
}

#[test]
fn pair_returning_primary_pulls_before_it_preempts_and_nothing_is_lost() {
    let Some(mut r) = rig("pairback", "secondary", "active") else {
        return;
    };
    r.start_both_synced();
    lose_primary(&mut r);
    // The PBX on the secondary writes new state while the primary is away.
    std::fs::write(r.b.data("state").join("while-a-was-away"), "call 43\n").unwrap();
    std::fs::write(r.b.data("state").join("calls.db"), vec![8u8; 400_000]).unwrap();
    let _ = std::fs::remove_file(r.a.dir.join("state.listing"));
    // The primary returns (priority 200 over 100, preempt on). Without the hold it would take
    // over after Master_Down_Interval (about 320 ms at 100 ms adverts), before it even heard
    // b's first heartbeat (500 ms), on its old generation.
    r.lab.set_port(&r.a.member, true).unwrap();
    let t0 = Instant::now();
    r.start('a');
    assert!(
        wait_for("a operational again", Duration::from_secs(40), || r
            .a
            .state()
            == "operational"
            && r.b.state() == "standby"),
        "a: {}\nb: {}",
        r.a.log(),
        r.b.log()
    );
    // It held, pulled, then preempted: in this order in its log.
    assert!(wait_for("a's log", Duration::from_secs(5), || r
        .a
        .log()
        .contains("node node-a: standby -> operational")));
    let la = r.a.log();
    let at = |needle: &str| la.find(needle).unwrap_or_else(|| panic!("{needle}:\n{la}"));
    let held = at("preempt held: waiting for sets state");
    let pulled = at("sync state: from 10.99.0.2:8730");
    let released = at("preempt hold released");
    let operational = at("node node-a: standby -> operational");
    assert!(
        held < pulled && pulled < released && released < operational,
        "{la}"
    );
    assert!(!la.contains("EXPIRED"), "{la}");
    let hold_line = la
        .get(released..)
        .and_then(|t| t.lines().next())
        .unwrap_or("");
    eprintln!(
        "failback: a operational {:.2} s after its start (seen by status polling); {hold_line}",
        t0.elapsed().as_secs_f64()
    );
    // Its applications started on the data written on b (the operational hook lists it).
    assert!(
        wait_for("operational hook on a", Duration::from_secs(10), || {
            std::fs::read_to_string(r.a.dir.join("state.listing"))
                .is_ok_and(|l| l.contains("while-a-was-away"))
        }),
        "{}",
        la
    );
    assert_eq!(
        std::fs::read_to_string(r.a.data("state").join("while-a-was-away")).unwrap(),
        "call 43\n"
    );
    assert_eq!(
        std::fs::read(r.a.data("state").join("calls.db")).unwrap(),
        vec![8u8; 400_000]
    );
    // Nothing lost: b, now standby, pulls back from a and still holds what it wrote.
    assert!(
        wait_for("b in sync with a", Duration::from_secs(20), || r.in_sync()
            && r.b.set_status("state")["source"] == "10.99.0.1:8730"),
        "{}",
        r.b.log()
    );
    assert_eq!(
        std::fs::read_to_string(r.b.data("state").join("while-a-was-away")).unwrap(),
        "call 43\n"
    );
    assert_eq!(
        std::fs::read(r.b.data("state").join("calls.db")).unwrap(),
        vec![8u8; 400_000]
    );
    assert!(r.has_vip(&r.a) && !r.has_vip(&r.b));
}

#[test]
fn pair_preempt_hold_expires_when_the_master_serves_nothing() {
    let Some(mut r) = rig_with("pairhold", "secondary", "active", false, &|c| {
        c.preempt_hold_max = Some("4s".into());
    }) else {
        return;
    };
    r.start_both_synced();
    lose_primary(&mut r);
    // The primary returns with another key: b's heartbeats and data are out of its reach
    // (the VRRP adverts are not), so it never pulls.
    let other = r.lab.dir().join("other-psk");
    std::fs::write(&other, "not the key of the pair, test only\n").unwrap();
    r.a.cfg.key_file = other;
    r.a.cfg.write().unwrap();
    r.lab.set_port(&r.a.member, true).unwrap();
    let t0 = Instant::now();
    r.start('a');
    // The hold shows in status while b is operational.
    let s = r.a.status().unwrap();
    assert_eq!(s["state"], "standby", "{s:#}");
    assert_eq!(
        s["preempt_hold"]["waiting_for"],
        serde_json::json!(["state"]),
        "{s:#}"
    );
    let (ok, text) = r.a.ctl(&["status"]);
    assert!(
        ok && text.contains("preempt held: waiting for sets state"),
        "{text}"
    );
    // After sync.preempt_hold_max it preempts anyway, and says so.
    assert!(
        wait_for("a operational", Duration::from_secs(30), || r.a.state()
            == "operational"),
        "{}",
        r.a.log()
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(3900),
        "{took:?}\n{}",
        r.a.log()
    );
    assert!(
        wait_for("expiry logged", Duration::from_secs(5), || r
            .a
            .log()
            .contains(
                "preempt hold EXPIRED after 4s (sync.preempt_hold_max) without a pull of state"
            )),
        "{}",
        r.a.log()
    );
    assert_eq!(r.a.status().unwrap()["preempt_hold"], Value::Null);
}
