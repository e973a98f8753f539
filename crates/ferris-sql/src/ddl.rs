//! `CREATE STREAM` / `CREATE TABLE`: sources, sinks and continuous queries.

use crate::ast::{
    ColumnDef, CreateSink, CreateSource, CreateStreamAs, DataType, Ident, SourceKind, Span,
    Statement, WatermarkDef,
};
use crate::cursor::Cursor;
use crate::duration::parse_duration;
use crate::error::{SqlError, eof_token};
use crate::properties::parse_properties;
use crate::source::{Source, join};
use crate::streaming::parse_streaming_query;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// The parts of a `( ... )` source schema.
struct Schema {
    columns: Vec<ColumnDef>,
    primary_key: Vec<Ident>,
    watermark: Option<WatermarkDef>,
}

/// Parse a whole `CREATE ...` statement; `span` is the statement's.
pub(crate) fn parse_create(
    src: &Source<'_>,
    c: &mut Cursor<'_>,
    span: Span,
) -> Result<Statement, SqlError> {
    c.expect_kw("CREATE")?;
    let kind = if c.eat_kw("STREAM") {
        SourceKind::Stream
    } else if c.eat_kw("TABLE") {
        SourceKind::Table
    } else {
        return Err(c.error("STREAM or TABLE after CREATE"));
    };
    let name = c.ident()?;
    if c.peek().token == Token::LParen && !c.at_end() {
        let schema = parse_schema(c)?;
        let properties = if c.eat_kw("WITH") {
            parse_properties(c)?
        } else {
            Vec::new()
        };
        if c.is_kw_at(0, "AS") {
            return Err(SqlError::at(
                "a source with a column list cannot have AS <query>; \
                 write CREATE STREAM name AS SELECT ... without columns",
                c.peek().span,
            ));
        }
        c.expect_end()?;
        return Ok(Statement::CreateSource(CreateSource {
            kind,
            name,
            columns: schema.columns,
            primary_key: schema.primary_key,
            watermark: schema.watermark,
            properties,
            span,
        }));
    }
    if kind == SourceKind::Table {
        return Err(c.error("( and the column list of the table"));
    }
    let had_with = c.eat_kw("WITH");
    let mut properties = if had_with {
        parse_properties(c)?
    } else {
        Vec::new()
    };
    if c.eat_kw("AS") {
        let end = c.end_span().end;
        let (query, more) = parse_streaming_query(src, c.rest(), end, true)?;
        properties.extend(more);
        return Ok(Statement::CreateStreamAs(CreateStreamAs {
            name,
            query,
            properties,
            span,
        }));
    }
    if !had_with {
        return Err(c.error("(, WITH or AS"));
    }
    if !c.at_end() {
        return Err(c.error("AS or end of statement"));
    }
    Ok(Statement::CreateSink(CreateSink {
        name,
        properties,
        span,
    }))
}

