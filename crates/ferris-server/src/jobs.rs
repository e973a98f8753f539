//! The jobs one server hosts: deploy, stop, list; each job runs on the shared runtime with
//! its own metrics registry and shutdown signal, so a failing job never stops the others.

use crate::error::ApiError;
use crate::store::{Desired, Store, StoredJob};
use axum::http::StatusCode;
use ferris_engine::JobGraph;
use ferris_observe::Registry;
use ferris_runtime::{JobConfig, Shutdown};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};
use tracing::Instrument;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Being assembled: files opened, brokers connected, tables loaded.
    Starting,
    /// Running.
    Running,
    /// Asked to stop; draining what is in flight.
    Stopping,
    /// Stopped through the API (or by the server's own shutdown).
    Stopped,
    /// Its bounded input ended and everything was written.
    Finished,
    /// It failed; `error` says why.
    Failed,
}

impl JobState {
    /// The state's name as the API and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Stopping => "stopping",
            JobState::Stopped => "stopped",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }
    }

    /// Whether the job's tasks are (or may still be) running.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            JobState::Starting | JobState::Running | JobState::Stopping
        )
    }
}

#[derive(Debug)]
struct Status {
    state: JobState,
    error: Option<String>,
    ended: Option<Instant>,
}

/// Measured throughput of a job, updated by the server's sampler about once a second.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rates {
    /// Rows read per second over the last interval.
    pub input: f64,
    /// Rows written per second over the last interval.
    pub output: f64,
    /// The job's own baseline input rate: a slow moving average of `input` while the job
    /// had input to read (about five minutes).
    pub baseline: f64,
    /// Fraction of rows that failed (skipped or dead-lettered) over the last minute.
    pub error_ratio: f64,
    /// Seconds since a source watermark last advanced while rows kept arriving, by source
    /// node (only sources with an event time).
    pub watermark_stalled: f64,
    /// The source node whose watermark stalled longest.
    pub stalled_node: Option<String>,
    /// Sink nodes that failed writes (retries or failures) in the last interval.
    pub failing_sinks: usize,
    /// The first failing sink node.
    pub failing_sink: Option<String>,
    /// Whether a source reported its broker unreachable in the last interval.
    pub source_unavailable: bool,
}

/// One hosted job.
#[derive(Debug)]
pub struct Job {
    /// Its name (unique in the server).
    pub name: String,
    /// The application text.
    pub sql: String,
    /// Directory relative paths resolve against.
    pub base_dir: PathBuf,
    /// `key=value` job settings.
    pub settings: Vec<String>,
    /// The job graph (every task and channel, with the ids its metrics carry).
    pub graph: JobGraph,
    /// The job's metrics.
    pub registry: Registry,
    /// Stops the job's sources; the job drains and ends.
    pub shutdown: Shutdown,
    /// When it was deployed (RFC 3339).
    pub deployed_at: String,
    /// When this process started it.
    pub started: Instant,
    /// The same as a wall-clock time.
    pub started_wall: SystemTime,
    /// Times the server started it again after an unclean stop.
    pub restarts: u64,
    /// Record lineage of the job, when `lineage.sample` turned it on.
    pub lineage: Option<Arc<ferris_runtime::lineage::Lineage>>,
    status: Mutex<Status>,
    rates: Mutex<Rates>,
    history: Mutex<crate::history::History>,
}

impl Job {
    /// Creates a job record in state `Starting`.
    pub fn new(stored: &StoredJob, graph: JobGraph) -> Self {
        Job {
            name: stored.name.clone(),
            sql: stored.sql.clone(),
            base_dir: stored.base_dir.clone(),
            settings: stored.settings.clone(),
            graph,
            registry: Registry::new(),
            shutdown: Shutdown::new(),
            deployed_at: stored.deployed_at.clone(),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            restarts: stored.restarts,
            lineage: None,
            status: Mutex::new(Status {
                state: JobState::Starting,
                error: None,
                ended: None,
            }),
            rates: Mutex::new(Rates::default()),
            history: Mutex::new(crate::history::History::default()),
        }
    }

