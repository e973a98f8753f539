//! The statements of the FerrisStreams dialect.
//!
//! Standard SQL parts (expressions, SELECT bodies, data types) are `sqlparser` AST nodes; the
//! streaming parts (`WINDOW TUMBLING(5m)`, `EMIT CHANGES`, `WITH (...)` placement, `WATERMARK
//! FOR`, the `EXPLAIN` family) are types of this module. Every node that a later stage may
//! report an error about carries a [`Span`] into the original SQL text.

pub use sqlparser::ast::{DataType, Expr, Ident, ObjectName, Query};

/// A 1-based line and column in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// Line, starting at 1.
    pub line: u64,
    /// Column, starting at 1 (in characters).
    pub column: u64,
}

/// A range of the SQL text: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First character.
    pub start: Location,
    /// One past the last character.
    pub end: Location,
}

/// One statement of an application file.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE STREAM name (cols) WITH (...)` or `CREATE TABLE name (cols, PRIMARY KEY) WITH (...)`:
    /// declares a source.
    CreateSource(CreateSource),
    /// `CREATE STREAM name WITH (...)` without columns and without `AS`: declares a sink that
    /// `INSERT INTO` writes to.
    CreateSink(CreateSink),
    /// `CREATE STREAM name [WITH (...)] AS <query> [WITH (...)]`: a continuous query and its sink.
    CreateStreamAs(CreateStreamAs),
    /// `INSERT INTO name <query>`.
    InsertInto(InsertInto),
    /// A bare query: its rows go to stdout.
    Select(StreamingQuery),
    /// Any `EXPLAIN ...` form.
    Explain(Explain),
}

/// Whether a declared source is an append-only stream or a keyed table (changelog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `CREATE STREAM`.
    Stream,
    /// `CREATE TABLE`: latest row per primary key wins.
    Table,
}

/// A column of a source declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Column name.
    pub name: Ident,
    /// Declared type.
    pub data_type: DataType,
    /// `NOT NULL` was given.
    pub not_null: bool,
    /// Where the column definition stands.
    pub span: Span,
}

/// `WATERMARK FOR col AS col - INTERVAL '5' SECOND`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: Ident,
    /// Bounded out-of-orderness in milliseconds (0 for `AS col`).
    pub max_out_of_orderness_ms: i64,
    /// Where the clause stands.
    pub span: Span,
}

/// One `'key' = 'value'` entry of a `WITH (...)` list.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The key, unquoted.
    pub key: String,
    /// The value, unquoted (numbers and booleans as written).
    pub value: String,
    /// Where the entry stands.
    pub span: Span,
}

/// `CREATE STREAM|TABLE name (...) WITH (...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    /// Stream or table.
    pub kind: SourceKind,
    /// Source name.
    pub name: Ident,
    /// Declared columns, in order.
    pub columns: Vec<ColumnDef>,
    /// Primary key columns (inline `PRIMARY KEY` or a `PRIMARY KEY (a, b)` constraint).
    pub primary_key: Vec<Ident>,
    /// Event-time declaration, if any.
    pub watermark: Option<WatermarkDef>,
    /// Connector and format properties.
    pub properties: Vec<Property>,
    /// The whole statement.
    pub span: Span,
}

/// `CREATE STREAM name WITH (...)` (a sink for `INSERT INTO`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSink {
    /// Sink name.
    pub name: Ident,
    /// Connector and format properties.
    pub properties: Vec<Property>,
    /// The whole statement.
    pub span: Span,
}

/// `CREATE STREAM name [WITH (...)] AS query [WITH (...)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateStreamAs {
    /// Output stream name.
    pub name: Ident,
    /// The query.
    pub query: StreamingQuery,
    /// Properties from both `WITH` positions (before `AS` first).
    pub properties: Vec<Property>,
    /// The whole statement.
    pub span: Span,
}

/// `INSERT INTO name query`.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertInto {
    /// The declared sink.
    pub target: Ident,
    /// The query.
    pub query: StreamingQuery,
    /// The whole statement.
    pub span: Span,
}

