//! The table of running partition tasks, shared by the consumer loop, which feeds them, and the
//! rebalance callback, which drains revoked ones: a revoked partition's in-flight records are
//! finished, their outputs and changelog acknowledged and their offsets stored before the
//! partition may move to another worker.

use crate::context::PartitionTasks;
use crate::ctx::{input_index, TaskCtx};
use crate::flow::Dispatched;
use crate::flow::Fetched;
use crate::held::Held;
pub(crate) use crate::held::Lane;
use crate::restoring::Restoring;
use crate::task;
use rdkafka::message::{Message, OwnedMessage};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::Instrument;

/// What became of a record offered to its partition's task.
pub(crate) enum Offer {
    Queued,
    /// The task's queue is full, or the task holds `worker.queue_bytes` of the lane: the record
    /// waits in the slot. `first`: the lane just filled, so fetching its topics of the partition
    /// should pause until [`Tasks::flush`] finds room again.
    Parked {
        first: bool,
        lane: Lane,
    },
    /// The task has ended.
    Closed,
    /// The worker is shutting down.
    Stopping,
}

/// One queue of a task.
struct Queue {
    tx: mpsc::Sender<Fetched>,
    /// Records polled while the lane was paused (fetched before the pause took effect), in
    /// order.
    overflow: VecDeque<Fetched>,
    /// The lane's fetching is paused: its queue filled, or the task held its bytes' bound.
    paused: bool,
}

struct Slot {
    queues: [Queue; 2],
    held: Arc<Held>,
    dispatched: Dispatched,
    /// Disconnects when the task has returned.
    done: std_mpsc::Receiver<()>,
    /// Aborts the task itself.
    abort: AbortHandle,
    /// Ends when the task has: the watcher that reports its panic.
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

    fn ctx(&self) -> Option<Arc<TaskCtx>> {
        self.ctx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn slot<'a>(slots: &'a mut HashMap<i32, Slot>, ctx: &Arc<TaskCtx>, p: i32) -> &'a mut Slot {
        slots.entry(p).or_insert_with(|| {
            let restoring = Restoring::start(&ctx.health, &ctx.metrics.restoring_partitions);
            let capacity = ctx.worker.queue_capacity.max(1);
            let (own, own_rx) = mpsc::channel(capacity);
            let (forwarded, forwarded_rx) = mpsc::channel(capacity);
            let (done_tx, done) = std_mpsc::channel();
            let dispatched: Dispatched = Arc::new(std::array::from_fn(|_| AtomicI64::new(-1)));
            // Every log line of the task carries its partition through this span.
            let span = tracing::info_span!("partition", partition = p);
            let task = tokio::spawn(
                task::run(
                    p,
                    [own_rx, forwarded_rx],
                    dispatched.clone(),
                    ctx.clone(),
                    restoring,
                    done_tx,
                )
                .instrument(span),
            );
            let abort = task.abort_handle();
            let handle = tokio::spawn(watch(p, task, ctx.clone()));
            let queue = |tx| Queue {
                tx,
                overflow: VecDeque::new(),
                paused: false,
            };
            let gauge = ctx.metrics.held_bytes.with_label_values(&[&p.to_string()]);
            Slot {
                queues: [queue(own), queue(forwarded)],
                held: Held::new(ctx.worker.queue_bytes.0 as usize, gauge),
                dispatched,
                done,
                abort,
                handle,
            }
        })
    }

    /// Hands a polled record to its partition's task, starting the task if needed. A full lane
    /// does not block the caller: the record waits in the slot and the caller pauses the lane,
    /// so one slow partition does not stop the records of the others (whose tasks may be
    /// waiting for them to keep event-time order).
    pub fn offer(&self, p: i32, msg: OwnedMessage, at: Instant) -> Offer {
        let Some(ctx) = self.ctx() else {
            return Offer::Stopping;
        };
        let mut slots = self.slots();
        let slot = Self::slot(&mut slots, &ctx, p);
        let index = input_index(&ctx.topics, msg.topic());
        if let Some(i) = index {
            slot.dispatched[i].store(msg.offset() + 1, Ordering::SeqCst);
        }
        let lane = if index == Some(crate::changelog::REPARTITION) {
            Lane::Forwarded
        } else {
            Lane::Own
        };
        let fetched = Fetched {
            charge: slot.held.charge(lane, &msg),
            msg,
            at,
        };
        let queue = &mut slot.queues[lane as usize];
        if queue.paused {
            queue.overflow.push_back(fetched);
            return Offer::Parked { first: false, lane };
        }
        let full = slot.held.full(lane);
        match queue.tx.try_send(fetched) {
            // The lane's bound counts this record: it is queued, and the next ones wait.
            Ok(()) if !full => Offer::Queued,
            Ok(()) => {
                queue.paused = true;
                Offer::Parked { first: true, lane }
            }
            Err(mpsc::error::TrySendError::Full(f)) => {
                queue.overflow.push_back(f);
                queue.paused = true;
                Offer::Parked { first: true, lane }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Whether any partition has a lane paused.
    pub fn parked(&self) -> bool {
        self.slots()
            .values()
            .any(|s| s.queues.iter().any(|q| q.paused))
    }

    /// Moves waiting records into their queues as room allows; returns the partitions and
    /// lanes to resume: their overflow emptied and their task holds less than its bound. The
    /// overflow moves on whatever the task holds: its records are counted already, and one of
    /// them may be what the task waits for to apply the rest.
    pub fn flush(&self) -> Vec<(i32, Lane)> {
        let mut resumed = Vec::new();
        for (p, slot) in self.slots().iter_mut() {
            for (queue, lane) in slot.queues.iter_mut().zip([Lane::Own, Lane::Forwarded]) {
                if !queue.paused {
                    continue;
                }
                while let Some(f) = queue.overflow.pop_front() {
                    match queue.tx.try_send(f) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(f)) => {
                            queue.overflow.push_front(f);
                            break;
                        }
                        // The task ended; the consumer loop learns it at the next offer.
                        Err(mpsc::error::TrySendError::Closed(_)) => queue.overflow.clear(),
                    }
                }
                if queue.overflow.is_empty() && !slot.held.full(lane) {
                    queue.paused = false;
                    resumed.push((*p, lane));
                }
            }
        }
        resumed
    }

    /// Closes every queue and returns, per task, what to await and how to abort it: shutdown.
    pub fn close_all(&self) -> Vec<(JoinHandle<()>, AbortHandle)> {
        *self.ctx.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.slots()
            .drain()
            .map(|(_, s)| (s.handle, s.abort))
            .collect()
    }
}