    /// The job's kept metric snapshots.
    pub fn history(&self) -> std::sync::MutexGuard<'_, crate::history::History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state.
    pub fn state(&self) -> JobState {
        self.status().state
    }

    /// Why the job failed, when it did.
    pub fn error(&self) -> Option<String> {
        self.status().error.clone()
    }

    /// Seconds the job has run (until it ended).
    pub fn uptime_seconds(&self) -> f64 {
        let s = self.status();
        s.ended
            .unwrap_or_else(Instant::now)
            .duration_since(self.started)
            .as_secs_f64()
    }

    /// Moves the job to `state` (with an error for `Failed`).
    pub fn set_state(&self, state: JobState, error: Option<String>) {
        let mut s = self.status();
        // A stop request wins over a concurrent "running".
        if s.state == JobState::Stopping && state == JobState::Running {
            return;
        }
        s.state = state;
        if error.is_some() {
            s.error = error;
        }
        if !state.is_live() && s.ended.is_none() {
            s.ended = Some(Instant::now());
        }
    }

    /// The latest measured rates.
    pub fn rates(&self) -> Rates {
        self.rates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the measured rates (the sampler).
    pub fn set_rates(&self, rates: Rates) {
        *self.rates.lock().unwrap_or_else(PoisonError::into_inner) = rates;
    }
}

/// What a deploy request asks for, once parsed.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// The job's name.
    pub name: String,
    /// The application text.
    pub sql: String,
    /// Directory relative paths resolve against.
    pub base_dir: PathBuf,
    /// `key=value` job settings.
    pub settings: Vec<String>,
}

/// Every job of the server.
#[derive(Debug)]
pub struct Jobs {
    jobs: RwLock<BTreeMap<String, Arc<Job>>>,
    store: Option<Store>,
    /// The server is shutting down: jobs that end now stay `running` in the store.
    closing: std::sync::atomic::AtomicBool,
    /// Jobs being restored from the store at start (the server is not ready until done).
    pub restoring: std::sync::atomic::AtomicBool,
    /// Where sampled batches' spans go (OTLP), for every job.
    pub exporter: Option<Arc<ferris_observe::trace::OtlpExporter>>,
}

/// Job names: letters, digits, `_`, `-`, `.`; 1 to 64 characters.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            "name",
            format!("job name '{name}' is invalid: use 1 to 64 letters, digits, '_', '-' or '.'"),
        ))
    }
}

/// A plan or settings error as the API reports it.
pub(crate) fn plan_error(sql: &str, e: &ferris_plan::AppError) -> ApiError {
    let (line, column) = match e {
        ferris_plan::AppError::Sql(s) => (s.line, s.column),
        ferris_plan::AppError::Plan(p) => p
            .span
            .map(|s| (s.start.line, s.start.column))
            .unwrap_or((0, 0)),
    };
    ApiError::sql(
        StatusCode::BAD_REQUEST,
        "invalid_sql",
        e.to_string(),
        line,
        column,
        e.render(sql),
    )
}

fn engine_error(sql: &str, e: &ferris_engine::EngineError) -> ApiError {
    let (line, column) = e.position();
    let (status, code) = if e.is_environment() {
        (StatusCode::UNPROCESSABLE_ENTITY, "environment_not_ready")
    } else {
        (StatusCode::BAD_REQUEST, "invalid_application")
    };
    ApiError::sql(status, code, e.to_string(), line, column, e.render(sql))
}

