//! SQL behaviour tests: a small sqllogictest-style runner over `tests/slt/*.slt`.
//!
//! Every `.slt` file is one `#[test]` (see `slt_files!` at the bottom; a guard test fails when
//! a file in the directory is not listed). All failures of a file are collected and reported
//! together as `file.slt:LINE: what went wrong`.
//!
//! # File format
//!
//! Records are separated by blank lines. Lines starting with `#` between records are comments
//! (a `#` line inside a record is part of its body).
//!
//! To try a file that is not listed yet:
//! `SLT_ADHOC=/abs/path/x.slt cargo test -p ferris-cli --test slt adhoc`.
//!
//! ```text
//! data trades.csv                 -- the following lines (up to a blank line) are written to
//! symbol,price                       trades.csv in the file's temp dir; WITH ('path' = 'trades.csv')
//! AAPL,1.5                           resolves there (it is the base_dir given to build_job)
//!
//! statement ok                    -- the SQL (up to a blank line) must plan; it is appended
//! CREATE STREAM t (...) WITH (...);  to the *prelude* that precedes every later record's SQL
//!
//! statement error <substring>     -- prelude + SQL must fail to parse or plan. The expected text
//! SELECT nope FROM t                 must occur in the rendered error (`AppError::render`) or in
//!                                    the normalised form `at line L, column C: <message>`, where
//!                                    L and C are relative to the record's own SQL (line 1 is its
//!                                    first line), so `statement error at line 1, column 8: nope`
//!                                    pins the position.
//!
//! query <types> [rowsort]         -- runs prelude + `CREATE STREAM out WITH ('connector'='file',
//! SELECT a, b FROM t                 'path'='out.jsonl','format'='json') AS` + SQL to completion
//! ----                               and compares out.jsonl, one row per line, values separated
//! 1 x                                by one space in column order. NULL is `NULL`, an empty
//!                                    string `(empty)`, strings as-is, numbers (decimals with
//!                                    their exact scale) and booleans exactly as the JSON sink
//!                                    writes them, timestamps as their RFC 3339 string.
//!                                    `rowsort` sorts both sides before comparing.
//!                                    `changelog` (EMIT CHANGES queries): the expected rows are
//!                                    the changelog at batch size 1 (one update per input row);
//!                                    at other batch sizes fewer updates are emitted, so there
//!                                    only the final table (the last row per upsert key) must
//!                                    equal the expected changelog's final table (a key
//!                                    whose last row has `__deleted` true is not in it).
//!                                    `final` (updating results whose intermediate rows depend
//!                                    on timing, e.g. a top-N over a derived stream): the
//!                                    expected rows are the final table, compared at every
//!                                    batch size and parallelism.
//!                                    `<types>` has one letter per column: I integer, R decimal or
//!                                    float, B boolean, T anything (text, timestamps).
//!
//! query error <substring>         -- the SQL must plan, and running it must fail with an error
//! SELECT a / 0 FROM t                whose text contains the substring.
//! ```
//!
//! Every query runs twelve times: with batch sizes 1, 7 and 1024 and with parallelism 1 to 4
//! (at 4, with channels of capacity 1 row), and all outputs must be identical. The batch size is set by inserting
//! `'batch.size' = 'N',` right after the first `WITH (` of every prelude statement (the source
//! declarations), unless that statement already sets `'batch.size'` itself.

use ferris_observe::Registry;
use ferris_plan::AppError;
use ferris_runtime::{JobConfig, Shutdown};
use std::path::{Path, PathBuf};

const SLT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/slt");
const BATCH_SIZES: [usize; 3] = [1, 7, 1024];
const PARALLELISMS: [usize; 4] = [1, 2, 3, 4];
const SINK_PREFIX: &str =
    "CREATE STREAM out WITH ('connector'='file','path'='out.jsonl','format'='json') AS";

