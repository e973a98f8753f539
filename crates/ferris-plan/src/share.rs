//! Shared window state (`'state.share' = 'NAME'`): the windowed aggregations of an
//! application that name the same share compute their aggregates in one operator, and each
//! takes its own columns from that operator's output.
//!
//! The queries of one share must read the same source with the same WHERE, GROUP BY, window
//! (and grace) and engine settings, and emit FINAL (the default of a window). The share
//! becomes a hidden query, `shared__NAME`, that groups and windows once and computes every
//! aggregate call the members make (each distinct call once); each member then reads that
//! query's output as a derived stream: its SELECT list and HAVING over the shared columns.
//! A member's output is the same, row for row and column for column, as when it runs alone
//! (checked when it is planned); the shared state holds one entry per window and group
//! instead of one per member.

use crate::error::PlanError;
use crate::props::EngineProps;
use ferris_sql::ast::{EmitMode, Span, Statement, StreamingQuery};
use sqlparser::ast::{
    Expr, GroupByExpr, Ident, SelectItem, SetExpr, TableFactor, VisitMut, VisitorMut,
    visit_expressions_mut,
};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// The engine key that names a query's share.
pub const SHARE_KEY: &str = "state.share";

/// Aggregate functions (lower case) whose calls the shared operator computes, besides
/// those that skip NULL inputs ([`crate::plan_aggregate::SKIPS_NULLS`]).
const AGGREGATES: &[&str] = &[
    "mean",
    "approx_percentile_cont",
    "first_value",
    "last_value",
    "array_agg",
    "string_agg",
    "corr",
    "covar",
    "covar_pop",
    "covar_samp",
];

/// Whether `name` (lower case) is an aggregate function.
fn is_aggregate(name: &str) -> bool {
    crate::plan_aggregate::SKIPS_NULLS.contains(&name) || AGGREGATES.contains(&name)
}

/// A share of window state that runs: its hidden query and the queries reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedState {
    /// The share's name (`'state.share'`).
    pub name: String,
    /// The hidden query that computes the shared aggregates.
    pub query: String,
    /// The member queries, in statement order.
    pub members: Vec<String>,
    /// The distinct aggregate calls the shared operator computes.
    pub aggregates: Vec<String>,
    /// Aggregate calls the members make together (counting repeats): what running them
    /// apart would compute.
    pub calls: usize,
}

/// One member as written.
#[derive(Clone)]
struct Member {
    query: String,
    ast: StreamingQuery,
    engine: EngineProps,
    at: Span,
}

/// The shares an application's statements name, planned as their first member is reached.
#[derive(Default)]
pub(crate) struct Shares {
    groups: BTreeMap<String, Vec<Member>>,
    /// Per planned share: the hidden query's name and the column of each aggregate call
    /// and group key (by text).
    planned: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

/// The hidden query of share `name`.
pub fn hidden_name(name: &str) -> String {
    format!("shared__{name}")
}

impl Shares {
    /// Collects the shares named by the `CREATE STREAM … AS` statements.
    pub(crate) fn collect(statements: &[Statement]) -> Result<Self, PlanError> {
        let mut shares = Shares::default();
        for stmt in statements {
            let Statement::CreateStreamAs(c) = stmt else {
                continue;
            };
            // A bad WITH is reported where the statement is planned, in order.
            let Ok((engine, _)) = crate::props::split(&c.properties, c.span) else {
                continue;
            };
            let Some(name) = &engine.share else {
                continue;
            };
            let at = engine.span_of(SHARE_KEY, c.span);
            shares.groups.entry(name.clone()).or_default().push(Member {
                query: c.name.value.to_ascii_lowercase(),
                ast: c.query.clone(),
                engine,
                at,
            });
        }
        for (name, members) in &shares.groups {
            if let [only] = members.as_slice() {
                return Err(PlanError::at(
                    format!(
                        "'{SHARE_KEY}' = '{name}': no other query names this share (window \
                         state is shared between queries that give the same name)"
                    ),
                    only.at,
                ));
            }
            let first = &members[0];
            check_member(first)?;
            for m in &members[1..] {
                same_shape(first, m, name)?;
            }
        }
        Ok(shares)
    }

