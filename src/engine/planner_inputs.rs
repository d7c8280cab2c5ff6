//! What the planner needs beyond the findings, read here where the tables already are in
//! memory (from SQLite it took 0.47–0.62 s at 1M users for the new groups' members, and the
//! links had to be read back after the plan stored them).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;

use super::{collect, deregister, register, strings, EngineError, Finding};
use crate::model::User;
use crate::vocab::FindingKind;

/// One of the planner's queries: its SQL reads `input`, a two-column table the engine
/// registers from the findings; `views_session` gives it to the `.slt` tests as `view`.
pub(super) struct PlannerQuery {
    pub view: &'static str,
    pub sql: &'static str,
    pub input: &'static str,
    pub columns: [&'static str; 2],
}

const NEW_GROUP_MEMBERS: PlannerQuery = PlannerQuery {
    view: "plan_new_group_members",
    sql: include_str!("../../queries/plan/new_group_members.sql"),
    input: "creating",
    columns: ["app", "group_id"],
};
const MEMBER_LINKS: PlannerQuery = PlannerQuery {
    view: "plan_member_links",
    sql: include_str!("../../queries/plan/member_links.sql"),
    input: "named",
    columns: ["app", "user_id"],
};
const IDP_USERS: PlannerQuery = PlannerQuery {
    view: "plan_idp_users",
    sql: include_str!("../../queries/plan/idp_users.sql"),
    input: "wanted",
    columns: ["app", "user_id"],
};

pub(super) const QUERIES: [PlannerQuery; 3] = [NEW_GROUP_MEMBERS, MEMBER_LINKS, IDP_USERS];

/// App → IdP group id → its members' IdP ids (key order), for each group `group.missing`
/// found: the members a POST /Groups sends.
pub type NewGroupMembers = BTreeMap<String, HashMap<String, Vec<String>>>;

/// App → IdP user id → its linked app account id, for the users a group operation names.
pub type MemberLinks = BTreeMap<String, HashMap<String, String>>;

/// App → IdP user id → the user, for the users the planner needs whole.
pub type IdpUsers = BTreeMap<String, HashMap<String, User>>;

/// Register `rows` as a two-column string table.
pub(super) fn register_pairs(ctx: &SessionContext, name: &str, columns: [&str; 2], rows: &[(&str, &str)]) -> Result<(), EngineError> {
    let column = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
    let batch = RecordBatch::try_from_iter([
        (columns[0], column(rows.iter().map(|c| c.0).collect())),
        (columns[1], column(rows.iter().map(|c| c.1).collect())),
    ])
    .expect("two string columns of one length");
    register(ctx, name, vec![batch])
}

/// Run a planner query over `rows`, registered as its input table for as long as it runs; no
/// rows, no query (and no batches).
async fn query_over<'r>(
    ctx: &SessionContext,
    query: &PlannerQuery,
    rows: impl IntoIterator<Item = (&'r str, &'r str)>,
) -> Result<Vec<RecordBatch>, EngineError> {
    let rows: Vec<(&str, &str)> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    register_pairs(ctx, query.input, query.columns, &rows)?;
    let batches = collect(ctx, &format!("planner/{}", query.view.trim_start_matches("plan_")), query.sql).await;
    deregister(ctx, query.input)?;
    batches
}

/// The members of the groups `group.missing` found, per app.
pub async fn new_group_members(ctx: &SessionContext, findings: &[Finding]) -> Result<NewGroupMembers, EngineError> {
    let creating = findings
        .iter()
        .filter(|f| f.kind == FindingKind::GroupMissing)
        .filter_map(|f| Some((f.app.as_str(), f.idp_id.as_deref()?)));
    let mut out = NewGroupMembers::new();
    let batches = query_over(ctx, &NEW_GROUP_MEMBERS, creating).await?;
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

/// The accounts of the IdP users that group operations name: the members `group.members`
/// adds and those of the groups created (`new_groups`). Read from the plan's `links`, which
/// are what the store holds once the plan is written.
pub async fn member_links(ctx: &SessionContext, findings: &[Finding], new_groups: &NewGroupMembers) -> Result<MemberLinks, EngineError> {
    let mut named: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::GroupMembers && f.attribute.as_deref() == Some("add"))
        .filter_map(|f| Some((f.app.as_str(), f.new_value.as_deref()?)))
        .chain(
            new_groups
                .iter()
                .flat_map(|(app, groups)| groups.values().flatten().map(move |user| (app.as_str(), user.as_str()))),
        )
        .collect();
    // Each once. Sorted, not gathered into a tree: at 1M users (132k users named) the tree
    // took 0.05 s.
    named.sort_unstable();
    named.dedup();
    let mut out = MemberLinks::new();
    let batches = query_over(ctx, &MEMBER_LINKS, named).await?;
    for b in &batches {
        let rows = strings(b, "app")
            .into_iter()
            .zip(strings(b, "user_id"))
            .zip(strings(b, "sp_user_id"));
        for ((app, user), account) in rows {
            if let (Some(app), Some(user), Some(account)) = (app, user, account) {
                out.entry(app).or_default().insert(user, account);
            }
        }
    }
    Ok(out)
}

/// The IdP users whose operations need them whole: each user `user.missing` creates (the POST
/// body) and each whose given or family name changes (name.formatted is built from both).
pub async fn idp_users(ctx: &SessionContext, findings: &[Finding]) -> Result<IdpUsers, EngineError> {
    let renamed = |f: &Finding| f.kind == FindingKind::UserDrift && f.attribute.as_deref().is_some_and(|a| a.starts_with("name."));
    let wanted: BTreeSet<(&str, &str)> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::UserMissing || renamed(f))
        .filter_map(|f| Some((f.app.as_str(), f.idp_id.as_deref()?)))
        .collect();
    let mut out = IdpUsers::new();
    let batches = query_over(ctx, &IDP_USERS, wanted).await?;
    for b in &batches {
        let active = b.column_by_name("active").expect("idp_users.sql returns active").as_boolean();
        let mut text = [
            "app",
            "id",
            "user_name",
            "external_id",
            "given_name",
            "family_name",
            "formatted",
            "display_name",
            "email",
            "title",
            "phone",
            "timezone",
            "role",
        ]
        .map(|c| strings(b, c).into_iter());
        for row in 0..b.num_rows() {
            let mut next = |i: usize| text[i].next().flatten();
            let (app, id) = (next(0).unwrap_or_default(), next(1).unwrap_or_default());
            let user = User {
                id: id.clone(),
                user_name: next(2),
                external_id: next(3),
                given_name: next(4),
                family_name: next(5),
                formatted: next(6),
                display_name: next(7),
                email: next(8),
                active: active.is_valid(row) && active.value(row),
                title: next(9),
                phone: next(10),
                timezone: next(11),
                role: next(12),
                ..User::default()
            };
            out.entry(app).or_default().insert(id, user);
        }
    }
    Ok(out)
}
