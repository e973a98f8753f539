//! Joins: stream–table lookup and as-of joins, stream–stream interval joins.

pub mod asof;
pub mod lookup;

pub mod interval;

pub use interval::{IntervalJoinSpec, JoinKind, interval_join_operator};
