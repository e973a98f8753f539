//! File sinks replace their output whole: a run killed with SIGKILL at any moment leaves
//! either the previous output or the complete new one, never a truncated or partial file;
//! `'append'='true'` writes in place instead.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 20,000 generated rows at 40,000 rows/s: about half a second of writing.
const APP: &str = "CREATE STREAM trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4))
  WITH ('connector' = 'datagen', 'events' = '20000', 'rate' = '40000', 'batch.size' = '500');
CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out/o.jsonl') AS
  SELECT id, symbol, price FROM trades;";

fn run_to_end(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg("run")
        .arg(dir.join("app.sql"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("out"))
        .expect("out dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ferris-tmp"))
        .collect()
}

#[test]
fn a_killed_run_leaves_the_old_output_or_the_complete_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("app.sql"), APP).expect("write app");
    run_to_end(dir.path());
    let complete = std::fs::read(dir.path().join("out/o.jsonl")).expect("output");
    assert_eq!(complete.iter().filter(|&&b| b == b'\n').count(), 20_000);
    let old = b"{\"previous\":\"output\"}\n".to_vec();

    // A reproducible random schedule: the seed is printed.
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("seed {seed}");
    let mut replaced = 0;
    for round in 0..10 {
        std::fs::write(dir.path().join("out/o.jsonl"), &old).expect("write old output");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 700);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .arg("run")
            .arg(dir.path().join("app.sql"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().expect("reap");
        let now = std::fs::read(dir.path().join("out/o.jsonl")).expect("output");
        assert!(
            now == old || now == complete,
            "round {round} (killed after {delay:?}): {} bytes, neither the old output nor the \
             complete new one",
            now.len()
        );
        replaced += usize::from(now == complete);
    }
    println!("{replaced} of 10 runs finished before the kill");
    // The next run removes what killed runs left behind.
    run_to_end(dir.path());
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    assert_eq!(
        std::fs::read(dir.path().join("out/o.jsonl")).expect("output"),
        complete
    );
}

#[test]
fn append_writes_in_place_and_keeps_what_was_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("app.sql"),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');
         CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out/o.csv', 'append' = 'true')
           AS SELECT a FROM t;",
    )
    .expect("write app");
    std::fs::write(dir.path().join("in.csv"), "a\n1\n2\n").expect("input");
    std::fs::create_dir(dir.path().join("out")).expect("mkdir");
    run_to_end(dir.path());
    run_to_end(dir.path());
    // The header once (the file was empty the first time), then both runs' rows.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/o.csv")).expect("output"),
        "a\n1\n2\n1\n2\n"
    );
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
}