/// Plans `spec` and checks everything `run` checks before reading data; returns the
/// application, its job settings and its graph.
pub fn prepare(
    spec: &DeploySpec,
) -> Result<(ferris_plan::Application, JobConfig, JobGraph), ApiError> {
    check_name(&spec.name)?;
    let mut config = JobConfig::default();
    for (i, pair) in spec.settings.iter().enumerate() {
        ferris_engine::settings::apply(&mut config, std::slice::from_ref(pair))
            .map_err(|e| ApiError::bad_field(&format!("settings[{i}]"), e))?;
    }
    let app = ferris_plan::plan_application(&spec.sql).map_err(|e| plan_error(&spec.sql, &e))?;
    if app.queries.is_empty() {
        return Err(ApiError::bad_field(
            "sql",
            "the application has no query to run (only declarations or EXPLAIN)",
        ));
    }
    ferris_engine::check_job(&app, config.clone(), &spec.base_dir)
        .map_err(|e| engine_error(&spec.sql, &e))?;
    let graph = ferris_engine::job_graph(&app, &config).map_err(|e| engine_error(&spec.sql, &e))?;
    Ok((app, config, graph))
}

impl Jobs {
    /// Jobs kept in `store` (none when `None`: `run --http`, tests).
    pub fn new(store: Option<Store>) -> Self {
        Jobs {
            jobs: RwLock::new(BTreeMap::new()),
            store,
            closing: std::sync::atomic::AtomicBool::new(false),
            restoring: std::sync::atomic::AtomicBool::new(false),
            exporter: None,
        }
    }

    /// The store, when the server has a data directory.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Every job, by name.
    pub fn list(&self) -> Vec<Arc<Job>> {
        self.jobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The job called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Job>, ApiError> {
        self.jobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::no_job(name))
    }

