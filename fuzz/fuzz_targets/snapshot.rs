#![no_main]
//! Fuzz target; the body is `braid::fuzzing::snapshot`, shared with the
//! regression test `tests/fuzz_regressions.rs`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| braid::fuzzing::snapshot(data));
