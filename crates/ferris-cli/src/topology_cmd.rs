//! `ferris-cli topology show | explain | analyze | export`: the job graph of an application
//! as the box view, one query explained, the whole job run and measured with its
//! bottleneck analysis, and the graph exported as DOT, JSON, Mermaid or SVG.

use crate::run::{explain_one, job_config, read_app, setup_exit_code};
use clap::{Args, Subcommand};
use ferris_engine::explain::{self, estimate, topology};
use ferris_plan::{ExplainFormat, ExplainOptions};
use std::path::PathBuf;

/// Options of `topology`.
#[derive(Args, Debug)]
pub struct TopologyArgs {
    #[command(subcommand)]
    command: TopologyCommand,
}

/// The application and its job settings, as for `run`.
#[derive(Args, Debug)]
struct AppArgs {
    /// The application file.
    file: PathBuf,
    /// Job setting `key=value` (repeatable), as for `run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Partition pipelines per query.
    #[arg(short = 'p', long)]
    parallelism: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum TopologyCommand {
    /// Every task and channel of the application's job as boxes, with the estimated rows of
    /// each source (nothing runs).
    Show {
        #[command(flatten)]
        app: AppArgs,
    },
    /// EXPLAIN (PLAN, TOPOLOGY) of one query over the application's declarations.
    Explain {
        #[command(flatten)]
        app: AppArgs,
        /// The query (a SELECT over the application's streams).
        #[arg(long)]
        query: String,
        /// Run the query and add what was measured.
        #[arg(long)]
        analyze: bool,
        /// text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Run the whole job (bounded input to its end, or for --duration seconds) with its
    /// real sinks, then print the topology with measured channels and tasks and the
    /// bottleneck analysis.
    ///
    /// With --server and --job, analyses a job running in that server instead, over its
    /// whole run or the last --timerange (e.g. 1h; the server keeps snapshots of the job's
    /// metrics every 15 s for an hour and every 5 minutes for a day).
    Analyze {
        /// The application file (not with --server).
        #[arg(required_unless_present = "server", conflicts_with = "server")]
        file: Option<PathBuf>,
        /// Job setting `key=value` (repeatable), as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Partition pipelines per query.
        #[arg(short = 'p', long)]
        parallelism: Option<usize>,
        /// Stop after this many seconds (required when an input is unbounded).
        #[arg(long, value_name = "SECONDS", conflicts_with = "server")]
        duration: Option<f64>,
        /// The server running the job to analyse.
        #[arg(long, requires = "job")]
        server: Option<String>,
        /// The job's name (with --server).
        #[arg(long, requires = "server")]
        job: Option<String>,
        /// With --server: analyse the last 90s, 30m, 1h, 1d … of the job.
        #[arg(long, requires = "server")]
        timerange: Option<String>,
        /// text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Redraw the topology of a job running in a server, with its live metrics and
    /// bottleneck analysis, every --refresh (in place on a terminal).
    Live {
        /// The server's URL.
        #[arg(long, default_value = "http://127.0.0.1:9249")]
        server: String,
        /// The job's name.
        #[arg(long)]
        job: String,
        /// Time between redraws, e.g. 1s or 500ms.
        #[arg(long, default_value = "1s")]
        refresh: String,
        /// Stop after this many draws (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
    },
    /// The health of every job of a server: the verdict per job, and with --detailed every
    /// check with its reason, node and channel.
    Health {
        /// The server's URL.
        #[arg(long, default_value = "http://127.0.0.1:9249")]
        server: String,
        /// Every check, not only the verdicts.
        #[arg(long)]
        detailed: bool,
    },
    /// Generate the application's documentation: overview diagram, sources, processing
    /// stages with their SQL, sinks, state and performance, and a runbook entry per
    /// shipped alert.
    Docs {
        #[command(flatten)]
        app: AppArgs,
        /// markdown or html.
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "html"])]
        format: String,
        /// Run the job first (bounded input to its end, or for --duration seconds) and
        /// document what it measured.
        #[arg(long)]
        analyze: bool,
        /// With --analyze, stop after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// The path of one record through the job: where it was read, each operator it passed
    /// or was filtered, dead-lettered or dropped as late by, the keyed partition and key it
    /// went to, and the output rows and sink positions it contributed to. Runs the
    /// application here (bounded input to its end, or for --duration seconds), or with
    /// --server reads what a running job's lineage sample ('lineage.sample') kept.
    Trace {
        /// The record: a source position (`trades/3/1234` or `trades/1234`), a correlation
        /// id, or a column value (every row holding it).
        #[arg(long = "record-id")]
        record_id: String,
        /// The application file (runs it here).
        #[arg(required_unless_present = "server")]
        file: Option<PathBuf>,
        /// Job setting `key=value` (repeatable), as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Partition pipelines per query.
        #[arg(short = 'p', long)]
        parallelism: Option<usize>,
        /// Stop the local run after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Read the lineage of a job running in this server instead.
        #[arg(long, requires = "job")]
        server: Option<String>,
        /// The server's job.
        #[arg(long)]
        job: Option<String>,
        /// text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Print the job graph as dot (Graphviz), json (docs/graph.md), mermaid or svg.
    Export {
        #[command(flatten)]
        app: AppArgs,
        /// dot (or graphviz), json, mermaid or svg.
        #[arg(long, value_parser = ["dot", "graphviz", "json", "mermaid", "svg"])]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

/// `ferris-cli topology ...`.
pub fn topology(args: TopologyArgs) -> u8 {
    match args.command {
        TopologyCommand::Show { app } => show(&app),
        TopologyCommand::Explain {
            app,
            query,
            analyze,
            format,
        } => explain_query(&app, &query, analyze, &format),
        TopologyCommand::Analyze {
            file,
            set,
            parallelism,
            duration,
            server,
            job,
            timerange,
            format,
        } => match (file, server, job) {
            (_, Some(server), Some(job)) => {
                analyze_remote(&server, &job, timerange.as_deref(), &format)
            }
            (Some(file), _, _) => analyze_job(
                &AppArgs {
                    file,
                    set,
                    parallelism,
                },
                duration,
                &format,
            ),
            _ => {
                eprintln!("error: give an application file, or --server URL --job NAME");
                2
            }
        },
        TopologyCommand::Live {
            server,
            job,
            refresh,
            count,
        } => live(&server, &job, &refresh, count),
        TopologyCommand::Health { server, detailed } => health(&server, detailed),
        TopologyCommand::Export {
            app,
            format,
            output,
        } => export(&app, &format, output.as_ref()),
        TopologyCommand::Trace {
            record_id,
            file,
            set,
            parallelism,
            duration,
            server,
            job,
            format,
        } => match (server, file) {
            (Some(server), _) => {
                trace_server(&server, job.as_deref().unwrap_or(""), &record_id, &format)
            }
            (None, Some(file)) => {
                let app = AppArgs {
                    file,
                    set,
                    parallelism,
                };
                trace_local(&app, &record_id, duration, &format)
            }
            (None, None) => 2,
        },
        TopologyCommand::Docs {
            app,
            format,
            analyze,
            duration,
            output,
        } => docs(&app, &format, analyze, duration, output.as_ref()),
    }
}

/// The planned application, its base directory, its job settings and its graph.
struct Loaded {
    sql: String,
    base: PathBuf,
    app: ferris_plan::Application,
    config: ferris_runtime::JobConfig,
    graph: ferris_engine::JobGraph,
}

fn load(a: &AppArgs) -> Result<Loaded, u8> {
    let (sql, base) = read_app(&a.file)?;
    let config = job_config(&a.set, a.parallelism)?;
    let app = ferris_plan::plan_application(&sql).map_err(|e| {
        eprintln!("{}", e.render(&sql));
        2u8
    })?;
    let graph = ferris_engine::job_graph(&app, &config).map_err(|e| {
        eprintln!("{}", e.render(&sql));
        setup_exit_code(&e)
    })?;
    Ok(Loaded {
        sql,
        base,
        app,
        config,
        graph,
    })
}

fn name_of(a: &AppArgs) -> String {
    a.file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into())
}

fn show(a: &AppArgs) -> u8 {
    let l = match load(a) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let sources: Vec<_> = l
        .app
        .sources
        .iter()
        .map(|s| estimate::source_estimate(s, &l.base))
        .collect();
    let options = options(ExplainFormat::Text, false);
    print!(
        "{}",
        topology::topology_view(&name_of(a), &l.graph, &sources, None, &options)
    );
    0
}

fn options(format: ExplainFormat, analyze: bool) -> ExplainOptions {
    ExplainOptions {
        plan: true,
        topology: true,
        analyze,
        costs: true,
        buffers: false,
        timing: true,
        verbose: false,
        format,
        metrics: analyze,
        performance: analyze,
        bottlenecks: analyze,
        duration: None,
        live: None,
        metadata: false,
        history: None,
    }
}

fn explain_query(a: &AppArgs, query: &str, analyze: bool, format: &str) -> u8 {
    let (sql, base) = match read_app(&a.file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let config = match job_config(&a.set, a.parallelism) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = format!(
        "PLAN true, TOPOLOGY true, ANALYZE {analyze}, FORMAT {}",
        format.to_ascii_uppercase()
    );
    let query = query.trim().trim_end_matches(';');
    let full = format!("{sql}\n;\nEXPLAIN ({opts}) {query};\n");
    let mut app = match ferris_plan::plan_application(&full) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{}", e.render(&full));
            return 2;
        }
    };
    app.queries.clear();
    let Some(req) = app.explains.pop() else {
        return 2;
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(explain_one(&app, &req, &config, &base)) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("{}", e.render(&full));
            setup_exit_code(&e)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            1
        })
}

fn analyze_job(a: &AppArgs, duration: Option<f64>, format: &str) -> u8 {
    let l = match load(a) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (sources, run) = match measure(a, &l, duration) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if format == "json" {
        let doc = explain::topology_json(&l.graph, &run);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        let options = options(ExplainFormat::Text, true);
        print!(
            "{}",
            topology::topology_view(&name_of(a), &l.graph, &sources, Some(&run), &options)
        );
    }
    0
}

/// `topology analyze --server URL --job NAME [--timerange R]`: the server's analysis of the
/// job's whole run or of its last `R`.
fn analyze_remote(server: &str, job: &str, timerange: Option<&str>, format: &str) -> u8 {
    let mut url = format!(
        "{}/api/v1/jobs/{job}/topology?format={format}",
        server.trim_end_matches('/')
    );
    if let Some(r) = timerange {
        url.push_str(&format!("&timerange={r}"));
    }
    match get_text(&url) {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn docs(
    a: &AppArgs,
    format: &str,
    analyze: bool,
    duration: Option<f64>,
    output: Option<&PathBuf>,
) -> u8 {
    let l = match load(a) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (sources, run) = if analyze {
        match measure(a, &l, duration) {
            Ok((s, r)) => (s, Some(r)),
            Err(code) => return code,
        }
    } else {
        let s = l
            .app
            .sources
            .iter()
            .map(|s| estimate::source_estimate(s, &l.base))
            .collect();
        (s, None)
    };
    let text = crate::topology_docs::render(
        &name_of(a),
        &l.sql,
        &l.graph,
        &sources,
        run.as_ref(),
        format == "html",
    );
    write_out(output, &text)
}

fn write_out(output: Option<&PathBuf>, text: &str) -> u8 {
    match output {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                3
            }
        },
        None => {
            print!("{text}");
            0
        }
    }
}

fn trace_local(a: &AppArgs, record_id: &str, duration: Option<f64>, format: &str) -> u8 {
    let mut l = match load(a) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let sources: Vec<String> = l.app.sources.iter().map(|s| s.name.clone()).collect();
    let selector = ferris_runtime::lineage::Selector::parse(record_id, &sources);
    let sample = l.config.lineage.as_ref().map_or(0.0, |h| h.0.sample());
    let lineage = std::sync::Arc::new(ferris_runtime::lineage::Lineage::new(
        Some(selector),
        sample,
    ));
    l.config.lineage = Some(ferris_runtime::LineageHandle(lineage.clone()));
    if let Err(code) = measure(a, &l, duration) {
        return code;
    }
    let (events, _) = lineage.events();
    let events: Vec<_> = if sample > 0.0 {
        // The sample followed other rows too: keep those the id names.
        let ids: std::collections::BTreeSet<String> = events
            .iter()
            .filter(|e| e.hop == "read" || e.hop == "decode_failed")
            .filter(|e| &*e.record == record_id || e.detail.contains(record_id))
            .map(|e| e.record.to_string())
            .collect();
        events
            .into_iter()
            .filter(|e| ids.contains(&*e.record))
            .collect()
    } else {
        events
    };
    print_trace(record_id, &ferris_server::lineage_json(&events), format)
}

fn trace_server(server: &str, job: &str, record_id: &str, format: &str) -> u8 {
    let url = format!(
        "{}/api/v1/jobs/{job}/lineage?record={}",
        server.trim_end_matches('/'),
        record_id.replace('/', "%2F")
    );
    let v = match get_json(&url) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let records = v["records"].as_array().cloned().unwrap_or_default();
    print_trace(record_id, &records, format)
}

/// Prints followed records' paths: per record and query, each hop with the time since the
/// record was read and since the hop before.
fn print_trace(record_id: &str, records: &[serde_json::Value], format: &str) -> u8 {
    if format == "json" {
        let doc = serde_json::json!({"record_id": record_id, "records": records});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return if records.is_empty() { 1 } else { 0 };
    }
    if records.is_empty() {
        eprintln!(
            "no record matched '{record_id}': give a source position (source/partition/position \
             or source/position), a correlation id or a column value"
        );
        return 1;
    }
    for r in records {
        println!("RECORD LINEAGE: {}", r["record"].as_str().unwrap_or("?"));
        let mut query = String::new();
        let mut previous = 0.0;
        for e in r["events"].as_array().into_iter().flatten() {
            let q = e["query"].as_str().unwrap_or("?");
            let since = e["since_read_ms"].as_f64().unwrap_or(0.0);
            if q != query {
                println!("  query {q}:");
                query = q.to_string();
                previous = since;
            }
            println!(
                "    {since:>9.3} ms (+{:.3})  {:<16} {:<26} {}",
                (since - previous).max(0.0),
                e["hop"].as_str().unwrap_or("?"),
                e["node"].as_str().unwrap_or("?"),
                e["detail"].as_str().unwrap_or("")
            );
            if !e["row"].is_null() {
                println!("{:>34}row {}", "", e["row"]);
            }
            previous = since;
        }
    }
    0
}

/// Runs the whole job of `l` and returns its sources' estimates and what the run measured.
fn measure(
    a: &AppArgs,
    l: &Loaded,
    duration: Option<f64>,
) -> Result<(Vec<estimate::SourceEstimate>, explain::RunSummary), u8> {
    if l.app.queries.is_empty() {
        eprintln!(
            "error: {}: the application has no query to run",
            a.file.display()
        );
        return Err(2);
    }
    let duration = match duration {
        Some(d) if d > 0.0 && d.is_finite() => Some(std::time::Duration::from_secs_f64(d)),
        Some(d) => {
            eprintln!("error: --duration {d}: give a number of seconds greater than 0");
            return Err(2);
        }
        None => None,
    };
    let sources: Vec<_> = l
        .app
        .sources
        .iter()
        .map(|s| estimate::source_estimate(s, &l.base))
        .collect();
    let unbounded: Vec<&str> = sources
        .iter()
        .filter(|s| !s.bounded)
        .map(|s| s.name.as_str())
        .collect();
    if duration.is_none() && !unbounded.is_empty() {
        eprintln!(
            "error: '{}' is unbounded: give --duration SECONDS to stop the run",
            unbounded.join("', '")
        );
        return Err(2);
    }
    let runtime = runtime()?;
    let span = ferris_sql::ast::Span::default();
    // Rows for stdout are counted, not printed: the report goes there.
    let mut app = l.app.clone();
    for q in &mut app.queries {
        let stdout = q
            .sink
            .get("connector")
            .is_none_or(|c| c.eq_ignore_ascii_case("stdout"));
        if stdout {
            q.sink = [("connector".to_string(), "blackhole".to_string())].into();
        }
    }
    let measured = runtime.block_on(explain::analyze::measure(
        &app,
        &l.graph,
        l.config.clone(),
        &l.base,
        duration,
        span,
    ));
    match measured {
        Ok((run, _)) => Ok((sources, run)),
        Err(e) => {
            eprintln!("{}", e.render(&l.sql));
            Err(1)
        }
    }
}

fn export(a: &AppArgs, format: &str, output: Option<&PathBuf>) -> u8 {
    let l = match load(a) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let text = match format {
        "dot" | "graphviz" => ferris_engine::graph_dot(&l.graph),
        "mermaid" => ferris_engine::graph_mermaid(&l.graph),
        "svg" => ferris_engine::graph_svg(&l.graph),
        _ => {
            let mut s = serde_json::to_string_pretty(&ferris_engine::graph_json(&l.graph))
                .unwrap_or_default();
            s.push('\n');
            s
        }
    };
    write_out(output, &text)
}

/// `GET url` as text: the body, or why it failed.
fn get_text(url: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("cannot reach the server at {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    if status >= 300 {
        return Err(format!("{url}: HTTP {status}: {text}"));
    }
    Ok(text)
}

/// `GET url` as JSON, or the exit code 1 after printing why not.
fn get_json(url: &str) -> Result<serde_json::Value, u8> {
    let text = get_text(url).map_err(|e| {
        eprintln!("error: {e}");
        1u8
    })?;
    serde_json::from_str(&text).map_err(|e| {
        eprintln!("error: the server's answer is not JSON ({e})");
        1
    })
}

/// `1s`, `500ms`, `2` (seconds).
fn parse_interval(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (n, unit) = match s.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => match s.strip_suffix('s') {
            Some(n) => (n, 1.0),
            None => (s, 1.0),
        },
    };
    let v: f64 = n.trim().parse().ok()?;
    (v > 0.0 && v.is_finite()).then(|| std::time::Duration::from_secs_f64(v * unit))
}

