//! Bytes the state keeps, detached from the buffers they arrived in.
//!
//! An operation's keys and values are slices of the buffer they were parsed
//! from: a client's request, or a received segment. Stored as they are, a
//! 3-byte value would pin that whole buffer for as long as it lives, and
//! dropping it (an overwrite, often on another thread and long after) would
//! update a reference count on a cache line nobody has touched since. A
//! small copy costs one allocation; its drop is a plain free.

use bytes::Bytes;

/// Longest value that is copied when stored; longer ones keep sharing
/// their buffer, which they are a large part of anyway.
pub const DETACH_MAX: usize = 256;

/// `bytes` as the state keeps it: a copy that shares nothing when small.
pub fn detach(bytes: Bytes) -> Bytes {
    if bytes.len() <= DETACH_MAX {
        Bytes::copy_from_slice(&bytes)
    } else {
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_slices_are_copied_and_large_ones_shared() {
        let buffer = Bytes::from(vec![7u8; 4 * DETACH_MAX]);
        let small = detach(buffer.slice(10..10 + DETACH_MAX));
        assert_eq!(small, buffer.slice(10..10 + DETACH_MAX));
        assert!(small.is_unique(), "a small value must not share its buffer");
        let large = detach(buffer.slice(0..DETACH_MAX + 1));
        assert_eq!(large.as_ptr(), buffer.as_ptr(), "a large value is shared");
    }
}
