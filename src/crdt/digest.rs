//! Order-independent digests.
//!
//! A key contributes the hash of what a client would read from it; the state's
//! digest is the wrapping sum of its keys' contributions, and a collection's
//! hash is built from the wrapping sum of its elements' hashes. Sums commute,
//! so the digest does not depend on arrival order, and each write updates it
//! in time proportional to what it changed.

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Hashes a sequence of byte strings, each length-prefixed so that
/// `["ab","c"]` and `["a","bc"]` differ. xxh3 is a fixed, portable algorithm,
/// so every region and every build computes the same value.
pub fn hash_parts(parts: &[&[u8]]) -> u128 {
    // Most writes hash a few short parts: laid out on the stack and hashed
    // in one call, the same bytes give the same value as the streaming
    // hasher, whose set-up dominated at these sizes.
    const INLINE: usize = 256;
    let total: usize = parts.iter().map(|p| 8 + p.len()).sum();
    if total <= INLINE {
        let mut buf = [0u8; INLINE];
        let mut at = 0;
        for p in parts {
            buf[at..at + 8].copy_from_slice(&(p.len() as u64).to_le_bytes());
            buf[at + 8..at + 8 + p.len()].copy_from_slice(p);
            at += 8 + p.len();
        }
        return xxh3_128(&buf[..at]);
    }
    hash_parts_streaming(parts)
}

fn hash_parts_streaming(parts: &[&[u8]]) -> u128 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The stack path hashes exactly the bytes the streaming one does:
        /// digests in snapshots and between regions must not change.
        #[test]
        fn inline_hashing_equals_streaming(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..5)
        ) {
            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            prop_assert_eq!(hash_parts(&refs), hash_parts_streaming(&refs));
        }
    }

    #[test]
    fn parts_are_length_prefixed_at_both_sizes() {
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
        let big = [7u8; 300];
        assert_eq!(
            hash_parts(&[&big, b"x"]),
            hash_parts_streaming(&[&big, b"x"])
        );
        assert_ne!(hash_parts(&[&big[..299], b"7x"]), hash_parts(&[&big, b"x"]));
    }
}
