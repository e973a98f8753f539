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
