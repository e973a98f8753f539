//! `ferris-cli run` and `ferris-cli validate`.

use crate::openlineage_emit::{Emitter, Ticker};
use crate::{progress, stats};
use clap::Args;
use ferris_engine::openlineage::{EventType, RunDescription};
use ferris_engine::settings;
use ferris_observe::Registry;
use ferris_runtime::{JobConfig, Shutdown};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::runtime::Handle;

/// Options of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The application file (statements separated by `;`).
    #[arg(required_unless_present = "execute", conflicts_with = "execute")]
    pub file: Option<PathBuf>,
    /// Run this SQL text instead of a file (relative paths resolve against the working directory).
    #[arg(short = 'e', long = "execute", value_name = "SQL")]
    pub execute: Option<String>,
    /// Job setting `key=value` (repeatable): channel.capacity, parallelism,
    /// sink.retry.attempts, sink.retry.backoff.ms, sink.retry.max.backoff.ms, dead_letter.capacity.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Partition pipelines per query (same as --set parallelism=N).
    #[arg(short = 'p', long)]
    pub parallelism: Option<usize>,
    /// Print row accounting and metrics to stderr at the end.
    #[arg(long)]
    pub stats: bool,
    /// Never draw the live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Serve the server's read-only endpoints for this job (/metrics, /health,
    /// /health/detail, /ready, /api/v1/jobs/…) on this address while it runs.
    #[arg(long = "http", value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Export spans of sampled batches over OTLP/HTTP to this collector (else
    /// OTEL_EXPORTER_OTLP_ENDPOINT); `--set tracing.sample.ratio=R` (default 0.01).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The server whose running jobs `EXPLAIN TOPOLOGY (LIVE true)` reads
    /// (e.g. http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Send OpenLineage run events (START, RUNNING, COMPLETE or FAIL) with the job's
    /// datasets and column lineage: POSTed to an http(s) URL (e.g. Marquez's
    /// http://127.0.0.1:5000/api/v1/lineage), else appended as JSON lines to this file.
    #[arg(long, value_name = "URL|FILE")]
    pub openlineage: Option<String>,
    /// Seconds between RUNNING events (default 60).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60.0,
        requires = "openlineage"
    )]
    pub openlineage_interval: f64,
    /// The namespace of the job in OpenLineage events.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "ferrisstreams",
        requires = "openlineage"
    )]
    pub openlineage_namespace: String,
}

