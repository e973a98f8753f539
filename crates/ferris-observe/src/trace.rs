//! Per-batch traces: spans for source read, decode, each operator and sink write, sampled and
//! exported over OTLP/HTTP (JSON encoding) to a collector.
//!
//! A batch carries its trace context (trace id, the id of the span that produced it, the
//! sampled flag); each hop records a [`SpanRecord`] whose parent is that span and hands its
//! own span id on. Sampling is decided once per batch at its source: parent-based when the
//! input carried a W3C `traceparent` (the upstream decision is kept), otherwise by trace id
//! ratio (`tracing.sample.ratio`). Unsampled batches cost one flag test per hop.
//!
//! The exporter queues spans in a bounded channel (a full queue drops spans, counted in
//! [`Tracer::dropped`]) and a background thread posts them in batches of up to 512, at least
//! once a second, to `ENDPOINT/v1/traces`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An attribute value of a span.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// 128-bit trace id.
    pub trace_id: u128,
    /// 64-bit span id.
    pub span_id: u64,
    /// The parent span, when there is one.
    pub parent_span_id: Option<u64>,
    /// The span's name (`source trades`, `decode`, `operator filter`, `sink big`).
    pub name: String,
    /// OTLP span kind: 1 internal, 4 producer, 5 consumer.
    pub kind: u8,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes.
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// Nanoseconds since the Unix epoch now.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A new random, non-zero span id.
pub fn new_span_id() -> u64 {
    rand::random::<u64>() | 1
}

/// Receives finished spans.
pub trait SpanExport: Send + Sync + std::fmt::Debug {
    /// Takes one span; must not block.
    fn export(&self, span: SpanRecord);
}

/// The share of new traces sampled unless a job says otherwise.
pub const DEFAULT_RATIO: f64 = 0.01;

/// The sampling decision and the exporter, shared by every task of a job. The default
/// traces nothing (no exporter) and would sample [`DEFAULT_RATIO`] once given one.
#[derive(Debug, Clone)]
pub struct Tracer {
    /// Fraction of new traces sampled (0 to 1).
    ratio: f64,
    exporter: Option<Arc<dyn SpanExport>>,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer {
            ratio: DEFAULT_RATIO,
            exporter: None,
        }
    }
}

impl PartialEq for Tracer {
    fn eq(&self, other: &Self) -> bool {
        self.ratio == other.ratio && self.exporter.is_some() == other.exporter.is_some()
    }
}

impl Eq for Tracer {}

impl Tracer {
    /// Samples `ratio` of new traces (clamped to 0..=1) into `exporter`.
    pub fn new(ratio: f64, exporter: Option<Arc<dyn SpanExport>>) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Tracer { ratio, exporter }
    }

    /// The same exporter with another ratio.
    pub fn with_ratio(&self, ratio: f64) -> Self {
        Tracer::new(ratio, self.exporter.clone())
    }

    /// The same ratio with spans going to `exporter`.
    pub fn with_exporter(&self, exporter: Arc<dyn SpanExport>) -> Self {
        Tracer::new(self.ratio, Some(exporter))
    }

    /// The sampling ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Whether spans go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.exporter.is_some()
    }

    /// Whether a new trace with this id is sampled: its low 64 bits below `ratio × 2⁶⁴`
    /// (the trace-id-ratio rule, so every process decides alike for one trace).
    pub fn sample_new(&self, trace_id: u128) -> bool {
        if self.exporter.is_none() || self.ratio <= 0.0 {
            return false;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        let low = trace_id as u64;
        (low as f64) < self.ratio * (u64::MAX as f64)
    }

    /// Whether a trace continued from upstream is recorded: the upstream decision, when
    /// spans go anywhere.
    pub fn sample_continued(&self, upstream_sampled: bool) -> bool {
        self.exporter.is_some() && upstream_sampled
    }

    /// Hands `span` to the exporter.
    pub fn record(&self, span: SpanRecord) {
        if let Some(e) = &self.exporter {
            e.export(span);
        }
    }
}

/// Exports spans over OTLP/HTTP with the JSON encoding from a background thread.
#[derive(Debug)]
pub struct OtlpExporter {
    tx: SyncSender<Queued>,
    dropped: AtomicU64,
    /// Spans the collector accepted.
    pub exported: Arc<AtomicU64>,
    /// Export requests that failed.
    pub failures: Arc<AtomicU64>,
    /// Spans queued or being posted.
    pending: Arc<AtomicU64>,
}

/// What the exporter thread receives.
#[derive(Debug)]
enum Queued {
    Span(SpanRecord),
    /// Post what is queued now.
    Flush,
}

