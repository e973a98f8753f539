//! Mapping between token locations (1-based line and character column) and the SQL text.

use crate::ast::{Location, Span};
use sqlparser::tokenizer::{Location as TokLocation, Span as TokSpan};

/// The SQL text of one parse, with a line index.
pub(crate) struct Source<'a> {
    text: &'a str,
    /// Byte offset of the first character of every line.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Index `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, line_starts }
    }

    /// The byte offset of a location (clamped to the text).
    pub(crate) fn offset(&self, loc: Location) -> usize {
        let line = usize::try_from(loc.line).unwrap_or(usize::MAX).max(1);
        let Some(&start) = self.line_starts.get(line - 1) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let skip = usize::try_from(loc.column.saturating_sub(1)).unwrap_or(usize::MAX);
        match rest.char_indices().nth(skip) {
            Some((i, _)) => start + i,
            None => self.text.len(),
        }
    }

    /// The text of a span.
    pub(crate) fn slice(&self, span: Span) -> &'a str {
        let start = self.offset(span.start);
        let end = self.offset(span.end).max(start);
        &self.text[start..end]
    }
}

/// Convert a tokenizer location.
pub(crate) fn loc(l: TokLocation) -> Location {
    Location {
        line: l.line,
        column: l.column,
    }
}

/// The span from the start of `a` to the end of `b`.
pub(crate) fn join(a: TokSpan, b: TokSpan) -> Span {
    Span {
        start: loc(a.start),
        end: loc(b.end),
    }
}

/// The text of line `line` (1-based) without its line terminator, if it exists.
pub(crate) fn line_text(text: &str, line: u64) -> Option<&str> {
    let idx = usize::try_from(line.checked_sub(1)?).ok()?;
    text.split('\n')
        .nth(idx)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}
