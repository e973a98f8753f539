//! Dead letters: rows that could not be decoded, evaluated or written, with the reason.

use crate::error::{RuntimeError, Stage};
use std::io::Write;

/// One dead-letter record (a JSON Lines object in the file).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRecord {
    /// Why the row failed.
    pub error: String,
    /// Source name.
    pub source: String,
    /// `file:line`, `topic/partition/offset` or row number.
    pub position: String,
    /// The raw input (text or base64), or the decoded row as JSON when it failed after
    /// decoding (see `raw_encoding`).
    pub raw: String,
    /// How `raw` holds what failed.
    pub raw_encoding: crate::message::RawEncoding,
    /// Correlation id of the batch.
    pub correlation_id: String,
    /// Query name.
    pub query: String,
    /// Where it failed: `decode`, `evaluate` or `sink`.
    pub stage: Stage,
}

impl DeadLetterRecord {
    /// The record as one JSON object (no newline).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "error": self.error,
            "source": self.source,
            "position": self.position,
            "raw": self.raw,
            "raw_encoding": self.raw_encoding.as_str(),
            "correlation_id": self.correlation_id,
            "query": self.query,
            "stage": self.stage.as_str(),
        })
        .to_string()
    }
}

/// Where dead letters are written. Runs on its own thread.
pub trait DeadLetterWriter: Send {
    /// Description, e.g. the file path.
    fn describe(&self) -> String;
    /// Writes one record (buffered).
    fn write(&mut self, record: &DeadLetterRecord) -> Result<(), String>;
    /// Flushes buffered records.
    fn flush(&mut self) -> Result<(), String>;
}

/// Dead letters as JSON Lines in a file (created or appended to).
pub struct JsonLinesDeadLetterFile {
    path: String,
    out: std::io::BufWriter<std::fs::File>,
}

impl JsonLinesDeadLetterFile {
    /// Opens `path` for appending, creating parent directories.
    pub fn open(path: &std::path::Path) -> Result<Self, RuntimeError> {
        let describe = path.display().to_string();
        let err = |e: std::io::Error| RuntimeError::DeadLetter {
            path: describe.clone(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(JsonLinesDeadLetterFile {
            path: describe.clone(),
            out: std::io::BufWriter::new(file),
        })
    }
}

impl DeadLetterWriter for JsonLinesDeadLetterFile {
    fn describe(&self) -> String {
        self.path.clone()
    }
    fn write(&mut self, record: &DeadLetterRecord) -> Result<(), String> {
        let mut line = record.to_json();
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| e.to_string())
    }
    fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| e.to_string())
    }
}
