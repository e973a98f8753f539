//! The error type of the SQL front end and its rendering with a caret.

use crate::source::line_text;
use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Span as TokSpan, Token, TokenWithSpan, TokenizerError};

/// A SQL error with the 1-based position of the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct SqlError {
    /// What went wrong (without the position).
    pub message: String,
    /// Line of the offending token, starting at 1.
    pub line: u64,
    /// Column (in characters) of the offending token, starting at 1.
    pub column: u64,
    /// Length of the offending token in characters (at least 1), for the caret.
    pub len: u64,
}

impl SqlError {
    /// An error at a line and column with a caret of length `len`.
    pub fn new(message: impl Into<String>, line: u64, column: u64, len: u64) -> Self {
        SqlError {
            message: message.into(),
            line: line.max(1),
            column: column.max(1),
            len: len.max(1),
        }
    }

    /// An error about the token (or tokens) covering `span`.
    pub(crate) fn at(message: impl Into<String>, span: TokSpan) -> Self {
        let len = if span.end.line == span.start.line {
            span.end.column.saturating_sub(span.start.column)
        } else {
            // Runs to the end of the line; `render` clips the caret to the line.
            u64::MAX / 2
        };
        SqlError::new(message, span.start.line, span.start.column, len)
    }

    /// `Expected: <expected>, found: <token>` at `found`.
    pub(crate) fn expected(expected: &str, found: &TokenWithSpan) -> Self {
        SqlError::at(
            format!("Expected: {expected}, found: {}", found.token),
            found.span,
        )
    }

    /// Convert a tokenizer error.
    pub(crate) fn from_tokenizer(e: TokenizerError) -> Self {
        SqlError::new(e.message, e.location.line, e.location.column, 1)
    }

    /// Convert a sqlparser error. Its position suffix (`at Line: X, Column: Y`) becomes the
    /// position; the caret length is taken from the token of `tokens` at that position. Errors
    /// without a position (found EOF, recursion limit) are placed at `eof` or `fallback`.
    pub(crate) fn from_parser(
        e: ParserError,
        tokens: &[TokenWithSpan],
        eof: TokSpan,
        fallback: TokSpan,
    ) -> Self {
        // Past the nesting limit the parser fails, sometimes with another message (it tried
        // an alternative): name the real cause, where the nesting goes past the limit.
        if let Some(t) = crate::depth::past_limit(tokens) {
            return SqlError::at(crate::depth::too_deep(), t.span);
        }
        let message = match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
            ParserError::RecursionLimitExceeded => {
                return SqlError::at(crate::depth::too_deep(), fallback);
            }
        };
        if let Some((msg, line, column)) = split_position(&message) {
            let len = tokens
                .iter()
                .find(|t| t.span.start.line == line && t.span.start.column == column)
                .map_or(1, |t| {
                    if t.span.end.line == line {
                        t.span.end.column.saturating_sub(column)
                    } else {
                        u64::MAX / 2
                    }
                });
            return SqlError::new(msg, line, column, len);
        }
        let at = if message.ends_with("found: EOF") {
            eof
        } else {
            fallback
        };
        SqlError::at(message, at)
    }

    /// The error as text with the offending line and a caret under the offending token:
    ///
    /// ```text
    /// error: Expected: end of statement, found: GROUPBY at line 2, column 10
    ///   2 | WHERE x = 1 GROUPBY y
    ///     |             ^^^^^^^
    /// ```
    pub fn render(&self, sql: &str) -> String {
        let mut out = format!("error: {self}");
        let Some(text) = line_text(sql, self.line) else {
            return out;
        };
        let num = self.line.to_string();
        let blank = " ".repeat(num.len());
        let skip = usize::try_from(self.column.saturating_sub(1)).unwrap_or(usize::MAX);
        let prefix: String = text
            .chars()
            .take(skip)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let available = text.chars().count().saturating_sub(skip);
        let len = usize::try_from(self.len)
            .unwrap_or(usize::MAX)
            .min(available)
            .max(1);
        out.push_str(&format!(
            "\n  {num} | {text}\n  {blank} | {prefix}{}",
            "^".repeat(len)
        ));
        out
    }
}

/// Split `"<msg> at Line: X, Column: Y"` into its parts.
fn split_position(message: &str) -> Option<(String, u64, u64)> {
    let idx = message.rfind(" at Line: ")?;
    let rest = &message[idx + " at Line: ".len()..];
    let (line, column) = rest.split_once(", Column: ")?;
    let line: u64 = line.trim().parse().ok()?;
    let column: u64 = column.trim().parse().ok()?;
    if line == 0 {
        return None;
    }
    Some((message[..idx].to_string(), line, column))
}

/// A token placed at the end of a region, standing for its end.
pub(crate) fn eof_token(at: TokSpan) -> TokenWithSpan {
    TokenWithSpan {
        token: Token::EOF,
        span: TokSpan::new(at.end, at.end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sqlparser_positions() {
        assert_eq!(
            split_position("Expected: x, found: y at Line: 3, Column: 8"),
            Some(("Expected: x, found: y".to_string(), 3, 8))
        );
        assert_eq!(split_position("Expected: x, found: EOF"), None);
    }

    #[test]
    fn renders_caret_under_token() {
        let sql = "SELECT a\nFROM t WHERE x = 1 GROUPBY y";
        let e = SqlError::new("Expected: end of statement, found: GROUPBY", 2, 20, 7);
        assert_eq!(
            e.render(sql),
            "error: Expected: end of statement, found: GROUPBY at line 2, column 20\n  \
             2 | FROM t WHERE x = 1 GROUPBY y\n    |                    ^^^^^^^"
        );
    }

    #[test]
    fn render_clips_caret_and_survives_bad_positions() {
        let e = SqlError::new("m", 1, 3, 100);
        assert_eq!(
            e.render("abcd"),
            "error: m at line 1, column 3\n  1 | abcd\n    |   ^^"
        );
        // Past the end of the line: the caret stands right after the line.
        let e = SqlError::new("m", 1, 9, 1);
        assert_eq!(
            e.render("ab"),
            "error: m at line 1, column 9\n  1 | ab\n    |   ^"
        );
        let e = SqlError::new("m", 7, 1, 1);
        assert_eq!(e.render("ab"), "error: m at line 7, column 1");
    }
}