    /// The share query `name` belongs to, if any.
    pub(crate) fn share_of(&self, query: &str) -> Option<String> {
        self.groups
            .iter()
            .find(|(_, ms)| ms.iter().any(|m| m.query == query))
            .map(|(n, _)| n.clone())
    }

    /// Whether share `name` has been planned.
    pub(crate) fn is_planned(&self, name: &str) -> bool {
        self.planned.contains_key(name)
    }

    /// The hidden query of share `name`: its AST and engine settings, with the description
    /// of what it shares. Records the column of each call for [`Shares::member`].
    pub(crate) fn combined(
        &mut self,
        name: &str,
    ) -> Result<(StreamingQuery, EngineProps, SharedState), PlanError> {
        let members = self.groups.get(name).cloned().unwrap_or_default();
        let first = members.first().ok_or_else(|| PlanError {
            message: format!("internal: share '{name}' has no queries"),
            span: None,
        })?;
        let mut columns: BTreeMap<String, String> = BTreeMap::new();
        let mut items: Vec<SelectItem> = Vec::new();
        let alias = |expr: Expr, name: &str| SelectItem::ExprWithAlias {
            expr,
            alias: Ident::new(name),
        };
        for (i, key) in group_keys(&first.ast).into_iter().enumerate() {
            let col = match &key {
                Expr::Identifier(id) => id.value.to_ascii_lowercase(),
                Expr::CompoundIdentifier(ids) => ids
                    .last()
                    .map(|id| id.value.to_ascii_lowercase())
                    .unwrap_or_default(),
                _ => {
                    let col = format!("__key_{i}");
                    columns.insert(key.to_string(), col.clone());
                    col
                }
            };
            items.push(alias(key, &col));
        }
        for w in [crate::catalog::WINDOW_START, crate::catalog::WINDOW_END] {
            items.push(SelectItem::UnnamedExpr(Expr::Identifier(Ident::new(w))));
        }
        let mut calls = 0;
        let mut aggregates = Vec::new();
        for m in &members {
            for call in aggregate_calls(&m.ast) {
                calls += 1;
                let text = call.to_string();
                if columns.contains_key(&text) {
                    continue;
                }
                let col = format!("__agg_{}", aggregates.len());
                columns.insert(text.clone(), col.clone());
                aggregates.push(text);
                items.push(alias(call, &col));
            }
        }
        let mut ast = first.ast.clone();
        if let SetExpr::Select(select) = ast.query.body.as_mut() {
            select.projection = items;
            select.having = None;
        }
        ast.text = ast.query.to_string();
        let hidden = hidden_name(name);
        let engine = EngineProps {
            share: None,
            metrics: BTreeMap::new(),
            ..first.engine.clone()
        };
        self.planned
            .insert(name.to_string(), (hidden.clone(), columns));
        let state = SharedState {
            name: name.to_string(),
            query: hidden,
            members: members.iter().map(|m| m.query.clone()).collect(),
            aggregates,
            calls,
        };
        Ok((ast, engine, state))
    }

    /// Member `query`'s AST over the shared output: its SELECT list (named as `names`, the
    /// columns it has alone) and its HAVING as WHERE, reading the hidden query's stream.
    pub(crate) fn member(
        &self,
        share: &str,
        query: &StreamingQuery,
        names: &[String],
    ) -> Result<StreamingQuery, PlanError> {
        let (hidden, columns) = self.planned.get(share).ok_or_else(|| PlanError {
            message: format!("internal: share '{share}' is not planned"),
            span: None,
        })?;
        let mut ast = query.clone();
        let SetExpr::Select(select) = ast.query.body.as_mut() else {
            return Err(PlanError::not_supported(
                "a shared query over a set operation",
                query.span,
            ));
        };
        let replace = |e: &mut Expr| {
            let _ = e.visit(&mut Replace(columns));
        };
        let mut projection = Vec::new();
        for (item, name) in select.projection.iter().zip(names) {
            let (mut expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e.clone(), Ident::with_quote('"', name.clone())),
                SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), alias.clone()),
                _ => {
                    return Err(PlanError::not_supported(
                        "'*' in a query that shares window state",
                        query.span,
                    ));
                }
            };
            replace(&mut expr);
            projection.push(SelectItem::ExprWithAlias { expr, alias });
        }
        select.projection = projection;
        let mut having = select.having.take();
        if let Some(h) = having.as_mut() {
            replace(h);
        }
        select.selection = having;
        select.group_by = GroupByExpr::Expressions(Vec::new(), Vec::new());
        if let Some(from) = select.from.first_mut() {
            let alias = match &from.relation {
                TableFactor::Table { alias, .. } => alias.clone(),
                _ => None,
            };
            from.relation = crate::subquery::table(hidden, alias)?;
        }
        ast.window = None;
        ast.emit = None;
        ast.text = ast.query.to_string();
        Ok(ast)
    }
}

