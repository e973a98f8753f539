//! `YEAR(ts)`, `QUARTER`, `MONTH`, `WEEK`, `DAYOFYEAR`, `DAYOFMONTH`, `DAYOFWEEK`, `HOUR`,
//! `MINUTE`, `SECOND`: Flink's names for the fields of `EXTRACT`. Each calls DataFusion's
//! `date_part` with its field; `DAYOFWEEK` counts from 1 (Sunday) to 7 as Flink does, where
//! `date_part('dow')` counts from 0.

use arrow::array::{Array, Int32Array};
use arrow::datatypes::{DataType, Field};
use datafusion_common::{Result, ScalarValue, plan_err};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};
use std::sync::Arc;

/// One field of a date or timestamp, as a function of one argument.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DatePartOf {
    /// The function's name (lower case, as SQL names are normalized).
    name: &'static str,
    /// The `date_part` field it reads.
    part: &'static str,
    /// Added to `date_part`'s answer (1 for `DAYOFWEEK`).
    offset: i32,
    signature: Signature,
}

/// The functions, by Flink's names.
pub(super) fn all() -> Vec<Arc<ScalarUDF>> {
    [
        ("year", "year", 0),
        ("quarter", "quarter", 0),
        ("month", "month", 0),
        ("week", "week", 0),
        ("dayofyear", "doy", 0),
        ("dayofmonth", "day", 0),
        ("dayofweek", "dow", 1),
        ("hour", "hour", 0),
        ("minute", "minute", 0),
        ("second", "second", 0),
    ]
    .into_iter()
    .map(|(name, part, offset)| {
        Arc::new(ScalarUDF::new_from_impl(DatePartOf {
            name,
            part,
            offset,
            signature: Signature::any(1, datafusion_expr::Volatility::Immutable),
        }))
    })
    .collect()
}

impl ScalarUDFImpl for DatePartOf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Timestamp(..) | DataType::Date32 | DataType::Date64] => Ok(DataType::Int32),
            [DataType::Time32(_) | DataType::Time64(_)]
                if matches!(self.part, "hour" | "minute" | "second") =>
            {
                Ok(DataType::Int32)
            }
            [other] => plan_err!(
                "{}() takes a TIMESTAMP or DATE{}, not {other}",
                self.name.to_uppercase(),
                if matches!(self.part, "hour" | "minute" | "second") {
                    " (or TIME)"
                } else {
                    ""
                }
            ),
            _ => plan_err!("{}() takes one argument", self.name.to_uppercase()),
        }
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        args.args.insert(
            0,
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(self.part.to_string()))),
        );
        args.arg_fields
            .insert(0, Arc::new(Field::new("part", DataType::Utf8, false)));
        let value = datafusion_functions::datetime::date_part().invoke_with_args(args)?;
        if self.offset == 0 {
            return Ok(value);
        }
        let offset = self.offset;
        let shift =
            |a: &Int32Array| -> Int32Array { a.iter().map(|v| v.map(|v| v + offset)).collect() };
        match value {
            ColumnarValue::Array(a) => {
                let a = a.as_any().downcast_ref::<Int32Array>().ok_or_else(|| {
                    datafusion_common::DataFusionError::Internal(format!(
                        "date_part gave {} for {}",
                        a.data_type(),
                        self.name
                    ))
                })?;
                Ok(ColumnarValue::Array(Arc::new(shift(a))))
            }
            ColumnarValue::Scalar(ScalarValue::Int32(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Int32(v.map(|v| v + offset)),
            )),
            ColumnarValue::Scalar(other) => Ok(ColumnarValue::Scalar(other)),
        }
    }
}
