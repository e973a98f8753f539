//! `ferris-cli server`: the long-running engine that hosts many jobs.

use clap::Args;
use ferris_observe::JobLogs;
use ferris_server::{DEFAULT_ADDR, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on (loopback by default; any other address needs a token).
    #[arg(long = "http", default_value = DEFAULT_ADDR, value_name = "ADDR")]
    pub http: SocketAddr,
    /// Directory of the embedded SQLite database that keeps deployed jobs across restarts.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File holding the bearer token that deploy and stop need (else FERRIS_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds a stopping server waits for its jobs to drain and commit.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout_secs: u64,
    /// Export spans of sampled batches over OTLP/HTTP to this collector (e.g.
    /// http://127.0.0.1:4318); else OTEL_EXPORTER_OTLP_ENDPOINT. Jobs sample
    /// `tracing.sample.ratio` of new traces (default 0.01).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// The OTLP endpoint from the flag, else from OTEL_EXPORTER_OTLP_ENDPOINT.
pub fn otlp_endpoint(flag: Option<&String>) -> Option<String> {
    flag.cloned()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

/// The token from `file`, else from FERRIS_TOKEN; an empty token is no token.
pub fn read_token(file: Option<&PathBuf>) -> Result<Option<String>, String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read the token file {}: {e}", f.display()))?,
        None => std::env::var("FERRIS_TOKEN").unwrap_or_default(),
    };
    let token = token.trim().to_string();
    Ok((!token.is_empty()).then_some(token))
}

/// `ferris-cli server`.
pub fn server(args: ServerArgs, logs: JobLogs) -> u8 {
    let token = match read_token(args.token_file.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if token.is_none() {
        tracing::warn!("no token (--token-file or FERRIS_TOKEN): deploy and stop are refused");
    }
    let config = ServerConfig {
        addr: args.http,
        data_dir: args.data_dir,
        token,
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        otlp_endpoint: otlp_endpoint(args.otlp_endpoint.as_ref()),
    };
    if let Err(e) = config.check() {
        eprintln!("error: {e}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferris-server")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let announce = tokio::spawn(async move {
            if let Ok(addr) = rx.await {
                // Scripts and tests read the bound address (port 0 picks a free one).
                println!("listening on http://{addr}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
        });
        let stop = async {
            crate::run::wait_for_signal().await;
            tracing::info!("signal received: stopping the server");
        };
        let r = ferris_server::run_server(config, logs, Some(tx), stop).await;
        let _ = announce.await;
        r
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                ferris_server::ServerError::Bind { .. }
                | ferris_server::ServerError::Store { .. } => 4,
                ferris_server::ServerError::NoToken { .. }
                | ferris_server::ServerError::Registry(_) => 2,
                ferris_server::ServerError::Serve(_) => 1,
            }
        }
    }
}