/// Replaces each expression whose text is a key of the map by its column, outermost first
/// (a key inside an aggregate's argument stays when the whole call is one).
struct Replace<'a>(&'a BTreeMap<String, String>);

impl VisitorMut for Replace<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, x: &mut Expr) -> ControlFlow<()> {
        if let Some(col) = self.0.get(&x.to_string()) {
            *x = Expr::Identifier(Ident::new(col.clone()));
        }
        ControlFlow::Continue(())
    }
}

/// The GROUP BY expressions of `q`, without the window's columns.
fn group_keys(q: &StreamingQuery) -> Vec<Expr> {
    let SetExpr::Select(select) = q.query.body.as_ref() else {
        return Vec::new();
    };
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return Vec::new();
    };
    exprs
        .iter()
        .filter(|e| {
            !matches!(e, Expr::Identifier(i)
                if i.value.eq_ignore_ascii_case(crate::catalog::WINDOW_START)
                    || i.value.eq_ignore_ascii_case(crate::catalog::WINDOW_END))
        })
        .cloned()
        .collect()
}

/// The aggregate calls of `q`'s SELECT list and HAVING, in order.
fn aggregate_calls(q: &StreamingQuery) -> Vec<Expr> {
    let SetExpr::Select(select) = q.query.body.as_ref() else {
        return Vec::new();
    };
    let mut exprs: Vec<Expr> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(e.clone())
            }
            _ => None,
        })
        .collect();
    exprs.extend(select.having.clone());
    let mut calls = Vec::new();
    for e in &mut exprs {
        let _ = visit_expressions_mut(e, |x| {
            if let Expr::Function(f) = x
                && f.over.is_none()
                && is_aggregate(&f.name.to_string().to_ascii_lowercase())
            {
                calls.push(x.clone());
            }
            ControlFlow::<()>::Continue(())
        });
    }
    calls
}

/// What a query computes, read off its SQL, for the multi-query analyses (what queries have
/// in common, what could be shared).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryShape {
    /// The stream it reads first (lower-cased).
    pub source: String,
    /// Its join, as written (`JOIN quotes q ON …`), if any.
    pub join: Option<String>,
    /// The conjuncts of its WHERE, as written.
    pub filter: Vec<String>,
    /// Its GROUP BY expressions without the window's columns, sorted.
    pub group_keys: Vec<String>,
    /// Its window (`TUMBLING(5m)`, with the grace when given).
    pub window: Option<String>,
    /// Whether it emits FINAL (a window's default).
    pub emit_final: bool,
    /// Its aggregate calls, as written.
    pub aggregates: Vec<String>,
    /// Why it cannot share window state (`None` when it can).
    pub not_shareable: Option<String>,
}

impl QueryShape {
    /// The key under which queries can share window state: the same source, WHERE, GROUP
    /// BY and window.
    pub fn share_key(&self) -> Option<String> {
        if self.not_shareable.is_some() {
            return None;
        }
        let filter = match self.filter.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", self.filter.join(" AND ")),
        };
        let keys = match self.group_keys.is_empty() {
            true => String::new(),
            false => format!(" GROUP BY {}", self.group_keys.join(", ")),
        };
        Some(format!(
            "{}{filter}{keys} {}",
            self.source,
            self.window.clone().unwrap_or_default()
        ))
    }
}

