//! Rows written many to an INSERT statement: SQLite's work per statement (binding, stepping,
//! resetting) was most of storing the first 1M plan's 975k links and a cold pull's 5M
//! memberships a side, one statement a row.
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

/// The rows one statement carries.
pub(crate) const ROWS_PER_INSERT: usize = 64;

/// Insert `rows` with `head` (`INSERT … INTO table (columns)`), `width` values each, as made by
/// `values`, `ROWS_PER_INSERT` rows to a statement (the rest in one shorter statement).
pub(crate) fn insert_rows<'r, T: 'r>(
    tx: &rusqlite::Transaction,
    head: &str,
    width: usize,
    rows: impl Iterator<Item = T>,
    values: impl Fn(&T) -> Vec<ToSqlOutput<'r>>,
) -> rusqlite::Result<()> {
    let row = format!("({})", vec!["?"; width].join(", "));
    let statement = |n: usize| format!("{head} VALUES {}", vec![row.as_str(); n].join(", "));
    let full = statement(ROWS_PER_INSERT);
    let mut chunk: Vec<ToSqlOutput<'r>> = Vec::with_capacity(ROWS_PER_INSERT * width);
    let flush = |chunk: &mut Vec<ToSqlOutput<'r>>| -> rusqlite::Result<()> {
        let n = chunk.len() / width;
        let shorter;
        let sql = match n {
            0 => return Ok(()),
            ROWS_PER_INSERT => &full,
            _ => {
                shorter = statement(n);
                &shorter
            }
        };
        tx.prepare_cached(sql)?.execute(rusqlite::params_from_iter(chunk.iter()))?;
        chunk.clear();
        Ok(())
    };
    for r in rows {
        chunk.extend(values(&r));
        if chunk.len() == ROWS_PER_INSERT * width {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)
}

/// A text value.
pub(crate) fn text(s: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

/// A text value or NULL.
pub(crate) fn opt_text(s: Option<&str>) -> ToSqlOutput<'_> {
    s.map_or(ToSqlOutput::Owned(Value::Null), text)
}

/// An integer value or NULL.
pub(crate) fn int<'a>(i: Option<i64>) -> ToSqlOutput<'a> {
    ToSqlOutput::Owned(i.map_or(Value::Null, Value::Integer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are inserted whole whatever their count against the rows a statement carries: none,
    /// one, a full statement, one more, and two full statements and a few; NULLs stay NULL.
    #[test]
    fn multi_row_inserts_store_every_row_across_statement_boundaries() {
        for n in [0, 1, ROWS_PER_INSERT, ROWS_PER_INSERT + 1, 2 * ROWS_PER_INSERT + 3] {
            let mut conn = rusqlite::Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, name TEXT, note TEXT)")
                .unwrap();
            let rows: Vec<(i64, String)> = (0..n as i64).map(|k| (k, format!("row {k}"))).collect();
            let tx = conn.transaction().unwrap();
            insert_rows(&tx, "INSERT INTO t (k, name, note)", 3, rows.iter(), |(k, name)| {
                vec![int(Some(*k)), text(name), opt_text((k % 2 == 0).then_some("even"))]
            })
            .unwrap();
            tx.commit().unwrap();
            let stored: Vec<(i64, String, Option<String>)> = conn
                .prepare("SELECT k, name, note FROM t ORDER BY k")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let want: Vec<(i64, String, Option<String>)> = rows
                .iter()
                .map(|(k, name)| (*k, name.clone(), (k % 2 == 0).then(|| "even".to_string())))
                .collect();
            assert_eq!(stored, want, "{n} rows");
        }
    }
}
