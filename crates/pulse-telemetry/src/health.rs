//! Liveness and readiness as shared flags the worker flips and the HTTP server reads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared health state. Cloning shares the flags.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    restoring: Arc<AtomicUsize>,
}

impl Health {
    /// Ready: the worker has joined its group and can process its partitions.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Ready: assigned, every assigned partition restored, and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
            && self.restoring.load(Ordering::Acquire) == 0
    }

    /// A partition starts restoring; readiness is false until every one has finished.
    pub fn restore_started(&self) {
        self.restoring.fetch_add(1, Ordering::AcqRel);
    }

    pub fn restore_finished(&self) {
        self.restoring.fetch_sub(1, Ordering::AcqRel);
    }

    /// Marks the process as shutting down: readiness turns false at once so load balancers
    /// stop routing to it while it drains.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}
