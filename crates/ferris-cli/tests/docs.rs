//! docs/sql.md and docs/compatibility.md are executable: every `sql` block plans (after the
//! declarations of the document's first block), and a `sql` block followed by a `json` block
//! runs with `ferris-cli run` from the `examples/` directory and must print exactly the `json`
//! block.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fenced blocks of a Markdown text: (language, body, line of the fence).
fn blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_string(), Vec::new(), i + 1)),
            (Some(_), Some(_)) => {
                if let Some((lang, body, at)) = current.take() {
                    out.push((lang, body.join("\n"), at));
                }
            }
            (Some((_, body, _)), None) => body.push(line),
            (None, None) => {}
        }
    }
    out
}

/// Checks the executable examples of `doc` (see the module docs); returns how many ran.
fn check_examples(doc: &str) -> usize {
    let text = std::fs::read_to_string(root().join(doc)).expect("the document");
    let blocks = blocks(&text);
    let mut sql_blocks = blocks.iter().enumerate().filter(|(_, b)| b.0 == "sql");
    let (_, (_, prelude, _)) = sql_blocks.next().expect("a declarations block");
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, (_, body, line)) in sql_blocks {
        let app = format!("{prelude}\n{body}\n");
        if let Err(e) = ferris_plan::plan_application(&app) {
            failures.push(format!("{doc}:{line}: does not plan:\n{}", e.render(&app)));
            continue;
        }
        let Some((_, expected, _)) = blocks.get(i + 1).filter(|b| b.0 == "json") else {
            continue;
        };
        ran += 1;
        let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .current_dir(root().join("examples"))
            .args(["run", "-e", &app])
            .output()
            .expect("run ferris-cli");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            failures.push(format!(
                "{doc}:{line}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        } else if stdout.trim_end() != expected.trim_end() {
            failures.push(format!(
                "{doc}:{line}: output differs\n--- expected\n{expected}\n--- actual\n{stdout}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    ran
}

#[test]
fn every_sql_example_plans_and_runs_as_documented() {
    let ran = check_examples("docs/sql.md");
    assert!(ran >= 6, "only {ran} examples ran");
}

/// docs/compatibility.md: every difference from ksqlDB and Flink is shown by an example whose
/// output is checked.
#[test]
fn every_compatibility_example_runs_as_documented() {
    assert_eq!(check_examples("docs/compatibility.md"), 4);
}

#[test]
fn every_sql_example_of_the_observability_guide_plans() {
    let text = std::fs::read_to_string(root().join("docs/observability.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (lang, body, line) in blocks(&text) {
        if lang != "sql" {
            continue;
        }
        let path = dir.path().join("app.sql");
        std::fs::write(&path, &body).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .args(["validate", "--plan-only"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docs/observability.md line {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 1);
}
