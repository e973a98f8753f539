//! `SPLIT_INDEX(text, separator, index)`: the `index`-th piece (counting from 0) of `text`
//! split at every occurrence of `separator`, as Flink computes it. Empty pieces count
//! (`SPLIT_INDEX('a,,b', ',', 2)` is `'b'`); NULL when an argument is NULL, when the index is
//! negative or past the last piece, and for empty text. An empty separator splits at white
//! space.

use super::{finish, int, text, text_arg};
use arrow::array::{Array, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Int64Type};
use datafusion_common::Result;
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The `SPLIT_INDEX` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    pub(super) fn new() -> Self {
        SplitIndex {
            signature: Signature::coercible(vec![text(), text(), int()], Volatility::Immutable),
        }
    }
}

/// The piece, if there is one.
fn piece<'a>(text: &'a str, separator: &str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if text.is_empty() {
        return None;
    }
    if separator.is_empty() {
        return text.split(char::is_whitespace).nth(index);
    }
    text.split(separator).nth(index)
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let text = text_arg(&args.args[0], rows)?;
        let separator = text_arg(&args.args[1], rows)?;
        let index = args.args[2].to_array(rows)?;
        let (text, separator) = (text.as_string::<i32>(), separator.as_string::<i32>());
        let index = index.as_primitive::<Int64Type>();
        let mut out = StringBuilder::with_capacity(rows, 0);
        for i in 0..rows {
            let found = (!text.is_null(i) && !separator.is_null(i) && !index.is_null(i))
                .then(|| piece(text.value(i), separator.value(i), index.value(i)))
                .flatten();
            out.append_option(found);
        }
        finish(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::piece;

    #[test]
    fn pieces_count_from_zero_keep_empty_ones_and_end_in_none() {
        let url = "https://www.nexmark.com/abc/def/item.htm?query=1";
        assert_eq!(piece(url, "/", 3), Some("abc"));
        assert_eq!(piece(url, "/", 1), Some(""));
        assert_eq!(piece(url, "/", 5), Some("item.htm?query=1"));
        assert_eq!(piece(url, "/", 6), None);
        assert_eq!(piece(url, "/", -1), None);
        assert_eq!(piece("a,,b", ",", 2), Some("b"));
        assert_eq!(piece("", ",", 0), None);
        assert_eq!(piece("a b", "", 1), Some("b"));
        assert_eq!(piece("a--b--c", "--", 2), Some("c"));
    }
}
