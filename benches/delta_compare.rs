//! Comparison runner: our delta engine against fast_rsync 0.2 and librsync (the C library via
//! the `librsync` crate) on the same data in the same run. Prints a Markdown table.
//!
//! Data (issue 6): `DELTA_COMPARE_MIB` MiB (default 256) of random bytes as the base; the same
//! with 16 scattered 4 KiB overwrites and a 1 KiB insertion in the middle ("small edit"); an
//! unrelated random file ("no match"). Block size 4096 and 16-byte strong hashes for everyone.
//! Files live in a temporary directory and are read once before timing (warm page cache).
//!
//! Each (engine, operation) runs in a child process (this binary re-executed) so that its peak
//! RSS (`VmHWM`) is its own. Inside the child the operation runs `DELTA_COMPARE_RUNS` times
//! (default 3) and the median time is reported. Ours streams from the files (its streaming API,
//! bounded memory); fast_rsync needs whole buffers, so its inputs are read into memory before
//! timing; librsync streams from the files. Deltas go to a byte counter; patch output goes to a
//! sink for the streaming engines (ours reads and hashes every byte; librsync copies through its
//! buffers) and into a preallocated buffer for fast_rsync (given a sink it copies nothing).
//!
//! "Stream 4 GiB" (issue 6: peak RSS under 64 MiB while streaming a 4 GiB file): ours only
//! (fast_rsync cannot stream), signature, diff and apply each in its own child process, reading
//! a generated base and new file (a seekable generator, nothing on disk; the new file differs
//! in 16 scattered 4 KiB regions); peak RSS and throughput of one run each (the throughput
//! includes generating the data, about 8 bytes per hash, so it is a floor, not the engine's
//! speed; the diff's peak includes the signature it needs, 20 bytes per block).
//!
//! Every figure (all runs of ours and of each peer, one record per peer) is appended to the
//! file named by `BENCH_JSON` (see `benches/report/mod.rs`), group "delta".
//!
//! Knobs: `DELTA_COMPARE_MIB` (default 256), `DELTA_COMPARE_RUNS` (default 3),
//! `DELTA_COMPARE_STREAM_GIB` (default 4; 0 skips the streaming case), `BENCH_JSON`.
#[path = "report/mod.rs"]
mod report;

use std::fs::{self, File};
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BLOCK: u32 = 4096;
const ENGINES: [&str; 3] = ["ours", "fast_rsync", "librsync"];
const OPS: [&str; 4] = ["signature", "diff_edit", "diff_nomatch", "patch"];

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).expect("read input")
}

