//! Planning errors with a position in the SQL text.

use ferris_sql::ast::{Location, Span};

/// A statement could not be planned: what is wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}{}", position(.span))]
pub struct PlanError {
    /// What is wrong, and how to fix it where we know.
    pub message: String,
    /// Where in the SQL text, when known.
    pub span: Option<Span>,
}

fn position(span: &Option<Span>) -> String {
    match span {
        Some(s) if s.start.line > 0 => {
            format!(" at line {}, column {}", s.start.line, s.start.column)
        }
        _ => String::new(),
    }
}

impl PlanError {
    /// An error at `span`.
    pub fn at(message: impl Into<String>, span: Span) -> Self {
        PlanError {
            message: message.into(),
            span: Some(span),
        }
    }

    /// An error without a position (e.g. from configuration).
    pub fn new(message: impl Into<String>) -> Self {
        PlanError {
            message: message.into(),
            span: None,
        }
    }

    /// A "not supported yet" error for a clause.
    pub fn not_supported(what: &str, span: Span) -> Self {
        PlanError::at(
            format!("{what} is not supported yet: it parses, but this version cannot run it"),
            span,
        )
    }

    /// The error with the offending line and a caret under the position.
    pub fn render(&self, sql: &str) -> String {
        match self.span {
            Some(span) if span.start.line > 0 => ferris_sql::SqlError::new(
                self.message.clone(),
                span.start.line,
                span.start.column,
                caret_len(span) as u64,
            )
            .render(sql),
            _ => format!("error: {self}"),
        }
    }
}

fn caret_len(span: Span) -> usize {
    if span.end.line == span.start.line && span.end.column > span.start.column {
        (span.end.column - span.start.column) as usize
    } else {
        1
    }
}

/// Converts a sqlparser span into ours.
pub(crate) fn span_of(s: sqlparser::tokenizer::Span) -> Span {
    Span {
        start: Location {
            line: s.start.line,
            column: s.start.column,
        },
        end: Location {
            line: s.end.line,
            column: s.end.column,
        },
    }
}

/// Where `s` stands, or `fallback` when the parser gave no position.
pub(crate) fn span_or(s: sqlparser::tokenizer::Span, fallback: Span) -> Span {
    let span = span_of(s);
    if span.start.line > 0 { span } else { fallback }
}
