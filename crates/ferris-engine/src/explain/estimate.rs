//! Estimates from what can be known before a query runs: a file's size and its lines, a
//! generator's row count and rate, a Kafka topic's offsets, and a sample of rows (up to
//! [`SAMPLE_ROWS`]) read through the source's own decoder and run through the query's own
//! operators — selectivity, CPU per row, output rows and state bytes per group are measured
//! on it, by the code that will run, on this machine.

use arrow::array::{Array, AsArray};
use arrow::compute::concat_batches;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use ferris_plan::{PlannedQuery, SourceDecl};
use ferris_runtime::{Operator, SourcePoll, StateSize};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rows read from a source for the sample.
pub const SAMPLE_ROWS: usize = 1000;
/// Files up to this size have their lines counted; larger ones are extrapolated from
/// their first [`HEAD_BYTES`].
const COUNT_LIMIT: u64 = 64 << 20;
const HEAD_BYTES: usize = 1 << 20;
/// The longest a sample or a broker query may take.
const SAMPLE_TIME: Duration = Duration::from_secs(2);

/// What is known of a source's rows before the query runs.
#[derive(Debug, Clone, Default)]
pub struct SourceEstimate {
    /// The source.
    pub name: String,
    /// Rows it will deliver (bounded input), or those already stored (a Kafka topic).
    pub rows: Option<u64>,
    /// Whether the input ends by itself.
    pub bounded: bool,
    /// Rows per second, when the source is rate-limited (a generator's `rate`).
    pub rate: Option<f64>,
    /// Where `rows` comes from, in words.
    pub basis: String,
    /// Partitions and their offsets (Kafka): `(partition, low, high)`.
    pub partitions: Vec<(i32, i64, i64)>,
    /// Rows read through the source's decoder.
    pub sample: Option<RecordBatch>,
    /// Whether the sample is the whole input.
    pub sample_is_all: bool,
    /// Why there is no sample.
    pub no_sample: Option<String>,
}

/// Estimates `source`'s rows and reads its sample.
pub fn source_estimate(source: &SourceDecl, base: &Path) -> SourceEstimate {
    let props = &source.connector;
    let connector = props
        .get("connector")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    let mut e = SourceEstimate {
        name: source.name.clone(),
        ..SourceEstimate::default()
    };
    match connector.as_str() {
        "file" => file_rows(source, base, &mut e),
        "datagen" => {
            let events = props
                .get("events")
                .and_then(|v| v.trim().parse::<u64>().ok());
            e.rate = props.get("rate").and_then(|v| v.trim().parse::<f64>().ok());
            e.bounded = events.is_some();
            e.rows = events;
            e.basis = match (events, e.rate) {
                (Some(n), _) => format!("generator: 'events' = {n}"),
                (None, Some(r)) => format!("generator: unbounded at 'rate' = {r} rows/s"),
                (None, None) => "generator: unbounded, no 'events' or 'rate'".to_string(),
            };
        }
        "kafka" => kafka_rows(props, &mut e),
        "stdin" => {
            e.basis = "stdin: not known before it is read".to_string();
            e.no_sample = Some("stdin is not read by EXPLAIN".to_string());
        }
        ferris_plan::DERIVED_CONNECTOR => {
            e.basis = "the output of another query: not known before it runs".to_string();
            e.no_sample = Some("a derived stream is not read by EXPLAIN".to_string());
        }
        other => e.basis = format!("connector '{other}': not known"),
    }
    if e.no_sample.is_none() {
        sample(source, base, &mut e);
    }
    if e.sample_is_all
        && let Some(s) = &e.sample
    {
        e.rows = Some(s.num_rows() as u64);
    }
    e
}

/// A file: its lines counted (CSV without its header) or, past [`COUNT_LIMIT`],
/// extrapolated from the lines of its head.
fn file_rows(source: &SourceDecl, base: &Path, e: &mut SourceEstimate) {
    let props = &source.connector;
    let Some(path) = props.get("path") else {
        e.basis = "file: no 'path'".to_string();
        return;
    };
    let full = base.join(path);
    let follow = props
        .get("follow")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    e.bounded = !follow;
    let csv = props
        .get("format")
        .is_none_or(|f| f.trim().eq_ignore_ascii_case("csv"));
    let size = match std::fs::metadata(&full) {
        Ok(m) => m.len(),
        Err(err) => {
            e.basis = format!("file {path}: {err}");
            return;
        }
    };
    let header = u64::from(csv);
    if size <= COUNT_LIMIT {
        match std::fs::read(&full) {
            Ok(bytes) => {
                let lines = count_lines(&bytes);
                e.rows = Some(lines.saturating_sub(header));
                e.basis = format!(
                    "{} lines counted in {path} ({})",
                    lines.saturating_sub(header),
                    bytes_text(size)
                );
            }
            Err(err) => e.basis = format!("file {path}: {err}"),
        }
    } else {
        let mut head = vec![0u8; HEAD_BYTES];
        let read = std::fs::File::open(&full).and_then(|mut f| {
            use std::io::Read;
            f.read(&mut head)
        });
        match read {
            Ok(n) if n > 0 => {
                let lines = count_lines(&head[..n]).max(1);
                let rows = (size as f64 * lines as f64 / n as f64) as u64;
                e.rows = Some(rows.saturating_sub(header));
                e.basis = format!(
                    "{path} is {}: {lines} lines in its first {} give ~{} rows",
                    bytes_text(size),
                    bytes_text(n as u64),
                    rows.saturating_sub(header)
                );
            }
            _ => e.basis = format!("file {path}: its head could not be read"),
        }
    }
    if follow {
        e.basis
            .push_str(", then followed for appended lines (unbounded)");
    }
}

