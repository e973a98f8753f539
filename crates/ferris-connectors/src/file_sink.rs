//! `'connector'='file'` sink: JSON Lines or CSV.
//!
//! Each run replaces its output whole: rows go to a temporary file in the same folder
//! (`.<name>.<pid>.ferris-tmp`), which is renamed over `'path'` when the sink closes (end of
//! input, a graceful stop, or a failure that ends the job: the rows written before it). A
//! process killed meanwhile leaves the previous output untouched; its temporary file is removed
//! by the next run writing the same path. With `'append'='true'` rows are appended to `'path'`
//! as they are written (a CSV header only when the file is empty), so a growing output can be
//! watched; a crash then leaves the rows written so far. JSON rows are encoded by
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
use std::path::{Path, PathBuf};

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
    /// `'append'` (`false`): append to the file in place instead of replacing it at the end.
    pub append: bool,
}

/// The keys the file sink accepts.
pub const FILE_SINK_KEYS: &[&str] = &["connector", "path", "format", "upsert.key", "append"];

impl FileSinkConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("file sink", FILE_SINK_KEYS, props)?;
        let path = p.required("path")?.to_string();
        if path.trim().is_empty() {
            return Err(p.invalid("path", &path, "a file name"));
        }
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
        let append = match p.get("append").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => return Err(p.invalid("append", &v, "'true' or 'false'")),
        };
        Ok(FileSinkConfig {
            path,
            format,
            upsert_key,
            append,
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
    /// The file named by `'path'`.
    target: PathBuf,
    /// The temporary file written instead, renamed over `target` at the end (`None` when
    /// appending, or once renamed).
    temp: Option<PathBuf>,
}

/// Suffix of the temporary files of file sinks.
const TEMP_SUFFIX: &str = ".ferris-tmp";

/// The temporary file process `pid` writes for `target`: `.<name>.<pid>.ferris-tmp` beside it.
fn temp_path(target: &Path, pid: u32) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{pid}{TEMP_SUFFIX}"))
}

/// Removes temporary files left for `target` by processes that no longer run (killed before
/// their rename).
fn remove_stale_temps(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What opening a sink at `full` would find wrong, without creating anything: the path is a
/// directory, or its nearest existing ancestor is not one.
pub fn check_target(full: &Path) -> Result<(), ConnectorError> {
    let io = |reason: &str| ConnectorError::Io {
        path: full.display().to_string(),
        reason: reason.to_string(),
    };
    if full.is_dir() {
        return Err(io("is a directory, not a file"));
    }
    let mut ancestor = full.parent();
    while let Some(dir) = ancestor {
        if dir.as_os_str().is_empty() || dir.is_dir() {
            return Ok(());
        }
        if dir.exists() {
            return Err(io(&format!(
                "'{}' is not a directory, so the file cannot be created in it",
                dir.display()
            )));
        }
        ancestor = dir.parent();
    }
    Ok(())
}

impl FileSink {
    /// Opens the sink, relative to `base_dir`, creating parent directories: a temporary file
    /// beside `'path'`, or `'path'` itself for appending.
    pub fn open(config: &FileSinkConfig, base_dir: &Path) -> Result<Self, ConnectorError> {
        let full = base_dir.join(&config.path);
        let io = |e: std::io::Error| ConnectorError::Io {
            path: full.display().to_string(),
            reason: e.to_string(),
        };
        check_target(&full)?;
        if let Some(parent) = full.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let (file, temp, header_written) = if config.append {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&full)
                .map_err(io)?;
            let non_empty = file.metadata().map(|m| m.len() > 0).map_err(io)?;
            (file, None, non_empty)
        } else {
            remove_stale_temps(&full);
            let temp = temp_path(&full, std::process::id());
            let file = File::create(&temp).map_err(io)?;
            (file, Some(temp), false)
        };
        Ok(FileSink {
            describe: format!("file {} ({})", config.path, config.format.name()),
            file,
            format: config.format,
            upsert_key: config.upsert_key.clone(),
            header_written,
            buf: Vec::new(),
            target: full,
            temp,
        })
    }

    /// Makes what was written durable and, unless appending, renames it over the target.
    fn commit(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()?;
        if let Some(temp) = self.temp.take() {
            std::fs::rename(&temp, &self.target)?;
        }
        Ok(())
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

/// Appends every row of `batch` as `{"key": {...}, "value": {...}}` and a newline; a row
/// marked deleted (a `true` in [`ferris_runtime::DELETED_COLUMN`], which the value leaves
/// out) as the tombstone `{"key": {...}, "value": null}`.
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
    let (values, deleted) = ferris_runtime::split_deleted(batch).map_err(|e| e.to_string())?;
    let options = FormatOptions::default();
    let key_enc = JsonRowEncoder::new(&keys, &options)?;
    let value_enc = JsonRowEncoder::new(&values, &options)?;
    for row in 0..batch.num_rows() {
        out.extend_from_slice(b"{\"key\":");
        key_enc.encode_row(row, out);
        out.extend_from_slice(b",\"value\":");
        if deleted.is_deleted(row) {
            out.extend_from_slice(b"null");
        } else {
            value_enc.encode_row(row, out);
        }
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
        self.commit().map_err(|e| {
            SinkError::caused_by(
                format!("{}: could not replace the output", self.describe),
                e,
            )
        })
    }
}

impl Drop for FileSink {
    /// A job that ends without closing its sink (another query failed) still replaces the
    /// output with the rows written; only a killed process leaves the old output.
    fn drop(&mut self) {
        if self.temp.is_some()
            && let Err(e) = self.commit()
        {
            tracing::warn!("{}: could not replace the output: {e}", self.describe);
        }
    }
}
