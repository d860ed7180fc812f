//! Order-independent digests.
//!
//! A key contributes the hash of what a client would read from it; the state's
//! digest is the wrapping sum of its keys' contributions, and a collection's
//! hash is built from the wrapping sum of its elements' hashes. Sums commute,
//! so the digest does not depend on arrival order, and each write updates it
//! in time proportional to what it changed.

use xxhash_rust::xxh3::Xxh3;

/// Hashes a sequence of byte strings, each length-prefixed so that
/// `["ab","c"]` and `["a","bc"]` differ. xxh3 is a fixed, portable algorithm,
/// so every region and every build computes the same value.
pub fn hash_parts(parts: &[&[u8]]) -> u128 {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.digest128()
}

/// A wrapping sum of element hashes: adding and removing in any order gives
/// the same total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Accumulator(pub u128);

impl Accumulator {
    /// Adds an element's hash.
    pub fn add(&mut self, h: u128) {
        self.0 = self.0.wrapping_add(h);
    }

    /// Removes an element's hash.
    pub fn sub(&mut self, h: u128) {
        self.0 = self.0.wrapping_sub(h);
    }
}
