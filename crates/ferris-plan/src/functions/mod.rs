//! Scalar functions Flink and ksqlDB users write that DataFusion's library lacks (or spells
//! differently): `HOUR`, `MINUTE`, … (parts of a timestamp), `REGEXP_EXTRACT`, `SPLIT_INDEX`.
//! Each is a DataFusion scalar UDF, so it plans, types and evaluates like a built-in.

mod date_parts;
mod regexp_extract;
mod split_index;

use datafusion_expr::ScalarUDF;
use std::sync::Arc;

/// Every function of this module, to add to the catalog's library.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    let mut all: Vec<Arc<ScalarUDF>> = date_parts::all();
    all.push(Arc::new(ScalarUDF::new_from_impl(
        regexp_extract::RegexpExtract::new(),
    )));
    all.push(Arc::new(ScalarUDF::new_from_impl(
        split_index::SplitIndex::new(),
    )));
    all
}

/// A text argument (any string type).
fn text() -> datafusion_expr::Coercion {
    use datafusion_expr::{Coercion, TypeSignatureClass};
    Coercion::new_exact(TypeSignatureClass::Native(
        datafusion_common::types::logical_string(),
    ))
}

/// An integer argument, taken as BIGINT.
fn int() -> datafusion_expr::Coercion {
    use datafusion_common::types::{NativeType, logical_int64};
    use datafusion_expr::{Coercion, TypeSignatureClass};
    Coercion::new_implicit(
        TypeSignatureClass::Native(logical_int64()),
        vec![TypeSignatureClass::Integer],
        NativeType::Int64,
    )
}

/// A value as UTF-8 text of `rows` rows, and its finished builder as the function's answer
/// (a scalar when every argument was one).
fn finish(
    out: arrow::array::StringBuilder,
    scalar: bool,
) -> datafusion_common::Result<datafusion_expr::ColumnarValue> {
    use datafusion_expr::ColumnarValue;
    let mut out = out;
    let array = out.finish();
    if scalar {
        return Ok(ColumnarValue::Scalar(
            datafusion_common::ScalarValue::try_from_array(&array, 0)?,
        ));
    }
    Ok(ColumnarValue::Array(std::sync::Arc::new(array)))
}

/// The first argument, cast to UTF-8 text (the sources give `Utf8`; casts and literals may
/// give the other string types), as an array of `rows` rows.
fn text_arg(
    value: &datafusion_expr::ColumnarValue,
    rows: usize,
) -> datafusion_common::Result<arrow::array::ArrayRef> {
    let array = value.to_array(rows)?;
    Ok(arrow::compute::cast(
        &array,
        &arrow::datatypes::DataType::Utf8,
    )?)
}
