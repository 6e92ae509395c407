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
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redundancy-cli");
const VIP: &str = "10.99.0.100";

struct Node {
    member: Member,
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
}

struct Rig {
    lab: Lab,
    a: Node,
    b: Node,
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

fn write_config(
    dir: &Path,
    id: &str,
    role: &str,
    priority: u8,
    peer: &str,
    psk: &Path,
    mode: &str,
) -> (PathBuf, PathBuf) {
    let socket = dir.join("ctl.sock");
    let cfg = format!(
        r#"
[node]
id = "{id}"
role = "{role}"
mode = "{mode}"
peers = ["{peer}"]
control_socket = "{sock}"

[[vrrp.instances]]
name = "pbx"
interface = "eth0"
vrid = 51
priority = {priority}
version = 3
interval = "100ms"
virtual_addresses = ["{VIP}/24"]

[sync]
key_file = "{psk}"
listen = "0.0.0.0:8730"

[[sync.sets]]
name = "config"
root = "{dir}/config"
interval = "1s"
direction = "from_primary"

[[sync.sets]]
name = "state"
root = "{dir}/state"
interval = "1s"
direction = "from_operational"

[hooks]
operational = ["echo \"$REDUNDANCY_NODE\" > {dir}/operational.ran; ls \"$REDUNDANCY_SET_STATE\" > {dir}/state.listing"]
standby = ["echo standby >> {dir}/standby.ran"]
timeout = "5s"
"#,
        sock = socket.display(),
        psk = psk.display(),
        dir = dir.display(),
    );
    let path = dir.join("pair.toml");
    std::fs::write(&path, cfg).expect("write config");
    (path, socket)
}

fn rig(tag: &str, b_role: &str, b_mode: &str) -> Option<Rig> {
    if netlab::require_root(&[]) {
        return None;
    }
    let mut lab = Lab::new(tag).expect("lab");
    let ma = lab.add_member("a", &["10.99.0.1/24"]).expect("member a");
    let mb = lab.add_member("b", &["10.99.0.2/24"]).expect("member b");
    let client = lab.add_member("c", &["10.99.0.10/24"]).expect("client");
    let root = lab.dir().to_path_buf();
    let psk = root.join("psk");
    std::fs::write(&psk, "a pre-shared key of the pair, test only\n").expect("psk");
    let mk = |m: &Member, id: &str, role: &str, prio: u8, peer: &str, mode: &str| {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).expect("dir");
        let (config, socket) = write_config(&dir, id, role, prio, peer, &psk, mode);
        Node {
            member: m.clone(),
            dir,
            config,
            socket,
            process: None,
        }
    };
    let a = mk(&ma, "node-a", "primary", 200, "10.99.0.2", "active");
    let b = mk(&mb, "node-b", b_role, 100, "10.99.0.1", b_mode);
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
        client,
        psk,
    })
}

impl Rig {
    fn start(&mut self, which: char) {
        let lab = &self.lab;
        let n = if which == 'a' {
            &mut self.a
        } else {
            &mut self.b
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
        let n = if which == 'a' { &self.a } else { &self.b };
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
            wait_for("b synced", Duration::from_secs(30), || self.in_sync()),
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
        let ga = Self::gens(&self.a);
        let gb = Self::gens(&self.b);
        ga.iter().all(Option::is_some) && ga == gb
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
        "errors",
    ] {
        assert!(last.get(k).is_some(), "status lacks {k}: {last:#}");
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