#[derive(Debug)]
enum Kind {
    Data(String),
    StatementOk,
    StatementError(String),
    Query {
        types: String,
        rowsort: bool,
        changelog: bool,
        final_only: bool,
    },
    QueryError(String),
}

#[derive(Debug)]
struct Record {
    line: usize,
    kind: Kind,
    sql: String,
    expected: Vec<String>,
}

fn parse_records(text: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let head = lines[i].trim_end();
        if head.trim().is_empty() || head.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut words = head.split_whitespace();
        let kw = words.next().unwrap_or_default();
        let rest = |prefix: &str| head.trim_start()[prefix.len()..].trim().to_string();
        let kind = match kw {
            "data" => Kind::Data(rest("data")),
            "statement" => match words.next() {
                Some("ok") => Kind::StatementOk,
                Some("error") => Kind::StatementError(
                    head.trim_start()
                        .strip_prefix("statement")
                        .unwrap()
                        .trim_start()
                        .strip_prefix("error")
                        .unwrap()
                        .trim()
                        .to_string(),
                ),
                other => return Err(format!("line {line}: bad statement kind {other:?}")),
            },
            "query" => match words.next() {
                Some("error") => Kind::QueryError(
                    head.trim_start()
                        .strip_prefix("query")
                        .unwrap()
                        .trim_start()
                        .strip_prefix("error")
                        .unwrap()
                        .trim()
                        .to_string(),
                ),
                Some(types) => {
                    let mut rowsort = false;
                    let mut changelog = false;
                    let mut final_only = false;
                    for w in words {
                        match w {
                            "rowsort" => rowsort = true,
                            "changelog" => changelog = true,
                            "final" => final_only = true,
                            other => {
                                return Err(format!("line {line}: unknown query option {other}"));
                            }
                        }
                    }
                    Kind::Query {
                        types: types.to_string(),
                        rowsort,
                        changelog,
                        final_only,
                    }
                }
                None => return Err(format!("line {line}: query needs column types")),
            },
            other => return Err(format!("line {line}: unknown record kind {other:?}")),
        };
        i += 1;
        let mut body = Vec::new();
        let mut expected = Vec::new();
        let mut in_expected = false;
        while i < lines.len() && !lines[i].trim().is_empty() {
            let l = lines[i].trim_end();
            if l == "----" && matches!(kind, Kind::Query { .. }) && !in_expected {
                in_expected = true;
            } else if in_expected {
                expected.push(l.to_string());
            } else {
                body.push(l.to_string());
            }
            i += 1;
        }
        if matches!(kind, Kind::Query { .. }) && !in_expected {
            return Err(format!("line {line}: query without ----"));
        }
        out.push(Record {
            line,
            kind,
            sql: body.join("\n"),
            expected,
        });
    }
    Ok(out)
}

/// Inserts `'batch.size' = 'N',` after the first `WITH (` of a statement.
fn with_batch_size(stmt: &str, n: usize) -> String {
    if stmt.contains("'batch.size'") {
        return stmt.to_string();
    }
    let lower = stmt.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find("with") {
        let start = from + p;
        let after = &lower[start + 4..];
        let trimmed = after.trim_start();
        let boundary_ok = start == 0
            || !lower.as_bytes()[start - 1].is_ascii_alphanumeric()
                && lower.as_bytes()[start - 1] != b'_';
        if boundary_ok && trimmed.starts_with('(') {
            let paren = start + 4 + (after.len() - trimmed.len()) + 1;
            return format!("{} 'batch.size' = '{n}',{}", &stmt[..paren], &stmt[paren..]);
        }
        from = start + 4;
    }
    stmt.to_string()
}

fn prelude_text(prelude: &[String], batch_size: Option<usize>) -> String {
    let mut s = String::new();
    for stmt in prelude {
        let stmt = match batch_size {
            Some(n) => with_batch_size(stmt, n),
            None => stmt.clone(),
        };
        s.push_str(stmt.trim_end());
        if !stmt.trim_end().ends_with(';') {
            s.push(';');
        }
        s.push('\n');
    }
    s
}

