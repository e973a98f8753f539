//! The operations server: one long-running process that hosts many jobs.
//!
//! [`Server`] keeps deployed applications in an embedded SQLite database (so a restarted
//! server brings its jobs back, and Kafka sources resume from their committed offsets),
//! runs each job on a shared runtime with its own metrics and shutdown (a failing job never
//! stops the others), and serves over HTTP:
//! - the REST API under `/api/v1` (deploy, list, status, stop, logs, graph), described by the
//!   OpenAPI document at `/api/v1/openapi.json`, generated from the handlers;
//! - `/metrics` (OpenMetrics text through `prometheus-client`), every series labelled with
//!   `job`, `query` and the job graph's `node` or `edge` id;
//! - `/health` (liveness), `/ready` (readiness) and `/health/detail` (per job checks).
//!
//! Routes that change state need `Authorization: Bearer TOKEN`; a server without a token
//! refuses every change, and one on a non-loopback address refuses to start without one.
//! Every error is a JSON body ([`ErrorBody`]).

mod api;
mod error;
mod explain_route;
mod health;
mod history;
mod jobs;
mod metrics;
mod profile;
pub mod registry;
mod registry_route;
mod registry_settings;
mod sampler;
mod store;
mod topology;

pub use api::{AppState, DeployRequest, MAX_BODY_BYTES, router};
pub use error::{ApiError, ErrorBody, ServerError};
pub use health::{Check, HealthDetail, JobHealth, Verdict, job_health};
pub use jobs::{DeploySpec, Job, JobState, Jobs, check_name, prepare};
pub use sampler::{ProcessStats, Sampler};
pub use store::{Desired, Store, StoredJob};
pub use topology::lineage_json;

use ferris_observe::JobLogs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9249";

/// How the server starts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (default [`DEFAULT_ADDR`]).
    pub addr: SocketAddr,
    /// Where deployed applications are kept (`None`: nothing survives a restart).
    pub data_dir: Option<PathBuf>,
    /// The bearer token of mutating routes (`None`: they are refused).
    pub token: Option<String>,
    /// How long a stopping server waits for its jobs to drain and commit (default 30 s).
    pub drain_timeout: Duration,
    /// Where spans of sampled batches go over OTLP/HTTP (`None`: no traces).
    pub otlp_endpoint: Option<String>,
}

impl ServerConfig {
    /// Refuses a non-loopback address without a token.
    pub fn check(&self) -> Result<(), ServerError> {
        if !self.addr.ip().is_loopback() && self.token.is_none() {
            return Err(ServerError::NoToken {
                addr: self.addr.to_string(),
            });
        }
        Ok(())
    }
}

/// The parts every route and background task shares.
pub fn state(
    jobs: Arc<Jobs>,
    logs: JobLogs,
    token: Option<String>,
    read_only: bool,
    runtime: tokio::runtime::Handle,
) -> AppState {
    let sampler = Arc::new(Sampler::default());
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(metrics::JobsCollector {
        jobs: jobs.clone(),
        sampler: sampler.clone(),
    }));
    AppState {
        jobs,
        sampler,
        metrics: Arc::new(registry),
        logs,
        token,
        read_only,
        runtime,
        profiling: Arc::default(),
        closing: Arc::new(tokio::sync::watch::channel(false).0),
    }
}

/// Binds `addr` and serves `state` until `stop` resolves; also runs the sampler. Returns the
/// bound address through `bound` as soon as it listens (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    tracing::info!(addr = %local, "serving HTTP");
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let sampler = tokio::spawn(
        state
            .sampler
            .clone()
            .run(state.jobs.clone(), Duration::from_secs(1)),
    );
    let closing = state.closing.clone();
    let stop = async move {
        stop.await;
        let _ = closing.send(true);
    };
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await
        .map_err(ServerError::Serve);
    sampler.abort();
    result
}

/// A whole server: opens the store, restores its jobs, serves until `stop` resolves, then
/// drains every job (they stay deployed, and come back at the next start).
pub async fn run_server(
    config: ServerConfig,
    logs: JobLogs,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.check()?;
    let store = match &config.data_dir {
        Some(dir) => Some(Store::open(dir)?),
        None => None,
    };
    let clean = match &store {
        Some(s) => s.begin()?,
        None => true,
    };
    let mut jobs = Jobs::new(store);
    if let Some(endpoint) = &config.otlp_endpoint {
        jobs.exporter = Some(
            ferris_observe::trace::OtlpExporter::start(endpoint, "ferris-server").map_err(|e| {
                ServerError::Store {
                    path: endpoint.clone(),
                    reason: format!("cannot start the trace exporter: {e}"),
                }
            })?,
        );
    }
    let jobs = Arc::new(jobs);
    let runtime = tokio::runtime::Handle::current();
    let state = state(
        jobs.clone(),
        logs,
        config.token.clone(),
        false,
        runtime.clone(),
    );
    jobs.restoring
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let restorer = {
        let jobs = jobs.clone();
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || {
            let failed = jobs.restore(clean, &runtime);
            jobs.restoring
                .store(false, std::sync::atomic::Ordering::SeqCst);
            failed
        })
    };
    let served = serve(config.addr, state, bound, stop).await;
    let _ = restorer.await;
    tracing::info!("stopping: draining every job");
    jobs.shutdown(config.drain_timeout).await;
    if let Some(store) = jobs.store()
        && jobs.list().iter().all(|j| !j.state().is_live())
    {
        store.end()?;
    }
    served
}
