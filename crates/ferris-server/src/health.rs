//! `/health/detail`: per job, the checks of the founding spec (channel capacity, processing
//! rate against the job's own baseline, error rate, memory growth) plus source lag, stalled
//! watermarks and failing sinks, each `healthy`, `degraded` or `unhealthy` with the reason and
//! the graph node or edge it concerns.

use crate::jobs::{Job, JobState};
use crate::sampler::ProcessStats;
use ferris_observe::{Value, names};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A channel fuller than this is a bottleneck downstream of it.
pub const CHANNEL_DEGRADED_RATIO: f64 = 0.8;
/// Input below this fraction of the job's baseline is degraded.
pub const RATE_DEGRADED_FRACTION: f64 = 0.5;
/// A job is judged against its baseline only after running this long.
pub const RATE_WARMUP_SECONDS: f64 = 60.0;
/// Failed rows above this fraction (over the last minute) are degraded …
pub const ERROR_DEGRADED_RATIO: f64 = 0.05;
/// … and above this, unhealthy.
pub const ERROR_UNHEALTHY_RATIO: f64 = 0.5;
/// Resident memory growing faster than this (percent per hour) is degraded.
pub const MEMORY_GROWTH_DEGRADED: f64 = 10.0;
/// A watermark that has not moved for this long while rows arrive is degraded.
pub const WATERMARK_STALLED_SECONDS: f64 = 60.0;

/// A check's verdict; the worst verdict of a job's checks is the job's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within bounds.
    Healthy,
    /// Working, but a bound is crossed.
    Degraded,
    /// Not working (failed job, most rows failing).
    Unhealthy,
}

impl Verdict {
    /// The verdict as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
        }
    }
}

/// One check of one job.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Check {
    /// `job_state`, `channel_capacity`, `processing_rate`, `error_rate`, `memory_usage`,
    /// `source_lag`, `watermark`, `sinks`.
    pub name: String,
    /// The verdict.
    pub status: Verdict,
    /// Why, with the figures.
    pub reason: String,
    /// The measured value the verdict is based on.
    pub value: f64,
    /// The graph node the check concerns, when one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The graph edge (channel) the check concerns, when one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
}

/// The health of one job.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct JobHealth {
    /// The job.
    pub job: String,
    /// Its state.
    pub state: String,
    /// The worst verdict of its checks.
    pub status: Verdict,
    /// Every check.
    pub checks: Vec<Check>,
}

/// `/health/detail`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct HealthDetail {
    /// The worst verdict over every job.
    pub status: Verdict,
    /// When it was computed (RFC 3339).
    pub timestamp: String,
    /// Per job.
    pub jobs: Vec<JobHealth>,
}

fn check(name: &str, status: Verdict, reason: String, value: f64) -> Check {
    Check {
        name: name.to_string(),
        status,
        reason,
        value,
        node: None,
        edge: None,
    }
}

/// How full each channel is (rows queued over capacity, 0 to 1), by channel id, from one
/// snapshot of a job's metrics.
pub(crate) fn channel_ratios(snapshot: &ferris_observe::Snapshot) -> BTreeMap<String, f64> {
    let gauge = |name: &'static str| {
        snapshot
            .iter()
            .filter_map(move |s| match (&s.value, s.label("channel")) {
                (Value::Gauge { value, .. }, Some(c)) if s.name == name => Some((c, *value)),
                _ => None,
            })
    };
    let capacity: BTreeMap<&str, i64> = gauge(names::CHANNEL_CAPACITY_ROWS).collect();
    gauge(names::CHANNEL_DEPTH_ROWS)
        .filter_map(|(c, depth)| {
            let cap = capacity.get(c).copied().filter(|cap| *cap > 0)?;
            Some((c.to_string(), depth as f64 / cap as f64))
        })
        .collect()
}

/// Channel capacity. Channels over the threshold form chains behind a slow task (a full
/// channel makes the task before it wait, whose input then fills); the check names the last
/// full channel of a chain, the one whose receiving task's own outputs are not full: that
/// task is the bottleneck.
fn channel_check(job: &Job, live: bool) -> Check {
    let ratios = channel_ratios(&job.registry.snapshot());
    let full: Vec<(&String, f64)> = ratios
        .iter()
        .map(|(edge, r)| (edge, *r))
        .filter(|(_, r)| *r > CHANNEL_DEGRADED_RATIO)
        .collect();
    let edge_ends = |id: &str| {
        job.graph
            .edges
            .iter()
            .find(|e| e.channel.as_deref() == Some(id) || e.id == id)
            .map(|e| (e.from.clone(), e.to.clone()))
    };
    let bottleneck = full.iter().find(|(id, _)| {
        let Some((_, to)) = edge_ends(id) else {
            return true;
        };
        !full
            .iter()
            .any(|(other, _)| edge_ends(other).is_some_and(|(from, _)| from == to))
    });
    match bottleneck {
        Some((edge, ratio)) if live => {
            let node = edge_ends(edge).map(|(_, to)| to);
            let mut c = check(
                "channel_capacity",
                Verdict::Degraded,
                format!(
                    "channel {edge} is {:.0}% full (over {:.0}%): {} cannot keep up",
                    ratio * 100.0,
                    CHANNEL_DEGRADED_RATIO * 100.0,
                    node.as_deref().unwrap_or("the task it feeds")
                ),
                *ratio,
            );
            c.edge = Some(edge.to_string());
            c.node = node;
            c
        }
        _ => {
            let top = ratios.values().copied().fold(0.0f64, f64::max);
            check(
                "channel_capacity",
                Verdict::Healthy,
                format!("the fullest channel is {:.0}% full", top * 100.0),
                top,
            )
        }
    }
}

