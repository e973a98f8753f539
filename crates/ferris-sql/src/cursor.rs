//! A cursor over the (whitespace-free) tokens of one statement, for the hand-written parts
//! of the dialect.

use crate::error::{SqlError, eof_token};
use sqlparser::ast::Ident;
use sqlparser::tokenizer::{Location as TokLocation, Span as TokSpan, Token, TokenWithSpan};

/// A position in a token slice; past the end it yields an EOF token placed at `end`.
pub(crate) struct Cursor<'a> {
    /// The tokens (no whitespace).
    pub(crate) toks: &'a [TokenWithSpan],
    /// Index of the next token.
    pub(crate) pos: usize,
    /// Stand-in for the end of the slice.
    eof: TokenWithSpan,
}

/// Whether `tok` is the unquoted word `kw` (case-insensitive).
pub(crate) fn is_word(tok: &Token, kw: &str) -> bool {
    matches!(tok, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `toks`; `end` is where the region ends.
    pub(crate) fn new(toks: &'a [TokenWithSpan], end: TokLocation) -> Self {
        Cursor {
            toks,
            pos: 0,
            eof: eof_token(TokSpan::new(end, end)),
        }
    }

    /// The token `n` ahead (EOF past the end).
    pub(crate) fn peek_nth(&self, n: usize) -> &TokenWithSpan {
        self.toks.get(self.pos + n).unwrap_or(&self.eof)
    }

    /// The next token (EOF past the end).
    pub(crate) fn peek(&self) -> &TokenWithSpan {
        self.peek_nth(0)
    }

    /// The stand-in EOF token's span (the end of the region).
    pub(crate) fn end_span(&self) -> TokSpan {
        self.eof.span
    }

    /// The tokens not consumed yet.
    pub(crate) fn rest(&self) -> &'a [TokenWithSpan] {
        self.toks.get(self.pos..).unwrap_or_default()
    }

    /// Whether every token was consumed.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    /// Consume and return the next token.
    pub(crate) fn next(&mut self) -> &TokenWithSpan {
        let t = self.toks.get(self.pos).unwrap_or(&self.eof);
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// The span of the last consumed token (or the region end).
    pub(crate) fn prev_span(&self) -> TokSpan {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(self.eof.span, |t| t.span)
    }

    /// Whether the token `n` ahead is the unquoted word `kw`.
    pub(crate) fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        is_word(&self.peek_nth(n).token, kw)
    }

    /// Consume the word `kw` if it is next.
    pub(crate) fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw_at(0, kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Consume `tok` if it is next.
    pub(crate) fn eat(&mut self, tok: &Token) -> bool {
        let hit = &self.peek().token == tok && !self.at_end();
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// An `Expected: <what>, found: <next token>` error at the next token.
    pub(crate) fn error(&self, expected: &str) -> SqlError {
        SqlError::expected(expected, self.peek())
    }

    /// Consume the word `kw` or fail.
    pub(crate) fn expect_kw(&mut self, kw: &str) -> Result<TokSpan, SqlError> {
        if self.eat_kw(kw) {
            Ok(self.prev_span())
        } else {
            Err(self.error(kw))
        }
    }

    /// Consume `tok` or fail.
    pub(crate) fn expect(&mut self, tok: &Token) -> Result<TokSpan, SqlError> {
        if self.eat(tok) {
            Ok(self.prev_span())
        } else {
            Err(self.error(&tok.to_string()))
        }
    }

    /// Fail unless every token was consumed.
    pub(crate) fn expect_end(&self) -> Result<(), SqlError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error("end of statement"))
        }
    }

    /// An identifier (quoted or not).
    pub(crate) fn ident(&mut self) -> Result<Ident, SqlError> {
        match &self.peek().token {
            Token::Word(w) if !self.at_end() => {
                let ident = Ident {
                    value: w.value.clone(),
                    quote_style: w.quote_style,
                    span: self.peek().span,
                };
                self.pos += 1;
                Ok(ident)
            }
            _ => Err(self.error("identifier")),
        }
    }

    /// A string literal, unquoted.
    pub(crate) fn string(&mut self) -> Result<String, SqlError> {
        match &self.peek().token {
            Token::SingleQuotedString(s) if !self.at_end() => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("a string literal")),
        }
    }

    /// `( 'a', 'b', ... )`: a parenthesised list of string literals.
    pub(crate) fn string_list(&mut self) -> Result<Vec<String>, SqlError> {
        self.expect(&Token::LParen)?;
        let mut out = vec![self.string()?];
        while self.eat(&Token::Comma) {
            out.push(self.string()?);
        }
        self.expect(&Token::RParen)?;
        Ok(out)
    }

    /// At a `(`: consume up to and including its matching `)` and return the index range of
    /// the tokens between them.
    pub(crate) fn group(&mut self) -> Result<std::ops::Range<usize>, SqlError> {
        let open = self.expect(&Token::LParen)?;
        let start = self.pos;
        let mut depth = 1usize;
        while let Some(t) = self.toks.get(self.pos) {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(start..self.pos - 1);
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(SqlError::at("unclosed parenthesis", open))
    }
}

/// The text of a token as written, for property and option values: strings unquoted, words
/// and numbers verbatim.
pub(crate) fn token_value(tok: &Token) -> Option<String> {
    match tok {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(s.clone()),
        Token::Word(w) => Some(w.value.clone()),
        Token::Number(n, _) => Some(n.clone()),
        _ => None,
    }
}
