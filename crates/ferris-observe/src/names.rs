//! The names of every metric FerrisStreams records. Labels are given per name.

/// Rows a source decoded successfully. Labels: `source`.
pub const SOURCE_ROWS_READ: &str = "ferris_source_rows_read_total";
/// Batches a source emitted. Labels: `source`.
pub const SOURCE_BATCHES: &str = "ferris_source_batches_total";
/// Input rows a source could not decode (each query applies its strategy). Labels: `source`.
pub const SOURCE_ROWS_REJECTED: &str = "ferris_source_rows_rejected_total";
/// Rows into an operator. Labels: `query`, `operator`.
pub const OPERATOR_ROWS_IN: &str = "ferris_operator_rows_in_total";
/// Rows out of an operator. Labels: `query`, `operator`.
pub const OPERATOR_ROWS_OUT: &str = "ferris_operator_rows_out_total";
/// Batches processed by an operator. Labels: `query`, `operator`.
pub const OPERATOR_BATCHES: &str = "ferris_operator_batches_total";
/// Rows an operator could not evaluate (skipped or dead-lettered). Labels: `query`, `operator`.
pub const OPERATOR_ERRORS: &str = "ferris_operator_row_errors_total";
/// Nanoseconds spent processing one batch. Labels: `query`, `operator`.
pub const OPERATOR_PROCESSING_NANOS: &str = "ferris_operator_processing_nanoseconds";
/// Rows queued in a channel now (gauge; max is the high-water mark). Labels: `channel`.
pub const CHANNEL_DEPTH_ROWS: &str = "ferris_channel_depth_rows";
/// A channel's capacity in rows (gauge). Labels: `channel`.
pub const CHANNEL_CAPACITY_ROWS: &str = "ferris_channel_capacity_rows";
/// Nanoseconds senders spent waiting on a full channel. Labels: `channel`.
pub const CHANNEL_BLOCKED_NANOS: &str = "ferris_channel_send_blocked_nanoseconds_total";
/// Sends that found a channel full and had to wait (backpressure events). Labels: `channel`.
pub const CHANNEL_BLOCKED_SENDS: &str = "ferris_channel_send_blocked_total";
/// Times a channel's depth rose to 90% of its capacity or more. Labels: `channel`.
pub const CHANNEL_HIGH_WATER_EVENTS: &str = "ferris_channel_high_water_events_total";
/// Nanoseconds the receiver spent waiting on an empty channel. Labels: `channel`.
pub const CHANNEL_RECV_WAIT_NANOS: &str = "ferris_channel_receive_wait_nanoseconds_total";
/// Rows per batch an operator chain received (histogram). Labels: `query`, `operator`.
pub const OPERATOR_BATCH_ROWS: &str = "ferris_operator_batch_rows";
/// Messages sent through a channel. Labels: `channel`.
pub const CHANNEL_MESSAGES: &str = "ferris_channel_messages_total";
/// Rows a sink received. Labels: `query`, `sink`.
pub const SINK_ROWS_IN: &str = "ferris_sink_rows_in_total";
/// Rows a sink wrote durably (after flush). Labels: `query`, `sink`.
pub const SINK_ROWS_WRITTEN: &str = "ferris_sink_rows_written_total";
/// Rows a sink failed to write after every retry (skipped). Labels: `query`, `sink`.
pub const SINK_ROWS_FAILED: &str = "ferris_sink_rows_failed_total";
/// Rows a sink failed to write and sent to the dead-letter sink. Labels: `query`, `sink`.
pub const SINK_ROWS_DEAD_LETTERED: &str = "ferris_sink_rows_dead_lettered_total";
/// Write retries a sink made. Labels: `query`, `sink`.
pub const SINK_RETRIES: &str = "ferris_sink_write_retries_total";
/// Nanoseconds from a batch's source read to its sink write. Labels: `query`.
pub const END_TO_END_LATENCY_NANOS: &str = "ferris_batch_end_to_end_latency_nanoseconds";
/// Records written to a dead-letter sink. Labels: `path`.
pub const DEAD_LETTER_RECORDS: &str = "ferris_dead_letter_records_total";
/// Rows a query received: decoded rows plus rows its source rejected. Labels: `query`.
pub const QUERY_ROWS_IN: &str = "ferris_query_rows_in_total";
/// Rows a query's WHERE clause removed. Labels: `query`.
pub const QUERY_ROWS_FILTERED: &str = "ferris_query_rows_filtered_total";
/// Rows a query skipped under the `skip` strategy. Labels: `query`, `stage` (decode, evaluate).
pub const QUERY_ROWS_SKIPPED: &str = "ferris_query_rows_skipped_total";
/// Rows a query sent to the dead-letter sink. Labels: `query`, `stage` (decode, evaluate).
pub const QUERY_ROWS_DEAD_LETTERED: &str = "ferris_query_rows_dead_lettered_total";
/// Counter: rows whose event time was below the source watermark when they arrived
/// (labels: source).
pub const SOURCE_ROWS_LATE: &str = "ferris_source_rows_late_total";
/// Gauge: the source watermark in epoch milliseconds (labels: source).
pub const SOURCE_WATERMARK_MS: &str = "ferris_source_watermark_milliseconds";
/// Counter: late rows a query dropped from its event-time operators (labels: query).
pub const QUERY_ROWS_LATE: &str = "ferris_query_rows_late_total";
/// Counter: rows that entered a query's stateful stage (aggregation, OVER, join) (labels:
/// query).
pub const QUERY_ROWS_INTO_STATE: &str = "ferris_query_rows_into_state_total";
/// Gauge: entries held by a stateful operator (labels: query, operator, partition).
pub const OPERATOR_STATE_ROWS: &str = "ferris_operator_state_rows";
/// Gauge: approximate bytes held by a stateful operator (labels: query, operator, partition).
pub const OPERATOR_STATE_BYTES: &str = "ferris_operator_state_bytes";
/// Gauge: queries whose window state one shared operator holds (`'state.share'`) (labels:
/// query, the shared operator's hidden query; share). Running them apart would hold that
/// many times its entries.
pub const SHARED_STATE_QUERIES: &str = "ferris_shared_state_queries";
/// Gauge: rows (distinct keys) of a loaded table (labels: table).
pub const TABLE_ROWS: &str = "ferris_table_rows";
/// Positions a source committed (Kafka offsets to its consumer group), by source.
pub const SOURCE_COMMITS: &str = "ferris_source_commits_total";
/// Commits that failed or were skipped (retried at the next commit point), by source.
pub const SOURCE_COMMIT_FAILURES: &str = "ferris_source_commit_failures_total";
/// Times a source paused its input because its pipelines were full (backpressure).
pub const SOURCE_PAUSES: &str = "ferris_source_pauses_total";
/// Per source partition: messages beyond what the source read (Kafka consumer lag).
pub const SOURCE_LAG: &str = "ferris_source_lag_messages";
/// Times a source reported it could not read for a passing reason (a broker unreachable).
pub const SOURCE_UNAVAILABLE: &str = "ferris_source_unavailable_total";