/// `at line L, column C: message` with L relative to the record's SQL (`line_offset` lines
/// precede it in the planned text).
fn normalised(e: &AppError, line_offset: usize) -> String {
    let (message, pos) = match e {
        AppError::Sql(s) => (s.message.clone(), Some((s.line, s.column))),
        AppError::Plan(p) => (
            p.message.clone(),
            p.span
                .filter(|s| s.start.line > 0)
                .map(|s| (s.start.line, s.start.column)),
        ),
    };
    match pos {
        Some((line, col)) if line as usize > line_offset => {
            format!(
                "at line {}, column {col}: {message}",
                line as usize - line_offset
            )
        }
        Some((line, col)) => format!("in the prelude at line {line}, column {col}: {message}"),
        None => message,
    }
}

fn plan(sql: &str) -> Result<ferris_plan::Application, AppError> {
    // A panic in the planner is a failure of the record, not of the whole file.
    match std::panic::catch_unwind(|| ferris_plan::plan_application(sql)) {
        Ok(r) => r,
        Err(_) => Err(AppError::Plan(ferris_plan::PlanError::new(
            "the planner panicked",
        ))),
    }
}

/// The output positions of the last query's upsert key.
fn upsert_key(sql: &str) -> Vec<usize> {
    let Ok(app) = plan(sql) else {
        return Vec::new();
    };
    let Some(q) = app.queries.last() else {
        return Vec::new();
    };
    q.plan
        .upsert_key
        .iter()
        .filter_map(|k| q.plan.output_schema.index_of(k).ok())
        .collect()
}

/// The output position of the last query's delete flag, when its rows can be deleted.
fn deleted_column(sql: &str) -> Option<usize> {
    let app = plan(sql).ok()?;
    let q = app.queries.last()?;
    q.plan
        .output_schema
        .index_of(ferris_runtime::DELETED_COLUMN)
        .ok()
}

/// The final table of a changelog: the last row per key, sorted; a key whose last row is a
/// delete (`true` at `deleted`) is not in it.
fn final_table(rows: &[String], key: &[usize], deleted: Option<usize>) -> Vec<String> {
    let mut last: std::collections::BTreeMap<Vec<String>, String> = Default::default();
    for row in rows {
        let cols: Vec<&str> = row.split(' ').collect();
        let k = key
            .iter()
            .map(|&i| cols.get(i).copied().unwrap_or_default().to_string())
            .collect();
        if deleted.is_some_and(|d| cols.get(d) == Some(&"true")) {
            last.remove(&k);
        } else {
            last.insert(k, row.clone());
        }
    }
    let mut out: Vec<String> = last.into_values().collect();
    out.sort();
    out
}

