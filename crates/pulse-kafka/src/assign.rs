//! Where a newly assigned partition starts fetching, decided before librdkafka gets the
//! assignment.
//!
//! Given an assignment without offsets, librdkafka looks the group's committed offsets up
//! itself and starts each partition's fetcher when the answer comes, on its own thread, at a
//! moment the application cannot see. Starting a fetcher takes a version barrier first and
//! queues the start after; a pause, resume or seek the application queues in between carries
//! a newer version, and the start, outdated by it, is dropped with nothing to retry it
//! (librdkafka 2.12, `rd_kafka_toppar_op_fetch_start` in `rdkafka_partition.c`). The partition
//! stays assigned and is never fetched, and its task waits on it for good. Pulse pauses every
//! new partition while its state restores, then seeks and resumes it, so a restore as quick as
//! the lookup can land in that window.
//!
//! Assigned with a start offset, librdkafka starts the fetchers before the assign call returns,
//! so every pause, resume and seek Pulse makes comes after. The committed offsets are looked up
//! here, in the rebalance callback; a partition without one starts where
//! `kafka.auto_offset_reset` says, as librdkafka would have chosen. A partition whose commit
//! cannot be read (the lookup failed, or a pending transaction still holds its offset) is
//! left to librdkafka's own lookup.

use crate::config::OffsetReset;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// How long the rebalance callback waits for the committed offsets before leaving the lookup
/// to librdkafka.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// `tpl` with each partition's start offset: its committed offset, or the reset policy's end
/// where the group has none. Partitions whose commit could not be read keep no offset.
pub(crate) fn start_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    reset: OffsetReset,
) -> TopicPartitionList {
    let committed = match consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "Committed offsets not read at assignment; librdkafka looks them up itself.");
            return tpl.clone();
        }
    };
    let mut out = TopicPartitionList::new();
    for e in tpl.elements() {
        let found = committed.find_partition(e.topic(), e.partition());
        let start = match found.as_ref().map(|c| (c.error(), c.offset())) {
            Some((Ok(()), Offset::Offset(o))) => Offset::Offset(o),
            Some((Ok(()), _)) => match reset {
                OffsetReset::Earliest => Offset::Beginning,
                OffsetReset::Latest => Offset::End,
            },
            Some((Err(err), _)) => {
                tracing::debug!(error = %err, topic = e.topic(), partition = e.partition(), "Committed offset not read at assignment; librdkafka looks it up itself.");
                Offset::Invalid
            }
            None => Offset::Invalid,
        };
        if out
            .add_partition_offset(e.topic(), e.partition(), start)
            .is_err()
        {
            out.add_partition(e.topic(), e.partition());
        }
    }
    out
}

