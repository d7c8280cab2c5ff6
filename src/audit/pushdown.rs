//! Conditions handed to SQLite as a store table is read, so that it skips the rows a query
//! does not want instead of handing them over: comparisons of a column with a literal written
//! in the query, and DataFusion's dynamic filters (a hash join's build-side keys, known only
//! once the build side is read: `report changes_since_previous_pull` joins millions of
//! memberships with the few last runs).
//!
//! Every condition is inexact: DataFusion still applies what it pushed down, so SQLite need
//! only keep every row DataFusion would. A condition SQLite cannot be trusted to evaluate as
//! DataFusion does is left out (in a conjunction, leaving one out keeps more rows, never fewer).
use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr as LogicalBinary, Expr, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, IsNullExpr, Literal};
use datafusion::physical_expr_common::physical_expr::{snapshot_physical_expr, PhysicalExpr};

use crate::store::{sql_ident, sql_text};

/// The columns of a table SQLite may compare as DataFusion does: declared TEXT or INTEGER.
/// SQLite stores a value of such a column as text or as an integer (its type affinity), so it
/// compares it with a literal of that kind as DataFusion does (text byte by byte, its default
/// collation). A column with no declared type (a view's computed column) keeps whatever it was
/// given: an integer there is not equal to the text DataFusion reads it as.
pub(super) struct Comparable<'a> {
    pub schema: &'a Schema,
    pub columns: &'a HashSet<String>,
}

impl Comparable<'_> {
    /// `name` quoted for SQLite, with its type, if SQLite may compare it.
    fn column(&self, name: &str) -> Option<(String, &DataType)> {
        if !self.columns.contains(name) {
            return None;
        }
        let field = self.schema.field_with_name(name).ok()?;
        Some((sql_ident(name), field.data_type()))
    }

    /// `column op value` as a SQLite condition, the column written `{prefix}"column"`, when
    /// SQLite may compare the column with the value.
    fn comparison(&self, column: &str, op: Operator, value: &ScalarValue, prefix: &str) -> Option<String> {
        let (name, kind) = self.column(column)?;
        Some(format!("{prefix}{name} {} {}", sql_operator(op)?, literal(kind, value)?))
    }
}

/// `value` as a SQLite literal compared with a column of type `column`: text with text,
/// integer with integer, nothing else.
fn literal(column: &DataType, value: &ScalarValue) -> Option<String> {
    match (column, value) {
        (DataType::Utf8, ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
            Some(sql_text(s))
        }
        (DataType::Int64, ScalarValue::Int64(Some(i))) => Some(i.to_string()),
        _ => None,
    }
}

fn sql_operator(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        _ => return None,
    })
}

/// A filter of the query (before planning) as a SQLite condition, when it compares a
/// comparable column with a literal of the column's own kind.
pub(super) fn logical(filter: &Expr, table: &Comparable) -> Option<String> {
    let Expr::BinaryExpr(LogicalBinary { left, op, right }) = filter else {
        return None;
    };
    let (column, op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
        (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
        _ => return None,
    };
    table.comparison(&column.name, op, value, "")
}

/// What a dynamic filter says now (it changes as the operator that made it learns more) as
/// SQLite conditions that together keep every row it keeps, as far as it can be said: its
/// comparisons of a column with literals, IN lists of literals and IS NULL tests, under AND and
/// OR; one condition for each part of its outermost AND, so that each can be weighed on its
/// own ([`selective`]). A filter that has not been set yet (`true`) says nothing.
pub(super) fn dynamic(filter: &Arc<dyn PhysicalExpr>, table: &Comparable) -> Vec<String> {
    let Ok(now) = snapshot_physical_expr(filter.clone()) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    conjuncts(&now, &mut parts);
    parts.iter().filter_map(|p| physical(p, table)).collect()
}

fn conjuncts(expr: &Arc<dyn PhysicalExpr>, out: &mut Vec<Arc<dyn PhysicalExpr>>) {
    match expr.downcast_ref::<BinaryExpr>() {
        Some(b) if *b.op() == Operator::And => {
            conjuncts(b.left(), out);
            conjuncts(b.right(), out);
        }
        _ => out.push(expr.clone()),
    }
}

/// The rows at the head of a table on which [`selective`] weighs a condition: a join's bounds
/// often span the whole table, and testing them cost more than they saved (member_keys' 9.8M rows at 1M users: 0.33 s read, 0.47 s with the bounds of
/// its group keys; links read with the bounds of their app and account ids: 0.25 → 0.33 s).
const SAMPLE_ROWS: usize = 4096;

/// Of `conditions` on `table` (its `columns`), those that turn away at least a quarter of the
/// table's first rows. Which rows come first is the table's storage order, so this is a guess,
/// never a matter of the answer: a condition left out only costs reading what it would have
/// skipped.
pub(super) fn selective(conn: &rusqlite::Connection, table: &str, columns: &[&str], conditions: Vec<String>) -> Vec<String> {
    let list = columns.iter().map(|c| sql_ident(c)).collect::<Vec<_>>().join(", ");
    let from = format!("(SELECT {list} FROM {} LIMIT {SAMPLE_ROWS})", sql_ident(table));
    conditions
        .into_iter()
        .filter(|c| {
            let sql = format!("SELECT count(*), coalesce(sum(CASE WHEN {c} THEN 1 ELSE 0 END), 0) FROM {from}");
            match conn.query_row(&sql, [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))) {
                Ok((sampled, kept)) => sampled == 0 || kept * 4 <= sampled * 3,
                Err(e) => {
                    tracing::debug!(table, "a dynamic filter not weighed ({e}): {c}");
                    false
                }
            }
        })
        .collect()
}