/// The shape of query `q` (of statement `name`).
pub fn shape(name: &str, q: &StreamingQuery) -> QueryShape {
    let mut out = QueryShape {
        emit_final: q.window.is_some() && q.emit.is_none_or(|e| e.mode == EmitMode::Final),
        window: q.window.as_ref().map(window_text),
        group_keys: {
            let mut k: Vec<String> = group_keys(q).iter().map(|e| e.to_string()).collect();
            k.sort();
            k
        },
        aggregates: aggregate_calls(q).iter().map(|e| e.to_string()).collect(),
        ..QueryShape::default()
    };
    if let SetExpr::Select(select) = q.query.body.as_ref() {
        if let Some(f) = select.from.first() {
            if let TableFactor::Table { name, .. } = &f.relation {
                out.source = name.to_string().trim_matches('"').to_ascii_lowercase();
            }
            if let Some(j) = f.joins.first() {
                out.join = Some(j.to_string().trim().to_string());
            }
        }
        if let Some(w) = &select.selection {
            conjuncts(w, &mut out.filter);
        }
    }
    let member = Member {
        query: name.to_string(),
        ast: q.clone(),
        engine: EngineProps::default(),
        at: q.span,
    };
    out.not_shareable = check_member(&member).err().map(|e| {
        e.message
            .trim_start_matches(&format!("'{SHARE_KEY}': "))
            .to_string()
    });
    out
}

fn conjuncts(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        e => out.push(e.to_string()),
    }
}

/// `TUMBLING(5m)`, `HOPPING(1h, 5m)`, `SESSION(30s)`, `CUMULATE(1m, 1h)`, with
/// `GRACE PERIOD` when given.
pub fn window_text(w: &ferris_sql::ast::WindowSpec) -> String {
    use ferris_sql::ast::WindowKind;
    let d = |ms: i64| match ms {
        m if m > 0 && m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m > 0 && m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m > 0 && m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    };
    let mut out = match w.kind {
        WindowKind::Tumbling { size_ms } => format!("TUMBLING({}", d(size_ms)),
        WindowKind::Sliding {
            size_ms,
            advance_ms,
        } => format!("HOPPING({}, {}", d(size_ms), d(advance_ms)),
        WindowKind::Cumulate { step_ms, size_ms } => {
            format!("CUMULATE({}, {}", d(step_ms), d(size_ms))
        }
        WindowKind::Session { gap_ms } => format!("SESSION({}", d(gap_ms)),
    };
    if let Some((g, _)) = w.grace {
        out.push_str(&format!(", GRACE PERIOD {}", d(g)));
    }
    out.push(')');
    out
}

/// Why `m` cannot share window state, if it cannot: the shapes a share supports.
fn check_member(m: &Member) -> Result<(), PlanError> {
    let q = &m.ast;
    let refuse = |why: String, at: Span| Err(PlanError::at(format!("'{SHARE_KEY}': {why}"), at));
    let SetExpr::Select(select) = q.query.body.as_ref() else {
        return refuse(
            format!(
                "query '{}' is a set operation; a share needs one windowed aggregation",
                m.query
            ),
            q.span,
        );
    };
    let Some(window) = &q.window else {
        return refuse(
            format!(
                "query '{}' has no WINDOW clause; a share holds window state",
                m.query
            ),
            q.span,
        );
    };
    if let Some(e) = &q.emit
        && e.mode == EmitMode::Changes
    {
        return refuse(
            format!(
                "query '{}' emits changes; window state is shared under EMIT FINAL (the \
                 default of a window)",
                m.query
            ),
            e.span,
        );
    }
    let _ = window;
    let plain = q.query.with.is_none()
        && q.query.order_by.is_none()
        && q.query.limit_clause.is_none()
        && q.as_of.is_empty()
        && select.distinct.is_none()
        && select.from.len() == 1
        && select.from[0].joins.is_empty()
        && matches!(
            select.from[0].relation,
            TableFactor::Table { args: None, .. }
        )
        && matches!(&select.group_by, GroupByExpr::Expressions(_, mods) if mods.is_empty());
    if !plain {
        return refuse(
            format!(
                "query '{}' is not one windowed aggregation of one stream (it joins, has \
                 subqueries, DISTINCT, ORDER BY or LIMIT)",
                m.query
            ),
            q.span,
        );
    }
    if aggregate_calls(q).is_empty() {
        return refuse(format!("query '{}' computes no aggregate", m.query), q.span);
    }
    Ok(())
}

