//! Job errors, split by fault, and the per-query error strategy.

use std::fmt;
use std::str::FromStr;

/// Defines an error type that is a message plus, optionally, the error it came from (kept
/// for `std::error::Error::source`): `new(message)`, `from_cause(cause)` and
/// `caused_by(context, cause)` (message `context: cause`). Two such errors are equal when
/// their messages are.
macro_rules! error_with_cause {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            /// What went wrong, with its context.
            pub message: String,
            /// The error of the library or system call that failed (I/O, Kafka client,
            /// Arrow, DataFusion).
            pub cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
        }

        impl $name {
            /// An error with this message and no underlying cause.
            pub fn new(message: impl Into<String>) -> Self {
                $name {
                    message: message.into(),
                    cause: None,
                }
            }

            /// The error `cause` (its message, and itself as the source).
            pub fn from_cause(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
                $name {
                    message: cause.to_string(),
                    cause: Some(std::sync::Arc::new(cause)),
                }
            }

            /// `context: cause`, keeping `cause` as the error's source.
            pub fn caused_by(
                context: impl std::fmt::Display,
                cause: impl std::error::Error + Send + Sync + 'static,
            ) -> Self {
                $name {
                    message: format!("{context}: {cause}"),
                    cause: Some(std::sync::Arc::new(cause)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.message)
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.cause
                    .as_deref()
                    .map(|e| e as &(dyn std::error::Error + 'static))
            }
        }

        /// Two errors are equal when their messages are (causes are not comparable).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.message == other.message
            }
        }
    };
}
pub(crate) use error_with_cause;

/// What a query does with a row it cannot decode, evaluate or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStrategy {
    /// Stop the job with an error naming the source, position and reason (default).
    #[default]
    Fail,
    /// Count the row as skipped, log it, and go on.
    Skip,
    /// Write the row to the dead-letter sink with the reason, and go on.
    DeadLetter,
}

impl FromStr for ErrorStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fail" | "fail_fast" => Ok(ErrorStrategy::Fail),
            "skip" => Ok(ErrorStrategy::Skip),
            "dead_letter" | "dlq" => Ok(ErrorStrategy::DeadLetter),
            other => Err(format!(
                "unknown error strategy '{other}': expected 'fail', 'skip' or 'dead_letter'"
            )),
        }
    }
}

impl fmt::Display for ErrorStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorStrategy::Fail => "fail",
            ErrorStrategy::Skip => "skip",
            ErrorStrategy::DeadLetter => "dead_letter",
        })
    }
}

/// Where in a query a row met its error: the label of the skipped and dead-lettered row
/// counters and the `stage` field of a dead-letter record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The source could not decode the row.
    Decode,
    /// The row's event-time column is NULL.
    EventTime,
    /// An expression of the query could not be evaluated on the row.
    Evaluate,
    /// The row arrived below the watermark (dead-lettered under `late.data.strategy`).
    Late,
    /// The sink could not write the row after its retries.
    Sink,
}

impl Stage {
    /// The stage's name, as metrics and dead-letter records carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::EventTime => "event_time",
            Stage::Evaluate => "evaluate",
            Stage::Late => "late",
            Stage::Sink => "sink",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Input data was bad and the strategy is `fail`.
    #[error(
        "bad input in source '{source_name}' at {position}: {reason} (correlation id {correlation_id})"
    )]
    BadInput {
        /// Source name.
        source_name: String,
        /// `file:line`, `topic/partition/offset` or row number.
        position: String,
        /// What was wrong.
        reason: String,
        /// Correlation id of the batch.
        correlation_id: String,
    },
    /// A row could not be evaluated (division by zero, overflow, a failing cast) and the
    /// strategy is `fail`.
    #[error(
        "query '{query}' cannot evaluate the row of source '{source_name}' at {position}: {reason} (correlation id {correlation_id})"
    )]
    Evaluate {
        /// Query name.
        query: String,
        /// Source name.
        source_name: String,
        /// `file:line`, `topic/partition/offset` or row number.
        position: String,
        /// What failed.
        reason: String,
        /// Correlation id of the batch.
        correlation_id: String,
    },
    /// The stateful stage of a query failed (an aggregate overflowed, the state went over
    /// its budget) and the strategy is `fail`.
    #[error(
        "query '{query}' failed in its stateful stage ({node}, operator {operator}): {reason} (last batch correlation id {correlation_id})"
    )]
    Stateful {
        /// Query name.
        query: String,
        /// The keyed partition's graph node id.
        node: Box<str>,
        /// The operator (`aggregate`, `over`, `interval_join`, ...), or `chain` when the
        /// failing one is not known.
        operator: String,
        /// What failed.
        reason: String,
        /// Correlation id of the last batch the stage received.
        correlation_id: Box<str>,
    },
    /// A source could not read (I/O, connection).
    #[error("source '{source_name}' failed: {error}")]
    Source {
        /// Source name.
        source_name: String,
        /// What went wrong (with the I/O or client error it came from as its source).
        #[source]
        error: crate::source::SourceError,
    },
    /// A sink could not write after every retry and the strategy is `fail`.
    #[error(
        "sink '{sink}' of query '{query}' failed after {attempts} attempt(s): {reason} (correlation id {correlation_id})"
    )]
    Sink {
        /// Query name.
        query: String,
        /// Sink description.
        sink: String,
        /// Attempts made.
        attempts: u32,
        /// Last error.
        reason: String,
        /// Correlation id of the batch.
        correlation_id: String,
        /// The sink's error, when one call failed as a whole (a flush, a close); `None`
        /// when rows were refused one by one (their reasons are in `reason`).
        #[source]
        cause: Option<Box<crate::sink::SinkError>>,
    },
    /// The dead-letter sink itself failed.
    #[error("dead-letter sink '{path}' failed: {reason}")]
    DeadLetter {
        /// Where dead letters go.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A bug in FerrisStreams (a task panicked, a channel closed unexpectedly).
    #[error("internal error (a bug in FerrisStreams, please report it): {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkError;

    #[test]
    fn a_sink_failure_keeps_the_sinks_error_as_its_source() {
        let io = std::io::Error::other("disk full");
        let err = RuntimeError::Sink {
            query: "q".into(),
            sink: "file out.jsonl".into(),
            attempts: 1,
            reason: "close failed: out.jsonl: disk full".into(),
            correlation_id: String::new(),
            cause: Some(Box::new(SinkError::caused_by("out.jsonl", io))),
        };
        let sink = std::error::Error::source(&err).expect("the sink error");
        assert_eq!(sink.to_string(), "out.jsonl: disk full");
        let io = std::error::Error::source(sink).expect("the I/O error");
        assert!(io.downcast_ref::<std::io::Error>().is_some());
    }
}
