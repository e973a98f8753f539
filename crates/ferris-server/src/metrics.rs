//! `/metrics`: every job's registry, the job and process gauges, in the OpenMetrics text
//! format through `prometheus-client`.
//!
//! Every series carries `job`; series of a query's tasks carry `query` (empty for a source
//! shared by queries); task series carry `node` and channel series `edge`, the ids of the job
//! graph. Nanosecond counters and histograms are exposed in seconds, as Prometheus names them.

use crate::jobs::{Job, JobState, Jobs};
use crate::sampler::Sampler;
use ferris_engine::JobGraph;
use ferris_observe::{MetricRef, names};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram bounds, in seconds, for durations.
const SECONDS_BOUNDS: &[f64] = &[
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];
/// Histogram bounds, in rows, for batch sizes.
const ROWS_BOUNDS: &[f64] = &[1.0, 8.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

type Labels = Vec<(String, String)>;

enum Sample {
    Counter(f64),
    Gauge(f64),
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One exposed family: its type, help and series.
type Family = (MetricType, String, Vec<(Labels, Sample)>);

/// Metric families collected for one scrape, by exposed name.
#[derive(Default)]
struct Families {
    map: BTreeMap<String, Family>,
}

impl Families {
    fn push(&mut self, name: &str, kind: MetricType, help: &str, labels: Labels, sample: Sample) {
        self.map
            .entry(name.to_string())
            .or_insert_with(|| (kind, help.to_string(), Vec::new()))
            .2
            .push((labels, sample));
    }
}

/// The query a node or edge id belongs to, from the job graph.
fn query_of_node(graph: &JobGraph, node: &str) -> String {
    graph
        .node(node)
        .and_then(|n| n.query.clone())
        .unwrap_or_default()
}

fn query_of_edge(graph: &JobGraph, edge: &str) -> String {
    graph
        .edges
        .iter()
        .find(|e| e.id == edge || e.channel.as_deref() == Some(edge))
        .map(|e| {
            let q = query_of_node(graph, &e.to);
            if q.is_empty() {
                query_of_node(graph, &e.from)
            } else {
                q
            }
        })
        .unwrap_or_default()
}

/// The labels a job's series is exposed with: `job` first, `channel` renamed `edge`, and
/// `query` added from the graph where the runtime did not set it.
fn expose_labels(job: &Job, labels: &[(String, String)]) -> Labels {
    let mut out: Labels = vec![("job".to_string(), job.name.clone())];
    let mut query = None;
    let mut edge = None;
    let mut node = None;
    for (k, v) in labels {
        match k.as_str() {
            "query" => query = Some(v.clone()),
            "channel" => edge = Some(v.clone()),
            "node" => node = Some(v.clone()),
            _ => out.push((k.clone(), v.clone())),
        }
    }
    let query = query.unwrap_or_else(|| match (&node, &edge) {
        (Some(n), _) => query_of_node(&job.graph, n),
        (None, Some(e)) => query_of_edge(&job.graph, e),
        _ => String::new(),
    });
    out.push(("query".to_string(), query));
    if let Some(n) = node {
        out.push(("node".to_string(), n));
    }
    if let Some(e) = edge {
        out.push(("edge".to_string(), e));
    }
    out
}

fn histogram(h: &ferris_observe::Histogram, bounds: &[f64], scale: f64) -> Sample {
    let raw: Vec<u64> = bounds.iter().map(|b| (b * scale) as u64).collect();
    let cumulative = h.cumulative_counts(&raw);
    let count = h.count();
    let mut buckets = Vec::with_capacity(bounds.len() + 1);
    let mut previous = 0;
    for (b, c) in bounds.iter().zip(cumulative) {
        buckets.push((*b, c.saturating_sub(previous)));
        previous = c;
    }
    buckets.push((f64::MAX, count.saturating_sub(previous)));
    Sample::Histogram {
        sum: h.sum() as f64 / scale,
        count,
        buckets,
    }
}

fn job_series(job: &Job, f: &mut Families) {
    for (name, labels, metric) in job.registry.metrics() {
        let l = expose_labels(job, &labels);
        let help = job.registry.help(&name);
        let help = help.as_str();
        match metric {
            MetricRef::Float(m) => {
                let snap = m.snapshot();
                match m.kind() {
                    ferris_observe::FloatKind::Counter => f.push(
                        name.strip_suffix("_total").unwrap_or(&name),
                        MetricType::Counter,
                        help,
                        l,
                        Sample::Counter(snap.value),
                    ),
                    ferris_observe::FloatKind::Gauge => {
                        f.push(&name, MetricType::Gauge, help, l, Sample::Gauge(snap.value))
                    }
                    ferris_observe::FloatKind::Histogram(_) => f.push(
                        &name,
                        MetricType::Histogram,
                        help,
                        l,
                        Sample::Histogram {
                            sum: snap.sum,
                            count: snap.count,
                            buckets: snap.buckets,
                        },
                    ),
                }
            }
            MetricRef::Counter(c) => match name.strip_suffix("_nanoseconds_total") {
                Some(stem) => f.push(
                    &format!("{stem}_seconds"),
                    MetricType::Counter,
                    &help.replace("Nanoseconds", "Seconds"),
                    l,
                    Sample::Counter(c.get() as f64 / 1e9),
                ),
                None => f.push(
                    name.strip_suffix("_total").unwrap_or(&name),
                    MetricType::Counter,
                    help,
                    l,
                    Sample::Counter(c.get() as f64),
                ),
            },
            MetricRef::Gauge(g) => {
                if name == names::OPERATOR_STATE_ROWS {
                    f.push(
                        "ferris_operator_state_high_water_rows",
                        MetricType::Gauge,
                        "Most entries a stateful operator held since the job started.",
                        l.clone(),
                        Sample::Gauge(g.max() as f64),
                    );
                }
                if name == names::CHANNEL_DEPTH_ROWS {
                    f.push(
                        "ferris_channel_depth_high_water_rows",
                        MetricType::Gauge,
                        "Largest number of rows a channel held since the job started.",
                        l.clone(),
                        Sample::Gauge(g.max() as f64),
                    );
                }
                f.push(
                    &name,
                    MetricType::Gauge,
                    help,
                    l,
                    Sample::Gauge(g.get() as f64),
                );
            }
            MetricRef::Histogram(h) => match name.strip_suffix("_nanoseconds") {
                Some(stem) => f.push(
                    &format!("{stem}_seconds"),
                    MetricType::Histogram,
                    &help.replace("Nanoseconds", "Seconds"),
                    l,
                    histogram(&h, SECONDS_BOUNDS, 1e9),
                ),
                None => f.push(
                    &name,
                    MetricType::Histogram,
                    help,
                    l,
                    histogram(&h, ROWS_BOUNDS, 1.0),
                ),
            },
        }
    }
    derived_series(job, f);
}

/// Series computed at scrape time from the job's registry, its state and its rates.
fn derived_series(job: &Job, f: &mut Families) {
    let name = || vec![("job".to_string(), job.name.clone())];
    let state = job.state();
    let mut with_state = name();
    with_state.push(("state".to_string(), state.as_str().to_string()));
    f.push(
        "ferris_job_info",
        MetricType::Gauge,
        "1 for every hosted job, labelled with its state.",
        with_state,
        Sample::Gauge(1.0),
    );
    f.push(
        "ferris_job_up",
        MetricType::Gauge,
        "1 while the job runs, 0 once it stopped, finished or failed.",
        name(),
        Sample::Gauge(f64::from(u8::from(state == JobState::Running))),
    );
    f.push(
        "ferris_job_uptime_seconds",
        MetricType::Gauge,
        "Seconds since this process started the job (until it ended).",
        name(),
        Sample::Gauge(job.uptime_seconds()),
    );
    f.push(
        "ferris_job_restarts",
        MetricType::Counter,
        "Times the server started the job again after an unclean stop (crash, kill).",
        name(),
        Sample::Counter(job.restarts as f64),
    );
    let processors = job
        .graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.kind,
                ferris_engine::NodeKind::Stateless | ferris_engine::NodeKind::Keyed
            )
        })
        .count();
    f.push(
        "ferris_job_active_processors",
        MetricType::Gauge,
        "Processing tasks (stateless workers and keyed partitions) the job runs now.",
        name(),
        Sample::Gauge(if state.is_live() {
            processors as f64
        } else {
            0.0
        }),
    );
    let rates = job.rates();
    for (metric, help, v) in [
        (
            "ferris_job_input_rows_per_second",
            "Rows the job's sources read per second (last second).",
            rates.input,
        ),
        (
            "ferris_job_output_rows_per_second",
            "Rows the job's sinks wrote per second (last second).",
            rates.output,
        ),
        (
            "ferris_job_baseline_input_rows_per_second",
            "The job's own baseline input rate: a five-minute moving average while it had input.",
            rates.baseline,
        ),
        (
            "ferris_job_error_ratio",
            "Fraction of the rows of the last minute that failed (skipped or dead-lettered).",
            rates.error_ratio,
        ),
    ] {
        f.push(metric, MetricType::Gauge, help, name(), Sample::Gauge(v));
    }

    let now_ms = chrono::Utc::now().timestamp_millis();
    let snapshot = job.registry.snapshot();
    let ratios = crate::health::channel_ratios(&snapshot);
    let mut per_query: BTreeMap<String, (u64, u64, BTreeMap<&'static str, u64>)> = BTreeMap::new();
    for s in &snapshot {
        let l = expose_labels(job, &s.labels);
        match (&*s.name, &s.value) {
            (names::CHANNEL_DEPTH_ROWS, _) => {
                if let Some(ratio) = ratios.get(s.label("channel").unwrap_or_default()) {
                    f.push(
                        "ferris_channel_utilization_ratio",
                        MetricType::Gauge,
                        "Rows queued in a channel divided by its capacity (0 to 1).",
                        l,
                        Sample::Gauge(*ratio),
                    );
                }
            }
            (names::SOURCE_WATERMARK_MS, ferris_observe::Value::Gauge { value, .. })
                if *value > 0 =>
            {
                f.push(
                    "ferris_source_processing_lag_seconds",
                    MetricType::Gauge,
                    "Wall clock minus the source's watermark, in seconds.",
                    l,
                    Sample::Gauge((now_ms - value) as f64 / 1000.0),
                );
            }
            (name, ferris_observe::Value::Counter(v)) => {
                let q = s.label("query").unwrap_or_default().to_string();
                let entry = || (0u64, 0u64, BTreeMap::new());
                match name {
                    names::QUERY_ROWS_IN => per_query.entry(q).or_insert_with(entry).0 += v,
                    names::QUERY_ROWS_SKIPPED | names::QUERY_ROWS_DEAD_LETTERED => {
                        let e = per_query.entry(q).or_insert_with(entry);
                        e.1 += v;
                        let kind = match s.label("stage") {
                            Some("decode") => "decode",
                            Some("sink") => "sink_write",
                            _ => "evaluate",
                        };
                        *e.2.entry(kind).or_default() += v;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for (query, (processed, failed, by_type)) in per_query {
        if query.starts_with("table:") {
            continue;
        }
        let l = vec![
            ("job".to_string(), job.name.clone()),
            ("query".to_string(), query.clone()),
        ];
        f.push(
            "ferris_records_processed",
            MetricType::Counter,
            "Rows a query received (decoded rows plus rows its source rejected).",
            l.clone(),
            Sample::Counter(processed as f64),
        );
        f.push(
            "ferris_records_failed",
            MetricType::Counter,
            "Rows a query could not process (skipped or dead-lettered).",
            l.clone(),
            Sample::Counter(failed as f64),
        );
        for kind in ["decode", "evaluate", "sink_write"] {
            let mut l = l.clone();
            l.push(("error_type".to_string(), kind.to_string()));
            f.push(
                "ferris_errors",
                MetricType::Counter,
                "Rows that failed, by the kind of error: decode, evaluate, sink_write.",
                l,
                Sample::Counter(by_type.get(kind).copied().unwrap_or(0) as f64),
            );
        }
    }
}

fn process_series(
    p: crate::sampler::ProcessStats,
    jobs: &[Arc<Job>],
    exporter: Option<&ferris_observe::trace::OtlpExporter>,
    f: &mut Families,
) {
    f.push(
        "process_cpu_seconds",
        MetricType::Counter,
        "Total user and system CPU time spent in seconds.",
        vec![],
        Sample::Counter(p.cpu_seconds),
    );
    f.push(
        "process_resident_memory_bytes",
        MetricType::Gauge,
        "Resident memory size in bytes.",
        vec![],
        Sample::Gauge(p.resident_bytes as f64),
    );
    f.push(
        "process_start_time_seconds",
        MetricType::Gauge,
        "Start time of the process since unix epoch in seconds.",
        vec![],
        Sample::Gauge(p.start_time_seconds),
    );
    f.push(
        "ferris_process_cpu_percent",
        MetricType::Gauge,
        "CPU use of the process over the last second, in percent of one core.",
        vec![],
        Sample::Gauge(p.cpu_percent),
    );
    f.push(
        "ferris_process_memory_growth_percent_per_hour",
        MetricType::Gauge,
        "Growth of resident memory over the last hour, in percent per hour.",
        vec![],
        Sample::Gauge(p.memory_growth_percent_per_hour),
    );
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    if let Some(e) = exporter {
        for (name, help, v) in [
            (
                "ferris_trace_spans_exported",
                "Spans the OTLP collector accepted.",
                e.exported.load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "ferris_trace_spans_dropped",
                "Spans dropped because the export queue was full.",
                e.dropped(),
            ),
            (
                "ferris_trace_export_failures",
                "OTLP export requests that failed.",
                e.failures.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ] {
            f.push(
                name,
                MetricType::Counter,
                help,
                vec![],
                Sample::Counter(v as f64),
            );
        }
    }
    for s in [
        JobState::Starting,
        JobState::Running,
        JobState::Stopping,
        JobState::Stopped,
        JobState::Finished,
        JobState::Failed,
    ] {
        by_state.insert(s.as_str(), 0);
    }
    for j in jobs {
        *by_state.entry(j.state().as_str()).or_default() += 1;
    }
    for (state, n) in by_state {
        f.push(
            "ferris_server_jobs",
            MetricType::Gauge,
            "Jobs hosted by the server, by state.",
            vec![("state".to_string(), state.to_string())],
            Sample::Gauge(n as f64),
        );
    }
}

/// The `prometheus-client` collector over every hosted job.
#[derive(Debug)]
pub struct JobsCollector {
    /// The jobs.
    pub jobs: Arc<Jobs>,
    /// The sampler (rates, process figures).
    pub sampler: Arc<Sampler>,
}

impl prometheus_client::collector::Collector for JobsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut f = Families::default();
        let jobs = self.jobs.list();
        for job in &jobs {
            job_series(job, &mut f);
        }
        process_series(
            self.sampler.process(),
            &jobs,
            self.jobs.exporter.as_deref(),
            &mut f,
        );
        for (name, (kind, help, samples)) in f.map {
            let mut family = encoder.encode_descriptor(&name, &help, None, kind)?;
            for (labels, sample) in samples {
                let metric = family.encode_family(&labels)?;
                match sample {
                    Sample::Counter(v) => ConstCounter::new(v).encode(metric)?,
                    Sample::Gauge(v) => ConstGauge::new(v).encode(metric)?,
                    Sample::Histogram {
                        sum,
                        count,
                        buckets,
                    } => {
                        let mut metric = metric;
                        metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            sum, count, &buckets, None,
                        )?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Renders the exposition of every hosted job.
pub fn render(collector: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, collector);
    out
}