/// Lines of `bytes`: newlines, plus a last line without one; empty lines not counted.
fn count_lines(bytes: &[u8]) -> u64 {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
        .count() as u64
}

/// A Kafka topic: the messages stored now, from its offsets.
fn kafka_rows(props: &std::collections::BTreeMap<String, String>, e: &mut SourceEstimate) {
    e.no_sample = Some("Kafka messages are not read by EXPLAIN".to_string());
    e.bounded = props
        .get("scan.bounded")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("latest"));
    match ferris_connectors::kafka::topic_offsets(props, SAMPLE_TIME) {
        Ok((topic, parts)) => {
            let stored: i64 = parts.iter().map(|p| (p.high - p.low).max(0)).sum();
            e.partitions = parts.iter().map(|p| (p.partition, p.low, p.high)).collect();
            let latest = props
                .get("scan.startup.mode")
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("latest"));
            e.rows = Some(if latest { 0 } else { stored as u64 });
            e.basis = format!(
                "Kafka offsets of '{topic}': {stored} messages stored in {} partition(s){}{}",
                parts.len(),
                if latest {
                    ", none read at 'scan.startup.mode' = 'latest'"
                } else {
                    ""
                },
                if e.bounded {
                    ", read up to the end offsets"
                } else {
                    ", then followed (unbounded)"
                }
            );
        }
        Err(err) => e.basis = format!("Kafka offsets not known: {err}"),
    }
}

/// Reads up to [`SAMPLE_ROWS`] rows through the source's decoder (a generator without its
/// rate limit).
fn sample(source: &SourceDecl, base: &Path, e: &mut SourceEstimate) {
    let mut props = source.connector.clone();
    props.remove("rate");
    props.remove("follow");
    let mut reader =
        match ferris_connectors::create_source(&source.name, source.schema.clone(), &props, base) {
            Ok(r) => r,
            Err(err) => {
                e.no_sample = Some(format!("the source could not be opened: {err}"));
                return;
            }
        };
    let started = Instant::now();
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut ended = false;
    while rows < SAMPLE_ROWS && started.elapsed() < SAMPLE_TIME {
        match reader.poll(SAMPLE_ROWS - rows) {
            Ok(SourcePoll::Batch { records, .. }) => {
                rows += records.num_rows();
                batches.push(records);
            }
            Ok(SourcePoll::End) => {
                ended = true;
                break;
            }
            Ok(SourcePoll::Idle) | Ok(SourcePoll::Unavailable(_)) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => {
                e.no_sample = Some(format!("reading the sample failed: {err}"));
                return;
            }
        }
    }
    if !ended && rows >= SAMPLE_ROWS && e.bounded {
        // One more poll tells a file of exactly SAMPLE_ROWS rows from a longer one.
        ended = matches!(reader.poll(1), Ok(SourcePoll::End));
    }
    match concat_batches(&source.schema, &batches) {
        Ok(b) => {
            e.sample_is_all = ended && e.bounded;
            e.sample = Some(b);
        }
        Err(err) => e.no_sample = Some(format!("the sample could not be assembled: {err}")),
    }
}

/// One operator's run over the sample.
#[derive(Debug, Clone, Default)]
pub struct OpSample {
    /// Its metric name (`filter`, `project`, `aggregate`, …).
    pub name: String,
    /// Rows given.
    pub rows_in: u64,
    /// Rows emitted (for stateful operators, including what the end of input flushed).
    pub rows_out: u64,
    /// Time spent in it.
    pub nanos: u64,
    /// Bytes per output row (Arrow values, not buffers).
    pub width: Option<u64>,
}

