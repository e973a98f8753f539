//! Planning joins. A stream joined to a TABLE becomes a lookup join (the table is loaded
//! first, each stream row looks its key up); two streams joined on equal keys within a time
//! bound become an interval join (keyed, both inputs hash-routed by the key).

use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::physical::ExprPlanner;
use arrow::datatypes::SchemaRef;
use datafusion_common::{Column, ScalarValue};
use datafusion_expr::logical_plan::Join;
use datafusion_expr::utils::{conjunction, split_conjunction};
use datafusion_expr::{BinaryExpr, Expr, JoinType, LogicalPlan, Operator as Op};
use ferris_operators::join::asof::AsOfJoinSpec;
use ferris_operators::join::interval::{IntervalJoinSpec, JoinKind};
use ferris_operators::join::lookup::{LookupKind, LookupSpec};
use ferris_sql::ast::{Span, SystemTimeAsOf};
use std::sync::Arc;

/// A planned join.
pub(crate) enum PlannedJoin {
    /// Stream–table: runs in the stateless stage.
    Lookup {
        /// The stream read.
        stream: String,
        /// The table looked up.
        table: String,
        /// What the operator needs.
        spec: Arc<LookupSpec>,
        /// ON conditions beyond the key (INNER only), applied after the join.
        residual: Option<Expr>,
    },
    /// Stream–table as of the stream row's event time: a keyed stage with two inputs.
    AsOf {
        /// The stream read (side 0).
        stream: String,
        /// The table (side 1, read as a stream of versions).
        table: String,
        /// What the operator needs.
        spec: Arc<AsOfJoinSpec>,
        /// The keys the stream computes (expression keys).
        computed: Option<crate::join_keys::ComputedKeys>,
        /// ON conditions beyond the key (INNER only), applied after the join.
        residual: Option<Expr>,
    },
    /// Stream–stream within a time bound: a keyed stage with two inputs.
    Interval {
        /// Left stream.
        left: String,
        /// Right stream.
        right: String,
        /// What the operator needs.
        spec: Arc<IntervalJoinSpec>,
        /// The keys each input computes (expression keys), left then right.
        computed: [Option<crate::join_keys::ComputedKeys>; 2],
        /// ON conditions beyond keys and time bounds (INNER only), applied after the join.
        residual: Option<Expr>,
    },
}

/// Splits the ON condition into equality pairs (left expression, right expression) and
/// the rest. (DataFusion's SQL planner leaves them together; its optimizer would split them.)
fn equijoin(j: &Join) -> (Vec<(Expr, Expr)>, Option<Expr>) {
    let mut on = j.on.clone();
    let mut rest = Vec::new();
    let only = |e: &Expr, schema: &datafusion_common::DFSchema| {
        let refs = e.column_refs();
        !refs.is_empty() && refs.iter().all(|c| schema.has_column(c))
    };
    for c in j.filter.as_ref().map(split_conjunction).unwrap_or_default() {
        if let Expr::BinaryExpr(BinaryExpr {
            left: a,
            op: Op::Eq,
            right: b,
        }) = c
        {
            if only(a, j.left.schema()) && only(b, j.right.schema()) {
                on.push((a.as_ref().clone(), b.as_ref().clone()));
                continue;
            }
            if only(b, j.left.schema()) && only(a, j.right.schema()) {
                on.push((b.as_ref().clone(), a.as_ref().clone()));
                continue;
            }
        }
        rest.push(c.clone());
    }
    (on, conjunction(rest))
}

