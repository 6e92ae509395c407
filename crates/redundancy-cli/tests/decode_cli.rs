//! `redundancy-cli decode` run as a real binary on the keepalived captures in
//! `tests/fixtures/` (see the README there), on damaged copies of them, and on hex input.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The exact key set of a decoded advertisement in `--json` output.
const JSON_KEYS: [&str; 15] = [
    "frame",
    "src",
    "dst",
    "ttl",
    "version",
    "type",
    "vrid",
    "priority",
    "count",
    "auth_type",
    "interval_cs",
    "checksum",
    "checksum_ok",
    "checksum_form",
    "addresses",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn decode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redundancy-cli"))
        .arg("decode")
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run redundancy-cli")
}

fn stdout_json(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What keepalived was configured with for one fixture (tests/fixtures/make-captures.sh).
struct Expect {
    file: &'static str,
    version: u64,
    interval_cs: u64,
    addresses: &'static [&'static str],
    checksum_form: &'static str,
    auth_type: Option<u64>,
    sources: [&'static str; 2],
    dst: &'static str,
    vrrp_frames: usize,
}

const V2_SOURCES: [&str; 2] = ["10.99.0.10", "10.99.0.11"];
const V6_SOURCES: [&str; 2] = ["fe80::99:ff:fe00:a", "fe80::99:ff:fe00:b"];

fn v2(file: &'static str, auth_type: u64) -> Expect {
    Expect {
        file,
        version: 2,
        interval_cs: 100,
        addresses: &["10.99.0.100"],
        checksum_form: "v2",
        auth_type: Some(auth_type),
        sources: V2_SOURCES,
        dst: "224.0.0.18",
        vrrp_frames: 14,
    }
}

fn v3_ipv4(file: &'static str) -> Expect {
    Expect {
        file,
        version: 3,
        interval_cs: 50,
        addresses: &["10.99.0.100", "10.99.0.101"],
        checksum_form: "pseudo-header",
        auth_type: None,
        sources: V2_SOURCES,
        dst: "224.0.0.18",
        vrrp_frames: 24,
    }
}

fn v3_ipv6(file: &'static str) -> Expect {
    Expect {
        file,
        version: 3,
        interval_cs: 50,
        addresses: &["fe80::99:100", "fd99::100"],
        checksum_form: "pseudo-header",
        auth_type: None,
        sources: V6_SOURCES,
        dst: "ff02::12",
        vrrp_frames: 21,
    }
}

fn all_fixtures() -> Vec<Expect> {
    vec![
        v2("vrrp-v2.pcap", 0),
        v2("vrrp-v2.pcapng", 0),
        v2("vrrp-v2-sll.pcap", 0),
        v2("vrrp-v2-sll2.pcap", 0),
        v2("vrrp-v2-raw.pcap", 0),
        v2("vrrp-v2-auth-pass.pcap", 1),
        v3_ipv4("vrrp-v3-ipv4.pcap"),
        v3_ipv4("vrrp-v3-ipv4-vlan.pcap"),
        v3_ipv4("vrrp-v3-ipv4-raw4.pcap"),
        v3_ipv6("vrrp-v3-ipv6.pcap"),
        v3_ipv6("vrrp-v3-ipv6.pcapng"),
        v3_ipv6("vrrp-v3-ipv6-raw6.pcap"),
    ]
}

/// Frame numbers of the VRRP frames as tshark numbers them, when tshark is installed.
fn tshark_vrrp_frames(path: &Path) -> Option<Vec<u64>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-Y", "vrrp", "-T", "fields", "-e", "frame.number"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn every_fixture_decodes_to_keepalived_s_configuration() {
    let expected_keys: BTreeSet<&str> = JSON_KEYS.iter().copied().collect();
    for e in all_fixtures() {
        let path = fixtures().join(e.file);
        let out = decode(&["--pcap", path.to_str().expect("UTF-8 path"), "--json"]);
        assert!(
            out.status.success(),
            "{}: exit {:?}, stderr {:?}",
            e.file,
            out.status,
            stderr_lines(&out)
        );
        let objects = stdout_json(&out);
        assert_eq!(objects.len(), e.vrrp_frames, "{}: VRRP frames", e.file);
        let mut priorities = HashSet::new();
        let mut last_frame = 0;
        for o in &objects {
            let keys: BTreeSet<&str> = o
                .as_object()
                .expect("an object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, expected_keys, "{}: key set of {o}", e.file);
            let frame = o["frame"].as_u64().expect("frame number");
            assert!(frame > last_frame, "{}: frames in file order", e.file);
            last_frame = frame;
            assert_eq!(o["version"], e.version, "{}: {o}", e.file);
            assert_eq!(o["type"], 1, "{}: {o}", e.file);
            assert_eq!(o["vrid"], 51, "{}: {o}", e.file);
            assert_eq!(o["ttl"], 255, "{}: {o}", e.file);
            assert_eq!(o["dst"], e.dst, "{}: {o}", e.file);
            assert!(
                e.sources.contains(&o["src"].as_str().expect("src")),
                "{}: {o}",
                e.file
            );
            assert_eq!(o["interval_cs"], e.interval_cs, "{}: {o}", e.file);
            assert_eq!(o["count"], e.addresses.len(), "{}: {o}", e.file);
            let addresses: Vec<&str> = o["addresses"]
                .as_array()
                .expect("addresses")
                .iter()
                .map(|a| a.as_str().expect("address"))
                .collect();
            assert_eq!(addresses, e.addresses, "{}: {o}", e.file);
            assert_eq!(
                o["auth_type"],
                e.auth_type.map_or(Value::Null, Value::from),
                "{}: {o}",
                e.file
            );
            assert_eq!(o["checksum_ok"], true, "{}: {o}", e.file);
            assert_eq!(o["checksum_form"], e.checksum_form, "{}: {o}", e.file);
            let checksum = o["checksum"].as_str().expect("checksum");
            assert!(
                checksum.len() == 6 && checksum.starts_with("0x"),
                "{}: {o}",
                e.file
            );
            let priority = o["priority"].as_u64().expect("priority");
            // Node A 150 (prefers itself), node B 100, and 0 when either stops (RFC 3768 6.4.3).
            assert!([0, 100, 150].contains(&priority), "{}: {o}", e.file);
            // Node A (10.99.0.10 / ...:a) sends 150 or 0, node B 100 or 0.
            let from_a = o["src"] == e.sources[0];
            assert!(
                priority == 0 || (priority == 150) == from_a,
                "{}: {o}",
                e.file
            );
            priorities.insert(priority);
        }
        assert_eq!(
            priorities,
            HashSet::from([0, 100, 150]),
            "{}: both masters and both resignations",
            e.file
        );
        // Frame numbers are Wireshark's, counting the ARP / IGMP / ND frames in between.
        match tshark_vrrp_frames(&path) {
            Some(frames) => {
                let ours: Vec<u64> = objects
                    .iter()
                    .map(|o| o["frame"].as_u64().expect("frame"))
                    .collect();
                assert_eq!(
                    ours, frames,
                    "{}: frame numbers differ from tshark's",
                    e.file
                );
            }
            None => println!(
                "{}: tshark not available, frame numbers not cross-checked",
                e.file
            ),
        }
    }
}

#[test]
fn keepalived_v2_checksum_0x3e03_for_vrid_51_priority_150() {
    // ENVIRONMENT.md: keepalived 2.2.7, v2, VRID 51, priority 150, VIP 10.99.0.100, 1 s.
    for file in [
        "vrrp-v2.pcap",
        "vrrp-v2.pcapng",
        "vrrp-v2-sll.pcap",
        "vrrp-v2-sll2.pcap",
        "vrrp-v2-raw.pcap",
    ] {
        let path = fixtures().join(file);
        let objects = stdout_json(&decode(&[
            "--pcap",
            path.to_str().expect("UTF-8 path"),
            "--json",
        ]));
        let prio_150: Vec<&Value> = objects.iter().filter(|o| o["priority"] == 150).collect();
        assert!(!prio_150.is_empty(), "{file}: no priority-150 advert");
        for o in prio_150 {
            assert_eq!(o["checksum"], "0x3e03", "{file}: {o}");
            assert_eq!(o["src"], "10.99.0.10", "{file}: {o}");
        }
    }
}

#[test]
fn text_output_is_one_tcpdump_like_line_per_vrrp_frame() {
    let path = fixtures().join("vrrp-v2.pcap");
    let out = decode(&["--pcap", path.to_str().expect("UTF-8 path")]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 14);
    let a = lines
        .iter()
        .find(|l| l.contains("10.99.0.10 >"))
        .expect("a line from node A");
    assert!(
        a.ends_with(
            "10.99.0.10 > 224.0.0.18 ttl 255: VRRPv2 advertisement vrid 51 prio 150 auth none \
             intvl 1s addrs 10.99.0.100 cksum 0x3e03 (v2)"
        ),
        "{a}"
    );
    let pass = decode(&[
        "--pcap",
        fixtures()
            .join("vrrp-v2-auth-pass.pcap")
            .to_str()
            .expect("UTF-8"),
    ]);
    let text = String::from_utf8(pass.stdout).expect("UTF-8");
    assert!(
        text.lines().all(|l| l.contains("auth simple \"fixture1\"")),
        "{text}"
    );
}

/// The byte offset of each record's data in a little-endian classic pcap.
fn pcap_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        records.push((at + 16, incl));
        at += 16 + incl;
    }
    records
}

fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write a temporary file");
    path.to_str().expect("UTF-8 path").to_string()
}

#[test]
fn damaged_frames_are_reported_per_frame_and_the_file_still_reads() {
    let original = std::fs::read(fixtures().join("vrrp-v2.pcap")).expect("fixture");
    let records = pcap_records(&original);
    let objects = stdout_json(&decode(&[
        "--pcap",
        fixtures().join("vrrp-v2.pcap").to_str().expect("UTF-8"),
        "--json",
    ]));
    let first = objects[0]["frame"].as_u64().expect("frame") as usize;
    let second = objects[1]["frame"].as_u64().expect("frame") as usize;
    let (data_first, _) = records[first - 1];
    let (data_second, _) = records[second - 1];
    let mut damaged = original.clone();
    // Frame `first`: flip a bit of the VRRP checksum (Ethernet 14 + IPv4 20 + offset 6).
    damaged[data_first + 14 + 20 + 6] ^= 0x01;
    // Frame `second`: TTL 1 instead of 255 (IPv4 header byte 8), as if routed.
    damaged[data_second + 14 + 8] = 1;
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = temp_file(&dir, "damaged.pcap", &damaged);
    let out = decode(&["--pcap", &path, "--json"]);
    assert!(
        out.status.success(),
        "a readable file exits 0: {:?}",
        stderr_lines(&out)
    );
    let got = stdout_json(&out);
    assert_eq!(got.len(), objects.len());
    // A bad checksum still reports the fields.
    assert_eq!(got[0]["frame"], first);
    assert_eq!(got[0]["checksum_ok"], false, "{}", got[0]);
    assert_eq!(got[0]["checksum_form"], "v2");
    assert_eq!(got[0]["vrid"], 51);
    let flipped = u16::from_str_radix(
        objects[0]["checksum"]
            .as_str()
            .expect("hex")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex")
        ^ 0x0100;
    assert_eq!(got[0]["checksum"], format!("0x{flipped:04x}"));
    // A TTL below 255 is the error object naming the rule.
    let keys: Vec<&str> = got[1]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["error", "frame"], "{}", got[1]);
    assert_eq!(got[1]["frame"], second);
    let error = got[1]["error"].as_str().expect("error text");
    assert!(
        error.contains("TTL 1") && error.contains("RFC 3768 section 7.1"),
        "{error}"
    );
    // The rest are untouched.
    assert_eq!(&got[2..], &objects[2..]);
    // Text mode says the same.
    let text = String::from_utf8(decode(&["--pcap", &path]).stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("(BAD: checksum 0x"), "{}", lines[0]);
    assert!(lines[1].contains("invalid VRRP: TTL 1"), "{}", lines[1]);
}

