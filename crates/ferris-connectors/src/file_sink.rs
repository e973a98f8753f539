//! `'connector'='file'` sink: JSON Lines or CSV.
//!
//! The file is created (with its parent directories) and TRUNCATED when the sink is opened:
//! each run rewrites its output. JSON rows are encoded by
//! [`ferris_runtime::json::JsonRowEncoder`]; CSV output starts with a header row (written
//! with the first batch) and encodes values like [`crate::formats::csv`]. Each `write_batch`
//! encodes the whole batch into a buffer and writes it with one call, so `Ok` means the bytes
//! reached the operating system.

use crate::ConnectorError;
use crate::props::Props;
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use ferris_runtime::json::JsonRowEncoder;
use ferris_runtime::{Sink, SinkError};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The output format of a file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// One JSON object per line.
    Json,
    /// CSV with a header row.
    Csv,
    /// An upsert stream (EMIT CHANGES): one `{"key": {...}, "value": {...}}` object per line,
    /// `key` holding the row's key columns (group keys and window bounds); the last line per
    /// key is the current row.
    UpsertJson,
}

impl SinkFormat {
    /// The canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            SinkFormat::Json => "json",
            SinkFormat::Csv => "csv",
            SinkFormat::UpsertJson => "upsert-json",
        }
    }
}

/// Properties of the file sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// `'path'` (required); relative paths resolve against the base directory.
    pub path: String,
    /// `'format'`: `json`, `csv` or `upsert-json`; default `csv` for a `.csv` path, else
    /// `json`.
    pub format: SinkFormat,
    /// `'upsert.key'`: the key columns of `upsert-json` rows, comma-separated (the planner
    /// sets it to the query's group keys and window bounds).
    pub upsert_key: Vec<String>,
}

/// The keys the file sink accepts.
pub const FILE_SINK_KEYS: &[&str] = &["connector", "path", "format", "upsert.key"];

impl FileSinkConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("file sink", FILE_SINK_KEYS, props)?;
        let path = p.required("path")?.to_string();
        let format = match p.get("format") {
            Some(f) => match f.to_ascii_lowercase().as_str() {
                "json" | "jsonl" | "ndjson" => SinkFormat::Json,
                "csv" => SinkFormat::Csv,
                "upsert-json" => SinkFormat::UpsertJson,
                _ => return Err(p.invalid("format", f, "'json', 'csv' or 'upsert-json'")),
            },
            None => match crate::file_source::format_from_extension(&path) {
                Some(crate::TextFormat::Csv) => SinkFormat::Csv,
                _ => SinkFormat::Json,
            },
        };
        let upsert_key: Vec<String> = p
            .get("upsert.key")
            .map(|k| {
                k.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if format == SinkFormat::UpsertJson && upsert_key.is_empty() {
            return Err(p.invalid(
                "format",
                "upsert-json",
                "an aggregation with group keys or a window (its rows need a key)",
            ));
        }
        Ok(FileSinkConfig {
            path,
            format,
            upsert_key,
        })
    }
}

/// Writes result rows to a file.
pub struct FileSink {
    describe: String,
    file: File,
    format: SinkFormat,
    upsert_key: Vec<String>,
    header_written: bool,
    buf: Vec<u8>,
}

impl FileSink {
    /// Creates (truncating) the file, relative to `base_dir`, and its parent directories.
    pub fn open(config: &FileSinkConfig, base_dir: &Path) -> Result<Self, ConnectorError> {
        let full = base_dir.join(&config.path);
        let io = |e: std::io::Error| ConnectorError::Io {
            path: full.display().to_string(),
            reason: e.to_string(),
        };
        if let Some(parent) = full.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = File::create(&full).map_err(io)?;
        Ok(FileSink {
            describe: format!("file {} ({})", config.path, config.format.name()),
            file,
            format: config.format,
            upsert_key: config.upsert_key.clone(),
            header_written: false,
            buf: Vec::new(),
        })
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<(), String> {
        self.buf.clear();
        match self.format {
            SinkFormat::Json => encode_json_lines(batch, &mut self.buf),
            SinkFormat::UpsertJson => encode_upsert_lines(batch, &self.upsert_key, &mut self.buf),
            SinkFormat::Csv => {
                if !self.header_written {
                    crate::formats::csv::encode_header(batch, &mut self.buf)?;
                }
                crate::formats::csv::encode_rows(batch, &mut self.buf)
            }
        }
    }
}

/// Appends every row of `batch` as a JSON object and a newline to `out`.
pub fn encode_json_lines(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    let options = FormatOptions::default();
    let enc = JsonRowEncoder::new(batch, &options)?;
    for row in 0..batch.num_rows() {
        enc.encode_row(row, out);
        out.push(b'\n');
    }
    Ok(())
}

/// Appends every row of `batch` as `{"key": {...}, "value": {...}}` and a newline.
pub fn encode_upsert_lines(
    batch: &RecordBatch,
    key: &[String],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let indices = key
        .iter()
        .map(|k| {
            batch
                .schema()
                .index_of(k)
                .map_err(|_| format!("upsert key column '{k}' is not in the output"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let keys = batch.project(&indices).map_err(|e| e.to_string())?;
    let options = FormatOptions::default();
    let key_enc = JsonRowEncoder::new(&keys, &options)?;
    let value_enc = JsonRowEncoder::new(batch, &options)?;
    for row in 0..batch.num_rows() {
        out.extend_from_slice(b"{\"key\":");
        key_enc.encode_row(row, out);
        out.extend_from_slice(b",\"value\":");
        value_enc.encode_row(row, out);
        out.extend_from_slice(b"}\n");
    }
    Ok(())
}

impl Sink for FileSink {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.encode(batch)
            .map_err(|e| SinkError::new(format!("{}: {e}", self.describe)))?;
        self.file
            .write_all(&self.buf)
            .and_then(|_| self.file.flush())
            .map_err(|e| SinkError::caused_by(format!("{}: write failed", self.describe), e))?;
        self.header_written = true;
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.file
            .flush()
            .map_err(|e| SinkError::caused_by(format!("{}: flush failed", self.describe), e))
    }
}
