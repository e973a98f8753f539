//! Window table-valued functions in Flink's spelling: `FROM TABLE(TUMBLE(TABLE t,
//! DESCRIPTOR(ts), INTERVAL '10' SECOND))`, `HOP(TABLE t, DESCRIPTOR(ts), slide, size)` and
//! `SESSION(TABLE t, DESCRIPTOR(ts), gap)`, positional or named (`DATA =>`, `TIMECOL =>`,
//! `SIZE =>`, `SLIDE =>`, `GAP =>`), with the columns `window_start`, `window_end` and
//! `window_time` (the end less 1 ms, Flink's rowtime of a window).
//!
//! A query that groups by `window_start, window_end` is the windowed aggregation of the
//! `WINDOW` clause and is planned as one: the function's window becomes the query's window
//! and the three columns read the aggregation's bounds. A query over `TUMBLE` without
//! `GROUP BY` tags each row with its window (computed from its event time). What the engine
//! cannot run yet is a positioned error: `CUMULATE`, `HOP` and `SESSION` without `GROUP BY`,
//! a join of two window TVFs, `SESSION(TABLE t PARTITION BY k …)` (sessions are per group key:
//! group by `k`).

use crate::catalog::{Catalog, WINDOW_END, WINDOW_START};
use crate::error::{PlanError, span_or};
use ferris_sql::ast::{Span, StreamingQuery, WindowKind, WindowSpec};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, SelectItem, SetExpr,
    Spanned, TableFactor,
};

/// The three columns a window TVF adds.
const COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// A window TVF read from a FROM item.
pub(crate) struct Tvf {
    /// The window it assigns; `None` for `CUMULATE` (not run yet).
    kind: Option<WindowKind>,
    /// The table it reads (lower case, as written).
    pub(crate) table: String,
    /// The `DESCRIPTOR` column (lower case) and where it stands.
    column: (String, Span),
    /// The function's name in upper case and where the FROM item stands.
    function: String,
    span: Span,
}

/// The function call of a FROM item that is a window TVF, with its name in upper case.
fn call(factor: &TableFactor) -> Option<(&sqlparser::ast::Function, String)> {
    let TableFactor::TableFunction {
        expr: Expr::Function(f),
        ..
    } = factor
    else {
        return None;
    };
    let name = f.name.to_string().to_ascii_uppercase();
    ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
        .contains(&name.as_str())
        .then_some((f, name))
}

/// The table argument of a window TVF FROM item, to rename (a CTE's hidden name).
pub(crate) fn table_arg_mut(factor: &mut TableFactor) -> Option<&mut Ident> {
    call(factor)?;
    let TableFactor::TableFunction {
        expr: Expr::Function(f),
        ..
    } = factor
    else {
        return None;
    };
    let FunctionArguments::List(list) = &mut f.args else {
        return None;
    };
    let first = list.args.first_mut()?;
    let (FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i)))
    | FunctionArg::Named {
        arg: FunctionArgExpr::Expr(Expr::Identifier(i)),
        ..
    }) = first
    else {
        return None;
    };
    Some(i)
}

/// The window TVF of a FROM item, if it is one.
pub(crate) fn read(factor: &TableFactor, fallback: Span) -> Option<Result<Tvf, PlanError>> {
    let (f, name) = call(factor)?;
    let span = span_or(factor.span(), fallback);
    Some(parse(f, name, span))
}

