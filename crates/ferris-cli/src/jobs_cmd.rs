//! `ferris-cli jobs …`: the client of a `ferris-cli server`, over its REST API.

use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// Options shared by every `jobs` command.
#[derive(Args, Debug)]
pub struct JobsArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9249",
        value_name = "URL"
    )]
    pub server: String,
    /// File holding the bearer token (else FERRIS_TOKEN); deploy and stop need it.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// `jobs` commands.
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Deploy an application file as a job.
    Deploy {
        /// The application file.
        file: PathBuf,
        /// The job's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Job setting `key=value` (repeatable), as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List every job.
    List,
    /// One job's state and row counts.
    Status {
        /// The job.
        name: String,
    },
    /// Stop a job (it drains, flushes and commits).
    Stop {
        /// The job.
        name: String,
    },
    /// A job's recent log lines (JSON, one per line).
    Logs {
        /// The job.
        name: String,
        /// How many lines.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

enum Outcome {
    Ok(Value),
    /// HTTP status and JSON body of an error.
    Refused(u16, Value),
}

fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Outcome, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match (method, body) {
        ("POST", body) => {
            let mut req = agent.post(url).header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.send(body.unwrap_or(Value::Null).to_string())
        }
        _ => agent.get(url).call(),
    };
    let mut response = response.map_err(|e| format!("cannot reach the server at {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the server's answer is not JSON ({e}): {text}"))?;
    Ok(if status < 300 {
        Outcome::Ok(value)
    } else {
        Outcome::Refused(status, value)
    })
}

fn summary(job: &Value) -> String {
    let mut line = format!(
        "{:<24} {:<9} up {:>8.1}s  in {:>10.1} rows/s  out {:>10.1} rows/s",
        job["name"].as_str().unwrap_or("?"),
        job["state"].as_str().unwrap_or("?"),
        job["uptime_seconds"].as_f64().unwrap_or(0.0),
        job["input_rows_per_second"].as_f64().unwrap_or(0.0),
        job["output_rows_per_second"].as_f64().unwrap_or(0.0),
    );
    if let Some(e) = job["error"].as_str() {
        line.push_str(&format!("\n  error: {e}"));
    }
    line
}

/// `ferris-cli jobs …`. Exit codes: 0 ok, 1 the server refused (its message printed),
/// 2 bad options, 3 unreadable file, 4 server unreachable.
pub fn jobs(args: JobsArgs) -> u8 {
    let base = args.server.trim_end_matches('/').to_string();
    let token = match crate::server_cmd::read_token(args.token_file.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let result = match &args.command {
        JobsCommand::Deploy { file, name, set } => {
            let sql = match std::fs::read_to_string(file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return 3;
                }
            };
            let dir = std::path::absolute(file)
                .ok()
                .and_then(|p| p.parent().map(|d| d.to_path_buf()))
                .unwrap_or_else(|| PathBuf::from("."));
            let name = name.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let body = serde_json::json!({
                "name": name, "sql": sql, "base_dir": dir.to_string_lossy(), "settings": set,
            });
            call(
                "POST",
                &format!("{base}/api/v1/jobs"),
                token.as_deref(),
                Some(body),
            )
        }
        JobsCommand::List => call("GET", &format!("{base}/api/v1/jobs"), None, None),
        JobsCommand::Status { name } => {
            call("GET", &format!("{base}/api/v1/jobs/{name}"), None, None)
        }
        JobsCommand::Stop { name } => call(
            "POST",
            &format!("{base}/api/v1/jobs/{name}/stop"),
            token.as_deref(),
            None,
        ),
        JobsCommand::Logs { name, limit } => call(
            "GET",
            &format!("{base}/api/v1/jobs/{name}/logs?limit={limit}"),
            None,
            None,
        ),
    };
    match result {
        Err(e) => {
            eprintln!("error: {e}");
            4
        }
        Ok(Outcome::Refused(status, body)) => {
            match body["rendered"].as_str() {
                Some(r) => eprintln!("{r}"),
                None => eprintln!(
                    "error ({status}): {}",
                    body["message"].as_str().unwrap_or(&body.to_string())
                ),
            }
            1
        }
        Ok(Outcome::Ok(body)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
                return 0;
            }
            match &args.command {
                JobsCommand::List => {
                    for job in body["jobs"].as_array().into_iter().flatten() {
                        println!("{}", summary(job));
                    }
                }
                JobsCommand::Logs { .. } => {
                    for line in body["lines"].as_array().into_iter().flatten() {
                        println!("{line}");
                    }
                }
                _ => println!("{}", summary(&body)),
            }
            0
        }
    }
}
