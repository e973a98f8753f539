//! Structured logs: one JSON object per line with fixed keys, and a per-job buffer of recent
//! lines that the server serves at `/api/v1/jobs/{name}/logs`.
//!
//! The keys of every line: `timestamp` (RFC 3339, UTC, milliseconds), `level`, `message`,
//! `component` (the Rust module that logged), `job`, `query`, `operator` (the graph node id
//! of the task), `trace_id`, `span_id`, `correlation_id` (each `null` when not known), then
//! `metrics` (numeric fields of the event) and `context` (its other fields). `job`, `query`
//! and `operator` come from the event or from the spans it happened in: the server runs each
//! job in a `job` span and the runtime runs each task in a `task` span with `query` and
//! `node`.

use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Fields the line takes from spans and events instead of listing them under `context`.
const KEYED: &[&str] = &[
    "job",
    "query",
    "node",
    "operator",
    "correlation_id",
    "trace_id",
    "span_id",
];

#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(String, Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Value::String(s));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                v => v.to_string(),
            });
        } else {
            self.values.push((field.name().to_string(), value));
        }
    }
}

/// The fields a span was created with, kept in its extensions.
struct SpanFields(Vec<(String, Value)>);

/// Builds the JSON object of one event.
fn line<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Map<String, Value>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut keyed: HashMap<&str, Value> = HashMap::new();
    // Spans from the root outwards, so that inner spans win; the event wins over all.
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope.from_root() {
            if let Some(SpanFields(values)) = span.extensions().get::<SpanFields>() {
                for (k, v) in values {
                    if let Some(key) = KEYED.iter().find(|x| **x == k) {
                        keyed.insert(key, v.clone());
                    }
                }
            }
        }
    }
    let mut metrics = Map::new();
    let mut context = Map::new();
    for (k, v) in fields.values {
        if let Some(key) = KEYED.iter().find(|x| **x == k) {
            keyed.insert(key, v);
        } else if v.is_number() {
            metrics.insert(k, v);
        } else {
            context.insert(k, v);
        }
    }
    if let Some(v) = keyed.remove("node") {
        keyed.entry("operator").or_insert(v);
    }
    let meta = event.metadata();
    let mut out = Map::new();
    out.insert(
        "timestamp".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    out.insert("level".into(), Value::String(meta.level().to_string()));
    out.insert(
        "message".into(),
        Value::String(fields.message.unwrap_or_default()),
    );
    out.insert(
        "component".into(),
        Value::String(meta.module_path().unwrap_or(meta.target()).to_string()),
    );
    for key in [
        "job",
        "query",
        "operator",
        "trace_id",
        "span_id",
        "correlation_id",
    ] {
        let v = keyed.remove(key).unwrap_or(Value::Null);
        // An empty query (a task shared by queries, such as a source) is no query.
        let v = match v {
            Value::String(s) if s.is_empty() => Value::Null,
            v => v,
        };
        out.insert(key.into(), v);
    }
    out.insert("metrics".into(), Value::Object(metrics));
    out.insert("context".into(), Value::Object(context));
    out
}

fn record_span_fields<S>(
    attrs: &tracing::span::Attributes<'_>,
    id: &tracing::span::Id,
    ctx: &Context<'_, S>,
) where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else {
        return;
    };
    let mut ext = span.extensions_mut();
    if ext.get_mut::<SpanFields>().is_some() {
        return;
    }
    let mut fields = Fields::default();
    attrs.record(&mut fields);
    ext.insert(SpanFields(fields.values));
}

/// Writes every event as one JSON line to a writer (stderr by default).
pub struct JsonLayer {
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl JsonLayer {
    /// A layer writing to `out`.
    pub fn new(out: Box<dyn std::io::Write + Send>) -> Self {
        JsonLayer {
            out: Mutex::new(out),
        }
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        record_span_fields(attrs, id, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut text = Value::Object(line(event, &ctx)).to_string();
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(text.as_bytes());
    }
}

/// Lines kept per job.
pub const JOB_LOG_LINES: usize = 1000;

/// The most recent log lines of each job (those logged inside its `job` span), as JSON
/// objects. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct JobLogs {
    inner: Arc<Mutex<HashMap<String, VecDeque<Value>>>>,
}

impl JobLogs {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last `limit` lines of job `job`, oldest first.
    pub fn tail(&self, job: &str, limit: usize) -> Vec<Value> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .get(job)
            .map(|q| {
                q.iter()
                    .skip(q.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets the lines of job `job` (it was deployed again).
    pub fn clear(&self, job: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(job);
    }

    fn push(&self, job: String, line: Value) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let q = inner.entry(job).or_default();
        if q.len() == JOB_LOG_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The layer that fills this buffer.
    pub fn layer(&self) -> JobLogLayer {
        JobLogLayer { logs: self.clone() }
    }
}

/// Captures each event logged inside a span with a `job` field into [`JobLogs`].
pub struct JobLogLayer {
    logs: JobLogs,
}

impl<S> Layer<S> for JobLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        record_span_fields(attrs, id, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let map = line(event, &ctx);
        if let Some(Value::String(job)) = map.get("job") {
            let job = job.clone();
            self.logs.push(job, Value::Object(map));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_job_query_operator_and_split_metrics_from_context() {
        let buf = Buf::default();
        let logs = JobLogs::new();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLayer::new(Box::new(buf.clone())))
            .with(logs.layer());
        tracing::subscriber::with_default(subscriber, || {
            let job = tracing::error_span!("job", job = "j1");
            let _j = job.enter();
            let task = tracing::error_span!("task", query = "q", node = "q/worker/0");
            let _t = task.enter();
            tracing::warn!(rows = 3u64, path = "a.csv", correlation_id = "c-1", "slow");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        let mut v = v.as_object().unwrap().clone();
        assert!(
            v.remove("timestamp")
                .unwrap()
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(
            Value::Object(v),
            serde_json::json!({
                "level": "WARN", "message": "slow",
                "component": "ferris_observe::logging::tests",
                "job": "j1", "query": "q", "operator": "q/worker/0",
                "trace_id": null, "span_id": null, "correlation_id": "c-1",
                "metrics": {"rows": 3}, "context": {"path": "a.csv"}
            })
        );
        let kept = logs.tail("j1", 10);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["message"], "slow");
        assert!(logs.tail("other", 10).is_empty());
    }
}
