//! OpenLineage run events of a job (spec 2-0-2): one job per application, whose inputs are
//! the datasets its sources read and whose outputs are the datasets its queries write, each
//! with its schema, and each output with the column lineage of the queries writing it (the
//! dataset columns at the end of the chain, through derived streams, subqueries and shares).
//!
//! Datasets are named as the OpenLineage naming conventions say: a Kafka topic in namespace
//! `kafka://HOST:PORT` (the first bootstrap server), a file in namespace `file` by its
//! absolute path; other connectors in namespace `ferrisstreams`.

use ferris_plan::Application;
use ferris_plan::lineage::{LineageNode, graph};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The producer URI every event and facet carries.
pub const PRODUCER: &str = "https://github.com/ferrisstreams/ferrisstreams";
/// The schema of a run event.
pub const RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const COLUMN_LINEAGE_FACET: &str = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const SQL_FACET: &str =
    "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";
const ENGINE_FACET: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const ERROR_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";

/// Aggregate functions, for the kind of a column's transformation.
const AGGREGATES: &[&str] = &[
    "count(",
    "sum(",
    "avg(",
    "min(",
    "max(",
    "stddev",
    "var",
    "median(",
    "approx_",
    "first_value(",
    "last_value(",
    "array_agg(",
    "string_agg(",
    "bool_",
    "bit_",
];

/// A run's state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The job starts.
    Start,
    /// The job runs (sent at an interval).
    Running,
    /// The job ended at the end of its input or when stopped.
    Complete,
    /// The job failed.
    Fail,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Running => "RUNNING",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
        }
    }
}

/// What every event of one run says about the job and its datasets.
#[derive(Debug, Clone)]
pub struct RunDescription {
    namespace: String,
    name: String,
    run_id: String,
    sql: String,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
}

fn facet(schema: &str, body: Value) -> Value {
    let mut v = json!({"_producer": PRODUCER, "_schemaURL": schema});
    if let (Some(o), Value::Object(b)) = (v.as_object_mut(), body) {
        o.extend(b);
    }
    v
}

/// The (namespace, name) of lineage dataset `d` (`kafka:TOPIC`, `file:PATH`, …).
fn dataset_id(d: &str, app: &Application, base_dir: &Path) -> (String, String) {
    if let Some(topic) = d.strip_prefix("kafka:") {
        let server = app
            .sources
            .iter()
            .map(|s| &s.connector)
            .chain(app.queries.iter().map(|q| &q.sink))
            .filter(|p| p.get("topic").is_some_and(|t| t == topic))
            .find_map(|p| p.get("bootstrap.servers").or_else(|| p.get("brokers")))
            .and_then(|s| s.split(',').next())
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "localhost:9092".to_string());
        return (format!("kafka://{server}"), topic.to_string());
    }
    if let Some(path) = d.strip_prefix("file:") {
        let p = base_dir.join(path);
        let abs = std::path::absolute(&p).unwrap_or(p);
        return ("file".to_string(), abs.display().to_string());
    }
    ("ferrisstreams".to_string(), d.to_string())
}

fn schema_facet(fields: &arrow::datatypes::Fields) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .filter(|f| !f.name().starts_with("__"))
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    facet(SCHEMA_FACET, json!({"fields": fields}))
}

