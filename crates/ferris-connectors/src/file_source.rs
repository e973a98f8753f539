//! `'connector'='file'` source: CSV (header row required) or JSON Lines from a file,
//! optionally followed for appended lines.
//!
//! CSV: the first record is the header; declared columns are matched to header columns by
//! name (exact, then case-insensitive); a declared column missing from the header is an error
//! at open naming it; extra header columns are ignored. A row with a different number of
//! fields than the header is rejected (`expected N fields, found M`). An empty field is NULL.
//! Blank lines are skipped. Quoted fields may contain commas, quotes (`""`) and newlines.
//!
//! JSON Lines: one object per line; missing keys are NULL, extra keys ignored; numbers keep
//! their exact digits (DECIMAL accepts numbers and strings); blank lines are skipped; a line
//! that is not valid JSON or not an object is rejected with the parser's message.
//!
//! Positions are 1-based line numbers (the CSV header is line 1); rejects carry the raw text.

use crate::ConnectorError;
use crate::formats::text::{EndMode, TextFormat, TextReader};
use crate::props::Props;
use arrow::datatypes::SchemaRef;
use ferris_runtime::{Source, SourceError, SourcePoll};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Properties of the file source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceConfig {
    /// `'path'` (required), as written; relative paths resolve against the base directory.
    pub path: String,
    /// `'format'`: `csv` or `json`; default from the extension (`.csv` -> csv,
    /// `.json`/`.jsonl`/`.ndjson` -> json), required for other extensions.
    pub format: TextFormat,
    /// `'follow'` (default `false`): at the end of the file wait for appended lines instead
    /// of finishing.
    pub follow: bool,
    /// `'csv.null.literal'` (CSV only; none by default): the field text that is NULL. By
    /// default an empty field is NULL for every type; with a literal, the literal is NULL
    /// and an empty field is an empty string for VARCHAR (NULL for other types).
    pub null_literal: Option<String>,
}

/// The keys the file source accepts.
pub const FILE_SOURCE_KEYS: &[&str] =
    &["connector", "path", "format", "follow", "csv.null.literal"];

/// The format implied by a path's extension, if any.
pub fn format_from_extension(path: &str) -> Option<TextFormat> {
    let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(TextFormat::Csv),
        "json" | "jsonl" | "ndjson" => Some(TextFormat::Json),
        _ => None,
    }
}

/// Parses `'format'` (or infers it from `path`).
pub(crate) fn text_format(p: &Props<'_>, path: &str) -> Result<TextFormat, ConnectorError> {
    match p.get("format") {
        Some(f) => TextFormat::parse(f).ok_or_else(|| p.invalid("format", f, "'csv' or 'json'")),
        None => format_from_extension(path).ok_or_else(|| ConnectorError::MissingProperty {
            key: "format".into(),
            connector: format!("{} (the extension of '{path}' does not tell)", p.what()),
        }),
    }
}

impl FileSourceConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("file source", FILE_SOURCE_KEYS, props)?;
        let path = p.required("path")?.to_string();
        let format = text_format(&p, &path)?;
        let follow = p.bool("follow", false)?;
        let null_literal = p.get("csv.null.literal").map(str::to_string);
        if null_literal.is_some() && format != TextFormat::Csv {
            return Err(p.invalid(
                "csv.null.literal",
                p.get("csv.null.literal").unwrap_or_default(),
                "a CSV source ('format' = 'csv'); JSON has null",
            ));
        }
        Ok(FileSourceConfig {
            path,
            format,
            follow,
            null_literal,
        })
    }
}

/// Reads CSV or JSON Lines rows from a file.
pub struct FileSource {
    inner: TextReader<File>,
    /// An empty file read to its end: no header, no rows.
    empty: bool,
}

impl FileSource {
    /// Opens the file (relative to `base_dir`) and, for CSV, reads and checks the header.
    pub fn open(
        config: &FileSourceConfig,
        schema: SchemaRef,
        base_dir: &Path,
    ) -> Result<Self, ConnectorError> {
        let full: PathBuf = base_dir.join(&config.path);
        let file = File::open(&full).map_err(|e| ConnectorError::Io {
            path: full.display().to_string(),
            reason: e.to_string(),
        })?;
        let end_mode = if config.follow {
            EndMode::Follow
        } else {
            EndMode::Finish
        };
        let mut inner = TextReader::new(
            file,
            config.path.clone(),
            schema,
            config.format,
            end_mode,
            false,
        )
        .map_err(|e| ConnectorError::Schema(e.to_string()))?
        .with_null_literal(config.null_literal.as_deref());
        // An empty file (0 bytes) is an input without rows, as in DuckDB, Spark or Flink,
        // not a missing header; when followed, its header is waited for.
        let empty = !config.follow && std::fs::metadata(&full).is_ok_and(|m| m.len() == 0);
        if empty {
            tracing::warn!("{}: the file is empty: no header, no rows", config.path);
            return Ok(FileSource { inner, empty });
        }
        inner
            .read_header()
            .map_err(|e| ConnectorError::Schema(e.message))?;
        Ok(FileSource { inner, empty })
    }
}

impl Source for FileSource {
    fn location(&self) -> String {
        self.inner.location().to_string()
    }

    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        if self.empty {
            return Ok(SourcePoll::End);
        }
        self.inner.poll(max_rows)
    }
}
