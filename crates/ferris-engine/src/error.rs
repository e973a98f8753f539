//! Why a planned application could not become a running job.

use ferris_connectors::ConnectorError;
use ferris_plan::PlanError;
use ferris_sql::ast::Span;

/// A job could not be assembled: the application is invalid in a way only assembly finds
/// (a connector property), or its environment is not ready (a missing input file, a broker
/// that cannot be reached, a directory that cannot be written).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The application is invalid (a property, a combination of options).
    #[error(transparent)]
    Invalid(#[from] PlanError),
    /// A connector could not be created.
    #[error("{context}: {source}")]
    Connector {
        /// What was being created, e.g. `source 'trades'`.
        context: String,
        /// The statement that declared it.
        span: Span,
        /// Why.
        #[source]
        source: Box<ConnectorError>,
    },
    /// A file the job writes (a dead-letter file) could not be opened.
    #[error("{context}: {source}")]
    Io {
        /// What was being opened.
        context: String,
        /// The statement that asked for it.
        span: Span,
        /// Why.
        #[source]
        source: Box<ferris_runtime::RuntimeError>,
    },
    /// `EXPLAIN ANALYZE` ran the query and the run failed.
    #[error("EXPLAIN ANALYZE: the query failed: {source}")]
    Run {
        /// The EXPLAIN statement.
        span: Span,
        /// Why.
        #[source]
        source: Box<ferris_runtime::RuntimeError>,
    },
}

impl EngineError {
    /// Whether the fault lies in the environment (missing file or topic, unreachable broker,
    /// permission denied) rather than in the application text: `ferris-cli` exits with 4 for
    /// these and 2 for invalid applications.
    pub fn is_environment(&self) -> bool {
        match self {
            EngineError::Invalid(_) => false,
            EngineError::Connector { source, .. } => source.is_environment(),
            EngineError::Io { .. } => true,
            EngineError::Run { .. } => false,
        }
    }

    /// Line and column (1-based) of the statement or clause at fault; `(0, 0)` when unknown.
    pub fn position(&self) -> (u64, u64) {
        let span = match self {
            EngineError::Invalid(e) => e.span,
            EngineError::Connector { span, .. }
            | EngineError::Io { span, .. }
            | EngineError::Run { span, .. } => Some(*span),
        };
        span.map(|s| (s.start.line, s.start.column))
            .unwrap_or((0, 0))
    }

    /// The error with the statement's line and a caret under it.
    pub fn render(&self, sql: &str) -> String {
        match self {
            EngineError::Invalid(e) => e.render(sql),
            EngineError::Connector { span, .. }
            | EngineError::Io { span, .. }
            | EngineError::Run { span, .. } => PlanError::at(self.to_string(), *span).render(sql),
        }
    }

    /// A connector error in `context` at `span`.
    pub(crate) fn connector(
        context: impl Into<String>,
        span: Span,
        source: ConnectorError,
    ) -> Self {
        EngineError::Connector {
            context: context.into(),
            span,
            source: Box::new(source),
        }
    }
}
