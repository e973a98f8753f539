//! Stream–table join as of event time (Flink's `FOR SYSTEM_TIME AS OF`, ksqlDB's stream–table
//! join): each stream row joins the version of its key's table row that was current at the
//! stream row's event time — the table row of that key with the largest event time at or
//! before it.
//!
//! Both inputs are hash-routed by the key: side 0 is the stream, side 1 the table's
//! changelog (a bounded file read as a stream, or a Kafka topic). Table rows are kept as
//! versions per key. A stream row waits until the watermark (the smaller of both inputs')
//! passes its time: by then every version at or before it has arrived (a later one would be
//! late and dropped), so the version it joins does not depend on arrival order or batch
//! sizes. Rows are emitted in event-time order. Versions older than the last one at or
//! before the watermark can never be joined again and are dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, new_null_array};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion_common::HashMap;
use ferris_runtime::{Operator, OperatorError, StateSize};

use super::lookup::LookupKind;

/// Rows per emitted batch at most.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// What an as-of join computes.
#[derive(Debug, Clone)]
pub struct AsOfJoinSpec {
    /// INNER drops stream rows without a version; LEFT keeps them with NULLs.
    pub kind: LookupKind,
    /// The table's name (for EXPLAIN).
    pub table: String,
    /// Schema of the stream rows (side 0).
    pub stream_schema: SchemaRef,
    /// Schema of the table rows (side 1).
    pub table_schema: SchemaRef,
    /// Stream key columns, in the order of `table_keys`; same types.
    pub stream_keys: Vec<usize>,
    /// The table's PRIMARY KEY columns.
    pub table_keys: Vec<usize>,
    /// The stream's event-time column (`Timestamp(Millisecond)`).
    pub stream_time: usize,
    /// The table's event-time column: when each version became current.
    pub table_time: usize,
    /// Whether the table's columns come first in the output (`FROM table JOIN stream`).
    pub table_first: bool,
    /// Output rows: the first `stream_out` stream columns then the table's (or the
    /// reverse), the table's nullable.
    pub output_schema: SchemaRef,
    /// Stream columns in the output: the leading ones (those after are join keys computed
    /// from expressions, `ON LOWER(s.k) = t.k`).
    pub stream_out: usize,
    /// The ON condition as text, for EXPLAIN.
    pub condition: String,
}

/// Builds an as-of join operator for `spec`, checking its columns and types.
pub fn asof_join_operator(spec: Arc<AsOfJoinSpec>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(AsOfJoinOp::new(spec)?))
}

/// Where a held row is: (batch, row).
type At = (u32, u32);

/// A row's encoded key (`None`: a NULL key column, which joins nothing).
type Key = Option<Box<[u8]>>;

/// Batches of one input and how many of their rows are still referenced.
#[derive(Default)]
struct Held {
    batches: Vec<Option<RecordBatch>>,
    live: Vec<usize>,
    /// Rows of the batches still held.
    rows: usize,
    bytes: usize,
}

impl Held {
    fn push(&mut self, batch: &RecordBatch) -> u32 {
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.batches.push(Some(batch.clone()));
        self.live.push(0);
        (self.batches.len() - 1) as u32
    }

    fn take(&mut self, batch: u32) {
        self.live[batch as usize] += 1;
    }

    /// One row of `batch` is no longer referenced; the batch goes with its last row.
    fn release(&mut self, batch: u32) {
        let b = batch as usize;
        self.live[b] = self.live[b].saturating_sub(1);
        if self.live[b] == 0
            && let Some(gone) = self.batches[b].take()
        {
            self.rows -= gone.num_rows();
            self.bytes = self.bytes.saturating_sub(gone.get_array_memory_size());
        }
    }

    /// Drops the batches no row references (after `push`, before any `take`).
    fn drop_unreferenced(&mut self) {
        for b in 0..self.batches.len() {
            if self.live[b] == 0
                && let Some(gone) = self.batches[b].take()
            {
                self.rows -= gone.num_rows();
                self.bytes = self.bytes.saturating_sub(gone.get_array_memory_size());
            }
        }
    }

    fn clear(&mut self) {
        *self = Held::default();
    }
}

/// The as-of join operator (see the module docs).
struct AsOfJoinOp {
    spec: Arc<AsOfJoinSpec>,
    description: String,
    converter: RowConverter,
    /// Table rows.
    table: Held,
    /// Encoded key → versions by event time (`None`: a tombstone, the key deleted).
    versions: HashMap<Box<[u8]>, BTreeMap<i64, Option<At>>>,
    /// The table's [`ferris_runtime::TOMBSTONE_COLUMN`], when it has one.
    tombstone: Option<usize>,
    /// Number of versions held.
    version_count: usize,
    /// Stream rows waiting for the watermark.
    stream: Held,
    /// (event time, arrival) → the waiting stream row and its encoded key (`None`: a NULL
    /// key column, which joins nothing).
    pending: BTreeMap<(i64, u64), (At, Key)>,
    arrivals: u64,
    watermark: i64,
    /// Results for stream rows before this event time were written before a restart.
    resumed_through: Option<i64>,
}