/// Runs one (engine, op) `runs` times; returns (seconds of each run, bytes processed, output
/// size).
fn child(engine: &str, op: &str, dir: &Path, runs: usize) -> (Vec<f64>, u64, u64) {
    let base_p = dir.join("base");
    let new_p = match op {
        "diff_nomatch" => dir.join("unrelated"),
        _ => dir.join("edited"),
    };
    let mut times = Vec::new();
    let mut out_len = 0u64;
    let processed;
    match engine {
        "ours" => {
            use sync::delta::{apply, diff, Signature, SignatureOptions};
            let opts = SignatureOptions::with_block_size(BLOCK);
            let sig_of_base = || {
                Signature::calculate_from(File::open(&base_p).expect("open"), opts).expect("sig")
            };
            match op {
                "signature" => {
                    processed = fs::metadata(&base_p).expect("meta").len();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let sig = sig_of_base();
                        times.push(t.elapsed().as_secs_f64());
                        out_len = sig.serialized_len() as u64;
                    }
                }
                "diff_edit" | "diff_nomatch" => {
                    let sig = sig_of_base();
                    processed = fs::metadata(&new_p).expect("meta").len();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let idx = sig.index();
                        let mut d = Counter::default();
                        diff(&idx, File::open(&new_p).expect("open"), &mut d).expect("diff");
                        times.push(t.elapsed().as_secs_f64());
                        out_len = d.0;
                    }
                }
                _ => {
                    let sig = sig_of_base();
                    let mut d = Vec::new();
                    diff(&sig.index(), File::open(&new_p).expect("open"), &mut d).expect("diff");
                    drop(sig);
                    processed = fs::metadata(&new_p).expect("meta").len();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let base = File::open(&base_p).expect("open");
                        out_len = apply(base, &d[..], io::sink()).expect("patch");
                        times.push(t.elapsed().as_secs_f64());
                    }
                }
            }
        }
        "fast_rsync" => {
            use fast_rsync::{apply, diff, Signature, SignatureOptions};
            let opts = SignatureOptions {
                block_size: BLOCK,
                crypto_hash_size: 16,
            };
            let base = read(&base_p);
            match op {
                "signature" => {
                    processed = base.len() as u64;
                    for _ in 0..runs {
                        let t = Instant::now();
                        let sig = Signature::calculate(&base, opts);
                        times.push(t.elapsed().as_secs_f64());
                        out_len = sig.serialized().len() as u64;
                    }
                }
                "diff_edit" | "diff_nomatch" => {
                    let sig = Signature::calculate(&base, opts);
                    drop(base);
                    let new = read(&new_p);
                    processed = new.len() as u64;
                    for _ in 0..runs {
                        let t = Instant::now();
                        let idx = sig.index();
                        let mut d = Counter::default();
                        diff(&idx, &new, &mut d).expect("diff");
                        times.push(t.elapsed().as_secs_f64());
                        out_len = d.0;
                    }
                }
                _ => {
                    let new = read(&new_p);
                    let sig = Signature::calculate(&base, opts);
                    let mut d = Vec::new();
                    diff(&sig.index(), &new, &mut d).expect("diff");
                    processed = new.len() as u64;
                    drop(new);
                    // Into a buffer: given a sink, fast_rsync's apply hands it slices of the
                    // base and does no work at all.
                    let mut out = Vec::with_capacity(processed as usize);
                    for _ in 0..runs {
                        out.clear();
                        let t = Instant::now();
                        apply(&base, &d, &mut out).expect("patch");
                        times.push(t.elapsed().as_secs_f64());
                        out_len = out.len() as u64;
                    }
                }
            }
        }
        _ => {
            use librsync::whole::{delta, patch, signature_with_options};
            let sig_of_base = || {
                let mut sig = Vec::new();
                let mut input = BufReader::new(File::open(&base_p).expect("open"));
                signature_with_options(
                    &mut input,
                    &mut sig,
                    BLOCK as usize,
                    16,
                    librsync::SignatureType::Blake2,
                )
                .expect("sig");
                sig
            };
            match op {
                "signature" => {
                    processed = fs::metadata(&base_p).expect("meta").len();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let sig = sig_of_base();
                        times.push(t.elapsed().as_secs_f64());
                        out_len = sig.len() as u64;
                    }
                }
                "diff_edit" | "diff_nomatch" => {
                    let sig = sig_of_base();
                    processed = fs::metadata(&new_p).expect("meta").len();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let mut d = Counter::default();
                        let mut new = File::open(&new_p).expect("open");
                        delta(&mut new, &mut &sig[..], &mut d).expect("delta");
                        times.push(t.elapsed().as_secs_f64());
                        out_len = d.0;
                    }
                }
                _ => {
                    let sig = sig_of_base();
                    let mut d = Vec::new();
                    delta(
                        &mut File::open(&new_p).expect("open"),
                        &mut &sig[..],
                        &mut d,
                    )
                    .expect("delta");
                    processed = fs::metadata(&new_p).expect("meta").len();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let mut base = File::open(&base_p).expect("open");
                        out_len =
                            patch(&mut base, &mut Cursor::new(&d), &mut io::sink()).expect("patch");
                        times.push(t.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }
    (times, processed, out_len)
}

/// Counts what is written without keeping it (deltas of unrelated files are as large as the
/// file; holding them would make the peak RSS column measure the benchmark, not the engine).
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One cell of the table: every run's throughput, the output size, the child's peak RSS.
struct Row {
    mib_s: Vec<f64>,
    out_len: u64,
    rss_mib: f64,
}

impl Row {
    fn failed() -> Row {
        Row {
            mib_s: Vec::new(),
            out_len: 0,
            rss_mib: f64::NAN,
        }
    }

    fn median(&self) -> f64 {
        if self.mib_s.is_empty() {
            f64::NAN
        } else {
            median(self.mib_s.clone())
        }
    }
}

