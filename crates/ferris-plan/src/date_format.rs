//! `DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm:ss')` with Java date patterns, as Flink and ksqlDB users
//! write them. DataFusion's `date_format` takes chrono's `%Y-%m-%d`, so a Java pattern came
//! back as its own text — a wrong answer. A literal pattern without `%` is translated to
//! chrono's spelling at planning; one with a letter that has no equivalent is an error at the
//! pattern. A pattern with `%` is chrono's already and is left as it is.

use crate::error::{PlanError, span_of};
use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, Value};
use std::ops::ControlFlow;

/// Translates the literal Java patterns of every `DATE_FORMAT` call in `query`.
pub(crate) fn rewrite(query: &mut sqlparser::ast::Query) -> Result<(), PlanError> {
    let flow = sqlparser::ast::visit_expressions_mut(query, |e| {
        let Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        if !f.name.to_string().eq_ignore_ascii_case("date_format") {
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &mut f.args else {
            return ControlFlow::Continue(());
        };
        let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(pattern))) = list.args.get_mut(1)
        else {
            return ControlFlow::Continue(());
        };
        let at = span_of(pattern.span());
        if let Expr::Value(v) = pattern
            && let Value::SingleQuotedString(text) = &mut v.value
            && !text.contains('%')
        {
            match java_to_chrono(text) {
                Ok(chrono) => *text = chrono,
                Err(why) => {
                    return ControlFlow::Break(PlanError::at(
                        format!("DATE_FORMAT pattern '{text}': {why}"),
                        at,
                    ));
                }
            }
        }
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// A Java (`SimpleDateFormat` / `DateTimeFormatter`) pattern in chrono's spelling.
fn java_to_chrono(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let literal = |out: &mut String, c: char| {
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
    };
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c == '\'' {
            // '' is a quote; 'text' is text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err("a quote is not closed".into()),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        out.push('\'');
                        j += 2;
                    }
                    Some('\'') => {
                        j += 1;
                        break;
                    }
                    Some(&x) => {
                        literal(&mut out, x);
                        j += 1;
                    }
                }
            }
            i = j;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal(&mut out, c);
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|&&x| x == c).count();
        let spec = match (c, n) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M' | 'L', 1) => "%-m",
            ('M' | 'L', 2) => "%m",
            ('M' | 'L', 3) => "%b",
            ('M' | 'L', _) => "%B",
            ('d', 1) => "%-d",
            ('d', 2) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', 2) => "%H",
            ('h', 1) => "%-I",
            ('h', 2) => "%I",
            ('m', 1) => "%-M",
            ('m', 2) => "%M",
            ('s', 1) => "%-S",
            ('s', 2) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('a', 1) => "%p",
            ('E', 1..=3) => "%a",
            ('E', 4) => "%A",
            ('Z', 1..=3) => "%z",
            ('X', 3) => "%:z",
            _ => {
                return Err(format!(
                    "the letter '{c}' {n} time{} has no equivalent here (use y, M, d, D, H, h, m, \
                     s, S (3, 6 or 9 times), a, E, Z, or 'quoted text')",
                    if n == 1 { "" } else { "s" }
                ));
            }
        };
        out.push_str(spec);
        i += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::java_to_chrono;

    #[test]
    fn java_patterns_become_chrono_patterns() {
        assert_eq!(java_to_chrono("yyyy-MM-dd").as_deref(), Ok("%Y-%m-%d"));
        assert_eq!(
            java_to_chrono("yyyy-MM-dd HH:mm:ss.SSS").as_deref(),
            Ok("%Y-%m-%d %H:%M:%S.%3f")
        );
        assert_eq!(
            java_to_chrono("EEE, d MMM yy h a").as_deref(),
            Ok("%a, %-d %b %y %-I %p")
        );
        assert_eq!(
            java_to_chrono("'week' D, 100%").as_deref(),
            Ok("week %j, 100%%")
        );
        assert_eq!(java_to_chrono("HH 'o''clock'").as_deref(), Ok("%H o'clock"));
        assert_eq!(java_to_chrono("'it''s' yyyy").as_deref(), Ok("it's %Y"));
        // Unquoted letters are pattern letters.
        assert!(java_to_chrono("it's").is_err());
        assert!(java_to_chrono("yyyy-QQ").is_err());
        assert!(java_to_chrono("'open").is_err());
    }
}
