//! What a planned OVER stage computes, shared by every partition pipeline's operator.

use arrow::datatypes::{FieldRef, SchemaRef};
use arrow::row::RowConverter;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use std::sync::Arc;

/// How a frame counts: rows in (event time, arrival) order, or event time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    Rows,
    Range,
}

/// One end of a frame; offsets are rows (`ROWS`) or milliseconds (`RANGE`), never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    UnboundedPreceding,
    Preceding(u64),
    CurrentRow,
    Following(u64),
}

/// A window frame relative to the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub units: Units,
    pub start: Bound,
    pub end: Bound,
}

impl Frame {
    /// Rows after the current one that must exist before the row is final.
    pub fn rows_ahead(&self) -> u64 {
        match (self.units, self.end) {
            (Units::Rows, Bound::Following(n)) => n,
            _ => 0,
        }
    }

    /// Milliseconds after the current row's event time that must be closed before the row is
    /// final.
    pub fn time_ahead(&self) -> u64 {
        match (self.units, self.end) {
            (Units::Range, Bound::Following(n)) => n,
            _ => 0,
        }
    }

    /// The frame for EXPLAIN, or `None` for SQL's default frame
    /// (`RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`).
    pub fn describe(&self) -> Option<String> {
        let (units, suffix) = match self.units {
            Units::Rows => ("ROWS", ""),
            Units::Range => ("RANGE", "ms"),
        };
        if self.units == Units::Range
            && self.start == Bound::UnboundedPreceding
            && self.end == Bound::CurrentRow
        {
            return None;
        }
        let bound = |b: Bound| match b {
            Bound::UnboundedPreceding => "UNBOUNDED PRECEDING".to_string(),
            Bound::Preceding(n) => format!("{n}{suffix} PRECEDING"),
            Bound::CurrentRow => "CURRENT ROW".to_string(),
            Bound::Following(n) => format!("{n}{suffix} FOLLOWING"),
        };
        Some(if self.end == Bound::CurrentRow {
            format!("{units} {}", bound(self.start))
        } else {
            format!(
                "{units} BETWEEN {} AND {}",
                bound(self.start),
                bound(self.end)
            )
        })
    }
}

/// How an aggregate follows its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccMode {
    /// The frame starts at the partition's first row: one running accumulator.
    Running,
    /// The frame start moves: one accumulator, rows retracted as they leave the frame.
    Sliding,
    /// The frame start moves and the accumulator cannot retract: a fresh accumulator per
    /// distinct frame.
    Recompute,
}

/// One window function. Column numbers refer to the operator's internal rows: the input
/// columns followed by the evaluated argument expressions.
#[derive(Debug, Clone)]
pub enum Function {
    RowNumber,
    Rank,
    DenseRank,
    /// LAG (`offset > 0`: that many rows back) or LEAD (`offset < 0`: rows ahead).
    Shift {
        value: usize,
        offset: i64,
        default: Option<usize>,
    },
    FirstValue {
        value: usize,
        frame: Frame,
    },
    LastValue {
        value: usize,
        frame: Frame,
    },
    Aggregate {
        expr: Arc<AggregateFunctionExpr>,
        args: Vec<usize>,
        filter: Option<usize>,
        frame: Frame,
        mode: AccMode,
    },
}

impl Function {
    /// Rows after the current one that must exist before the row is final.
    pub fn rows_ahead(&self) -> u64 {
        match self {
            Function::Shift { offset, .. } if *offset < 0 => offset.unsigned_abs(),
            Function::FirstValue { frame, .. }
            | Function::LastValue { frame, .. }
            | Function::Aggregate { frame, .. } => frame.rows_ahead(),
            _ => 0,
        }
    }

    /// Milliseconds after the current row's event time that must be closed first.
    pub fn time_ahead(&self) -> u64 {
        match self {
            Function::FirstValue { frame, .. }
            | Function::LastValue { frame, .. }
            | Function::Aggregate { frame, .. } => frame.time_ahead(),
            _ => 0,
        }
    }

    /// Whether the function carries state beyond the buffered rows (counters, a running
    /// accumulator, the partition's first value), so that a partition without buffered rows
    /// cannot be forgotten.
    pub fn keeps_partition_state(&self) -> bool {
        match self {
            Function::RowNumber | Function::Rank | Function::DenseRank => true,
            Function::FirstValue { frame, .. } | Function::Aggregate { frame, .. } => {
                frame.start == Bound::UnboundedPreceding
            }
            Function::Shift { .. } | Function::LastValue { .. } => false,
        }
    }
}

/// One window expression and the output field it fills.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub function: Function,
    pub field: FieldRef,
}

/// Everything the OVER operator needs.
#[derive(Debug)]
pub struct OverSpec {
    /// Schema of the input batches.
    pub input_schema: SchemaRef,
    /// Input columns, then one column per entry of `exprs`.
    pub internal_schema: SchemaRef,
    /// Argument expressions that are not plain input columns, evaluated on arrival.
    pub exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Input columns, the window results, then [`super::EMIT_AT`].
    pub output_schema: SchemaRef,
    /// Index of the event-time column.
    pub time_column: usize,
    /// PARTITION BY columns.
    pub partition_columns: Vec<usize>,
    /// Encodes partition keys; `None` when there is no PARTITION BY.
    pub converter: Option<Arc<RowConverter>>,
    /// The window functions, in output order.
    pub functions: Vec<FunctionSpec>,
    /// Largest number of rows a function looks ahead (ROWS n FOLLOWING, LEAD(n)).
    pub rows_ahead: u64,
    /// Largest event-time span a function looks ahead (RANGE INTERVAL FOLLOWING).
    pub time_ahead: u64,
    /// Whether a partition may be forgotten once it buffers no rows.
    pub forgettable: bool,
    /// The EXPLAIN line.
    pub describe: String,
}
