//! Stateless operators evaluating DataFusion physical expressions on each batch.

use arrow::array::{Array, BooleanArray};
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_physical_expr::PhysicalExpr;
use ferris_runtime::{Operator, OperatorError, RowMap};
use std::sync::Arc;

fn df_err(e: impl std::error::Error + Send + Sync + 'static) -> OperatorError {
    OperatorError::from_cause(e)
}

/// Where `predicate` is true on the rows of `input` (NULL counts as false).
pub(crate) fn predicate_mask(
    predicate: &dyn PhysicalExpr,
    input: &RecordBatch,
) -> Result<BooleanArray, OperatorError> {
    let mask = predicate
        .evaluate(input)
        .and_then(|v| v.into_array(input.num_rows()))
        .map_err(df_err)?;
    let mask = mask
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| OperatorError::new("the predicate is not boolean"))?;
    Ok(if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    })
}

/// Keeps the rows for which `predicate` is true (NULL counts as false).
pub struct FilterOp {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
    text: String,
    /// The rows of the last batch it kept (shared buffer: no copy).
    last: Option<BooleanArray>,
}

impl FilterOp {
    /// A filter over batches of `schema`; `text` is the predicate as written for EXPLAIN.
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef, text: String) -> Self {
        FilterOp {
            predicate,
            schema,
            text,
            last: None,
        }
    }
}

impl Operator for FilterOp {
    fn name(&self) -> &str {
        "filter"
    }
    fn describe(&self) -> String {
        format!("Filter: {}", self.text)
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let mask = predicate_mask(self.predicate.as_ref(), input)?;
        if mask.true_count() == input.num_rows() {
            out.push(input.clone());
        } else {
            out.push(filter_record_batch(input, &mask).map_err(df_err)?);
        }
        self.last = Some(mask);
        Ok(())
    }
    fn row_map(&self) -> RowMap {
        match &self.last {
            Some(m) => RowMap::Mask(m.clone()),
            None => RowMap::Unknown,
        }
    }
}

/// Computes the output columns.
pub struct ProjectOp {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    text: String,
}

impl ProjectOp {
    /// A projection producing `schema` from `exprs`; `text` lists them for EXPLAIN.
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef, text: String) -> Self {
        ProjectOp {
            exprs,
            schema,
            text,
        }
    }
}

impl Operator for ProjectOp {
    fn name(&self) -> &str {
        "project"
    }
    fn describe(&self) -> String {
        format!("Project: {}", self.text)
    }
    fn row_map(&self) -> RowMap {
        RowMap::Identity
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let n = input.num_rows();
        let columns = self
            .exprs
            .iter()
            .map(|e| e.evaluate(input).and_then(|v| v.into_array(n)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(df_err)?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(df_err)?;
        out.push(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_common::DataFusionError;
    use datafusion_expr::Operator as BinaryOp;
    use datafusion_physical_expr::expressions::{BinaryExpr, Column};

    #[test]
    fn an_evaluation_error_keeps_datafusions_error_as_its_source() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        let div: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("a", 0)),
            BinaryOp::Divide,
            Arc::new(Column::new("b", 1)),
        ));
        let out_schema = Arc::new(Schema::new(vec![Field::new("q", DataType::Int64, true)]));
        let mut op = ProjectOp::new(vec![div], out_schema, "a / b".into());
        let input = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![6, 1])),
                Arc::new(Int64Array::from(vec![3, 0])),
            ],
        )
        .expect("batch");
        let err = op
            .process_batch(&input, &mut Vec::new())
            .expect_err("1 / 0 fails");
        assert_eq!(err.message, "Arrow error: Divide by zero error");
        let source = std::error::Error::source(&err).expect("a source");
        assert!(
            source.downcast_ref::<DataFusionError>().is_some(),
            "{source:?}"
        );
    }
}
