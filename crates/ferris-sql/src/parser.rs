//! Splitting an application file into statements and dispatching on the statement head.

use crate::ast::{InsertInto, Statement};
use crate::cursor::{Cursor, is_word};
use crate::ddl::parse_create;
use crate::error::SqlError;
use crate::explain::parse_explain;
use crate::source::{Source, join};
use crate::streaming::parse_streaming_query;
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// Parse an application file: statements separated by `;`, with `--` and `/* */` comments.
/// Empty statements are ignored.
///
/// ```
/// use ferris_sql::ast::Statement;
/// let stmts = ferris_sql::parse_statements(
///     "CREATE STREAM alerts WITH ('connector' = 'stdin');\n\
///      SELECT symbol FROM trades WINDOW TUMBLING(5m) GROUP BY symbol EMIT CHANGES;",
/// )
/// .unwrap();
/// assert!(matches!(stmts[0], Statement::CreateSink(_)));
/// assert!(matches!(stmts[1], Statement::Select(_)));
/// ```
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>, SqlError> {
    // The parser recurses once per nesting level (up to the depth limit).
    crate::depth::on_large_stack(|| parse_here(sql))
}

fn parse_here(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let src = Source::new(sql);
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(SqlError::from_tokenizer)?;
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    tokens
        .split(|t| t.token == Token::SemiColon)
        .filter(|stmt| !stmt.is_empty())
        .map(|stmt| parse_statement(&src, stmt))
        .collect()
}

/// Parse one statement from its (non-empty, whitespace-free) tokens.
fn parse_statement(src: &Source<'_>, toks: &[TokenWithSpan]) -> Result<Statement, SqlError> {
    let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
        return Err(SqlError::new("empty statement", 1, 1, 1));
    };
    let span = join(first.span, last.span);
    let end = last.span.end;
    let mut c = Cursor::new(toks, end);
    let head = &first.token;
    if is_word(head, "CREATE") {
        parse_create(src, &mut c, span)
    } else if is_word(head, "EXPLAIN") {
        parse_explain(src, &mut c, span).map(Statement::Explain)
    } else if is_word(head, "INSERT") {
        c.expect_kw("INSERT")?;
        c.expect_kw("INTO")?;
        let target = c.ident()?;
        let (query, _) = parse_streaming_query(src, c.rest(), end, false)?;
        Ok(Statement::InsertInto(InsertInto {
            target,
            query,
            span,
        }))
    } else if ["SELECT", "WITH", "VALUES"]
        .iter()
        .any(|k| is_word(head, k))
        || *head == Token::LParen
    {
        let (query, _) = parse_streaming_query(src, toks, end, false)?;
        Ok(Statement::Select(query))
    } else {
        Err(c.error("CREATE, INSERT, SELECT, WITH or EXPLAIN"))
    }
}
