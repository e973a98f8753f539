//! Whether a query still needs input.
//!
//! A query's result can be complete before its input ends: a bare `LIMIT n` has written its n
//! rows, or nothing reads the derived stream it writes any more. The query's tasks say so
//! here; the source thread of each input ends that input (as if it had ended, so every stage
//! finishes normally) once every query reading it is complete. A job of one such query over
//! an unbounded source therefore stops by itself.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The completion of one query: the keyed partitions whose result is not complete yet.
#[derive(Debug)]
pub(crate) struct Completion {
    pending: AtomicUsize,
}

impl Completion {
    /// A query whose result is complete once `partitions` keyed partitions say so (the ones
    /// that receive rows), or once its output is read no more.
    pub(crate) fn new(partitions: usize) -> Self {
        Completion {
            pending: AtomicUsize::new(partitions.max(1)),
        }
    }

    /// One keyed partition's result is complete (each partition says it once).
    pub(crate) fn partition_complete(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Nothing reads the query's output any more: it needs no input.
    pub(crate) fn output_unread(&self) {
        self.pending.store(0, Ordering::Release);
    }

    /// Whether the query needs no more input.
    pub(crate) fn is_complete(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_complete_once_every_partition_or_its_reader_says_so() {
        let c = Completion::new(2);
        assert!(!c.is_complete());
        c.partition_complete();
        assert!(!c.is_complete());
        c.partition_complete();
        assert!(c.is_complete());
        c.partition_complete();
        assert!(c.is_complete());
        let unread = Completion::new(3);
        unread.output_unread();
        assert!(unread.is_complete());
        // No keyed partition: only the output can complete it.
        let plain = Completion::new(0);
        assert!(!plain.is_complete());
    }
}
