//! Consumer-group rebalances (`'partitions' = 'group'`): before the group takes partitions
//! away, wait until the queries wrote every row this process returned from them and commit
//! those offsets, so that the next owner starts right after them; remember the revoked
//! partitions so the source forgets them.
//!
//! Every assignment counts as a new generation (the source then reads each assigned
//! partition from its committed offset). The reader of a repartition topic skips the commit
//! before a revoke: its keyed state restarts from the committed offsets anyway (see
//! `kafka::repartition`).

use crate::kafka::health::ClientLog;
use ferris_runtime::Drain;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a revoke waits for the queries to write what was returned (a keyed query may
/// hold rows in open windows longer: then the partitions go uncommitted past the last
/// regular commit, and their next owner repeats those rows).
const REVOKE_WAIT: Duration = Duration::from_secs(30);

/// The consumer's context in group mode.
#[derive(Default)]
pub(crate) struct GroupContext {
    /// Partitions revoked since the source last looked.
    revoked: Mutex<Vec<i32>>,
    /// Per partition, the offset after the last row of the batches returned so far.
    returned: Mutex<BTreeMap<i32, i64>>,
    /// Waits for the queries (set by the runtime before the first poll).
    drain: Mutex<Option<Arc<dyn Drain>>>,
    /// The topic read.
    topic: Mutex<String>,
    /// The client's last warning, for errors.
    pub(crate) log: ClientLog,
    /// Assignments received so far.
    generation: AtomicU64,
    /// The partitions assigned now.
    assigned: Mutex<Vec<i32>>,
    /// Between a revoke and the next assignment (the assignment is not known then).
    rebalancing: AtomicBool,
    /// Skip the commit before a revoke (the reader of a repartition topic: its keyed query
    /// holds rows in open windows, and its state restarts from the committed offsets
    /// anyway).
    no_commit_on_revoke: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupContext {
    /// A context for a consumer of `topic`.
    pub(crate) fn new(topic: &str) -> Self {
        let c = GroupContext::default();
        *lock(&c.topic) = topic.to_string();
        c
    }

    /// Does not commit before a revoke (see [`GroupContext::no_commit_on_revoke`]).
    pub(crate) fn without_commit_on_revoke(self) -> Self {
        self.no_commit_on_revoke.store(true, Ordering::Release);
        self
    }

    /// How many assignments the group made so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The partitions assigned now.
    pub(crate) fn assigned(&self) -> Vec<i32> {
        lock(&self.assigned).clone()
    }

    /// The partitions the group assigned, once it did and unless a rebalance is under way
    /// (between a revoke and the next assignment); `Some(empty)` when the group gave this
    /// member nothing.
    pub(crate) fn settled_assignment(&self) -> Option<Vec<i32>> {
        let settled = self.generation() > 0 && !self.rebalancing.load(Ordering::Acquire);
        settled.then(|| self.assigned())
    }

    /// Sets the runtime's drain.
    pub(crate) fn set_drain(&self, drain: Arc<dyn Drain>) {
        *lock(&self.drain) = Some(drain);
    }

    /// A batch ending at these next offsets was returned to the runtime.
    pub(crate) fn returned(&self, next: &BTreeMap<i32, i64>) {
        lock(&self.returned).extend(next.iter().map(|(p, o)| (*p, *o)));
    }

    /// The partitions revoked since the last call.
    pub(crate) fn take_revoked(&self) -> Vec<i32> {
        std::mem::take(&mut *lock(&self.revoked))
    }

    /// Before `partitions` are revoked: once the queries handled every returned row, commit
    /// the returned offsets of those partitions.
    fn commit_before_revoke(&self, consumer: &BaseConsumer<Self>, partitions: &[i32]) {
        let offsets: Vec<(i32, i64)> = {
            let mut returned = lock(&self.returned);
            partitions
                .iter()
                .filter_map(|p| returned.remove(p).map(|o| (*p, o)))
                .collect()
        };
        if offsets.is_empty() {
            return;
        }
        let drain = lock(&self.drain).clone();
        if !drain.is_some_and(|d| d.wait(REVOKE_WAIT)) {
            tracing::warn!(
                ?partitions,
                "revoked before the queries wrote every row read from them: their next \
                 owner repeats the rows after the last commit"
            );
            return;
        }
        let topic = lock(&self.topic).clone();
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in offsets {
            if tpl
                .add_partition_offset(&topic, p, Offset::Offset(offset))
                .is_err()
            {
                return;
            }
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::info!(?partitions, "committed before the revoke"),
            Err(e) => tracing::warn!(?partitions, "commit before the revoke failed: {e}"),
        }
    }
}

impl rdkafka::ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.record(level, fac, message);
    }
}

impl ConsumerContext for GroupContext {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            let topic = lock(&self.topic).clone();
            let partitions: Vec<(i32, Offset)> = offsets
                .elements()
                .iter()
                .map(|e| (e.partition(), e.offset()))
                .collect();
            tracing::warn!(%topic, ?partitions,
                "commit failed (a later commit covers these offsets): {e}");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions revoked by the group");
            self.rebalancing.store(true, Ordering::Release);
            lock(&self.assigned).retain(|p| !partitions.contains(p));
            if !self.no_commit_on_revoke.load(Ordering::Acquire) {
                self.commit_before_revoke(consumer, &partitions);
            }
            lock(&self.revoked).extend(partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let topic = lock(&self.topic).clone();
            tracing::info!(%topic, ?partitions, "partitions assigned by the group");
            *lock(&self.assigned) = partitions;
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.rebalancing.store(false, Ordering::Release);
        }
    }
}
