//! A partition counted as restoring, for readiness and `pulse_restoring_partitions`, from the
//! moment its task is created until its restore ends, however it ends: the task can be
//! aborted inside its restore (a revoke past the drain deadline) or dropped before it first
//! runs, and readiness must not stay false for a partition that is gone.

use prometheus::IntGauge;
use pulse_telemetry::Health;

/// Counts one partition as restoring until [`Restoring::finish`] or drop.
#[derive(Debug)]
pub(crate) struct Restoring {
    health: Health,
    gauge: IntGauge,
    done: bool,
}

impl Restoring {
    pub fn start(health: &Health, gauge: &IntGauge) -> Self {
        health.restore_started();
        gauge.inc();
        Self {
            health: health.clone(),
            gauge: gauge.clone(),
            done: false,
        }
    }

    /// The restore ended (restored, or given up): counted once.
    pub fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.health.restore_finished();
            self.gauge.dec();
        }
    }
}

impl Drop for Restoring {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_health() -> Health {
        let h = Health::default();
        h.set_ready(true);
        h
    }

    #[test]
    fn finishing_twice_counts_once() {
        let (h, g) = (ready_health(), IntGauge::new("g", "g").unwrap());
        let mut r = Restoring::start(&h, &g);
        assert!(!h.is_ready());
        r.finish();
        r.finish();
        drop(r);
        assert!(h.is_ready());
        assert_eq!(g.get(), 0);
    }

    /// A task aborted while it waits inside its restore, and one aborted before it ever ran:
    /// both leave the worker ready again.
    #[tokio::test]
    async fn an_aborted_restore_leaves_readiness_to_the_others() {
        let (h, g) = (ready_health(), IntGauge::new("g", "g").unwrap());
        let waiting = Restoring::start(&h, &g);
        let task = tokio::spawn(async move {
            let _restoring = waiting;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        let never_ran = Restoring::start(&h, &g);
        let unpolled = tokio::spawn(async move {
            let _restoring = never_ran;
        });
        unpolled.abort();
        assert!(!h.is_ready());
        task.abort();
        let _ = task.await;
        let _ = unpolled.await;
        assert!(h.is_ready());
        assert_eq!(g.get(), 0);
    }
}
