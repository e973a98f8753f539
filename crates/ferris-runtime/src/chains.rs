//! The operator chains of one keyed partition: a single chain, or (for a query reading a
//! repartition topic in a consumer group) one chain per source partition, so that the
//! state of a partition's keys can be dropped whole when the group moves partitions.

use crate::job::OperatorFactory;
use crate::message::GroupEpoch;
use crate::operator::{Operator, OperatorError, StateSize};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What drives a chain.
#[derive(Clone, Copy)]
pub(crate) enum Step {
    /// A batch was processed; nothing else happens.
    Batch,
    /// Event time advanced.
    Watermark(i64),
    /// The input ended.
    Finish,
}

/// What a batch's group assignment means for the chains (see [`Chains::enter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entered {
    /// The assignment the chains belong to (or the first one).
    Same,
    /// A new assignment: the chains were dropped.
    Restarted,
    /// An earlier assignment: the batch must not reach the chains.
    Stale,
}

/// The chains of one keyed partition.
pub(crate) struct Chains {
    factory: OperatorFactory,
    /// One chain per source partition (else one chain, under key 0).
    per_partition: bool,
    /// Applied to every chain: results up to this event time were written before a restart.
    resume_after: Option<i64>,
    /// The group assignment the chains belong to (per-partition chains).
    epoch: Option<Arc<GroupEpoch>>,
    chains: BTreeMap<u32, Vec<Box<dyn Operator>>>,
    /// A chain that is never fed: operator names and the output schema.
    template: Vec<Box<dyn Operator>>,
    /// The watermark every chain has seen.
    watermark: i64,
    /// Rows into and out of each operator position since [`Chains::take_counts`].
    counts: Vec<RowCount>,
}

/// Rows into and out of one operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RowCount {
    /// Rows it was given.
    pub(crate) rows_in: u64,
    /// Rows it emitted.
    pub(crate) rows_out: u64,
    /// Time spent in it.
    pub(crate) nanos: u64,
    /// Steps it was driven through.
    pub(crate) calls: u64,
}

impl Chains {
    /// Chains built by `factory`; with `per_partition`, one per source partition.
    pub(crate) fn new(
        factory: OperatorFactory,
        per_partition: bool,
        resume_after: Option<i64>,
    ) -> Result<Self, String> {
        let template = factory()?;
        if template.is_empty() {
            return Err("a keyed stage without operators".into());
        }
        let mut chains = Chains {
            factory,
            per_partition,
            resume_after,
            epoch: None,
            chains: BTreeMap::new(),
            counts: vec![RowCount::default(); template.len()],
            template,
            watermark: i64::MIN,
        };
        if !per_partition {
            chains.chain(0).map_err(|e| e.message)?;
        }
        Ok(chains)
    }

