//! Streaming queries: takes the streaming clauses (`WINDOW TUMBLING(..)`, `EMIT ..`, a
//! trailing `WITH (..)`) out of a query's tokens and hands the rest to `sqlparser`.

use crate::ast::{
    EmitMode, EmitSpec, Property, StreamingQuery, SystemTimeAsOf, WindowKind, WindowSpec,
};
use crate::cursor::{Cursor, is_word};
use crate::duration::{parse_duration, parse_positive_duration};
use crate::error::{SqlError, eof_token};
use crate::properties::parse_properties;
use crate::source::{Source, join};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location as TokLocation, Span as TokSpan, Token, TokenWithSpan};

/// Whether `toks[i..]` starts a streaming window: `WINDOW <word> (`, e.g. `WINDOW
/// TUMBLING(5m)`. A standard named window reads `WINDOW w AS (...)` and is left alone; an
/// unknown `<word>` is reported by [`parse_window`].
fn starts_window(toks: &[TokenWithSpan], i: usize) -> bool {
    let tok = |n: usize| toks.get(i + n).map(|t| &t.token);
    matches!(tok(0), Some(t) if is_word(t, "WINDOW"))
        && matches!(tok(1), Some(Token::Word(w)) if w.quote_style.is_none())
        && matches!(tok(2), Some(Token::LParen))
}

/// The emit mode if `toks[i..]` starts `EMIT CHANGES` or `EMIT FINAL`.
fn emit_at(toks: &[TokenWithSpan], i: usize) -> Option<EmitMode> {
    if !toks.get(i).is_some_and(|t| is_word(&t.token, "EMIT")) {
        return None;
    }
    let next = &toks.get(i + 1)?.token;
    if is_word(next, "CHANGES") {
        Some(EmitMode::Changes)
    } else if is_word(next, "FINAL") {
        Some(EmitMode::Final)
    } else {
        None
    }
}

/// Whether `token` is the `TABLE` keyword before a window table-valued function's table
/// (`TUMBLE(TABLE bid, …)`, `HOP(DATA => TABLE bid, …)`), after the tokens `kept` so far.
/// It is dropped, so that `sqlparser` reads the table as a name; the planner reads the
/// function (see `ferris_plan`'s window TVFs).
fn is_tvf_table_keyword(kept: &[TokenWithSpan], token: &Token) -> bool {
    if !is_word(token, "TABLE") {
        return false;
    }
    let back = |n: usize| kept.len().checked_sub(n).map(|i| &kept[i].token);
    match (back(2), back(1)) {
        (_, Some(Token::RArrow)) => true,
        (Some(Token::Word(w)), Some(Token::LParen)) => ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
            .iter()
            .any(|f| w.value.eq_ignore_ascii_case(f)),
        _ => false,
    }
}

/// `FOR SYSTEM_TIME AS OF <column> | PROCTIME()` at the start of `toks`, after the table
/// name that ends `kept`: the clause and the number of tokens it takes.
fn system_time_as_of(
    kept: &[TokenWithSpan],
    toks: &[TokenWithSpan],
    end: TokLocation,
) -> Result<Option<(SystemTimeAsOf, usize)>, SqlError> {
    let word = |n: usize, w: &str| toks.get(n).is_some_and(|t| is_word(&t.token, w));
    if !(word(0, "FOR") && word(1, "SYSTEM_TIME") && word(2, "AS") && word(3, "OF")) {
        return Ok(None);
    }
    let table = match kept.last().map(|t| &t.token) {
        Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
        _ => {
            return Err(SqlError::at(
                "FOR SYSTEM_TIME AS OF follows a table name: FROM s JOIN t FOR SYSTEM_TIME AS \
                 OF s.ts ON …",
                toks[0].span,
            ));
        }
    };
    let mut c = Cursor::new(&toks[4..], end);
    let column = if c.eat_kw("PROCTIME") {
        c.expect(&Token::LParen)?;
        c.expect(&Token::RParen)?;
        None
    } else {
        let mut parts = vec![c.ident()?.value];
        while c.eat(&Token::Period) {
            parts.push(c.ident()?.value);
        }
        Some(parts.join(".").to_ascii_lowercase())
    };
    let span = join(toks[0].span, c.prev_span());
    Ok(Some((
        SystemTimeAsOf {
            table,
            column,
            span,
        },
        4 + c.pos,
    )))
}

