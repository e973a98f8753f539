//! The HTTP routes: the REST API under `/api/v1`, `/metrics`, `/health`, `/ready` and
//! `/health/detail`. The OpenAPI document at `/api/v1/openapi.json` is generated from the
//! handlers' annotations below.

use crate::error::{ApiError, ErrorBody};
use crate::health::{HealthDetail, JobHealth, Verdict, job_health};
use crate::jobs::{DeploySpec, Job, JobState, Jobs};
use crate::sampler::Sampler;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferris_observe::JobLogs;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// Largest request body accepted (an application file is far smaller).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    /// The hosted jobs.
    pub jobs: Arc<Jobs>,
    /// Rates and process figures.
    pub sampler: Arc<Sampler>,
    /// The exposition registry (holds the jobs collector).
    pub metrics: Arc<prometheus_client::registry::Registry>,
    /// Recent log lines per job.
    pub logs: JobLogs,
    /// The bearer token mutating routes need; `None` refuses every mutation.
    pub token: Option<String>,
    /// Serving one job of `ferris-cli run --http`: every mutation is refused.
    pub read_only: bool,
    /// The runtime jobs run on.
    pub runtime: tokio::runtime::Handle,
    /// Held while a CPU profile is taken.
    pub profiling: Arc<std::sync::Mutex<()>>,
    /// Set when the server stops: long-lived responses (event streams) end, so that the
    /// graceful shutdown does not wait for their clients.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// `POST /api/v1/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The job's name: 1 to 64 letters, digits, `_`, `-` or `.`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64)]
    pub name: String,
    /// The application: SQL statements separated by `;`.
    pub sql: String,
    /// Directory relative paths in the SQL resolve against (absolute; default: the
    /// server's working directory).
    #[serde(default)]
    pub base_dir: Option<String>,
    /// Job settings `key=value`, as `ferris-cli run --set` takes them.
    #[serde(default)]
    pub settings: Vec<String>,
}

/// Rows of one query of a job: the accounting `ferris-cli run --stats` prints.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryRows {
    /// The query (its stream or table name).
    pub name: String,
    /// Rows it received.
    pub rows_in: u64,
    /// Rows its WHERE removed.
    pub filtered: u64,
    /// Rows skipped under `skip` (for a stateless query, also rows its sink failed to write).
    pub skipped: u64,
    /// Rows sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Late rows dropped.
    pub late: u64,
    /// Rows its sink wrote.
    pub written: u64,
    /// Rows that entered its stateful stage (queries with one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub into_state: Option<u64>,
    /// Output rows of a stateful stage its sink failed to write.
    pub output_failed: u64,
}

impl From<ferris_runtime::QueryReport> for QueryRows {
    fn from(r: ferris_runtime::QueryReport) -> Self {
        QueryRows {
            name: r.name,
            rows_in: r.rows_in,
            filtered: r.filtered,
            skipped: r.skipped,
            dead_lettered: r.dead_lettered,
            late: r.late,
            written: r.written,
            into_state: r.into_state,
            output_failed: r.output_failed,
        }
    }
}

/// A job as `GET /api/v1/jobs/{name}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobStatus {
    /// Its name.
    pub name: String,
    /// `starting`, `running`, `stopping`, `stopped`, `finished` or `failed`.
    pub state: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was deployed (RFC 3339).
    pub deployed_at: String,
    /// Seconds it has run in this process.
    pub uptime_seconds: f64,
    /// Times the server started it again after an unclean stop.
    pub restarts: u64,
    /// Rows read per second (last second).
    pub input_rows_per_second: f64,
    /// Rows written per second (last second).
    pub output_rows_per_second: f64,
    /// Rows per query.
    pub queries: Vec<QueryRows>,
    /// The job settings.
    pub settings: Vec<String>,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Every job, by name.
    pub jobs: Vec<JobStatus>,
}

/// `GET /api/v1/jobs/{name}/logs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobLogLines {
    /// The job.
    pub job: String,
    /// Its most recent log lines, oldest first (the JSON objects `--log-format json` prints).
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<serde_json::Value>,
}

/// `?limit=N` of the logs route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// How many lines (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// `/health` and `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// `ok`, or `not_ready`.
    pub status: String,
    /// Why not ready.
    pub reasons: Vec<String>,
}

fn job_status(job: &Job) -> JobStatus {
    let queries = job
        .graph
        .queries
        .iter()
        .map(|q| {
            let keyed = job.graph.nodes.iter().any(|n| {
                n.kind == ferris_engine::NodeKind::Keyed && n.query.as_deref() == Some(&q.name)
            });
            ferris_runtime::QueryReport::from_registry(&job.registry, &q.name, keyed).into()
        })
        .collect();
    let rates = job.rates();
    JobStatus {
        name: job.name.clone(),
        state: job.state().as_str().to_string(),
        error: job.error(),
        deployed_at: job.deployed_at.clone(),
        uptime_seconds: job.uptime_seconds(),
        restarts: job.restarts,
        input_rows_per_second: rates.input,
        output_rows_per_second: rates.output,
        queries,
        settings: job.settings.clone(),
    }
}