/// Parse `( col TYPE [NOT NULL] [PRIMARY KEY], ..., [PRIMARY KEY (a, ..)], [WATERMARK FOR ..] )`.
fn parse_schema(c: &mut Cursor<'_>) -> Result<Schema, SqlError> {
    c.expect(&Token::LParen)?;
    let mut schema = Schema {
        columns: Vec::new(),
        primary_key: Vec::new(),
        watermark: None,
    };
    // Where a primary key was declared, to reject a second one.
    let mut pk_declared = false;
    loop {
        if c.is_kw_at(0, "WATERMARK") && c.is_kw_at(1, "FOR") {
            let at = c.peek().span;
            let wm = parse_watermark(c)?;
            if schema.watermark.replace(wm).is_some() {
                return Err(SqlError::at("duplicate WATERMARK declaration", at));
            }
        } else if c.is_kw_at(0, "PRIMARY") && c.is_kw_at(1, "KEY") {
            let at = c.peek().span;
            c.pos += 2;
            if std::mem::replace(&mut pk_declared, true) {
                return Err(SqlError::at("duplicate PRIMARY KEY declaration", at));
            }
            c.expect(&Token::LParen)?;
            schema.primary_key.push(c.ident()?);
            while c.eat(&Token::Comma) {
                schema.primary_key.push(c.ident()?);
            }
            c.expect(&Token::RParen)?;
        } else {
            let name = c.ident()?;
            let data_type = parse_data_type(c)?;
            let mut not_null = false;
            loop {
                if c.is_kw_at(0, "NOT") && c.is_kw_at(1, "NULL") {
                    c.pos += 2;
                    not_null = true;
                } else if c.eat_kw("NULL") {
                    not_null = false;
                } else if c.is_kw_at(0, "PRIMARY") && c.is_kw_at(1, "KEY") {
                    let at = c.peek().span;
                    c.pos += 2;
                    if std::mem::replace(&mut pk_declared, true) {
                        return Err(SqlError::at("duplicate PRIMARY KEY declaration", at));
                    }
                    schema.primary_key.push(name.clone());
                } else {
                    break;
                }
            }
            schema.columns.push(ColumnDef {
                span: join(name.span, c.prev_span()),
                name,
                data_type,
                not_null,
            });
        }
        if c.eat(&Token::Comma) {
            continue;
        }
        if c.eat(&Token::RParen) {
            break;
        }
        return Err(c.error(", or )"));
    }
    let declared = |id: &Ident| {
        schema
            .columns
            .iter()
            .any(|col| col.name.value.eq_ignore_ascii_case(&id.value))
    };
    let wm_col = schema.watermark.as_ref().map(|w| &w.column);
    for id in schema.primary_key.iter().chain(wm_col) {
        if !declared(id) {
            return Err(SqlError::at(
                format!("column {id} is not declared in this source"),
                id.span,
            ));
        }
    }
    Ok(schema)
}

/// Parse a column type with `sqlparser`, then move the cursor past it.
fn parse_data_type(c: &mut Cursor<'_>) -> Result<DataType, SqlError> {
    // The type ends before the next `,` or `)` at depth 0; hand over up to and including it.
    let rest = c.rest();
    let mut depth = 0i64;
    let mut stop = rest.len();
    for (i, t) in rest.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                stop = i + 1;
                break;
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                stop = i + 1;
                break;
            }
            _ => {}
        }
    }
    let slice = &rest[..stop];
    let eof = match slice.last() {
        Some(t) => eof_token(t.span),
        None => eof_token(c.end_span()),
    };
    let eof_span = eof.span;
    let mut tokens = slice.to_vec();
    tokens.push(eof);
    let mut parser = Parser::new(&GenericDialect {}).with_tokens_with_locations(tokens);
    let fallback = c.peek().span;
    let data_type = parser
        .parse_data_type()
        .map_err(|e| SqlError::from_parser(e, slice, eof_span, fallback))?;
    c.pos += parser.index().min(slice.len());
    Ok(data_type)
}

/// Parse `WATERMARK FOR col AS col [- <duration>]`.
fn parse_watermark(c: &mut Cursor<'_>) -> Result<WatermarkDef, SqlError> {
    let start = c.expect_kw("WATERMARK")?;
    c.expect_kw("FOR")?;
    let column = c.ident()?;
    c.expect_kw("AS")?;
    let expr_col = c.ident()?;
    if !expr_col.value.eq_ignore_ascii_case(&column.value) {
        return Err(SqlError::at(
            format!(
                "the WATERMARK expression must be {column} or {column} - INTERVAL '<n>' <unit>"
            ),
            expr_col.span,
        ));
    }
    let max_out_of_orderness_ms = if c.eat(&Token::Minus) {
        parse_duration(c)?.0
    } else {
        0
    };
    Ok(WatermarkDef {
        column,
        max_out_of_orderness_ms,
        span: join(start, c.prev_span()),
    })
}
