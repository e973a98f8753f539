//! `REGEXP_EXTRACT(text, pattern [, group])`: the text of capture group `group` (0, the
//! default, is the whole match) of the first match of `pattern` in `text`, as Flink computes
//! it. NULL when an argument is NULL, when nothing matches, when the group took no part in
//! the match, or when the group does not exist. A constant pattern that is not a valid
//! regular expression is a planning error; a pattern read from a column that is not valid
//! gives NULL for that row (as in Flink).

use super::{finish, int, text, text_arg};
use arrow::array::{Array, AsArray, Int64Array, StringBuilder};
use arrow::datatypes::{DataType, Int64Type};
use datafusion_common::{Result, plan_err};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use regex::Regex;
use std::collections::HashMap;
use std::sync::Arc;

/// The `REGEXP_EXTRACT` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    pub(super) fn new() -> Self {
        RegexpExtract {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Coercible(vec![text(), text()]),
                    TypeSignature::Coercible(vec![text(), text(), int()]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        if let Some(Some(pattern)) = args.scalar_arguments.get(1)
            && let Some(Some(p)) = pattern.try_as_str()
            && let Err(e) = Regex::new(p)
        {
            let reason = e.to_string();
            let reason = reason
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(&reason)
                .to_string();
            return plan_err!(
                "REGEXP_EXTRACT() pattern '{p}' is not a valid regular expression: {reason}"
            );
        }
        Ok(Arc::new(arrow::datatypes::Field::new(
            self.name(),
            DataType::Utf8,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let text = text_arg(&args.args[0], rows)?;
        let pattern = text_arg(&args.args[1], rows)?;
        let group = match args.args.get(2) {
            Some(g) => g.to_array(rows)?,
            None => Arc::new(Int64Array::from_value(0, rows)),
        };
        let (text, pattern) = (text.as_string::<i32>(), pattern.as_string::<i32>());
        let group = group.as_primitive::<Int64Type>();
        let mut compiled: HashMap<&str, Option<Regex>> = HashMap::new();
        let mut out = StringBuilder::with_capacity(rows, 0);
        for i in 0..rows {
            if text.is_null(i) || pattern.is_null(i) || group.is_null(i) {
                out.append_null();
                continue;
            }
            let p = pattern.value(i);
            let re = compiled.entry(p).or_insert_with(|| Regex::new(p).ok());
            let found = re.as_ref().and_then(|re| {
                let index = usize::try_from(group.value(i)).ok()?;
                re.captures(text.value(i))?.get(index)
            });
            match found {
                Some(m) => out.append_value(m.as_str()),
                None => out.append_null(),
            }
        }
        finish(out, scalar)
    }
}