/// The `{name}` of a route, or a JSON error naming the field.
fn job_name(name: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    name.map(|Path(n)| n)
        .map_err(|e| ApiError::bad_field("name", e.body_text()))
}

/// A JSON request body; one that is not `what` is a 400 naming the body, with the line and
/// column where parsing stopped.
pub(crate) fn json_body<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let mut err = ApiError::bad_field("body", format!("the body is not {what}: {e}"));
        if e.line() > 0 {
            err.body.line = Some(e.line() as u64);
            err.body.column = Some(e.column() as u64);
        }
        err
    })
}

/// Checks the bearer token of a mutating request.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this endpoint serves one job of `ferris-cli run` and changes nothing; deploy and \
             stop jobs on a `ferris-cli server`",
        ));
    }
    let Some(expected) = &state.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_token_configured",
            "the server has no token, so it accepts no change",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this route changes state: send 'Authorization: Bearer TOKEN'",
        )),
        Some(t) if constant_time_eq(t.trim().as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the bearer token is not this server's token",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Deploys a job.
#[utoipa::path(post, path = "/api/v1/jobs", request_body = DeployRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The job was deployed and is starting", body = JobStatus),
        (status = 400, description = "Invalid request, SQL (with line and column) or settings", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong token, or the server accepts no change", body = ErrorBody),
        (status = 409, description = "A job of that name is running", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "The environment is not ready (missing input file)", body = ErrorBody),
    ))]
async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over {MAX_BODY_BYTES} bytes"),
        )
    };
    // A declared length over the limit is refused before any of the body is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    let req: DeployRequest = json_body(&bytes, "a deploy request")?;
    let base_dir = match req.base_dir {
        Some(d) if !std::path::Path::new(&d).is_absolute() => {
            return Err(ApiError::bad_field(
                "base_dir",
                format!("base_dir '{d}' must be an absolute path"),
            ));
        }
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/")),
    };
    let spec = DeploySpec {
        name: req.name,
        sql: req.sql,
        base_dir,
        settings: req.settings,
    };
    let jobs = state.jobs.clone();
    let runtime = state.runtime.clone();
    let logs = state.logs.clone();
    let job = tokio::task::spawn_blocking(move || {
        // A new deployment starts a new log, unless the name is taken by a live job (the
        // deploy is then refused and the live job's log kept).
        if jobs.get(&spec.name).map_or(true, |j| !j.state().is_live()) {
            logs.clear(&spec.name);
        }
        jobs.deploy(spec, 0, None, &runtime)
    })
    .await
    .map_err(|e| ApiError::internal(format!("deploy panicked: {e}")))??;
    Ok((StatusCode::CREATED, axum::Json(job_status(&job))).into_response())
}

/// Lists every job.
#[utoipa::path(get, path = "/api/v1/jobs",
    responses((status = 200, description = "Every job", body = JobList)))]
async fn list(State(state): State<AppState>) -> axum::Json<JobList> {
    axum::Json(JobList {
        jobs: state.jobs.list().iter().map(|j| job_status(j)).collect(),
    })
}

/// One job's state and row counts.
#[utoipa::path(get, path = "/api/v1/jobs/{name}",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<JobStatus>, ApiError> {
    let job = state.jobs.get(&job_name(name)?)?;
    Ok(axum::Json(job_status(&job)))
}

/// Stops a job: its sources stop, what is in flight drains, sinks flush and offsets commit.
#[utoipa::path(post, path = "/api/v1/jobs/{name}/stop",
    params(("name" = String, Path, description = "The job's name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Stopping (or already ended)", body = JobStatus),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
async fn stop(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let job = state.jobs.stop(&job_name(name)?)?;
    Ok((StatusCode::ACCEPTED, axum::Json(job_status(&job))).into_response())
}

/// A job's most recent log lines.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/logs",
    params(("name" = String, Path, description = "The job's name"), LogQuery),
    responses(
        (status = 200, description = "Log lines, oldest first", body = JobLogLines),
        (status = 400, description = "`limit` is not a non-negative integer", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
async fn logs(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Result<axum::Json<JobLogLines>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_field("limit", e.body_text()))?;
    let job = state.jobs.get(&job_name(name)?)?;
    let limit = q
        .limit
        .unwrap_or(100)
        .min(ferris_observe::logging::JOB_LOG_LINES);
    Ok(axum::Json(JobLogLines {
        lines: state.logs.tail(&job.name, limit),
        job: job.name.clone(),
    }))
}

/// The job graph (docs/graph.md): every task and channel with the ids metrics carry.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/graph",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, description = "The graph (versioned JSON, docs/graph.md)", body = Object),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
async fn graph(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let job = state.jobs.get(&job_name(name)?)?;
    Ok(axum::Json(ferris_engine::graph_json(&job.graph)))
}

/// Prometheus metrics of every job and of the process (OpenMetrics text).
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(&state.metrics);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Liveness: the server answers.
#[utoipa::path(get, path = "/health",
    responses((status = 200, description = "Alive", body = Probe)))]