/// The checks of `job`.
pub fn job_health(job: &Job, process: &ProcessStats) -> JobHealth {
    let state = job.state();
    let mut checks = Vec::new();
    let live = state.is_live();
    checks.push(match state {
        JobState::Failed => check(
            "job_state",
            Verdict::Unhealthy,
            format!("the job failed: {}", job.error().unwrap_or_default()),
            0.0,
        ),
        s => check(
            "job_state",
            Verdict::Healthy,
            format!("the job is {}", s.as_str()),
            1.0,
        ),
    });

    checks.push(channel_check(job, live));

    let rates = job.rates();
    let warm = job.uptime_seconds() >= RATE_WARMUP_SECONDS && rates.baseline > 0.0;
    checks.push(
        if live && warm && rates.input < RATE_DEGRADED_FRACTION * rates.baseline {
            check(
                "processing_rate",
                Verdict::Degraded,
                format!(
                    "reading {:.1} rows/s, under {:.0}% of the job's baseline of {:.1} rows/s",
                    rates.input,
                    RATE_DEGRADED_FRACTION * 100.0,
                    rates.baseline
                ),
                rates.input,
            )
        } else {
            check(
                "processing_rate",
                Verdict::Healthy,
                format!(
                    "reading {:.1} rows/s (baseline {:.1} rows/s)",
                    rates.input, rates.baseline
                ),
                rates.input,
            )
        },
    );

    let e = rates.error_ratio;
    let verdict = if !live {
        Verdict::Healthy
    } else if e > ERROR_UNHEALTHY_RATIO {
        Verdict::Unhealthy
    } else if e > ERROR_DEGRADED_RATIO {
        Verdict::Degraded
    } else {
        Verdict::Healthy
    };
    checks.push(check(
        "error_rate",
        verdict,
        format!(
            "{:.2}% of the last minute's rows failed (degraded above {:.0}%)",
            e * 100.0,
            ERROR_DEGRADED_RATIO * 100.0
        ),
        e,
    ));

    let g = process.memory_growth_percent_per_hour;
    checks.push(check(
        "memory_usage",
        if g > MEMORY_GROWTH_DEGRADED {
            Verdict::Degraded
        } else {
            Verdict::Healthy
        },
        format!(
            "the process holds {} MiB, growing {g:.1}%/h (degraded above {MEMORY_GROWTH_DEGRADED:.0}%/h)",
            process.resident_bytes / (1 << 20)
        ),
        g,
    ));

    let lag = job.registry.gauge_sum(names::SOURCE_LAG, &[]).0;
    checks.push(check(
        "source_lag",
        Verdict::Healthy,
        format!("{lag} messages not yet read from Kafka"),
        lag as f64,
    ));

    let mut c = if live && rates.watermark_stalled > WATERMARK_STALLED_SECONDS {
        check(
            "watermark",
            Verdict::Degraded,
            format!(
                "the watermark has not moved for {:.0} s while rows arrive",
                rates.watermark_stalled
            ),
            rates.watermark_stalled,
        )
    } else {
        check(
            "watermark",
            Verdict::Healthy,
            "every watermark advances with its input".to_string(),
            rates.watermark_stalled,
        )
    };
    c.node = rates.stalled_node.filter(|_| c.status != Verdict::Healthy);
    checks.push(c);

    let mut c = if live && rates.failing_sinks > 0 {
        check(
            "sinks",
            Verdict::Degraded,
            format!(
                "{} sink(s) retried or failed writes in the last second",
                rates.failing_sinks
            ),
            rates.failing_sinks as f64,
        )
    } else {
        check(
            "sinks",
            Verdict::Healthy,
            "every sink writes".to_string(),
            0.0,
        )
    };
    c.node = rates.failing_sink.filter(|_| c.status != Verdict::Healthy);
    checks.push(c);

    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Verdict::Healthy);
    JobHealth {
        job: job.name.clone(),
        state: state.as_str().to_string(),
        status,
        checks,
    }
}
