//! Criterion benchmarks of the delta engine (`sync::delta`): signature, diff with a small edit,
//! diff with no match, and patch, on 32 MiB of random bytes with 4 KiB blocks (in memory).
//! The comparison with fast_rsync and librsync is `benches/delta_compare.rs`.
use std::hint::black_box;
use std::io::{self, Cursor};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sync::delta::{apply, diff, diff_slice, Signature, SignatureOptions};

const LEN: usize = 32 << 20;
const BLOCK: u32 = 4096;

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

/// 16 scattered 4 KiB overwrites and a 1 KiB insertion in the middle.
fn small_edit(base: &[u8]) -> Vec<u8> {
    let mut new = base.to_vec();
    for k in 0..16 {
        let p = k * (base.len() / 16) + 12_345;
        new[p..p + 4096].copy_from_slice(&random(4096, k as u64 + 99));
    }
    let mid = base.len() / 2 + 777;
    new.splice(mid..mid, random(1024, 5));
    new
}

fn benches(c: &mut Criterion) {
    let base = random(LEN, 1);
    let edited = small_edit(&base);
    let unrelated = random(LEN, 2);
    let opts = SignatureOptions::with_block_size(BLOCK);
    let sig = Signature::calculate(&base, opts).expect("signature");
    let idx = sig.index();
    let mut delta = Vec::new();
    diff_slice(&idx, &edited, &mut delta).expect("diff");

    let mut g = c.benchmark_group("delta");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("signature", |b| {
        b.iter(|| Signature::calculate(black_box(&base), opts).expect("signature"))
    });
    g.bench_function("signature_stream", |b| {
        b.iter(|| Signature::calculate_from(black_box(&base[..]), opts).expect("signature"))
    });
    g.bench_function("index", |b| b.iter(|| black_box(&sig).index()));
    g.bench_function("diff_small_edit", |b| {
        b.iter(|| diff_slice(&idx, black_box(&edited), io::sink()).expect("diff"))
    });
    g.bench_function("diff_small_edit_stream", |b| {
        b.iter(|| diff(&idx, black_box(&edited[..]), io::sink()).expect("diff"))
    });
    g.bench_function("diff_no_match", |b| {
        b.iter(|| diff_slice(&idx, black_box(&unrelated), io::sink()).expect("diff"))
    });
    g.bench_function("patch", |b| {
        b.iter(|| apply(Cursor::new(&base), black_box(&delta[..]), io::sink()).expect("patch"))
    });
    g.finish();
}

criterion_group!(delta_benches, benches);
criterion_main!(delta_benches);
