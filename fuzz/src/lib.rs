//! The per-input bodies of the fuzz targets, in one place for two users:
//!
//! * the cargo-fuzz targets in `fuzz/fuzz_targets/` (this file is the `ferris-fuzz` library);
//! * the corpus replay test `crates/ferris-cli/tests/fuzz_corpus.rs`, which includes this file
//!   as a module (`#[path]`), so the normal test suite runs every committed corpus file and
//!   regression through exactly the same code.
//!
//! It may therefore use only crates both have: `ferris-plan`, `ferris-connectors`,
//! `ferris-runtime`, `arrow` and `std` (not `libfuzzer-sys`).
//!
//! Every body must return normally for any input: errors and rejected rows are expected
//! outcomes; a panic (or an abort, a timeout, an out-of-memory) is a finding. Besides "no
//! panic", the bodies assert a few invariants that hold for every input (stated where they
//! are checked).

#![allow(dead_code)]

use arrow::array::{Array, TimestampSecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use ferris_connectors::formats::avro::AvroCodec;
use ferris_connectors::{RowDecoder, StdinSource, TextFormat};
use ferris_runtime::{Reject, Source, SourcePoll};
use std::io::Read;
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------------------
// sql_plan

/// `sql_plan`: parses and plans `data` as a whole application (`plan_application`), then
/// does what the CLI does with the outcome: renders an error with its caret, or builds the
/// logical graph and cuts the SQL fragment of every declared source and query.
pub fn sql_plan(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    match ferris_plan::plan_application(sql) {
        Ok(app) => {
            let graph = app.logical_graph();
            std::hint::black_box(&graph);
            for s in &app.sources {
                std::hint::black_box(app.fragment(s.span));
            }
            for q in &app.queries {
                std::hint::black_box(app.fragment(q.span));
            }
        }
        Err(e) => {
            std::hint::black_box(e.render(sql));
            std::hint::black_box(e.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------
// decode_csv, decode_json

/// The columns the CSV and JSON inputs are decoded into: every supported type, NOT NULL and
/// nullable. Seeds use these names (a CSV header must name every column).
pub fn text_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = |u| DataType::Timestamp(u, None);
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, true),
                Field::new("ok", DataType::Boolean, true),
                Field::new("tiny", DataType::Int8, true),
                Field::new("u", DataType::UInt32, true),
                Field::new("r", DataType::Float32, true),
                Field::new("x", DataType::Float64, true),
                Field::new("price", DataType::Decimal128(10, 2), true),
                Field::new("ts", ts(TimeUnit::Millisecond), true),
                Field::new("tns", ts(TimeUnit::Nanosecond), true),
                Field::new("day", DataType::Date32, true),
            ]))
        })
        .clone()
}

/// `decode_csv`: `data` is the whole input of a CSV source (header row first). The output
/// must not depend on how the input is split into reads (this found the byte-order-mark bug
/// fixed in `next_csv`, crates/ferris-connectors/src/formats/text.rs; its reproducer is in
/// fuzz/regressions/decode_csv/).
pub fn decode_csv(data: &[u8]) {
    decode_text(data, TextFormat::Csv, true);
}

/// `decode_json`: `data` is the whole input of a JSON Lines source.
pub fn decode_json(data: &[u8]) {
    decode_text(data, TextFormat::Json, true);
}

/// Everything a text source produced from one input.
#[derive(Debug, PartialEq)]
struct TextOutcome {
    /// All decoded rows, in one batch.
    rows: Option<RecordBatch>,
    positions: Vec<u64>,
    rejects: Vec<Reject>,
    /// The error that ended reading, if any (else the source reached `End`).
    error: Option<String>,
}

/// Reads `data` through `StdinSource` twice: once as a single read, polled 1024 rows at a
/// time, and once in pieces of pseudo-random sizes (derived from the input), polled 2 rows at
/// a time. Invariant: when both reach the end of input, they yield the same rows, positions
/// and rejects (how the input arrives, and the batch size, must not change what is decoded);
/// when one fails (a bad CSV header), both fail with the same error. `compare` = false skips
/// that check (both reads must still not panic).
fn decode_text(data: &[u8], format: TextFormat, compare: bool) {
    let whole = read_text(data, format, None, 1024);
    let pieces = read_text(data, format, Some(fnv1a(data)), 2);
    if !compare {
        return;
    }
    match (&whole.error, &pieces.error) {
        (None, None) => assert_eq!(
            whole, pieces,
            "{format:?}: the output depends on how the input is split into reads"
        ),
        _ => assert_eq!(
            whole.error, pieces.error,
            "{format:?}: the error depends on how the input is split into reads"
        ),
    }
}

