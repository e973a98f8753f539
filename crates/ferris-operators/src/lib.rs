//! The streaming operators a job runs, independent of SQL and of any connector.
//!
//! Each operator implements [`ferris_runtime::Operator`]: the stateless ones ([`FilterOp`],
//! [`ProjectOp`], the stream–table [`join::lookup`]) run in the partition pipelines in source
//! order; the stateful ones ([`aggregate`] for GROUP BY with windows and emit modes, [`over`]
//! for OVER windows, [`join::interval`] for stream–stream joins, [`topn`] for
//! `ROW_NUMBER` top-N) run in the keyed stage, own
//! their state and free it as the watermark passes it. They are configured by specs built by
//! `ferris-plan` and instantiated, once per partition, by `ferris-engine`; this crate depends
//! only on the runtime, Arrow and DataFusion's expression and accumulator crates.

pub mod aggregate;
pub mod having;
pub mod join;
pub mod over;
mod stateless;
pub mod topn;

pub use stateless::{FilterOp, ProjectOp};
