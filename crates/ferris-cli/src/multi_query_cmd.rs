//! `ferris-cli multi-query …`: the query registry kept in a server's data directory
//! (register an annotated application, show the registry and its history, deploy, promote,
//! roll back, print what an environment runs).

use clap::{Args, Subcommand};
use ferris_server::Store;
use ferris_server::registry::ChangeRecord;
use std::path::PathBuf;

/// Options shared by every `multi-query` command.
#[derive(Args, Debug)]
pub struct MultiQueryArgs {
    /// The server's data directory (its SQLite store holds the registry).
    #[arg(long, global = true, default_value = "ferris-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Who makes the change (recorded with it); default: $USER.
    #[arg(long, global = true)]
    pub author: Option<String>,
    #[command(subcommand)]
    pub command: MultiQueryCommand,
}

/// `multi-query` commands.
#[derive(Subcommand, Debug)]
pub enum MultiQueryCommand {
    /// Register an annotated application file: a new release of its query group when
    /// anything changed, each change classified and recorded.
    Register {
        /// The application file (with `-- @group: NAME` and per-query annotations).
        file: PathBuf,
        /// What the change is about (recorded with it).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// A query group's queries: version, owner, metadata, and where each release runs.
    Registry {
        /// The query group.
        #[arg(long)]
        group: String,
        /// Also print every recorded change.
        #[arg(long)]
        show_history: bool,
    },
    /// Every recorded change of a query group, oldest first, with its diff.
    History {
        /// The query group.
        #[arg(long)]
        group: String,
    },
    /// Put a release (default: the latest) in an environment.
    Deploy {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment (dev, staging, production or any name).
        #[arg(long)]
        env: String,
        /// The release number.
        #[arg(long)]
        release: Option<i64>,
    },
    /// Put the release one environment runs in another.
    Promote {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment promoted from.
        #[arg(long)]
        from: String,
        /// The environment promoted to.
        #[arg(long)]
        to: String,
    },
    /// Return an environment to an earlier release: a release number or QUERY@VERSION.
    Rollback {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// The release number, or QUERY@VERSION (the latest release with that version).
        #[arg(long)]
        to: String,
    },
    /// The lineage of the registered groups together (the latest release of each): edges
    /// from datasets through sources, queries and derived streams to datasets, across groups
    /// (a topic or file one writes and another reads), and each output column's source
    /// columns with the expressions on the way.
    Lineage {
        /// Only these groups (default: every registered group).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// What changing a query affects downstream, across the registered groups: the queries
    /// reading its output directly and through others, their columns computed from the
    /// changed ones, the datasets they write, a risk level and the rollback plan.
    Impact {
        /// The changed query, GROUP/QUERY.
        #[arg(long)]
        query: String,
        /// The change: `sql_update` (its whole output) or `column_drop` (with --column).
        #[arg(long, default_value = "sql_update", value_parser = ["sql_update", "column_drop"])]
        change: String,
        /// The dropped column.
        #[arg(long)]
        column: Option<String>,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// What differs between the releases two environments run: SQL, sink properties,
    /// feature flags and versions, each difference once with its risk.
    Diff {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment compared.
        #[arg(long)]
        env1: String,
        /// The environment compared with.
        #[arg(long)]
        env2: String,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Drift of an environment from a baseline environment (as `diff`).
    ValidateConfig {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment checked.
        #[arg(long)]
        env: String,
        /// The baseline environment.
        #[arg(long)]
        baseline: String,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// The registered groups' lineage with each query's version and owner, as Graphviz DOT
    /// or JSON.
    Export {
        /// Only these groups (default: every registered group).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// `dot`, `json` or `svg` (laid out by Graphviz's `dot`).
        #[arg(long, default_value = "dot", value_parser = ["dot", "json", "svg"])]
        format: String,
    },
    /// The feature flags of each query in the release an environment runs.
    FeatureFlags {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// The queries under given regulations (`@business.regulations`) with their
    /// classification, owner, the datasets they read and write, and their versions per
    /// environment.
    ComplianceReport {
        /// Only these groups (default: every registered group).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The regulations, comma separated (default: every one).
        #[arg(long, value_delimiter = ',')]
        regulations: Vec<String>,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// A query group's queries (its latest release): what each reads, filters, groups,
    /// windows and aggregates, its columns and their lineage, with its metadata; then what
    /// they have in common (as `EXPLAIN MULTI_QUERY`).
    Analyze {
        /// The query group.
        #[arg(long)]
        group: String,
        /// Add each query's metadata, ownership and compliance annotations.
        #[arg(long)]
        include_metadata: bool,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// What a query group's queries share now (one reader per source, shared window state)
    /// and could share, limited to those concerning at least two of `--queries`.
    SharedResources {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The queries, comma separated (default: every query of the group).
        #[arg(long, value_delimiter = ',')]
        queries: Vec<String>,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// What a query group could compute once instead of several times, with the estimated
    /// savings (as `EXPLAIN OPTIMIZATION_OPPORTUNITIES`).
    Optimize {
        /// The query group.
        #[arg(long)]
        group: String,
        /// A server running the group: each saving in figures from its metrics.
        #[arg(long)]
        server: Option<String>,
        /// The server's job running the group (default: the group's name).
        #[arg(long, requires = "server")]
        job: Option<String>,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Answer the EXPLAIN forms that read the registry, from a file or `-e`:
    /// `EXPLAIN DIFF [(METADATA true, VERSIONS true)] QUERY 'q' BETWEEN ENVIRONMENTS ('a', 'b')`
    /// (`q` is `GROUP/QUERY`, or a query one group holds).
    Explain {
        /// A file of EXPLAIN statements.
        #[arg(required_unless_present = "execute", conflicts_with = "execute")]
        file: Option<PathBuf>,
        /// The statements as text.
        #[arg(short = 'e', long = "execute", value_name = "SQL")]
        execute: Option<String>,
        /// The group whose latest release an `EXPLAIN [TOPOLOGY] … query` is planned in.
        #[arg(long)]
        group: Option<String>,
    },
    /// A query group's queries as a server runs them, refreshed in place: version, owner,
    /// rows in, rows per second, written, late, dead-lettered, state entries.
    Dashboard {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The server running it (e.g. http://127.0.0.1:8080).
        #[arg(long)]
        server: String,
        /// The server's job running the group (default: the group's name).
        #[arg(long)]
        job: Option<String>,
        /// The environment whose release gives the versions (default: the latest release).
        #[arg(long)]
        env: Option<String>,
        /// Seconds between frames.
        #[arg(long, default_value_t = 2.0)]
        refresh: f64,
        /// Print one frame (after one refresh interval, for the rates) and exit.
        #[arg(long)]
        once: bool,
    },
    /// Set the job settings an environment runs the group with (`--set KEY=VALUE`, the keys
    /// of `ferris-cli run --set`; an empty value removes one), recorded as a `scaling` change.
    Scale {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// A setting `key=value` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
        set: Vec<String>,
    },
    /// Print the job settings an environment runs the group with, as `--set KEY=VALUE`
    /// arguments of `ferris-cli run`.
    JobSettings {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// Print the application an environment runs (`ferris-cli run` takes it).
    Sql {
        /// The query group.
        #[arg(long)]
        group: String,
        /// The environment.
        #[arg(long)]
        env: String,
    },
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `ferris-cli multi-query …`. Exit codes: 0 done, 2 a request the registry refuses (or an
/// application that does not plan), 3 an unreadable file or store.
pub fn multi_query(args: MultiQueryArgs) -> u8 {
    let store = match Store::open(&args.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let author = args
        .author
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let result = match args.command {
        MultiQueryCommand::Register { file, description } => {
            return register(&store, &file, &author, &description);
        }
        MultiQueryCommand::Registry {
            group,
            show_history,
        } => registry(&store, &group, show_history),
        MultiQueryCommand::History { group } => store.history(&group).map(|h| print_history(&h)),
        MultiQueryCommand::Deploy {
            group,
            env,
            release,
        } => store
            .deploy(&group, &env, release, &author, &now())
            .map(|seq| println!("{group}: release {seq} deployed in {env}")),
        MultiQueryCommand::Promote { group, from, to } => store
            .promote(&group, &from, &to, &author, &now())
            .map(|seq| println!("{group}: release {seq} promoted from {from} to {to}")),
        MultiQueryCommand::Rollback { group, env, to } => store
            .rollback(&group, &env, &to, &author, &now())
            .map(|seq| println!("{group}: {env} rolled back to release {seq}")),
        MultiQueryCommand::Lineage { groups, format } => lineage(&store, &groups, &format),
        MultiQueryCommand::Impact {
            query,
            change,
            column,
            format,
        } => crate::multi_query_impact::impact(&store, &query, &change, column.as_deref(), &format),
        MultiQueryCommand::Diff {
            group,
            env1,
            env2,
            format,
        } => crate::multi_query_drift::drift(&store, &group, &env1, &env2, &format),
        MultiQueryCommand::ValidateConfig {
            group,
            env,
            baseline,
            format,
        } => crate::multi_query_drift::drift(&store, &group, &env, &baseline, &format),
        MultiQueryCommand::Export { groups, format } => {
            crate::multi_query_export::export(&store, &groups, &format)
        }
        MultiQueryCommand::Analyze {
            group,
            include_metadata,
            format,
        } => crate::multi_query_analyze::analyze(&store, &group, include_metadata, &format),
        MultiQueryCommand::SharedResources {
            group,
            queries,
            format,
        } => crate::multi_query_analyze::shared_resources(&store, &group, &queries, &format),
        MultiQueryCommand::Explain {
            file,
            execute,
            group,
        } => {
            return crate::multi_query_analyze::explain(
                &store,
                file.as_deref(),
                execute,
                group.as_deref(),
            );
        }
        MultiQueryCommand::Dashboard {
            group,
            server,
            job,
            env,
            refresh,
            once,
        } => crate::multi_query_dashboard::dashboard(
            &store,
            &crate::multi_query_dashboard::Dashboard {
                group: &group,
                server: &server,
                job: job.as_deref().unwrap_or(&group),
                env: env.as_deref(),
                refresh,
                once,
            },
        ),
        MultiQueryCommand::Scale { group, env, set } => {
            // The same keys and values `ferris-cli run --set` accepts (an empty value
            // removes a key).
            let given: Vec<String> = set.iter().filter(|s| !s.ends_with('=')).cloned().collect();
            if let Err(code) = crate::run::job_config(&given, None) {
                return code;
            }
            let mut pairs = Vec::new();
            for s in &set {
                match s.split_once('=') {
                    Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
                    None => {
                        eprintln!("error: --set {s}: expected KEY=VALUE");
                        return 2;
                    }
                }
            }
            store
                .scale(&group, &env, &pairs, &author, &now())
                .map(|after| {
                    let shown: Vec<String> =
                        after.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("{group}: {env} runs with {}", shown.join(", "));
                })
        }
        MultiQueryCommand::JobSettings { group, env } => store
            .releases(&group)
            .and_then(|_| store.job_settings(&group, &env))
            .map(|s| {
                let args: Vec<String> = s.iter().map(|(k, v)| format!("--set {k}={v}")).collect();
                println!("{}", args.join(" "));
            }),
        MultiQueryCommand::Optimize {
            group,
            server,
            job,
            format,
        } => crate::multi_query_analyze::optimize(
            &store,
            &group,
            server.as_deref(),
            job.as_deref(),
            &format,
        ),
        MultiQueryCommand::FeatureFlags { group, env } => {
            crate::multi_query_export::feature_flags(&store, &group, &env)
        }
        MultiQueryCommand::ComplianceReport {
            groups,
            regulations,
            format,
        } => crate::multi_query_export::compliance_report(&store, &groups, &regulations, &format),
        MultiQueryCommand::Sql { group, env } => {
            store.deployed_sql(&group, &env).map(|sql| print!("{sql}"))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => failed(&e),
    }
}

fn register(store: &Store, file: &std::path::Path, author: &str, description: &str) -> u8 {
    let (sql, _) = match crate::run::read_app(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let app = match ferris_plan::plan_application(&sql) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{}", e.render(&sql));
            return 2;
        }
    };
    let annotations = match ferris_plan::annotations::read(&app) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}", e.render(&sql));
            return 2;
        }
    };
    match store.register(&app, &annotations, author, description, &now()) {
        Ok(r) => {
            match r.release {
                None => println!("{}: nothing changed since the latest release", r.group),
                Some(seq) => {
                    println!("{}: release {seq}", r.group);
                    for (query, kind) in &r.changes {
                        println!("  {query}: {}", kind.as_str());
                    }
                }
            }
            0
        }
        Err(e) => failed(&e),
    }
}

fn registry(
    store: &Store,
    group: &str,
    show_history: bool,
) -> Result<(), ferris_server::ServerError> {
    let releases = store.releases(group)?;
    let deployed = store.deployments(group)?;
    let versions = store.deployed_versions(group)?;
    let latest = releases.last().map_or(0, |r| r.0);
    println!("QUERY REGISTRY - {group}");
    println!("releases: {latest}");
    for (env, (seq, at)) in &deployed {
        println!("  {env}: release {seq} (deployed {at})");
    }
    for e in store.entries(group, latest)? {
        println!();
        println!("{}", e.query);
        println!("  version: {}", e.version.as_deref().unwrap_or("(none)"));
        for (env, (_, versions)) in &versions {
            let there = match versions.get(&e.query) {
                Some(v) => v.as_deref().unwrap_or("(none)"),
                None => "(absent)",
            };
            println!("  {env}: {there}");
        }
        let section = |name: &str| {
            e.metadata
                .get(name)
                .and_then(|v| v.as_object())
                .filter(|o| !o.is_empty())
                .cloned()
        };
        for (label, name) in [
            ("", "fields"),
            ("tag ", "tags"),
            ("slo ", "slos"),
            ("flag ", "flags"),
            ("business ", "business"),
        ] {
            if let Some(map) = section(name) {
                for (k, v) in map {
                    let v = v.as_str().map_or(v.to_string(), str::to_string);
                    println!("  {label}{k}: {v}");
                }
            }
        }
        println!("  output: {}", e.output);
    }
    if show_history {
        println!();
        print_history(&store.history(group)?);
    }
    Ok(())
}

fn print_history(changes: &[ChangeRecord]) {
    println!("CHANGE HISTORY");
    print!("{}", history_text(changes));
}

/// One line per change (with its diff indented below).
pub(crate) fn history_text(changes: &[ChangeRecord]) -> String {
    let mut out = String::new();
    for c in changes {
        let on = match (&c.query, &c.environment) {
            (Some(q), _) => format!(" {q}"),
            (None, Some(e)) => format!(" [{e}]"),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "{} {}{on} by {}: {}\n",
            c.at, c.change_type, c.author, c.description
        ));
        for line in c.diff.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// The latest release of each of `groups` (every registered group when empty), planned.
pub(crate) fn latest_apps(
    store: &Store,
    groups: &[String],
) -> Result<Vec<(String, ferris_plan::Application)>, ferris_server::ServerError> {
    let names = match groups {
        [] => store.groups()?,
        g => g.to_vec(),
    };
    let mut apps = Vec::new();
    for name in names {
        let sql = store.latest_sql(&name)?;
        let app = ferris_plan::plan_application(&sql).map_err(|e| {
            ferris_server::ServerError::Registry(format!(
                "group '{name}': its latest release no longer plans: {e}"
            ))
        })?;
        apps.push((name, app));
    }
    Ok(apps)
}

fn lineage(
    store: &Store,
    groups: &[String],
    format: &str,
) -> Result<(), ferris_server::ServerError> {
    let apps = latest_apps(store, groups)?;
    let refs: Vec<(String, &ferris_plan::Application)> =
        apps.iter().map(|(n, a)| (n.clone(), a)).collect();
    let g = ferris_plan::lineage::graph(&refs);
    if format == "json" {
        let edges: Vec<serde_json::Value> = g
            .edges
            .iter()
            .map(|(a, b)| serde_json::json!({"from": a.id(), "to": b.id()}))
            .collect();
        let columns: Vec<serde_json::Value> = g
            .columns
            .iter()
            .map(|((app, q, c), o)| {
                serde_json::json!({
                    "group": app, "query": q, "column": c,
                    "sources": o.datasets.iter().map(|(d, col)| serde_json::json!({"dataset": d, "column": col})).collect::<Vec<_>>(),
                    "through": o.through,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"edges": edges, "columns": columns}))
                .unwrap_or_default()
        );
        return Ok(());
    }
    println!("LINEAGE ({} groups)", apps.len());
    println!("edges:");
    for (a, b) in &g.edges {
        println!("  {} -> {}", a.id(), b.id());
    }
    println!("columns:");
    for ((app, q, c), o) in &g.columns {
        let from: Vec<String> = o
            .datasets
            .iter()
            .map(|(d, col)| format!("{d}.{col}"))
            .collect();
        println!("  {app}/{q}.{c} <- {}", from.join(", "));
        for t in &o.through {
            println!("      {t}");
        }
    }
    Ok(())
}

/// Reports `e`; the exit code: 2 for a refused request, 3 for the store.
pub(crate) fn failed(e: &ferris_server::ServerError) -> u8 {
    eprintln!("error: {e}");
    failed_code(e)
}

/// The exit code of `e`: 2 for a refused request, 3 for the store.
pub(crate) fn failed_code(e: &ferris_server::ServerError) -> u8 {
    match e {
        ferris_server::ServerError::Registry(_) => 2,
        _ => 3,
    }
}
