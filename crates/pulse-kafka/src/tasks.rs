//! The table of running partition tasks, shared by the consumer loop, which feeds them, and the
//! rebalance callback, which drains revoked ones: a revoked partition's in-flight records are
//! finished, their outputs and changelog acknowledged and their offsets stored before the
//! partition may move to another worker.

use crate::task::{self, TaskCtx};
use rdkafka::message::OwnedMessage;
use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// A fetched record and when the worker received it (the start of its event-to-output time).
pub(crate) type Fetched = (OwnedMessage, Instant);

struct Slot {
    tx: mpsc::Sender<Fetched>,
    /// Disconnects when the task has returned.
    done: std_mpsc::Receiver<()>,
    handle: JoinHandle<()>,
}

#[derive(Default)]
pub(crate) struct Tasks {
    slots: Mutex<HashMap<i32, Slot>>,
    /// Set once the consumer exists; cleared on shutdown to break the consumer ↔ tasks cycle.
    ctx: Mutex<Option<Arc<TaskCtx>>>,
}

impl Tasks {
    fn slots(&self) -> MutexGuard<'_, HashMap<i32, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_ctx(&self, ctx: Arc<TaskCtx>) {
        *self.ctx.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx);
    }

    /// The queue of partition `p`'s task, starting the task (and its restore) if needed. Must be
    /// called from within the runtime.
    pub fn sender(&self, p: i32) -> Option<mpsc::Sender<Fetched>> {
        let ctx = self.ctx.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let mut slots = self.slots();
        let slot = slots.entry(p).or_insert_with(|| {
            ctx.health.restore_started();
            ctx.metrics.restoring_partitions.inc();
            let (tx, rx) = mpsc::channel(ctx.worker.queue_capacity.max(1));
            let (done_tx, done) = std_mpsc::channel();
            // Every log line of the task carries its partition through this span.
            let span = tracing::info_span!("partition", partition = p);
            let handle = tokio::spawn(task::run(p, rx, ctx.clone(), done_tx).instrument(span));
            Slot { tx, done, handle }
        });
        Some(slot.tx.clone())
    }

    /// Closes the queues of `partitions` and waits, blocking, until their tasks have finished
    /// what they hold; tasks still busy at `deadline` are aborted. Called from the rebalance
    /// callback, inside the consumer's poll.
    pub fn drain(&self, partitions: &[i32], deadline: Duration) {
        let slots: Vec<(i32, Slot)> = {
            let mut all = self.slots();
            partitions
                .iter()
                .filter_map(|p| all.remove(p).map(|s| (*p, s)))
                .collect()
        };
        if slots.is_empty() {
            return;
        }
        let wait = || {
            let until = Instant::now() + deadline;
            for (p, slot) in slots {
                drop(slot.tx);
                let left = until.saturating_duration_since(Instant::now());
                if let Err(std_mpsc::RecvTimeoutError::Timeout) = slot.done.recv_timeout(left) {
                    tracing::error!(partition = p, "Revoked partition did not drain in time; aborting its task. Its unacknowledged input will be re-read by the new owner.");
                    slot.handle.abort();
                }
            }
        };
        // The wait blocks this runtime thread; let the runtime move its other work elsewhere.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    /// Closes every queue and returns the task handles to await: shutdown.
    pub fn close_all(&self) -> Vec<JoinHandle<()>> {
        *self.ctx.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.slots().drain().map(|(_, s)| s.handle).collect()
    }
}
