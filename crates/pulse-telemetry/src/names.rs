//! Metric names, so dashboards, alerts and tests refer to the same strings.

pub const INPUT_RECORDS: &str = "pulse_input_records_total";
pub const INPUT_EVENTS: &str = "pulse_input_events_total";
pub const DEAD_LETTERS: &str = "pulse_dead_letters_total";
pub const LATE_RECORDS: &str = "pulse_late_records_total";
pub const OUTPUT_EVENTS: &str = "pulse_output_events_total";
pub const PRODUCE_ERRORS: &str = "pulse_produce_errors_total";
pub const TRANSACTIONS: &str = "pulse_transactions_total";
pub const REPARTITIONED_RECORDS: &str = "pulse_repartitioned_records_total";
pub const BATCH_SIZE: &str = "pulse_batch_size";
pub const PROCESSING_SECONDS: &str = "pulse_batch_processing_seconds";
pub const WATERMARK_LAG: &str = "pulse_watermark_lag_seconds";
pub const CUSTOMERS: &str = "pulse_customers";
pub const TIMERS_PENDING: &str = "pulse_timers_pending";
pub const ASSIGNED_PARTITIONS: &str = "pulse_assigned_partitions";
pub const REBALANCES: &str = "pulse_rebalances_total";
pub const COMMITS: &str = "pulse_offset_commits_total";
pub const READY: &str = "pulse_ready";
pub const CHANGELOG_RECORDS: &str = "pulse_changelog_records_total";
pub const CHANGELOG_BYTES: &str = "pulse_changelog_bytes_total";
pub const EVICTED: &str = "pulse_evicted_customers_total";
pub const RESTORED_PROFILES: &str = "pulse_restore_profiles_total";
pub const RESTORED_BYTES: &str = "pulse_restore_bytes_total";
pub const RESTORE_SECONDS: &str = "pulse_restore_seconds";
pub const RESTORING_PARTITIONS: &str = "pulse_restoring_partitions";
pub const SKIPPED_RECORDS: &str = "pulse_restore_skipped_records_total";
pub const MERGE_FORCED: &str = "pulse_merge_forced_total";
pub const HELD_BYTES: &str = "pulse_partition_held_bytes";
pub const EVENT_TO_OUTPUT: &str = "pulse_event_to_output_seconds";
pub const EVENT_TO_OUTPUT_EXACT: &str = "pulse_event_to_output_exact_seconds";
pub const CONSUMER_LAG: &str = "pulse_consumer_lag_records";
pub const SEGMENT_MEMBERS: &str = "pulse_segment_members";
pub const SEGMENT_TRANSITIONS: &str = "pulse_segment_transitions_total";
pub const CHURN_RISK_CUSTOMERS: &str = "pulse_churn_risk_customers";
pub const RFM_SEGMENT_CUSTOMERS: &str = "pulse_rfm_segment_customers";
pub const FUNNEL_STEPS: &str = "pulse_funnel_steps_reached_total";
pub const FUNNEL_CONVERSIONS: &str = "pulse_funnel_conversions_total";
pub const FUNNEL_ABANDONMENTS: &str = "pulse_funnel_abandonments_total";
pub const SURVEY_SCORE: &str = "pulse_survey_score";
pub const SURVEY_ANSWERS: &str = "pulse_survey_answers";
/// Registered by the `prometheus` crate's process collector (Linux).
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";

/// Every name above.
pub const ALL: [&str; 42] = [
    INPUT_RECORDS,
    INPUT_EVENTS,
    DEAD_LETTERS,
    LATE_RECORDS,
    OUTPUT_EVENTS,
    PRODUCE_ERRORS,
    TRANSACTIONS,
    REPARTITIONED_RECORDS,
    BATCH_SIZE,
    PROCESSING_SECONDS,
    WATERMARK_LAG,
    CUSTOMERS,
    TIMERS_PENDING,
    ASSIGNED_PARTITIONS,
    REBALANCES,
    COMMITS,
    READY,
    CHANGELOG_RECORDS,
    CHANGELOG_BYTES,
    EVICTED,
    RESTORED_PROFILES,
    RESTORED_BYTES,
    RESTORE_SECONDS,
    RESTORING_PARTITIONS,
    SKIPPED_RECORDS,
    MERGE_FORCED,
    HELD_BYTES,
    EVENT_TO_OUTPUT,
    EVENT_TO_OUTPUT_EXACT,
    CONSUMER_LAG,
    SEGMENT_MEMBERS,
    SEGMENT_TRANSITIONS,
    CHURN_RISK_CUSTOMERS,
    RFM_SEGMENT_CUSTOMERS,
    FUNNEL_STEPS,
    FUNNEL_CONVERSIONS,
    FUNNEL_ABANDONMENTS,
    SURVEY_SCORE,
    SURVEY_ANSWERS,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_CPU,
    PROCESS_OPEN_FDS,
];
