//! The `EXPLAIN` family of statements.

use crate::ast::{Explain, ExplainTarget, Span, StreamingQuery};
use crate::cursor::{Cursor, is_word, token_value};
use crate::error::SqlError;
use crate::source::{Source, join};
use crate::streaming::parse_streaming_query;
use sqlparser::tokenizer::Token;

/// Whether the cursor stands at an option list `(KEY value, ...)` rather than at a
/// parenthesised query.
fn at_options(c: &Cursor<'_>) -> bool {
    c.peek().token == Token::LParen
        && matches!(&c.peek_nth(1).token, Token::Word(_))
        && !["SELECT", "WITH", "VALUES"]
            .iter()
            .any(|k| is_word(&c.peek_nth(1).token, k))
}

/// Parse `(KEY [value], ...)` if present; keys upper-cased, values as written (a key without
/// a value means `true`).
fn parse_options(
    c: &mut Cursor<'_>,
    into: &mut Vec<(String, String)>,
    spans: &mut Vec<Span>,
) -> Result<(), SqlError> {
    if !at_options(c) {
        return Ok(());
    }
    c.expect(&Token::LParen)?;
    loop {
        let ident = c.ident()?;
        let key = ident.value.to_ascii_uppercase();
        let value = match &c.peek().token {
            Token::Comma | Token::RParen => "true".to_string(),
            t => match token_value(t) {
                Some(v) if !c.at_end() => {
                    c.next();
                    v
                }
                _ => return Err(c.error("an option value such as true or JSON")),
            },
        };
        into.push((key, value));
        spans.push(join(ident.span, c.prev_span()));
        if c.eat(&Token::Comma) {
            continue;
        }
        c.expect(&Token::RParen)?;
        return Ok(());
    }
}

/// The rest of the statement as a query.
fn rest_query(src: &Source<'_>, c: &mut Cursor<'_>) -> Result<StreamingQuery, SqlError> {
    let end = c.end_span().end;
    let (q, _) = parse_streaming_query(src, c.rest(), end, false)?;
    c.pos = c.toks.len();
    Ok(q)
}

/// Parse `WITH QUERIES ('name' AS (query), ...)`.
fn parse_query_list(
    src: &Source<'_>,
    c: &mut Cursor<'_>,
) -> Result<Vec<(String, StreamingQuery)>, SqlError> {
    c.expect_kw("WITH")?;
    c.expect_kw("QUERIES")?;
    c.expect(&Token::LParen)?;
    let mut out = Vec::new();
    loop {
        let name = c.string()?;
        c.expect_kw("AS")?;
        let range = c.group()?;
        let close = c.prev_span();
        let inner = &c.toks[range];
        if let (Some(first), Some(last)) = (inner.first(), inner.last())
            && inner.iter().all(|t| t.token == Token::Period)
        {
            return Err(SqlError::at(
                format!(
                    "'{name}' AS (...) is a placeholder: write the query inside the parentheses"
                ),
                sqlparser::tokenizer::Span::new(first.span.start, last.span.end),
            ));
        }
        let (q, _) = parse_streaming_query(src, inner, close.start, false)?;
        out.push((name, q));
        if c.eat(&Token::Comma) {
            continue;
        }
        c.expect(&Token::RParen)?;
        return Ok(out);
    }
}

/// Parse a whole `EXPLAIN ...` statement; `span` is the statement's.
pub(crate) fn parse_explain(
    src: &Source<'_>,
    c: &mut Cursor<'_>,
    span: Span,
) -> Result<Explain, SqlError> {
    c.expect_kw("EXPLAIN")?;
    let mut options = Vec::new();
    let mut option_spans = Vec::new();
    parse_options(c, &mut options, &mut option_spans)?;
    let target = if c.eat_kw("TOPOLOGY") {
        parse_options(c, &mut options, &mut option_spans)?;
        ExplainTarget::Topology(rest_query(src, c)?)
    } else if c.eat_kw("MULTI_QUERY") {
        parse_options(c, &mut options, &mut option_spans)?;
        ExplainTarget::MultiQuery(parse_query_list(src, c)?)
    } else if c.eat_kw("SHARED_RESOURCES") {
        parse_options(c, &mut options, &mut option_spans)?;
        c.expect_kw("FOR")?;
        c.expect_kw("QUERIES")?;
        ExplainTarget::SharedResources(c.string_list()?)
    } else if c.eat_kw("LINEAGE") {
        parse_options(c, &mut options, &mut option_spans)?;
        c.expect_kw("FROM")?;
        c.expect_kw("SOURCE")?;
        let source = c.string()?;
        c.expect_kw("THROUGH")?;
        c.expect_kw("QUERIES")?;
        let queries = c.string_list()?;
        ExplainTarget::Lineage { source, queries }
    } else if c.eat_kw("IMPACT") {
        parse_options(c, &mut options, &mut option_spans)?;
        c.expect_kw("FOR")?;
        c.expect_kw("QUERY")?;
        let query = c.string()?;
        c.expect_kw("CHANGE")?;
        c.expect_kw("TYPE")?;
        let change_type = c.string()?;
        let description = if c.eat_kw("CHANGE") {
            c.expect_kw("DESCRIPTION")?;
            Some(c.string()?)
        } else {
            None
        };
        ExplainTarget::Impact {
            query,
            change_type,
            description,
        }
    } else if c.eat_kw("OPTIMIZATION_OPPORTUNITIES") {
        parse_options(c, &mut options, &mut option_spans)?;
        c.expect_kw("FOR")?;
        c.expect_kw("QUERY_GROUP")?;
        ExplainTarget::OptimizationOpportunities(c.string()?)
    } else if c.eat_kw("DIFF") {
        parse_options(c, &mut options, &mut option_spans)?;
        c.expect_kw("QUERY")?;
        let query = c.string()?;
        c.expect_kw("BETWEEN")?;
        c.expect_kw("ENVIRONMENTS")?;
        let environments = c.string_list()?;
        ExplainTarget::Diff {
            query,
            environments,
        }
    } else {
        ExplainTarget::Plan(rest_query(src, c)?)
    };
    c.expect_end()?;
    Ok(Explain {
        options,
        option_spans,
        target,
        span,
    })
}
