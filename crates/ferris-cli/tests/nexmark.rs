//! The Nexmark queries of `examples/nexmark/` against DuckDB: each query runs over the CSV
//! files `generate.sql` writes (50,000 events of the built-in generator), twice — at
//! parallelism 1 with the default batch size, and at parallelism 3 with batches of 7 rows —
//! and each answer must be the multiset of rows DuckDB computes from the same files with
//! `duckdb/qN.sql` (`check.py`; needs `pip install duckdb`, which `.ci/run` installs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn nexmark_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nexmark")
}

/// A directory holding the generated CSV files, the side input and the declarations.
fn data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in ["generate.sql", "sources.sql", "side_input.csv"] {
        std::fs::copy(nexmark_dir().join(f), dir.path().join(f)).expect("copy nexmark file");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "generate.sql"])
        .current_dir(dir.path())
        .output()
        .expect("run ferris-cli");
    assert!(
        out.status.success(),
        "generate.sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// `sources.sql` with `'batch.size' = 'n'` in each source's WITH.
fn sources_with_batch(dir: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(dir.join("sources.sql")).expect("sources.sql");
    text.replace(
        "WITH ('connector' = 'file',",
        &format!("WITH ('batch.size' = '{n}', 'connector' = 'file',"),
    )
}

fn check(query: &str) {
    let dir = data();
    let sql = std::fs::read_to_string(nexmark_dir().join(format!("{query}.sql"))).expect("query");
    for (parallelism, batch) in [(1, None), (3, Some(7))] {
        let sources = match batch {
            Some(n) => sources_with_batch(dir.path(), n),
            None => std::fs::read_to_string(dir.path().join("sources.sql")).expect("sources"),
        };
        let app = dir.path().join(format!("{query}.app.sql"));
        std::fs::write(&app, format!("{sources}\n{sql}")).expect("write app");
        let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .args(["run", "--parallelism", &parallelism.to_string()])
            .arg(&app)
            .current_dir(dir.path())
            .output()
            .expect("run ferris-cli");
        assert!(
            out.status.success(),
            "{query} (parallelism {parallelism}, batch {batch:?}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let output = dir.path().join(format!("{query}.out"));
        std::fs::write(&output, &out.stdout).expect("write output");
        let checked = Command::new("python3")
            .arg(nexmark_dir().join("check.py"))
            .arg(query)
            .arg(dir.path())
            .arg(&output)
            .output()
            .expect("run python3 (pip install duckdb)");
        let report = String::from_utf8_lossy(&checked.stdout);
        assert!(
            checked.status.success(),
            "{query} (parallelism {parallelism}, batch {batch:?}) differs from DuckDB:\n{report}\n{}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

macro_rules! nexmark {
    ($($name:ident => $expected:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        /// Every query file has a test here, and every query left out is listed in
        /// docs/sql.md with its reason.
        #[test]
        fn every_query_is_tested_or_listed_as_left_out() {
            let tested = [$(stringify!($name)),*];
            let docs = std::fs::read_to_string(nexmark_dir().join("../../docs/sql.md"))
                .expect("docs/sql.md");
            for n in 0..=22 {
                let q = format!("q{n}");
                let file = nexmark_dir().join(format!("{q}.sql"));
                if tested.contains(&q.as_str()) {
                    assert!(file.exists(), "{q}.sql is missing");
                    assert!(nexmark_dir().join(format!("duckdb/{q}.sql")).exists());
                } else {
                    assert!(!file.exists(), "{q}.sql exists but has no test");
                    assert!(
                        docs.contains(&format!("| {q} |")),
                        "{q} is neither tested nor listed in docs/sql.md's Nexmark table"
                    );
                }
            }
            let _ = [$($expected),*];
        }
    };
}

nexmark! {
    q0 => "pass-through",
    q1 => "currency conversion",
    q2 => "selection",
    q3 => "local item suggestion",
    q4 => "average price per category",
    q5 => "hot items",
    q7 => "highest bid",
    q8 => "monitor new users",
    q9 => "winning bids",
    q10 => "log to file system",
    q11 => "user sessions",
    q13 => "bounded side input join",
    q14 => "calculation",
    q15 => "bidding statistics",
    q16 => "channel statistics",
    q17 => "auction statistics",
    q18 => "find last bid",
    q19 => "auction top-10 price",
    q20 => "expand bid with auction",
    q21 => "add channel id",
    q22 => "url directories",
}
