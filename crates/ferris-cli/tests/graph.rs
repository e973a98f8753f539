//! The job graph (`ferris-cli validate --graph json|dot`): golden files of its JSON for the
//! example application and for a keyed, a join and a repartitioned one, and checks that it
//! describes the job that runs: every channel the runtime creates is an edge of the graph,
//! and every task that labels its metrics with a node id is a node of it.

mod golden_support;

use ferris_engine::NodeKind;
use ferris_observe::Registry;
use ferris_runtime::{JobConfig, Shutdown};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn here(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/graph")
        .join(name)
}

/// `ferris-cli validate --graph FORMAT -p P FILE`'s stdout.
fn validate_graph(file: &Path, format: &str, parallelism: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args([
            "validate",
            "--plan-only",
            "--graph",
            format,
            "-p",
            &parallelism.to_string(),
        ])
        .arg(file)
        .output()
        .expect("run ferris-cli");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Compares `actual` with the golden file `name` (rewritten when FERRIS_UPDATE_GOLDEN=1).
fn golden(name: &str, actual: &str) {
    golden_support::check(&here(name), actual);
}

#[test]
fn example_application_graph_matches_its_golden_file() {
    let json = validate_graph(&root().join("examples/trading.sql"), "json", 1);
    golden("trading.p1.json", &json);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["version"], 1);
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "source/trades",
            "big_trades/stateless/0",
            "big_trades/sink",
            "minute_bars/stateless/0",
            "minute_bars/keyed/0",
            "minute_bars/sink",
            "select_1/stateless/0",
            "select_1/sink",
        ]
    );
}