/// `text` (an EXPLAIN of `req` in `app`) with its METADATA section when asked for: after
/// the text, or as the `metadata` member of the JSON.
pub(crate) fn with_metadata(
    app: &ferris_plan::Application,
    req: &ferris_plan::ExplainRequest,
    text: String,
) -> Result<String, ferris_plan::PlanError> {
    if !req.options.metadata {
        return Ok(text);
    }
    let (section, value) = ferris_plan::multi_query::explain_metadata(app, req)?;
    if req.options.format == ferris_plan::ExplainFormat::Json
        && let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_str(&text)
    {
        doc.insert("metadata".to_string(), value);
        return Ok(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n");
    }
    Ok(format!("{text}\n{section}"))
}

/// The OpenLineage emitter of `--openlineage TARGET`: the job is the application's
/// `@group`, else the file's stem (`inline` for `-e`).
fn lineage_emitter(
    args: &RunArgs,
    target: &str,
    app: &ferris_plan::Application,
    base: &Path,
) -> Result<std::sync::Arc<Emitter>, String> {
    if !(args.openlineage_interval > 0.0 && args.openlineage_interval.is_finite()) {
        return Err(format!(
            "--openlineage-interval {}: give a number of seconds greater than 0",
            args.openlineage_interval
        ));
    }
    let group = ferris_plan::annotations::read(app)
        .ok()
        .and_then(|a| a.group.map(|g| g.name));
    let name = group
        .or_else(|| {
            args.file
                .as_ref()
                .and_then(|f| f.file_stem())
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "inline".to_string());
    let run = RunDescription::new(
        app,
        &args.openlineage_namespace,
        &name,
        &crate::openlineage_emit::run_id(),
        base,
    );
    Ok(std::sync::Arc::new(Emitter::new(target, run)))
}

/// Options of `validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The application file.
    pub file: PathBuf,
    /// Print the job graph (every task and channel the job would start, with the ids its
    /// metrics carry) as `json` (see docs/graph.md) or `dot` (Graphviz), instead of the
    /// summary line.
    #[arg(long, value_name = "FORMAT", value_parser = ["json", "dot"])]
    pub graph: Option<String>,
    /// Job setting `key=value` (repeatable), as for `run`: the graph depends on
    /// parallelism and channel.capacity.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Partition pipelines per query (same as --set parallelism=N).
    #[arg(short = 'p', long)]
    pub parallelism: Option<usize>,
    /// Check the SQL and the properties only, not the environment: input files, their CSV
    /// headers and sink directories are not looked at (an application meant for another
    /// machine, or a graph before the data exists).
    #[arg(long)]
    pub plan_only: bool,
}

/// The job settings of `--set` and `--parallelism`, or the exit code 2 after printing why
/// they are invalid.
pub(crate) fn job_config(set: &[String], parallelism: Option<usize>) -> Result<JobConfig, u8> {
    let mut config = JobConfig::default();
    if let Err(e) = settings::apply(&mut config, set) {
        eprintln!("error: {e}");
        return Err(2);
    }
    if let Some(p) = parallelism {
        if p == 0 {
            eprintln!("error: --parallelism must be at least 1");
            return Err(2);
        }
        config.parallelism = p;
    }
    Ok(config)
}

pub(crate) fn read_app(file: &Path) -> Result<(String, PathBuf), u8> {
    match std::fs::read_to_string(file) {
        Ok(sql) => {
            let base = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok((sql, base))
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            Err(3)
        }
    }
}

/// `ferris-cli validate FILE`.
pub fn validate(args: ValidateArgs) -> u8 {
    let (sql, base) = match read_app(&args.file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let config = match job_config(&args.set, args.parallelism) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let app = match ferris_plan::plan_application(&sql) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{}", e.render(&sql));
            return 2;
        }
    };
    // Every check `run` makes before reading data: paths, connector properties, input files
    // and CSV headers, sink paths (nothing is created or connected to). With --plan-only,
    // only what needs no file.
    let checked = if args.plan_only {
        ferris_engine::check_paths(&app, &base)
    } else {
        ferris_engine::check_job(&app, config.clone(), &base)
    };
    if let Err(e) = checked {
        eprintln!("{}", e.render(&sql));
        return setup_exit_code(&e);
    }
    let planned: Result<_, String> = Ok(app);
    match planned {
        Ok(app) if args.graph.is_some() => match ferris_engine::job_graph(&app, &config) {
            Ok(graph) => {
                match args.graph.as_deref() {
                    Some("dot") => print!("{}", ferris_engine::graph_dot(&graph)),
                    _ => println!(
                        "{}",
                        serde_json::to_string_pretty(&ferris_engine::graph_json(&graph))
                            .unwrap_or_default()
                    ),
                }
                0
            }
            Err(e) => {
                eprintln!("{}", e.render(&sql));
                setup_exit_code(&e)
            }
        },
        Ok(app) => {
            println!(
                "{}: valid ({} source(s), {} sink(s), {} query(ies), {} explain(s))",
                args.file.display(),
                app.sources.len(),
                app.sinks.len(),
                app.queries.len(),
                app.explains.len()
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// `ferris-cli run`.
pub fn run(args: RunArgs, logs: ferris_observe::JobLogs) -> u8 {
    let (sql, base) = match (&args.file, &args.execute) {
        (Some(f), _) => match read_app(f) {
            Ok(x) => x,
            Err(code) => return code,
        },
        (None, Some(sql)) => (sql.clone(), PathBuf::from(".")),
        (None, None) => {
            eprintln!("error: give an application file or -e SQL");
            return 2;
        }
    };
    let mut config = match job_config(&args.set, args.parallelism) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let exporter = match crate::server_cmd::otlp_endpoint(args.otlp_endpoint.as_ref()) {
        Some(endpoint) => match ferris_observe::trace::OtlpExporter::start(&endpoint, "ferris-cli")
        {
            Ok(e) => {
                config.tracer = config.tracer.with_exporter(e.clone());
                Some(e)
            }
            Err(e) => {
                eprintln!("error: cannot start the trace exporter: {e}");
                return 1;
            }
        },
        None => None,
    };
    let app = match ferris_plan::plan_application(&sql) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{}", e.render(&sql));
            return 2;
        }
    };
    if app.queries.is_empty() && app.explains.is_empty() && app.analyses.is_empty() {
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferris-worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    for (i, req) in app.explains.iter().enumerate() {
        if let Some(span) = req.options.history {
            let e = ferris_plan::PlanError::at(
                "HISTORY reads the query registry: run this EXPLAIN with 'ferris-cli \
                 multi-query --data-dir DIR explain --group GROUP'",
                span,
            );
            eprintln!("{}", e.render(&sql));
            return 2;
        }
        let text = match req.options.live {
            Some(span) => match live_explain(&app, req, span, args.server.as_deref()) {
                Ok(text) => text,
                Err((message, code)) => {
                    eprintln!("{message}");
                    return code;
                }
            },
            None => match runtime.block_on(explain_one(&app, req, &config, &base)) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("{}", e.render(&sql));
                    return setup_exit_code(&e);
                }
            },
        };
        let text = match with_metadata(&app, req, text) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}", e.render(&sql));
                return 2;
            }
        };
        if i > 0 {
            println!();
        }
        print!("{text}");
        let _ = std::io::stdout().flush();
    }
    for (i, a) in app.analyses.iter().enumerate() {
        match ferris_plan::analysis::render(&app, a) {
            Ok(text) => {
                if i > 0 || !app.explains.is_empty() {
                    println!();
                }
                print!("{text}");
            }
            Err(e) => {
                eprintln!("{}", e.render(&sql));
                return 2;
            }
        }
    }
    if app.queries.is_empty() {
        return 0;
    }
    // With --http, the job is also a read-only job of an HTTP server: its registry and
    // shutdown are the job record's.
    let served = match args.http {
        Some(addr) => {
            if !addr.ip().is_loopback() {
                eprintln!(
                    "error: --http {addr}: run serves read-only endpoints on loopback addresses only"
                );
                return 2;
            }
            match served_job(&app, &config, &sql, &base, &args) {
                Ok(job) => Some((addr, job)),
                Err(code) => return code,
            }
        }
        None => None,
    };
    let lineage = match &args.openlineage {
        Some(target) => match lineage_emitter(&args, target, &app, &base) {
            Ok(e) => Some(e),
            Err(message) => {
                eprintln!("error: {message}");
                return 2;
            }
        },
        None => None,
    };
    let (registry, shutdown) = match &served {
        Some((_, job)) => (job.registry.clone(), job.shutdown.clone()),
        None => (Registry::new(), Shutdown::new()),
    };
    let started = Instant::now();
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let ticker = lineage.as_ref().map(|e| {
        e.emit(EventType::Start, None);
        Ticker::start(
            e.clone(),
            std::time::Duration::from_secs_f64(args.openlineage_interval),
        )
    });
    let result = runtime.block_on(async {
        let job = ferris_engine::build_job(&app, config, &base)
            .map_err(|e| (setup_exit_code(&e), e.render(&sql)))?;
        ferris_engine::record_shares(&app, &registry);
        tokio::spawn(watch_signals(shutdown.clone()));
        let (http_stop, http) = match &served {
            Some((addr, job)) => {
                let jobs = std::sync::Arc::new(ferris_server::Jobs::new(None));
                jobs.attach(job.clone());
                let state = ferris_server::state(jobs, logs, None, true, Handle::current());
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
                let addr = *addr;
                let server = tokio::spawn(async move {
                    let stop = async {
                        let _ = stop_rx.await;
                    };
                    ferris_server::serve(addr, state, Some(bound_tx), stop).await
                });
                match bound_rx.await {
                    Ok(bound) => eprintln!("serving http://{bound} while the job runs"),
                    Err(_) => {
                        let message = match server.await {
                            Ok(Err(e)) => format!("error: {e}"),
                            _ => "error: the HTTP server did not start".to_string(),
                        };
                        return Err((4, message));
                    }
                }
                job.set_state(ferris_server::JobState::Running, None);
                (Some(stop_tx), Some(server))
            }
            None => (None, None),
        };
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let progress =
            show_progress.then(|| tokio::spawn(progress::run(registry.clone(), done_rx)));
        let result = ferris_runtime::run_job(job, registry.clone(), shutdown.clone()).await;
        let _ = done_tx.send(true);
        if let Some(p) = progress {
            let _ = p.await;
        }
        if let Some((_, job)) = &served {
            match &result {
                Ok(_) => job.set_state(ferris_server::JobState::Finished, None),
                Err(e) => job.set_state(ferris_server::JobState::Failed, Some(e.to_string())),
            }
        }
        if let (Some(stop), Some(server)) = (http_stop, http) {
            let _ = stop.send(());
            let _ = server.await;
        }
        result.map_err(|e| (1u8, format!("error: {e}")))
    });
    // Sources blocked on stdin cannot be interrupted; do not wait for them forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let _ = std::io::stdout().flush();
    if let Some(e) = &exporter {
        e.flush(std::time::Duration::from_secs(5));
    }
    if let (Some(e), Some(t)) = (&lineage, ticker) {
        t.finish();
        match &result {
            Ok(_) => e.emit(EventType::Complete, None),
            Err((_, message)) => e.emit(EventType::Fail, Some(message)),
        }
    }
    match result {
        Ok(report) => {
            if args.stats {
                eprint!("{}", stats::render(&report, &registry, started.elapsed()));
            }
            0
        }
        Err((code, message)) => {
            eprintln!("{message}");
            code
        }
    }
}