/// Runs `spec` ("engine op dir") in a child process; parses its line of results.
fn run_child(exe: &Path, spec: &str, runs: usize) -> Row {
    let out = Command::new(exe)
        .env("DELTA_COMPARE_CHILD", spec)
        .env("DELTA_COMPARE_RUNS", runs.to_string())
        .output()
        .expect("spawn child");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let times: Vec<f64> = fields
        .first()
        .map(|t| t.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let nums: Vec<f64> = fields
        .iter()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if !out.status.success() || times.is_empty() || nums.len() != 3 {
        eprintln!(
            "{spec} failed: {} {}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        return Row::failed();
    }
    Row {
        mib_s: times.iter().map(|t| nums[0] / t / 1048576.0).collect(),
        out_len: nums[1] as u64,
        rss_mib: nums[2] / 1024.0,
    }
}

/// A seekable stream of generated bytes: the base (`variant` 0) or the new file (`variant` 1,
/// which differs from the base in 16 scattered 4 KiB regions), `len` bytes long. Each 8-byte
/// word is a hash of its index, so any position can be produced without the bytes before it.
struct Generated {
    len: u64,
    pos: u64,
    variant: u64,
}

impl Generated {
    fn new(len: u64, variant: u64) -> Generated {
        Generated {
            len,
            pos: 0,
            variant,
        }
    }

    fn word(&self, index: u64) -> u64 {
        let mut seed = index;
        if self.variant == 1 {
            // 16 edited regions of 4 KiB (512 words), one per sixteenth of the file.
            let sixteenth = (self.len / 8 / 16).max(1);
            let off = index % sixteenth;
            if (1000..1512).contains(&off) {
                seed ^= 0xA5A5_A5A5_0000_0000;
            }
        }
        // splitmix64
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        let mut i = 0;
        while i < n {
            let p = self.pos + i as u64;
            let bytes = self.word(p / 8).to_le_bytes();
            let skip = (p % 8) as usize;
            let k = (8 - skip).min(n - i);
            buf[i..i + k].copy_from_slice(&bytes[skip..skip + k]);
            i += k;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Generated {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek out of range",
            )),
        }
    }
}

/// The streaming case: one operation on `gib` GiB of generated data; returns (seconds, bytes
/// processed, output size). The diff writes its delta to `dir/stream.delta` for the apply.
fn stream_child(op: &str, dir: &Path, gib: u64) -> (f64, u64, u64) {
    use sync::delta::{apply, diff, Signature, SignatureOptions};
    let len = gib << 30;
    let opts = SignatureOptions::with_block_size(BLOCK);
    let delta_path = dir.join("stream.delta");
    match op {
        "stream_signature" => {
            let t = Instant::now();
            let sig = Signature::calculate_from(Generated::new(len, 0), opts).expect("sig");
            (t.elapsed().as_secs_f64(), len, sig.serialized_len() as u64)
        }
        "stream_diff" => {
            let sig = Signature::calculate_from(Generated::new(len, 0), opts).expect("sig");
            let out = io::BufWriter::new(File::create(&delta_path).expect("create delta"));
            let t = Instant::now();
            let stats = diff(&sig.index(), Generated::new(len, 1), out).expect("diff");
            (t.elapsed().as_secs_f64(), len, stats.delta_len)
        }
        _ => {
            let delta = BufReader::new(File::open(&delta_path).expect("open delta"));
            let t = Instant::now();
            let n = apply(Generated::new(len, 0), delta, io::sink()).expect("patch");
            (t.elapsed().as_secs_f64(), len, n)
        }
    }
}

const GROUP: &str = "delta";
const FAST_RSYNC: &str = "fast_rsync 0.2";
const LIBRSYNC: &str = "librsync 2.x (crate 0.2, BLAKE2)";

/// Records one compared figure per peer.
fn record_pair(
    case: &str,
    metric: &str,
    unit: &str,
    higher_is_better: bool,
    ours: &[f64],
    peers: [(&str, &[f64], Option<&str>); 2],
) {
    for (peer_name, peer, goal) in peers {
        report::record(&report::Figure {
            group: GROUP,
            case,
            metric,
            unit,
            higher_is_better,
            ours,
            peer_name,
            peer,
            goal,
        });
    }
}

fn main() {
    let runs = env_usize("DELTA_COMPARE_RUNS", 3).max(1);
    let stream_gib = env_usize("DELTA_COMPARE_STREAM_GIB", 4) as u64;
    if let Ok(spec) = std::env::var("DELTA_COMPARE_CHILD") {
        let mut it = spec.splitn(3, ' ');
        let (engine, op, dir) = (
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
            PathBuf::from(it.next().unwrap_or("")),
        );
        let (times, processed, out_len) = if op.starts_with("stream_") {
            let (t, p, o) = stream_child(op, &dir, stream_gib);
            (vec![t], p, o)
        } else {
            child(engine, op, &dir, runs)
        };
        let times: Vec<String> = times.iter().map(|t| t.to_string()).collect();
        println!("{} {processed} {out_len} {}", times.join(","), vm_hwm_kib());
        return;
    }
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) does not bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("delta_compare: run with `cargo bench --bench delta_compare`");
        return;
    }
    let mib = env_usize("DELTA_COMPARE_MIB", 256);
    let len = mib << 20;
    let dir = std::env::temp_dir().join(format!("delta-compare-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let base = random(len, 1);
    let mut edited = base.clone();
    for k in 0..16 {
        let p = k * (len / 16) + 12_345;
        edited[p..p + 4096].copy_from_slice(&random(4096, k as u64 + 99));
    }
    edited.splice(len / 2 + 777..len / 2 + 777, random(1024, 5));
    fs::write(dir.join("base"), &base).expect("write");
    fs::write(dir.join("edited"), &edited).expect("write");
    fs::write(dir.join("unrelated"), random(len, 2)).expect("write");
    drop((base, edited));
    for f in ["base", "edited", "unrelated"] {
        // Warm the page cache.
        let mut sink = Vec::new();
        let _ = File::open(dir.join(f)).and_then(|mut h| h.read_to_end(&mut sink));
    }

    let exe = std::env::current_exe().expect("current exe");
    let mut table: Vec<Vec<Row>> = Vec::new();
    for op in OPS {
        let mut row = Vec::new();
        for engine in ENGINES {
            let r = run_child(&exe, &format!("{engine} {op} {}", dir.display()), runs);
            eprintln!(
                "{engine:>10} {op:<12} {:>9.1} MiB/s (runs {:?})  out {:>10} B  peak RSS {:>7.1} MiB",
                r.median(),
                r.mib_s.iter().map(|x| x.round()).collect::<Vec<_>>(),
                r.out_len,
                r.rss_mib
            );
            row.push(r);
        }
        table.push(row);
    }
    let mut stream = Vec::new();
    if stream_gib > 0 {
        for op in ["stream_signature", "stream_diff", "stream_apply"] {
            let r = run_child(&exe, &format!("ours {op} {}", dir.display()), 1);
            eprintln!(
                "      ours {op:<16} {stream_gib} GiB {:>9.1} MiB/s  out {:>10} B  peak RSS {:>7.1} MiB",
                r.median(),
                r.out_len,
                r.rss_mib
            );
            stream.push((op, r));
        }
    }
    let _ = fs::remove_dir_all(&dir);

    // Machine-readable figures: every run, one record per peer.
    let goals: [(&str, [Option<&str>; 2]); 4] = [
        ("signature", [Some("ratio >= 2.0"), None]),
        ("diff, small edit", [Some(">= 2 GB/s (1907 MiB/s)"), None]),
        ("diff, no match", [Some("ratio >= 10.0"), None]),
        (
            "patch, small edit",
            [
                Some("within 2x of memcpy (>= 3767 MiB/s at 7.9 GB/s)"),
                None,
            ],
        ),
    ];
    for (i, (case, [g_fast, g_lib])) in goals.iter().enumerate() {
        let r = &table[i];
        record_pair(
            case,
            "throughput",
            "MiB/s",
            true,
            &r[0].mib_s,
            [
                (FAST_RSYNC, &r[1].mib_s, *g_fast),
                (LIBRSYNC, &r[2].mib_s, *g_lib),
            ],
        );
    }
    for (i, case) in [(1, "diff, small edit"), (2, "diff, no match")] {
        let r = &table[i];
        record_pair(
            case,
            "delta size",
            "B",
            false,
            &[r[0].out_len as f64],
            [
                (FAST_RSYNC, &[r[1].out_len as f64], None),
                (LIBRSYNC, &[r[2].out_len as f64], Some("ratio <= 1.0")),
            ],
        );
    }
    let sig = &table[0];
    record_pair(
        "signature",
        "signature size",
        "B",
        false,
        &[sig[0].out_len as f64],
        [
            (FAST_RSYNC, &[sig[1].out_len as f64], None),
            (LIBRSYNC, &[sig[2].out_len as f64], None),
        ],
    );
    let rss_cases = [
        "signature",
        "diff, small edit",
        "diff, no match",
        "patch, small edit",
    ];
    for (i, case) in rss_cases.iter().enumerate() {
        let r = &table[i];
        record_pair(
            case,
            "peak RSS",
            "MiB",
            false,
            &[r[0].rss_mib],
            [
                (FAST_RSYNC, &[r[1].rss_mib], None),
                (LIBRSYNC, &[r[2].rss_mib], None),
            ],
        );
    }
    for (op, r) in &stream {
        let case = format!(
            "stream {stream_gib} GiB, {}",
            op.trim_start_matches("stream_")
        );
        report::record(&report::Figure {
            group: GROUP,
            case: &case,
            metric: "peak RSS",
            unit: "MiB",
            higher_is_better: false,
            ours: &[r.rss_mib],
            peer_name: "",
            peer: &[],
            goal: Some("< 64 MiB"),
        });
        report::record(&report::Figure {
            group: GROUP,
            case: &case,
            metric: "throughput",
            unit: "MiB/s",
            higher_is_better: true,
            ours: &r.mib_s,
            peer_name: "",
            peer: &[],
            goal: None,
        });
    }

    let mut s = String::new();
    s.push_str(&format!(
        "\n{mib} MiB random base, block size {BLOCK}, 16-byte strong hashes, median of {runs} runs, \
         one process per cell.\n\n"
    ));
    s.push_str("| measure | ours | fast_rsync 0.2 | librsync 2.x | ours / fast_rsync | ours / librsync |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    let names = [
        "signature (MiB/s)",
        "diff, small edit (MiB/s)",
        "diff, no match (MiB/s)",
        "patch, small edit (MiB/s)",
    ];
    for (i, name) in names.iter().enumerate() {
        let r = &table[i];
        let m: Vec<f64> = r.iter().map(Row::median).collect();
        s.push_str(&format!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |\n",
            m[0],
            m[1],
            m[2],
            m[0] / m[1],
            m[0] / m[2]
        ));
    }
    for (i, name) in [
        (1, "delta size, small edit (bytes)"),
        (2, "delta size, no match (bytes)"),
    ] {
        let r = &table[i];
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {:.3} | {:.3} |\n",
            r[0].out_len,
            r[1].out_len,
            r[2].out_len,
            r[0].out_len as f64 / r[1].out_len as f64,
            r[0].out_len as f64 / r[2].out_len as f64
        ));
    }
    let sig = &table[0];
    s.push_str(&format!(
        "| signature size (bytes) | {} | {} | {} | {:.3} | {:.3} |\n",
        sig[0].out_len,
        sig[1].out_len,
        sig[2].out_len,
        sig[0].out_len as f64 / sig[1].out_len as f64,
        sig[0].out_len as f64 / sig[2].out_len as f64
    ));
    for (i, op) in OPS.iter().enumerate() {
        let r = &table[i];
        s.push_str(&format!(
            "| peak RSS, {op} (MiB) | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |\n",
            r[0].rss_mib,
            r[1].rss_mib,
            r[2].rss_mib,
            r[0].rss_mib / r[1].rss_mib,
            r[0].rss_mib / r[2].rss_mib
        ));
    }
    if !stream.is_empty() {
        s.push_str(&format!(
            "\nStreaming {stream_gib} GiB of generated data (ours; goal: peak RSS < 64 MiB):\n\n\
             | operation | MiB/s | output (bytes) | peak RSS (MiB) |\n|---|---|---|---|\n"
        ));
        for (op, r) in &stream {
            s.push_str(&format!(
                "| {} | {:.0} | {} | {:.1} |\n",
                op.trim_start_matches("stream_"),
                r.median(),
                r.out_len,
                r.rss_mib
            ));
        }
    }
    let mut out = io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
}
