//! Followed records waiting for the sink to write their rows: the rows of stateless queries
//! by (correlation id, index in the batch the sink receives), and the records that entered a
//! keyed stage by key, matched with the output rows of their key (and window).

use super::capture::{KEY_SEPARATOR, RecordKey};
use super::{WrittenBatch, value_millis, value_text};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::Int64Type;
use hashbrown::HashMap;
use std::sync::Arc;

/// Output rows matched per keyed record at most (an unwindowed aggregate updates forever).
const MAX_MATCHES: usize = 16;
/// Records waiting in keyed stages are at most this many (later ones are not matched).
const MAX_PENDING: usize = 10_000;

/// A record that entered a keyed stage, waiting for the output rows it contributes to.
#[derive(Debug, Clone)]
struct Pending {
    record: RecordKey,
    time: Option<i64>,
    matches: usize,
}

/// Followed rows of a stateless query's output batches, by correlation id: (index, record).
type DirectRows = HashMap<Arc<str>, Vec<(usize, RecordKey)>>;

/// What the sinks look for, per query id.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    direct: HashMap<u32, DirectRows>,
    keyed: HashMap<u32, HashMap<Box<str>, Vec<Pending>>>,
    /// Per query: how many values its keys hold.
    key_widths: HashMap<u32, usize>,
    /// Records waiting in keyed stages, over every query and key.
    pending: usize,
}

/// A matched output row: the record, the row's index in the batch, the window.
pub(crate) type Found = (RecordKey, usize, Option<(i64, i64)>);

impl Waiting {
    /// Records the rows of output batch `correlation` of `query` that are followed records,
    /// and the records that entered its keyed stage.
    pub(crate) fn expect(
        &mut self,
        query: u32,
        correlation: &Arc<str>,
        direct: Vec<(usize, RecordKey)>,
        keyed: Vec<(RecordKey, Box<str>, Option<i64>)>,
    ) {
        if !direct.is_empty() {
            self.direct
                .entry(query)
                .or_default()
                .entry(correlation.clone())
                .or_default()
                .extend(direct);
        }
        for (record, key, time) in keyed {
            self.key_widths
                .entry(query)
                .or_insert_with(|| key.matches(KEY_SEPARATOR).count() + 1);
            if self.pending >= MAX_PENDING {
                break;
            }
            self.pending += 1;
            let list = self.keyed.entry(query).or_default().entry(key).or_default();
            // Kept in event-time order (rows mostly come in order: the place is the end).
            let at = list.partition_point(|p| p.time <= time);
            list.insert(
                at,
                Pending {
                    record,
                    time,
                    matches: 0,
                },
            );
        }
    }

    /// Whether the sink of `query` has chosen rows to look for.
    pub(crate) fn any(&self, query: u32) -> bool {
        self.direct.get(&query).is_some_and(|m| !m.is_empty())
            || self.keyed.get(&query).is_some_and(|m| !m.is_empty())
    }

    /// The followed records among the rows of written batch `b`.
    pub(crate) fn written(&mut self, query: u32, b: &WrittenBatch<'_>) -> Vec<Found> {
        let mut found = Vec::new();
        if let Some(direct) = self.direct.get_mut(&query)
            && let Some(rows) = direct.remove(b.correlation_id)
        {
            found.extend(
                rows.into_iter()
                    .filter(|(i, _)| *i < b.count)
                    .map(|(i, record)| (record, i, None)),
            );
        }
        let Some(by_key) = self.keyed.get_mut(&query) else {
            return found;
        };
        let cols = b.order;
        // The keys are the trailing order columns: all of them (unwindowed), or all but the
        // window's end and start before them.
        let width = self.key_widths.get(&query).copied().unwrap_or(cols.len());
        if width == 0 || width > cols.len() {
            return found;
        }
        let windowed = width + 2 == cols.len();
        let key_cols = &cols[cols.len() - width..];
        // One text column (the common key) is looked up without building the key's text.
        let text_key = match key_cols {
            [c] => c.as_string_opt::<i32>(),
            _ => None,
        };
        let mut buffer = String::new();
        let mut released = 0;
        for i in 0..b.count {
            if by_key.is_empty() {
                break;
            }
            let key = match text_key {
                Some(a) if !a.is_null(i) => a.value(i),
                _ => {
                    buffer.clear();
                    push_key(&mut buffer, key_cols.iter(), i);
                    buffer.as_str()
                }
            };
            let Some(list) = by_key.get_mut(key) else {
                continue;
            };
            let window = if windowed {
                match window_of(cols, i) {
                    Some(w) => Some(w),
                    None => continue,
                }
            } else {
                None
            };
            match window {
                // A window's row is written once (EMIT FINAL): its records are done.
                Some((end, start)) => {
                    let lo = list.partition_point(|p| p.time < Some(start));
                    let hi = list.partition_point(|p| p.time < Some(end));
                    released += hi - lo;
                    found.extend(list.drain(lo..hi).map(|p| (p.record, i, window)));
                }
                None => {
                    for p in list.iter_mut() {
                        p.matches += 1;
                        found.push((p.record, i, None));
                    }
                    let before = list.len();
                    list.retain(|p| p.matches < MAX_MATCHES);
                    released += before - list.len();
                }
            }
            if list.is_empty() {
                by_key.remove(key);
            }
        }
        self.pending -= released.min(self.pending);
        found
    }
}

/// Appends the values of `cols` at row `i` as one text (NULL as `NULL`), as the worker and
/// the sink both key a record.
pub(crate) fn push_key<'a>(out: &mut String, cols: impl Iterator<Item = &'a ArrayRef>, i: usize) {
    for (k, c) in cols.enumerate() {
        if k > 0 {
            out.push(KEY_SEPARATOR);
        }
        push_value(out, c, i);
    }
}

/// Appends a value as [`value_text`] gives it, without allocating for strings and numbers.
fn push_value(out: &mut String, col: &ArrayRef, i: usize) {
    use std::fmt::Write;
    if i >= col.len() || col.is_null(i) {
        out.push_str("NULL");
    } else if let Some(a) = col.as_string_opt::<i32>() {
        out.push_str(a.value(i));
    } else if let Some(a) = col.as_string_opt::<i64>() {
        out.push_str(a.value(i));
    } else if let Some(m) = value_millis(col, i) {
        let _ = write!(out, "{m}");
    } else if let Some(a) = col.as_primitive_opt::<Int64Type>() {
        let _ = write!(out, "{}", a.value(i));
    } else {
        out.push_str(value_text(col, i).as_deref().unwrap_or("NULL"));
    }
}

/// A timestamp or integer value as epoch milliseconds.
fn millis(col: &ArrayRef, i: usize) -> Option<i64> {
    value_millis(col, i).or_else(|| {
        col.as_primitive_opt::<Int64Type>()
            .filter(|a| i < a.len() && !a.is_null(i))
            .map(|a| a.value(i))
    })
}

/// The window `(end, start)` of output row `i` whose first two order columns are its bounds.
fn window_of(cols: &[ArrayRef], i: usize) -> Option<(i64, i64)> {
    Some((millis(cols.first()?, i)?, millis(cols.get(1)?, i)?))
}
