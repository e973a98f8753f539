//! `WITH ('key' = 'value', ...)` property lists.

use crate::ast::Property;
use crate::cursor::{Cursor, token_value};
use crate::error::SqlError;
use crate::source::join;
use sqlparser::tokenizer::Token;

/// Parse `( key = value, ... )` at the cursor. Keys may be quoted strings or identifiers;
/// values strings, numbers (optionally negative), booleans or words. An empty list is allowed.
pub(crate) fn parse_properties(c: &mut Cursor<'_>) -> Result<Vec<Property>, SqlError> {
    c.expect(&Token::LParen)?;
    let mut props = Vec::new();
    if c.eat(&Token::RParen) {
        return Ok(props);
    }
    loop {
        let key_tok = c.peek().clone();
        let key = match &key_tok.token {
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) | Token::Word(_)
                if !c.at_end() =>
            {
                token_value(&key_tok.token).unwrap_or_default()
            }
            _ => return Err(c.error("a property key such as 'connector'")),
        };
        c.next();
        c.expect(&Token::Eq)?;
        let negative = c.eat(&Token::Minus);
        let value_tok = c.peek().clone();
        let value = match &value_tok.token {
            Token::Number(n, _) if !c.at_end() => {
                if negative {
                    format!("-{n}")
                } else {
                    n.clone()
                }
            }
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) | Token::Word(_)
                if !c.at_end() && !negative =>
            {
                token_value(&value_tok.token).unwrap_or_default()
            }
            _ => return Err(c.error("a property value such as 'file', 5 or true")),
        };
        c.next();
        props.push(Property {
            key,
            value,
            span: join(key_tok.span, value_tok.span),
        });
        if c.eat(&Token::Comma) {
            continue;
        }
        if c.eat(&Token::RParen) {
            return Ok(props);
        }
        return Err(c.error(", or )"));
    }
}
