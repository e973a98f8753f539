//! The live topology of a running job: its graph with what its metrics say now (rows,
//! channel depth and backpressure, busy time, the bottleneck analysis), as JSON, as the
//! box view of `EXPLAIN TOPOLOGY`, as an SVG drawing, as a stream of server-sent events,
//! and the web page at `/ui` that draws it.

use crate::api::AppState;
use crate::error::ApiError;
use crate::jobs::Job;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferris_engine::explain::{self, analyze::RunSummary, topology};
use ferris_observe::Sample;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A channel this full (depth over capacity) or more colours its receiver as backpressured.
pub const FULL_RATIO: f64 = 0.8;
/// A channel this full or more colours its receiver as busy.
pub const BUSY_RATIO: f64 = 0.5;
/// How often the event stream sends the topology.
const STREAM_EVERY: Duration = Duration::from_secs(1);

/// `?format=json|text` of the topology route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormatQuery {
    format: Option<String>,
    /// Analyse the last `timerange` (e.g. `1h`, `30m`) instead of the whole run.
    timerange: Option<String>,
}

/// `90s`, `30m`, `1h`, `2d` (a number alone is seconds).
pub(crate) fn parse_range(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (n, unit) = match t.char_indices().last()? {
        (i, 's') => (&t[..i], 1.0),
        (i, 'm') => (&t[..i], 60.0),
        (i, 'h') => (&t[..i], 3600.0),
        (i, 'd') => (&t[..i], 86_400.0),
        _ => (t, 1.0),
    };
    let v: f64 = n.trim().parse().ok()?;
    (v > 0.0 && v.is_finite() && v * unit <= 86_400.0 * 365.0)
        .then(|| Duration::from_secs_f64(v * unit))
}

/// The job's run over the last `range`, from its kept snapshots and one taken now.
fn window_summary(job: &Job, range: Duration) -> RunSummary {
    let now = std::time::Instant::now();
    let kept = job.history().window(now, range);
    let end = job.registry.snapshot();
    let uptime = now.duration_since(job.started);
    let (start, inside, length): (&[Sample], &[_], Duration) = match kept.first() {
        // The range starts at a kept snapshot.
        Some((t0, first)) if uptime > range => (first, &kept[1..], now.duration_since(*t0)),
        // The job started inside the range: its counters count from zero at its start.
        _ => (&[], &kept[..], uptime),
    };
    let between: Vec<&[Sample]> = inside.iter().map(|(_, s)| s.as_slice()).collect();
    explain::window::summarize_window(
        start,
        &end,
        &between,
        &job.graph,
        length,
        job.state().as_str(),
    )
}

/// The job's live topology as JSON: the graph, the run so far, and per node and edge the
/// health colour the web page shows.
pub(crate) fn live_json(job: &Job) -> Value {
    live_json_of(job, summary(job))
}

