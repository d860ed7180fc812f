#![no_main]
//! Fuzz target; the body is `braid::fuzzing::oplog_record`, shared with the
//! regression test `tests/fuzz_regressions.rs`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| braid::fuzzing::oplog_record(data));