fn parse(f: &sqlparser::ast::Function, name: String, span: Span) -> Result<Tvf, PlanError> {
    let usage = match name.as_str() {
        "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(ts), size)",
        "HOP" => "HOP(TABLE t, DESCRIPTOR(ts), slide, size)",
        "SESSION" => "SESSION(TABLE t, DESCRIPTOR(ts), gap)",
        _ => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)",
    };
    let bad = |what: &str, at: Span| PlanError::at(format!("{what}: write {usage}"), at);
    let FunctionArguments::List(list) = &f.args else {
        return Err(bad("a window function takes arguments", span));
    };
    // Positional arguments, or Flink's named ones in any order.
    let order: &[&str] = match name.as_str() {
        "TUMBLE" => &["DATA", "TIMECOL", "SIZE"],
        "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE"],
        "SESSION" => &["DATA", "TIMECOL", "GAP"],
        _ => &["DATA", "TIMECOL", "STEP", "SIZE"],
    };
    let mut args: Vec<Option<&Expr>> = vec![None; order.len()];
    for (i, arg) in list.args.iter().enumerate() {
        let (slot, expr) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (i, e),
            FunctionArg::Named {
                name: n,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                let Some(slot) = order.iter().position(|o| n.value.eq_ignore_ascii_case(o)) else {
                    return Err(bad(
                        &format!("{name} has no argument '{}'", n.value),
                        span_or(n.span, span),
                    ));
                };
                (slot, e)
            }
            other => return Err(bad("unexpected argument", span_or(other.span(), span))),
        };
        if i == order.len() && name != "CUMULATE" && name != "TUMBLE" {
            return Err(bad(
                "an offset is not supported yet",
                span_or(expr.span(), span),
            ));
        }
        let Some(place) = args.get_mut(slot) else {
            return Err(bad(
                "too many arguments (an offset is not supported yet)",
                span_or(expr.span(), span),
            ));
        };
        *place = Some(expr);
    }
    let [Some(table), Some(descriptor), ..] = args.as_slice() else {
        return Err(bad("the table and the DESCRIPTOR are missing", span));
    };
    let table = match table {
        Expr::Identifier(i) => i.value.to_ascii_lowercase(),
        other => {
            return Err(bad(
                "the first argument is a table: TABLE name (a subquery goes in a WITH)",
                span_or(other.span(), span),
            ));
        }
    };
    let column = match descriptor {
        Expr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
            match &d.args {
                FunctionArguments::List(l) => match l.args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(c)))] => (
                        c.value.to_ascii_lowercase(),
                        span_or(descriptor.span(), span),
                    ),
                    _ => {
                        return Err(bad(
                            "DESCRIPTOR names one column",
                            span_or(descriptor.span(), span),
                        ));
                    }
                },
                _ => {
                    return Err(bad(
                        "DESCRIPTOR names one column",
                        span_or(descriptor.span(), span),
                    ));
                }
            }
        }
        other => {
            return Err(bad(
                "the second argument is DESCRIPTOR(event time column)",
                span_or(other.span(), span),
            ));
        }
    };
    let mut durations = Vec::new();
    for arg in &args[2..] {
        let Some(e) = arg else {
            return Err(bad("a duration is missing", span));
        };
        durations.push(duration(e, span)?);
    }
    let kind = match (name.as_str(), durations.as_slice()) {
        ("TUMBLE", [size]) => Some(WindowKind::Tumbling { size_ms: *size }),
        ("HOP", [slide, size]) => {
            if slide > size {
                return Err(bad(
                    &format!("the slide ({slide} ms) must not exceed the size ({size} ms)"),
                    span,
                ));
            }
            Some(WindowKind::Sliding {
                size_ms: *size,
                advance_ms: *slide,
            })
        }
        ("SESSION", [gap]) => Some(WindowKind::Session { gap_ms: *gap }),
        ("CUMULATE", [step, size]) => {
            if size % step != 0 {
                return Err(bad(
                    &format!("the size ({size} ms) must be a whole number of steps ({step} ms)"),
                    span,
                ));
            }
            Some(WindowKind::Cumulate {
                step_ms: *step,
                size_ms: *size,
            })
        }
        _ => None,
    };
    Ok(Tvf {
        kind,
        table,
        column,
        function: name,
        span,
    })
}

