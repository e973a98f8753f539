//! Once a second, turns each job's counters into rates (input, output, errors), keeps each
//! job's baseline rate, notices stalled watermarks and failing sinks, and samples the
//! process's CPU time and resident memory. Health and `/metrics` read what it measured.

use crate::jobs::{Job, JobState, Jobs, Rates};
use ferris_observe::names;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long the baseline remembers: a moving average with this time constant.
const BASELINE_SECONDS: f64 = 300.0;
/// The window of the error ratio.
const ERROR_WINDOW: Duration = Duration::from_secs(60);

/// CPU and memory of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// CPU time used, in seconds (user + system).
    pub cpu_seconds: f64,
    /// CPU use over the last interval, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory in bytes.
    pub resident_bytes: u64,
    /// Resident memory growth over the last hour (or since start), percent per hour.
    pub memory_growth_percent_per_hour: f64,
    /// Process start, seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Reads user + system CPU seconds and resident bytes from `/proc/self` (Linux).
pub fn read_process() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = 100.0; // USER_HZ on Linux
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(((utime + stime) / ticks, pages * 4096))
}

#[derive(Debug, Default)]
struct JobMemory {
    last: Option<(Instant, u64, u64, u64)>,
    /// (time, processed, failed) samples of the last minute.
    window: VecDeque<(Instant, u64, u64)>,
    baseline: f64,
    /// Per source node: (watermark, when it last moved, rows read then).
    watermarks: HashMap<String, (i64, Instant, u64)>,
    sink_failures: HashMap<String, u64>,
    unavailable: u64,
    /// The health verdict last logged.
    verdict: Option<crate::health::Verdict>,
}

/// The sampler's memory between ticks.
#[derive(Debug, Default)]
pub struct Sampler {
    jobs: Mutex<HashMap<String, JobMemory>>,
    process: Mutex<ProcessMemory>,
}

#[derive(Debug, Default)]
struct ProcessMemory {
    stats: ProcessStats,
    last_cpu: Option<(Instant, f64)>,
    /// Resident memory samples of the last hour, one a minute.
    memory: VecDeque<(Instant, u64)>,
}

fn sum(job: &Job, name: &str) -> u64 {
    job.registry.counter_sum(name, &[])
}

impl Sampler {
    /// The latest process figures.
    pub fn process(&self) -> ProcessStats {
        self.process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats
    }

    /// Runs until the process ends, ticking every `interval`.
    pub async fn run(self: Arc<Self>, jobs: Arc<Jobs>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            self.tick(&jobs, Instant::now());
        }
    }

    /// One measurement of every job and of the process.
    pub fn tick(&self, jobs: &Jobs, now: Instant) {
        self.tick_process(now);
        let mut memory = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let list = jobs.list();
        memory.retain(|name, _| list.iter().any(|j| &j.name == name));
        let process = self.process();
        for job in list {
            let m = memory.entry(job.name.clone()).or_default();
            job.set_rates(measure(&job, m, now));
            if job.state().is_live() {
                let mut history = job.history();
                if history.due(now) {
                    history.record(now, job.registry.snapshot());
                }
            }
            log_health_change(&job, m, &process);
        }
    }

    fn tick_process(&self, now: Instant) {
        let Some((cpu, rss)) = read_process() else {
            return;
        };
        let mut p = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((t, c)) = p.last_cpu {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                p.stats.cpu_percent = 100.0 * (cpu - c) / dt;
            }
        }
        p.last_cpu = Some((now, cpu));
        p.stats.cpu_seconds = cpu;
        p.stats.resident_bytes = rss;
        if p.stats.start_time_seconds == 0.0 {
            p.stats.start_time_seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
        }
        if p.memory
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            p.memory.push_back((now, rss));
        }
        while p
            .memory
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3600))
        {
            p.memory.pop_front();
        }
        if let Some(&(t0, m0)) = p.memory.front() {
            let hours = now.duration_since(t0).as_secs_f64() / 3600.0;
            // Growth is judged over at least ten minutes of samples.
            p.stats.memory_growth_percent_per_hour = if hours >= 1.0 / 6.0 && m0 > 0 {
                100.0 * (rss as f64 - m0 as f64) / m0 as f64 / hours
            } else {
                0.0
            };
        }
    }
}