fn assert_fails(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code; stderr {:?}",
        stderr_lines(out)
    );
    let lines = stderr_lines(out);
    assert_eq!(lines.len(), 1, "one stderr line: {lines:?}");
    assert!(lines[0].starts_with("redundancy-cli decode: "), "{lines:?}");
    assert!(
        lines[0].contains(needle),
        "{lines:?} should mention {needle:?}"
    );
}

#[test]
fn unreadable_inputs_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing.pcap");
    let out = decode(&["--pcap", missing.to_str().expect("UTF-8")]);
    assert_fails(&out, "missing.pcap");
    assert!(out.stdout.is_empty());

    let garbage = temp_file(&dir, "garbage.pcap", b"this is not a capture file at all\n");
    assert_fails(
        &decode(&["--pcap", &garbage]),
        "is not a pcap or pcapng file (it starts with 74 68 69 73)",
    );
    let empty = temp_file(&dir, "empty.pcap", b"");
    assert_fails(&decode(&["--pcap", &empty, "--json"]), "it is empty");

    let original = std::fs::read(fixtures().join("vrrp-v2.pcap")).expect("fixture");
    let header_cut = temp_file(&dir, "header.pcap", &original[..10]);
    assert_fails(
        &decode(&["--pcap", &header_cut]),
        "10 bytes is shorter than a pcap header",
    );
    let ng = std::fs::read(fixtures().join("vrrp-v2.pcapng")).expect("fixture");
    let ng_cut = temp_file(&dir, "header.pcapng", &ng[..20]);
    assert_fails(
        &decode(&["--pcap", &ng_cut]),
        "shorter than a pcapng header",
    );

    // Cut inside the 5th record: frames 1-4 are still decoded, then the error.
    let records = pcap_records(&original);
    let (fifth, _) = records[4];
    let cut = temp_file(&dir, "cut.pcap", &original[..fifth + 10]);
    let out = decode(&["--pcap", &cut, "--json"]);
    assert_fails(&out, "truncated after frame 4");
    let full = stdout_json(&decode(&[
        "--pcap",
        fixtures().join("vrrp-v2.pcap").to_str().expect("UTF-8"),
        "--json",
    ]));
    let before: Vec<&Value> = full
        .iter()
        .filter(|o| o["frame"].as_u64() < Some(5))
        .collect();
    assert_eq!(stdout_json(&out).iter().collect::<Vec<_>>(), before);

    let ng_mid = temp_file(&dir, "cut.pcapng", &ng[..ng.len() - 7]);
    assert_fails(&decode(&["--pcap", &ng_mid]), "truncated after frame 36");

    assert_fails(&decode(&["21 33 1e 0g"]), "not hex: 'g' at character 11");
    assert_fails(&decode(&["21331"]), "odd number");
}