/// The source a join input reads (`[SubqueryAlias] → TableScan`).
fn side_source(plan: &LogicalPlan) -> Option<String> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => side_source(&a.input),
        LogicalPlan::TableScan(t) if t.filters.is_empty() && t.fetch.is_none() => {
            Some(t.table_name.table().to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Whether `plan` (below the projection) is a join of two streams (no TABLE side).
pub(crate) fn is_stream_join(plan: &LogicalPlan, catalog: &Catalog) -> bool {
    let mut p = plan;
    loop {
        match p {
            LogicalPlan::Filter(f) => p = f.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => p = a.input.as_ref(),
            LogicalPlan::Join(j) => {
                return [&j.left, &j.right].iter().all(|side| {
                    side_source(side).is_some_and(|s| catalog.primary_key(&s).is_none())
                });
            }
            _ => return false,
        }
    }
}

/// Plans `j`; errors point at `span` (the JOIN clause). For an INNER join, the conditions of
/// the query's `WHERE` that compare the two inputs count as ON conditions (keys and time
/// bounds), as Flink reads `FROM a JOIN b ON k WHERE a.ts BETWEEN b.ts - … AND b.ts`; the
/// WHERE is still applied to the joined rows, which changes nothing for an inner join.
pub(crate) fn plan_join(
    j: &Join,
    catalog: &Catalog,
    span: Span,
    where_expr: Option<&Expr>,
    ttl_ms: Option<i64>,
    as_of: &[SystemTimeAsOf],
) -> Result<PlannedJoin, PlanError> {
    let (Some(left), Some(right)) = (side_source(&j.left), side_source(&j.right)) else {
        return Err(PlanError::not_supported(
            "joining a subquery or a nested join (join declared streams and tables directly)",
            span,
        ));
    };
    let mut j = j.clone();
    if j.join_type == JoinType::Inner
        && let Some(w) = where_expr
    {
        let both = |e: &Expr| {
            let refs = e.column_refs();
            refs.iter().any(|c| j.left.schema().has_column(c))
                && refs.iter().any(|c| j.right.schema().has_column(c))
        };
        let mut conditions: Vec<Expr> = j.filter.iter().cloned().collect();
        conditions.extend(
            split_conjunction(w)
                .into_iter()
                .filter(|c| both(c))
                .cloned(),
        );
        j.filter = conjunction(conditions);
    }
    let j = &j;
    let (on, filter) = equijoin(j);
    let j = &Join {
        on,
        filter,
        ..j.clone()
    };
    if j.on.is_empty() {
        return Err(PlanError::at(
            "a join needs an equality condition between its inputs, e.g. ON a.key = b.key",
            span,
        ));
    }
    let kind = match j.join_type {
        JoinType::Inner => JoinKind::Inner,
        JoinType::Left => JoinKind::Left,
        JoinType::Right => JoinKind::Right,
        JoinType::Full => JoinKind::Full,
        other => {
            return Err(PlanError::not_supported(
                &format!("{other} JOIN (INNER, LEFT, RIGHT and FULL joins run)"),
                span,
            ));
        }
    };
    let left_table = catalog.primary_key(&left).is_some();
    let right_table = catalog.primary_key(&right).is_some();
    if (left_table || right_table) && kind.pads_right() {
        return Err(PlanError::not_supported(
            "RIGHT and FULL joins with a table (a table row is never done waiting for a \
             match; join the stream first: FROM stream LEFT JOIN table)",
            span,
        ));
    }
    match (left_table, right_table) {
        (true, true) => Err(PlanError::not_supported(
            "joining two tables (join a stream to a table, or two streams)",
            span,
        )),
        (false, true) => plan_lookup(j, catalog, (&left, &right), kind, false, as_of, span),
        (true, false) if kind == JoinKind::Inner => {
            plan_lookup(j, catalog, (&right, &left), kind, true, as_of, span)
        }
        (true, false) => Err(PlanError::at(
            "in a LEFT JOIN between a table and a stream the stream must come first \
             (FROM stream LEFT JOIN table)",
            span,
        )),
        (false, false) => plan_interval(j, catalog, &left, &right, kind, span, ttl_ms),
    }
}

fn plan_lookup(
    j: &Join,
    catalog: &Catalog,
    (stream, table): (&str, &str),
    kind: JoinKind,
    table_first: bool,
    as_of: &[SystemTimeAsOf],
    span: Span,
) -> Result<PlannedJoin, PlanError> {
    let pk = catalog.primary_key(table).unwrap_or_default().to_vec();
    let stream_plan = if table_first { &j.right } else { &j.left };
    // Match every key column of the table with a stream expression.
    let mut stream_keys: Vec<Option<Expr>> = vec![None; pk.len()];
    for (l, r) in &j.on {
        let (s, t) = if table_first { (r, l) } else { (l, r) };
        let Some(col) = plain_column(t) else {
            return Err(PlanError::at(
                format!("a stream–table join matches table columns, found {t}"),
                span,
            ));
        };
        let Some(pos) = pk.iter().position(|k| *k == col.name) else {
            return Err(PlanError::at(
                format!(
                    "a stream–table join must match the table's PRIMARY KEY ({}); '{}' is not part of it",
                    pk.join(", "),
                    col.name
                ),
                span,
            ));
        };
        stream_keys[pos] = Some(s.clone());
    }
    let missing: Vec<&String> = pk
        .iter()
        .zip(&stream_keys)
        .filter(|(_, k)| k.is_none())
        .map(|(c, _)| c)
        .collect();
    if !missing.is_empty() {
        return Err(PlanError::at(
            format!(
                "a stream–table join must match the whole PRIMARY KEY of '{table}'; missing: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            span,
        ));
    }
    if kind == JoinKind::Left && j.filter.is_some() {
        return Err(PlanError::not_supported(
            "extra ON conditions in a LEFT stream–table join (move them to WHERE or the key)",
            span,
        ));
    }
    // RIGHT and FULL joins with a table are refused before.
    let kind = match kind {
        JoinKind::Left | JoinKind::Right | JoinKind::Full => LookupKind::Left,
        JoinKind::Inner => LookupKind::Inner,
    };
    if let crate::plan_asof::TableRead::AsOf =
        crate::plan_asof::table_read(catalog, stream, table, as_of, span)?
    {
        let keys: Vec<Expr> = stream_keys.iter().flatten().cloned().collect();
        let (spec, computed) = crate::plan_asof::asof_spec(
            j,
            catalog,
            (stream, table),
            &keys,
            kind,
            table_first,
            span,
        )?;
        return Ok(PlannedJoin::AsOf {
            stream: stream.to_string(),
            table: table.to_string(),
            spec,
            computed,
            residual: j.filter.clone(),
        });
    }
    let planner = ExprPlanner::new(stream_plan.schema().clone(), span);
    let keys = stream_keys
        .iter()
        .flatten()
        .map(|e| planner.physical(e))
        .collect::<Result<Vec<_>, _>>()?;
    let condition =
        j.on.iter()
            .map(|(l, r)| format!("{} = {}", l.human_display(), r.human_display()))
            .collect::<Vec<_>>()
            .join(" AND ");
    let output_schema: SchemaRef = Arc::new(j.schema.as_arrow().clone());
    let declared = catalog
        .schema(stream)
        .map(|s| s.fields().len())
        .unwrap_or_default();
    let stream_padding = stream_plan
        .schema()
        .fields()
        .iter()
        .skip(declared)
        .map(|f| f.data_type().clone())
        .collect();
    Ok(PlannedJoin::Lookup {
        stream: stream.to_string(),
        table: table.to_string(),
        spec: Arc::new(LookupSpec {
            kind,
            table: table.to_string(),
            stream_keys: keys,
            table_first,
            stream_padding,
            output_schema,
            condition,
        }),
        residual: j.filter.clone(),
    })
}

fn plain_column(e: &Expr) -> Option<&Column> {
    match e {
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

fn plan_interval(
    j: &Join,
    catalog: &Catalog,
    left: &str,
    right: &str,
    kind: JoinKind,
    span: Span,
    ttl_ms: Option<i64>,
) -> Result<PlannedJoin, PlanError> {
    let time_of =
        |source: &str| -> Result<String, PlanError> {
            catalog.event_time(source).map(|s| s.to_string()).ok_or_else(|| {
            PlanError::at(
                format!(
                    "a join of two streams needs event time on both; '{source}' declares none \
                     (add WATERMARK FOR <ts> AS <ts> - INTERVAL '5' SECOND)"
                ),
                span,
            )
        })
        };
    let (lt, rt) = (time_of(left)?, time_of(right)?);
    let lschema = j.left.schema();
    let rschema = j.right.schema();
    let lkeys = crate::join_keys::side_keys(
        &j.on.iter().map(|(l, _)| l).collect::<Vec<_>>(),
        lschema,
        span,
    )?;
    let rkeys = crate::join_keys::side_keys(
        &j.on.iter().map(|(_, r)| r).collect::<Vec<_>>(),
        rschema,
        span,
    )?;
    for (((l, r), lt), rt) in j.on.iter().zip(&lkeys.types).zip(&rkeys.types) {
        if lt != rt {
            return Err(PlanError::at(
                format!("join keys {l} ({lt}) and {r} ({rt}) must have the same type"),
                span,
            ));
        }
    }
    let (left_keys, right_keys) = (lkeys.columns.clone(), rkeys.columns.clone());
    let left_time = index_by_name(lschema, &lt)
        .ok_or_else(|| PlanError::at(format!("event-time column '{lt}' not found"), span))?;
    let right_time = index_by_name(rschema, &rt)
        .ok_or_else(|| PlanError::at(format!("event-time column '{rt}' not found"), span))?;
    let left_col = lschema.qualified_field(left_time);
    let right_col = rschema.qualified_field(right_time);
    let left_col = Column::new(left_col.0.cloned(), left_col.1.name());
    let right_col = Column::new(right_col.0.cloned(), right_col.1.name());

    // Time bounds: right.ts - left.ts ∈ [lower, upper]. Equal event times (a join of two
    // windowed streams on their window bounds) bound it to [0, 0].
    let equal_times = left_keys
        .iter()
        .zip(&right_keys)
        .any(|(l, r)| *l == left_time && *r == right_time);
    let mut lower: Option<i64> = equal_times.then_some(0);
    let mut upper: Option<i64> = equal_times.then_some(0);
    let mut residual = Vec::new();
    // `x BETWEEN lo AND hi` is `x >= lo AND x <= hi`: one half may be a time bound and the
    // other a condition on other columns (`b.ts BETWEEN a.ts AND a.expires`).
    let conditions: Vec<Expr> = j
        .filter
        .as_ref()
        .map(split_conjunction)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|c| match c {
            Expr::Between(b) if !b.negated => vec![
                b.expr.as_ref().clone().gt_eq(b.low.as_ref().clone()),
                b.expr.as_ref().clone().lt_eq(b.high.as_ref().clone()),
            ],
            other => vec![other.clone()],
        })
        .collect();
    for c in &conditions {
        match bound(c, &left_col, &right_col, span)? {
            Some(bounds) => {
                for (is_lower, v) in bounds {
                    if is_lower {
                        lower = Some(lower.map_or(v, |x: i64| x.max(v)));
                    } else {
                        upper = Some(upper.map_or(v, |x: i64| x.min(v)));
                    }
                }
            }
            None => residual.push(c.clone()),
        }
    }
    // A regular join with 'state.ttl': each row is kept, and joins, for the TTL of event
    // time on either side of its own (on the side a condition leaves open, e.g. `b.ts BETWEEN
    // a.ts AND a.expires`, whose upper end is a column and so a residual condition).
    if let Some(ttl) = ttl_ms {
        lower = lower.or(Some(-ttl));
        upper = upper.or(Some(ttl));
    }
    let (Some(lower_ms), Some(upper_ms)) = (lower, upper) else {
        return Err(PlanError::at(
            format!(
                "a join of two streams needs a time bound on both sides, e.g. \
                 {right_col} BETWEEN {left_col} AND {left_col} + INTERVAL '1' HOUR, or a \
                 'state.ttl' for a regular join (without one its state grows forever)"
            ),
            span,
        ));
    };
    if lower_ms > upper_ms {
        return Err(PlanError::at(
            "the join's time bound is empty (its lower end is above its upper end)",
            span,
        ));
    }
    let residual = conjunction(residual);
    if kind != JoinKind::Inner && residual.is_some() {
        return Err(PlanError::not_supported(
            "extra ON conditions in an outer interval join (move them to WHERE)",
            span,
        ));
    }
    Ok(PlannedJoin::Interval {
        left: left.to_string(),
        right: right.to_string(),
        spec: Arc::new(IntervalJoinSpec {
            kind,
            left_schema: lkeys.schema,
            right_schema: rkeys.schema,
            left_keys,
            right_keys,
            left_time,
            right_time,
            lower_ms,
            upper_ms,
            output_schema: Arc::new(j.schema.as_arrow().clone()),
            left_out: lschema.fields().len(),
            right_out: rschema.fields().len(),
        }),
        computed: [lkeys.computed, rkeys.computed],
        residual,
    })
}

fn index_by_name(schema: &datafusion_common::DFSchema, name: &str) -> Option<usize> {
    schema.fields().iter().position(|f| f.name() == name)
}

/// A time term: a side's event-time column plus a constant (ms). `Some(true, off)` for the
/// right side, `Some(false, off)` for the left.
fn time_term(e: &Expr, left: &Column, right: &Column) -> Option<(bool, i64)> {
    match e {
        Expr::Column(c) if c == right => Some((true, 0)),
        Expr::Column(c) if c == left => Some((false, 0)),
        Expr::Cast(c) => time_term(&c.expr, left, right),
        Expr::BinaryExpr(BinaryExpr {
            left: a,
            op,
            right: b,
        }) => {
            let sign = match op {
                Op::Plus => 1,
                Op::Minus => -1,
                _ => return None,
            };
            if let (Some((side, off)), Some(ms)) = (time_term(a, left, right), interval_ms(b)) {
                return Some((side, off + sign * ms));
            }
            if sign == 1
                && let (Some(ms), Some((side, off))) = (interval_ms(a), time_term(b, left, right))
            {
                return Some((side, off + ms));
            }
            None
        }
        _ => None,
    }
}

/// An interval literal in milliseconds (no months: their length varies).
fn interval_ms(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(v.days as i64 * 86_400_000 + v.milliseconds as i64)
        }
        Expr::Cast(c) => interval_ms(&c.expr),
        _ => None,
    }
}

/// Bounds on right.ts - left.ts given by one conjunct: (is_lower, value). `None` when the
/// conjunct is not a time bound.
fn bound(
    c: &Expr,
    left: &Column,
    right: &Column,
    span: Span,
) -> Result<Option<Vec<(bool, i64)>>, PlanError> {
    // d = right - left; a term pair (x, y) with x op y.
    let cmp = |x: &Expr, op: Op, y: &Expr| -> Option<Vec<(bool, i64)>> {
        let (sx, ox) = time_term(x, left, right)?;
        let (sy, oy) = time_term(y, left, right)?;
        if sx == sy {
            return None;
        }
        // Normalise to: right + a  op  left + b   ⇒   d op (b - a).
        let (op, a, b) = if sx {
            (op, ox, oy)
        } else {
            (op.swap()?, oy, ox)
        };
        let v = b - a;
        match op {
            Op::GtEq => Some(vec![(true, v)]),
            Op::Gt => Some(vec![(true, v + 1)]),
            Op::LtEq => Some(vec![(false, v)]),
            Op::Lt => Some(vec![(false, v - 1)]),
            Op::Eq => Some(vec![(true, v), (false, v)]),
            _ => None,
        }
    };
    Ok(match c {
        Expr::Between(b) if !b.negated => {
            let lo = cmp(&b.expr, Op::GtEq, &b.low);
            let hi = cmp(&b.expr, Op::LtEq, &b.high);
            match (lo, hi) {
                (Some(mut l), Some(h)) => {
                    l.extend(h);
                    Some(l)
                }
                (None, None) => None,
                _ => {
                    return Err(PlanError::at(
                        "a BETWEEN time bound must compare the two streams' event-time columns \
                         (plus constant intervals)",
                        span,
                    ));
                }
            }
        }
        Expr::BinaryExpr(BinaryExpr {
            left: x,
            op,
            right: y,
        }) => cmp(x, *op, y),
        _ => None,
    })
}

/// The stateful operator of a query joining two inputs.
pub(crate) enum PairJoin {
    /// Stream–stream within a time bound.
    Interval(Arc<IntervalJoinSpec>),
    /// Stream–table as of event time.
    AsOf(Arc<AsOfJoinSpec>),
}

impl PairJoin {
    fn operator(&self) -> Result<Box<dyn ferris_runtime::Operator>, String> {
        match self {
            PairJoin::Interval(s) => ferris_operators::join::interval_join_operator(s.clone()),
            PairJoin::AsOf(s) => ferris_operators::join::asof::asof_join_operator(s.clone()),
        }
    }

    /// The routing key columns of the left and right inputs.
    fn keys(&self) -> (Vec<usize>, Vec<usize>) {
        match self {
            PairJoin::Interval(s) => (s.left_keys.clone(), s.right_keys.clone()),
            // The stream is always side 0, whatever the order in FROM.
            PairJoin::AsOf(s) => (s.stream_keys.clone(), s.table_keys.clone()),
        }
    }

    /// The joined rows' schema.
    fn output_schema(&self) -> SchemaRef {
        match self {
            PairJoin::Interval(s) => s.output_schema.clone(),
            PairJoin::AsOf(s) => s.output_schema.clone(),
        }
    }

    /// Whether WHERE conditions on the left input alone may filter its rows before the
    /// join: not when the join pads left rows in (a left row filtered out would turn its
    /// right rows into unmatched ones, which a condition true on NULL keeps).
    pub(crate) fn left_pushdown(&self) -> bool {
        match self {
            PairJoin::Interval(s) => !s.kind.pads_right(),
            PairJoin::AsOf(_) => true,
        }
    }

    /// Likewise for the right input. Never a table's versions: dropping one would make a
    /// stream row join an older version instead.
    pub(crate) fn right_pushdown(&self) -> bool {
        match self {
            PairJoin::Interval(s) => !s.kind.pads_left(),
            PairJoin::AsOf(_) => false,
        }
    }
}

/// The parts of a query joining two inputs in a keyed stage.
pub(crate) struct IntervalQuery {
    pub(crate) left: String,
    pub(crate) right: String,
    pub(crate) left_schema: SchemaRef,
    /// WHERE conditions on the left input alone, applied to its rows before the join.
    pub(crate) left_filter: Option<(Arc<dyn datafusion_physical_expr::PhysicalExpr>, String)>,
    /// Those on the right input alone, with its schema.
    pub(crate) right_filter: Option<(
        Arc<dyn datafusion_physical_expr::PhysicalExpr>,
        String,
        SchemaRef,
    )>,
    pub(crate) spec: PairJoin,
    pub(crate) filter: Option<(Arc<dyn datafusion_physical_expr::PhysicalExpr>, String)>,
    pub(crate) projection: Vec<Arc<dyn datafusion_physical_expr::PhysicalExpr>>,
    pub(crate) projection_text: String,
    pub(crate) output_schema: SchemaRef,
    pub(crate) logical_plan: String,
    /// The output column carrying the stream's event time on (as-of joins emit in event
    /// time; an interval join's output has none).
    pub(crate) output_time: Option<String>,
    /// The keys each input computes (expression keys), left then right.
    pub(crate) computed: [Option<crate::join_keys::ComputedKeys>; 2],
}

/// A query joining two inputs: both hash-routed by the key into the join, then WHERE and the
/// SELECT list in the keyed stage.
pub(crate) fn interval_query(q: IntervalQuery) -> crate::query::QueryPlan {
    use ferris_operators::{FilterOp, ProjectOp};
    use ferris_runtime::Operator;
    let spec = q.spec;
    let filter = q.filter;
    let projection = q.projection;
    let output_schema = q.output_schema.clone();
    let text = q.projection_text.clone();
    let mut describe = vec![spec.operator().map(|op| op.describe()).unwrap_or_default()];
    if let Some((_, t)) = &filter {
        describe.push(format!("Filter: {t}"));
    }
    describe.push(format!("Project: {text}"));
    let (key_columns, right_key_columns) = spec.keys();
    let joined_schema = spec.output_schema();
    let factory = move || -> Result<Vec<Box<dyn Operator>>, String> {
        let mut ops = vec![spec.operator()?];
        if let Some((pred, t)) = &filter {
            ops.push(Box::new(FilterOp::new(
                pred.clone(),
                joined_schema.clone(),
                t.clone(),
            )));
        }
        ops.push(Box::new(ProjectOp::new(
            projection.clone(),
            output_schema.clone(),
            text.clone(),
        )));
        Ok(ops)
    };
    crate::query::QueryPlan {
        source: q.left,
        input_schema: q.left_schema.clone(),
        lookup: None,
        filter_schema: q.left_schema.clone(),
        filter: q.left_filter,
        projection: Vec::new(),
        projection_text: String::new(),
        projection_schema: q.left_schema,
        keyed: Some(crate::query::KeyedPlan {
            key_columns,
            right_key_columns,
            operators: Arc::new(factory),
            order_columns: 0,
            describe,
            time_column: None,
        }),
        right_source: Some(q.right),
        right_filter: q.right_filter,
        join_keys: q.computed,
        output_schema: q.output_schema,
        event_time: true,
        lateness: ferris_runtime::Lateness::BelowWatermark,
        upsert_key: Vec::new(),
        column_lineage: Vec::new(),
        input_columns: Vec::new(),
        logical_plan: q.logical_plan,
        updating: false,
        retracts: false,
        output_time: q.output_time,
    }
}
