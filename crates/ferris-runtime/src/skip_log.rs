//! The log lines of `'error.strategy' = 'skip'`: the first skipped rows of a query one by one,
//! then at most one line per interval with how many were skipped meanwhile, and a last count
//! when the query ends — never one line per row of a bad file.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rows logged one by one before counting starts.
const FIRST: u64 = 10;

/// At most one summary line per this interval.
const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Counts {
    /// Rows skipped in all.
    total: u64,
    /// Rows skipped since the last line.
    unlogged: u64,
    /// When the last summary line was written.
    last_line: Option<Instant>,
}

/// Rate-limited skip logging for one query (shared by its tasks).
#[derive(Debug)]
pub(crate) struct SkipLog {
    query: String,
    counts: Mutex<Counts>,
}

/// What to log for one skipped row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SkipLine {
    /// The row itself.
    Row,
    /// A summary: this many rows skipped since the last line, this many in all.
    Summary { since: u64, total: u64 },
    /// Nothing now (counted).
    Quiet,
}

impl SkipLog {
    pub(crate) fn new(query: &str) -> Self {
        SkipLog {
            query: query.to_string(),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Counts one skipped row at `now` and says what to log.
    pub(crate) fn skipped(&self, now: Instant) -> SkipLine {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total += 1;
        if c.total <= FIRST {
            return SkipLine::Row;
        }
        c.unlogged += 1;
        let due = c
            .last_line
            .is_none_or(|t| now.duration_since(t) >= INTERVAL);
        if due {
            let since = std::mem::take(&mut c.unlogged);
            c.last_line = Some(now);
            SkipLine::Summary {
                since,
                total: c.total,
            }
        } else {
            SkipLine::Quiet
        }
    }
}

impl Drop for SkipLog {
    /// The rows skipped since the last line, when the query ends.
    fn drop(&mut self) {
        let c = self.counts.get_mut().unwrap_or_else(|p| p.into_inner());
        if c.unlogged > 0 {
            tracing::warn!(
                query = %self.query,
                "{} more row(s) skipped, {} in all (ferris_query_rows_skipped_total)",
                c.unlogged,
                c.total
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_rows_then_one_summary_per_interval() {
        let log = SkipLog::new("q");
        let t0 = Instant::now();
        for _ in 0..FIRST {
            assert_eq!(log.skipped(t0), SkipLine::Row);
        }
        assert_eq!(
            log.skipped(t0),
            SkipLine::Summary {
                since: 1,
                total: 11
            }
        );
        for _ in 0..500 {
            assert_eq!(log.skipped(t0 + Duration::from_secs(1)), SkipLine::Quiet);
        }
        assert_eq!(
            log.skipped(t0 + INTERVAL),
            SkipLine::Summary {
                since: 501,
                total: 512
            }
        );
        assert_eq!(log.skipped(t0 + INTERVAL), SkipLine::Quiet);
        let unlogged = log.counts.lock().map(|c| c.unlogged).unwrap_or(0);
        assert_eq!(unlogged, 1);
    }
}
