//! `comparison_key(v1, v2, …)`: a 128-bit digest of a row's values, for finding the rows whose
//! values differ from another row's without holding both rows' values side by side. Each value
//! is hashed with a tag (null, or its bytes with their length), so two keys are equal only when
//! every argument is: equal values, or both null (up to a collision of xxh3-128, 2^-128 for one
//! pair). `queries/pairs.sql` keys each linked pair's IdP side, and compares the key with its
//! app side's: a 1M-user plan held every linked pair's attributes of both sides (a 159 MB hash
//! table and 291 MB of joined rows) to keep the 2 % that differ.
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// Bytes in a key.
const KEY_BYTES: i32 = 16;

#[derive(Debug, PartialEq, Eq, Hash)]
struct ComparisonKey {
    signature: Signature,
}

/// One argument, read as text or as a boolean (anything else is cast to text first).
enum Values<'a> {
    Text(&'a StringArray),
    Flag(&'a BooleanArray),
}

impl Values<'_> {
    /// Append the value at `row` to `buf`, tagged so that no two different sequences of values
    /// give the same bytes.
    fn append(&self, buf: &mut Vec<u8>, row: usize) {
        match self {
            Values::Text(a) if a.is_valid(row) => {
                let text = a.value(row).as_bytes();
                buf.push(2);
                buf.extend_from_slice(&(text.len() as u64).to_le_bytes());
                buf.extend_from_slice(text);
            }
            Values::Flag(a) if a.is_valid(row) => buf.extend_from_slice(&[1, u8::from(a.value(row))]),
            _ => buf.push(0),
        }
    }
}

impl ScalarUDFImpl for ComparisonKey {
    fn name(&self) -> &str {
        "comparison_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeBinary(KEY_BYTES))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        if args.args.is_empty() {
            return exec_err!("comparison_key takes at least one value");
        }
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|v| {
                let array = v.to_array(rows)?;
                Ok(match array.data_type() {
                    DataType::Boolean | DataType::Utf8 => array,
                    _ => arrow::compute::cast(&array, &DataType::Utf8)?,
                })
            })
            .collect::<Result<_>>()?;
        let columns: Vec<Values> = arrays
            .iter()
            .map(|a| match a.data_type() {
                DataType::Boolean => Values::Flag(a.as_boolean()),
                _ => Values::Text(a.as_string::<i32>()),
            })
            .collect();
        let mut keys = Vec::with_capacity(rows * KEY_BYTES as usize);
        let mut buf = Vec::with_capacity(256);
        for row in 0..rows {
            buf.clear();
            for column in &columns {
                column.append(&mut buf, row);
            }
            keys.extend_from_slice(&xxhash_rust::xxh3::xxh3_128(&buf).to_le_bytes());
        }
        let out = FixedSizeBinaryArray::try_new(KEY_BYTES, keys.into(), None)?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `comparison_key(…)` as a DataFusion function (any number of values of any type).
pub fn comparison_key() -> ScalarUDF {
    ScalarUDF::new_from_impl(ComparisonKey {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(columns: Vec<ArrayRef>) -> Vec<Vec<u8>> {
        let rows = columns[0].len();
        let args = ScalarFunctionArgs {
            args: columns.into_iter().map(ColumnarValue::Array).collect(),
            arg_fields: vec![],
            number_rows: rows,
            return_field: Arc::new(arrow::datatypes::Field::new("k", DataType::FixedSizeBinary(KEY_BYTES), false)),
            config_options: Default::default(),
        };
        let ColumnarValue::Array(out) = comparison_key().inner().invoke_with_args(args).unwrap() else {
            panic!("an array")
        };
        let out = out.as_fixed_size_binary();
        (0..rows).map(|i| out.value(i).to_vec()).collect()
    }

    #[test]
    fn keys_are_equal_only_when_every_value_is() {
        let text = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
        let k = keys(vec![
            text(&[Some("ab"), Some("ab"), Some("a"), None, Some(""), Some("ab"), Some("ab")]),
            text(&[Some("c"), Some("c"), Some("bc"), Some("c"), Some("c"), None, Some("c")]),
            Arc::new(BooleanArray::from(vec![
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(true),
            ])),
        ]);
        assert_eq!(k[0], k[1], "the same values");
        // Moving a byte between values, a null against an empty text, a value against a null,
        // a boolean: each differs.
        for (i, other) in k.iter().enumerate().skip(2) {
            assert_ne!(&k[0], other, "row {i}");
        }
        assert_ne!(k[3], k[4], "null against empty text");
    }
}