/// [`live_json`] of the run `run` (the whole run so far, or a past range of it).
fn live_json_of(job: &Job, run: RunSummary) -> Value {
    let mut health: BTreeMap<String, &str> = job
        .graph
        .nodes
        .iter()
        .map(|n| (n.id.clone(), "ok"))
        .collect();
    let mut edges = serde_json::Map::new();
    // Nodes whose own output channel is full: held back by what follows, not the cause.
    let mut full_from: Vec<String> = Vec::new();
    let secs = (run.execution_ms / 1000.0).max(1e-3);
    for e in &job.graph.edges {
        let c = run
            .channels
            .iter()
            .find(|c| Some(&c.channel) == e.channel.as_ref());
        let ratio = c.map_or(0.0, |c| {
            if c.capacity > 0 {
                // One batch larger than the whole capacity may sit in an empty channel.
                (c.depth as f64 / c.capacity as f64).min(1.0)
            } else {
                0.0
            }
        });
        // A full channel means its receiver cannot keep up.
        let level = if ratio >= FULL_RATIO {
            "backpressured"
        } else if ratio >= BUSY_RATIO {
            "busy"
        } else {
            "ok"
        };
        if let Some(h) = health.get_mut(&e.to)
            && rank(level) > rank(h)
        {
            *h = level;
        }
        if level == "backpressured" {
            full_from.push(e.from.clone());
        }
        edges.insert(
            e.id.clone(),
            json!({
                "fill_ratio": ratio,
                "level": level,
                "messages_per_sec": c.map_or(0.0, |c| c.messages as f64 / secs),
                "blocked_ms": c.map_or(0.0, |c| c.blocked_ms),
            }),
        );
    }
    for id in &full_from {
        if let Some(h) = health.get_mut(id)
            && *h == "backpressured"
        {
            *h = "busy";
        }
    }
    let state = job.state();
    if state.as_str() == "failed" {
        for h in health.values_mut() {
            *h = "failed";
        }
    }
    let nodes: serde_json::Map<String, Value> = job
        .graph
        .nodes
        .iter()
        .map(|n| {
            (
                n.id.clone(),
                json!({
                    "health": health.get(&n.id).copied().unwrap_or("ok"),
                    "kind": n.kind.as_str(),
                    "sql": n.sql,
                    "line": n.line,
                    "operators": n.operators,
                    "query": n.query,
                }),
            )
        })
        .collect();
    json!({
        "version": explain::EXPLAIN_FORMAT_VERSION,
        "job": job.name,
        "state": state.as_str(),
        "uptime_seconds": job.uptime_seconds(),
        "graph": ferris_engine::graph_json(&job.graph),
        "run": explain::run_json(&job.graph, &run),
        "nodes": nodes,
        "edges": edges,
    })
}

fn rank(level: &str) -> u8 {
    match level {
        "failed" => 3,
        "backpressured" => 2,
        "busy" => 1,
        _ => 0,
    }
}

/// The job's metrics now, as a run.
pub(crate) fn summary(job: &Job) -> RunSummary {
    let snapshot = job.registry.snapshot();
    explain::analyze::summarize(
        &snapshot,
        &job.graph,
        job.started.elapsed(),
        job.state().as_str(),
    )
}

fn job_of(
    state: &AppState,
    name: Result<Path<String>, PathRejection>,
) -> Result<Arc<Job>, ApiError> {
    let name = name
        .map(|Path(n)| n)
        .map_err(|e| ApiError::bad_field("name", e.body_text()))?;
    state.jobs.get(&name)
}

/// `GET /api/v1/jobs/{name}/topology[?format=text]`.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/topology",
    params(
        ("name" = String, Path, description = "The job's name"),
        ("format" = Option<String>, Query, description = "json (default) or text (the EXPLAIN TOPOLOGY box view)"),
        ("timerange" = Option<String>, Query, description = "Analyse the last 90s, 30m, 1h, 1d … instead of the whole run (snapshots kept every 15 s for an hour, every 5 min for a day)"),
    ),
    responses(
        (status = 200, description = "The live topology (docs/explain.md)", body = Object),
        (status = 400, description = "Bad format", body = crate::error::ErrorBody),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn topology_route(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let job = job_of(&state, name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_field("query", e.body_text()))?;
    let run = match &q.timerange {
        Some(t) => {
            let range = parse_range(t).ok_or_else(|| {
                ApiError::bad_field(
                    "timerange",
                    format!("'{t}': give a duration such as 90s, 30m, 1h or 1d"),
                )
            })?;
            window_summary(&job, range)
        }
        None => summary(&job),
    };
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(axum::Json(live_json_of(&job, run)).into_response()),
        "text" => {
            let options = ferris_plan::ExplainOptions {
                plan: false,
                topology: true,
                analyze: true,
                costs: true,
                buffers: true,
                timing: true,
                verbose: false,
                format: ferris_plan::ExplainFormat::Text,
                metrics: true,
                performance: true,
                bottlenecks: true,
                duration: None,
                live: None,
                metadata: false,
                history: None,
            };
            let mut text = match &q.timerange {
                Some(_) => format!(
                    "Over the last {} of job '{}' (the metrics kept at that time and now)\n\n",
                    explain::window::words(Duration::from_secs_f64(run.execution_ms / 1000.0)),
                    job.name
                ),
                None => String::new(),
            };
            text.push_str(&topology::topology_view(
                &job.name,
                &job.graph,
                &[],
                Some(&run),
                &options,
            ));
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        other => Err(ApiError::bad_field(
            "format",
            format!("'{other}': give json or text"),
        )),
    }
}

/// `GET /api/v1/jobs/{name}/topology.svg`: the graph drawn (laid out by the server).
#[utoipa::path(get, path = "/api/v1/jobs/{name}/topology.svg",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, description = "The job graph as SVG", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn topology_svg(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let job = job_of(&state, name)?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml")],
        ferris_engine::graph_svg(&job.graph),
    )
        .into_response())
}

