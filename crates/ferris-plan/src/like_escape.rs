//! `LIKE … ESCAPE 'c'` with any escape character, as Flink, ksqlDB and PostgreSQL take it.
//! DataFusion runs LIKE with the backslash escape only, and answered any other one with an
//! execution-error string. A literal pattern is translated at planning to the backslash
//! spelling: the escape character followed by a character makes that character literal; a
//! backslash of the pattern becomes a literal backslash. A pattern that is not a literal, an
//! escape that is not one character, or a pattern that ends with the escape character is an
//! error where written.

use crate::error::{PlanError, span_of};
use sqlparser::ast::{Expr, Spanned, Value, ValueWithSpan};
use std::ops::ControlFlow;

/// Rewrites every LIKE / ILIKE with an escape character other than the backslash in `query`.
pub(crate) fn rewrite(query: &mut sqlparser::ast::Query) -> Result<(), PlanError> {
    let flow = sqlparser::ast::visit_expressions_mut(query, |e| {
        let (pattern, escape_char) = match e {
            Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } => (pattern, escape_char),
            _ => return ControlFlow::Continue(()),
        };
        match translate(pattern, escape_char) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Rewrites one pattern and its escape (left as they are without an escape or with the
/// backslash).
fn translate(pattern: &mut Expr, escape_char: &mut Option<ValueWithSpan>) -> Result<(), PlanError> {
    let Some(escape) = escape_char.as_ref() else {
        return Ok(());
    };
    let at = span_of(escape.span());
    let c = match &escape.value {
        Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
        _ => None,
    }
    .ok_or_else(|| PlanError::at("ESCAPE takes one character, e.g. ESCAPE '!'", at))?;
    if c == '\\' {
        return Ok(());
    }
    let pattern_at = span_of(pattern.span());
    let Expr::Value(v) = pattern else {
        return Err(PlanError::at(
            format!(
                "LIKE … ESCAPE '{c}' takes a literal pattern (only the backslash escape works with a computed one)"
            ),
            pattern_at,
        ));
    };
    let Value::SingleQuotedString(text) = &mut v.value else {
        return Err(PlanError::at(
            "the LIKE pattern is not a string",
            pattern_at,
        ));
    };
    *text = with_backslash(text, c).map_err(|why| PlanError::at(why, pattern_at))?;
    if let Some(e) = escape_char.as_mut() {
        e.value = Value::SingleQuotedString("\\".to_string());
    }
    Ok(())
}

/// `pattern` written with escape `escape`, in the backslash spelling.
fn with_backslash(pattern: &str, escape: char) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let literal = |out: &mut String, c: char| {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    };
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(n) => literal(&mut out, n),
                None => {
                    return Err(format!(
                        "the LIKE pattern '{pattern}' ends with its escape character '{escape}'"
                    ));
                }
            }
        } else if c == '\\' {
            literal(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_escape_becomes_the_backslash_spelling() {
        assert_eq!(with_backslash("A!_%", '!').unwrap(), "A\\_%");
        assert_eq!(with_backslash("100!%", '!').unwrap(), "100\\%");
        assert_eq!(with_backslash("a!!b", '!').unwrap(), "a!b");
        assert_eq!(with_backslash("c:\\dir_%", '#').unwrap(), "c:\\\\dir_%");
        assert_eq!(with_backslash("x#y", '#').unwrap(), "xy");
        assert_eq!(with_backslash("50%%", '%').unwrap(), "50\\%");
        assert_eq!(
            with_backslash("ab!", '!').unwrap_err(),
            "the LIKE pattern 'ab!' ends with its escape character '!'"
        );
    }
}
