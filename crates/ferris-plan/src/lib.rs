//! Planning: from parsed statements to a typed plan, without any I/O.
//!
//! DataFusion's SQL planner resolves names and types (with its analyzer's type coercion) and
//! its physical expressions evaluate projections and predicates; this crate checks which
//! streaming shape a query has and plans its stateless stage and its keyed stage (the specs
//! of the `ferris-operators` operators and the factories that build them). Connectors,
//! files and brokers are `ferris-engine`'s: this crate links none of them.
//!
//! ```
//! let app = ferris_plan::plan_application(
//!     "CREATE STREAM t (a INT) WITH ('connector' = 'stdin', 'format' = 'csv');
//!      SELECT a + 1 AS b FROM t WHERE a > 2;",
//! ).expect("plans");
//! assert_eq!(app.queries.len(), 1);
//! assert_eq!(app.queries[0].plan.output_schema.field(0).name(), "b");
//! ```

pub mod analysis;
pub mod annotations;
mod app;
mod catalog;
mod date_format;
mod declare;
mod derived;
mod error;
pub mod explain;
mod finite;
mod functions;
pub mod impact;
mod join_keys;
mod like_escape;
mod limit;
pub mod lineage;
pub mod logical;
mod lower_over;
pub mod metrics;
pub mod multi_query;
mod physical;
mod plan_aggregate;
mod plan_asof;
mod plan_join;
mod plan_over;
pub mod props;
mod query;
mod semi;
pub mod share;
mod subquery;
mod topn;
mod tvf;
mod types;

pub use app::{
    AppError, Application, DERIVED_CONNECTOR, PlannedQuery, SinkDecl, SourceDecl, plan_application,
};
pub use catalog::{Catalog, WINDOW_END, WINDOW_START};
pub use derived::writers;
pub use error::PlanError;
pub use explain::{ExplainFormat, ExplainOptions, ExplainRequest};
pub use logical::{LogicalEdge, LogicalEdgeKind, LogicalGraph, LogicalKind, LogicalNode};
pub use query::{KeyedPlan, QueryPlan, column_names, plan_query};
pub use types::arrow_type;
