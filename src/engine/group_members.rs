//! The `group.members` findings (`queries/drift/group.members.sql`), computed by looking keys
//! up.
//!
//! The query names the few rows of `member_diff` (211k at 1M users): it joins them with the
//! managed groups, the groups twice and the users, each a hash join whose build side is those
//! 211k rows, built on one thread: at 1M users 0.18–0.21 s with the other core mostly idle.
//! Here the groups' and the users' dense keys index their rows ([`UserIndex`]), the managed
//! groups are a map by app group key, and each difference becomes its finding directly, half of
//! them on each thread. The query stays the definition (a property test compares the two) and
//! the fallback for keys the index does not cover (never the store's own) or columns of other
//! types.
use std::collections::{HashMap, HashSet};

use arrow::array::{Array, PrimitiveArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;

use super::prior::{ints as int, texts as text, typed, UserIndex};
use super::{collect, findings, EngineError, Finding};
use crate::vocab::FindingKind;

/// The query's name in logs and errors.
const QUERY: &str = "drift/group.members";

/// The `group.members` findings, sorted: by lookups when the keys are dense and unique, else
/// by `sql` (the query).
pub(super) async fn sorted_findings(ctx: &SessionContext, sql: &str) -> Result<Vec<Finding>, EngineError> {
    if let Some(found) = by_lookups(ctx).await? {
        return Ok(found);
    }
    let batches = collect(ctx, QUERY, sql).await?;
    findings::sorted(QUERY, &batches)
}

/// [`sorted_findings`] by lookups; `None` when the groups' or users' keys are not dense or repeat, a
/// managed app group is there twice, or a column is not of the type the store gives.
async fn by_lookups(ctx: &SessionContext) -> Result<Option<Vec<Finding>>, EngineError> {
    let (diff, managed, groups, users, conflicts) = futures::try_join!(
        collect(ctx, "group.members: diff", "SELECT sp_gid, add_uid, remove_uid FROM member_diff"),
        collect(ctx, "group.members: managed", "SELECT sp_gid, app, idp_gid FROM managed_groups"),
        collect(ctx, "group.members: groups", "SELECT gid, id, display_name FROM groups"),
        collect(ctx, "group.members: users", "SELECT uid, id, user_name FROM users"),
        collect(ctx, "group.members: conflicts", CONFLICTS),
    )?;
    if !(typed(&diff, &[0, 1, 2], &[])
        && typed(&managed, &[0, 2], &[1])
        && typed(&groups, &[0], &[1, 2])
        && typed(&users, &[0], &[1, 2])
        && typed(&conflicts, &[1], &[0]))
    {
        tracing::warn!("group.members by lookups: a column is not of the store's type; the query answers instead");
        return Ok(None);
    }
    let (Some(group_rows), Some(user_rows)) = (UserIndex::new(&groups), UserIndex::new(&users)) else {
        return Ok(None);
    };
    let Some(managed) = managed_by_key(&managed) else {
        return Ok(None);
    };
    let conflicts = conflict_set(&conflicts);
    let lookups = Lookups {
        managed,
        conflicts,
        groups: &groups,
        group_rows,
        users: &users,
        user_rows,
    };
    // One batch (the diff is registered as one; 5 MB at 1M users), halved by rows.
    let diff = arrow::compute::concat_batches(&diff[0].schema(), &diff).map_err(|e| EngineError::Query {
        query: QUERY.into(),
        source: e.into(),
    })?;
    let found = tokio::task::block_in_place(|| {
        let sorted = |diff: RecordBatch| {
            let mut found = Vec::new();
            lookups.findings_of(&diff, &mut found);
            found.sort_unstable();
            found
        };
        let half = diff.num_rows() / 2;
        let (first, second) = crate::threads::join(|| sorted(diff.slice(0, half)), || sorted(diff.slice(half, diff.num_rows() - half)));
        findings::merge(vec![first, second])
    });
    Ok(Some(found))
}

/// The links of the users a `user.conflict` holds back: (app, IdP user key), read by
/// [`conflict_set`].
pub(super) const CONFLICTS: &str = "SELECT app, idp_uid FROM links WHERE status = 'conflict'";

/// The (app, IdP user key) of [`CONFLICTS`]' rows (a text and an integer column, see
/// [`typed`]): members that cannot be added.
pub(super) fn conflict_set(batches: &[RecordBatch]) -> HashSet<(&str, i64)> {
    batches
        .iter()
        .flat_map(|b| {
            let (apps, uids) = (text(b, 0), int(b, 1));
            (0..b.num_rows())
                .filter_map(move |r| Some((apps.is_valid(r).then(|| apps.value(r))?, uids.is_valid(r).then(|| uids.value(r))?)))
        })
        .collect()
}

/// The managed app groups by key: (app, IdP group key); `None` when a key is there twice (the
/// query would then report its members twice).
fn managed_by_key(batches: &[RecordBatch]) -> Option<ManagedByKey<'_>> {
    let mut out = HashMap::new();
    for b in batches {
        let (sp_gids, apps, idp_gids) = (int(b, 0), text(b, 1), int(b, 2));
        for r in 0..b.num_rows() {
            if sp_gids.is_null(r) {
                continue; // a join on NULL matches nothing
            }
            let app = apps.is_valid(r).then(|| apps.value(r));
            let idp_gid = idp_gids.is_valid(r).then(|| idp_gids.value(r));
            if out.insert(sp_gids.value(r), (app, idp_gid)).is_some() {
                return None;
            }
        }
    }
    Some(out)
}

