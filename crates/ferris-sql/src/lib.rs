//! The SQL front end of FerrisStreams: parses application files into [`ast::Statement`]s.
//!
//! Standard SQL is parsed by `sqlparser`; the streaming clauses (`WINDOW TUMBLING(5m)`,
//! `EMIT CHANGES`, `WITH (...)` properties, `WATERMARK FOR`, the `EXPLAIN` family) are parsed
//! here. Every error carries the line and column of the offending token
//! ([`SqlError::render`] prints it with a caret).

#![warn(missing_docs)]

pub mod ast;
mod cursor;
mod ddl;
mod depth;
mod duration;
mod error;
mod explain;
mod parser;
mod properties;
mod source;
mod streaming;

pub use depth::{LARGE_STACK_BYTES, MAX_EXPR_DEPTH, on_large_stack};
pub use duration::interval_text_ms;
pub use error::SqlError;
pub use parser::parse_statements;