/// Batches that reached a sink. Labels: `query`.
pub const TRACE_BATCHES: &str = "ferris_trace_batches_total";
/// Of those, batches that carried their source batch's trace context end to end (a stage's
/// own results without an input batch start a new trace). Labels: `query`.
pub const TRACE_BATCHES_CORRELATED: &str = "ferris_trace_batches_correlated_total";

/// A one-line description of metric `name` (the `# HELP` text of the exposition); empty for
/// a name not listed here.
pub fn help(name: &str) -> &'static str {
    HELP.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .unwrap_or("")
}

/// Every metric name with its description.
pub const HELP: &[(&str, &str)] = &[
    (TRACE_BATCHES, "Batches that reached a sink."),
    (
        TRACE_BATCHES_CORRELATED,
        "Batches that reached a sink carrying their source batch's trace context end to end.",
    ),
    (SOURCE_ROWS_READ, "Rows a source decoded successfully."),
    (SOURCE_BATCHES, "Batches a source emitted."),
    (
        SOURCE_ROWS_REJECTED,
        "Input rows a source could not decode (each query applies its strategy).",
    ),
    (OPERATOR_ROWS_IN, "Rows into an operator."),
    (OPERATOR_ROWS_OUT, "Rows out of an operator."),
    (OPERATOR_BATCHES, "Batches processed by an operator."),
    (
        OPERATOR_ERRORS,
        "Rows an operator could not evaluate (skipped or dead-lettered).",
    ),
    (
        OPERATOR_PROCESSING_NANOS,
        "Nanoseconds spent processing one batch.",
    ),
    (
        CHANNEL_DEPTH_ROWS,
        "Rows queued in a channel now (gauge; max is the high-water mark).",
    ),
    (
        CHANNEL_CAPACITY_ROWS,
        "A channel's capacity in rows (gauge).",
    ),
    (
        CHANNEL_BLOCKED_NANOS,
        "Nanoseconds senders spent waiting on a full channel.",
    ),
    (
        CHANNEL_BLOCKED_SENDS,
        "Sends that found a channel full and had to wait (backpressure events).",
    ),
    (
        CHANNEL_HIGH_WATER_EVENTS,
        "Times a channel's depth rose to 90% of its capacity or more.",
    ),
    (
        CHANNEL_RECV_WAIT_NANOS,
        "Nanoseconds the receiver spent waiting on an empty channel.",
    ),
    (
        OPERATOR_BATCH_ROWS,
        "Rows per batch an operator chain received (histogram).",
    ),
    (CHANNEL_MESSAGES, "Messages sent through a channel."),
    (SINK_ROWS_IN, "Rows a sink received."),
    (
        SINK_ROWS_WRITTEN,
        "Rows a sink wrote durably (after flush).",
    ),
    (
        SINK_ROWS_FAILED,
        "Rows a sink failed to write after every retry (skipped).",
    ),
    (
        SINK_ROWS_DEAD_LETTERED,
        "Rows a sink failed to write and sent to the dead-letter sink.",
    ),
    (SINK_RETRIES, "Write retries a sink made."),
    (
        END_TO_END_LATENCY_NANOS,
        "Nanoseconds from a batch's source read to its sink write.",
    ),
    (
        DEAD_LETTER_RECORDS,
        "Records written to a dead-letter sink.",
    ),
    (
        QUERY_ROWS_IN,
        "Rows a query received: decoded rows plus rows its source rejected.",
    ),
    (QUERY_ROWS_FILTERED, "Rows a query's WHERE clause removed."),
    (
        QUERY_ROWS_SKIPPED,
        "Rows a query skipped under the skip strategy.",
    ),
    (
        QUERY_ROWS_DEAD_LETTERED,
        "Rows a query sent to the dead-letter sink.",
    ),
    (
        SOURCE_ROWS_LATE,
        "Rows whose event time was below the source watermark when they arrived.",
    ),
    (
        SOURCE_WATERMARK_MS,
        "The source watermark in epoch milliseconds.",
    ),
    (
        QUERY_ROWS_LATE,
        "Late rows a query dropped from its event-time operators.",
    ),
    (
        QUERY_ROWS_INTO_STATE,
        "Rows that entered a query's stateful stage (aggregation, OVER, join).",
    ),
    (OPERATOR_STATE_ROWS, "Entries held by a stateful operator."),
    (
        OPERATOR_STATE_BYTES,
        "Approximate bytes held by a stateful operator.",
    ),
    (
        SHARED_STATE_QUERIES,
        "Queries whose window state one shared operator holds.",
    ),
    (TABLE_ROWS, "Rows (distinct keys) of a loaded table."),
    (
        SOURCE_COMMITS,
        "Positions a source committed (Kafka offsets to its consumer group), by source.",
    ),
    (
        SOURCE_COMMIT_FAILURES,
        "Commits that failed or were skipped (retried at the next commit point), by source.",
    ),
    (
        SOURCE_PAUSES,
        "Times a source paused its input because its pipelines were full (backpressure).",
    ),
    (
        SOURCE_LAG,
        "Per source partition: messages beyond what the source read (Kafka consumer lag).",
    ),
    (
        SOURCE_UNAVAILABLE,
        "Times a source reported it could not read for a passing reason (a broker unreachable).",
    ),
];
