//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash reproducers
//! (`fuzz/regressions/<target>/`) through the fuzz targets' own bodies, so the normal test
//! suite checks every input the fuzzers found interesting without needing a nightly toolchain
//! or cargo-fuzz. The bodies live in `fuzz/src/lib.rs`, included here as a module: the fuzz
//! targets and this test run the same code.
//!
//! Each test asserts the exact number of files it read, so that a moved or emptied corpus
//! fails instead of testing nothing. After `cargo fuzz cmin` (or adding a regression), update
//! the counts below (see fuzz/README.md).

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Files of `fuzz/<dir>/<target>/`, sorted (none if the directory does not exist).
fn files(dir: &str, target: &str) -> Vec<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `body` on every file of the target's corpus and regressions; returns how many of each
/// were read. A panic names the file.
fn replay(target: &str, body: fn(&[u8])) -> (usize, usize) {
    let corpus = files("corpus", target);
    let regressions = files("regressions", target);
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable corpus file");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} input(s) panicked (reproduce with `cargo +nightly fuzz run {target} FILE` \
         in fuzz/): {failed:#?}",
        failed.len()
    );
    (corpus.len(), regressions.len())
}

#[test]
fn sql_plan_corpus() {
    assert_eq!(replay("sql_plan", targets::sql_plan), (400, 0));
}

#[test]
fn decode_csv_corpus() {
    assert_eq!(replay("decode_csv", targets::decode_csv), (300, 1));
}

#[test]
fn decode_json_corpus() {
    assert_eq!(replay("decode_json", targets::decode_json), (300, 0));
}

#[test]
fn decode_avro_corpus() {
    assert_eq!(replay("decode_avro", targets::decode_avro), (300, 1));
}
