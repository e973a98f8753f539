//! Commit progress: how far each query has durably handled a source's slots, and how far
//! the dead-letter writers have flushed, so that a source commits a position only when every
//! row before it is in an output, a dead-letter sink or a counted skip (at-least-once).
//!
//! A sink thread advances its [`Progress`] after each write: every slot below the value is
//! done (for a keyed query, only the slots its stateful stage reports settled, see
//! [`crate::message::Settled`]). The source thread records a [`Checkpoint`] now and then with
//! the slot it was taken at, and commits the newest one that every query has passed.

use crate::dead_letter::DeadLetterRecord;
use crate::source::{Checkpoint, Drain, Source};
use crate::watermark::WatermarkTracker;
use ferris_observe::Counter;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How far one query (one input side of it) has durably handled a source's slots.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The query.
    query: Arc<str>,
    /// Every slot below this is done.
    done_before: AtomicU64,
    /// A keyed query's results up to this event time are written (`i64::MIN`: none yet, or
    /// not keyed), under the group generation beside it (0 outside a group).
    written_through: std::sync::Mutex<(u64, i64)>,
    /// The sink thread ended (successfully or not); the value no longer moves.
    closed: AtomicBool,
}

impl Progress {
    pub(crate) fn new(query: Arc<str>) -> Self {
        Progress {
            query,
            done_before: AtomicU64::new(0),
            written_through: std::sync::Mutex::new((0, i64::MIN)),
            closed: AtomicBool::new(false),
        }
    }

    /// A keyed query wrote its results up to event time `watermark`, reading its source
    /// under group generation `generation` (a newer generation starts over: its state was
    /// rebuilt from the committed offsets).
    pub(crate) fn written_through(&self, generation: u64, watermark: i64) {
        let mut w = self
            .written_through
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation > w.0 {
            *w = (generation, watermark);
        } else if generation == w.0 {
            w.1 = w.1.max(watermark);
        }
    }

    /// How far the results are written under `generation` (`i64::MIN`: nothing known).
    fn written_under(&self, generation: u64) -> i64 {
        let w = self
            .written_through
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.0 == generation { w.1 } else { i64::MIN }
    }

    /// Every slot below `slot` is done.
    pub(crate) fn advance(&self, slot: u64) {
        self.done_before.fetch_max(slot, Ordering::AcqRel);
    }

    /// The query wrote everything and closed its sink.
    pub(crate) fn finish(&self) {
        self.advance(u64::MAX);
    }

