//! `IN (SELECT …)` and `EXISTS (SELECT …)` over a TABLE, planned as semi and anti joins.
//!
//! `WHERE s.x IN (SELECT t.k FROM t [WHERE c])`, with `t` a TABLE and `k` its PRIMARY KEY, is
//! the lookup join `FROM s JOIN t ON s.x = t.k [AND c]` keeping the stream's columns: each
//! stream row meets at most one table row, so the join neither repeats nor loses rows.
//! `NOT IN` is the LEFT lookup join keeping the rows without a match (and, as SQL's `NOT IN`
//! does, not the rows whose `x` is NULL). `[NOT] EXISTS (SELECT … FROM t WHERE t.k = s.x [AND
//! c])` is the same join. Over a stream, where the answer for a row could change when a later
//! row arrives, both stay positioned "not supported yet" errors.

use crate::catalog::Catalog;
use crate::error::{PlanError, span_or};
use ferris_sql::ast::{Span, StreamingQuery};
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectName, Query, Select, SelectItem, SetExpr, Spanned,
    TableFactor,
};

/// The conjuncts of `e` (`a AND b AND c`).
fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner, out)
        }
        other => out.push(other),
    }
}

fn and_all(mut parts: Vec<Expr>) -> Option<Expr> {
    let first = if parts.is_empty() {
        return None;
    } else {
        parts.remove(0)
    };
    Some(parts.into_iter().fold(first, |acc, e| Expr::BinaryOp {
        left: Box::new(acc),
        op: BinaryOperator::And,
        right: Box::new(e),
    }))
}

/// The one table a subquery reads, its alias, and its WHERE.
struct Inner {
    table: String,
    alias: String,
    projection: Vec<SelectItem>,
    selection: Option<Expr>,
}

fn inner(subquery: &Query) -> Option<Inner> {
    let SetExpr::Select(s) = subquery.body.as_ref() else {
        return None;
    };
    let [from] = s.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty()
        || s.group_by != sqlparser::ast::GroupByExpr::Expressions(vec![], vec![])
    {
        return None;
    }
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return None;
    };
    let table = name.to_string().trim_matches('"').to_ascii_lowercase();
    Some(Inner {
        alias: alias
            .as_ref()
            .map_or(table.clone(), |a| a.name.value.to_ascii_lowercase()),
        table,
        projection: s.projection.clone(),
        selection: s.selection.clone(),
    })
}

/// Qualifies the table's unqualified columns in `e` with `alias` (after the join, the
/// stream's columns of the same name would take them).
fn qualify(e: &mut Expr, columns: &[String], inner_alias: &str, alias: &str) {
    let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
        match x {
            Expr::Identifier(i) if columns.contains(&i.value.to_ascii_lowercase()) => {
                *x = Expr::CompoundIdentifier(vec![Ident::new(alias), i.clone()]);
            }
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && parts[0].value.eq_ignore_ascii_case(inner_alias) =>
            {
                parts[0] = Ident::new(alias);
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// A semi or anti join found in WHERE: the table, its alias in the rewritten query, the ON
/// condition, and whether rows without a match are the ones kept.
struct Found {
    table: String,
    alias: String,
    /// Equalities of the table's PRIMARY KEY with the stream's expressions.
    on: Vec<Expr>,
    /// The subquery's other conditions (ON conditions of a semi join; of an anti join, a
    /// match that fails them is no match).
    extra: Vec<Expr>,
    anti: bool,
    /// The first PRIMARY KEY column: NULL after a LEFT join exactly when nothing matched.
    key: String,
    /// For NOT IN: the stream expression, which must not be NULL.
    not_null: Option<Expr>,
}

/// `query` with its `IN`/`EXISTS` over a TABLE planned as a join, or `None` when it has none.
pub(crate) fn rewrite(
    query: &StreamingQuery,
    catalog: &Catalog,
) -> Result<Option<StreamingQuery>, PlanError> {
    let SetExpr::Select(select) = query.query.body.as_ref() else {
        return Ok(None);
    };
    let Some(selection) = &select.selection else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    conjuncts(selection.clone(), &mut parts);
    let mut found: Option<Found> = None;
    let mut kept = Vec::new();
    for part in parts {
        if found.is_none()
            && let Some(f) = semi(&part, catalog, query.span)?
        {
            found = Some(f);
            continue;
        }
        kept.push(part);
    }
    let Some(f) = found else {
        return Ok(None);
    };
    let mut q = query.clone();
    let SetExpr::Select(select) = q.query.body.as_mut() else {
        return Ok(None);
    };
    let mut f = f;
    let mut conditions = kept;
    if f.anti {
        // No row with the key, or one that fails the subquery's other conditions.
        let unmatched = Expr::IsNull(Box::new(Expr::CompoundIdentifier(vec![
            Ident::new(&f.alias),
            Ident::new(&f.key),
        ])));
        let extra = std::mem::take(&mut f.extra);
        conditions.push(match and_all(extra) {
            Some(c) => Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(unmatched),
                op: BinaryOperator::Or,
                right: Box::new(Expr::IsNotTrue(Box::new(Expr::Nested(Box::new(c))))),
            })),
            None => unmatched,
        });
        if let Some(x) = f.not_null.take() {
            conditions.push(Expr::IsNotNull(Box::new(x)));
        }
    }
    select.selection = and_all(conditions);
    join_table(select, &f, catalog, query.span)?;
    q.text = q.query.to_string();
    Ok(Some(q))
}