/// A query's operators run over its sources' samples.
#[derive(Debug, Clone, Default)]
pub struct QuerySample {
    /// The stateless stage's operators (the left input's, for a join).
    pub stateless: Vec<OpSample>,
    /// The keyed stage's operators.
    pub keyed: Vec<OpSample>,
    /// What the stateful operator held once the whole sample was in (before the end of
    /// input flushed it).
    pub state: Option<StateSize>,
    /// Why the query could not be run over the sample.
    pub skipped: Option<String>,
}

/// Runs `q`'s operators over the samples (`left`, and `right` for a join).
pub fn run_sample(
    q: &PlannedQuery,
    left: Option<&RecordBatch>,
    right: Option<&RecordBatch>,
) -> QuerySample {
    let mut out = QuerySample::default();
    let Some(left) = left else {
        out.skipped = Some("no sample of the source".to_string());
        return out;
    };
    if q.plan.lookup.is_some() {
        out.skipped = Some("the lookup table is loaded only when the job runs".to_string());
        return out;
    }
    let mut ops = q.plan.operators(None);
    let stage_out = match run_chain(&mut ops, vec![left.clone()], &mut out.stateless) {
        Ok(b) => b,
        Err(err) => {
            out.skipped = Some(format!("the sample failed in the stateless stage: {err}"));
            return out;
        }
    };
    let Some(keyed) = &q.plan.keyed else {
        return out;
    };
    let mut chain = match (keyed.operators)() {
        Ok(c) => c,
        Err(err) => {
            out.skipped = Some(err);
            return out;
        }
    };
    if let Err(err) = run_keyed(&mut chain, stage_out, right, &mut out) {
        out.skipped = Some(format!("the sample failed in the keyed stage: {err}"));
    }
    out
}

fn run_chain(
    ops: &mut [Box<dyn Operator>],
    input: Vec<RecordBatch>,
    stats: &mut Vec<OpSample>,
) -> Result<Vec<RecordBatch>, String> {
    let mut carried = input;
    for op in ops.iter_mut() {
        let mut s = OpSample {
            name: op.name().to_string(),
            ..OpSample::default()
        };
        let mut out = Vec::new();
        let started = Instant::now();
        for b in &carried {
            s.rows_in += b.num_rows() as u64;
            op.process_batch(b, &mut out).map_err(|e| e.message)?;
        }
        op.finish(&mut out).map_err(|e| e.message)?;
        s.nanos = started.elapsed().as_nanos() as u64;
        s.rows_out = out.iter().map(|b| b.num_rows() as u64).sum();
        s.width = mean_width(&out);
        stats.push(s);
        carried = out;
    }
    Ok(carried)
}

fn run_keyed(
    chain: &mut [Box<dyn Operator>],
    left: Vec<RecordBatch>,
    right: Option<&RecordBatch>,
    out: &mut QuerySample,
) -> Result<(), String> {
    let Some((first, rest)) = chain.split_first_mut() else {
        return Ok(());
    };
    let mut s = OpSample {
        name: first.name().to_string(),
        ..OpSample::default()
    };
    let mut emitted = Vec::new();
    let started = Instant::now();
    for b in &left {
        s.rows_in += b.num_rows() as u64;
        first
            .process_side(0, b, &mut emitted)
            .map_err(|e| e.message)?;
    }
    if let Some(r) = right {
        s.rows_in += r.num_rows() as u64;
        first
            .process_side(1, r, &mut emitted)
            .map_err(|e| e.message)?;
    }
    out.state = Some(first.state_size());
    first.finish(&mut emitted).map_err(|e| e.message)?;
    s.nanos = started.elapsed().as_nanos() as u64;
    s.rows_out = emitted.iter().map(|b| b.num_rows() as u64).sum();
    s.width = mean_width(&emitted);
    out.keyed.push(s);
    run_chain(rest, emitted, &mut out.keyed)?;
    Ok(())
}

/// Mean bytes per row of `batches`: fixed-width values at their width, strings and binaries
/// at their length plus a 4-byte offset, other types at their Arrow memory.
pub fn mean_width(batches: &[RecordBatch]) -> Option<u64> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return None;
    }
    let mut bytes = 0usize;
    for b in batches {
        for col in b.columns() {
            bytes += match col.data_type() {
                DataType::Utf8 => col.as_string::<i32>().values().len() + 4 * col.len(),
                DataType::LargeUtf8 => col.as_string::<i64>().values().len() + 8 * col.len(),
                DataType::Binary => col.as_binary::<i32>().values().len() + 4 * col.len(),
                t => match t.primitive_width() {
                    Some(w) => w * col.len(),
                    None => col.get_array_memory_size(),
                },
            };
        }
    }
    Some((bytes / rows) as u64)
}

/// `1536` → `1.5 KiB`.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