/// `GET /api/v1/jobs/{name}/topology/stream`: the live topology JSON every second as
/// server-sent events (`event: topology`), until the client goes away.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/topology/stream",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, description = "Server-sent events, one `topology` event a second", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn topology_stream(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let job = job_of(&state, name)?;
    let closing = state.closing.subscribe();
    let stream = futures_util::stream::unfold(
        (job, closing, true),
        |(job, mut closing, first)| async move {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(STREAM_EVERY) => {}
                    _ = closing.changed() => {}
                }
            }
            // The server is stopping: end the stream, so its shutdown does not wait.
            if *closing.borrow() {
                return None;
            }
            let data = live_json(&job).to_string();
            let event = Event::default().event("topology").data(data);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (job, closing, false),
            ))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `?record=ID` of the lineage route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordQuery {
    record: Option<String>,
}

/// The events of followed records as JSON, grouped by record then query, in time order.
pub fn lineage_json(events: &[ferris_runtime::lineage::LineageEvent]) -> Vec<Value> {
    let mut by_record: BTreeMap<&str, Vec<&ferris_runtime::lineage::LineageEvent>> =
        BTreeMap::new();
    for e in events {
        by_record.entry(&e.record).or_default().push(e);
    }
    by_record
        .into_iter()
        .map(|(record, mut evs)| {
            evs.sort_by_key(|e| (e.query.clone(), e.at_unix_nanos));
            let first = evs.first().map_or(0, |e| e.at_unix_nanos);
            json!({
                "record": record,
                "events": evs.iter().map(|e| json!({
                    "query": e.query,
                    "node": e.node,
                    "hop": e.hop,
                    "detail": e.detail,
                    "row": e.row.as_ref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
                    "at_unix_nanos": e.at_unix_nanos,
                    "since_read_ms": (e.at_unix_nanos.saturating_sub(first)) as f64 / 1e6,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `GET /api/v1/jobs/{name}/lineage[?record=ID]`: the paths of the records the job's
/// lineage sample followed (all kept, or those of one record id).
#[utoipa::path(get, path = "/api/v1/jobs/{name}/lineage",
    params(
        ("name" = String, Path, description = "The job's name"),
        ("record" = Option<String>, Query, description = "A record id: source/partition/position"),
    ),
    responses(
        (status = 200, description = "The followed records and their events (docs/explain.md)", body = Object),
        (status = 400, description = "Bad query parameter", body = crate::error::ErrorBody),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job runs without lineage ('lineage.sample')", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn lineage_route(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<RecordQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let job = job_of(&state, name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_field("query", e.body_text()))?;
    let Some(lineage) = &job.lineage else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "lineage_off",
            format!(
                "job '{}' runs without record lineage: deploy it with the setting \
                 lineage.sample=R (a share of rows, e.g. 0.01)",
                job.name
            ),
        ));
    };
    let (events, dropped) = lineage.events();
    let events: Vec<_> = match &q.record {
        Some(r) => events
            .into_iter()
            .filter(|e| &*e.record == r.as_str())
            .collect(),
        None => events,
    };
    Ok(axum::Json(json!({
        "job": job.name,
        "sample": lineage.sample(),
        "dropped_events": dropped,
        "records": lineage_json(&events),
    }))
    .into_response())
}

/// `GET /ui`: the web topology view (no external resource: it works offline).
pub(crate) async fn ui_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("ui/index.html"),
    )
        .into_response()
}

/// `GET /ui/app.js`.
pub(crate) async fn ui_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("ui/app.js"),
    )
        .into_response()
}