/// App group key → (app, IdP group key).
type ManagedByKey<'a> = HashMap<i64, (Option<&'a str>, Option<i64>)>;

/// What a difference is looked up in.
struct Lookups<'a> {
    managed: ManagedByKey<'a>,
    /// (app, IdP user key) of each conflict's link: members that cannot be added.
    conflicts: HashSet<(&'a str, i64)>,
    /// `gid, id, display_name`, and their rows by `gid`.
    groups: &'a [RecordBatch],
    group_rows: UserIndex<'a>,
    /// `uid, id, user_name`, and their rows by `uid`.
    users: &'a [RecordBatch],
    user_rows: UserIndex<'a>,
}

impl Lookups<'_> {
    /// The findings of `diff`'s rows (sp_gid, add_uid, remove_uid), into `found`: the rows the
    /// query's inner joins keep, but a member to add whose link in the app is a conflict's.
    fn findings_of(&self, diff: &RecordBatch, found: &mut Vec<Finding>) {
        let (sp_gids, adds, removes) = (int(diff, 0), int(diff, 1), int(diff, 2));
        let value = |v: &PrimitiveArray<Int64Type>, r: usize| v.is_valid(r).then(|| v.value(r));
        for r in 0..diff.num_rows() {
            let (Some(sp_gid), add) = (value(sp_gids, r), value(adds, r)) else {
                continue;
            };
            let Some(&(app, Some(idp_gid))) = self.managed.get(&sp_gid) else {
                continue;
            };
            if let (Some(app), Some(add)) = (app, add) {
                if self.conflicts.contains(&(app, add)) {
                    continue;
                }
            }
            let Some(uid) = add.or(value(removes, r)) else {
                continue;
            };
            let (Some(group), Some(app_group), Some(user)) =
                (self.group_rows.row(idp_gid), self.group_rows.row(sp_gid), self.user_rows.row(uid))
            else {
                continue;
            };
            let at = |batches: &[RecordBatch], (b, row): (usize, usize), column: usize| {
                let values = text(&batches[b], column);
                values.is_valid(row).then(|| values.value(row).to_string())
            };
            let user_id = at(self.users, user, 1);
            found.push(Finding {
                app: app.unwrap_or_default().to_string(),
                kind: FindingKind::GroupMembers,
                subject: at(self.groups, group, 2),
                idp_id: at(self.groups, group, 1),
                sp_id: at(self.groups, app_group, 1),
                attribute: Some(if add.is_some() { "add" } else { "remove" }.to_string()),
                old_value: if add.is_none() { user_id.clone() } else { None },
                new_value: if add.is_some() { user_id } else { None },
                detail: at(self.users, user, 2),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A group or user: (key, id, name).
    type Named = (Option<i64>, Option<&'static str>, Option<&'static str>);
    /// A managed app group: (app, IdP group key, app group key).
    type Managed = (Option<&'static str>, Option<i64>, Option<i64>);
    /// A difference: (app group key, user key to add, user key to remove).
    type Diff = (Option<i64>, Option<i64>, Option<i64>);
    /// A link: (app, IdP user key, status).
    type Link = (Option<&'static str>, Option<i64>, &'static str);

    fn sql(v: Option<impl ToString>, quoted: bool) -> String {
        match v {
            Some(v) if quoted => format!("'{}'", v.to_string()),
            Some(v) => v.to_string(),
            None => "NULL".into(),
        }
    }

    /// The findings by lookups (`None` when it leaves them to the query), and by the query.
    async fn both_ways(
        groups: &[Named],
        users: &[Named],
        managed: &[Managed],
        diff: &[Diff],
        links: &[Link],
    ) -> (Option<Vec<Finding>>, Vec<Finding>) {
        let ctx = crate::engine::session();
        let values = crate::engine::values_clause;
        let named = |rows: &[Named]| {
            values(
                rows.iter()
                    .map(|(k, id, name)| format!("({}, {}, {})", sql(*k, false), sql(*id, true), sql(*name, true)))
                    .collect(),
            )
        };
        for ddl in [
            format!("CREATE TABLE groups (gid BIGINT, id TEXT, display_name TEXT){}", named(groups)),
            format!("CREATE TABLE users (uid BIGINT, id TEXT, user_name TEXT){}", named(users)),
            format!(
                "CREATE TABLE managed_groups (app TEXT, idp_gid BIGINT, sp_gid BIGINT){}",
                values(
                    managed
                        .iter()
                        .map(|(app, i, s)| format!("({}, {}, {})", sql(*app, true), sql(*i, false), sql(*s, false)))
                        .collect()
                )
            ),
            format!(
                "CREATE TABLE member_diff (sp_gid BIGINT, add_uid BIGINT, remove_uid BIGINT){}",
                values(
                    diff.iter()
                        .map(|(s, a, r)| format!("({}, {}, {})", sql(*s, false), sql(*a, false), sql(*r, false)))
                        .collect()
                )
            ),
            format!(
                "CREATE TABLE links (app TEXT, idp_uid BIGINT, status TEXT){}",
                values(
                    links
                        .iter()
                        .map(|(app, uid, status)| format!("({}, {}, '{status}')", sql(*app, true), sql(*uid, false)))
                        .collect()
                )
            ),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        let (_, query) = crate::engine::DRIFT_QUERIES
            .iter()
            .find(|(kind, _)| *kind == FindingKind::GroupMembers)
            .unwrap();
        let by_sql = findings::sorted(QUERY, &ctx.sql(query).await.unwrap().collect().await.unwrap()).unwrap();
        let native = by_lookups(&ctx).await.unwrap();
        assert_eq!(
            sorted_findings(&ctx, query).await.unwrap(),
            native.clone().unwrap_or_else(|| by_sql.clone())
        );
        (native, by_sql)
    }

    fn name() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::weighted(0.9, prop_oneof![Just("a"), Just("b"), Just("B"), Just("é"), Just("")])
    }

    fn key(range: std::ops::Range<i64>) -> impl Strategy<Value = Option<i64>> {
        proptest::option::weighted(0.9, range)
    }

    fn app() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::weighted(0.95, prop_oneof![Just("a0"), Just("a1")])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn lookups_give_the_findings_of_group_members_sql(
            spread in 0usize..4,
            groups in proptest::collection::vec((key(1..12), name(), name()), 0..12),
            users in proptest::collection::vec((key(1..12), name(), name()), 0..12),
            managed in proptest::collection::vec((app(), key(0..13), key(0..13)), 0..8),
            diff in proptest::collection::vec((key(0..13), key(0..13), key(0..13)), 0..30),
            links in proptest::collection::vec((app(), key(1..12), prop_oneof![2 => Just("conflict"), 1 => Just("kept")]), 0..12),
        ) {
            // Keys as the store gives them (dense, unique) most of the time; `spread` 1 spaces
            // them wider than the index covers, 2 moves them below 0; 3 lets them repeat.
            let k = |k: Option<i64>| k.map(|k| match spread {
                1 => k * (1 << 20),
                2 => k - 1_000,
                _ => k,
            });
            let unique = spread != 3;
            let once = |rows: Vec<Named>| {
                let mut seen = HashSet::new();
                rows.into_iter()
                    .filter(|(key, ..)| !unique || key.is_none_or(|key| seen.insert(key)))
                    .map(|(key, id, name)| (k(key), id, name))
                    .collect::<Vec<Named>>()
            };
            let (groups, users) = (once(groups), once(users));
            let mut seen = HashSet::new();
            let managed: Vec<Managed> = managed
                .into_iter()
                .filter(|(_, _, sp)| !unique || sp.is_none_or(|sp| seen.insert(sp)))
                .map(|(app, i, s)| (app, k(i), k(s)))
                .collect();
            let diff: Vec<Diff> = diff.into_iter().map(|(s, a, r)| (k(s), k(a), k(r))).collect();
            let links: Vec<Link> = links.into_iter().map(|(app, uid, status)| (app, k(uid), status)).collect();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (native, by_sql) = rt.block_on(both_ways(&groups, &users, &managed, &diff, &links));
            if spread != 1 && unique {
                prop_assert!(native.is_some(), "dense unique keys are looked up");
            }
            if let Some(native) = native {
                prop_assert_eq!(native, by_sql);
            }
        }
    }

    #[test]
    fn a_member_whose_link_is_a_conflict_is_not_added_and_unmanaged_groups_and_unknown_users_are_left_out() {
        let groups: Vec<Named> = vec![
            (Some(1), Some("G1"), Some("Eng")),
            (Some(2), Some("s1"), Some("Eng")),
            (Some(3), Some("G3"), Some("Ops")),
            (Some(4), Some("s3"), Some("ops")),
        ];
        let users: Vec<Named> = vec![
            (Some(10), Some("u10"), Some("ann")),
            (Some(11), Some("u11"), Some("bob")),
            (Some(12), Some("a12"), Some("ann")),
        ];
        let managed: Vec<Managed> = vec![(Some("a0"), Some(1), Some(2))]; // app group 4 is not managed
        let diff: Vec<Diff> = vec![
            (Some(2), Some(10), None), // add ann
            (Some(2), Some(11), None), // add bob: held back by his conflict
            (Some(2), None, Some(11)), // remove bob's account: still reported
            (Some(2), None, Some(12)), // remove ann's old account
            (Some(2), Some(13), None), // a user the users table does not have
            (Some(4), Some(10), None), // a group that is not managed
        ];
        let links: Vec<Link> = vec![(Some("a0"), Some(11), "conflict"), (Some("a1"), Some(10), "conflict")];
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let (native, by_sql) = rt.block_on(both_ways(&groups, &users, &managed, &diff, &links));
        let native = native.expect("dense keys are looked up");
        assert_eq!(native, by_sql);
        type Member<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let found: Vec<Member> = native
            .iter()
            .map(|f| {
                (
                    f.attribute.as_deref().unwrap(),
                    f.old_value.as_deref(),
                    f.new_value.as_deref(),
                    f.detail.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("add", None, Some("u10"), Some("ann")),
                ("remove", Some("a12"), None, Some("ann")),
                ("remove", Some("u11"), None, Some("bob"))
            ]
        );
        assert!(native.iter().all(|f| f.app == "a0"
            && f.subject.as_deref() == Some("Eng")
            && f.idp_id.as_deref() == Some("G1")
            && f.sp_id.as_deref() == Some("s1")));
    }
}