/// Reads `data` in one read (`split` = `None`) or in [`Pieces`] seeded by `split`.
fn read_text(data: &[u8], format: TextFormat, split: Option<u64>, max_rows: usize) -> TextOutcome {
    let schema = text_schema();
    let input: Box<dyn Read + Send> = match split {
        None => Box::new(std::io::Cursor::new(data.to_vec())),
        Some(seed) => Box::new(Pieces::new(data.to_vec(), seed)),
    };
    let mut source = StdinSource::new(input, schema.clone(), format)
        .expect("the fuzz schema has only supported types");
    let mut batches = Vec::new();
    let mut out = TextOutcome {
        rows: None,
        positions: Vec::new(),
        rejects: Vec::new(),
        error: None,
    };
    // Every poll but the last returns at least one row or reject, so a source that ends
    // needs no more polls than this (a bound, so that a source that never ends is a finding
    // rather than a hang).
    let max_polls = 2 * data.len() + 16;
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(
            polls <= max_polls,
            "{format:?}: the source did not end after {max_polls} polls"
        );
        match source.poll(max_rows) {
            Ok(SourcePoll::Batch {
                records,
                positions,
                rejects,
            }) => {
                assert_eq!(
                    records.num_rows(),
                    positions.len(),
                    "{format:?}: one position per decoded row"
                );
                assert!(
                    records.num_rows() + rejects.len() <= max_rows,
                    "{format:?}: a poll returned more than max_rows rows and rejects"
                );
                assert_eq!(records.schema(), schema, "{format:?}: the declared schema");
                batches.push(records);
                out.positions.extend(positions);
                out.rejects.extend(rejects);
            }
            Ok(SourcePoll::End) => break,
            Ok(SourcePoll::Idle) => {}
            Ok(SourcePoll::Unavailable(why)) => {
                panic!("{format:?}: an in-memory input reported Unavailable: {why}")
            }
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out.rows = Some(
        arrow::compute::concat_batches(&schema, &batches)
            .expect("batches of one schema concatenate"),
    );
    out
}

/// FNV-1a of the input: a deterministic seed for how [`Pieces`] splits it.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A reader returning its data in pieces of pseudo-random sizes (1 to a quarter of the input,
/// at least 1), at most 16 reads before the rest in one (each read makes the text reader grow
/// its buffer by 256 KiB, so the count is kept small).
struct Pieces {
    data: Vec<u8>,
    pos: usize,
    state: u64,
    reads: u32,
}

impl Pieces {
    fn new(data: Vec<u8>, seed: u64) -> Self {
        Pieces {
            data,
            pos: 0,
            state: seed | 1,
            reads: 0,
        }
    }

    fn next_len(&mut self) -> usize {
        // xorshift64
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let quarter = (self.data.len() / 4).max(1) as u64;
        1 + (self.state % quarter) as usize
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        let left = self.data.len() - self.pos;
        let want = if self.reads >= 16 {
            left
        } else {
            self.next_len()
        };
        let n = want.min(left).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// decode_avro

/// The writer schema the Avro inputs are decoded with: every scalar the codec maps to a column
/// (plain, in unions with null, as logical types), and fields no column names (skipped),
/// of every complex type, including a recursive record, interleaved with them.
pub const AVRO_SCHEMA: &str = r#"{"type": "record", "name": "Fuzz", "namespace": "ferris.fuzz",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "flag", "type": ["null", "boolean"]},
    {"name": "small", "type": "int"},
    {"name": "count", "type": ["long", "null"]},
    {"name": "attrs", "type": {"type": "map", "values": ["null", "long", "double"]}},
    {"name": "ratio", "type": "float"},
    {"name": "score", "type": ["null", "double"]},
    {"name": "name", "type": ["null", "string"]},
    {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL", "HOLD"]}},
    {"name": "list", "type": ["null", {"type": "record", "name": "Cell", "fields": [
        {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Cell"]}]}]},
    {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4}},
    {"name": "amount", "type": ["null", {"type": "fixed", "name": "Money", "size": 9,
        "logicalType": "decimal", "precision": 20, "scale": 2}]},
    {"name": "blob", "type": {"type": "fixed", "name": "Blob", "size": 2}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "mood", "type": ["null", "Side", "Money", "bytes", "float"]},
    {"name": "ts_us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
    {"name": "ts_ns", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
    {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "nothing", "type": "null"},
    {"name": "epoch", "type": "long"}
  ]}"#;

/// The declared columns for [`AVRO_SCHEMA`] (fields `tags`, `attrs`, `list`, `blob`, `mood`
/// and `nothing` have none and are skipped).
pub fn avro_columns() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = |u| DataType::Timestamp(u, None);
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("flag", DataType::Boolean, true),
                Field::new("small", DataType::Int8, false),
                Field::new("count", DataType::UInt32, true),
                Field::new("ratio", DataType::Float32, false),
                Field::new("score", DataType::Float64, true),
                Field::new("name", DataType::Utf8, false),
                Field::new("side", DataType::Utf8, false),
                Field::new("uid", DataType::Utf8, true),
                Field::new("price", DataType::Decimal128(18, 4), false),
                Field::new("amount", DataType::Decimal128(20, 2), true),
                Field::new("day", DataType::Date32, true),
                Field::new("ts_ms", ts(TimeUnit::Millisecond), false),
                Field::new("ts_us", ts(TimeUnit::Millisecond), true),
                Field::new("ts_ns", ts(TimeUnit::Nanosecond), true),
                Field::new("local", ts(TimeUnit::Microsecond), true),
                Field::new("epoch", ts(TimeUnit::Second), true),
            ]))
        })
        .clone()
}

fn avro_codecs() -> &'static (AvroCodec, AvroCodec) {
    static CODECS: OnceLock<(AvroCodec, AvroCodec)> = OnceLock::new();
    CODECS.get_or_init(|| {
        let columns = avro_columns();
        let codec = AvroCodec::new(AVRO_SCHEMA, columns.clone()).expect("the fuzz Avro schema");
        let derived = AvroCodec::from_arrow(&columns).expect("a schema derived from the columns");
        (codec, derived)
    })
}

/// `decode_avro`: `data` is one Avro binary datum (one Kafka message) of [`AVRO_SCHEMA`],
/// decoded by `AvroCodec::decode` into [`avro_columns`]. Invariants: a rejected datum leaves
/// nothing in the row decoder; a decoded row re-encodes with the schema derived from the
/// columns (`AvroCodec::from_arrow`) and decodes back to the same row. One exception: the
/// derived schema writes the TIMESTAMP(0) column `epoch` as `timestamp-millis`, so a value
/// whose milliseconds overflow a `long` (reachable: `epoch` is read from a `long` of
/// milliseconds, truncated toward the past) must fail to encode instead.
pub fn decode_avro(data: &[u8]) {
    let (codec, derived) = avro_codecs();
    let columns = avro_columns();
    let mut decoder = RowDecoder::new(columns.clone()).expect("supported column types");
    let decoded = codec.decode(data, &mut decoder);
    let batch = decoder
        .finish()
        .expect("the decoder's columns have one length");
    if decoded.is_err() {
        assert_eq!(batch.num_rows(), 0, "a rejected datum left a row behind");
        return;
    }
    assert_eq!(batch.num_rows(), 1, "one datum, one row");
    let epoch = batch
        .column_by_name("epoch")
        .and_then(|c| c.as_any().downcast_ref::<TimestampSecondArray>())
        .expect("column epoch is TIMESTAMP(0)");
    let encodable = epoch.is_null(0) || epoch.value(0).checked_mul(1000).is_some();
    let mut payload = Vec::new();
    match derived.encode_row(&batch, 0, &mut payload) {
        Ok(()) => assert!(
            encodable,
            "epoch {} encoded as milliseconds",
            epoch.value(0)
        ),
        Err(e) if encodable => panic!("a decoded row does not encode again: {e}"),
        Err(_) => {
            assert!(payload.is_empty(), "a failed encode left bytes behind");
            return;
        }
    }
    let mut again = RowDecoder::new(columns).expect("supported column types");
    derived
        .decode(&payload, &mut again)
        .unwrap_or_else(|e| panic!("a re-encoded row does not decode: {e}"));
    let again = again
        .finish()
        .expect("the decoder's columns have one length");
    assert_eq!(again, batch, "the row changed in an Avro round trip");
}
