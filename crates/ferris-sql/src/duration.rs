//! Durations: short forms (`5m`, `30s`, `500ms`, `1h`, `1d`) and intervals
//! (`INTERVAL '5' MINUTE`, `INTERVAL '5 minutes'`), in milliseconds.

use crate::cursor::Cursor;
use crate::error::SqlError;
use sqlparser::tokenizer::{Span as TokSpan, Token};

/// Milliseconds per unit name (short or long, singular or plural), case-insensitive.
fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    })
}

/// The units accepted, for error messages.
const UNITS: &str = "a duration unit (ms, s, m, h, d, MILLISECOND, SECOND, MINUTE, HOUR, DAY)";

/// `amount * unit` with overflow and syntax checks; `span` locates the amount.
fn to_ms(amount: &str, unit: i64, span: TokSpan) -> Result<i64, SqlError> {
    let n: i64 = amount
        .trim()
        .parse()
        .map_err(|_| SqlError::at(format!("invalid duration amount '{amount}'"), span))?;
    n.checked_mul(unit)
        .ok_or_else(|| SqlError::at(format!("duration '{amount}' is too large"), span))
}

/// Parse a duration at the cursor and return it in milliseconds with its span.
///
/// The tokenizer splits `5m` into `Number("5")` and `Word("m")`; `5 m` is accepted too.
pub(crate) fn parse_duration(c: &mut Cursor<'_>) -> Result<(i64, TokSpan), SqlError> {
    let start = c.peek().span;
    if c.eat_kw("INTERVAL") {
        let amount_tok = c.peek().clone();
        let amount = match &amount_tok.token {
            Token::SingleQuotedString(s) | Token::Number(s, _) if !c.at_end() => s.clone(),
            _ => return Err(c.error("a quoted interval amount, e.g. INTERVAL '5' MINUTE")),
        };
        c.next();
        // `INTERVAL '5 minutes'`: amount and unit inside the string.
        let mut parts = amount.split_whitespace();
        if let (Some(n), Some(u), None) = (parts.next(), parts.next(), parts.next()) {
            let unit = unit_ms(u).ok_or_else(|| {
                SqlError::at(format!("Expected: {UNITS}, found: {u}"), amount_tok.span)
            })?;
            let ms = to_ms(n, unit, amount_tok.span)?;
            return Ok((ms, TokSpan::new(start.start, amount_tok.span.end)));
        }
        let unit = match &c.peek().token {
            Token::Word(w) if w.quote_style.is_none() => unit_ms(&w.value),
            _ => None,
        }
        .ok_or_else(|| c.error(UNITS))?;
        c.next();
        let ms = to_ms(&amount, unit, amount_tok.span)?;
        return Ok((ms, TokSpan::new(start.start, c.prev_span().end)));
    }
    let amount = match &c.peek().token {
        Token::Number(n, _) if !c.at_end() => n.clone(),
        _ => return Err(c.error("a duration such as 5m, 30s or INTERVAL '5' MINUTE")),
    };
    c.next();
    let unit = match &c.peek().token {
        Token::Word(w) if w.quote_style.is_none() => unit_ms(&w.value),
        _ => None,
    }
    .ok_or_else(|| c.error(UNITS))?;
    c.next();
    let ms = to_ms(&amount, unit, start)?;
    Ok((ms, TokSpan::new(start.start, c.prev_span().end)))
}

/// The milliseconds of an interval literal's text and unit as the SQL parser gives them
/// (`'10'` and `SECOND`, or `'10 seconds'` and no unit); `None` for other forms (months,
/// years, fractions, compound units).
pub fn interval_text_ms(amount: &str, unit: Option<&str>) -> Option<i64> {
    let mut parts = amount.split_whitespace();
    let (n, u) = match (parts.next(), parts.next(), parts.next(), unit) {
        (Some(n), None, None, Some(u)) => (n, u),
        (Some(n), Some(u), None, None) => (n, u),
        _ => return None,
    };
    n.parse::<i64>().ok()?.checked_mul(unit_ms(u)?)
}

/// Parse a duration that must be greater than zero.
pub(crate) fn parse_positive_duration(c: &mut Cursor<'_>) -> Result<(i64, TokSpan), SqlError> {
    let (ms, span) = parse_duration(c)?;
    if ms <= 0 {
        return Err(SqlError::at("duration must be greater than 0", span));
    }
    Ok((ms, span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::tokenizer::{Location, Tokenizer};

    fn dur(sql: &str) -> Result<i64, SqlError> {
        let toks: Vec<_> = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .map_err(SqlError::from_tokenizer)?
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        let mut c = Cursor::new(&toks, Location::new(1, 1 + sql.chars().count() as u64));
        let (ms, _) = parse_positive_duration(&mut c)?;
        c.expect_end()?;
        Ok(ms)
    }

    #[test]
    fn short_forms() {
        assert_eq!(dur("5m"), Ok(300_000));
        assert_eq!(dur("1h"), Ok(3_600_000));
        assert_eq!(dur("30s"), Ok(30_000));
        assert_eq!(dur("500ms"), Ok(500));
        assert_eq!(dur("1d"), Ok(86_400_000));
        assert_eq!(dur("5 M"), Ok(300_000));
        assert_eq!(dur("2 minutes"), Ok(120_000));
    }

    #[test]
    fn interval_forms() {
        assert_eq!(dur("INTERVAL '5' MINUTE"), Ok(300_000));
        assert_eq!(dur("INTERVAL '5' MINUTES"), Ok(300_000));
        assert_eq!(dur("INTERVAL '1' HOUR"), Ok(3_600_000));
        assert_eq!(dur("INTERVAL '30' SECOND"), Ok(30_000));
        assert_eq!(dur("INTERVAL '500' MILLISECOND"), Ok(500));
        assert_eq!(dur("INTERVAL '1' DAY"), Ok(86_400_000));
        assert_eq!(dur("INTERVAL '5 minutes'"), Ok(300_000));
        assert_eq!(dur("interval 2 hours"), Ok(7_200_000));
    }

    #[test]
    fn bad_durations_have_positions() {
        let e = dur("0s").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.line, e.column, e.len),
            ("duration must be greater than 0", 1, 1, 2)
        );
        let e = dur("5x").unwrap_err();
        assert_eq!((e.line, e.column), (1, 2));
        assert!(e.message.ends_with("found: x"), "{}", e.message);
        let e = dur("INTERVAL '5' WEEK").unwrap_err();
        assert_eq!((e.line, e.column), (1, 14));
        let e = dur("1.5h").unwrap_err();
        assert_eq!(e.message, "invalid duration amount '1.5'");
        let e = dur("99999999999999999d").unwrap_err();
        assert_eq!(e.message, "duration '99999999999999999' is too large");
        let e = dur("5").unwrap_err();
        assert_eq!((e.line, e.column), (1, 2));
        assert!(e.message.ends_with("found: EOF"), "{}", e.message);
    }
}
