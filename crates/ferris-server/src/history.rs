//! Metric snapshots of a running job kept for analysis over a past time range
//! (`GET /api/v1/jobs/{name}/topology?timerange=1h`, `ferris-cli topology analyze
//! --timerange`): one every [`STEP`] for the last [`RECENT`], then one every [`OLD_STEP`] for
//! a [`KEPT`] in all. Memory stays bounded: at most 240 + 288 snapshots per job.

use ferris_observe::Sample;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time between two kept snapshots of the last hour.
pub const STEP: Duration = Duration::from_secs(15);
/// How long snapshots are kept at full resolution.
pub const RECENT: Duration = Duration::from_secs(3600);
/// Time between two kept snapshots older than [`RECENT`].
pub const OLD_STEP: Duration = Duration::from_secs(300);
/// How long snapshots are kept at all.
pub const KEPT: Duration = Duration::from_secs(86_400);

/// One job's kept snapshots, oldest first.
#[derive(Debug, Default)]
pub struct History {
    recent: VecDeque<(Instant, Arc<Vec<Sample>>)>,
    older: VecDeque<(Instant, Arc<Vec<Sample>>)>,
}

impl History {
    /// Whether a snapshot taken at `now` would be kept.
    pub fn due(&self, now: Instant) -> bool {
        self.recent
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= STEP)
    }

    /// Keeps `snapshot`, taken at `now`; thins out what has aged.
    pub fn record(&mut self, now: Instant, snapshot: Vec<Sample>) {
        self.recent.push_back((now, Arc::new(snapshot)));
        while let Some((t, s)) = self.recent.front().cloned() {
            if now.duration_since(t) <= RECENT {
                break;
            }
            self.recent.pop_front();
            if self
                .older
                .back()
                .is_none_or(|(last, _)| t.duration_since(*last) >= OLD_STEP)
            {
                self.older.push_back((t, s));
            }
        }
        while self
            .older
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > KEPT)
        {
            self.older.pop_front();
        }
    }

    /// The snapshots of the last `range` before `now`, oldest first: the first is the one
    /// nearest the range's start (the oldest kept when the range reaches further back).
    pub fn window(&self, now: Instant, range: Duration) -> Vec<(Instant, Arc<Vec<Sample>>)> {
        let all = self.older.iter().chain(self.recent.iter());
        let inside: Vec<_> = all
            .filter(|(t, _)| now.duration_since(*t) <= range)
            .cloned()
            .collect();
        if inside.is_empty() {
            // The range is shorter than the time since the last snapshot: the last one.
            return self.recent.back().cloned().into_iter().collect();
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_thin_out_with_age_and_windows_start_at_the_range() {
        let t0 = Instant::now();
        let mut h = History::default();
        // Two hours at one snapshot a second, kept every 15 s.
        for s in 0..=7200u64 {
            let now = t0 + Duration::from_secs(s);
            if h.due(now) {
                h.record(now, Vec::new());
            }
        }
        let now = t0 + Duration::from_secs(7200);
        assert_eq!(h.recent.len(), 241);
        // The hour before the last is kept every 5 minutes.
        assert_eq!(h.older.len(), 12);
        let w = h.window(now, Duration::from_secs(600));
        assert_eq!(w.len(), 41);
        assert_eq!(now.duration_since(w[0].0), Duration::from_secs(600));
        let w = h.window(now, Duration::from_secs(86_400));
        assert_eq!(now.duration_since(w[0].0), Duration::from_secs(7200));
        assert_eq!(h.window(now, Duration::from_secs(1)).len(), 1);
    }
}
