//! librdkafka's own log lines, into `tracing` under the target `librdkafka`. Its errors are
//! the client's to retry (a broker unreachable for a moment), so they arrive as warnings;
//! what retrying cannot fix is reported by [`crate::clients::Guard`] as an ERROR of Pulse's.

use rdkafka::config::RDKafkaLogLevel;

pub(crate) fn forward(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}
