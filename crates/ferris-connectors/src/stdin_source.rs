//! `'connector'='stdin'` source: CSV (with a header row) or JSON Lines from standard input,
//! decoded exactly like the file source. Rows are handed on as soon as they are read
//! (interactive use); the source ends at end of input. Positions are `stdin:LINE`.

use crate::ConnectorError;
use crate::formats::text::{EndMode, TextFormat, TextReader};
use crate::props::Props;
use arrow::datatypes::SchemaRef;
use ferris_runtime::{Source, SourceError, SourcePoll};
use std::collections::BTreeMap;
use std::io::Read;

/// Properties of the stdin source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdinConfig {
    /// `'format'`: `csv` (default) or `json`.
    pub format: TextFormat,
}

/// The keys the stdin source accepts.
pub const STDIN_SOURCE_KEYS: &[&str] = &["connector", "format"];

impl StdinConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("stdin source", STDIN_SOURCE_KEYS, props)?;
        let format = match p.get("format") {
            None => TextFormat::Csv,
            Some(f) => {
                TextFormat::parse(f).ok_or_else(|| p.invalid("format", f, "'csv' or 'json'"))?
            }
        };
        Ok(StdinConfig { format })
    }
}

/// Reads rows from standard input (or any reader, for tests).
pub struct StdinSource {
    inner: TextReader<Box<dyn Read + Send>>,
}

impl StdinSource {
    /// A source over `input` (normally `Box::new(std::io::stdin())`). The CSV header is read
    /// on the first poll, so creating the source never blocks.
    pub fn new(
        input: Box<dyn Read + Send>,
        schema: SchemaRef,
        format: TextFormat,
    ) -> Result<Self, ConnectorError> {
        let inner = TextReader::new(input, "stdin".into(), schema, format, EndMode::Finish, true)
            .map_err(|e| ConnectorError::Schema(e.to_string()))?;
        Ok(StdinSource { inner })
    }
}

impl Source for StdinSource {
    fn location(&self) -> String {
        "stdin".into()
    }

    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        self.inner.poll(max_rows)
    }
}