/// A window specification: `WINDOW TUMBLING(5m)` etc. Durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows aligned to the epoch.
    Tumbling {
        /// Window size.
        size_ms: i64,
    },
    /// Hopping windows: `size` long, a new one every `advance`.
    Sliding {
        /// Window size.
        size_ms: i64,
        /// Advance between window starts.
        advance_ms: i64,
    },
    /// Cumulating windows (Flink's CUMULATE): windows of one `size` period share its start
    /// and end every `step` within it, so each is a prefix of the period.
    Cumulate {
        /// Distance between window ends.
        step_ms: i64,
        /// The period (the largest window).
        size_ms: i64,
    },
    /// Per-key session windows closed after `gap` without events.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
    },
}

/// A `WINDOW` clause and where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// The window.
    pub kind: WindowKind,
    /// `GRACE PERIOD d` in ms and where it stands (`None` when not written): how long after
    /// its end a window still takes late rows.
    pub grace: Option<(i64, Span)>,
    /// The clause's position.
    pub span: Span,
}

/// `EMIT CHANGES` or `EMIT FINAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// An upsert stream of changed groups after every batch.
    Changes,
    /// One row per window and group when the window closes.
    Final,
}

/// An `EMIT` clause and where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmitSpec {
    /// The mode.
    pub mode: EmitMode,
    /// The clause's position.
    pub span: Span,
}

/// A SELECT with the streaming clauses taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingQuery {
    /// The standard SQL query (without `WINDOW <kind>(...)` and `EMIT`).
    pub query: Box<Query>,
    /// The streaming window, if any.
    pub window: Option<WindowSpec>,
    /// The emit mode, if given.
    pub emit: Option<EmitSpec>,
    /// `FOR SYSTEM_TIME AS OF …` after a table in FROM (taken out before `sqlparser`).
    pub as_of: Vec<SystemTimeAsOf>,
    /// The query's own text, as written.
    pub text: String,
    /// Where the query stands.
    pub span: Span,
}

/// `table FOR SYSTEM_TIME AS OF <time>`: which version of a table's rows a join reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemTimeAsOf {
    /// The table it follows (lower-cased).
    pub table: String,
    /// The time: a column (`o.ts`, lower-cased), or `None` for `PROCTIME()` (the table as
    /// loaded: a lookup join).
    pub column: Option<String>,
    /// Where the clause stands.
    pub span: Span,
}

/// `EXPLAIN [(opt value, ...)] ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explain {
    /// Options as written, keys upper-cased: `(ANALYZE true, FORMAT JSON)`.
    pub options: Vec<(String, String)>,
    /// Where each option (key and value) stands, in the order of `options`.
    pub option_spans: Vec<Span>,
    /// What to explain.
    pub target: ExplainTarget,
    /// The whole statement.
    pub span: Span,
}

/// The forms of `EXPLAIN`.
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    /// `EXPLAIN [opts] query`: logical and physical plan.
    Plan(StreamingQuery),
    /// `EXPLAIN TOPOLOGY [opts] query`.
    Topology(StreamingQuery),
    /// `EXPLAIN MULTI_QUERY [opts] WITH QUERIES ('name' AS (query), ...)`.
    MultiQuery(Vec<(String, StreamingQuery)>),
    /// `EXPLAIN SHARED_RESOURCES FOR QUERIES ('a', 'b')`.
    SharedResources(Vec<String>),
    /// `EXPLAIN LINEAGE FROM SOURCE 'uri' THROUGH QUERIES ('a', 'b')`.
    Lineage {
        /// The source URI.
        source: String,
        /// Query names.
        queries: Vec<String>,
    },
    /// `EXPLAIN IMPACT FOR QUERY 'q' CHANGE TYPE 't' [CHANGE DESCRIPTION 'd']`.
    Impact {
        /// Query name.
        query: String,
        /// Change type.
        change_type: String,
        /// Optional description.
        description: Option<String>,
    },
    /// `EXPLAIN OPTIMIZATION_OPPORTUNITIES FOR QUERY_GROUP 'g'`.
    OptimizationOpportunities(String),
    /// `EXPLAIN DIFF QUERY 'q' BETWEEN ENVIRONMENTS ('a', 'b')`.
    Diff {
        /// Query name.
        query: String,
        /// Environment names.
        environments: Vec<String>,
    },
}