    /// Adds a job that runs elsewhere (`ferris-cli run --http`): the server only reads it.
    pub fn attach(&self, job: Arc<Job>) {
        self.jobs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job.name.clone(), job);
    }

    /// Deploys `spec` (blocking: plans, checks files, connects to brokers): the job starts on
    /// `runtime` and this returns once it is registered. A live job of the same name is a
    /// conflict; an ended one is replaced.
    pub fn deploy(
        self: &Arc<Self>,
        spec: DeploySpec,
        restarts: u64,
        deployed_at: Option<String>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<Job>, ApiError> {
        if let Ok(existing) = self.get(&spec.name)
            && existing.state().is_live()
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "job '{}' is {}: stop it before deploying again",
                    spec.name,
                    existing.state().as_str()
                ),
            ));
        }
        let (app, mut config, graph) = prepare(&spec)?;
        if let Some(e) = &self.exporter {
            config.tracer = config.tracer.with_exporter(e.clone());
        }
        let stored = StoredJob {
            name: spec.name.clone(),
            sql: spec.sql,
            base_dir: spec.base_dir,
            settings: spec.settings,
            deployed_at: deployed_at.unwrap_or_else(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }),
            restarts,
        };
        if let Some(store) = &self.store {
            store
                .put(&stored)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let mut job = Job::new(&stored, graph);
        job.lineage = config.lineage.as_ref().map(|l| l.0.clone());
        let job = Arc::new(job);
        {
            let mut jobs = self.jobs.write().unwrap_or_else(PoisonError::into_inner);
            if jobs.get(&spec.name).is_some_and(|j| j.state().is_live()) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("job '{}' was deployed at the same time", spec.name),
                ));
            }
            jobs.insert(job.name.clone(), job.clone());
        }
        tracing::info!(job = %job.name, restarts, "job deployed");
        runtime.spawn(run(self.clone(), job.clone(), app, config));
        Ok(job)
    }

    /// Asks job `name` to stop; it drains and ends (state `stopping`, then `stopped`).
    pub fn stop(&self, name: &str) -> Result<Arc<Job>, ApiError> {
        let job = self.get(name)?;
        if job.state().is_live() {
            job.set_state(JobState::Stopping, None);
            job.shutdown.trigger();
            tracing::info!(job = %job.name, "job stop requested");
        }
        if let Some(store) = &self.store {
            store
                .set_desired(name, Desired::Ended)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        Ok(job)
    }

    /// Starts the jobs the store says were running; `clean` tells whether the previous run
    /// of the server ended cleanly (if not, each job's restart count goes up). Returns the
    /// jobs that could not be started, with why.
    pub fn restore(
        self: &Arc<Self>,
        clean: bool,
        runtime: &tokio::runtime::Handle,
    ) -> Vec<(String, ApiError)> {
        let mut failed = Vec::new();
        let stored = match &self.store {
            Some(store) => match store.running() {
                Ok(s) => s,
                Err(e) => return vec![(String::new(), ApiError::internal(e.to_string()))],
            },
            None => return failed,
        };
        for s in stored {
            let restarts = s.restarts + u64::from(!clean);
            let spec = DeploySpec {
                name: s.name.clone(),
                sql: s.sql,
                base_dir: s.base_dir,
                settings: s.settings,
            };
            match self.deploy(spec, restarts, Some(s.deployed_at), runtime) {
                Ok(_) => tracing::info!(job = %s.name, clean, "job restored"),
                Err(e) => {
                    tracing::error!(job = %s.name, error = %e.body.message, "job could not be restored");
                    failed.push((s.name, e));
                }
            }
        }
        failed
    }

    /// Stops every job (they stay `running` in the store, so the next start brings them
    /// back) and waits up to `grace` for them to drain and commit.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let jobs = self.list();
        for job in &jobs {
            job.shutdown.trigger();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while jobs.iter().any(|j| j.state().is_live()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if let Some(e) = self.exporter.clone() {
            let _ = tokio::task::spawn_blocking(move || e.flush(std::time::Duration::from_secs(5)))
                .await;
        }
    }

    fn ended(&self, job: &Job) {
        let closing = self.closing.load(std::sync::atomic::Ordering::SeqCst);
        if let (Some(store), false) = (&self.store, closing)
            && let Err(e) = store.set_desired(&job.name, Desired::Ended)
        {
            tracing::error!(job = %job.name, error = %e, "cannot record that the job ended");
        }
    }
}

/// Builds and runs one job to its end, recording its state.
async fn run(jobs: Arc<Jobs>, job: Arc<Job>, app: ferris_plan::Application, config: JobConfig) {
    let span = tracing::error_span!("job", job = %job.name);
    let j = job.clone();
    let outcome = async move {
        let base = j.base_dir.clone();
        let sql = j.sql.clone();
        let build_span = tracing::Span::current();
        let shared = ferris_plan::Application {
            shared: app.shared.clone(),
            ..Default::default()
        };
        let built = tokio::task::spawn_blocking(move || {
            build_span.in_scope(|| {
                ferris_engine::build_job(&app, config, &base).map_err(|e| (e.render(&sql), e))
            })
        })
        .await;
        let spec = match built {
            Ok(Ok(spec)) => spec,
            Ok(Err((rendered, e))) => return Err(format!("{e}\n{rendered}")),
            Err(e) => return Err(format!("the job's setup panicked: {e}")),
        };
        if j.shutdown.is_triggered() {
            return Ok(JobState::Stopped);
        }
        j.set_state(JobState::Running, None);
        tracing::info!("job running");
        let registry = j.registry.clone();
        ferris_engine::record_shares(&shared, &registry);
        let shutdown = j.shutdown.clone();
        let task =
            tokio::spawn(ferris_runtime::run_job(spec, registry, shutdown).in_current_span());
        match task.await {
            Ok(Ok(report)) => {
                let written: u64 = report.queries.iter().map(|q| q.written).sum();
                if j.shutdown.is_triggered() {
                    tracing::info!(rows_written = written, "job stopped");
                    Ok(JobState::Stopped)
                } else {
                    tracing::info!(rows_written = written, "job finished");
                    Ok(JobState::Finished)
                }
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the job panicked: {e}")),
        }
    }
    .instrument(span.clone())
    .await;
    match outcome {
        Ok(state) => job.set_state(state, None),
        Err(message) => {
            span.in_scope(|| tracing::error!(error = %message, "job failed"));
            job.set_state(JobState::Failed, Some(message));
        }
    }
    jobs.ended(&job);
}
