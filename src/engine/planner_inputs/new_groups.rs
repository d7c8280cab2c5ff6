//! The members of the groups a plan creates by looking keys up, instead of
//! `queries/plan/new_group_members.sql` (their definition, and the way taken when the keys do
//! not suit an index).
//!
//! At 1M users the query joined 2,000 new groups with the 4.8M active memberships, its 97k rows
//! with the 2M users and the links, and sorted them: 0.12-0.18 s beside the membership diff,
//! whose threads it slowed, or after the findings in a first plan. Here the new groups' keys
//! mark a vector indexed by group key, one pass over the memberships keeps theirs, and the
//! users' index names them.
use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};
use datafusion::prelude::SessionContext;

use super::NewGroupMembers;
use crate::engine::group_members::{conflict_set, CONFLICTS};
use crate::engine::prior::{dense_span, ints, texts, typed, UserIndex};
use crate::engine::{collect, release_mapped_pages, table_columns, utf8_column, EngineError};

/// No new group at a key.
const NOT_NEW: u32 = u32::MAX;

/// The members of each group `creating` names (app, IdP group id; a pair named twice is
/// created twice, as by the query), in key order, but those a `user.conflict` holds back;
/// `None` when the keys do not suit an index.
pub(super) async fn by_lookups(ctx: &SessionContext, creating: &[(&str, &str)]) -> Result<Option<NewGroupMembers>, EngineError> {
    let apps = collect(ctx, "planner/new_group_members: apps", "SELECT app, idp_source FROM apps").await?;
    let conflicts = collect(ctx, "planner/new_group_members: conflicts", CONFLICTS).await?;
    let (Some(groups), Some(active), Some(users)) = (
        table_columns(ctx, "groups", &["gid", "source", "id"]).await?,
        table_columns(ctx, "active_members", &["gid", "uid"]).await?,
        table_columns(ctx, "users", &["uid", "id"]).await?,
    ) else {
        return Ok(None);
    };
    if !(typed(&groups, &[0], &[]) && typed(&active, &[0, 1], &[]) && typed(&conflicts, &[1], &[0]) && typed(&users, &[0], &[1])) {
        return Ok(None);
    }
    let Some(index) = UserIndex::new(&users) else {
        return Ok(None);
    };
    let found = tokio::task::block_in_place(|| {
        // Each app's IdP source. An app listed twice (the query would give each of its rows
        // twice) is left to the query.
        let mut sources: HashMap<String, String> = HashMap::new();
        for b in &apps {
            let (app, source) = (utf8_column(b, "app"), utf8_column(b, "idp_source"));
            let (app, source) = (app.as_string::<i32>(), source.as_string::<i32>());
            for i in (0..b.num_rows()).filter(|&i| app.is_valid(i) && source.is_valid(i)) {
                if sources.insert(app.value(i).to_string(), source.value(i).to_string()).is_some() {
                    return None;
                }
            }
        }
        // The new groups, in the order they are to be output, with how often each is named
        // (the query gives each member once per time its group is named).
        let mut named_pairs: Vec<(&str, &str)> = creating.iter().filter(|(app, _)| sources.contains_key(*app)).copied().collect();
        named_pairs.sort_unstable();
        let mut wanted: Vec<((&str, &str), usize)> = Vec::new();
        for pair in named_pairs {
            match wanted.last_mut() {
                Some((last, times)) if *last == pair => *times += 1,
                _ => wanted.push((pair, 1)),
            }
        }
        let by_group: HashSet<(&str, &str)> = wanted.iter().map(|((app, id), _)| (sources[*app].as_str(), *id)).collect();
        let (first, span) = dense_span(&groups, 0)?;
        // Group key → the (source, id) it is, for the groups named; NOT_NEW for the others.
        let mut named_at = vec![NOT_NEW; span];
        let mut named: Vec<(String, String)> = Vec::new();
        for b in &groups {
            let (gid, source, id) = (ints(b, 0), utf8_column(b, "source"), utf8_column(b, "id"));
            let (source, id) = (source.as_string::<i32>(), id.as_string::<i32>());
            for i in 0..b.num_rows() {
                if gid.is_null(i) || source.is_null(i) || id.is_null(i) || !by_group.contains(&(source.value(i), id.value(i))) {
                    continue;
                }
                let at = &mut named_at[(gid.value(i) - first) as usize];
                if *at != NOT_NEW {
                    return None; // a key twice: left to the query
                }
                *at = named.len() as u32;
                named.push((source.value(i).to_string(), id.value(i).to_string()));
            }
        }
        // Each named group's members' keys.
        let mut members: Vec<Vec<i64>> = vec![Vec::new(); named.len()];
        for b in &active {
            let (gid, uid) = (ints(b, 0), ints(b, 1));
            for i in 0..b.num_rows() {
                if gid.is_null(i) || uid.is_null(i) {
                    continue;
                }
                let at = usize::try_from(gid.value(i) - first).ok().and_then(|at| named_at.get(at));
                if let Some(&g) = at.filter(|g| **g != NOT_NEW) {
                    members[g as usize].push(uid.value(i));
                }
            }
        }
        let mut of_group: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
        for ((source, id), uids) in named.iter().zip(members) {
            of_group.entry((source.as_str(), id.as_str())).or_default().extend(uids);
        }
        of_group.values_mut().for_each(|uids| uids.sort_unstable());
        let held_back = conflict_set(&conflicts);
        let mut out = NewGroupMembers::new();
        for ((app, id), times) in wanted {
            let Some(uids) = of_group.get(&(sources[app].as_str(), id)) else {
                continue;
            };
            let mut names = Vec::new();
            for &uid in uids {
                if held_back.contains(&(app, uid)) {
                    continue;
                }
                let Some((b, row)) = index.row(uid) else { continue };
                let ids = texts(&users[b], 1);
                if ids.is_valid(row) {
                    names.extend(std::iter::repeat_n(ids.value(row), times).map(str::to_string));
                }
            }
            if !names.is_empty() {
                out.entry(app.to_string()).or_default().insert(id.to_string(), names);
            }
        }
        Some(out)
    });
    release_mapped_pages(ctx);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::engine::{sql_int as number, sql_text as quoted};

    /// A group: (key, source, id).
    type Group = (Option<i64>, Option<&'static str>, Option<&'static str>);
    /// A user: (key, id).
    type User = (Option<i64>, Option<&'static str>);
    /// A conflict's link: (app, IdP user key).
    type Conflict = (&'static str, Option<i64>);

    /// The new groups' members by lookups (`None`: left to the query) and by the query.
    async fn both_ways(
        groups: &[Group],
        members: &[(Option<i64>, Option<i64>)],
        users: &[User],
        conflicts: &[Conflict],
        creating: &[(&'static str, &'static str)],
    ) -> (Option<NewGroupMembers>, NewGroupMembers) {
        let ctx = crate::engine::session();
        let values = crate::engine::values_clause;
        for ddl in [
            "CREATE TABLE apps (app TEXT, idp_source TEXT) AS VALUES ('a0', 'idp'), ('a1', 'idp'), ('a2', 'other')".to_string(),
            format!(
                "CREATE TABLE groups (gid BIGINT, source TEXT, id TEXT){}",
                values(
                    groups
                        .iter()
                        .map(|(k, s, id)| format!("({}, {}, {})", number(*k), quoted(*s), quoted(*id)))
                        .collect()
                )
            ),
            format!(
                "CREATE TABLE active_members (gid BIGINT, uid BIGINT){}",
                values(members.iter().map(|(g, u)| format!("({}, {})", number(*g), number(*u))).collect())
            ),
            format!(
                "CREATE TABLE users (uid BIGINT, id TEXT){}",
                values(users.iter().map(|(k, id)| format!("({}, {})", number(*k), quoted(*id))).collect())
            ),
            format!(
                "CREATE TABLE links (app TEXT, idp_uid BIGINT, status TEXT){}",
                values(
                    conflicts
                        .iter()
                        .map(|(app, uid)| format!("('{app}', {}, 'conflict')", number(*uid)))
                        .chain(["('a0', 1, 'kept')".to_string()])
                        .collect()
                )
            ),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        let by_lookups = by_lookups(&ctx, creating).await.unwrap();
        let by_query = super::super::by_query(&ctx, creating).await.unwrap();
        (by_lookups, by_query)
    }

    fn some<T: std::fmt::Debug + Clone>(weight: f64, s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
        proptest::option::weighted(weight, s)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn lookups_give_the_members_new_group_members_sql_gives(
            spread in 0usize..3,
            groups in proptest::collection::vec((some(0.95, 1i64..8), some(0.95, proptest::sample::select(&["idp", "other"][..])), some(0.95, proptest::sample::select(&["g1", "g2", "g3"][..]))), 0..8),
            members in proptest::collection::vec((some(0.95, 1i64..9), some(0.95, 1i64..9)), 0..30),
            users in proptest::collection::vec((some(0.95, 1i64..9), some(0.9, proptest::sample::select(&["u1", "u2", "u3", "u4", "é"][..]))), 0..9),
            conflicts in proptest::collection::vec((proptest::sample::select(&["a0", "a1", "a2"][..]), some(0.9, 1i64..9)), 0..3),
            creating in proptest::collection::vec((proptest::sample::select(&["a0", "a1", "a2", "a3"][..]), proptest::sample::select(&["g1", "g2", "g3"][..])), 0..6),
        ) {
            // Keys as the store gives them (dense, unique) but when `spread` is 1 (spread wider
            // than an index covers) or 2 (repeated: left as generated).
            let unique = spread != 2;
            let k = |key: Option<i64>| key.map(|key| if spread == 1 { key << 20 } else { key });
            let mut seen = HashSet::new();
            let groups: Vec<Group> = groups.into_iter().filter(|(key, ..)| !unique || key.is_none_or(|key| seen.insert(key))).map(|(key, s, id)| (k(key), s, id)).collect();
            let mut seen = HashSet::new();
            let users: Vec<User> = users.into_iter().filter(|(key, _)| !unique || key.is_none_or(|key| seen.insert(key))).map(|(key, id)| (k(key), id)).collect();
            let members: Vec<_> = members.into_iter().map(|(g, u)| (k(g), k(u))).collect();
            let conflicts: Vec<Conflict> = conflicts.into_iter().map(|(app, u)| (app, k(u))).collect();
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (by_lookups, by_query) = runtime.block_on(both_ways(&groups, &members, &users, &conflicts, &creating));
            if spread == 0 {
                prop_assert!(by_lookups.is_some(), "the store's keys are looked up");
            }
            if let Some(by_lookups) = by_lookups {
                prop_assert_eq!(by_lookups, by_query);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_are_in_key_order_once_per_time_their_group_is_named_but_those_held_back() {
        let groups = [(Some(1), Some("idp"), Some("g1")), (Some(2), Some("other"), Some("g1"))];
        let members = [(Some(1), Some(3)), (Some(1), Some(2)), (Some(1), Some(4)), (Some(2), Some(5))];
        let users = [
            (Some(2), Some("u2")),
            (Some(3), Some("u3")),
            (Some(4), Some("u4")),
            (Some(5), Some("u5")),
        ];
        let (by_lookups, by_query) = both_ways(
            &groups,
            &members,
            &users,
            &[("a0", Some(4))],
            &[("a0", "g1"), ("a0", "g1"), ("a1", "g1")],
        )
        .await;
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let want: NewGroupMembers = [
            ("a0".to_string(), [("g1".to_string(), strings(&["u2", "u2", "u3", "u3"]))].into()),
            ("a1".to_string(), [("g1".to_string(), strings(&["u2", "u3", "u4"]))].into()),
        ]
        .into();
        assert_eq!(by_lookups, Some(want.clone()), "u4 is held back in a0 only; other's g1 is not a0's");
        assert_eq!(by_query, want);
    }
}
