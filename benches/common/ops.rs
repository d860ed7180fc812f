//! Operation streams for the in-process benchmarks, made by `Replica`s

// Each bench uses part of this module.
#![allow(dead_code)]
//! doing ordinary writes, so they are exactly what a region logs and ships.

use braid::crdt::{Intent, Operation, RegionId, Replica, TtlChange};
use bytes::Bytes;

/// Wall clock (Unix ms) the generated writes start at.
const T0: u64 = 1_700_000_000_000;

/// SplitMix64: deterministic, so every run benchmarks the same streams.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the values of a stream look like.
#[derive(Clone, Copy, Debug)]
pub enum Values {
    /// The realistic mix of `benches/replication.rs`: 40% SET, 15% INCR,
    /// 15% HSET, 10% each SADD, LPUSH, ZADD over 10k keys, 32-byte values.
    Mix,
    /// SET of 4 KiB text-like values (compress well).
    LargeText,
    /// SET of 1 KiB random bytes (do not compress).
    Random,
}

/// `n` operations of one region (`origin`), in log order.
pub fn stream(origin: u16, values: Values, n: usize) -> Vec<Operation> {
    let mut rng = Rng(0x5EED ^ u64::from(origin));
    let mut r = Replica::new(RegionId(origin));
    let mut ops = Vec::with_capacity(n);
    let mut i = 0u64;
    while ops.len() < n {
        i += 1;
        let k = rng.below(10_000);
        let (key, intent) = match values {
            Values::Mix => mix(&mut rng, k, i),
            Values::LargeText => {
                let line = format!("user {k} visited page /catalog/item/{} at {i}; ", k % 97);
                let value = line.repeat(4096 / line.len() + 1)[..4096].to_string();
                (format!("page:{k}"), set(value.into_bytes()))
            }
            Values::Random => {
                let value: Vec<u8> = (0..1024).map(|_| rng.next() as u8).collect();
                (format!("blob:{k}"), set(value))
            }
        };
        if let Ok(Some(op)) = r.write(Bytes::from(key), intent, T0 + i) {
            ops.push(op);
        }
    }
    ops
}

fn set(value: Vec<u8>) -> Intent {
    Intent::Set {
        value: Bytes::from(value),
        ttl: TtlChange::Keep,
    }
}

fn mix(rng: &mut Rng, k: u64, i: u64) -> (String, Intent) {
    let value = || Bytes::from(format!("{:032}", i));
    match rng.below(100) {
        0..40 => (format!("key:{k}"), set(format!("{i:032}").into_bytes())),
        40..55 => (format!("counter:{}", k % 100), Intent::IncrBy(1)),
        55..70 => (
            format!("hash:{}", k % 1000),
            Intent::HSet(vec![(Bytes::from(format!("f{}", k % 10)), value())]),
        ),
        70..80 => (
            format!("set:{}", k % 1000),
            Intent::SAdd(vec![Bytes::from(format!("m{}", k % 50))]),
        ),
        80..90 => (format!("list:{}", k % 1000), Intent::LPush(vec![value()])),
        _ => (
            format!("zset:{}", k % 100),
            Intent::ZAdd(vec![(
                Bytes::from(format!("p{}", k % 50)),
                (i % 1000) as f64,
            )]),
        ),
    }
}