/// How an output column is computed from its inputs: `IDENTITY`, `TRANSFORMATION` or
/// `AGGREGATION` (an aggregate on the way).
fn subtype(through: &[String]) -> &'static str {
    let lower: Vec<String> = through.iter().map(|t| t.to_ascii_lowercase()).collect();
    // A window's bounds are computed from the event time.
    let window = lower
        .iter()
        .any(|t| t.contains("_window_start") || t.contains("_window_end"));
    if lower.iter().any(|t| {
        AGGREGATES
            .iter()
            .any(|a| t.starts_with(a) || t.contains(&format!(" {a}")))
    }) {
        "AGGREGATION"
    } else if !window
        && lower.iter().all(|t| {
            t.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
    {
        "IDENTITY"
    } else {
        "TRANSFORMATION"
    }
}

impl RunDescription {
    /// The job `name` in `namespace` running `app` (relative file paths resolve against
    /// `base_dir`), as run `run_id` (a UUID).
    pub fn new(
        app: &Application,
        namespace: &str,
        name: &str,
        run_id: &str,
        base_dir: &Path,
    ) -> Self {
        let g = graph(&[("app".to_string(), app)]);
        let id = |d: &str| dataset_id(d, app, base_dir);
        let skip = |d: &str| d == "stdout" || d.starts_with("blackhole");
        // Inputs: the datasets the sources read.
        let mut inputs = Vec::new();
        let mut seen = BTreeSet::new();
        for (x, y) in &g.edges {
            if let (LineageNode::Dataset(d), LineageNode::Source(_, s)) = (x, y)
                && !skip(d)
                && seen.insert(d.clone())
                && let Some(decl) = app.sources.iter().find(|v| v.name == *s)
            {
                let (namespace, name) = id(d);
                inputs.push(json!({
                    "namespace": namespace, "name": name,
                    "facets": {"schema": schema_facet(decl.schema.fields())},
                }));
            }
        }
        // Outputs: the datasets the queries write, with the lineage of their columns.
        let mut writers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (x, y) in &g.edges {
            if let (LineageNode::Query(_, q), LineageNode::Dataset(d)) = (x, y)
                && !skip(d)
            {
                writers.entry(d.clone()).or_default().push(q.as_str());
            }
        }
        let mut outputs = Vec::new();
        for (d, queries) in &writers {
            let Some(first) = app.queries.iter().find(|q| q.name == queries[0]) else {
                continue;
            };
            let mut fields = serde_json::Map::new();
            for f in first.plan.output_schema.fields() {
                let mut input_fields = Vec::new();
                let mut through = Vec::new();
                for q in queries {
                    let key = ("app".to_string(), q.to_string(), f.name().clone());
                    if let Some(o) = g.columns.get(&key) {
                        for (src, col) in &o.datasets {
                            let (namespace, name) = id(src);
                            input_fields.push((namespace, name, col.clone()));
                        }
                        through.extend(
                            o.through
                                .iter()
                                .map(|t| t.trim_start_matches("app/").to_string()),
                        );
                    }
                }
                if input_fields.is_empty() {
                    continue;
                }
                input_fields.sort();
                input_fields.dedup();
                let description = through.join(" <- ");
                let kind = subtype(
                    &through
                        .iter()
                        .map(|t| {
                            t.split_once(": ")
                                .map_or(t.as_str(), |(_, e)| e)
                                .to_string()
                        })
                        .collect::<Vec<_>>(),
                );
                let inputs: Vec<Value> = input_fields
                    .into_iter()
                    .map(|(namespace, name, field)| {
                        json!({
                            "namespace": namespace, "name": name, "field": field,
                            "transformations": [{
                                "type": "DIRECT", "subtype": kind, "description": description,
                            }],
                        })
                    })
                    .collect();
                fields.insert(
                    f.name().clone(),
                    json!({"inputFields": inputs, "transformationDescription": description}),
                );
            }
            let (namespace, name) = id(d);
            outputs.push(json!({
                "namespace": namespace, "name": name,
                "facets": {
                    "schema": schema_facet(first.plan.output_schema.fields()),
                    "columnLineage": facet(COLUMN_LINEAGE_FACET, json!({"fields": fields})),
                },
            }));
        }
        RunDescription {
            namespace: namespace.to_string(),
            name: name.to_string(),
            run_id: run_id.to_string(),
            sql: app.sql.clone(),
            inputs,
            outputs,
        }
    }

    /// The event of type `kind` at `time` (ISO 8601 with zone), with the error of a failed
    /// run.
    pub fn event(&self, kind: EventType, time: &str, error: Option<&str>) -> Value {
        let mut run_facets = json!({
            "processing_engine": facet(ENGINE_FACET, json!({
                "version": env!("CARGO_PKG_VERSION"), "name": "FerrisStreams",
                "openlineageAdapterVersion": env!("CARGO_PKG_VERSION"),
            })),
        });
        if let (Some(e), Some(o)) = (error, run_facets.as_object_mut()) {
            o.insert(
                "errorMessage".to_string(),
                facet(
                    ERROR_FACET,
                    json!({"message": e, "programmingLanguage": "Rust"}),
                ),
            );
        }
        json!({
            "eventType": kind.as_str(),
            "eventTime": time,
            "run": {"runId": self.run_id, "facets": run_facets},
            "job": {
                "namespace": self.namespace, "name": self.name,
                "facets": {
                    "jobType": facet(JOB_TYPE_FACET, json!({
                        "processingType": "STREAMING", "integration": "FERRISSTREAMS",
                        "jobType": "JOB",
                    })),
                    "sql": facet(SQL_FACET, json!({"query": self.sql, "dialect": "ferrisstreams"})),
                },
            },
            "inputs": self.inputs,
            "outputs": self.outputs,
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT_SCHEMA,
        })
    }
}
