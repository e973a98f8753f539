//! What a query's settings come to once its WITH and its sources' WITH are combined: the
//! part of job assembly that needs no I/O, shared by [`crate::build_job`] and
//! [`crate::job_graph`] so that the graph describes exactly the job that runs.

use crate::error::EngineError;
use ferris_plan::{Application, PlanError, PlannedQuery, SourceDecl};
use ferris_runtime::{ErrorStrategy, LateRows, StateLimits};
use ferris_sql::ast::Span;
use std::collections::BTreeMap;

/// One query's resolved settings.
pub(crate) struct Resolved<'a> {
    /// The (left or only) source.
    pub(crate) decl: &'a SourceDecl,
    /// The right input of a stream–stream join.
    pub(crate) right: Option<&'a SourceDecl>,
    /// What to do with bad rows.
    pub(crate) strategy: ErrorStrategy,
    /// What to do with late rows.
    pub(crate) late: LateRows,
    /// The dead-letter file, when the strategy or the late-row rule needs one.
    pub(crate) dead_letter: Option<String>,
    /// The sink's connector properties (`stdout` by default, the upsert key filled in).
    pub(crate) sink: BTreeMap<String, String>,
    /// Rows per channel, when the query or its source sets it.
    pub(crate) channel_capacity: Option<usize>,
    /// Rows per source batch.
    pub(crate) batch_size: usize,
    /// Whether the keyed stage runs across the processes of a consumer group, through
    /// repartition topics.
    pub(crate) repartitioned: bool,
    /// What each stateful operator of a keyed partition may hold.
    pub(crate) limits: StateLimits,
}

/// The declaration of source `name`.
pub(crate) fn decl<'a>(
    app: &'a Application,
    name: &str,
    span: Span,
) -> Result<&'a SourceDecl, EngineError> {
    app.sources
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| PlanError::at(format!("unknown source '{name}'"), span).into())
}

/// Resolves query `q` of `app`. The query's WITH wins over its sources'.
pub(crate) fn resolve<'a>(
    app: &'a Application,
    q: &PlannedQuery,
) -> Result<Resolved<'a>, EngineError> {
    let decl = self::decl(app, &q.plan.source, q.span)?;
    let right = match &q.plan.right_source {
        Some(r) => Some(self::decl(app, r, q.span)?),
        None => None,
    };
    // A join across processes repartitions both inputs alike: both must be read in the
    // group, or rows of one input would be read by every process.
    if let Some(r) = right
        && decl.group_mode() != r.group_mode()
    {
        let (grouped, other) = if decl.group_mode() {
            (decl, r)
        } else {
            (r, decl)
        };
        return Err(PlanError::at(
            format!(
                "query '{}' joins '{}', read in consumer-group mode ('partitions' = \
                 'group'), with '{}', which is not: across processes both inputs of a join \
                 must be read in the group (each process then joins the keys of the \
                 repartition partitions it is given)",
                q.name, grouped.name, other.name
            ),
            q.span,
        )
        .into());
    }
    let sources: Vec<&SourceDecl> = std::iter::once(decl).chain(right).collect();
    // A keyed query across processes reads repartition topics that every process keeps
    // writing: a process cannot tell when the others are done, so it has no end.
    if q.plan.keyed.is_some()
        && let Some(bounded) = sources.iter().find(|d| {
            d.group_mode()
                && d.connector
                    .get("scan.bounded")
                    .is_some_and(|b| b.eq_ignore_ascii_case("latest"))
        })
    {
        return Err(PlanError::at(
            format!(
                "query '{}' aggregates or joins '{}', a bounded read ('scan.bounded') shared \
                 by a consumer group: across processes a keyed query runs through \
                 repartition topics that have no end; read it in one process ('partitions' = \
                 'all') or unbounded",
                q.name, bounded.name
            ),
            q.span,
        )
        .into());
    }
    let strategy = q
        .engine
        .error_strategy
        .or(sources.iter().find_map(|d| d.engine.error_strategy))
        .unwrap_or(ErrorStrategy::Fail);
    let dl_path = q.engine.dead_letter_path.clone().or(sources
        .iter()
        .find_map(|d| d.engine.dead_letter_path.clone()));
    let late_dead_letter = match q.engine.late_data_dead_letter {
        Some(v) => v,
        None => sources
            .iter()
            .any(|d| d.engine.late_data_dead_letter == Some(true)),
    };
    let late = match (q.plan.event_time, late_dead_letter) {
        (false, _) => LateRows::Keep,
        (true, false) => LateRows::Drop,
        (true, true) => LateRows::DeadLetter,
    };
    let needs_dead_letter = strategy == ErrorStrategy::DeadLetter || late == LateRows::DeadLetter;
    let dead_letter = match (needs_dead_letter, dl_path) {
        (true, None) => {
            return Err(PlanError::at(
                format!(
                    "query '{}': the 'dead_letter' strategy (error.strategy or \
                     late.data.strategy) needs 'dead_letter.path' (in the query's or the \
                     source's WITH)",
                    q.name
                ),
                q.span,
            )
            .into());
        }
        (true, Some(p)) => Some(p),
        (false, _) => None,
    };
    if q.plan.keyed.is_none() {
        for key in ["state.max.rows", "state.max.bytes"] {
            if let Some(&span) = q.engine.spans.get(key) {
                return Err(PlanError::at(
                    format!(
                        "'{key}' bounds the state of a stateful query (GROUP BY, OVER, join), \
                         and query '{}' holds none",
                        q.name
                    ),
                    span,
                )
                .into());
            }
        }
    }
    let limits = StateLimits {
        max_rows: q.engine.state_max_rows,
        max_bytes: Some(
            q.engine
                .state_max_bytes
                .unwrap_or(StateLimits::DEFAULT_MAX_BYTES),
        ),
    };
    let mut sink = q.sink.clone();
    // Read by other queries and written nowhere else: only to them (see build_job).
    let read = app
        .sources
        .iter()
        .any(|d| d.is_derived() && ferris_plan::writers(d).contains(&q.name));
    let default = if read { "derived" } else { "stdout" };
    sink.entry("connector".to_string())
        .or_insert_with(|| default.to_string());
    let upsert = sink
        .get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("upsert-json"));
    if upsert && !q.plan.upsert_key.is_empty() {
        sink.entry("upsert.key".to_string())
            .or_insert_with(|| q.plan.upsert_key.join(","));
    }
    Ok(Resolved {
        decl,
        right,
        strategy,
        late,
        dead_letter,
        sink,
        channel_capacity: q.engine.channel_capacity.or(decl.engine.channel_capacity),
        batch_size: decl.engine.batch_size.unwrap_or(1024),
        repartitioned: q.plan.keyed.is_some() && decl.group_mode(),
        limits,
    })
}