    /// The sink thread ended (after [`Progress::finish`] when it succeeded).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn done_before(&self) -> u64 {
        self.done_before.load(Ordering::Acquire)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Closes a [`Progress`] when the sink thread ends, however it ends.
pub(crate) struct CloseOnDrop(pub(crate) Arc<Progress>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Records sent to and flushed by one dead-letter writer.
#[derive(Debug, Default)]
pub(crate) struct DeadLetterCounts {
    sent: AtomicU64,
    flushed: AtomicU64,
    /// The writer thread ended.
    closed: AtomicBool,
}

impl DeadLetterCounts {
    /// The writer flushed `n` records in all.
    pub(crate) fn flushed(&self, n: u64) {
        self.flushed.store(n, Ordering::Release);
    }

    /// The writer thread ended.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// The sending side of a dead-letter writer's channel; counts what it sends.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterTx {
    tx: mpsc::Sender<DeadLetterRecord>,
    counts: Arc<DeadLetterCounts>,
}

/// The dead-letter writer went away.
#[derive(Debug)]
pub(crate) struct DeadLetterClosed;

impl DeadLetterTx {
    pub(crate) fn new(tx: mpsc::Sender<DeadLetterRecord>, counts: Arc<DeadLetterCounts>) -> Self {
        DeadLetterTx { tx, counts }
    }

    /// Sends a record, waiting for room.
    pub(crate) async fn send(&self, record: DeadLetterRecord) -> Result<(), DeadLetterClosed> {
        self.counts.sent.fetch_add(1, Ordering::AcqRel);
        self.tx.send(record).await.map_err(|_| DeadLetterClosed)
    }

    /// Sends a record from a blocking thread.
    pub(crate) fn blocking_send(&self, record: DeadLetterRecord) -> Result<(), DeadLetterClosed> {
        self.counts.sent.fetch_add(1, Ordering::AcqRel);
        self.tx.blocking_send(record).map_err(|_| DeadLetterClosed)
    }
}

/// The source thread's side: commit points waiting for the queries to pass them.
pub(crate) struct Committer {
    /// One per query side reading the source.
    progress: Vec<Arc<Progress>>,
    dead_letters: Vec<Arc<DeadLetterCounts>>,
    /// (slot, checkpoint): the checkpoint covers every slot below `slot`.
    pending: VecDeque<(u64, Checkpoint)>,
    /// Least time between two commits.
    interval: Duration,
    last_commit: Instant,
    /// The last point committed.
    committed: Option<Checkpoint>,
    commits: Arc<Counter>,
    failures: Arc<Counter>,
    /// Slots sent so far (every slot below it), for [`SentDrain`].
    sent: Arc<AtomicU64>,
}

/// The [`Drain`] a source thread hands its source: waits until every query passed every
/// slot sent so far and the dead-letter writers flushed what they were sent.
pub(crate) struct SentDrain {
    progress: Vec<Arc<Progress>>,
    dead_letters: Vec<Arc<DeadLetterCounts>>,
    sent: Arc<AtomicU64>,
}

impl Drain for SentDrain {
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let target = self.sent.load(Ordering::Acquire);
        let dead_targets: Vec<u64> = self
            .dead_letters
            .iter()
            .map(|d| d.sent.load(Ordering::Acquire))
            .collect();
        loop {
            let queries = self
                .progress
                .iter()
                .all(|p| p.done_before() >= target || p.is_closed());
            let dead = self
                .dead_letters
                .iter()
                .zip(&dead_targets)
                .all(|(d, t)| d.flushed.load(Ordering::Acquire) >= *t);
            if queries && dead {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// At most this many commit points wait (one per slot sent); beyond it every other one is
/// dropped (a later point covers the dropped one, so commits only get coarser).
const MAX_PENDING: usize = 4096;

impl Committer {
    pub(crate) fn new(
        progress: Vec<Arc<Progress>>,
        dead_letters: Vec<Arc<DeadLetterCounts>>,
        interval: Duration,
        commits: Arc<Counter>,
        failures: Arc<Counter>,
    ) -> Self {
        Committer {
            progress,
            dead_letters,
            pending: VecDeque::new(),
            interval,
            last_commit: Instant::now(),
            committed: None,
            commits,
            failures,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A [`Drain`] over this committer's queries, for the source.
    pub(crate) fn drain(&self) -> Arc<dyn Drain> {
        Arc::new(SentDrain {
            progress: self.progress.clone(),
            dead_letters: self.dead_letters.clone(),
            sent: self.sent.clone(),
        })
    }

    /// Every slot below this is done by every query.
    fn frontier(&self) -> u64 {
        self.progress
            .iter()
            .map(|p| p.done_before())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// After slot `next - 1` was sent: records the source's position as a commit point.
    pub(crate) fn sent(
        &mut self,
        next: u64,
        source: &dyn Source,
        tracker: Option<&WatermarkTracker>,
    ) {
        self.sent.fetch_max(next, Ordering::AcqRel);
        if self.pending.back().is_some_and(|(slot, _)| *slot >= next) {
            return;
        }
        let Some(mut checkpoint) = source.checkpoint() else {
            return;
        };
        if let Some(t) = tracker {
            checkpoint.event_times = t.event_times();
        }
        if self.pending.back().is_some_and(|(_, c)| *c == checkpoint) {
            return;
        }
        self.pending.push_back((next, checkpoint));
        if self.pending.len() > MAX_PENDING {
            let kept: VecDeque<_> = self
                .pending
                .drain(..)
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, p)| p)
                .collect();
            self.pending = kept;
        }
    }

    /// Commits the newest point every query has passed, if the commit interval has passed
    /// since the last commit.
    pub(crate) fn commit_ready(&mut self, source: &mut dyn Source) {
        if self.last_commit.elapsed() < self.interval {
            return;
        }
        self.force_commit(source);
    }

    /// Commits the newest point every query has passed, whenever the last commit was.
    fn force_commit(&mut self, source: &mut dyn Source) {
        let frontier = self.frontier();
        let mut ready = None;
        while self
            .pending
            .front()
            .is_some_and(|(slot, _)| *slot <= frontier)
        {
            ready = self.pending.pop_front();
        }
        let Some((slot, checkpoint)) = ready else {
            return;
        };
        let mut checkpoint = checkpoint;
        // Not committed (yet): the point stays, to be retried or passed by a newer one.
        let keep = |this: &mut Self, checkpoint: Checkpoint| {
            if this.pending.front().is_none_or(|(s, _)| *s > slot) {
                this.pending.push_front((slot, checkpoint));
            }
        };
        let generation = checkpoint.generation;
        checkpoint.query_watermarks = self
            .progress
            .iter()
            .map(|p| (p.query.to_string(), p.written_under(generation)))
            .filter(|(_, wm)| *wm > i64::MIN)
            .collect();
        if self.committed.as_ref() == Some(&checkpoint) {
            return;
        }
        self.last_commit = Instant::now();
        // Rows dead-lettered before the point must be on disk before it is committed.
        if !self.dead_letters_flushed() {
            tracing::warn!("dead letters not flushed in time; commit postponed");
            self.failures.inc();
            keep(self, checkpoint);
            return;
        }
        match source.commit(&checkpoint) {
            Ok(()) => {
                self.commits.inc();
                self.committed = Some(checkpoint);
            }
            Err(e) => {
                self.failures.inc();
                tracing::warn!("commit failed (retried): {e}");
                keep(self, checkpoint);
            }
        }
    }

    /// Waits until every dead-letter writer flushed what was sent to it so far.
    fn dead_letters_flushed(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        self.dead_letters.iter().all(|d| {
            let target = d.sent.load(Ordering::Acquire);
            loop {
                if d.flushed.load(Ordering::Acquire) >= target {
                    return true;
                }
                if d.closed.load(Ordering::Acquire) || Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    }

    /// At the end of the input (slot `next` was never sent): waits until every query passed
    /// the end or stopped, then commits the last point they reached.
    pub(crate) fn finish(
        &mut self,
        next: u64,
        source: &mut dyn Source,
        tracker: Option<&WatermarkTracker>,
    ) {
        self.sent(next, source, tracker);
        loop {
            let frontier = self.frontier();
            let all_stopped = self
                .progress
                .iter()
                .all(|p| p.is_closed() || p.done_before() >= next);
            if frontier >= next || all_stopped {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.force_commit(source);
        if let Err(e) = source.flush_commits() {
            self.failures.inc();
            tracing::warn!("the last commit failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SourceError, SourcePoll};
    use arrow::datatypes::{Schema, SchemaRef};
    use ferris_observe::Registry;

    /// A source at position `at` (one partition) that records its commits.
    struct Positions {
        at: u64,
        commits: Vec<u64>,
    }

    impl Source for Positions {
        fn location(&self) -> String {
            "p".into()
        }
        fn schema(&self) -> SchemaRef {
            std::sync::Arc::new(Schema::empty())
        }
        fn poll(&mut self, _: usize) -> Result<SourcePoll, SourceError> {
            Ok(SourcePoll::End)
        }
        fn checkpoint(&self) -> Option<Checkpoint> {
            Some(Checkpoint {
                positions: vec![(0, self.at)],
                ..Checkpoint::default()
            })
        }
        fn commit(&mut self, c: &Checkpoint) -> Result<(), SourceError> {
            self.commits.push(c.positions[0].1);
            Ok(())
        }
    }

    /// Two queries' progress cells, `a` and `b`.
    fn two_queries() -> (Arc<Progress>, Arc<Progress>) {
        (
            Arc::new(Progress::new("a".into())),
            Arc::new(Progress::new("b".into())),
        )
    }

    /// A source at position `at` that has committed nothing.
    fn positions(at: u64) -> Positions {
        Positions {
            at,
            commits: Vec::new(),
        }
    }

    fn committer(progress: &[Arc<Progress>], dead: &[Arc<DeadLetterCounts>]) -> Committer {
        let r = Registry::new();
        Committer::new(
            progress.to_vec(),
            dead.to_vec(),
            Duration::ZERO,
            r.counter("commits", &[]),
            r.counter("failures", &[]),
        )
    }

    #[test]
    fn commits_the_newest_point_every_query_passed() {
        let (a, b) = two_queries();
        let mut c = committer(&[a.clone(), b.clone()], &[]);
        let mut s = positions(0);
        // Slot k sent: the source is at position 10·(k+1).
        for slot in 0..5u64 {
            s.at = 10 * (slot + 1);
            c.sent(slot + 1, &s, None);
        }
        c.commit_ready(&mut s);
        assert_eq!(s.commits, Vec::<u64>::new(), "no query passed anything");
        a.advance(4);
        b.advance(2);
        c.commit_ready(&mut s);
        assert_eq!(s.commits, vec![20], "slots 0 and 1 done by both");
        b.advance(5);
        c.commit_ready(&mut s);
        assert_eq!(s.commits, vec![20, 40]);
        // Nothing new: no second commit of the same point.
        c.commit_ready(&mut s);
        assert_eq!(s.commits, vec![20, 40]);
        // The end: both finish, the last point is committed.
        a.finish();
        b.finish();
        c.finish(5, &mut s, None);
        assert_eq!(s.commits, vec![20, 40, 50]);
    }

    #[test]
    fn a_failed_query_keeps_the_commit_where_it_stopped() {
        let (a, b) = two_queries();
        let mut c = committer(&[a.clone(), b.clone()], &[]);
        let mut s = positions(0);
        for slot in 0..3u64 {
            s.at = slot + 1;
            c.sent(slot + 1, &s, None);
        }
        a.finish();
        b.advance(1);
        b.close();
        c.finish(3, &mut s, None);
        assert_eq!(s.commits, vec![1]);
    }

    #[test]
    fn no_commit_before_the_dead_letters_are_flushed() {
        let p = Arc::new(Progress::new("q".into()));
        let dead = Arc::new(DeadLetterCounts::default());
        let (tx, _rx) = mpsc::channel(4);
        let dl = DeadLetterTx::new(tx, dead.clone());
        dl.blocking_send(DeadLetterRecord {
            error: "e".into(),
            source: "s".into(),
            position: "p".into(),
            raw: "r".into(),
            raw_encoding: crate::message::RawEncoding::Text,
            correlation_id: "c".into(),
            query: "q".into(),
            stage: crate::error::Stage::Decode,
        })
        .expect("sent");
        // The writer thread died without flushing it.
        dead.close();
        let mut c = committer(std::slice::from_ref(&p), std::slice::from_ref(&dead));
        let mut s = positions(7);
        c.sent(1, &s, None);
        p.advance(1);
        c.commit_ready(&mut s);
        assert_eq!(s.commits, Vec::<u64>::new());
        dead.flushed(1);
        c.commit_ready(&mut s);
        assert_eq!(s.commits, vec![7]);
    }

    #[test]
    fn the_drain_waits_for_every_query_to_pass_what_was_sent() {
        let (a, b) = two_queries();
        let dead = Arc::new(DeadLetterCounts::default());
        let mut c = committer(&[a.clone(), b.clone()], std::slice::from_ref(&dead));
        let drain = c.drain();
        let s = positions(5);
        // Nothing sent: nothing to wait for.
        assert!(drain.wait(Duration::ZERO));
        c.sent(3, &s, None);
        a.advance(3);
        // b has not passed slot 2 yet.
        assert!(!drain.wait(Duration::from_millis(20)));
        // b passes it while the drain waits.
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b2.advance(3);
        });
        assert!(drain.wait(Duration::from_secs(10)));
        t.join().expect("thread");
        // A dead letter sent and not flushed holds the drain back.
        dead.sent.fetch_add(1, Ordering::AcqRel);
        assert!(!drain.wait(Duration::from_millis(20)));
        dead.flushed(1);
        assert!(drain.wait(Duration::ZERO));
        // A query that stopped does not hold it back.
        c.sent(4, &s, None);
        a.advance(4);
        b.close();
        assert!(drain.wait(Duration::ZERO));
    }

    #[test]
    fn the_written_through_watermark_starts_over_with_a_new_assignment() {
        let p = Progress::new("q".into());
        assert_eq!(p.written_under(0), i64::MIN);
        p.written_through(1, 100);
        p.written_through(1, 50);
        assert_eq!(p.written_under(1), 100);
        // A newer generation replaces it (its state was rebuilt from the commits); an older
        // report changes nothing; an older generation knows nothing any more.
        p.written_through(2, 10);
        p.written_through(1, 500);
        assert_eq!((p.written_under(1), p.written_under(2)), (i64::MIN, 10));
    }
}
