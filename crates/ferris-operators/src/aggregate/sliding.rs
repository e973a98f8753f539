//! Panes for SLIDING windows with EMIT FINAL.
//!
//! Time is cut into panes of `gcd(size, advance)` ms; every window is a whole number of
//! panes. Rows only update the accumulators of their pane (see [`super::window`]); once the
//! watermark passes a pane's end its accumulators are frozen into their intermediate state
//! here. A closing window merges the frozen states of its panes, in time order, into fresh
//! accumulators. A pane is freed once the last window containing it has closed.

use datafusion_common::HashMap;
use std::collections::BTreeMap;

use super::AggregateInput;
use super::accs::{AccSet, FrozenState, frozen_size};
use super::output::Emitted;
use ferris_runtime::OperatorError;

/// Greatest common divisor of two positive numbers.
pub(crate) fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// `x` rounded down to a multiple of `m` (> 0).
fn floor_to(x: i128, m: i128) -> i128 {
    x.div_euclid(m) * m
}

/// `x` rounded up to a multiple of `m` (> 0).
fn ceil_to(x: i128, m: i128) -> i128 {
    -floor_to(-x, m)
}

/// Frozen panes and the windows assembled from them.
pub(crate) struct PaneWindows {
    size: i64,
    advance: i64,
    pane: i64,
    /// Pane start → (group, frozen accumulator state), groups in no particular order.
    frozen: BTreeMap<i64, Vec<(u32, FrozenState)>>,
    /// Every window ending at or before this has been emitted.
    closed_through: i128,
    /// Number of frozen (pane, group) entries.
    entries: usize,
    /// Approximate bytes of the frozen states.
    bytes: usize,
}

impl PaneWindows {
    /// Panes for windows of `size` ms starting every `advance` ms (both > 0).
    pub(crate) fn new(size: i64, advance: i64) -> Self {
        PaneWindows {
            size,
            advance,
            pane: gcd(size, advance),
            frozen: BTreeMap::new(),
            closed_through: i128::MIN,
            entries: 0,
            bytes: 0,
        }
    }

    /// The pane length in ms.
    pub(crate) fn pane_len(&self) -> i64 {
        self.pane
    }

    /// Whether event time `ts` falls in at least one window (windows leave gaps when
    /// `advance > size`).
    pub(crate) fn covers(&self, ts: i64) -> bool {
        ts.rem_euclid(self.advance) < self.size
    }

    /// Freezes the pane starting at `start` (its end is at or before the watermark). The
    /// group references held by the live entries move to the frozen ones.
    pub(crate) fn freeze(
        &mut self,
        start: i64,
        groups: HashMap<u32, AccSet>,
    ) -> Result<(), OperatorError> {
        let mut states = Vec::with_capacity(groups.len());
        for (group, accs) in groups {
            let state = accs.into_state()?;
            self.bytes += frozen_size(&state);
            states.push((group, state));
        }
        self.entries += states.len();
        self.frozen.insert(start, states);
        Ok(())
    }

    /// The end of the last window holding event time `ts`.
    pub(crate) fn last_end(&self, ts: i64) -> Result<i64, OperatorError> {
        ts.div_euclid(self.advance)
            .checked_mul(self.advance)
            .and_then(|start| start.checked_add(self.size))
            .ok_or_else(|| OperatorError::new(format!("aggregate: event time {ts} out of range")))
    }

    /// Adds rows that arrived after the pane starting at `start` was frozen (a window
    /// holding it is still open): their accumulators become one more frozen state of the
    /// pane for `group`, merged with the others when a window closes. The caller holds a
    /// reference to `group` for it.
    pub(crate) fn add_frozen(
        &mut self,
        start: i64,
        group: u32,
        accs: AccSet,
    ) -> Result<(), OperatorError> {
        let state = accs.into_state()?;
        self.bytes += frozen_size(&state);
        self.entries += 1;
        self.frozen.entry(start).or_default().push((group, state));
        Ok(())
    }

    /// Emits every window ending at or before `watermark` that holds rows, then frees the
    /// panes no open window needs; their group ids are appended to `released`.
    pub(crate) fn close(
        &mut self,
        watermark: i64,
        aggs: &[AggregateInput],
        emitted: &mut Emitted,
        released: &mut Vec<u32>,
    ) -> Result<(), OperatorError> {
        let (size, advance, pane) = (self.size as i128, self.advance as i128, self.pane as i128);
        while let Some((&first, _)) = self.frozen.first_key_value() {
            // The earliest window holding the first pane that has not been emitted yet.
            let mut start = ceil_to(first as i128 + pane - size, advance);
            if self.closed_through != i128::MIN {
                start = start.max(ceil_to(self.closed_through - size + 1, advance));
            }
            let end = start + size;
            if end > watermark as i128 {
                break;
            }
            let (lo, hi) = (
                start.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
                end as i64,
            );
            let mut per_group: HashMap<u32, Vec<&FrozenState>> = HashMap::new();
            for states in self.frozen.range(lo..hi).map(|(_, s)| s) {
                for (group, state) in states {
                    per_group.entry(*group).or_default().push(state);
                }
            }
            for (group, states) in per_group {
                let mut accs = AccSet::new(aggs)?;
                accs.merge(&states)?;
                emitted.push(group, lo, hi, accs.evaluate()?);
            }
            self.closed_through = end;
            // Free the panes whose last window (the one starting at the pane start rounded
            // down to the advance) has now closed.
            while let Some(entry) = self.frozen.first_entry() {
                if floor_to(*entry.key() as i128, advance) + size > self.closed_through {
                    break;
                }
                for (group, state) in entry.remove() {
                    self.entries -= 1;
                    self.bytes = self.bytes.saturating_sub(frozen_size(&state));
                    released.push(group);
                }
            }
        }
        Ok(())
    }

    /// Drops every frozen pane; their group ids are appended to `released`.
    pub(crate) fn clear(&mut self, released: &mut Vec<u32>) {
        for (_, states) in std::mem::take(&mut self.frozen) {
            released.extend(states.into_iter().map(|(g, _)| g));
        }
        self.entries = 0;
        self.bytes = 0;
    }

    /// Number of frozen (pane, group) entries.
    /// The start of the oldest frozen pane.
    pub(crate) fn oldest(&self) -> Option<i64> {
        self.frozen.keys().next().copied()
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Approximate bytes of the frozen states.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pane_arithmetic() {
        assert_eq!(gcd(3_600_000, 300_000), 300_000);
        assert_eq!(gcd(10, 4), 2);
        assert_eq!(ceil_to(-7, 5), -5);
        assert_eq!(floor_to(-7, 5), -10);
        let p = PaneWindows::new(4, 10);
        assert_eq!(p.pane_len(), 2);
        assert!(p.covers(13));
        assert!(!p.covers(15));
        assert!(!p.covers(-1));
    }
}