/// A physical filter as a SQLite condition, as [`dynamic`] says. Column references are by
/// name: the scan's output schema is the table's columns as projected. Each is written `+col`,
/// which SQLite compares as it compares `col` (the column's values are stored as the kind
/// compared with, see [`Comparable`]) but never through an index: a join's bounds often span
/// the whole table, and an index then made SQLite visit every row in the index's order (1.18 s
/// for 2M users against 0.53 s scanning them).
fn physical(expr: &Arc<dyn PhysicalExpr>, table: &Comparable) -> Option<String> {
    if let Some(b) = expr.downcast_ref::<BinaryExpr>() {
        return match b.op() {
            // Either side alone keeps every row both keep.
            Operator::And => match (physical(b.left(), table), physical(b.right(), table)) {
                (Some(l), Some(r)) => Some(format!("({l} AND {r})")),
                (one, other) => one.or(other),
            },
            // Both sides must be said, or neither.
            Operator::Or => Some(format!("({} OR {})", physical(b.left(), table)?, physical(b.right(), table)?)),
            op => {
                let (column, op, value) = match (column_of(b.left()), literal_of(b.right())) {
                    (Some(c), Some(v)) => (c, *op, v),
                    _ => (column_of(b.right())?, op.swap()?, literal_of(b.left())?),
                };
                table.comparison(column.name(), op, value, "+")
            }
        };
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        if list.negated() {
            return None;
        }
        let (name, kind) = table.column(column_of(list.expr())?.name())?;
        // A NULL in the list matches nothing (the test is NULL, not true, for a row not
        // otherwise in it): left out, the row is dropped all the same.
        let mut values = Vec::with_capacity(list.len());
        for item in list.list() {
            let value = literal_of(item)?;
            if value.is_null() {
                continue;
            }
            values.push(literal(kind, value)?);
        }
        return Some(if values.is_empty() {
            "0".to_string()
        } else {
            format!("+{name} IN ({})", values.join(", "))
        });
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        let (name, _) = table.column(column_of(is_null.arg())?.name())?;
        return Some(format!("+{name} IS NULL"));
    }
    None
}

fn column_of(expr: &Arc<dyn PhysicalExpr>) -> Option<&Column> {
    expr.downcast_ref::<Column>()
}

