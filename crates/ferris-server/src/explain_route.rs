//! `POST /api/v1/explain`: `EXPLAIN TOPOLOGY (LIVE true) query` against the jobs this server
//! runs. The statement is planned beside each running job's application (so it names the
//! job's sources), and the job with a query of the same pipeline answers with its live
//! topology: the box view with rates, depths, backpressure and the bottleneck analysis.

use crate::api::AppState;
use crate::error::ApiError;
use crate::jobs::{Job, plan_error};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferris_engine::explain::{self, topology};
use ferris_plan::{AppError, Application, ExplainFormat, ExplainRequest};
use ferris_runtime::JobConfig;
use serde::Deserialize;
use std::sync::Arc;

/// The body of `POST /api/v1/explain`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    /// One `EXPLAIN TOPOLOGY (LIVE true) …` statement; its query names the sources of a
    /// running job.
    pub sql: String,
    /// The job to read (default: the running job whose query has the same pipeline).
    #[serde(default)]
    pub job: Option<String>,
}

/// The statement planned beside one job's application.
struct Planned {
    app: Application,
    req: ExplainRequest,
    config: JobConfig,
}

/// Lines of `text` before the statement once appended (the statement starts on the next).
fn joined(job_sql: &str, statement: &str) -> (String, u64) {
    let trimmed = job_sql.trim_end();
    let sep = if trimmed.ends_with(';') { "\n" } else { ";\n" };
    let prefix = format!("{trimmed}{sep}");
    let lines = prefix.matches('\n').count() as u64;
    (format!("{prefix}{statement}"), lines)
}

/// `e` with its position moved up by `lines` (a position in the statement, not the job).
fn shifted(e: AppError, lines: u64) -> AppError {
    match e {
        AppError::Sql(mut s) if s.line > lines => {
            s.line -= lines;
            AppError::Sql(s)
        }
        AppError::Plan(mut p) => {
            if let Some(span) = &mut p.span
                && span.start.line > lines
            {
                span.start.line -= lines;
                span.end.line = span.end.line.saturating_sub(lines).max(span.start.line);
            }
            AppError::Plan(p)
        }
        other => other,
    }
}

/// Plans `statement` beside `job`'s application.
fn plan_beside(job: &Job, statement: &str) -> Result<Planned, ApiError> {
    let (sql, lines) = joined(&job.sql, statement);
    let own = ferris_plan::plan_application(&job.sql)
        .map_err(|e| plan_error(&job.sql, &e))?
        .explains
        .len();
    let app = ferris_plan::plan_application(&sql)
        .map_err(|e| plan_error(statement, &shifted(e, lines)))?;
    let mut config = JobConfig::default();
    ferris_engine::settings::apply(&mut config, &job.settings)
        .map_err(|e| ApiError::internal(format!("the job's settings: {e}")))?;
    let added = app.explains.len().saturating_sub(own);
    let Some(req) = app.explains.last().cloned().filter(|_| added == 1) else {
        return Err(ApiError::bad_field(
            "sql",
            "give one statement: EXPLAIN TOPOLOGY (LIVE true) followed by a query",
        ));
    };
    if req.options.live.is_none() {
        return Err(ApiError::bad_field(
            "sql",
            "this endpoint answers EXPLAIN TOPOLOGY (LIVE true); run the other EXPLAIN forms \
             with ferris-cli run",
        ));
    }
    Ok(Planned { app, req, config })
}

/// `POST /api/v1/explain`.
#[utoipa::path(post, path = "/api/v1/explain",
    request_body = ExplainBody,
    responses(
        (status = 200, description = "The live topology of the job running the query: text, or JSON under FORMAT JSON (docs/explain.md)",
            content((String = "text/plain"), (Object = "application/json"))),
        (status = 400, description = "Bad body or SQL (with line and column in the statement)", body = crate::error::ErrorBody),
        (status = 404, description = "No such job, or no running job runs this query", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn explain_route(
    State(state): State<AppState>,
    body: Result<axum::Json<ExplainBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(body) = body.map_err(|e| ApiError::bad_field("body", e.body_text()))?;
    let candidates: Vec<Arc<Job>> = match &body.job {
        Some(name) => vec![state.jobs.get(name)?],
        None => state
            .jobs
            .list()
            .into_iter()
            .filter(|j| j.state().is_live())
            .collect(),
    };
    if candidates.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_running_job",
            "no job is running in this server: deploy the application first \
             (POST /api/v1/jobs or ferris-cli deploy)",
        ));
    }
    let mut first_error = None;
    let mut looked = Vec::new();
    for job in &candidates {
        let planned = match plan_beside(job, &body.sql) {
            Ok(p) => p,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let matched = explain::matching_query(&planned.app, &planned.req, &planned.config)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        match matched {
            Some(query) => return Ok(answer(job, &query, &planned.req)),
            None => looked.push(format!(
                "{} ({})",
                job.name,
                planned
                    .app
                    .queries
                    .iter()
                    .map(|q| q.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if looked.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "no_matching_job",
        format!(
            "no running job runs this query (same sources, operators, keys and parallelism); \
             looked at: {}",
            looked.join("; ")
        ),
    ))
}

/// The live view of `job`, whose query `query` runs the explained query.
fn answer(job: &Job, query: &str, req: &ExplainRequest) -> Response {
    let run = crate::topology::summary(job);
    match req.options.format {
        ExplainFormat::Json => {
            let mut doc = crate::topology::live_json(job);
            doc["explained_query"] = serde_json::Value::String(query.to_string());
            axum::Json(doc).into_response()
        }
        ExplainFormat::Text => {
            let mut text = format!(
                "Live topology of job '{}': its query '{query}' runs the explained query \
                 (same pipeline), {} s after it started\n\n",
                job.name,
                job.uptime_seconds().round()
            );
            text.push_str(&topology::topology_view(
                &job.name,
                &job.graph,
                &[],
                Some(&run),
                &req.options,
            ));
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
    }
}
