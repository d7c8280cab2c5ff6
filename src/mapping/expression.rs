//! An expression checked by planning it with DataFusion as a projection over the IdP user's
//! columns: an unknown attribute or function is refused with its position.
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::attributes::{IDP_COLUMNS, IDP_STANDARD};

/// The columns an expression may read: the IdP user's columns, the standard attributes and the
/// IdP's declared custom attributes (all text, `active` a boolean).
fn input_schema(custom: &[String]) -> Schema {
    let names = IDP_COLUMNS
        .iter()
        .chain(IDP_STANDARD)
        .map(|s| s.to_string())
        .chain(custom.iter().cloned());
    let mut fields: Vec<Field> = Vec::new();
    for n in names {
        if fields.iter().all(|f| f.name() != &n) {
            let t = if n == "active" { DataType::Boolean } else { DataType::Utf8 };
            fields.push(Field::new(n, t, true));
        }
    }
    Schema::new(fields)
}

/// Parse the expression alone (so positions are the expression's), then plan it as a
/// projection; returns the non-column names it reads.
pub fn check(expression: &str, custom: &[String]) -> Result<Vec<String>, String> {
    if expression.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(expression)
        .map_err(|e| format!("expression `{expression}`: {e}"))?;
    parser.parse_expr().map_err(|e| format!("expression `{expression}`: {e}"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "expression `{expression}`: one scalar expression expected, found more after it at {}",
            parser.peek_token().span.start
        ));
    }
    let schema = Arc::new(input_schema(custom));
    let ctx = SessionContext::new();
    let table = MemTable::try_new(schema.clone(), vec![vec![]]).map_err(|e| e.to_string())?;
    ctx.register_table("idp_user", Arc::new(table)).map_err(|e| e.to_string())?;
    let sql = format!("SELECT CAST(({expression}) AS VARCHAR) AS value FROM idp_user");
    let plan = futures::executor::block_on(ctx.state().create_logical_plan(&sql)).map_err(|e| explain(expression, &e.to_string()))?;
    let shown = plan.display_indent().to_string();
    if ["Aggregate:", "WindowAggr:", "Subquery", "Window:"]
        .iter()
        .any(|n| shown.contains(n))
    {
        return Err(format!(
            "expression `{expression}`: aggregate, window functions and subqueries are not allowed (one value per user)"
        ));
    }
    let LogicalPlan::Projection(projection) = &plan else {
        return Err(format!("expression `{expression}`: not a projection"));
    };
    let mut reads: Vec<String> = projection.expr[0]
        .column_refs()
        .into_iter()
        .map(|c| c.name.clone())
        .filter(|n| !IDP_COLUMNS.contains(&n.as_str()))
        .collect();
    reads.sort();
    reads.dedup();
    Ok(reads)
}

/// DataFusion's error for the expression, with the position of the name it refused.
fn explain(expression: &str, error: &str) -> String {
    let first = error.lines().next().unwrap_or(error);
    let name = ["No field named ", "Invalid function '"]
        .iter()
        .find_map(|m| first.split_once(m).map(|(_, rest)| rest))
        .map(|rest| {
            rest.trim_start_matches('"')
                .split(['"', '\'', '.', ' '])
                .next()
                .unwrap_or_default()
                .to_string()
        });
    let at = name
        .filter(|n| !n.is_empty())
        .and_then(|n| expression.to_ascii_lowercase().find(&n.to_ascii_lowercase()))
        .map(|i| format!(" at column {}", expression[..i].chars().count() + 1))
        .unwrap_or_default();
    let what = if first.contains("No field named") {
        "unknown attribute"
    } else if first.contains("Invalid function") {
        "unknown function"
    } else {
        "does not plan"
    };
    format!("expression `{expression}`: {what}{at}: {first}")
}
