//! `redundancy-cli demo` runs to the end, narrates every step and leaves no namespace behind
//! (skipped with a printed reason when not root).
use std::process::Command;

#[test]
fn pair_demo_runs_and_cleans_up() {
    if netlab::require_root(&["ping"]) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_redundancy-cli"))
        .arg("demo")
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "2. election: node-a (priority 200) is operational, node-b (priority 100) is standby",
        "3. first sync",
        "4. a new voicemail on node-a reached node-b",
        "client reaches 10.99.0.100: true",
        "6. node-a restarted: standby",
        "the voicemail written on node-b just before is on node-a: true",
        "backup node-b is UP (Passive mode)",
        "everything it made is removed",
    ] {
        assert!(text.contains(step), "missing `{step}` in:\n{text}");
    }
    // The lab's namespaces are gone.
    let prefix = text
        .split("namespaces ")
        .nth(1)
        .and_then(|t| t.split("-{").next())
        .unwrap_or("")
        .to_string();
    assert!(!prefix.is_empty(), "{text}");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&prefix));
}

#[test]
fn pair_demo_refuses_clearly_when_not_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: running as root (the refusal is for non-root users)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_redundancy-cli"))
        .arg("demo")
        .output()
        .expect("run demo");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}
