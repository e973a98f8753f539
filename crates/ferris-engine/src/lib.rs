//! The engine: the one crate that knows the plan, the operators and the connectors.
//!
//! [`build_job`] turns a planned [`ferris_plan::Application`] into a runnable
//! [`ferris_runtime::JobSpec`]: it opens files, connects to brokers, creates repartition
//! topics, loads tables and opens dead-letter writers. Failures are [`EngineError`]s, which
//! tell an invalid application from an environment that is not ready.

mod build;
mod error;
mod repartition;

pub use build::build_job;
pub use error::EngineError;
