//! `scope(app, uid)`, the rows of `queries/scope.sql` (the active IdP users in a group bound to
//! each app), computed without its `DISTINCT`.
//!
//! At 1M users the query's aggregation grouped 4.7M joined rows on (app, uid) into 962k, a
//! hash table keyed by a string and an integer: 0.56 s of its 0.6. Here the bound groups
//! (`queries/bound_groups.sql`, 98k rows) index a vector by group key, the active memberships
//! are streamed through it, and each app's users are bits in a bitmap by user key, read out in
//! key order. The store numbers its keys densely from 1; keys outside the ranges this covers
//! (never the store's own) are left to the query.
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::prelude::SessionContext;

use super::{collect, stream, EngineError, SCOPE};

/// `queries/bound_groups.sql`: (app, gid) of each bound IdP group.
pub const BOUND_GROUPS: &str = include_str!("../../queries/bound_groups.sql");

/// The widest span of bound group keys indexed (4 MiB entries of 4 bytes).
const MAX_GID_SPAN: i64 = 1 << 22;
/// The largest user key kept as a bit (a bitmap of at most 32 MiB an app).
const MAX_UID: i64 = 1 << 28;

/// The rows of `scope.sql`: natively when the keys fit, else by the query.
pub(super) async fn scope(ctx: &SessionContext) -> Result<Vec<RecordBatch>, EngineError> {
    let err = |source| EngineError::Query {
        query: "scope".into(),
        source,
    };
    let schema: SchemaRef = Arc::new(ctx.sql(SCOPE).await.map_err(err)?.schema().as_arrow().clone());
    let bound = collect(ctx, "scope/bound_groups", BOUND_GROUPS).await?;
    let Some(mut index) = BoundGroups::new(&bound) else {
        return collect(ctx, "scope", SCOPE).await;
    };
    drop(bound);
    let fits = stream(ctx, "scope/active_members", "SELECT gid, uid FROM active_members", |b| {
        let (gid, uid) = (ints(b, 0), ints(b, 1));
        (0..b.num_rows()).all(|i| gid.is_null(i) || index.add(gid.value(i), uid.is_valid(i).then(|| uid.value(i))))
    })
    .await?;
    if !fits {
        return collect(ctx, "scope", SCOPE).await;
    }
    Ok(index.into_batches(&schema))
}

fn ints(b: &RecordBatch, i: usize) -> &arrow::array::PrimitiveArray<Int64Type> {
    b.column(i).as_primitive_opt::<Int64Type>().expect("integer keys")
}

/// Each app's bound groups, by group key, and the users found in them so far.
struct BoundGroups {
    apps: Vec<String>,
    /// The smallest bound group key: `sets[gid - first_gid]` is the set of apps binding `gid`
    /// (an index into `app_sets`, 0 for none).
    first_gid: i64,
    sets: Vec<u32>,
    app_sets: Vec<Vec<usize>>,
    /// Per app, bit `uid` set when the user is in scope.
    users: Vec<Vec<u64>>,
}

impl BoundGroups {
    /// `None` when the bound groups' keys span more than the index covers.
    fn new(bound: &[RecordBatch]) -> Option<BoundGroups> {
        let mut apps: Vec<String> = Vec::new();
        let mut by_gid: HashMap<i64, Vec<usize>> = HashMap::new();
        for b in bound {
            let (app, gid) = (b.column(0).as_string::<i32>(), ints(b, 1));
            for i in 0..b.num_rows() {
                if app.is_null(i) || gid.is_null(i) {
                    continue; // a join on NULL matches nothing
                }
                let a = match apps.iter().position(|x| x == app.value(i)) {
                    Some(a) => a,
                    None => {
                        apps.push(app.value(i).to_string());
                        apps.len() - 1
                    }
                };
                let set = by_gid.entry(gid.value(i)).or_default();
                if !set.contains(&a) {
                    set.push(a);
                }
            }
        }
        let first_gid = by_gid.keys().min().copied().unwrap_or(0);
        let last_gid = by_gid.keys().max().copied().unwrap_or(0);
        if last_gid.checked_sub(first_gid)? >= MAX_GID_SPAN {
            return None;
        }
        let mut sets = vec![0u32; usize::try_from(last_gid - first_gid + 1).ok()?];
        let mut app_sets: Vec<Vec<usize>> = vec![Vec::new()];
        let mut interned: HashMap<Vec<usize>, u32> = HashMap::new();
        for (gid, mut set) in by_gid {
            set.sort_unstable();
            let id = *interned.entry(set.clone()).or_insert_with(|| {
                app_sets.push(set);
                u32::try_from(app_sets.len() - 1).expect("fewer app sets than groups")
            });
            sets[(gid - first_gid) as usize] = id;
        }
        let users = vec![Vec::new(); apps.len()];
        Some(BoundGroups {
            apps,
            first_gid,
            sets,
            app_sets,
            users,
        })
    }

    /// Count membership (gid, uid) in; `false` when it is in a bound group and its `uid` is
    /// not a key kept as a bit (NULL: the query's row would be (app, NULL)).
    fn add(&mut self, gid: i64, uid: Option<i64>) -> bool {
        let set = match gid.checked_sub(self.first_gid).and_then(|at| usize::try_from(at).ok()) {
            Some(at) => self.sets.get(at).copied().unwrap_or(0),
            None => 0,
        };
        if set == 0 {
            return true;
        }
        let Some(uid) = uid.filter(|u| (0..MAX_UID).contains(u)) else {
            return false;
        };
        let (word, bit) = ((uid / 64) as usize, uid % 64);
        for &app in &self.app_sets[set as usize] {
            let bits = &mut self.users[app];
            if bits.len() <= word {
                // Grown to the largest key seen, by an eighth at least (a few steps, not one a word).
                bits.resize((word + 1).max(bits.len() + bits.len() / 8), 0);
            }
            bits[word] |= 1 << bit;
        }
        true
    }

