//! Joins: stream–table lookup joins and stream–stream interval joins.

pub mod lookup;

pub mod interval;

pub use interval::{IntervalJoinSpec, JoinKind, interval_join_operator};