#[test]
fn keyed_join_and_repartitioned_graphs_match_their_golden_files() {
    for app in ["keyed", "join", "repartitioned", "derived"] {
        let json = validate_graph(&here(&format!("{app}.sql")), "json", 2);
        golden(&format!("{app}.p2.json"), &json);
    }
    // Spot checks of what the golden files hold, so a careless rewrite shows here too.
    let v: serde_json::Value =
        serde_json::from_str(&validate_graph(&here("repartitioned.sql"), "json", 2)).expect("json");
    let node = |id: &str| {
        v["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id}"))
    };
    let topic = node("topic/billing.revenue.repartition");
    assert_eq!(topic["kind"], "repartition_topic");
    assert_eq!(topic["key"], serde_json::json!(["orders.customer"]));
    assert_eq!(node("revenue/keyed/1")["parallelism"], 2);
    assert_eq!(
        node("source/orders")["properties"]["kafka.sasl.password"],
        "***",
        "secrets are masked"
    );
    assert_eq!(
        node("source/revenue.repartition")["properties"]["group.id"],
        "billing.revenue"
    );
    // A derived stream: the defining query's sink feeds the stream's source.
    let d: serde_json::Value =
        serde_json::from_str(&validate_graph(&here("derived.sql"), "json", 2)).expect("json");
    let derived: Vec<(&str, &str, &str)> = d["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| e["kind"] == "derived")
        .map(|e| {
            (
                e["id"].as_str().unwrap_or(""),
                e["from"].as_str().unwrap_or(""),
                e["to"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        derived,
        [("big/sink->source/big", "big/sink", "source/big")]
    );
}

#[test]
fn dot_output_is_accepted_by_graphviz() {
    let dot = validate_graph(&here("join.sql"), "dot", 2);
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz 'dot' is installed (.ci/run installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dot.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("dot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    // One SVG node per graph node: 2 sources, 4 workers, 2 keyed partitions, 1 sink.
    assert_eq!(svg.matches("class=\"node\"").count(), 9, "{svg}");
    assert_eq!(svg.matches("class=\"edge\"").count(), 14, "{svg}");
}

/// Runs `file` (its inputs copied into a temp dir) at `parallelism` and returns the
/// channel and node labels its metrics carry, and the graph's.
fn labels_of_a_run(file: &str, inputs: &[&str], parallelism: usize) -> [BTreeSet<String>; 4] {
    let dir = tempfile::tempdir().expect("tempdir");
    for input in inputs {
        std::fs::copy(
            root().join("examples/data").join(input),
            dir.path().join(input),
        )
        .expect("copy input");
    }
    let sql = std::fs::read_to_string(here(file)).expect("read app");
    let app = ferris_plan::plan_application(&sql).unwrap_or_else(|e| panic!("{}", e.render(&sql)));
    let config = JobConfig {
        parallelism,
        ..JobConfig::default()
    };
    let graph = ferris_engine::job_graph(&app, &config).expect("graph");
    let job = ferris_engine::build_job(&app, config, dir.path()).expect("builds");
    let registry = Registry::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(ferris_runtime::run_job(
        job,
        registry.clone(),
        Shutdown::new(),
    ))
    .expect("runs");
    let snapshot = registry.snapshot();
    let label = |name: &str| -> BTreeSet<String> {
        snapshot
            .iter()
            .filter_map(|s| s.label(name).map(str::to_string))
            .collect()
    };
    let channels: BTreeSet<String> = graph
        .edges
        .iter()
        .filter_map(|e| e.channel.clone())
        .collect();
    // The tasks that label metrics with their node: source readers, workers and keyed
    // partitions with operators (a join's inputs reach its keyed stage through workers
    // without any), sinks.
    let nodes: BTreeSet<String> = graph
        .nodes
        .iter()
        .filter(|n| match n.kind {
            NodeKind::Stateless | NodeKind::Keyed => !n.operators.is_empty(),
            NodeKind::Sink | NodeKind::Source => true,
            _ => false,
        })
        .map(|n| n.id.clone())
        .collect();
    [label("channel"), channels, label("node"), nodes]
}

#[test]
fn the_graph_names_every_channel_and_task_the_runtime_measures() {
    for (file, inputs) in [
        ("keyed.sql", &["trades.csv", "symbols.csv"][..]),
        ("join.sql", &["orders.csv", "shipments.csv"][..]),
    ] {
        for parallelism in [1, 3] {
            let [
                measured_channels,
                graph_channels,
                measured_nodes,
                graph_nodes,
            ] = labels_of_a_run(file, inputs, parallelism);
            assert_eq!(measured_channels, graph_channels, "{file} p={parallelism}");
            assert_eq!(measured_nodes, graph_nodes, "{file} p={parallelism}");
        }
    }
}

#[test]
fn every_physical_node_runs_a_logical_node_or_exchange_and_every_logical_node_runs() {
    for (file, parallelism) in [
        (root().join("examples/trading.sql"), 1),
        (here("keyed.sql"), 2),
        (here("join.sql"), 2),
        (here("repartitioned.sql"), 3),
    ] {
        let sql = std::fs::read_to_string(&file).expect("read app");
        let app =
            ferris_plan::plan_application(&sql).unwrap_or_else(|e| panic!("{}", e.render(&sql)));
        let config = JobConfig {
            parallelism,
            ..JobConfig::default()
        };
        let graph = ferris_engine::job_graph(&app, &config).expect("graph");
        let logical_nodes: BTreeSet<&str> =
            graph.logical.nodes.iter().map(|n| n.id.as_str()).collect();
        let logical_edges: BTreeSet<&str> =
            graph.logical.edges.iter().map(|e| e.id.as_str()).collect();
        let mut run = BTreeSet::new();
        for n in &graph.nodes {
            match (&n.logical, n.kind) {
                (None, NodeKind::DeadLetter) => {}
                (Some(l), _) if logical_nodes.contains(l.as_str()) => {
                    run.insert(l.as_str());
                }
                (Some(l), _) => assert!(
                    logical_edges.contains(l.as_str()),
                    "{}: {} runs {l}, which is not in the logical graph",
                    file.display(),
                    n.id
                ),
                (None, _) => panic!("{}: {} runs nothing logical", file.display(), n.id),
            }
        }
        assert_eq!(run, logical_nodes, "{}", file.display());
    }
}

#[test]
fn a_repartitioned_join_names_each_topic_after_its_own_sources_group() {
    // The right input's topic takes the right source's group id, as build_job creates it
    // (the graph used the left source's before); both readers are in the left's group.
    let dir = tempfile::tempdir().expect("tempdir");
    let source = |name: &str, group: &str| {
        format!(
            "CREATE STREAM {name} (id INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092',
                     'topic' = '{name}', 'group.id' = '{group}', 'partitions' = 'group',
                     'format' = 'json');\n"
        )
    };
    let sql = format!(
        "{}{}CREATE STREAM j WITH ('connector' = 'blackhole') AS
           SELECT o.id FROM orders o JOIN shipments s ON o.id = s.id
            AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '1' MINUTE;",
        source("orders", "billing"),
        source("shipments", "logistics")
    );
    let file = dir.path().join("join.sql");
    std::fs::write(&file, sql).expect("write");
    let v: serde_json::Value =
        serde_json::from_str(&validate_graph(&file, "json", 1)).expect("json");
    let nodes = v["nodes"].as_array().expect("nodes");
    let topics: Vec<&str> = nodes
        .iter()
        .filter(|n| n["kind"] == "repartition_topic")
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        topics,
        [
            "topic/billing.j.repartition",
            "topic/logistics.j.repartition.right"
        ]
    );
    let groups: Vec<&str> = nodes
        .iter()
        .filter(|n| {
            n["properties"]["connector"] == "kafka (repartition topic)" && n["kind"] == "source"
        })
        .map(|n| n["properties"]["group.id"].as_str().expect("group"))
        .collect();
    assert_eq!(groups, ["billing.j", "billing.j.right"]);
}
