//! Subqueries in `FROM` and common table expressions (`WITH name AS (…)`), planned as derived
//! streams: each becomes a hidden query of the application, named after the statement that
//! holds it (`<query>__<alias>`), and the statement reads its output in-process (see
//! `app::Derived`). Nested ones nest the names (`select_1__t__u`); a CTE is computed once
//! however often the statement reads it.

use crate::error::{PlanError, span_or};
use ferris_sql::ast::{Span, StreamingQuery};
use sqlparser::ast::{
    Ident, Query, SetExpr, SetOperator, SetQuantifier, Spanned, TableAlias, TableFactor,
};

/// A hidden part of a statement, in the order they are planned (each before what reads it).
pub(crate) enum Hidden {
    /// A query whose output is a derived stream of its name, or (`union`) one of the writers
    /// of a `UNION ALL` stream.
    Query {
        name: String,
        query: Box<StreamingQuery>,
        union: Option<String>,
        /// Its `ROW_NUMBER` filter, when it is a top-N.
        top_n: Option<Box<crate::topn::TopN>>,
    },
    /// The stream `name` that the queries `parts` write together (`UNION ALL`).
    Union {
        name: String,
        parts: Vec<String>,
        span: Span,
    },
}

/// A statement's query with its subqueries and CTEs taken out.
pub(crate) struct Expanded {
    /// The hidden parts.
    pub(crate) hidden: Vec<Hidden>,
    /// The statement's query, reading them by their hidden names.
    pub(crate) query: StreamingQuery,
    /// Its `ROW_NUMBER` filter, when it is a top-N.
    pub(crate) top_n: Option<crate::topn::TopN>,
}

/// Takes the subqueries in FROM and the CTEs out of `q`, the query of statement `name`.
pub(crate) fn expand(name: &str, q: &StreamingQuery) -> Result<Expanded, PlanError> {
    let mut query = q.query.clone();
    let mut hidden = Vec::new();
    let top_n = take_out(name, query.as_mut(), &mut hidden, &[], q.span)?;
    Ok(Expanded {
        hidden,
        query: StreamingQuery { query, ..q.clone() },
        top_n,
    })
}

/// A name made of `prefix` and an alias, usable as an identifier.
fn hidden_name(prefix: &str, alias: &str) -> String {
    let clean: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}__{clean}")
}

fn take_out(
    prefix: &str,
    query: &mut Query,
    hidden: &mut Vec<Hidden>,
    outer: &[(String, String)],
    span: Span,
) -> Result<Option<crate::topn::TopN>, PlanError> {
    // CTEs first, each able to read the ones before it.
    let mut names: Vec<(String, String)> = outer.to_vec();
    if let Some(with) = query.with.take() {
        if with.recursive {
            return Err(PlanError::not_supported(
                "WITH RECURSIVE",
                span_or(with.with_token.0.span, span),
            ));
        }
        for cte in with.cte_tables {
            let at = span_or(cte.query.span(), span);
            if !cte.alias.columns.is_empty() {
                return Err(PlanError::not_supported(
                    "column names after a WITH name (write them as aliases in its SELECT)",
                    at,
                ));
            }
            let alias = cte.alias.name.value.to_ascii_lowercase();
            let name = hidden_name(prefix, &alias);
            let mut sub = *cte.query;
            let top_n = take_out(&name, &mut sub, hidden, &names, at)?;
            hidden.push(Hidden::Query {
                name: name.clone(),
                query: Box::new(streaming(sub, at)),
                union: None,
                top_n: top_n.map(Box::new),
            });
            names.retain(|(a, _)| *a != alias);
            names.push((alias, name));
        }
    }
    if let SetExpr::SetOperation { .. } = query.body.as_ref() {
        take_out_union(prefix, query, hidden, &names, span)?;
        return Ok(None);
    }
    let mut counter = 0;
    take_out_of_body(
        prefix,
        query.body.as_mut(),
        hidden,
        &names,
        span,
        &mut counter,
    )
}

/// The operands of a tree of `UNION ALL`s, left to right; other set operations are errors.
fn union_parts(body: SetExpr, out: &mut Vec<SetExpr>, span: Span) -> Result<(), PlanError> {
    match body {
        SetExpr::SetOperation {
            left,
            op: SetOperator::Union,
            set_quantifier: SetQuantifier::All,
            right,
        } => {
            union_parts(*left, out, span)?;
            union_parts(*right, out, span)
        }
        SetExpr::SetOperation {
            op: SetOperator::Union,
            ..
        } => Err(PlanError::at(
            "UNION removes duplicate rows, which needs every row of the stream kept: write \
             UNION ALL (and GROUP BY the columns to remove duplicates per window)",
            span_or(body.span(), span),
        )),
        SetExpr::SetOperation { op, .. } => Err(PlanError::not_supported(
            &format!("{op} of streams"),
            span_or(body.span(), span),
        )),
        other => {
            out.push(other);
            Ok(())
        }
    }
}

