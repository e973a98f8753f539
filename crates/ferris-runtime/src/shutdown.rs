//! Cooperative shutdown: a flag that sources check between batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Triggered on SIGINT/SIGTERM or when a job fails; cheap to clone and check.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A shutdown that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every source to stop reading; in-flight batches still drain.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