/// Parse `WINDOW TUMBLING(d)`, `WINDOW SLIDING(size, advance)` or `WINDOW SESSION(gap)`, also
/// in ksqlDB's spelling (`TUMBLING(SIZE d)`, `HOPPING(SIZE d, ADVANCE BY d)`), each with an
/// optional last `GRACE PERIOD d`.
pub(crate) fn parse_window(c: &mut Cursor<'_>) -> Result<WindowSpec, SqlError> {
    let start = c.expect_kw("WINDOW")?;
    let size = |c: &mut Cursor<'_>| {
        c.eat_kw("SIZE");
        parse_positive_duration(c)
    };
    let kind = if c.eat_kw("TUMBLING") {
        c.expect(&Token::LParen)?;
        let (size_ms, _) = size(c)?;
        WindowKind::Tumbling { size_ms }
    } else if c.eat_kw("SLIDING") || c.eat_kw("HOPPING") {
        c.expect(&Token::LParen)?;
        let (size_ms, _) = size(c)?;
        c.expect(&Token::Comma)?;
        if c.eat_kw("ADVANCE") {
            c.expect_kw("BY")?;
        }
        let (advance_ms, advance_span) = parse_positive_duration(c)?;
        if advance_ms > size_ms {
            return Err(SqlError::at(
                format!(
                    "SLIDING advance ({advance_ms} ms) must not exceed the window size ({size_ms} ms)"
                ),
                advance_span,
            ));
        }
        WindowKind::Sliding {
            size_ms,
            advance_ms,
        }
    } else if c.eat_kw("SESSION") {
        c.expect(&Token::LParen)?;
        let (gap_ms, _) = size(c)?;
        WindowKind::Session { gap_ms }
    } else {
        return Err(c.error("TUMBLING, SLIDING, HOPPING or SESSION"));
    };
    let grace = if c.eat(&Token::Comma) {
        let at = c.expect_kw("GRACE")?;
        c.expect_kw("PERIOD")?;
        let (ms, span) = parse_duration(c)?;
        if ms < 0 {
            return Err(SqlError::at("a GRACE PERIOD must not be negative", span));
        }
        Some((ms, join(at, span)))
    } else {
        None
    };
    let close = c.expect(&Token::RParen)?;
    Ok(WindowSpec {
        kind,
        grace,
        span: join(start, close),
    })
}

/// Parse the query in `toks` (non-empty or an error at `end`): the streaming clauses at paren
/// depth 0 are taken out, the rest goes to `sqlparser`. A trailing `WITH ('k' = 'v', ...)` is
/// returned as sink properties if `allow_sink_props`, else it is an error.
pub(crate) fn parse_streaming_query(
    src: &Source<'_>,
    toks: &[TokenWithSpan],
    end: TokLocation,
    allow_sink_props: bool,
) -> Result<(StreamingQuery, Vec<Property>), SqlError> {
    let Some(first) = toks.first() else {
        return Err(SqlError::expected(
            "a query",
            &eof_token(TokSpan::new(end, end)),
        ));
    };
    let mut keep = Vec::with_capacity(toks.len() + 1);
    let mut window: Option<WindowSpec> = None;
    let mut emit: Option<EmitSpec> = None;
    let mut props = Vec::new();
    let mut as_of = Vec::new();
    let mut body_end = toks.len();
    let mut depth = 0i64;
    let mut i = 0;
    while let Some(t) = toks.get(i) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if starts_window(toks, i) {
            if depth != 0 {
                return Err(SqlError::at(
                    "a streaming WINDOW clause is only allowed in the outermost query",
                    t.span,
                ));
            }
            if window.is_some() {
                return Err(SqlError::at("duplicate WINDOW clause", t.span));
            }
            let mut c = Cursor::new(&toks[i..], end);
            window = Some(parse_window(&mut c)?);
            i += c.pos;
            continue;
        }
        if depth == 0 {
            if let Some(mode) = emit_at(toks, i) {
                if emit.is_some() {
                    return Err(SqlError::at("duplicate EMIT clause", t.span));
                }
                let span = join(t.span, toks[i + 1].span);
                emit = Some(EmitSpec { mode, span });
                i += 2;
                continue;
            }
            let paren_next = matches!(toks.get(i + 1).map(|t| &t.token), Some(Token::LParen));
            if i > 0 && is_word(&t.token, "WITH") && paren_next {
                if !allow_sink_props {
                    return Err(SqlError::at(
                        "WITH (...) after a query is only allowed in CREATE STREAM name AS <query> WITH (...)",
                        t.span,
                    ));
                }
                let mut c = Cursor::new(&toks[i + 1..], end);
                props = parse_properties(&mut c)?;
                c.expect_end()?;
                body_end = i;
                break;
            }
        }
        if is_tvf_table_keyword(&keep, &t.token) {
            i += 1;
            continue;
        }
        if let Some((clause, used)) = system_time_as_of(&keep, &toks[i..], end)? {
            as_of.push(clause);
            i += used;
            continue;
        }
        keep.push(t.clone());
        i += 1;
    }
    let last = toks[..body_end].last().unwrap_or(first);
    let query_span = join(first.span, last.span);
    let eof = eof_token(last.span);
    let eof_span = eof.span;
    keep.push(eof);
    let mut parser = Parser::new(&GenericDialect {})
        .with_recursion_limit(crate::depth::MAX_EXPR_DEPTH)
        .with_tokens_with_locations(keep);
    let query = parser
        .parse_query()
        .map_err(|e| SqlError::from_parser(e, toks, eof_span, first.span))?;
    crate::depth::check_query(&query)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        // Past the nesting limit the parser stops early rather than failing.
        if let Some(t) = crate::depth::past_limit(toks) {
            return Err(SqlError::at(crate::depth::too_deep(), t.span));
        }
        return Err(SqlError::expected("end of statement", &next));
    }
    Ok((
        StreamingQuery {
            query,
            window,
            emit,
            as_of,
            text: src.slice(query_span).to_string(),
            span: query_span,
        },
        props,
    ))
}
