//! Query results written as a table, CSV, JSON (an array), NDJSON or Parquet.
use std::io::Write;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use clap::ValueEnum;

use super::{AuditError, Rows};

/// How results are written (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// CSV (formula-looking cells quoted, unless `--keep-formulas`).
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Parquet (a file, with `-o`).
    Parquet,
}

impl Format {
    /// The format an output file's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "parquet" => Some(Format::Parquet),
            "txt" => Some(Format::Table),
            _ => None,
        }
    }

    /// `--format`, else the output file's extension, else a table on a terminal and CSV in a pipe.
    pub fn choose(asked: Option<Format>, out: Option<&Path>, terminal: bool) -> Format {
        asked
            .or_else(|| out.and_then(Format::from_path))
            .unwrap_or(if terminal && out.is_none() { Format::Table } else { Format::Csv })
    }
}

/// Write `rows` in `format` to `w`, with CSV cells that a spreadsheet would run as formulas
/// made text (see [`write_with`]).
pub fn write(rows: &Rows, format: Format, w: &mut (dyn Write + Send)) -> Result<(), AuditError> {
    write_with(rows, format, false, w)
}

/// Every text column of `batch` passed through `f`; other columns as they are.
fn map_text(batch: &RecordBatch, f: impl Fn(&str) -> std::borrow::Cow<'_, str>) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, ArrayRef, StringArray};
    use arrow::datatypes::DataType;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| -> Result<ArrayRef, arrow::error::ArrowError> {
            if !matches!(c.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                return Ok(c.clone());
            }
            let text = arrow::compute::cast(c, &DataType::Utf8)?;
            let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
            let mapped: StringArray = text.iter().map(|v| v.map(|v| f(v).into_owned())).collect();
            arrow::compute::cast(&mapped, c.data_type())
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(batch.schema(), columns)
}

/// Write `rows` in `format` to `w`. Human output (the table) escapes control characters, so
/// directory data cannot drive the terminal; CSV cells starting with `=`, `+`, `-` or `@` get a
/// leading `'` unless `keep_formulas` (OWASP CSV injection); JSON, NDJSON and Parquet keep the
/// data as it is.
pub fn write_with(rows: &Rows, format: Format, keep_formulas: bool, w: &mut (dyn Write + Send)) -> Result<(), AuditError> {
    let io = |e: &dyn std::fmt::Display| AuditError::Input(format!("writing the result: {e}"));
    let mapped = |f: fn(&str) -> std::borrow::Cow<'_, str>| -> Result<Vec<RecordBatch>, AuditError> {
        rows.batches.iter().map(|b| map_text(b, f).map_err(|e| io(&e))).collect()
    };
    match format {
        Format::Table => {
            let batches = mapped(crate::terminal::printable)?;
            let text = arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| io(&e))?;
            writeln!(w, "{text}").map_err(|e| io(&e))?;
            writeln!(w, "({} row{})", rows.len(), if rows.len() == 1 { "" } else { "s" }).map_err(|e| io(&e))?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *w);
            if rows.is_empty() {
                // The header alone, so an empty result is still a valid CSV with its columns.
                let names: Vec<&str> = rows.schema.fields().iter().map(|f| f.name().as_str()).collect();
                drop(writer);
                writeln!(w, "{}", names.join(",")).map_err(|e| io(&e))?;
            } else {
                let guarded;
                let batches = if keep_formulas {
                    &rows.batches
                } else {
                    guarded = mapped(crate::terminal::csv_cell)?;
                    &guarded
                };
                for b in batches {
                    writer.write(b).map_err(|e| io(&e))?;
                }
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *w);
            for b in &rows.batches {
                writer.write(b).map_err(|e| io(&e))?;
            }
            writer.finish().map_err(|e| io(&e))?;
            writeln!(w).map_err(|e| io(&e))?;
        }
        Format::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *w);
            for b in &rows.batches {
                writer.write(b).map_err(|e| io(&e))?;
            }
            writer.finish().map_err(|e| io(&e))?;
        }
        Format::Parquet => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut *w, rows.schema.clone(), None).map_err(|e| io(&e))?;
            for b in &rows.batches {
                writer.write(b).map_err(|e| io(&e))?;
            }
            writer.close().map_err(|e| io(&e))?;
        }
    }
    w.flush().map_err(|e| io(&e))
}
