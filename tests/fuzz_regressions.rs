//! Replays the fuzz corpus and every input that once crashed a fuzz target
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the same
//! library functions the fuzz targets call (`braid::fuzzing`), so a fixed
//! crash stays fixed without running a fuzzer.

use std::path::{Path, PathBuf};

use braid::fuzzing::{seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `dir` (none if it does not exist), sorted for stable output.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("readable directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut n = 0;
    for (name, target) in TARGETS {
        for path in files(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&path).expect("readable corpus file");
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name} fails on {}", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_corpus_replays_cleanly() {
    let n = replay("corpus");
    assert!(
        n >= TARGETS.len(),
        "only {n} corpus files: is fuzz/corpus there?"
    );
}

#[test]
fn fuzz_regressions_replay_cleanly() {
    let n = replay("regressions");
    assert!(n > 0, "no regression inputs under fuzz/regressions");
}

/// Every target has a corpus, and every seed (a valid encoding) passes its
/// target (that the seeds decode is checked in `braid::fuzzing`'s unit tests).
#[test]
fn fuzz_seeds_pass_and_every_target_has_a_corpus() {
    for (name, _) in TARGETS {
        assert!(
            !files(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "no corpus for {name}"
        );
    }
    let seeds = seeds();
    for (name, target) in TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|(n, _)| n == name).collect();
        assert!(!mine.is_empty(), "no seed for {name}");
        for (_, data) in mine {
            target(data);
        }
    }
}

/// Writes the seeds into `fuzz/corpus/<target>/seed-<n>`: run with
/// `cargo test --release --test fuzz_regressions -- --ignored write_fuzz_seeds`
/// before fuzzing a new target.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let mut count = std::collections::BTreeMap::<&str, usize>::new();
    for (name, data) in seeds() {
        let dir = fuzz_dir().join("corpus").join(name);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        let i = count.entry(name).or_default();
        std::fs::write(dir.join(format!("seed-{i}")), data).expect("write seed");
        *i += 1;
    }
}