/// The consumer's rebalance: rdkafka's own, with the start offsets resolved before the
/// assignment is handed over (see the module comment).
pub(crate) fn rebalance<C: ConsumerContext>(
    ctx: &C,
    consumer: &BaseConsumer<C>,
    err: RDKafkaRespErr,
    tpl: &mut TopicPartitionList,
    reset: OffsetReset,
) {
    let cooperative = matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    );
    let done = match err {
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
            let started = start_offsets(consumer, tpl, reset);
            ctx.pre_rebalance(consumer, &Rebalance::Assign(&started));
            let done = if cooperative {
                consumer.incremental_assign(&started)
            } else {
                consumer.assign(&started)
            };
            ctx.post_rebalance(consumer, &Rebalance::Assign(&started));
            done
        }
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
            ctx.pre_rebalance(consumer, &Rebalance::Revoke(tpl));
            let done = if cooperative {
                consumer.incremental_unassign(tpl)
            } else {
                consumer.unassign()
            };
            ctx.post_rebalance(consumer, &Rebalance::Revoke(tpl));
            done
        }
        other => {
            let code: RDKafkaErrorCode = other.into();
            let failed = Rebalance::Error(KafkaError::Rebalance(code));
            ctx.pre_rebalance(consumer, &failed);
            // As rdkafka does: an unexpected rebalance event drops the assignment, and the
            // group assigns again.
            let done = if cooperative {
                consumer.incremental_unassign(tpl)
            } else {
                consumer.unassign()
            };
            ctx.post_rebalance(consumer, &failed);
            done
        }
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "Applying the group's assignment failed; the group will rebalance again.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedCluster;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::CommitMode;
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientContext;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    const PARTITIONS: i32 = 3;
    const RECORDS: i64 = 10;
    /// Where the group committed partition 0; the others it never committed.
    const COMMITTED: i64 = 4;

    /// A consumer that pauses its new partitions in the rebalance callback and has another
    /// thread resume them shortly after, as Pulse's tasks do once restored.
    struct Pausing {
        consumer: Mutex<Option<Arc<BaseConsumer<Pausing>>>>,
    }

    impl ClientContext for Pausing {}

    impl ConsumerContext for Pausing {
        fn rebalance(
            &self,
            consumer: &BaseConsumer<Self>,
            err: RDKafkaRespErr,
            tpl: &mut TopicPartitionList,
        ) {
            rebalance(self, consumer, err, tpl, OffsetReset::Earliest);
        }

        fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
            if let Rebalance::Assign(tpl) = rebalance {
                consumer.pause(tpl).expect("paused");
                let tpl = (*tpl).clone();
                let shared = self.consumer.lock().unwrap().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    if let Some(c) = shared {
                        c.resume(&tpl).expect("resumed");
                    }
                });
            }
        }
    }

    fn config(bootstrap: &str, group: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        c
    }

    /// A topic of ten records per partition, and a group that committed partition 0 at 4.
    fn cluster(topic: &str, group: &str) -> EmbeddedCluster {
        let cluster = EmbeddedCluster::start(1, &[(topic, PARTITIONS)]).expect("cluster");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .expect("producer");
        for p in 0..PARTITIONS {
            for i in 0..RECORDS {
                let payload = format!("{p}-{i}");
                producer
                    .send(
                        BaseRecord::<(), _>::to(topic)
                            .payload(&payload)
                            .partition(p),
                    )
                    .expect("queued");
            }
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
        let committer: BaseConsumer = config(cluster.bootstrap_servers(), group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(COMMITTED))
            .expect("offset");
        committer.commit(&tpl, CommitMode::Sync).expect("committed");
        cluster
    }

    fn all(topic: &str) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(topic, p);
        }
        tpl
    }

    /// A committed partition starts at its commit; the others where the reset policy says.
    #[test]
    fn a_partition_starts_at_its_commit_or_where_the_reset_policy_says() {
        let (topic, group) = ("start-offsets", "start-offsets-group");
        let cluster = cluster(topic, group);
        let consumer: BaseConsumer = config(cluster.bootstrap_servers(), group)
            .create()
            .expect("consumer");
        let starts = |reset| -> Vec<Offset> {
            let tpl = start_offsets(&consumer, &all(topic), reset);
            tpl.elements().iter().map(|e| e.offset()).collect()
        };
        assert_eq!(
            starts(OffsetReset::Earliest),
            [
                Offset::Offset(COMMITTED),
                Offset::Beginning,
                Offset::Beginning
            ]
        );
        assert_eq!(
            starts(OffsetReset::Latest),
            [Offset::Offset(COMMITTED), Offset::End, Offset::End]
        );
    }

    /// Through a group subscription, with the partitions paused in the rebalance callback and
    /// resumed from another thread: every partition is read from where it starts to its end.
    #[test]
    fn assigned_partitions_paused_and_resumed_read_from_their_start_to_their_end() {
        let (topic, group) = ("assign-pause-resume", "assign-pause-resume-group");
        let cluster = cluster(topic, group);
        let consumer: Arc<BaseConsumer<Pausing>> = Arc::new(
            config(cluster.bootstrap_servers(), group)
                .create_with_context(Pausing {
                    consumer: Mutex::new(None),
                })
                .expect("consumer"),
        );
        *consumer.context().consumer.lock().unwrap() = Some(consumer.clone());
        consumer.subscribe(&[topic]).expect("subscribed");
        let mut first = vec![None; PARTITIONS as usize];
        let mut count = vec![0; PARTITIONS as usize];
        let want = [RECORDS - COMMITTED, RECORDS, RECORDS];
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && count != want {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let p = m.partition() as usize;
                first[p].get_or_insert(m.offset());
                count[p] += 1;
            }
        }
        *consumer.context().consumer.lock().unwrap() = None;
        assert_eq!(count, want);
        assert_eq!(first, [Some(COMMITTED), Some(0), Some(0)]);
    }

    /// Counts the assignments a consumer's rebalance completed.
    struct Counting {
        assigned: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ClientContext for Counting {}

    impl ConsumerContext for Counting {
        fn rebalance(
            &self,
            consumer: &BaseConsumer<Self>,
            err: RDKafkaRespErr,
            tpl: &mut TopicPartitionList,
        ) {
            rebalance(self, consumer, err, tpl, OffsetReset::Earliest);
        }

        fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
            if let Rebalance::Assign(tpl) = rebalance {
                consumer.pause(tpl).expect("paused");
                consumer.resume(tpl).expect("resumed");
                self.assigned
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// A member that joins and leaves the group again and again: each time both members
    /// complete the new assignment, the commit look-up in the callback never holds one up.
    #[test]
    fn every_rebalance_completes_while_members_come_and_go() {
        let (topic, group) = ("assign-churn", "assign-churn-group");
        let cluster = cluster(topic, group);
        let member = |assigned: &Arc<std::sync::atomic::AtomicUsize>| -> BaseConsumer<Counting> {
            let c: BaseConsumer<Counting> = config(cluster.bootstrap_servers(), group)
                .set("session.timeout.ms", "6000")
                .create_with_context(Counting {
                    assigned: assigned.clone(),
                })
                .expect("consumer");
            c.subscribe(&[topic]).expect("subscribed");
            c
        };
        let stays = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let comes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let staying = member(&stays);
        let wait_for = |consumers: &[&BaseConsumer<Counting>], done: &dyn Fn() -> bool| {
            let until = Instant::now() + Duration::from_secs(60);
            while !done() {
                assert!(Instant::now() < until, "a rebalance did not complete");
                for c in consumers {
                    let _ = c.poll(Duration::from_millis(20));
                }
            }
        };
        let count =
            |a: &Arc<std::sync::atomic::AtomicUsize>| a.load(std::sync::atomic::Ordering::SeqCst);
        wait_for(&[&staying], &|| count(&stays) >= 1);
        for round in 1..=4 {
            let before = count(&stays);
            let coming = member(&comes);
            wait_for(&[&staying, &coming], &|| {
                count(&comes) >= round && count(&stays) > before
            });
            let before = count(&stays);
            coming.unsubscribe();
            drop(coming);
            wait_for(&[&staying], &|| count(&stays) > before);
        }
    }
}