/// Explains one `EXPLAIN` statement (running its query under `ANALYZE`).
pub async fn explain_one(
    app: &ferris_plan::Application,
    req: &ferris_plan::ExplainRequest,
    config: &JobConfig,
    base: &Path,
) -> Result<String, ferris_engine::EngineError> {
    use ferris_engine::explain;
    let e = explain::explain(app, req, config, base)?;
    let e = if req.options.analyze {
        explain::analyze(app, req, config.clone(), base, e).await?
    } else {
        e
    };
    Ok(explain::render(&e, req))
}

/// `EXPLAIN TOPOLOGY (LIVE true)`: the statement sent to `server`, which answers with the
/// live topology of the job running the same query; or why not, with the exit code (2: no
/// server given, at the LIVE option; 1: the server refused or cannot be reached).
fn live_explain(
    app: &ferris_plan::Application,
    req: &ferris_plan::ExplainRequest,
    live: ferris_sql::ast::Span,
    server: Option<&str>,
) -> Result<String, (String, u8)> {
    let Some(server) = server else {
        let e = ferris_plan::AppError::Plan(ferris_plan::PlanError::at(
            "LIVE reads the job running this query in a server: give run --server URL \
             (ferris-cli server), or ANALYZE true to run the query here",
            live,
        ));
        return Err((e.render(&app.sql), 2));
    };
    let url = format!("{}/api/v1/explain", server.trim_end_matches('/'));
    let body = serde_json::json!({ "sql": app.fragment(req.span) });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|e| (format!("error: cannot reach the server at {url}: {e}"), 1))?;
    let status = response.status().as_u16();
    let mut text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| (format!("error: reading the answer of {url}: {e}"), 1))?;
    if status >= 300 {
        let refusal: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let message = refusal["rendered"]
            .as_str()
            .or(refusal["message"].as_str())
            .unwrap_or(&text);
        return Err((format!("error: {url}: HTTP {status}: {message}"), 1));
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Exit code of a job that could not be assembled: 4 when the environment is not ready
/// (missing input file, unreachable broker, permission denied), 2 when the application is
/// invalid.
pub(crate) fn setup_exit_code(e: &ferris_engine::EngineError) -> u8 {
    if e.is_environment() { 4 } else { 2 }
}

/// The job record `run --http` serves: the graph of the job about to run.
fn served_job(
    app: &ferris_plan::Application,
    config: &JobConfig,
    sql: &str,
    base: &Path,
    args: &RunArgs,
) -> Result<std::sync::Arc<ferris_server::Job>, u8> {
    let graph = match ferris_engine::job_graph(app, config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}", e.render(sql));
            return Err(setup_exit_code(&e));
        }
    };
    let name = args
        .file
        .as_ref()
        .and_then(|f| f.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string());
    let stored = ferris_server::StoredJob {
        name,
        sql: sql.to_string(),
        base_dir: base.to_path_buf(),
        settings: args.set.clone(),
        deployed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        restarts: 0,
    };
    let mut job = ferris_server::Job::new(&stored, graph);
    job.lineage = config.lineage.as_ref().map(|l| l.0.clone());
    Ok(std::sync::Arc::new(job))
}

/// Resolves at Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn watch_signals(shutdown: Shutdown) {
    wait_for_signal().await;
    tracing::info!("signal received: stopping sources, draining in-flight batches");
    shutdown.trigger();
}
