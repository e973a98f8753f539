//! Joins: stream–table lookup joins and stream–stream interval joins.
