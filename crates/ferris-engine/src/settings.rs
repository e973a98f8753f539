//! `--set key=value` job settings: typed, with defaults, unknown keys rejected.

use ferris_runtime::JobConfig;
use std::time::Duration;

/// Keys `--set` accepts, with what they mean.
pub const KEYS: &[(&str, &str)] = &[
    ("channel.capacity", "rows per channel (default 4096)"),
    ("parallelism", "partition pipelines per query (default 1)"),
    (
        "sink.retry.attempts",
        "sink write attempts before the error strategy (default 3)",
    ),
    (
        "sink.retry.backoff.ms",
        "first retry wait in ms, doubling (default 10)",
    ),
    (
        "sink.retry.max.backoff.ms",
        "longest retry wait in ms (default 1000)",
    ),
    (
        "dead_letter.capacity",
        "dead letters buffered before writers wait (default 1024)",
    ),
    (
        "tracing.sample.ratio",
        "share of new traces whose spans are exported over OTLP (default 0.01; needs an OTLP endpoint)",
    ),
    (
        "lineage.sample",
        "share of input rows whose path through the job is recorded for `topology trace` (default 0: off)",
    ),
    (
        "commit.interval.ms",
        "least time between two Kafka offset commits, in ms (default 1000)",
    ),
];

/// Applies `key=value` pairs to `config`.
pub fn apply(config: &mut JobConfig, pairs: &[String]) -> Result<(), String> {
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--set '{pair}': expected key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let number = || -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("--set {key}: '{value}' is not a non-negative integer"))
        };
        let positive = || -> Result<usize, String> {
            match number()? {
                0 => Err(format!("--set {key}: must be at least 1")),
                n => Ok(n as usize),
            }
        };
        match key {
            "channel.capacity" => config.channel_capacity_rows = positive()?,
            "parallelism" => config.parallelism = positive()?,
            "sink.retry.attempts" => config.retry.attempts = positive()? as u32,
            "sink.retry.backoff.ms" => {
                config.retry.initial_backoff = Duration::from_millis(number()?)
            }
            "sink.retry.max.backoff.ms" => {
                config.retry.max_backoff = Duration::from_millis(number()?)
            }
            "dead_letter.capacity" => config.dead_letter_capacity = positive()?,
            "commit.interval.ms" => config.commit_interval = Duration::from_millis(number()?),
            "tracing.sample.ratio" => match value.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => config.tracer = config.tracer.with_ratio(r),
                _ => return Err(format!("--set {key}: '{value}' is not a ratio from 0 to 1")),
            },
            "lineage.sample" => match value.parse::<f64>() {
                Ok(0.0) => config.lineage = None,
                Ok(r) if (0.0..=1.0).contains(&r) => {
                    config.lineage = Some(ferris_runtime::LineageHandle(std::sync::Arc::new(
                        ferris_runtime::lineage::Lineage::new(None, r),
                    )))
                }
                _ => return Err(format!("--set {key}: '{value}' is not a ratio from 0 to 1")),
            },
            other => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(format!(
                    "--set: unknown key '{other}'; known keys: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_apply_and_unknown_are_rejected() {
        let mut c = JobConfig::default();
        apply(
            &mut c,
            &["channel.capacity=7".into(), "parallelism = 3".into()],
        )
        .expect("valid");
        assert_eq!((c.channel_capacity_rows, c.parallelism), (7, 3));
        let err = apply(&mut c, &["chanel.capacity=7".into()]).expect_err("typo");
        assert!(
            err.starts_with("--set: unknown key 'chanel.capacity'; known keys: channel.capacity,"),
            "{err}"
        );
        assert_eq!(
            apply(&mut c, &["parallelism=0".into()]),
            Err("--set parallelism: must be at least 1".to_string())
        );
    }
}
