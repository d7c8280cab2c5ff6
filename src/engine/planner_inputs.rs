//! What the planner needs beyond the findings, read here where the tables already are in
//! memory (from SQLite it took 0.47–0.62 s at 1M users).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;

use super::{collect, deregister, register, strings, EngineError, Finding};

const NEW_GROUP_MEMBERS: &str = include_str!("../../queries/plan/new_group_members.sql");

/// App → IdP group id → its members' IdP ids (key order), for each group `group.missing`
/// found: the members a POST /Groups sends.
pub type NewGroupMembers = BTreeMap<String, HashMap<String, Vec<String>>>;

pub async fn new_group_members(ctx: &SessionContext, findings: &[Finding]) -> Result<NewGroupMembers, EngineError> {
    let creating: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f.kind == "group.missing")
        .filter_map(|f| Some((f.app.as_str(), f.idp_id.as_deref()?)))
        .collect();
    let mut out = NewGroupMembers::new();
    if creating.is_empty() {
        return Ok(out);
    }
    let column = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
    let batch = RecordBatch::try_from_iter([
        ("app", column(creating.iter().map(|c| c.0).collect())),
        ("group_id", column(creating.iter().map(|c| c.1).collect())),
    ])
    .expect("two string columns of one length");
    register(ctx, "creating", vec![batch])?;
    let batches = collect(ctx, "planner/new_group_members", NEW_GROUP_MEMBERS).await?;
    deregister(ctx, "creating")?;
    for b in &batches {
        let rows = strings(b, "app").into_iter().zip(strings(b, "group_id")).zip(strings(b, "user_id"));
        for ((app, group), user) in rows {
            if let (Some(app), Some(group), Some(user)) = (app, group, user) {
                out.entry(app).or_default().entry(group).or_default().push(user);
            }
        }
    }
    Ok(out)
}
