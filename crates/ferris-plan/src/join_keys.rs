//! The key columns of a join input in a keyed stage. A key that is a column is routed and
//! matched as it is; a key that is an expression (`ON LOWER(a.k) = b.k`) is computed in the
//! input's stateless stage, as a column appended after the input's own, so that the rows
//! are routed by it (across processes too: the repartition topic carries it) and the join
//! matches on it. The join leaves the appended columns out of its output.

use crate::error::PlanError;
use crate::physical::ExprPlanner;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::DFSchemaRef;
use datafusion_expr::Expr;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::Column;
use ferris_sql::ast::Span;
use std::sync::Arc;

/// The projection a join input's stateless stage ends with when a key is an expression:
/// every input column, then one column per computed key (`__key_N`).
#[derive(Debug, Clone)]
pub struct ComputedKeys {
    /// The expressions: the input's columns, then the keys.
    pub exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// The rows it makes.
    pub schema: SchemaRef,
    /// The keys as text, for EXPLAIN.
    pub text: String,
}

/// The key columns of one input (indices into its rows as the keyed stage receives them),
/// their types, and the projection that computes the expression keys (`None` when every key
/// is a column).
pub(crate) struct SideKeys {
    pub(crate) columns: Vec<usize>,
    pub(crate) types: Vec<DataType>,
    pub(crate) computed: Option<ComputedKeys>,
    /// The input's schema as the keyed stage receives it (with the computed keys).
    pub(crate) schema: SchemaRef,
}

/// The key columns of an input of `schema` for the key expressions `keys`.
pub(crate) fn side_keys(
    keys: &[&Expr],
    schema: &DFSchemaRef,
    span: Span,
) -> Result<SideKeys, PlanError> {
    let planner = ExprPlanner::new(schema.clone(), span);
    let arrow = schema.as_arrow();
    let width = arrow.fields().len();
    let mut columns = Vec::new();
    let mut types = Vec::new();
    let mut extra: Vec<(Arc<dyn PhysicalExpr>, Field, String)> = Vec::new();
    for e in keys {
        if let Expr::Column(c) = e {
            let i = schema
                .index_of_column(c)
                .map_err(|err| PlanError::at(err.to_string(), span))?;
            columns.push(i);
            types.push(arrow.field(i).data_type().clone());
            continue;
        }
        let p = planner.physical(e)?;
        let name = format!("__key_{}", extra.len());
        let field = planner.field(&name, &p)?.with_nullable(true);
        columns.push(width + extra.len());
        types.push(field.data_type().clone());
        extra.push((p, field, e.human_display().to_string()));
    }
    if extra.is_empty() {
        return Ok(SideKeys {
            columns,
            types,
            computed: None,
            schema: Arc::new(arrow.clone()),
        });
    }
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = arrow
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    let mut fields: Vec<Field> = arrow.fields().iter().map(|f| (**f).clone()).collect();
    let mut texts = Vec::new();
    for (p, f, t) in extra {
        texts.push(format!("{} AS {}", t, f.name()));
        exprs.push(p);
        fields.push(f);
    }
    let extended = Arc::new(Schema::new(fields));
    Ok(SideKeys {
        columns,
        types,
        computed: Some(ComputedKeys {
            exprs,
            schema: extended.clone(),
            text: format!("join keys: {}", texts.join(", ")),
        }),
        schema: extended,
    })
}
