//! When a row that arrived below the watermark is late for a query.
//!
//! The source marks every row whose event time is below its watermark at arrival (with that
//! watermark). Whether the row is late depends on the query reading it: for a windowed
//! aggregation only when every window the row belongs to has already closed (its end plus
//! the grace period at or below the watermark, as in Flink and ksqlDB), for the other
//! event-time operators whenever it is below the watermark.

/// A query's rule for rows that arrived below the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lateness {
    /// Late when below the watermark at arrival (OVER, interval joins, TTL aggregations).
    #[default]
    BelowWatermark,
    /// Late when the last window holding the row has closed: the row at `t` belongs to
    /// windows ending at most at `floor(t / align) * align + span`, and such a window is
    /// closed once its end plus `grace` is at or below the watermark. A session (`inclusive`,
    /// `align` 1, `span` the gap) stays open while the watermark is at most its end plus
    /// `grace`, since a row exactly one gap after the last still joins it.
    Window {
        /// The grid of window ends (ms).
        align: i64,
        /// From the row's grid point to its last window's end (ms).
        span: i64,
        /// The grace period (ms).
        grace: i64,
        /// Whether a window ending exactly at the watermark minus the grace is still open.
        inclusive: bool,
    },
}

impl Lateness {
    /// Whether a row at event time `t` that arrived under `watermark` is late.
    pub fn is_late(&self, t: i64, watermark: i64) -> bool {
        match *self {
            Lateness::BelowWatermark => t < watermark,
            Lateness::Window {
                grace, inclusive, ..
            } => {
                let closes = self.last_end(t) + i128::from(grace);
                match inclusive {
                    true => closes < i128::from(watermark),
                    false => closes <= i128::from(watermark),
                }
            }
        }
    }

    /// The end of the last window that could hold a row at `t` (`t` itself under
    /// [`Lateness::BelowWatermark`]), exactly.
    fn last_end(&self, t: i64) -> i128 {
        match *self {
            Lateness::BelowWatermark => i128::from(t),
            Lateness::Window { align, span, .. } => {
                let align = align.max(1);
                i128::from(t.div_euclid(align)) * i128::from(align) + i128::from(span)
            }
        }
    }

    /// Why a row at `t` that arrived under `watermark` is late (for its dead letter).
    pub fn reason(&self, t: i64, watermark: i64) -> String {
        let at = crate::json::format_timestamp_millis;
        let below = format!(
            "late row: event time {} is below the watermark {}",
            at(t),
            at(watermark)
        );
        match *self {
            Lateness::BelowWatermark => below,
            Lateness::Window { grace, .. } => {
                let end = self.last_end(t).clamp(i64::MIN.into(), i64::MAX.into()) as i64;
                match grace {
                    0 => format!(
                        "{below}: the last window that could hold it closed at {}",
                        at(end)
                    ),
                    _ => format!(
                        "{below}: the last window that could hold it ended at {} and closed at \
                         {} (grace period {grace} ms)",
                        at(end),
                        at(end.saturating_add(grace))
                    ),
                }
            }
        }
    }

    /// Whether lateness is decided per window (the source then starts a new batch at each
    /// run of rows below the watermark, so that the windows see exactly the watermark each
    /// such row arrived under, whatever the batch size).
    pub fn per_window(&self) -> bool {
        matches!(self, Lateness::Window { .. })
    }

    /// The grace period: how far behind the input's watermark the query's output watermark
    /// stays (a window may still change, and be written, until its end plus the grace).
    pub fn grace(&self) -> i64 {
        match *self {
            Lateness::BelowWatermark => 0,
            Lateness::Window { grace, .. } => grace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_watermark_is_late() {
        let l = Lateness::BelowWatermark;
        assert!(l.is_late(99, 100));
        assert!(!l.is_late(100, 100));
    }

    #[test]
    fn a_tumbling_window_takes_rows_until_its_end_plus_grace() {
        // TUMBLING(10) with a grace of 5: the row at 12 is in [10, 20), open while wm < 25.
        let l = Lateness::Window {
            align: 10,
            span: 10,
            grace: 5,
            inclusive: false,
        };
        assert!(!l.is_late(12, 24));
        assert!(l.is_late(12, 25));
        // The row at -3 is in [-10, 0), open while wm < 5.
        assert!(!l.is_late(-3, 4));
        assert!(l.is_late(-3, 5));
    }

    #[test]
    fn a_hopping_row_is_late_only_when_its_last_window_closed() {
        // SLIDING(size 10, advance 5), no grace: the row at 7 is in [0, 10) and [5, 15).
        let l = Lateness::Window {
            align: 5,
            span: 10,
            grace: 0,
            inclusive: false,
        };
        assert!(!l.is_late(7, 14));
        assert!(l.is_late(7, 15));
    }

    #[test]
    fn a_session_row_one_gap_behind_is_not_late() {
        let l = Lateness::Window {
            align: 1,
            span: 10,
            grace: 2,
            inclusive: true,
        };
        assert!(!l.is_late(88, 100));
        assert!(l.is_late(87, 100));
        assert_eq!(l.grace(), 2);
        assert_eq!(Lateness::BelowWatermark.grace(), 0);
    }

    #[test]
    fn the_reason_names_the_window_that_closed() {
        let l = Lateness::Window {
            align: 5_000,
            span: 5_000,
            grace: 3_000,
            inclusive: false,
        };
        assert_eq!(
            l.reason(1_704_067_203_000, 1_704_067_210_000),
            "late row: event time 2024-01-01T00:00:03.000Z is below the watermark \
             2024-01-01T00:00:10.000Z: the last window that could hold it ended at \
             2024-01-01T00:00:05.000Z and closed at 2024-01-01T00:00:08.000Z (grace period \
             3000 ms)"
        );
        let no_grace = Lateness::Window {
            align: 5_000,
            span: 5_000,
            grace: 0,
            inclusive: false,
        };
        assert_eq!(
            no_grace.reason(1_704_067_203_000, 1_704_067_210_000),
            "late row: event time 2024-01-01T00:00:03.000Z is below the watermark \
             2024-01-01T00:00:10.000Z: the last window that could hold it closed at \
             2024-01-01T00:00:05.000Z"
        );
        assert_eq!(
            Lateness::BelowWatermark.reason(1_704_067_203_000, 1_704_067_210_000),
            "late row: event time 2024-01-01T00:00:03.000Z is below the watermark \
             2024-01-01T00:00:10.000Z"
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let l = Lateness::Window {
            align: 7,
            span: i64::MAX,
            grace: i64::MAX,
            inclusive: false,
        };
        assert!(!l.is_late(i64::MAX, i64::MAX));
        assert!(!l.is_late(i64::MIN, i64::MIN));
    }
}