fn live(server: &str, job: &str, refresh: &str, count: Option<u64>) -> u8 {
    use std::io::{IsTerminal, Write};
    let Some(every) = parse_interval(refresh) else {
        eprintln!("error: --refresh {refresh}: give a duration such as 1s or 500ms");
        return 2;
    };
    let url = format!(
        "{}/api/v1/jobs/{job}/topology?format=text",
        server.trim_end_matches('/')
    );
    let terminal = std::io::stdout().is_terminal();
    let mut drawn = 0u64;
    loop {
        match get_text(&url) {
            Ok(text) => {
                let mut out = std::io::stdout().lock();
                if terminal {
                    // Home and clear: redraw in place.
                    let _ = write!(out, "\x1b[H\x1b[2J");
                } else if drawn > 0 {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
        drawn += 1;
        if count.is_some_and(|c| drawn >= c) {
            return 0;
        }
        std::thread::sleep(every);
    }
}

fn health(server: &str, detailed: bool) -> u8 {
    let url = format!("{}/health/detail", server.trim_end_matches('/'));
    let v = match get_json(&url) {
        Ok(v) => v,
        Err(code) => return code,
    };
    println!(
        "server: {} at {}",
        v["status"].as_str().unwrap_or("?"),
        v["timestamp"].as_str().unwrap_or("?")
    );
    for job in v["jobs"].as_array().into_iter().flatten() {
        println!(
            "{}: {} ({})",
            job["job"].as_str().unwrap_or("?"),
            job["status"].as_str().unwrap_or("?"),
            job["state"].as_str().unwrap_or("?")
        );
        if !detailed {
            continue;
        }
        for c in job["checks"].as_array().into_iter().flatten() {
            let at = [c["node"].as_str(), c["edge"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "  {:<18} {:<9} {}{}",
                c["name"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or(""),
                if at.is_empty() {
                    String::new()
                } else {
                    format!(" [{at}]")
                }
            );
        }
    }
    0
}