fn literal_of(expr: &Arc<dyn PhysicalExpr>) -> Option<&ScalarValue> {
    expr.downcast_ref::<Literal>().map(Literal::value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{col, in_list, is_null, lit, DynamicFilterPhysicalExpr};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("run_id", DataType::Int64, true),
            Field::new("source", DataType::Utf8, true),
            Field::new("computed", DataType::Utf8, true),
        ])
    }

    fn said(expr: Arc<dyn PhysicalExpr>) -> Option<String> {
        let schema = schema();
        let columns: HashSet<String> = ["run_id", "source"].into_iter().map(String::from).collect();
        physical(
            &expr,
            &Comparable {
                schema: &schema,
                columns: &columns,
            },
        )
    }

    fn binary(l: Arc<dyn PhysicalExpr>, op: Operator, r: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    fn run_id() -> Arc<dyn PhysicalExpr> {
        col("run_id", &schema()).unwrap()
    }

    /// The shape of a hash join's filter once its build side is read: the keys, then bounds.
    #[test]
    fn a_join_filter_becomes_an_in_list_and_its_bounds() {
        let keys = in_list(run_id(), vec![lit(5i64), lit(6i64)], &false, &schema()).unwrap();
        let bounds = binary(
            binary(run_id(), Operator::GtEq, lit(5i64)),
            Operator::And,
            binary(run_id(), Operator::LtEq, lit(6i64)),
        );
        assert_eq!(
            said(binary(keys, Operator::And, bounds)).as_deref(),
            Some("(+\"run_id\" IN (5, 6) AND (+\"run_id\" >= 5 AND +\"run_id\" <= 6))")
        );
    }

    #[test]
    fn what_cannot_be_said_is_left_out_of_a_conjunction_and_spoils_a_disjunction() {
        let computed = binary(col("computed", &schema()).unwrap(), Operator::Eq, lit("x"));
        let wrong_kind = binary(col("source", &schema()).unwrap(), Operator::Eq, lit(1i64));
        let run = binary(lit(3i64), Operator::Lt, run_id());
        assert_eq!(
            said(binary(computed.clone(), Operator::And, run.clone())).as_deref(),
            Some("+\"run_id\" > 3")
        );
        assert_eq!(
            said(binary(wrong_kind, Operator::And, run.clone())).as_deref(),
            Some("+\"run_id\" > 3")
        );
        assert_eq!(said(binary(computed.clone(), Operator::Or, run.clone())), None);
        assert_eq!(said(lit(true)), None);
        let negated = in_list(run_id(), vec![lit(5i64)], &true, &schema()).unwrap();
        assert_eq!(said(negated), None);
        let nulls = binary(is_null(run_id()).unwrap(), Operator::Or, run);
        assert_eq!(said(nulls).as_deref(), Some("(+\"run_id\" IS NULL OR +\"run_id\" > 3)"));
    }

    #[test]
    fn text_is_quoted_and_nulls_in_a_list_match_nothing() {
        let list = in_list(
            col("source", &schema()).unwrap(),
            vec![lit("it's"), lit(ScalarValue::Utf8(None))],
            &false,
            &schema(),
        )
        .unwrap();
        assert_eq!(said(list).as_deref(), Some("+\"source\" IN ('it''s')"));
        let only_null = in_list(run_id(), vec![lit(ScalarValue::Int64(None))], &false, &schema()).unwrap();
        assert_eq!(said(only_null).as_deref(), Some("0"));
    }

    #[test]
    fn a_dynamic_filter_is_said_as_it_is_now() {
        let filter = Arc::new(DynamicFilterPhysicalExpr::new(vec![run_id()], lit(true)));
        let as_expr: Arc<dyn PhysicalExpr> = filter.clone();
        let schema = schema();
        let columns: HashSet<String> = ["run_id"].into_iter().map(String::from).collect();
        let table = Comparable {
            schema: &schema,
            columns: &columns,
        };
        assert!(dynamic(&as_expr, &table).is_empty());
        let bounds = binary(
            binary(run_id(), Operator::GtEq, lit(5i64)),
            Operator::And,
            binary(col("computed", &schema).unwrap(), Operator::Eq, lit("x")),
        );
        filter
            .update(binary(binary(run_id(), Operator::Eq, lit(7i64)), Operator::And, bounds))
            .unwrap();
        assert_eq!(dynamic(&as_expr, &table), ["+\"run_id\" = 7", "+\"run_id\" >= 5"]);
    }

    /// Conditions that keep most of the table's first rows are not worth SQLite's time.
    #[test]
    fn only_conditions_that_turn_rows_away_are_kept() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (run_id INTEGER, gid INTEGER);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 10000)
             INSERT INTO t SELECT CASE WHEN v % 100 = 0 THEN 2 ELSE 1 END, v FROM n;
             CREATE TABLE empty (run_id INTEGER);",
        )
        .unwrap();
        let conditions = [
            "+\"run_id\" = 2",
            "+\"gid\" >= 1",
            "+\"gid\" <= 2000",
            "+\"gid\" <= 3500",
            "nope(1)",
        ];
        let kept = selective(&conn, "t", &["run_id", "gid"], conditions.iter().map(|c| c.to_string()).collect());
        // 4,096 rows sampled: run 2 keeps 40 of them, gid <= 2000 keeps 2,000 (under three
        // quarters), gid <= 3500 keeps 3,500 (over); an error is left out.
        assert_eq!(kept, ["+\"run_id\" = 2", "+\"gid\" <= 2000"]);
        assert_eq!(
            selective(&conn, "empty", &["run_id"], vec!["+\"run_id\" = 2".into()]),
            ["+\"run_id\" = 2"]
        );
    }
}