/// Spans queued before new ones are dropped.
pub const QUEUE_SPANS: usize = 16_384;
const BATCH_SPANS: usize = 512;

impl OtlpExporter {
    /// Starts the exporter thread posting to `endpoint` (e.g. `http://127.0.0.1:4318`; the
    /// path `/v1/traces` is added) as service `service`.
    pub fn start(endpoint: &str, service: &str) -> std::io::Result<Arc<OtlpExporter>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_SPANS);
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exported = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(AtomicU64::new(0));
        let (e, f, p, service) = (
            exported.clone(),
            failures.clone(),
            pending.clone(),
            service.to_string(),
        );
        std::thread::Builder::new()
            .name("ferris-otlp".into())
            .spawn(move || run_exporter(rx, &url, &service, &e, &f, &p))?;
        Ok(Arc::new(OtlpExporter {
            tx,
            dropped: AtomicU64::new(0),
            exported,
            failures,
            pending,
        }))
    }

    /// Waits until every queued span was posted (or `timeout` passed); a job that ends
    /// calls this so that its last spans are not lost.
    pub fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        if self.pending.load(Ordering::SeqCst) == 0 {
            return;
        }
        let _ = self.tx.send(Queued::Flush);
        while self.pending.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl SpanExport for OtlpExporter {
    fn export(&self, span: SpanRecord) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(Queued::Span(span)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn run_exporter(
    rx: Receiver<Queued>,
    url: &str,
    service: &str,
    exported: &AtomicU64,
    failures: &AtomicU64,
    pending: &AtomicU64,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut open = true;
        while batch.len() < BATCH_SPANS {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Queued::Span(s)) => batch.push(s),
                Ok(Queued::Flush) => break,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let body = otlp_json(service, &batch).to_string();
            let result = agent
                .post(url)
                .header("content-type", "application/json")
                .send(body);
            match result {
                Ok(r) if r.status().is_success() => {
                    exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                other => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        last_warning = Some(std::time::Instant::now());
                        let why = match other {
                            Ok(r) => format!("HTTP {}", r.status()),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(url, spans = batch.len(), "trace export failed: {why}");
                    }
                }
            }
            pending.fetch_sub(batch.len() as u64, Ordering::SeqCst);
            batch.clear();
        }
        if !open {
            return;
        }
    }
}

/// The OTLP JSON body (`ExportTraceServiceRequest`) of `spans`.
pub fn otlp_json(service: &str, spans: &[SpanRecord]) -> serde_json::Value {
    use serde_json::json;
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            let attributes: Vec<serde_json::Value> = s
                .attributes
                .iter()
                .map(|(k, v)| match v {
                    AttrValue::Str(t) => json!({"key": k, "value": {"stringValue": t}}),
                    AttrValue::Int(i) => json!({"key": k, "value": {"intValue": i.to_string()}}),
                })
                .collect();
            let mut span = json!({
                "traceId": format!("{:032x}", s.trace_id),
                "spanId": format!("{:016x}", s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_unix_nanos.to_string(),
                "endTimeUnixNano": s.end_unix_nanos.max(s.start_unix_nanos).to_string(),
                "attributes": attributes,
            });
            if let Some(p) = s.parent_span_id {
                span["parentSpanId"] = json!(format!("{p:016x}"));
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "ferris-streams"}, "spans": spans}],
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_sampling_uses_the_low_bits_of_the_trace_id() {
        #[derive(Debug)]
        struct Nowhere;
        impl SpanExport for Nowhere {
            fn export(&self, _: SpanRecord) {}
        }
        let t = Tracer::new(0.25, Some(Arc::new(Nowhere)));
        assert!(t.sample_new(1));
        assert!(t.sample_new((u64::MAX / 5) as u128));
        assert!(!t.sample_new((u64::MAX / 3) as u128));
        assert!(!Tracer::default().sample_new(1), "no exporter, no sampling");
        assert!(!Tracer::new(0.0, Some(Arc::new(Nowhere))).sample_new(1));
        assert!(t.sample_continued(true) && !t.sample_continued(false));
    }

    #[test]
    fn otlp_json_names_parents_and_encodes_ids_as_hex() {
        let s = SpanRecord {
            trace_id: 0xabc,
            span_id: 0x12,
            parent_span_id: Some(0x34),
            name: "operator filter".into(),
            kind: 1,
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            attributes: vec![("ferris.rows", AttrValue::Int(3))],
        };
        let v = otlp_json("svc", &[s]);
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "00000000000000000000000000000abc");
        assert_eq!(span["spanId"], "0000000000000012");
        assert_eq!(span["parentSpanId"], "0000000000000034");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "3");
    }
}
