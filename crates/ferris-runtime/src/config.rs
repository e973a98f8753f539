//! Job configuration with documented defaults.

use std::time::Duration;

/// How a sink retries a failed write before the error strategy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (default 3; 1 means no retry).
    pub attempts: u32,
    /// Wait before the first retry (default 10 ms); doubles each retry.
    pub initial_backoff: Duration,
    /// Longest wait between retries (default 1 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Settings of one job run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    /// Capacity of every channel, in rows (default 4096). A batch larger than the capacity
    /// is still accepted alone into an empty channel.
    pub channel_capacity_rows: usize,
    /// Partition pipelines per query (default 1).
    pub parallelism: usize,
    /// Sink retry policy.
    pub retry: RetryPolicy,
    /// Capacity of the dead-letter channel, in records (default 1024).
    pub dead_letter_capacity: usize,
    /// Least time between two commits of a source that commits its positions (Kafka)
    /// (default 1 s). The position after each batch is a commit point; a point is committed
    /// once every query reading the source has durably written, or dead-lettered, every row
    /// before it and no operator holds such a row.
    pub commit_interval: Duration,
    /// Where the spans of sampled batches go, and the share of new traces sampled
    /// (`tracing.sample.ratio`; default: nothing traced).
    pub tracer: ferris_observe::Tracer,
    /// Record lineage: which rows to follow and where their paths go (`lineage.sample`;
    /// default off: `None`).
    pub lineage: Option<LineageHandle>,
}

/// The lineage of a job, shared by its tasks (equal when both are on or both off).
#[derive(Debug, Clone)]
pub struct LineageHandle(pub std::sync::Arc<crate::lineage::Lineage>);

impl PartialEq for LineageHandle {
    fn eq(&self, other: &Self) -> bool {
        self.0.sample() == other.0.sample()
    }
}

impl Eq for LineageHandle {}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            channel_capacity_rows: 4096,
            parallelism: 1,
            retry: RetryPolicy::default(),
            dead_letter_capacity: 1024,
            commit_interval: Duration::from_secs(1),
            tracer: ferris_observe::Tracer::default(),
            lineage: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        let waits: Vec<u128> = (1..=4).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 300, 300]);
    }
}
