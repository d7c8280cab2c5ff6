//! `json_extract(text, path)` for auditors' SQL, as SQLite has it, so one query reads the
//! `attributes` column (a JSON object) in `scimsync sql` and in `sqlite3` alike:
//! `json_extract(attributes, '$.department')`, `json_extract(attributes, '$."custom.badge"')`.
//!
//! Paths: `$`, then `.name`, `."quoted name"` and `[index]` steps. A string comes back as its
//! text, a number as its digits, `true`/`false` as `1`/`0` (SQLite's integers), an object or
//! array as compact JSON, and a missing step or JSON `null` as NULL. Text that is not JSON is an
//! error naming the row, as SQLite's "malformed JSON".
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parse `$.a."b.c"[0]`; the error says what is wrong and where.
fn parse_path(path: &str) -> std::result::Result<Vec<Step>, String> {
    let Some(mut rest) = path.strip_prefix('$') else {
        return Err(format!("JSON path '{path}' must start with '$'"));
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(".\"") {
            let Some(end) = after.find('"') else {
                return Err(format!("JSON path '{path}': unclosed quote"));
            };
            steps.push(Step::Key(after[..end].to_string()));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!("JSON path '{path}': empty name"));
            }
            steps.push(Step::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err(format!("JSON path '{path}': unclosed '['"));
            };
            let index = after[..end]
                .trim()
                .parse()
                .map_err(|_| format!("JSON path '{path}': '[{}]' is not an index", &after[..end]))?;
            steps.push(Step::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(format!("JSON path '{path}': unexpected '{rest}'"));
        }
    }
    Ok(steps)
}

/// The value at `steps` as SQLite's `json_extract` would show it, or None.
fn extract(value: &Value, steps: &[Step]) -> Option<String> {
    let mut at = value;
    for step in steps {
        at = match step {
            Step::Key(k) => at.as_object()?.get(k)?,
            Step::Index(i) => at.as_array()?.get(*i)?,
        };
    }
    match at {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonExtract {
    signature: Signature,
}

impl ScalarUDFImpl for JsonExtract {
    fn name(&self) -> &str {
        "json_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [text, path] = args.args.as_slice() else {
            return plan_err!("json_extract takes two arguments: a JSON text and a path such as '$.department'");
        };
        let as_text = |v: &ColumnarValue| -> Result<ArrayRef> { Ok(arrow::compute::cast(&v.to_array(rows)?, &DataType::Utf8)?) };
        let (texts, paths) = (as_text(text)?, as_text(path)?);
        let (texts, paths) = (texts.as_string::<i32>(), paths.as_string::<i32>());
        // A literal path (the usual case) is parsed once.
        let fixed = match path {
            ColumnarValue::Scalar(_) if rows > 0 && !paths.is_null(0) => Some(parse_path(paths.value(0))),
            _ => None,
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for i in 0..rows {
            if texts.is_null(i) || paths.is_null(i) {
                out.append_null();
                continue;
            }
            let steps = match &fixed {
                Some(parsed) => parsed.clone(),
                None => parse_path(paths.value(i)),
            };
            let steps = match steps {
                Ok(s) => s,
                Err(e) => return exec_err!("json_extract: {e}"),
            };
            let value: Value = match serde_json::from_str(texts.value(i)) {
                Ok(v) => v,
                Err(e) => return exec_err!("json_extract: row {}: malformed JSON ({e})", i + 1),
            };
            out.append_option(extract(&value, &steps));
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(match (text, path) {
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&array, 0)?)
            }
            _ => ColumnarValue::Array(array),
        })
    }
}

/// `json_extract(text, path)` as a DataFusion function.
pub fn json_extract() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonExtract {
        signature: Signature::string(2, Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(json: &str, path: &str) -> Option<String> {
        extract(&serde_json::from_str(json).unwrap(), &parse_path(path).unwrap())
    }

    #[test]
    fn paths_read_as_sqlite_reads_them() {
        let j = r#"{"department":"Sales","custom.badge":"B1","n":3,"t":true,"a":[{"x":"y"}],"z":null}"#;
        assert_eq!(at(j, "$.department").as_deref(), Some("Sales"));
        assert_eq!(at(j, "$.\"custom.badge\"").as_deref(), Some("B1"));
        assert_eq!(at(j, "$.n").as_deref(), Some("3"));
        assert_eq!(at(j, "$.t").as_deref(), Some("1"));
        assert_eq!(at(j, "$.a[0].x").as_deref(), Some("y"));
        assert_eq!(at(j, "$.a").as_deref(), Some(r#"[{"x":"y"}]"#));
        assert_eq!(at(j, "$.z"), None);
        assert_eq!(at(j, "$.missing"), None);
        assert!(parse_path("department").is_err());
        assert!(parse_path("$.\"open").is_err());
        assert!(parse_path("$[x]").is_err());
    }
}