impl AsOfJoinOp {
    fn new(spec: Arc<AsOfJoinSpec>) -> Result<Self, String> {
        validate(&spec)?;
        let fields: Vec<SortField> = spec
            .table_keys
            .iter()
            .map(|&c| SortField::new(spec.table_schema.field(c).data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(|e| e.to_string())?;
        let description = format!(
            "AsOfJoin: {} table {} ON {} AS OF {} (versions by {})",
            match spec.kind {
                LookupKind::Inner => "INNER",
                LookupKind::Left => "LEFT",
            },
            spec.table,
            spec.condition,
            spec.stream_schema.field(spec.stream_time).name(),
            spec.table_schema.field(spec.table_time).name(),
        );
        let tombstone = spec
            .table_schema
            .index_of(ferris_runtime::TOMBSTONE_COLUMN)
            .ok();
        Ok(AsOfJoinOp {
            spec,
            description,
            converter,
            table: Held::default(),
            versions: HashMap::new(),
            tombstone,
            version_count: 0,
            stream: Held::default(),
            pending: BTreeMap::new(),
            arrivals: 0,
            watermark: i64::MIN,
            resumed_through: None,
        })
    }

    /// The encoded key of every row of `batch` (`None` where a key column is NULL) and its
    /// event times.
    fn keys_and_times(
        &self,
        batch: &RecordBatch,
        key_cols: &[usize],
        time_col: usize,
    ) -> Result<(Vec<Key>, Vec<Option<i64>>), OperatorError> {
        let columns: Vec<ArrayRef> = key_cols.iter().map(|&c| batch.column(c).clone()).collect();
        let rows = self.converter.convert_columns(&columns).map_err(op_err)?;
        let keys = (0..batch.num_rows())
            .map(|r| {
                columns
                    .iter()
                    .all(|c| c.is_valid(r))
                    .then(|| rows.row(r).as_ref().into())
            })
            .collect();
        let times = batch
            .column(time_col)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| OperatorError::new("as-of join: the event time is not a timestamp"))?;
        let times = (0..batch.num_rows())
            .map(|r| times.is_valid(r).then(|| times.value(r)))
            .collect();
        Ok((keys, times))
    }

    fn add_stream(&mut self, batch: &RecordBatch) -> Result<(), OperatorError> {
        let spec = self.spec.clone();
        let (keys, times) = self.keys_and_times(batch, &spec.stream_keys, spec.stream_time)?;
        let b = self.stream.push(batch);
        for (r, (key, time)) in keys.into_iter().zip(times).enumerate() {
            // A row without event time was dropped before the join (its error strategy).
            let Some(time) = time else { continue };
            self.stream.take(b);
            self.arrivals += 1;
            self.pending
                .insert((time, self.arrivals), ((b, r as u32), key));
        }
        self.stream.drop_unreferenced();
        Ok(())
    }

    fn add_table(&mut self, batch: &RecordBatch) -> Result<(), OperatorError> {
        let spec = self.spec.clone();
        let (keys, times) = self.keys_and_times(batch, &spec.table_keys, spec.table_time)?;
        let deleted = match self.tombstone {
            Some(c) => Some(
                batch
                    .column(c)
                    .as_boolean_opt()
                    .ok_or_else(|| {
                        OperatorError::new("as-of join: the tombstone flag is not BOOLEAN")
                    })?
                    .clone(),
            ),
            None => None,
        };
        let b = self.table.push(batch);
        for (r, (key, time)) in keys.into_iter().zip(times).enumerate() {
            // A table row without a key or a time is never a version of anything.
            let (Some(key), Some(time)) = (key, time) else {
                continue;
            };
            let gone = deleted
                .as_ref()
                .is_some_and(|d| d.is_valid(r) && d.value(r));
            let version = match gone {
                true => None,
                false => {
                    self.table.take(b);
                    Some((b, r as u32))
                }
            };
            let versions = self.versions.entry(key).or_default();
            match versions.insert(time, version) {
                // The later of two rows with the same key and time wins.
                Some(Some((old, _))) => self.table.release(old),
                Some(None) => {}
                None => self.version_count += 1,
            }
            prune(
                versions,
                self.watermark,
                &mut self.table,
                &mut self.version_count,
            );
        }
        self.table.drop_unreferenced();
        self.compact()
    }

    /// Copies the live versions into one batch once most held table rows are dead.
    fn compact(&mut self) -> Result<(), OperatorError> {
        if self.table.rows < 1024 || self.version_count * 2 > self.table.rows {
            return Ok(());
        }
        let mut order: Vec<(&[u8], i64, At)> = Vec::with_capacity(self.version_count);
        let mut deletes: Vec<(&[u8], i64)> = Vec::new();
        for (key, versions) in &self.versions {
            for (&time, at) in versions {
                match at {
                    Some(at) => order.push((key, time, *at)),
                    None => deletes.push((key, time)),
                }
            }
        }
        let (sources, map) = sources_of(&self.table);
        let indices: Vec<(usize, usize)> = order
            .iter()
            .map(|(_, _, (b, r))| (map[*b as usize], *r as usize))
            .collect();
        let columns = (0..self.spec.table_schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    sources.iter().map(|s| s.column(c).as_ref()).collect();
                interleave(&arrays, &indices).map_err(op_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let merged =
            RecordBatch::try_new(self.spec.table_schema.clone(), columns).map_err(op_err)?;
        let mut rebuilt: HashMap<Box<[u8]>, BTreeMap<i64, Option<At>>> = HashMap::new();
        for (i, (key, time, _)) in order.iter().enumerate() {
            rebuilt
                .entry((*key).into())
                .or_default()
                .insert(*time, Some((0, i as u32)));
        }
        for (key, time) in deletes {
            rebuilt.entry(key.into()).or_default().insert(time, None);
        }
        self.table.clear();
        let b = self.table.push(&merged);
        for _ in 0..order.len() {
            self.table.take(b);
        }
        self.versions = rebuilt;
        Ok(())
    }

    /// Emits the waiting stream rows before `until` (all with `None`), in event-time order.
    fn emit(
        &mut self,
        until: Option<i64>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let mut due = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            let (time, _) = *entry.key();
            if until.is_some_and(|w| time >= w) {
                break;
            }
            let (at, key) = entry.remove();
            due.push((time, at, key));
        }
        for chunk in due.chunks(OUTPUT_BATCH_ROWS) {
            let mut stream_rows = Vec::with_capacity(chunk.len());
            let mut table_rows = Vec::with_capacity(chunk.len());
            for (time, at, key) in chunk {
                let version = key
                    .as_ref()
                    .and_then(|k| self.versions.get(k))
                    .and_then(|v| v.range(..=*time).next_back())
                    .and_then(|(_, at)| *at);
                let written = self.resumed_through.is_some_and(|w| *time < w);
                let keep = match (version, self.spec.kind) {
                    (None, LookupKind::Inner) => false,
                    _ => !written,
                };
                if keep {
                    stream_rows.push(*at);
                    table_rows.push(version);
                }
            }
            if !stream_rows.is_empty() {
                out.push(self.output(&stream_rows, &table_rows)?);
            }
            for (_, (b, _), _) in chunk {
                self.stream.release(*b);
            }
        }
        Ok(())
    }

    /// The joined rows: each stream row with its version (NULLs for `None`).
    fn output(
        &self,
        stream_rows: &[At],
        table_rows: &[Option<At>],
    ) -> Result<RecordBatch, OperatorError> {
        let (stream_sources, stream_map) = sources_of(&self.stream);
        let stream_indices: Vec<(usize, usize)> = stream_rows
            .iter()
            .map(|(b, r)| (stream_map[*b as usize], *r as usize))
            .collect();
        let stream_cols = (0..self.spec.stream_out)
            .map(|c| {
                let arrays: Vec<&dyn Array> = stream_sources
                    .iter()
                    .map(|s| s.column(c).as_ref())
                    .collect();
                interleave(&arrays, &stream_indices).map_err(op_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (table_sources, table_map) = sources_of(&self.table);
        // The last source is one NULL row, for stream rows without a version.
        let null_source = table_sources.len();
        let table_indices: Vec<(usize, usize)> = table_rows
            .iter()
            .map(|v| match v {
                Some((b, r)) => (table_map[*b as usize], *r as usize),
                None => (null_source, 0),
            })
            .collect();
        let table_cols = self
            .spec
            .table_schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| {
                let nulls = new_null_array(f.data_type(), 1);
                let mut arrays: Vec<&dyn Array> =
                    table_sources.iter().map(|s| s.column(c).as_ref()).collect();
                arrays.push(nulls.as_ref());
                interleave(&arrays, &table_indices).map_err(op_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns = match self.spec.table_first {
            true => table_cols.into_iter().chain(stream_cols).collect(),
            false => stream_cols.into_iter().chain(table_cols).collect(),
        };
        RecordBatch::try_new(self.spec.output_schema.clone(), columns).map_err(op_err)
    }

    /// Drops, for every key, the versions no stream row can join any more.
    fn prune_all(&mut self) {
        let watermark = self.watermark;
        for versions in self.versions.values_mut() {
            prune(
                versions,
                watermark,
                &mut self.table,
                &mut self.version_count,
            );
        }
        self.versions.retain(|_, v| !v.is_empty());
    }
}

/// Drops the versions of one key older than its last version at or before `watermark`:
/// every stream row still to be joined is at or after the watermark.
fn prune(
    versions: &mut BTreeMap<i64, Option<At>>,
    watermark: i64,
    table: &mut Held,
    count: &mut usize,
) {
    let Some((&current, _)) = versions.range(..=watermark).next_back() else {
        return;
    };
    let stale = versions.split_off(&current);
    let old = std::mem::replace(versions, stale);
    for (_, at) in old {
        if let Some((b, _)) = at {
            table.release(b);
        }
        *count -= 1;
    }
}

/// The held batches (in order) and, per batch index, its position among them.
fn sources_of(held: &Held) -> (Vec<&RecordBatch>, Vec<usize>) {
    let mut sources = Vec::new();
    let mut map = vec![usize::MAX; held.batches.len()];
    for (i, b) in held.batches.iter().enumerate() {
        if let Some(b) = b {
            map[i] = sources.len();
            sources.push(b);
        }
    }
    (sources, map)
}

fn op_err(e: impl std::error::Error + Send + Sync + 'static) -> OperatorError {
    OperatorError::from_cause(e)
}

impl Operator for AsOfJoinOp {
    fn name(&self) -> &str {
        "asof_join"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn is_stateless(&self) -> bool {
        false
    }

    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        self.process_side(0, input, out)
    }

    fn process_side(
        &mut self,
        side: usize,
        input: &RecordBatch,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        match side {
            0 => self.add_stream(input),
            1 => self.add_table(input),
            _ => Err(OperatorError::new(format!(
                "as-of join: no input side {side}"
            ))),
        }
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.emit(Some(watermark), out)?;
        if self.version_count > 2 * self.versions.len() + 64 {
            self.prune_all();
            self.compact()?;
        }
        Ok(())
    }

    fn state_size(&self) -> StateSize {
        StateSize {
            rows: self.version_count + self.pending.len(),
            bytes: self.table.bytes + self.stream.bytes,
        }
    }

    fn oldest_held(&self) -> Option<i64> {
        let pending = self.pending.keys().next().map(|(t, _)| *t);
        let version = self
            .versions
            .values()
            .filter_map(|v| v.keys().next().copied())
            .min();
        pending.into_iter().chain(version).min()
    }

    fn resume_after(&mut self, watermark: i64) {
        self.resumed_through = Some(watermark);
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        self.emit(None, out)?;
        self.versions.clear();
        self.version_count = 0;
        self.table.clear();
        self.stream.clear();
        Ok(())
    }
}

fn validate(spec: &AsOfJoinSpec) -> Result<(), String> {
    let ts = |schema: &SchemaRef, c: usize, what: &str| match schema.fields().get(c) {
        Some(f) if matches!(f.data_type(), DataType::Timestamp(TimeUnit::Millisecond, _)) => Ok(()),
        _ => Err(format!(
            "as-of join: the {what} event-time column is not a millisecond timestamp"
        )),
    };
    ts(&spec.stream_schema, spec.stream_time, "stream's")?;
    ts(&spec.table_schema, spec.table_time, "table's")?;
    if spec.stream_keys.len() != spec.table_keys.len() || spec.table_keys.is_empty() {
        return Err("as-of join: the stream and table keys differ in number".into());
    }
    for (&s, &t) in spec.stream_keys.iter().zip(&spec.table_keys) {
        let (Some(sf), Some(tf)) = (
            spec.stream_schema.fields().get(s),
            spec.table_schema.fields().get(t),
        ) else {
            return Err("as-of join: a key column is out of range".into());
        };
        if sf.data_type() != tf.data_type() {
            return Err(format!(
                "as-of join: keys {} ({}) and {} ({}) must have the same type",
                sf.name(),
                sf.data_type(),
                tf.name(),
                tf.data_type()
            ));
        }
    }
    if spec.stream_out > spec.stream_schema.fields().len() {
        return Err("as-of join: more output columns than stream columns".into());
    }
    let expected = spec.stream_out + spec.table_schema.fields().len();
    if spec.output_schema.fields().len() != expected {
        return Err(format!(
            "as-of join: output schema has {} columns, expected {expected}",
            spec.output_schema.fields().len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
