//! What the planner needs beyond the findings, read here where the tables already are in
//! memory (from SQLite it took 0.47–0.62 s at 1M users for the new groups' members, and the
//! links had to be read back after the plan stored them).
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;

use super::{collect, deregister, register, strings, utf8_column, EngineError, Finding};
use crate::model::User;
use crate::vocab::FindingKind;

mod new_groups;

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

/// The members of the groups `group.missing` found, per app: by lookups ([`new_groups`]), or by
/// `new_group_members.sql` when the keys do not suit an index.
pub async fn new_group_members(ctx: &SessionContext, findings: &[Finding]) -> Result<NewGroupMembers, EngineError> {
    let creating: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::GroupMissing)
        .filter_map(|f| Some((f.app.as_str(), f.idp_id.as_deref()?)))
        .collect();
    if creating.is_empty() {
        return Ok(NewGroupMembers::new());
    }
    match new_groups::by_lookups(ctx, &creating).await? {
        Some(found) => Ok(found),
        None => by_query(ctx, &creating).await,
    }
}

/// [`new_group_members`] by `new_group_members.sql`.
async fn by_query(ctx: &SessionContext, creating: &[(&str, &str)]) -> Result<NewGroupMembers, EngineError> {
    let mut out = NewGroupMembers::new();
    let batches = query_over(ctx, &NEW_GROUP_MEMBERS, creating.iter().copied()).await?;
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
///
/// The rows of `queries/plan/member_links.sql` (its definition, which a property test compares
/// with this), found by looking each link up in a set of the users named instead of joining
/// strings: at 1M users the join of 132k named users with 975k links, and the tables in and out
/// of it, took 0.16-0.17 s on one thread.
pub async fn member_links(ctx: &SessionContext, findings: &[Finding], new_groups: &NewGroupMembers) -> Result<MemberLinks, EngineError> {
    let mut named: HashMap<&str, HashSet<&str>> = HashMap::new();
    let added = findings
        .iter()
        .filter(|f| f.kind == FindingKind::GroupMembers && f.attribute.as_deref() == Some("add"))
        .filter_map(|f| Some((f.app.as_str(), f.new_value.as_deref()?)));
    let members = new_groups
        .iter()
        .flat_map(|(app, groups)| groups.values().flatten().map(move |user| (app.as_str(), user.as_str())));
    for (app, user) in added.chain(members) {
        named.entry(app).or_default().insert(user);
    }
    if named.is_empty() {
        return Ok(MemberLinks::new());
    }
    let links = collect(
        ctx,
        "planner/member_links: links",
        "SELECT app, idp_user_id, sp_user_id FROM links WHERE status <> 'conflict'",
    )
    .await?;
    let columns: Vec<[ArrayRef; 3]> = links
        .iter()
        .map(|b| ["app", "idp_user_id", "sp_user_id"].map(|c| utf8_column(b, c)))
        .collect();
    let (first, second) = halves(&columns);
    let found = tokio::task::block_in_place(|| {
        let (mut found, more) = crate::threads::join(|| accounts_of(&named, &first), || accounts_of(&named, &second));
        found.extend(more);
        found
    });
    let mut out = MemberLinks::new();
    for (app, user, account) in found {
        let accounts = out
            .entry(app.to_string())
            .or_insert_with(|| HashMap::with_capacity(named.get(app).map_or(0, HashSet::len)));
        match accounts.get_mut(user) {
            // Two accounts linked to one IdP user: the greatest id, whatever the row order.
            Some(kept) if kept.as_str() < account => *kept = account.to_string(),
            Some(_) => {}
            None => {
                accounts.insert(user.to_string(), account.to_string());
            }
        }
    }
    Ok(out)
}

/// `links` (app, IdP user, account columns) cut in two at their middle row, for two threads:
/// the batch that holds it is sliced (which copies nothing).
type LinkColumns = Vec<[ArrayRef; 3]>;

fn halves(links: &[[ArrayRef; 3]]) -> (LinkColumns, LinkColumns) {
    let mut left = links.iter().map(|columns| columns[0].len()).sum::<usize>() / 2;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for columns in links {
        let len = columns[0].len();
        let cut = left.min(len);
        left -= cut;
        if cut > 0 {
            first.push(columns.clone().map(|c| c.slice(0, cut)));
        }
        if cut < len {
            second.push(columns.clone().map(|c| c.slice(cut, len - cut)));
        }
    }
    (first, second)
}

/// The (app, IdP user, account) of each link whose user `named` holds for its app.
fn accounts_of<'l>(named: &HashMap<&str, HashSet<&str>>, links: &'l [[ArrayRef; 3]]) -> Vec<(&'l str, &'l str, &'l str)> {
    let mut out = Vec::new();
    for columns in links {
        let [app, user, account] = columns.each_ref().map(|c| c.as_string::<i32>());
        // The set of the app of the row before, looked up again only when the app changes.
        let mut set: Option<(&str, Option<&HashSet<&str>>)> = None;
        for row in 0..app.len() {
            if app.is_null(row) || user.is_null(row) || account.is_null(row) {
                continue; // no join on NULL; MAX ignores a NULL account
            }
            let row_app = app.value(row);
            let users = match set {
                Some((a, users)) if a == row_app => users,
                _ => {
                    let users = named.get(row_app);
                    set = Some((row_app, users));
                    users
                }
            };
            if users.is_some_and(|users| users.contains(user.value(row))) {
                out.push((row_app, user.value(row), account.value(row)));
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sql_text as quoted;
    use proptest::prelude::*;

    /// A stored link: (app, IdP user id, account id, status).
    type Link = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    /// The member links by lookups, and by `member_links.sql` over the same users named.
    async fn both_ways(
        links: &[Link],
        added: &[(&'static str, Option<&'static str>)],
        new_groups: &NewGroupMembers,
    ) -> (MemberLinks, MemberLinks) {
        let ctx = crate::engine::session();
        let rows = links
            .iter()
            .map(|(app, user, account, status)| format!("({}, {}, {}, {})", quoted(*app), quoted(*user), quoted(*account), quoted(*status)))
            .collect();
        let ddl = format!(
            "CREATE TABLE links (app TEXT, idp_user_id TEXT, sp_user_id TEXT, status TEXT){}",
            crate::engine::values_clause(rows)
        );
        ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        let member = |app: &str, attribute: &str, user: Option<&str>| Finding {
            app: app.into(),
            kind: FindingKind::GroupMembers,
            subject: None,
            idp_id: Some("g".into()),
            sp_id: Some("sg".into()),
            attribute: Some(attribute.into()),
            old_value: None,
            new_value: user.map(str::to_string),
            detail: None,
        };
        // A removal names no user to link.
        let findings: Vec<Finding> = added
            .iter()
            .map(|(app, user)| member(app, "add", *user))
            .chain([member("a0", "remove", Some("u2"))])
            .collect();
        let by_lookups = member_links(&ctx, &findings, new_groups).await.unwrap();
        let mut named: Vec<(&str, &str)> = added.iter().filter_map(|(app, user)| Some((*app, (*user)?))).collect();
        for (app, groups) in new_groups {
            named.extend(groups.values().flatten().map(|user| (app.as_str(), user.as_str())));
        }
        named.sort_unstable();
        named.dedup();
        let mut by_query = MemberLinks::new();
        for b in query_over(&ctx, &MEMBER_LINKS, named).await.unwrap() {
            let rows = strings(&b, "app")
                .into_iter()
                .zip(strings(&b, "user_id"))
                .zip(strings(&b, "sp_user_id"));
            for ((app, user), account) in rows {
                if let (Some(app), Some(user), Some(account)) = (app, user, account) {
                    by_query.entry(app).or_default().insert(user, account);
                }
            }
        }
        (by_lookups, by_query)
    }

    fn one_of(values: &'static [&'static str], weight: f64) -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::weighted(weight, proptest::sample::select(values))
    }

    const APPS: &[&str] = &["a0", "a1"];
    const USERS: &[&str] = &["u1", "u2", "U1", "é", ""];
    const ACCOUNTS: &[&str] = &["s1", "s2", "s10", "S1"];
    const STATUSES: &[&str] = &["kept", "new", "idp_gone", "conflict", "takeover"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn lookups_give_the_accounts_of_member_links_sql(
            links in proptest::collection::vec((one_of(APPS, 0.95), one_of(USERS, 0.9), one_of(ACCOUNTS, 0.9), one_of(STATUSES, 0.95)), 0..40),
            added in proptest::collection::vec((proptest::sample::select(APPS), one_of(USERS, 0.9)), 0..8),
            members in proptest::collection::vec((proptest::sample::select(APPS), proptest::sample::select(&["g1", "g2"][..]), proptest::sample::select(USERS)), 0..8),
        ) {
            let mut new_groups = NewGroupMembers::new();
            for (app, group, user) in members {
                new_groups.entry(app.to_string()).or_default().entry(group.to_string()).or_default().push(user.to_string());
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (by_lookups, by_query) = runtime.block_on(both_ways(&links, &added, &new_groups));
            prop_assert_eq!(by_lookups, by_query);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_greatest_account_of_a_user_named_is_taken_and_conflicts_are_left_out() {
        let links: Vec<Link> = vec![
            (Some("a0"), Some("u1"), Some("s1"), Some("kept")),
            (Some("a0"), Some("u1"), Some("s2"), Some("new")),
            (Some("a0"), Some("u1"), Some("s9"), Some("conflict")),
            (Some("a0"), Some("u2"), Some("s3"), Some("conflict")),
            (Some("a1"), Some("u1"), Some("t1"), Some("kept")),
            (Some("a0"), Some("u3"), Some("s4"), Some("kept")),
        ];
        let (by_lookups, by_query) = both_ways(&links, &[("a0", Some("u1")), ("a0", Some("u2"))], &NewGroupMembers::new()).await;
        let want: MemberLinks = [("a0".to_string(), [("u1".to_string(), "s2".to_string())].into())].into();
        assert_eq!(by_lookups, want, "u2's only link is a conflict; u3 and a1's u1 are not named");
        assert_eq!(by_query, want);
    }
}
