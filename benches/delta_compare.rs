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
use std::fs::{self, File};
use std::io::{self, BufReader, Cursor, Read, Write};
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

/// Runs one (engine, op) `runs` times; returns (median seconds, bytes processed, output size).
fn child(engine: &str, op: &str, dir: &Path, runs: usize) -> (f64, u64, u64) {
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
    (median(times), processed, out_len)
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

struct Row {
    mib_s: f64,
    out_len: u64,
    rss_mib: f64,
}

fn main() {
    let runs = env_usize("DELTA_COMPARE_RUNS", 3).max(1);
    if let Ok(spec) = std::env::var("DELTA_COMPARE_CHILD") {
        let mut it = spec.splitn(3, ' ');
        let (engine, op, dir) = (
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
            PathBuf::from(it.next().unwrap_or("")),
        );
        let (secs, processed, out_len) = child(engine, op, &dir, runs);
        println!("{secs} {processed} {out_len} {}", vm_hwm_kib());
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
            let out = Command::new(&exe)
                .env(
                    "DELTA_COMPARE_CHILD",
                    format!("{engine} {op} {}", dir.display()),
                )
                .env("DELTA_COMPARE_RUNS", runs.to_string())
                .output()
                .expect("spawn child");
            let text = String::from_utf8_lossy(&out.stdout);
            let f: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if !out.status.success() || f.len() != 4 {
                eprintln!(
                    "{engine} {op} failed: {} {}",
                    text,
                    String::from_utf8_lossy(&out.stderr)
                );
                row.push(Row {
                    mib_s: f64::NAN,
                    out_len: 0,
                    rss_mib: f64::NAN,
                });
                continue;
            }
            let r = Row {
                mib_s: f[1] / f[0] / 1048576.0,
                out_len: f[2] as u64,
                rss_mib: f[3] / 1024.0,
            };
            eprintln!(
                "{engine:>10} {op:<12} {:>9.1} MiB/s  out {:>10} B  peak RSS {:>7.1} MiB",
                r.mib_s, r.out_len, r.rss_mib
            );
            row.push(r);
        }
        table.push(row);
    }
    let _ = fs::remove_dir_all(&dir);

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
        s.push_str(&format!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |\n",
            r[0].mib_s,
            r[1].mib_s,
            r[2].mib_s,
            r[0].mib_s / r[1].mib_s,
            r[0].mib_s / r[2].mib_s
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
    let mut out = io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
}
