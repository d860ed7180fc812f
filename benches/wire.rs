//! Benchmarks of what crosses the network: parsing RESP requests (what
//! every client command costs before it runs) and encoding / decoding
//! replication segments raw and lz4-compressed (what every shipped operation
//! costs on each side of a link).
//!
//! Run with `cargo bench --release --bench wire` (criterion prints time and
//! throughput per benchmark; the segment sizes are printed first).

use std::hint::black_box;
use std::time::Duration;

use braid::replication::segment::{
    decode_segment, encode_segment, encode_segment_adaptive, Compression, CompressionPolicy,
    SegmentLimits,
};
use braid::resp::{Decoded, Decoder, Limits};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "common/ops.rs"]
mod ops;
use ops::{stream, Values};

/// Requests in one parsed pipeline.
const REQUESTS: usize = 1_000;
/// Operations in one segment (a busy link's batch).
const SEGMENT_OPS: usize = 1_000;

/// A pipeline as redis-benchmark sends it: `n` requests of `args` each.
fn pipeline(n: usize, make: impl Fn(usize) -> Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let args = make(i);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(&a);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decodes every request of `buf`, as the connection does; returns how many.
fn parse_all(buf: &[u8], limits: &Limits) -> usize {
    let mut decoder = Decoder::new();
    let mut at = 0;
    let mut n = 0;
    while at < buf.len() {
        match decoder.decode(&buf[at..], limits) {
            Ok(Decoded::Multibulk { args, consumed }) => {
                black_box(args);
                at += consumed;
                n += 1;
            }
            Ok(Decoded::Inline { args, consumed }) => {
                black_box(args);
                at += consumed;
                n += 1;
            }
            Ok(Decoded::Skipped(k)) => at += k,
            Ok(Decoded::Incomplete) | Err(_) => break,
        }
    }
    n
}

fn bench_resp(c: &mut Criterion) {
    let limits = Limits::default();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "set_3b",
            pipeline(REQUESTS, |i| {
                vec![
                    b"SET".to_vec(),
                    format!("key:{i:06}").into_bytes(),
                    b"xxx".to_vec(),
                ]
            }),
        ),
        (
            "get",
            pipeline(REQUESTS, |i| {
                vec![b"GET".to_vec(), format!("key:{i:06}").into_bytes()]
            }),
        ),
        (
            "set_1k",
            pipeline(REQUESTS, |i| {
                vec![
                    b"SET".to_vec(),
                    format!("key:{i:06}").into_bytes(),
                    vec![b'v'; 1024],
                ]
            }),
        ),
        (
            "hset_10_fields",
            pipeline(REQUESTS, |i| {
                let mut a = vec![b"HSET".to_vec(), format!("h:{i}").into_bytes()];
                for f in 0..10 {
                    a.push(format!("field{f}").into_bytes());
                    a.push(format!("value{f}").into_bytes());
                }
                a
            }),
        ),
    ];
    let mut g = c.benchmark_group("resp_parse");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, buf) in &cases {
        assert_eq!(
            parse_all(buf, &limits),
            REQUESTS,
            "{name}: every request parses"
        );
        g.throughput(Throughput::ElementsAndBytes {
            elements: REQUESTS as u64,
            bytes: buf.len() as u64,
        });
        g.bench_function(*name, |b| b.iter(|| parse_all(black_box(buf), &limits)));
    }
    g.finish();
}

fn bench_segments(c: &mut Criterion) {
    let limits = SegmentLimits::default();
    let mut g = c.benchmark_group("segment");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for (name, values) in [
        ("mix", Values::Mix),
        ("large_text", Values::LargeText),
        ("random", Values::Random),
    ] {
        let ops = stream(1, values, SEGMENT_OPS);
        let (raw, raw_header) = encode_segment(&ops, Compression::Raw);
        let (lz4, lz4_header) = encode_segment(&ops, Compression::Lz4);
        eprintln!(
            "segment {name}: {SEGMENT_OPS} ops, payload {} B raw ({:.1} B/op), {} B on the wire with lz4 \
             ({:.1} B/op, flags {})",
            raw_header.raw_len,
            raw.len() as f64 / SEGMENT_OPS as f64,
            lz4.len(),
            lz4.len() as f64 / SEGMENT_OPS as f64,
            lz4_header.flags
        );
        for bytes in [&raw, &lz4] {
            let (_, back) = decode_segment(bytes, &limits).expect("a segment we encoded decodes");
            assert_eq!(back, ops, "{name}: round trip");
        }
        g.throughput(Throughput::Elements(SEGMENT_OPS as u64));
        g.bench_function(format!("{name}/encode_raw"), |b| {
            b.iter(|| encode_segment(black_box(&ops), Compression::Raw))
        });
        g.bench_function(format!("{name}/encode_lz4"), |b| {
            b.iter(|| encode_segment(black_box(&ops), Compression::Lz4))
        });
        g.bench_function(format!("{name}/encode_adaptive"), |b| {
            let mut policy = CompressionPolicy::new();
            b.iter(|| encode_segment_adaptive(black_box(&ops), &mut policy))
        });
        g.bench_function(format!("{name}/decode_raw"), |b| {
            b.iter(|| decode_segment(black_box(&raw), &limits))
        });
        g.bench_function(format!("{name}/decode_lz4"), |b| {
            b.iter(|| decode_segment(black_box(&lz4), &limits))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_resp, bench_segments);
criterion_main!(benches);