    /// The operators' names, in chain order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.template
            .iter()
            .map(|op| op.name().to_string())
            .collect()
    }

    /// Rows into and out of each operator (chain order, summed over the chains) since the
    /// last call.
    pub(crate) fn take_counts(&mut self) -> Vec<RowCount> {
        let n = self.counts.len();
        std::mem::replace(&mut self.counts, vec![RowCount::default(); n])
    }

    /// The schema of the chains' output.
    pub(crate) fn schema(&self) -> SchemaRef {
        match self.template.last() {
            Some(op) => op.schema(),
            None => Arc::new(arrow::datatypes::Schema::empty()),
        }
    }

    /// A batch read under `epoch`: when it is a new group assignment, per-partition chains
    /// are dropped without emitting anything (the source reads every partition again from
    /// its committed offset, and the new owner of a moved partition emits its keys'
    /// results); a batch of an earlier assignment (a join's other input switched first) is
    /// stale: its rows are read again under the new one.
    pub(crate) fn enter(&mut self, epoch: Option<&Arc<GroupEpoch>>) -> Entered {
        let Some(epoch) = epoch else {
            return Entered::Same;
        };
        if !self.per_partition {
            return Entered::Same;
        }
        match &self.epoch {
            Some(e) if e.generation == epoch.generation => Entered::Same,
            Some(e) if e.generation > epoch.generation => Entered::Stale,
            current => {
                let restarted = current.is_some();
                self.epoch = Some(epoch.clone());
                self.chains.clear();
                self.watermark = i64::MIN;
                if restarted {
                    Entered::Restarted
                } else {
                    Entered::Same
                }
            }
        }
    }

    /// The chain of `partition`, created (and told what was written before) on first use.
    fn chain(&mut self, partition: u32) -> Result<&mut Vec<Box<dyn Operator>>, OperatorError> {
        let key = if self.per_partition { partition } else { 0 };
        if !self.chains.contains_key(&key) {
            let mut ops = (self.factory)().map_err(OperatorError::new)?;
            let stored = self.epoch.as_ref().and_then(|e| {
                e.resume_after
                    .iter()
                    .find(|(p, _)| *p == key)
                    .map(|(_, wm)| *wm)
            });
            if let Some(wm) = stored.max(self.resume_after) {
                for op in ops.iter_mut() {
                    op.resume_after(wm);
                }
            }
            if self.watermark > i64::MIN {
                let out = drive(
                    &mut ops,
                    None,
                    Step::Watermark(self.watermark),
                    &mut self.counts,
                )?;
                if out.iter().any(|b| b.num_rows() > 0) {
                    return Err(OperatorError::new("a new operator chain emitted rows"));
                }
            }
            self.chains.insert(key, ops);
        }
        self.chains
            .get_mut(&key)
            .ok_or_else(|| OperatorError::new("missing operator chain"))
    }

    /// Processes rows of source `partition` from input `side`.
    pub(crate) fn batch(
        &mut self,
        partition: u32,
        side: usize,
        records: &RecordBatch,
    ) -> Result<Vec<RecordBatch>, OperatorError> {
        self.chain(partition)?;
        let key = if self.per_partition { partition } else { 0 };
        let chain = self
            .chains
            .get_mut(&key)
            .ok_or_else(|| OperatorError::new("missing operator chain"))?;
        drive(chain, Some((side, records)), Step::Batch, &mut self.counts)
    }

    /// Drives every chain with a watermark or the end of input.
    pub(crate) fn step(&mut self, step: Step) -> Result<Vec<RecordBatch>, OperatorError> {
        if let Step::Watermark(wm) = step {
            self.watermark = wm;
        }
        let mut out = Vec::new();
        for chain in self.chains.values_mut() {
            out.extend(drive(chain, None, step, &mut self.counts)?);
        }
        Ok(out)
    }

    /// Whether every chain has an operator that emits nothing more (see
    /// [`Operator::is_complete`]); never for per-partition chains, whose set grows.
    pub(crate) fn is_complete(&self) -> bool {
        !self.per_partition
            && !self.chains.is_empty()
            && self
                .chains
                .values()
                .all(|c| c.iter().any(|op| op.is_complete()))
    }

    /// The oldest event time any chain holds (see [`Operator::oldest_held`]).
    pub(crate) fn oldest_held(&self) -> Option<i64> {
        self.chains
            .values()
            .flat_map(|c| c.iter().filter_map(|op| op.oldest_held()))
            .min()
    }

    /// The state held per operator position, summed over the chains.
    pub(crate) fn state_sizes(&self) -> Vec<StateSize> {
        let mut sizes = vec![StateSize::default(); self.template.len()];
        for chain in self.chains.values() {
            for (size, op) in sizes.iter_mut().zip(chain) {
                let s = op.state_size();
                size.rows += s.rows;
                size.bytes += s.bytes;
            }
        }
        sizes
    }
}

/// Pushes one step through a chain: each operator processes what the previous one emitted
/// and then sees the watermark or end of input itself.
fn drive(
    ops: &mut [Box<dyn Operator>],
    input: Option<(usize, &RecordBatch)>,
    step: Step,
    counts: &mut [RowCount],
) -> Result<Vec<RecordBatch>, OperatorError> {
    let mut carried: Vec<RecordBatch> = Vec::new();
    for (i, op) in ops.iter_mut().enumerate() {
        let rows_in: usize = match (i, input) {
            (0, Some((_, b))) => b.num_rows(),
            (0, None) => 0,
            _ => carried.iter().map(RecordBatch::num_rows).sum(),
        };
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        let result = drive_one(op.as_mut(), i == 0, input, &carried, step, &mut out);
        let nanos = started.elapsed().as_nanos() as u64;
        if let Err(mut e) = result {
            // Name the operator that failed ("aggregate: ...") when it did not.
            let name = op.name();
            if !e.message.starts_with(&format!("{name}:")) {
                e.message = format!("{name}: {}", e.message);
            }
            return Err(e);
        }
        if let Some(c) = counts.get_mut(i) {
            c.rows_in += rows_in as u64;
            c.rows_out += out.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            c.nanos += nanos;
            c.calls += 1;
        }
        carried = out;
    }
    Ok(carried)
}