/// Whether `m` computes over the same rows, groups and windows as `first`.
/// `first` is checked already.
fn same_shape(first: &Member, m: &Member, share: &str) -> Result<(), PlanError> {
    check_member(m)?;
    let text = |q: &StreamingQuery| -> [String; 3] {
        let SetExpr::Select(s) = q.query.body.as_ref() else {
            return Default::default();
        };
        let mut keys: Vec<String> = group_keys(q).iter().map(|e| e.to_string()).collect();
        keys.sort();
        [
            s.from
                .first()
                .map(|f| match &f.relation {
                    TableFactor::Table { name, .. } => name.to_string().to_ascii_lowercase(),
                    _ => String::new(),
                })
                .unwrap_or_default(),
            s.selection
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "none".into()),
            keys.join(", "),
        ]
    };
    let window = |q: &StreamingQuery| q.window.as_ref().map(window_text).unwrap_or_default();
    let (a, b) = (text(&first.ast), text(&m.ast));
    let differs = |what: &str, x: &str, y: &str| {
        Err(PlanError::at(
            format!(
                "'{SHARE_KEY}' = '{share}': query '{}' cannot share window state with '{}': \
                 its {what} differs ({y} against {x}); the queries of a share read the same \
                 source with the same WHERE, GROUP BY, window and settings",
                m.query, first.query
            ),
            m.at,
        ))
    };
    for (i, what) in ["source", "WHERE", "GROUP BY"].iter().enumerate() {
        if a[i] != b[i] {
            return differs(what, &a[i], &b[i]);
        }
    }
    if window(&first.ast) != window(&m.ast) {
        return differs("window", &window(&first.ast), &window(&m.ast));
    }
    // The settings that change what the shared operator computes or does with bad and
    // late rows ('batch.size' and 'channel.capacity' change neither).
    let (x, y) = (&first.engine, &m.engine);
    fn shown<T: std::fmt::Debug>(v: &Option<T>) -> String {
        v.as_ref()
            .map_or("not set".to_string(), |v| format!("{v:?}"))
    }
    let settings = [
        (
            "error.strategy",
            shown(&x.error_strategy),
            shown(&y.error_strategy),
        ),
        (
            "dead_letter.path",
            shown(&x.dead_letter_path),
            shown(&y.dead_letter_path),
        ),
        (
            "event.time.field",
            shown(&x.event_time_field),
            shown(&y.event_time_field),
        ),
        (
            "watermark.max_out_of_orderness",
            shown(&x.max_out_of_orderness_ms),
            shown(&y.max_out_of_orderness_ms),
        ),
        (
            "watermark.idle_timeout",
            shown(&x.idle_timeout_ms),
            shown(&y.idle_timeout_ms),
        ),
        (
            "late.data.strategy",
            shown(&x.late_data_dead_letter),
            shown(&y.late_data_dead_letter),
        ),
        ("state.ttl", shown(&x.state_ttl_ms), shown(&y.state_ttl_ms)),
        (
            "window.allowed.lateness",
            shown(&x.allowed_lateness_ms),
            shown(&y.allowed_lateness_ms),
        ),
        (
            "state.max.rows",
            shown(&x.state_max_rows),
            shown(&y.state_max_rows),
        ),
        (
            "state.max.bytes",
            shown(&x.state_max_bytes),
            shown(&y.state_max_bytes),
        ),
    ];
    if let Some((key, a, b)) = settings.iter().find(|(_, a, b)| a != b) {
        return differs(&format!("setting '{key}'"), a, b);
    }
    Ok(())
}
