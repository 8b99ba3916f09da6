//! Which worker holds a partition this worker does not, for the query API's 404s: read from
//! the newest checkpoint in the partition's changelog, and kept for a few seconds, so a loop
//! of requests for customers held elsewhere costs one lookup per partition and interval, not a
//! Kafka consumer per request.

use pulse_kafka::{partition_owner, KafkaConfig};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a found owner is answered without looking again. A partition that moved is named
/// under its previous owner for at most this long, which then points on in turn.
const KEEP: Duration = Duration::from_secs(5);
/// How long one lookup may take: it creates a consumer and reads the partition's last records.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Owners {
    kafka: KafkaConfig,
    found: Mutex<HashMap<i32, (Instant, String)>>,
}

impl Owners {
    pub fn new(kafka: KafkaConfig) -> Self {
        Self {
            kafka,
            found: Mutex::new(HashMap::new()),
        }
    }

    /// The `http.advertise` URL of the worker that last wrote `partition`'s changelog, if any
    /// names one. Blocking: call it on a blocking thread.
    pub fn owner(&self, partition: i32) -> Option<String> {
        let kept = self.lock().get(&partition).cloned();
        if let Some((_, owner)) = kept.filter(|(at, _)| at.elapsed() < KEEP) {
            return Some(owner);
        }
        let owner = partition_owner(&self.kafka, partition, LOOKUP_TIMEOUT)
            .ok()
            .flatten()?;
        self.lock()
            .insert(partition, (Instant::now(), owner.clone()));
        Some(owner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (Instant, String)>> {
        self.found.lock().unwrap_or_else(|e| e.into_inner())
    }
}
