//! Frame positions and accumulator feeding over a partition's settled rows.

use super::op_error;
use super::spec::{Bound, Frame, Units};
use super::store::Store;
use arrow::array::{ArrayRef, AsArray};
use arrow::compute::filter;
use datafusion_expr::Accumulator;
use ferris_runtime::OperatorError;

/// The rows `[start, end)` in the frame of row `row` with event time `ts`; `end` is capped at
/// the settled rows and `start <= end`. For a row not yet settled, `row` and `ts` may be lower
/// bounds: the result is then a lower bound of the real frame.
pub(crate) fn frame_rows(frame: &Frame, row: u64, ts: i64, store: &Store) -> (u64, u64) {
    let back = |n: u64| ts.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
    let ahead = |n: u64| ts.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
    let start = match (frame.units, frame.start) {
        (_, Bound::UnboundedPreceding) => 0,
        (Units::Rows, Bound::Preceding(n)) => row.saturating_sub(n),
        (Units::Rows, Bound::CurrentRow) => row,
        (Units::Rows, Bound::Following(n)) => row.saturating_add(n),
        (Units::Range, Bound::Preceding(n)) => store.lower_bound(back(n)),
        (Units::Range, Bound::CurrentRow) => store.lower_bound(ts),
        (Units::Range, Bound::Following(n)) => store.lower_bound(ahead(n)),
    };
    let end = match (frame.units, frame.end) {
        (_, Bound::UnboundedPreceding) => 0,
        (Units::Rows, Bound::Preceding(n)) => row.saturating_add(1).saturating_sub(n),
        (Units::Rows, Bound::CurrentRow) => row.saturating_add(1),
        (Units::Rows, Bound::Following(n)) => row.saturating_add(1).saturating_add(n),
        (Units::Range, Bound::Preceding(n)) => store.upper_bound(back(n)),
        (Units::Range, Bound::CurrentRow) => store.upper_bound(ts),
        (Units::Range, Bound::Following(n)) => store.upper_bound(ahead(n)),
    };
    let end = end.min(store.end());
    (start.min(end), end)
}

/// Adds (or, with `retract`, removes) rows `[a, b)` to the accumulator: the argument columns
/// `args`, keeping only rows where the `filter` column is true.
pub(crate) fn feed(
    acc: &mut dyn Accumulator,
    store: &Store,
    args: &[usize],
    filter_column: Option<usize>,
    a: u64,
    b: u64,
    retract: bool,
) -> Result<(), OperatorError> {
    for (batch, offset, len) in store.pieces(a, b)? {
        let mut columns: Vec<ArrayRef> = args
            .iter()
            .map(|&c| batch.column(c).slice(offset, len))
            .collect();
        if let Some(f) = filter_column {
            let mask = batch.column(f).slice(offset, len);
            let Some(mask) = mask.as_boolean_opt() else {
                return Err(OperatorError::new("OVER: FILTER is not a boolean column"));
            };
            columns = columns
                .iter()
                .map(|c| filter(c, mask))
                .collect::<Result<_, _>>()
                .map_err(op_error)?;
            if columns.first().is_some_and(|c| c.is_empty()) {
                continue;
            }
        }
        if retract {
            acc.retract_batch(&columns).map_err(op_error)?;
        } else {
            acc.update_batch(&columns).map_err(op_error)?;
        }
    }
    Ok(())
}
