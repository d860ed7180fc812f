//! A length or count field read from the network or the disk never makes a
//! decoder reserve memory for it before the elements have arrived: measured
//! with a counting allocator, on inputs that declare far more than they
//! hold (or hold a huge count of elements that fail to decode).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records the largest single allocation since the last reset.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The largest single allocation `f` makes.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    f();
    LARGEST.load(Ordering::Relaxed)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An operation (format 1) whose effect is SADD with `count` members
/// declared, followed by `body`.
fn sadd_op(count: u64, body: &[u8]) -> Vec<u8> {
    // version, origin 1, seq 1, hlc 1, no deps, txn_rest 0, key body, key "k"
    let mut op = vec![1, 1, 1, 1, 0, 0, 0x01, 1, b'k', 0x06];
    varint(&mut op, count);
    op.extend_from_slice(body);
    op
}

/// All tests in one function: the allocator's record is process-wide, and
/// tests of one binary run on parallel threads.
#[test]
fn decoders_reserve_nothing_for_declared_counts() {
    const MIB: usize = 1 << 20;
    // 1 Mi members declared, 1 MiB present, but the first member is a
    // malformed length: the decoder must fail without reserving 1 Mi
    // 32-byte slots (32 MiB) first.
    let body = vec![0xff; MIB];
    let op = sadd_op(MIB as u64, &body);
    let largest = largest_allocation(|| {
        assert!(braid::crdt::codec::decode_op(&op).is_err());
    });
    assert!(largest < 64 * 1024, "decode_op reserved {largest} bytes");

    // A replication frame announcing 80 MiB of which 10 bytes arrive.
    let mut frame = (80u32 << 20).to_le_bytes().to_vec();
    frame.extend_from_slice(&[3; 10]);
    let largest = largest_allocation(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let got = rt.block_on(braid::replication::message::read_message(
            &mut frame.as_slice(),
            80 << 20,
        ));
        assert!(got.is_err());
    });
    assert!(largest < MIB, "read_message reserved {largest} bytes");

    // The same SADD inside a replication segment, compressed so the wire is
    // small: the payload buffer is bounded by the configured raw length.
    let mut payload = vec![0, 0, 0, 0, 0x01 | 0x04, 1, b'k', 0x06];
    varint(&mut payload, MIB as u64);
    payload.extend_from_slice(&body);
    let wire = lz4_flex::block::compress(&payload);
    let mut seg = b"BSEG".to_vec();
    seg.push(1);
    seg.push(1);
    for v in [1u32, payload.len() as u32, wire.len() as u32, 1, 0] {
        seg.extend_from_slice(&v.to_le_bytes());
    }
    seg.extend_from_slice(&1u16.to_le_bytes());
    seg.extend_from_slice(&1u64.to_le_bytes());
    seg.extend_from_slice(&1u64.to_le_bytes());
    seg.extend_from_slice(&wire);
    let mut h = crc32fast::Hasher::new();
    h.update(&seg[..22]);
    h.update(&seg[26..]);
    let crc = h.finalize().to_le_bytes();
    seg[22..26].copy_from_slice(&crc);
    let limits = braid::replication::segment::SegmentLimits::default();
    let largest = largest_allocation(|| {
        let e = braid::replication::segment::decode_segment(&seg, &limits)
            .expect_err("malformed member");
        assert!(e.to_string().contains("member"), "{e}");
    });
    // The decompressed payload itself (1 MiB + a few bytes) is the largest.
    assert!(
        largest < payload.len() + 4096,
        "decode_segment reserved {largest} bytes"
    );

    // Snapshot chunk declaring 4 GiB: the reader grows with what arrives.
    let mut snap = b"BRAIDSNP\x01".to_vec();
    // No regions, max HLC 0, one key, digest 0.
    let header = [0u8, 0, 1]
        .iter()
        .chain(&[0u8; 16])
        .copied()
        .collect::<Vec<_>>();
    snap.extend_from_slice(&(header.len() as u32).to_le_bytes());
    snap.extend_from_slice(&header);
    let crc = crc32fast::hash(&snap);
    snap.extend_from_slice(&crc.to_le_bytes());
    snap.push(1);
    snap.extend_from_slice(&1u32.to_le_bytes());
    snap.extend_from_slice(&u32::MAX.to_le_bytes());
    snap.extend_from_slice(&[0; 100]);
    let largest = largest_allocation(|| {
        assert!(braid::crdt::snapshot::decode(snap.as_slice()).is_err());
    });
    assert!(largest < MIB, "snapshot decode reserved {largest} bytes");
}
