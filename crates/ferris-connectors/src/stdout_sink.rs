//! `'connector'='stdout'` sink (also the sink of a bare `SELECT`): an aligned table per batch
//! when standard output is a terminal, JSON Lines otherwise.

use crate::ConnectorError;
use crate::props::Props;
use arrow::record_batch::RecordBatch;
use ferris_runtime::{Sink, SinkError};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

/// Properties of the stdout sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdoutConfig {
    /// `'format'`: `auto` (default: a table on a terminal, else JSON Lines), `table` or
    /// `json`; `None` means `auto`.
    pub table: Option<bool>,
}

/// The keys the stdout sink accepts.
pub const STDOUT_SINK_KEYS: &[&str] = &["connector", "format"];

impl StdoutConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("stdout sink", STDOUT_SINK_KEYS, props)?;
        let table = match p.get("format") {
            None => None,
            Some(f) => match f.to_ascii_lowercase().as_str() {
                "auto" => None,
                "table" => Some(true),
                "json" | "jsonl" => Some(false),
                _ => return Err(p.invalid("format", f, "'auto', 'table' or 'json'")),
            },
        };
        Ok(StdoutConfig { table })
    }

    /// Whether to print tables (resolving `auto` against the real standard output).
    pub fn table(&self) -> bool {
        self.table
            .unwrap_or_else(|| std::io::stdout().is_terminal())
    }
}

/// Prints result rows to a writer (standard output in production).
pub struct StdoutSink {
    out: Box<dyn Write + Send>,
    table: bool,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A sink printing to `out`: aligned tables when `table`, else JSON Lines.
    pub fn new(out: Box<dyn Write + Send>, table: bool) -> Self {
        StdoutSink {
            out,
            table,
            buf: Vec::new(),
        }
    }
}

impl Sink for StdoutSink {
    fn describe(&self) -> String {
        format!("stdout ({})", if self.table { "table" } else { "json" })
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buf.clear();
        if self.table {
            let t = arrow::util::pretty::pretty_format_batches(std::slice::from_ref(batch))
                .map_err(|e| SinkError::caused_by("stdout", e))?;
            self.buf.extend_from_slice(t.to_string().as_bytes());
            self.buf.push(b'\n');
        } else {
            crate::file_sink::encode_json_lines(batch, &mut self.buf)
                .map_err(|e| SinkError::new(format!("stdout: {e}")))?;
        }
        self.out
            .write_all(&self.buf)
            .and_then(|_| self.out.flush())
            .map_err(|e| SinkError::caused_by("stdout: write failed", e))
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| SinkError::caused_by("stdout: flush failed", e))
    }
}