/// One operator's part of [`drive`]: the first takes the input, the others what the previous
/// one emitted; then each sees the step.
fn drive_one(
    op: &mut dyn Operator,
    first: bool,
    input: Option<(usize, &RecordBatch)>,
    carried: &[RecordBatch],
    step: Step,
    out: &mut Vec<RecordBatch>,
) -> Result<(), OperatorError> {
    if first {
        if let Some((side, b)) = input {
            op.process_side(side, b, out)?;
        }
    } else {
        for b in carried {
            if b.num_rows() > 0 {
                op.process_batch(b, out)?;
            }
        }
    }
    match step {
        Step::Batch => Ok(()),
        Step::Watermark(wm) => op.process_watermark(wm, out),
        Step::Finish => op.finish(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    /// Counts its rows; at the end emits (count, resumed-after watermark or -1).
    struct Count {
        rows: u64,
        resumed: Option<i64>,
        schema: SchemaRef,
    }

    impl Operator for Count {
        fn name(&self) -> &str {
            "count"
        }
        fn describe(&self) -> String {
            "Count".into()
        }
        fn schema(&self) -> SchemaRef {
            self.schema.clone()
        }
        fn process_batch(
            &mut self,
            input: &RecordBatch,
            _out: &mut Vec<RecordBatch>,
        ) -> Result<(), OperatorError> {
            self.rows += input.num_rows() as u64;
            Ok(())
        }
        fn state_size(&self) -> StateSize {
            StateSize {
                rows: self.rows as usize,
                bytes: 0,
            }
        }
        fn resume_after(&mut self, watermark: i64) {
            self.resumed = Some(watermark);
        }
        fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
            let columns = vec![
                Arc::new(Int64Array::from(vec![self.rows as i64])) as _,
                Arc::new(Int64Array::from(vec![self.resumed.unwrap_or(-1)])) as _,
            ];
            out.push(
                RecordBatch::try_new(self.schema.clone(), columns)
                    .map_err(|e| OperatorError::new(e.to_string()))?,
            );
            Ok(())
        }
    }

    fn factory() -> OperatorFactory {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("rows", DataType::Int64, false),
            Field::new("resumed", DataType::Int64, false),
        ]));
        Arc::new(move || {
            Ok(vec![Box::new(Count {
                rows: 0,
                resumed: None,
                schema: schema.clone(),
            }) as Box<dyn Operator>])
        })
    }

    fn rows(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))])
            .expect("batch")
    }

    /// (rows, resumed) per chain at the end, in partition order.
    fn finish(c: &mut Chains) -> Vec<(i64, i64)> {
        c.step(Step::Finish)
            .expect("finish")
            .iter()
            .map(|b| {
                let col = |i: usize| {
                    b.column(i)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("int64")
                        .value(0)
                };
                (col(0), col(1))
            })
            .collect()
    }

    fn epoch(generation: u64, resume_after: Vec<(u32, i64)>) -> Arc<GroupEpoch> {
        Arc::new(GroupEpoch {
            generation,
            resume_after,
        })
    }

    #[test]
    fn per_partition_chains_start_over_with_each_assignment() {
        let mut c = Chains::new(factory(), true, None).expect("chains");
        assert_eq!(c.names(), vec!["count".to_string()]);
        // The first assignment: partition 1 resumes after 500.
        assert_eq!(c.enter(Some(&epoch(1, vec![(1, 500)]))), Entered::Same);
        c.batch(0, 0, &rows(3)).expect("batch");
        c.batch(1, 0, &rows(2)).expect("batch");
        c.batch(0, 0, &rows(1)).expect("batch");
        // The same generation (a join's other input carries other resume points).
        assert_eq!(c.enter(Some(&epoch(1, Vec::new()))), Entered::Same);
        assert_eq!(c.state_sizes()[0].rows, 6);
        // A new assignment drops every chain without output; a batch of the old one that
        // arrives after it is stale.
        assert_eq!(c.enter(Some(&epoch(2, vec![(0, 700)]))), Entered::Restarted);
        assert_eq!(c.enter(Some(&epoch(1, Vec::new()))), Entered::Stale);
        assert_eq!(c.state_sizes()[0].rows, 0);
        c.batch(0, 0, &rows(4)).expect("batch");
        c.batch(2, 0, &rows(5)).expect("batch");
        assert_eq!(finish(&mut c), vec![(4, 700), (5, -1)]);
    }

    #[test]
    fn one_chain_takes_every_partition_and_keeps_it_across_assignments() {
        let mut c = Chains::new(factory(), false, Some(42)).expect("chains");
        c.batch(0, 0, &rows(3)).expect("batch");
        assert_eq!(c.enter(Some(&epoch(1, vec![(1, 500)]))), Entered::Same);
        assert_eq!(c.enter(Some(&epoch(2, Vec::new()))), Entered::Same);
        c.batch(1, 0, &rows(2)).expect("batch");
        assert_eq!(finish(&mut c), vec![(5, 42)]);
    }
}