impl PartitionTasks for Tasks {
    /// Starts partition `p`'s task (and its restore) if it is not running. Must be called from
    /// within the runtime.
    fn start(&self, p: i32) {
        let Some(ctx) = self.ctx() else { return };
        Self::slot(&mut self.slots(), &ctx, p);
    }

    /// Whether partition `p` has a task.
    fn running(&self, p: i32) -> bool {
        self.slots().contains_key(&p)
    }

    /// Closes the queues of `partitions` and waits, blocking, until their tasks have finished
    /// what they hold; tasks still busy at `deadline` are aborted. Called from the rebalance
    /// callback, inside the consumer's poll.
    fn drain(&self, partitions: &[i32], deadline: Duration) {
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
                drop(slot.queues);
                let left = until.saturating_duration_since(Instant::now());
                if let Err(std_mpsc::RecvTimeoutError::Timeout) = slot.done.recv_timeout(left) {
                    tracing::error!(partition = p, "Revoked partition did not drain in time; aborting its task. Its unacknowledged input will be re-read by the new owner.");
                    slot.abort.abort();
                }
            }
        };
        // The wait blocks this runtime thread; let the runtime move its other work elsewhere.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

/// Waits for partition `p`'s task; a panic there is a bug, and it stops the worker with an
/// error naming the partition, so the process exits non-zero (a supervisor restarts it) after
/// the other partitions were drained. Left alone, the worker would run on without the
/// partition, or stop with status 0 when its queue was found closed.
async fn watch(p: i32, task: JoinHandle<()>, ctx: Arc<TaskCtx>) {
    let Err(e) = task.await else { return };
    if !e.is_panic() {
        return; // aborted: revoked past the drain deadline, or shut down
    }
    let panic = e.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(partition = p, panic = %message, "Partition task panicked; stopping the worker.");
    ctx.fail(crate::KafkaError::TaskPanicked {
        partition: p,
        message,
    });
}