async fn health() -> axum::Json<Probe> {
    axum::Json(Probe {
        status: "ok".into(),
        reasons: vec![],
    })
}

/// Readiness: no job is starting, the server is not restoring jobs, and no source reports
/// its broker unreachable.
#[utoipa::path(get, path = "/ready",
    responses(
        (status = 200, description = "Ready", body = Probe),
        (status = 503, description = "Not ready, with the reasons", body = Probe),
    ))]
async fn ready(State(state): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if state
        .jobs
        .restoring
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        reasons.push("the server is restoring its jobs".to_string());
    }
    for job in state.jobs.list() {
        if job.state() == JobState::Starting {
            reasons.push(format!("job '{}' is starting", job.name));
        }
        if job.state() == JobState::Running && job.rates().source_unavailable {
            reasons.push(format!(
                "job '{}': a source cannot reach its broker",
                job.name
            ));
        }
    }
    let code = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if reasons.is_empty() {
        "ok"
    } else {
        "not_ready"
    };
    (
        code,
        axum::Json(Probe {
            status: status.into(),
            reasons,
        }),
    )
        .into_response()
}

/// Per job checks with verdicts, reasons and the graph node or edge concerned.
#[utoipa::path(get, path = "/health/detail",
    responses((status = 200, description = "Health of every job", body = HealthDetail)))]
async fn health_detail(State(state): State<AppState>) -> axum::Json<HealthDetail> {
    let process = state.sampler.process();
    let jobs: Vec<JobHealth> = state
        .jobs
        .list()
        .iter()
        .map(|j| job_health(j, &process))
        .collect();
    let status = jobs
        .iter()
        .map(|j| j.status)
        .max()
        .unwrap_or(Verdict::Healthy);
    axum::Json(HealthDetail {
        status,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        jobs,
    })
}

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "FerrisStreams server", description = "Hosts streaming SQL jobs: deploy, stop, inspect; metrics and health."),
    paths(deploy, list, status, stop, logs, graph, crate::topology::topology_route, crate::topology::topology_svg, crate::topology::topology_stream, crate::topology::lineage_route, crate::explain_route::explain_route, crate::registry_route::register, crate::registry_route::group, crate::registry_route::history, crate::registry_route::move_release, metrics, health, ready, health_detail, crate::profile::profile),
    components(schemas(DeployRequest, crate::registry_route::RegisterRequest, crate::registry_route::MoveRequest, crate::explain_route::ExplainBody, JobStatus, JobList, QueryRows, JobLogLines, Probe, ErrorBody, HealthDetail, JobHealth, crate::health::Check, Verdict)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => {
            ApiError::internal(format!("cannot render the OpenAPI document: {e}")).into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /api/v1/openapi.json",
    )
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/jobs", get(list).post(deploy))
        .route("/api/v1/jobs/{name}", get(status))
        .route("/api/v1/jobs/{name}/stop", post(stop))
        .route("/api/v1/jobs/{name}/logs", get(logs))
        .route("/api/v1/jobs/{name}/graph", get(graph))
        .route(
            "/api/v1/jobs/{name}/topology",
            get(crate::topology::topology_route),
        )
        .route(
            "/api/v1/jobs/{name}/topology.svg",
            get(crate::topology::topology_svg),
        )
        .route(
            "/api/v1/jobs/{name}/topology/stream",
            get(crate::topology::topology_stream),
        )
        .route(
            "/api/v1/jobs/{name}/lineage",
            get(crate::topology::lineage_route),
        )
        .route(
            "/api/v1/explain",
            axum::routing::post(crate::explain_route::explain_route),
        )
        .route(
            "/api/v1/registry",
            axum::routing::post(crate::registry_route::register),
        )
        .route(
            "/api/v1/registry/{group}",
            get(crate::registry_route::group),
        )
        .route(
            "/api/v1/registry/{group}/history",
            get(crate::registry_route::history),
        )
        .route(
            "/api/v1/registry/{group}/{action}",
            axum::routing::post(crate::registry_route::move_release),
        )
        .route("/ui", get(crate::topology::ui_page))
        .route("/ui/app.js", get(crate::topology::ui_script))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/health/detail", get(health_detail))
        .route("/debug/pprof/profile", get(crate::profile::profile))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