#[test]
fn hex_messages_decode_with_and_without_ip_context() {
    // ENVIRONMENT.md: v2, VRID 51, priority 30, VIP 10.0.1.5, no auth, 1 s: checksum 0xb5c5.
    let v2 = "21 33 1e 01 00 01 b5 c5 0a 00 01 05 00 00 00 00 00 00 00 00";
    let out = decode(&[v2, "--json"]);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let o = &stdout_json(&out)[0];
    assert_eq!(o["frame"], 1);
    assert_eq!(
        (
            o["vrid"].as_u64(),
            o["priority"].as_u64(),
            o["interval_cs"].as_u64()
        ),
        (Some(51), Some(30), Some(100))
    );
    assert_eq!(o["checksum"], "0xb5c5");
    assert_eq!(o["checksum_ok"], true);
    assert_eq!(o["checksum_form"], "v2");
    assert_eq!(o["src"], Value::Null);
    assert_eq!(o["addresses"], serde_json::json!(["10.0.1.5"]));

    // v3 over IPv4 (ENVIRONMENT.md): 0xb25e with the pseudo-header, 20.0.0.3 -> 224.0.0.18.
    let v3 = "31:02:fe:02:00:01:b2:5e:14:00:01:02:14:00:01:03";
    let bare = stdout_json(&decode(&[v3, "--json"]));
    assert_eq!(
        bare[0]["checksum_ok"],
        Value::Null,
        "no IP context: not checked"
    );
    assert_eq!(bare[0]["checksum_form"], Value::Null);
    let text = String::from_utf8(decode(&[v3]).stdout).expect("UTF-8");
    assert!(text.contains("not checked"), "{text}");
    let with_ip = decode(&[v3, "--src", "20.0.0.3", "--dst", "224.0.0.18", "--json"]);
    let o = &stdout_json(&with_ip)[0];
    assert_eq!(o["checksum_ok"], true, "{o}");
    assert_eq!(o["checksum_form"], "pseudo-header");
    assert_eq!(o["src"], "20.0.0.3");
    let wrong_src = decode(&[v3, "--src", "20.0.0.4", "--dst", "224.0.0.18", "--json"]);
    assert!(wrong_src.status.success());
    assert_eq!(stdout_json(&wrong_src)[0]["checksum_ok"], false);

    // A whole IPv4 packet from the fixture (its first VRRP frame, Ethernet header removed).
    let original = std::fs::read(fixtures().join("vrrp-v2.pcap")).expect("fixture");
    let first = stdout_json(&decode(&[
        "--pcap",
        fixtures().join("vrrp-v2.pcap").to_str().expect("UTF-8"),
        "--json",
    ]))[0]
        .clone();
    let (at, len) = pcap_records(&original)[first["frame"].as_u64().expect("frame") as usize - 1];
    let packet: String = original[at + 14..at + len]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let o = &stdout_json(&decode(&[&packet, "--json"]))[0];
    for key in [
        "src",
        "dst",
        "ttl",
        "priority",
        "checksum",
        "checksum_ok",
        "addresses",
    ] {
        assert_eq!(o[key], first[key], "{key}");
    }

    // Not an advertisement: version 5. The reason is the output; exit 1.
    let out = decode(&[
        "51 33 1e 01 00 01 b5 c5 0a 00 01 05 00 00 00 00 00 00 00 00",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let o = &stdout_json(&out)[0];
    assert!(
        o["error"].as_str().expect("error").contains("version 5"),
        "{o}"
    );
}