/// An `INTERVAL '10' SECOND` argument in milliseconds (greater than 0).
fn duration(e: &Expr, fallback: Span) -> Result<i64, PlanError> {
    let at = span_or(e.span(), fallback);
    let ms = match e {
        Expr::Interval(i) => {
            let amount = match i.value.as_ref() {
                Expr::Value(v) => match &v.value {
                    sqlparser::ast::Value::SingleQuotedString(s)
                    | sqlparser::ast::Value::Number(s, _) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            };
            let unit = i.leading_field.as_ref().map(|f| f.to_string());
            amount.and_then(|a| ferris_sql::interval_text_ms(&a, unit.as_deref()))
        }
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(ms),
        Some(_) => Err(PlanError::at(
            "a window's duration must be greater than 0",
            at,
        )),
        None => Err(PlanError::at(
            "a window's duration is an interval of days, hours, minutes, seconds or \
             milliseconds, e.g. INTERVAL '10' SECOND",
            at,
        )),
    }
}

/// The names a query's window TVFs read (for the order of derived streams).
pub(crate) fn tables(query: &sqlparser::ast::Query) -> Vec<String> {
    let mut out = Vec::new();
    visit_factors(query, &mut |f| {
        if let Some(Ok(t)) = read(f, Span::default()) {
            out.push(t.table);
        }
    });
    out
}

/// Calls `f` on every FROM item of `query`, at any depth.
fn visit_factors(query: &sqlparser::ast::Query, f: &mut dyn FnMut(&TableFactor)) {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            visit_factors(&cte.query, f);
        }
    }
    visit_body(&query.body, f);
}

fn visit_body(body: &SetExpr, f: &mut dyn FnMut(&TableFactor)) {
    match body {
        SetExpr::Select(s) => {
            for t in &s.from {
                let joined = t.joins.iter().map(|j| &j.relation);
                for factor in std::iter::once(&t.relation).chain(joined) {
                    f(factor);
                    match factor {
                        TableFactor::Derived { subquery, .. } => visit_factors(subquery, f),
                        TableFactor::NestedJoin {
                            table_with_joins, ..
                        } => {
                            f(&table_with_joins.relation);
                        }
                        _ => {}
                    }
                }
            }
        }
        SetExpr::Query(q) => visit_factors(q, f),
        SetExpr::SetOperation { left, right, .. } => {
            visit_body(left, f);
            visit_body(right, f);
        }
        _ => {}
    }
}

