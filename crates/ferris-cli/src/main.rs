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
mod cases;
mod progress;
mod run;
mod settings;
mod stats;
mod tansu;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => run::validate(args),
        Command::Bench(args) => bench::bench(args),
    };
    ExitCode::from(code)
}