/// `a UNION ALL b …`: each operand a hidden query writing the stream `<prefix>__union`,
/// which the query then reads whole.
fn take_out_union(
    prefix: &str,
    query: &mut Query,
    hidden: &mut Vec<Hidden>,
    names: &[(String, String)],
    span: Span,
) -> Result<(), PlanError> {
    let at = span_or(query.body.span(), span);
    let body = query.body.as_ref().clone();
    let mut operands = Vec::new();
    union_parts(body, &mut operands, span)?;
    let union = format!("{prefix}__union");
    let mut parts = Vec::new();
    for (i, operand) in operands.into_iter().enumerate() {
        let name = format!("{union}{}", i + 1);
        let part_span = span_or(operand.span(), at);
        let mut part = query.clone();
        part.body = Box::new(operand);
        part.order_by = None;
        part.limit_clause = None;
        part.fetch = None;
        let top_n = take_out(&name, &mut part, hidden, names, part_span)?;
        hidden.push(Hidden::Query {
            name: name.clone(),
            query: Box::new(streaming(part, part_span)),
            union: Some(union.clone()),
            top_n: top_n.map(Box::new),
        });
        parts.push(name);
    }
    hidden.push(Hidden::Union {
        name: union.clone(),
        parts,
        span: at,
    });
    let reading = sqlparser::parser::Parser::parse_sql(
        &sqlparser::dialect::GenericDialect {},
        &format!("SELECT * FROM {union}"),
    )
    .ok()
    .and_then(|mut v| v.pop());
    match reading {
        Some(sqlparser::ast::Statement::Query(q)) => {
            query.body = q.body;
            Ok(())
        }
        _ => Err(PlanError::at(format!("internal: cannot read {union}"), at)),
    }
}

fn take_out_of_body(
    prefix: &str,
    body: &mut SetExpr,
    hidden: &mut Vec<Hidden>,
    names: &[(String, String)],
    span: Span,
    counter: &mut usize,
) -> Result<Option<crate::topn::TopN>, PlanError> {
    match body {
        SetExpr::Select(select) => {
            let top_n = crate::topn::take(select, span)?;
            for table in &mut select.from {
                let joined = table.joins.iter_mut().map(|j| &mut j.relation);
                for factor in std::iter::once(&mut table.relation).chain(joined) {
                    replace(prefix, factor, hidden, names, span, counter)?;
                }
            }
            Ok(top_n)
        }
        SetExpr::Query(q) => take_out(prefix, q, hidden, names, span),
        // Set operations are refused (with their position) by the planner.
        _ => Ok(None),
    }
}

/// A FROM item: a subquery becomes a hidden query, a CTE's name its hidden name.
fn replace(
    prefix: &str,
    factor: &mut TableFactor,
    hidden: &mut Vec<Hidden>,
    names: &[(String, String)],
    span: Span,
    counter: &mut usize,
) -> Result<(), PlanError> {
    match factor {
        TableFactor::Table { name, alias, .. } => {
            let written = name.to_string().trim_matches('"').to_ascii_lowercase();
            if let Some((_, to)) = names.iter().rev().find(|(a, _)| *a == written) {
                let original = name.0.last().and_then(|p| p.as_ident()).cloned();
                *name = sqlparser::ast::ObjectName::from(vec![Ident::new(to.clone())]);
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: original.unwrap_or_else(|| Ident::new(written.clone())),
                        columns: Vec::new(),
                        at: None,
                    });
                }
            }
            Ok(())
        }
        TableFactor::Derived {
            lateral,
            subquery,
            alias,
            ..
        } => {
            let at = span_or(subquery.span(), span);
            if *lateral {
                return Err(PlanError::not_supported("a LATERAL subquery", at));
            }
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return Err(PlanError::not_supported(
                    "column names after a subquery's alias (write them as aliases in its SELECT)",
                    at,
                ));
            }
            *counter += 1;
            let label = alias
                .as_ref()
                .map_or_else(|| format!("sub{counter}"), |a| a.name.value.clone());
            let name = hidden_name(prefix, &label);
            let mut sub = (**subquery).clone();
            let top_n = take_out(&name, &mut sub, hidden, names, at)?;
            hidden.push(Hidden::Query {
                name: name.clone(),
                query: Box::new(streaming(sub, at)),
                union: None,
                top_n: top_n.map(Box::new),
            });
            let alias = alias.clone().unwrap_or(TableAlias {
                explicit: true,
                name: Ident::new(label),
                columns: Vec::new(),
                at: None,
            });
            *factor = table(&name, Some(alias))?;
            Ok(())
        }
        TableFactor::TableFunction { .. } => {
            // A window TVF reads its table by name: a CTE's name becomes its hidden name.
            if let Some(table) = crate::tvf::table_arg_mut(factor) {
                let written = table.value.to_ascii_lowercase();
                if let Some((_, to)) = names.iter().rev().find(|(a, _)| *a == written) {
                    *table = Ident::new(to.clone());
                }
            }
            Ok(())
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            let joined = table_with_joins.joins.iter_mut().map(|j| &mut j.relation);
            for f in std::iter::once(&mut table_with_joins.relation).chain(joined) {
                replace(prefix, f, hidden, names, span, counter)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `name [AS alias]` as a FROM item.
pub(crate) fn table(name: &str, alias: Option<TableAlias>) -> Result<TableFactor, PlanError> {
    let sql = format!("SELECT * FROM {name} AS t");
    let parsed = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, &sql)
        .map_err(|e| PlanError {
            message: format!("internal: cannot name subquery {name}: {e}"),
            span: None,
        })?;
    if let Some(sqlparser::ast::Statement::Query(q)) = parsed.into_iter().next()
        && let SetExpr::Select(select) = *q.body
        && let Some(first) = select.from.into_iter().next()
    {
        let mut factor = first.relation;
        if let TableFactor::Table {
            alias: a, name: n, ..
        } = &mut factor
        {
            // No position: this text was never written; errors take the alias's.
            *n = sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
            *a = alias;
            return Ok(factor);
        }
    }
    Err(PlanError {
        message: format!("internal: cannot name subquery {name}"),
        span: None,
    })
}

/// A hidden query: no window, no EMIT of its own.
fn streaming(query: Query, span: Span) -> StreamingQuery {
    StreamingQuery {
        text: query.to_string(),
        query: Box::new(query),
        window: None,
        emit: None,
        as_of: Vec::new(),
        span,
    }
}