/// Runs the application to completion; returns the rendered rows of out.jsonl.
fn run(
    rt: &tokio::runtime::Runtime,
    sql: &str,
    dir: &Path,
    parallelism: usize,
) -> Result<Vec<String>, String> {
    let app = plan(sql).map_err(|e| format!("planning failed: {}", e.render(sql)))?;
    let out = dir.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    // At parallelism 4 every channel holds a single row: results must not depend on channel
    // capacities, and a pipeline that could deadlock on full channels would show it here.
    let config = JobConfig {
        parallelism,
        channel_capacity_rows: if parallelism == 4 { 1 } else { 4096 },
        ..JobConfig::default()
    };
    let job = ferris_engine::build_job(&app, config, dir)
        .map_err(|e| format!("build_job failed: {}", e.render(sql)))?;
    let fut = ferris_runtime::run_job(job, Registry::new(), Shutdown::new());
    let result =
        rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(30), fut).await });
    match result {
        Err(_) => return Err("run timed out after 30s".into()),
        Ok(Err(e)) => return Err(format!("run failed: {e}")),
        Ok(Ok(_)) => {}
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("reading out.jsonl: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| render_row(l).map_err(|e| format!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Renders one JSON object line as its values in order, separated by one space.
fn render_row(line: &str) -> Result<String, String> {
    let values = parse_object(line)?;
    Ok(values
        .into_iter()
        .map(|v| match v {
            JsonValue::Null => "NULL".to_string(),
            JsonValue::Str(s) if s.is_empty() => "(empty)".to_string(),
            JsonValue::Str(s) => s,
            JsonValue::Raw(r) => r,
        })
        .collect::<Vec<_>>()
        .join(" "))
}

#[derive(Debug)]
enum JsonValue {
    Null,
    Str(String),
    /// A number or boolean exactly as written.
    Raw(String),
}

/// A tiny parser for flat JSON objects that keeps key order and number text exactly.
fn parse_object(s: &str) -> Result<Vec<JsonValue>, String> {
    let b: Vec<char> = s.trim().chars().collect();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        if b.get(*i) != Some(&'"') {
            return Err(format!("expected '\"' at {i}"));
        }
        *i += 1;
        let mut out = String::new();
        loop {
            let c = *b.get(*i).ok_or("unterminated string")?;
            *i += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = *b.get(*i).ok_or("bad escape")?;
                    *i += 1;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let hex: String = b.get(*i..*i + 4).ok_or("bad \\u")?.iter().collect();
                            *i += 4;
                            let n = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                            out.push(char::from_u32(n).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    };
    let mut values = Vec::new();
    ws(&mut i);
    if b.get(i) != Some(&'{') {
        return Err("expected '{'".into());
    }
    i += 1;
    ws(&mut i);
    if b.get(i) == Some(&'}') {
        return Ok(values);
    }
    loop {
        ws(&mut i);
        string(&mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&':') {
            return Err(format!("expected ':' at {i}"));
        }
        i += 1;
        ws(&mut i);
        match b.get(i) {
            Some('"') => values.push(JsonValue::Str(string(&mut i)?)),
            Some(_) => {
                let start = i;
                while i < b.len() && !matches!(b[i], ',' | '}') && !b[i].is_whitespace() {
                    i += 1;
                }
                let raw: String = b[start..i].iter().collect();
                if raw == "null" {
                    values.push(JsonValue::Null);
                } else if raw.starts_with('{') || raw.starts_with('[') {
                    return Err("nested values are not supported".into());
                } else {
                    values.push(JsonValue::Raw(raw));
                }
            }
            None => return Err("unexpected end".into()),
        }
        ws(&mut i);
        match b.get(i) {
            Some(',') => i += 1,
            Some('}') => return Ok(values),
            _ => return Err(format!("expected ',' or '}}' at {i}")),
        }
    }
}

fn check_types(types: &str, row: &str) -> Result<(), String> {
    let cols: Vec<&str> = row.split(' ').collect();
    if cols.len() != types.len() {
        // Strings with spaces make this ambiguous; only count when no T column exists.
        if !types.contains('T') {
            return Err(format!(
                "row {row:?} has {} values, types {types:?} declare {}",
                cols.len(),
                types.len()
            ));
        }
        return Ok(());
    }
    for (t, v) in types.chars().zip(cols) {
        if v == "NULL" {
            continue;
        }
        let ok = match t {
            'I' => {
                v.trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    && !v.is_empty()
            }
            'R' => v.parse::<f64>().is_ok(),
            'B' => v == "true" || v == "false",
            _ => true,
        };
        if !ok {
            return Err(format!("value {v:?} in row {row:?} is not of type {t}"));
        }
    }
    Ok(())
}

fn run_file(name: &str) {
    run_path(&PathBuf::from(SLT_DIR).join(name), name);
}

/// `SLT_ADHOC=/abs/path/file.slt cargo test -p ferris-cli --test slt adhoc` runs one file that
/// is not (yet) listed, e.g. while writing it; without the variable the test does nothing.
#[test]
fn adhoc() {
    if let Ok(p) = std::env::var("SLT_ADHOC") {
        let path = PathBuf::from(&p);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(p.clone());
        run_path(&path, &name);
    }
}

fn run_path(path: &Path, name: &str) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let records = parse_records(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut prelude: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut count = 0;
    for r in &records {
        count += 1;
        let at = format!("{name}:{}", r.line);
        let mut fail = |msg: String| {
            failures.push(format!(
                "{at}: {msg}\n    SQL: {}",
                r.sql.replace('\n', "\n         ")
            ))
        };
        match &r.kind {
            Kind::Data(file) => {
                let mut content = r.sql.clone();
                content.push('\n');
                std::fs::write(dir.path().join(file), content).expect("write data file");
            }
            Kind::StatementOk => {
                let sql = format!("{}{}", prelude_text(&prelude, None), r.sql);
                match plan(&sql) {
                    Ok(_) => prelude.push(r.sql.clone()),
                    Err(e) => fail(format!("expected ok, got error:\n{}", e.render(&sql))),
                }
            }
            Kind::StatementError(expected) => {
                let pre = prelude_text(&prelude, None);
                let offset = pre.lines().count();
                let sql = format!("{pre}{}", r.sql);
                match plan(&sql) {
                    Ok(_) => fail(format!(
                        "expected an error containing {expected:?}, but it planned"
                    )),
                    Err(e) => {
                        let rendered = e.render(&sql);
                        let norm = normalised(&e, offset);
                        if !rendered.contains(expected.as_str())
                            && !norm.contains(expected.as_str())
                        {
                            fail(format!(
                                "expected an error containing {expected:?}, got:\n    {norm}\n{rendered}"
                            ));
                        }
                    }
                }
            }
            Kind::Query {
                types,
                rowsort,
                changelog,
                final_only,
            } => {
                let mut first: Option<(String, Vec<String>)> = None;
                let mut failed = false;
                let mut key: Vec<usize> = Vec::new();
                let mut deleted: Option<usize> = None;
                'combos: for &bs in &BATCH_SIZES {
                    for &p in &PARALLELISMS {
                        let label = format!("batch.size={bs}, parallelism={p}");
                        let sql = format!(
                            "{}{SINK_PREFIX}\n{};",
                            prelude_text(&prelude, Some(bs)),
                            r.sql.trim_end().trim_end_matches(';')
                        );
                        if (*changelog || *final_only) && key.is_empty() {
                            key = upsert_key(&sql);
                            deleted = deleted_column(&sql);
                        }
                        let rows = match run(&rt, &sql, dir.path(), p) {
                            Ok(rows) => rows,
                            Err(e) => {
                                fail(format!("[{label}] {e}"));
                                failed = true;
                                break 'combos;
                            }
                        };
                        let mut rows = rows;
                        if *rowsort {
                            rows.sort();
                        }
                        let rows = if (*changelog && bs != 1) || *final_only {
                            // Fewer updates at larger batches: compare final tables.
                            let expected = final_table(&r.expected, &key, deleted);
                            let got = final_table(&rows, &key, deleted);
                            if expected != got {
                                fail(format!(
                                    "[{label}] final table differs from the expected \
                                     changelog's:\n  expected: {expected:?}\n  got: {got:?}"
                                ));
                                failed = true;
                                break 'combos;
                            }
                            continue;
                        } else {
                            rows
                        };
                        match &first {
                            None => first = Some((label, rows)),
                            Some((l0, r0)) if *r0 != rows => {
                                fail(format!(
                                    "output differs between [{l0}] and [{label}]:\n  {l0}: {r0:?}\n  {label}: {rows:?}"
                                ));
                                failed = true;
                                break 'combos;
                            }
                            Some(_) => {}
                        }
                    }
                }
                if failed || *final_only {
                    continue;
                }
                let (_, mut actual) = first.expect("ran at least once");
                let mut expected = r.expected.clone();
                if *rowsort {
                    actual.sort();
                    expected.sort();
                }
                if actual != expected {
                    fail(format!(
                        "wrong result\n  expected:\n    {}\n  actual:\n    {}",
                        expected.join("\n    "),
                        actual.join("\n    ")
                    ));
                } else {
                    for row in &actual {
                        if let Err(e) = check_types(types, row) {
                            fail(e);
                            break;
                        }
                    }
                }
            }
            Kind::QueryError(expected) => {
                let pre = prelude_text(&prelude, None);
                let sql = format!(
                    "{pre}{SINK_PREFIX}\n{};",
                    r.sql.trim_end().trim_end_matches(';')
                );
                match run(&rt, &sql, dir.path(), 1) {
                    Ok(rows) => fail(format!(
                        "expected the run to fail with {expected:?}, but it produced {rows:?}"
                    )),
                    Err(e) if e.starts_with("planning failed") => fail(format!(
                        "expected a runtime error, but it did not plan: {e}"
                    )),
                    Err(e) if !e.contains(expected.as_str()) => fail(format!(
                        "expected an error containing {expected:?}, got: {e}"
                    )),
                    Err(_) => {}
                }
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {count} records failed in {name}:\n\n{}\n",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

macro_rules! slt_files {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_file($file);
            }
        )*

        /// Every `.slt` file in the directory must be listed above.
        #[test]
        fn every_slt_file_is_listed() {
            let listed = [$($file),*];
            let mut missing = Vec::new();
            for entry in std::fs::read_dir(SLT_DIR).expect("tests/slt exists") {
                let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
                if name.ends_with(".slt") && !listed.contains(&name.as_str()) {
                    missing.push(name);
                }
            }
            assert!(missing.is_empty(), "add these to slt_files! in slt.rs: {missing:?}");
        }
    };
}

slt_files! {
    derived => "derived.slt",
    subqueries => "subqueries.slt",
    union => "union.slt",
    window_grace => "window_grace.slt",
    shared_window => "shared_window.slt",
    window_tvf => "window_tvf.slt",
    topn => "topn.slt",
    retractions => "retractions.slt",
    having_changes => "having_changes.slt",
    projection => "projection.slt",
    filter => "filter.slt",
    case_cast => "case_cast.slt",
    decimal => "decimal.slt",
    nulls => "nulls.slt",
    strings => "strings.slt",
    math => "math.slt",
    datetime => "datetime.slt",
    errors => "errors.slt",
    window_tumbling => "window_tumbling.slt",
    join_table => "join_table.slt",
    join_asof => "join_asof.slt",
    join_interval => "join_interval.slt",
    window_emit => "window_emit.slt",
    window_sliding => "window_sliding.slt",
    window_session => "window_session.slt",
    aggregates => "aggregates.slt",
    over => "over.slt",
}

#[test]
fn runner_helpers() {
    assert_eq!(
        with_batch_size("CREATE STREAM t (a INT) WITH ('connector' = 'x')", 7),
        "CREATE STREAM t (a INT) WITH ( 'batch.size' = '7','connector' = 'x')"
    );
    assert_eq!(
        with_batch_size("CREATE STREAM with_x (a INT)\nwith\n('k' = 'v')", 1),
        "CREATE STREAM with_x (a INT)\nwith\n( 'batch.size' = '1','k' = 'v')"
    );
    let keep = "CREATE STREAM t (a INT) WITH ('batch.size' = '5')";
    assert_eq!(with_batch_size(keep, 1), keep);
    assert_eq!(
        render_row(r#"{"a":1.2300,"b":"x y","c":null,"d":true,"e":"","f":"q\"\u00e9"}"#).unwrap(),
        "1.2300 x y NULL true (empty) q\"é"
    );
    assert!(check_types("IR", "1 2.5").is_ok());
    assert!(check_types("I", "2.5").is_err());
}