/// `query` with its window TVF planned as described in the module's documentation, or
/// `None` when its FROM has none.
pub(crate) fn lower(
    query: &StreamingQuery,
    catalog: &Catalog,
) -> Result<Option<StreamingQuery>, PlanError> {
    let SetExpr::Select(select) = query.query.body.as_ref() else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for t in &select.from {
        let joined = t.joins.iter().map(|j| &j.relation);
        for factor in std::iter::once(&t.relation).chain(joined) {
            if let Some(tvf) = read(factor, query.span) {
                found.push(tvf?);
            }
        }
    }
    let Some(tvf) = found.first() else {
        return Ok(None);
    };
    if found.len() > 1 || select.from.len() > 1 || select.from.iter().any(|t| !t.joins.is_empty()) {
        return Err(PlanError::not_supported(
            "a join with a window table function (a window join)",
            found.get(1).map_or(tvf.span, |t| t.span),
        ));
    }
    if let Some(w) = &query.window {
        return Err(PlanError::at(
            "a query has one window: a window table function or a WINDOW clause, not both",
            w.span,
        ));
    }
    match catalog.event_time(&tvf.table) {
        None if catalog.has_table(&tvf.table) => {
            return Err(PlanError::at(
                format!(
                    "a window needs event time, but '{}' declares none: add WATERMARK FOR \
                     <ts column> AS <ts column> - INTERVAL '5' SECOND to its CREATE STREAM, \
                     or 'event.time.field' = '<ts column>' to its WITH",
                    tvf.table
                ),
                tvf.span,
            ));
        }
        Some(col) if col != tvf.column.0 => {
            return Err(PlanError::at(
                format!(
                    "DESCRIPTOR({}): windows follow the event time of '{}', which is '{col}' \
                     (its watermark column); write DESCRIPTOR({col})",
                    tvf.column.0, tvf.table
                ),
                tvf.column.1,
            ));
        }
        _ => {}
    }
    let mut q = query.clone();
    let SetExpr::Select(select) = q.query.body.as_mut() else {
        return Ok(None);
    };
    let alias = match &select.from[0].relation {
        TableFactor::TableFunction { alias, .. } => alias.clone(),
        _ => None,
    };
    select.from[0].relation = crate::subquery::table(&tvf.table, alias)?;
    let grouped = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        GroupByExpr::All(_) => true,
    };
    let Some(kind) = tvf.kind else {
        return Err(PlanError::not_supported("CUMULATE windows", tvf.span));
    };
    if grouped {
        let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
            return Err(PlanError::not_supported("GROUP BY ALL", tvf.span));
        };
        let has = |col: &str| exprs.iter().any(|e| column_name(e) == Some(col));
        if !(has("window_start") && has("window_end")) {
            return Err(PlanError::at(
                format!(
                    "an aggregation over {} groups by window_start and window_end (and its \
                     keys), as in Flink",
                    tvf.function
                ),
                span_or(select.group_by.span(), tvf.span),
            ));
        }
        rename(select, &|name| match name {
            "window_start" => Some(ident_expr(WINDOW_START)),
            "window_end" => Some(ident_expr(WINDOW_END)),
            "window_time" => parse_expr(&format!("{WINDOW_END} - INTERVAL '1' MILLISECOND")),
            _ => None,
        })?;
        q.window = Some(WindowSpec {
            kind,
            grace: None,
            span: tvf.span,
        });
        q.text = q.query.to_string();
        return Ok(Some(q));
    }
    let WindowKind::Tumbling { size_ms } = kind else {
        return Err(PlanError::not_supported(
            &format!(
                "{} without GROUP BY window_start, window_end (only TUMBLE tags rows with \
                 their window)",
                tvf.function
            ),
            tvf.span,
        ));
    };
    let start = format!(
        "date_bin(INTERVAL '{size_ms} milliseconds', {}, TIMESTAMP '1970-01-01 00:00:00')",
        tvf.column.0
    );
    let end = format!("({start} + INTERVAL '{size_ms} milliseconds')");
    let time = format!("({end} - INTERVAL '1' MILLISECOND)");
    let exprs = [start, end, time];
    let mut items = Vec::new();
    for item in std::mem::take(&mut select.projection) {
        let wildcard = matches!(item, SelectItem::Wildcard(_));
        items.push(item);
        if wildcard {
            for (name, sql) in COLUMNS.iter().zip(&exprs) {
                items.push(SelectItem::ExprWithAlias {
                    expr: parse_expr(sql).ok_or_else(|| internal(sql))?,
                    alias: Ident::new(*name),
                });
            }
        }
    }
    select.projection = items;
    rename(select, &|name| {
        let i = COLUMNS.iter().position(|c| *c == name)?;
        parse_expr(&exprs[i])
    })?;
    q.text = q.query.to_string();
    Ok(Some(q))
}

fn internal(sql: &str) -> PlanError {
    PlanError {
        message: format!("internal: cannot parse {sql}"),
        span: None,
    }
}

fn ident_expr(name: &str) -> Expr {
    Expr::Identifier(Ident::new(name))
}

fn parse_expr(sql: &str) -> Option<Expr> {
    sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// The column an expression names (its last part, lower case), if it is a column.
fn column_name(e: &Expr) -> Option<&str> {
    let ident = match e {
        Expr::Identifier(i) => i,
        Expr::CompoundIdentifier(parts) => parts.last()?,
        _ => return None,
    };
    COLUMNS
        .iter()
        .find(|c| ident.value.eq_ignore_ascii_case(c))
        .copied()
}

/// Replaces the window columns by what computes them, keeping their names in the output.
fn rename(
    select: &mut sqlparser::ast::Select,
    to: &dyn Fn(&str) -> Option<Expr>,
) -> Result<(), PlanError> {
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) = item
            && let Some(name) = column_name(e)
        {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::new(name),
            };
        }
    }
    let _ = sqlparser::ast::visit_expressions_mut(select, |e| {
        if let Some(name) = column_name(e)
            && let Some(new) = to(name)
        {
            *e = new;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(())
}
