//! `ferris-cli`: run, validate and benchmark FerrisStreams SQL applications.
//!
//! Exit codes: 0 success; 1 the job failed while running (bad input under `fail`, a sink that
//! kept failing, an I/O error); 2 the SQL, a property or an option is invalid; 3 the
//! application file cannot be read; 4 the job could not start because its environment is not
//! ready (an input file is missing, a broker cannot be reached, permission denied).

mod bench;
mod bench_kafka;
mod bench_kafka_keyed;
mod bench_keys;
mod bench_nexmark;
mod bench_observe;
mod cases;
mod jobs_cmd;
mod multi_query_analyze;
mod multi_query_cmd;
mod multi_query_dashboard;
mod multi_query_drift;
mod multi_query_export;
mod multi_query_impact;
mod openlineage_emit;
mod progress;
mod run;
mod server_cmd;
mod stats;
mod tansu;
mod topology_cmd;
mod topology_docs;

use clap::{Parser, Subcommand};

/// mimalloc: the engine allocates and frees many small objects (a group's accumulators, its
/// key) and glibc's allocator spends much of that time consolidating free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// FerrisStreams: continuous, exact streaming SQL over files, generators and Kafka.
#[derive(Parser, Debug)]
#[command(name = "ferris-cli", version, about, long_about = None)]
struct Cli {
    /// Log lines as `text` or `json` (one object per line: timestamp, level, message,
    /// component, job, query, operator, trace_id, span_id, correlation_id, metrics,
    /// context). Filter with FERRIS_LOG or RUST_LOG (e.g. `info,ferris_runtime=debug`);
    /// default `warn`, `info` for `server`.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every statement of an application file (or of -e SQL) until its inputs end or
    /// Ctrl-C. Exit codes: 0 ok, 1 job failed, 2 invalid SQL/options, 3 unreadable file,
    /// 4 environment not ready (missing input file, unreachable broker).
    Run(run::RunArgs),
    /// Parse and plan an application without running it (exit 0 when valid, 2 when not).
    Validate(run::ValidateArgs),
    /// Measure throughput and latency of built-in cases (release builds give real figures).
    Bench(bench::BenchArgs),
    /// Host many jobs in one process, with a REST API, /metrics and health endpoints.
    Server(server_cmd::ServerArgs),
    /// Deploy, list, inspect and stop the jobs of a running server.
    Jobs(jobs_cmd::JobsArgs),
    /// Show, explain, analyze and export the topology of an application's job.
    Topology(topology_cmd::TopologyArgs),
    /// The query registry: register annotated applications (query groups), their versions,
    /// metadata and changes; deploy, promote and roll back per environment.
    MultiQuery(multi_query_cmd::MultiQueryArgs),
}

/// Turns transparent huge pages off for this process. mimalloc's arenas are eligible for them
/// (the kernel's `madvise` mode), and the engine frees and reuses batch memory all the time:
/// each page handed back and touched again was then a 2 MiB page to zero, and on the 2-core
/// VM the kernel's clearing of them took up to 3 s of system time in a 1.2 s run (Nexmark q18:
/// 1.1-3.3 s wall, 0.65-1.16 s for q0; with 4 KiB pages 1.2-1.5 s and 0.65-0.67 s).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes plain integers and reads or writes no memory of
    // this process; on failure (an old kernel) nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Server(_) => "info",
        _ => "warn",
    };
    let logs = init_logging(&cli.log_format, default_level);
    let code = match cli.command {
        Command::Server(args) => server_cmd::server(args, logs),
        Command::Jobs(args) => jobs_cmd::jobs(args),
        Command::Run(args) => run::run(args, logs),
        Command::Validate(args) => run::validate(args),
        Command::Bench(args) => bench::bench(args),
        Command::Topology(args) => topology_cmd::topology(args),
        Command::MultiQuery(args) => multi_query_cmd::multi_query(args),
    };
    ExitCode::from(code)
}

/// Installs the log subscriber: text or JSON lines on stderr, filtered by FERRIS_LOG (else
/// RUST_LOG, else `default_level`), plus the per-job buffer the server serves.
fn init_logging(format: &str, default_level: &str) -> ferris_observe::JobLogs {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRIS_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = ferris_observe::JobLogs::new();
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(logs.layer());
    if format == "json" {
        registry
            .with(ferris_observe::JsonLayer::new(Box::new(std::io::stderr())))
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init();
    }
    logs
}
