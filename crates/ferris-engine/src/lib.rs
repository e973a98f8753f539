//! The engine: the one crate that knows the plan, the operators and the connectors.
//!
//! [`build_job`] turns a planned [`ferris_plan::Application`] into a runnable
//! [`ferris_runtime::JobSpec`]: it opens files, connects to brokers, creates repartition
//! topics, loads tables and opens dead-letter writers. Failures are [`EngineError`]s, which
//! tell an invalid application from an environment that is not ready. [`job_graph`] describes
//! the same job as a value, without opening anything: every task and channel with its id,
//! as the runtime names them in its metrics.

mod build;
mod dry;
mod error;
pub mod explain;
mod graph;
mod graph_export;
mod graph_render;
pub mod openlineage;
mod paths;
mod repartition;
mod resolve;
pub mod settings;

pub use build::{build_job, check_job, record_shares};
pub use error::EngineError;
pub use graph::{
    Edge, EdgeKind, GRAPH_FORMAT_VERSION, JobGraph, Node, NodeKind, QueryInfo, job_graph,
};
pub use graph_export::{graph_mermaid, graph_svg};
pub use graph_render::{graph_dot, graph_json};
pub use paths::check_paths;