/// Logs a job's health when its verdict changes: WARN when it worsens (with the checks at
/// fault), INFO when it recovers.
fn log_health_change(job: &Job, m: &mut JobMemory, process: &ProcessStats) {
    use crate::health::Verdict;
    let health = crate::health::job_health(job, process);
    if m.verdict == Some(health.status) {
        return;
    }
    let first = m.verdict.is_none();
    m.verdict = Some(health.status);
    let faults: Vec<String> = health
        .checks
        .iter()
        .filter(|c| c.status != Verdict::Healthy)
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect();
    match health.status {
        Verdict::Healthy if !first => {
            tracing::info!(job = %job.name, "job healthy again")
        }
        Verdict::Healthy => {}
        v => tracing::warn!(job = %job.name, status = v.as_str(), "job {}: {}", v.as_str(),
            faults.join("; ")),
    }
}

fn measure(job: &Job, m: &mut JobMemory, now: Instant) -> Rates {
    let read = sum(job, names::SOURCE_ROWS_READ);
    let written = sum(job, names::SINK_ROWS_WRITTEN);
    let processed = sum(job, names::QUERY_ROWS_IN);
    let failed = sum(job, names::QUERY_ROWS_SKIPPED) + sum(job, names::QUERY_ROWS_DEAD_LETTERED);
    let mut rates = Rates::default();
    if let Some((t, r0, w0, _)) = m.last {
        let dt = now.duration_since(t).as_secs_f64();
        if dt > 0.0 {
            rates.input = read.saturating_sub(r0) as f64 / dt;
            rates.output = written.saturating_sub(w0) as f64 / dt;
            if job.state() == JobState::Running && rates.input > 0.0 {
                let alpha = (dt / BASELINE_SECONDS).min(1.0);
                m.baseline = if m.baseline == 0.0 {
                    rates.input
                } else {
                    m.baseline + alpha * (rates.input - m.baseline)
                };
            }
        }
    }
    rates.baseline = m.baseline;
    m.last = Some((now, read, written, processed));

    m.window.push_back((now, processed, failed));
    while m
        .window
        .front()
        .is_some_and(|(t, _, _)| now.duration_since(*t) > ERROR_WINDOW)
    {
        m.window.pop_front();
    }
    if let Some(&(_, p0, f0)) = m.window.front() {
        let dp = processed.saturating_sub(p0);
        if dp > 0 {
            rates.error_ratio = failed.saturating_sub(f0) as f64 / dp as f64;
        }
    }

    // Watermarks that do not move while their source keeps reading rows.
    let snapshot = job.registry.snapshot();
    let mut read_by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut watermarks: BTreeMap<String, i64> = BTreeMap::new();
    for s in &snapshot {
        let Some(node) = s.label("node").map(str::to_string) else {
            continue;
        };
        match (&*s.name, &s.value) {
            (names::SOURCE_ROWS_READ, ferris_observe::Value::Counter(v)) => {
                read_by_source.insert(node, *v);
            }
            (names::SOURCE_WATERMARK_MS, ferris_observe::Value::Gauge { value, .. }) => {
                watermarks.insert(node, *value);
            }
            _ => {}
        }
    }
    for (node, wm) in watermarks {
        let read = read_by_source.get(&node).copied().unwrap_or(0);
        let entry = m.watermarks.entry(node.clone()).or_insert((wm, now, read));
        if wm != entry.0 || read == entry.2 {
            // It moved, or no rows arrived (an idle source is not a stalled one).
            *entry = (wm, now, read);
        }
        let stalled = now.duration_since(entry.1).as_secs_f64();
        if stalled > rates.watermark_stalled {
            rates.watermark_stalled = stalled;
            rates.stalled_node = Some(node);
        }
    }

    // Sinks whose writes failed or were retried since the last tick.
    for s in &snapshot {
        if s.name != names::SINK_RETRIES && s.name != names::SINK_ROWS_FAILED {
            continue;
        }
        let (Some(node), ferris_observe::Value::Counter(v)) = (s.label("node"), &s.value) else {
            continue;
        };
        let key = format!("{}|{node}", s.name);
        let before = m.sink_failures.insert(key, *v).unwrap_or(0);
        if *v > before {
            rates.failing_sinks += 1;
            rates.failing_sink.get_or_insert_with(|| node.to_string());
        }
    }
    let unavailable = sum(job, names::SOURCE_UNAVAILABLE);
    rates.source_unavailable = unavailable > m.unavailable;
    m.unavailable = unavailable;
    rates
}