/// Adds `[LEFT] JOIN table AS alias ON …` to the one stream `select` reads, qualifies the
/// stream's columns (the table may have columns of the same names) and keeps the SELECT list
/// to the stream's columns.
fn join_table(
    select: &mut Select,
    f: &Found,
    catalog: &Catalog,
    span: Span,
) -> Result<(), PlanError> {
    let [from] = select.from.as_mut_slice() else {
        return Err(PlanError::not_supported(
            "IN (SELECT ...) in a query reading several sources",
            span,
        ));
    };
    if !from.joins.is_empty() {
        return Err(PlanError::not_supported(
            "IN (SELECT ...) in a query that already joins",
            span,
        ));
    }
    let (stream, qualifier) = match &from.relation {
        TableFactor::Table { name, alias, .. } => {
            let name = name.to_string().trim_matches('"').to_ascii_lowercase();
            let q = alias
                .as_ref()
                .map_or(name.clone(), |a| a.name.value.clone());
            (name, q)
        }
        _ => return Err(PlanError::not_supported("IN (SELECT ...) here", span)),
    };
    let columns: Vec<String> = catalog
        .schema(&stream)
        .map(|s| {
            s.fields()
                .iter()
                .map(|f| f.name().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let qualify_stream = |e: &mut Expr| {
        let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
            if let Expr::Identifier(i) = x
                && columns.contains(&i.value.to_ascii_lowercase())
            {
                *x = Expr::CompoundIdentifier(vec![Ident::new(&qualifier), i.clone()]);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    };
    for item in &mut select.projection {
        match item {
            SelectItem::Wildcard(opts) => {
                *item = SelectItem::QualifiedWildcard(
                    sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(
                        vec![Ident::new(qualifier.clone())],
                    )),
                    opts.clone(),
                );
            }
            SelectItem::UnnamedExpr(e) => {
                // Keep the column's own name in the output.
                if let Expr::Identifier(i) = e.clone() {
                    qualify_stream(e);
                    if matches!(e, Expr::CompoundIdentifier(_)) {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: i,
                        };
                    }
                } else {
                    qualify_stream(e);
                }
            }
            SelectItem::ExprWithAlias { expr, .. } => qualify_stream(expr),
            _ => {}
        }
    }
    if let Some(w) = &mut select.selection {
        qualify_stream(w);
    }
    if let sqlparser::ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.iter_mut().for_each(&qualify_stream);
    }
    if let Some(h) = &mut select.having {
        qualify_stream(h);
    }
    let mut on: Vec<Expr> = f.on.clone();
    on.extend(f.extra.iter().cloned());
    let mut on = and_all(on).ok_or_else(|| PlanError::at("internal: an empty semi join", span))?;
    qualify_stream(&mut on);
    let constraint = sqlparser::ast::JoinConstraint::On(on);
    let relation = crate::subquery::table(
        &f.table,
        Some(sqlparser::ast::TableAlias {
            explicit: true,
            name: Ident::new(&f.alias),
            columns: Vec::new(),
            at: None,
        }),
    )?;
    from.joins.push(sqlparser::ast::Join {
        relation,
        global: false,
        join_operator: if f.anti {
            sqlparser::ast::JoinOperator::Left(constraint)
        } else {
            sqlparser::ast::JoinOperator::Inner(constraint)
        },
    });
    Ok(())
}

/// The semi or anti join a WHERE conjunct is, if it is `[NOT] IN (SELECT …)` or `[NOT]
/// EXISTS (SELECT …)` over a TABLE.
fn semi(e: &Expr, catalog: &Catalog, fallback: Span) -> Result<Option<Found>, PlanError> {
    let (subquery, negated, tested) = match e {
        Expr::InSubquery {
            expr,
            subquery,
            negated,
        } => (subquery.as_ref(), *negated, Some(expr.as_ref())),
        Expr::Exists { subquery, negated } => (subquery.as_ref(), *negated, None),
        _ => return Ok(None),
    };
    let at = span_or(e.span(), fallback);
    let Some(inner) = inner(subquery) else {
        return Err(PlanError::not_supported(
            "a subquery here other than SELECT ... FROM one TABLE [WHERE ...]",
            at,
        ));
    };
    let Some(pk) = catalog.primary_key(&inner.table) else {
        return Err(PlanError::not_supported(
            &format!(
                "IN/EXISTS over the stream '{}' (its answer for a row could change when a later \
                 row arrives); over a TABLE it runs",
                inner.table
            ),
            at,
        ));
    };
    let columns: Vec<String> = catalog
        .schema(&inner.table)
        .map(|s| {
            s.fields()
                .iter()
                .map(|f| f.name().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let alias = format!("__semi_{}", inner.table);
    let pk: Vec<String> = pk.iter().map(|k| k.to_ascii_lowercase()).collect();
    let mut conditions = Vec::new();
    if let Some(x) = tested {
        // `x IN (SELECT k FROM t …)`: k is the whole PRIMARY KEY.
        let named = match inner.projection.as_slice() {
            [SelectItem::UnnamedExpr(e)] => crate::topn::column_name(e),
            _ => None,
        };
        let selected = match named {
            Some(c) => c,
            None => {
                return Err(PlanError::at(
                    "IN (SELECT ...) selects one column of the table",
                    at,
                ));
            }
        };
        if pk != [selected.clone()] {
            return Err(PlanError::at(
                format!(
                    "IN (SELECT {selected} FROM {}) runs when {selected} is the table's whole \
                     PRIMARY KEY ({})",
                    inner.table,
                    pk.join(", ")
                ),
                at,
            ));
        }
        conditions.push(Expr::BinaryOp {
            left: Box::new(x.clone()),
            op: BinaryOperator::Eq,
            right: Box::new(Expr::CompoundIdentifier(vec![
                Ident::new(&alias),
                Ident::new(&selected),
            ])),
        });
    }
    if let Some(mut w) = inner.selection.clone() {
        qualify(&mut w, &columns, &inner.alias, &alias);
        conjuncts(w, &mut conditions);
    }
    if tested.is_none() {
        // EXISTS: the correlation must equate the whole PRIMARY KEY with the stream's columns.
        let keyed = pk.iter().all(|k| {
            conditions.iter().any(|c| {
                matches!(c, Expr::BinaryOp { left, op: BinaryOperator::Eq, right }
                    if [left, right].iter().any(|side| matches!(side.as_ref(),
                        Expr::CompoundIdentifier(p) if p.len() == 2
                            && p[0].value == alias && p[1].value.eq_ignore_ascii_case(k))))
            })
        });
        if !keyed {
            return Err(PlanError::at(
                format!(
                    "EXISTS (SELECT ... FROM {} WHERE ...) runs when its WHERE equates the \
                     table's whole PRIMARY KEY ({}) with the stream's columns",
                    inner.table,
                    pk.join(", ")
                ),
                at,
            ));
        }
    }
    let is_key_equality = |c: &Expr| {
        matches!(c, Expr::BinaryOp { left, op: BinaryOperator::Eq, right }
            if [left, right].iter().any(|side| matches!(side.as_ref(),
                Expr::CompoundIdentifier(p) if p.len() == 2 && p[0].value == alias
                    && pk.iter().any(|k| p[1].value.eq_ignore_ascii_case(k)))))
    };
    let (on, extra): (Vec<Expr>, Vec<Expr>) = conditions.into_iter().partition(is_key_equality);
    Ok(Some(Found {
        table: inner.table,
        alias,
        on,
        extra,
        anti: negated,
        key: pk.first().cloned().unwrap_or_default(),
        not_null: tested.filter(|_| negated).cloned(),
    }))
}