    /// (app, uid) per user in scope, each app's in key order, as batches of `schema`.
    fn into_batches(self, schema: &SchemaRef) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for (app, bits) in self.apps.iter().zip(&self.users) {
            let mut uids: Vec<i64> = Vec::with_capacity(bits.iter().map(|w| w.count_ones() as usize).sum());
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    uids.push((w * 64) as i64 + i64::from(word.trailing_zeros()));
                    word &= word - 1;
                }
            }
            for chunk in uids.chunks(1 << 16) {
                let apps = StringArray::from_iter_values(std::iter::repeat_n(app.as_str(), chunk.len()));
                let uid = Int64Array::from(chunk.to_vec());
                out.push(RecordBatch::try_new(schema.clone(), vec![Arc::new(apps), Arc::new(uid)]).expect("scope.sql's columns"));
            }
        }
        if out.is_empty() {
            out.push(RecordBatch::new_empty(schema.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rows of `batches` as (app, uid), sorted.
    fn rows(batches: &[RecordBatch]) -> Vec<(String, Option<i64>)> {
        let mut out: Vec<_> = batches
            .iter()
            .flat_map(|b| {
                let (app, uid) = (b.column(0).as_string::<i32>().clone(), ints(b, 1).clone());
                (0..b.num_rows()).map(move |i| (app.value(i).to_string(), uid.is_valid(i).then(|| uid.value(i))))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// `scope` computed natively and by `queries/scope.sql` over the given tables.
    async fn both_ways(
        bindings: &[(&str, &str, i64)],
        groups: &[(&str, i64, i64)],
        members: &[(Option<i64>, Option<i64>)],
    ) -> (Vec<(String, Option<i64>)>, Vec<(String, Option<i64>)>) {
        let ctx = crate::engine::session();
        let opt = |v: &Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
        let values = crate::engine::values_clause;
        let b = bindings.iter().map(|(app, idp, g)| format!("('{app}', '{idp}', 'g{g}')")).collect();
        let g = groups.iter().map(|(src, gid, g)| format!("('{src}', {gid}, 'g{g}')")).collect();
        let m = members.iter().map(|(g, u)| format!("({}, {})", opt(g), opt(u))).collect();
        for ddl in [
            "CREATE TABLE apps (app TEXT, idp_source TEXT) AS VALUES ('wiki', 'corp'), ('chat', 'corp'), ('crm', 'lab')".to_string(),
            format!("CREATE TABLE bindings (app TEXT, idp TEXT, idp_group_id TEXT){}", values(b)),
            format!("CREATE TABLE groups (source TEXT, gid BIGINT, id TEXT){}", values(g)),
            format!("CREATE TABLE active_members (gid BIGINT, uid BIGINT){}", values(m)),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        let by_sql = ctx.sql(SCOPE).await.unwrap().collect().await.unwrap();
        (rows(&scope(&ctx).await.unwrap()), rows(&by_sql))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_native_scope_is_the_distinct_join_of_scope_sql(
            far in 0usize..3,
            bindings in proptest::collection::vec((prop_oneof![Just("wiki"), Just("chat"), Just("crm")], prop_oneof![Just("corp"), Just("lab")], 0i64..5), 0..8),
            groups in proptest::collection::vec((prop_oneof![Just("corp"), Just("lab")], 0i64..8, 0i64..5), 0..8),
            members in proptest::collection::vec((proptest::option::weighted(0.95, 0i64..8), proptest::option::weighted(0.97, 0i64..200)), 0..60),
        ) {
            // `far` 1 spreads the group keys, 2 the user keys, past what the native path
            // covers (the query answers then): the result must not change.
            let (gid_step, uid_base) = match far {
                1 => (MAX_GID_SPAN, 0),
                2 => (1, MAX_UID - 100),
                _ => (1, 0),
            };
            let groups: Vec<_> = groups.iter().map(|(s, gid, g)| (*s, gid * gid_step, *g)).collect();
            let members: Vec<_> = members.iter().map(|(g, u)| (g.map(|g| g * gid_step), u.map(|u| u + uid_base))).collect();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (native, by_sql) = rt.block_on(both_ways(&bindings, &groups, &members));
            prop_assert_eq!(native, by_sql);
        }
    }

    #[test]
    fn users_are_found_in_each_app_binding_their_group_once() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let (native, by_sql) = rt.block_on(both_ways(
            &[("wiki", "corp", 1), ("chat", "corp", 1), ("chat", "corp", 2), ("crm", "corp", 1)],
            &[("corp", 10, 1), ("corp", 20, 2), ("lab", 30, 1)],
            &[
                (Some(10), Some(5)),
                (Some(20), Some(5)),
                (Some(20), Some(70)),
                (Some(30), Some(9)),
                (None, Some(3)),
            ],
        ));
        let expected = [("chat", 5), ("chat", 70), ("wiki", 5)].map(|(a, u)| (a.to_string(), Some(u)));
        assert_eq!(native, expected);
        assert_eq!(by_sql, expected);
    }
}
