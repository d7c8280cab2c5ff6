//! The membership diff `group.members` reports on: `member_diff(sp_gid, add_uid, remove_uid)`,
//! the rows of `queries/members/diff.sql` (a full outer join of each managed app group's desired
//! members with its actual ones, on (app group, IdP user)), computed without that join.
//!
//! At 1M users both sides are 4.8M rows. The join hashed one side in each of two partitions
//! (2 × 71 MB of hash table beside the rows it kept and emitted) and took 1.1–1.7 s. Here each
//! side becomes one vector of keys (the app group's and the IdP user's integer keys packed into
//! 8 bytes; an actual member also keeps its account's key), the two are sorted, and one merge
//! finds the keys on one side only: 115 MB at 1M, nothing kept per row but the key. The keys
//! are found by looking each membership up in indexes of the managed groups and the links
//! ([`lookups`]), or, when the keys do not suit an index, streamed from the sides' queries.
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::{collect, register, stream, EngineError};
use crate::memory::push_growing_by_an_eighth;

mod lookups;

/// `queries/members/managed.sql`: the managed app groups (registered as `managed_groups`).
pub const MANAGED: &str = include_str!("../../queries/members/managed.sql");
/// `queries/members/desired.sql`: (sp_gid, idp_uid) each managed group should have.
pub const DESIRED: &str = include_str!("../../queries/members/desired.sql");
/// `queries/members/actual.sql`: (sp_gid, sp_uid, idp_uid) each managed group has.
pub const ACTUAL: &str = include_str!("../../queries/members/actual.sql");
/// `queries/members/diff.sql`: the definition of `member_diff` over the two as views.
pub const DIFF: &str = include_str!("../../queries/members/diff.sql");

/// Register `managed_groups` and `member_diff`, the tables `group.members` reads.
pub(super) async fn register_tables(ctx: &SessionContext) -> Result<(), EngineError> {
    let managed = collect(ctx, "members/managed", MANAGED).await?;
    register(ctx, "managed_groups", managed)?;
    let rows = match gather::<u64>(ctx).await? {
        Some(sides) => tokio::task::block_in_place(|| sides.diff()),
        // A key too large to pack (the store's own numbering never makes one): read again, wide.
        None => {
            let sides = gather::<(i64, i64)>(ctx).await?.expect("wide keys hold any pair");
            tokio::task::block_in_place(|| sides.diff())
        }
    };
    register(ctx, "member_diff", vec![rows.into_batch()])
}

/// The output schema (that of `queries/members/diff.sql`).
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sp_gid", DataType::Int64, true),
        Field::new("add_uid", DataType::Int64, true),
        Field::new("remove_uid", DataType::Int64, true),
    ]))
}

/// An (app group, IdP user) key: packed into a `u64` when both fit in 32 bits, else a pair.
trait Key: Ord + Copy + Send {
    fn new(sp_gid: i64, idp_uid: i64) -> Option<Self>;
    fn sp_gid(self) -> i64;
    fn idp_uid(self) -> i64;
    /// Sort `rows` by their key (`key` gives it).
    fn sort<T: Copy>(rows: &mut Vec<T>, key: impl Fn(&T) -> Self + Copy);
}

impl Key for u64 {
    fn new(sp_gid: i64, idp_uid: i64) -> Option<u64> {
        let (g, u) = (u32::try_from(sp_gid).ok()?, u32::try_from(idp_uid).ok()?);
        Some(u64::from(g) << 32 | u64::from(u))
    }
    fn sp_gid(self) -> i64 {
        (self >> 32) as i64
    }
    fn idp_uid(self) -> i64 {
        (self & u64::from(u32::MAX)) as i64
    }
    fn sort<T: Copy>(rows: &mut Vec<T>, key: impl Fn(&T) -> u64 + Copy) {
        sort_by_group(rows, key, ROWS_TO_SORT_BY_GROUP);
    }
}

/// The fewest rows [`sort_by_group`] sorts by group first: below it one sort is as quick.
const ROWS_TO_SORT_BY_GROUP: usize = 1 << 16;

/// Sort `rows` by their packed key: placed by app group first (a counting sort on the key's
/// upper half, the store's dense group keys), then each group's rows sorted (the members of
/// one group, a few dozen, in cache). At 1M users (4.8M keys a side, each side on its own
/// thread) one sort of each side took 0.14–0.19 s, this 0.09–0.12 s, for a second copy of the
/// rows while it places them (38 + 77 MB, below the plan's peak). Fewer than `min_rows` rows,
/// or groups more spread than there are rows, are sorted at once.
fn sort_by_group<T: Copy>(rows: &mut Vec<T>, key: impl Fn(&T) -> u64 + Copy, min_rows: usize) {
    let group = |row: &T| (key(row) >> 32) as usize;
    let Some((lowest, highest)) = rows.iter().map(group).fold(None, |span, g| match span {
        None => Some((g, g)),
        Some((lo, hi)) => Some((g.min(lo), g.max(hi))),
    }) else {
        return;
    };
    let groups = highest - lowest + 1;
    if rows.len() < min_rows || groups > rows.len() {
        rows.sort_unstable_by_key(key);
        return;
    }
    // Where each group's rows start, then where its next row goes.
    let mut starts = vec![0usize; groups + 1];
    for row in rows.iter() {
        starts[group(row) - lowest + 1] += 1;
    }
    for g in 1..=groups {
        starts[g] += starts[g - 1];
    }
    let mut next = starts[..groups].to_vec();
    let mut placed = vec![rows[0]; rows.len()];
    for row in rows.iter() {
        let at = &mut next[group(row) - lowest];
        placed[*at] = *row;
        *at += 1;
    }
    for g in 0..groups {
        placed[starts[g]..starts[g + 1]].sort_unstable_by_key(key);
    }
    *rows = placed;
}

impl Key for (i64, i64) {
    fn new(sp_gid: i64, idp_uid: i64) -> Option<(i64, i64)> {
        Some((sp_gid, idp_uid))
    }
    fn sp_gid(self) -> i64 {
        self.0
    }
    fn idp_uid(self) -> i64 {
        self.1
    }
    fn sort<T: Copy>(rows: &mut Vec<T>, key: impl Fn(&T) -> (i64, i64) + Copy) {
        rows.sort_unstable_by_key(key);
    }
}

/// Both sides as keys. An actual member with no IdP user (NULL `idp_uid`) can match nothing:
/// it is a removal as it is read.
struct Sides<K> {
    desired: Vec<K>,
    /// (key, the app account's uid).
    actual: Vec<(K, i64)>,
    unmatched_removals: Vec<(i64, i64)>,
}

/// The differences, as columns.
#[derive(Default)]
struct Rows {
    sp_gid: Vec<i64>,
    add_uid: Vec<Option<i64>>,
    remove_uid: Vec<Option<i64>>,
}

impl Rows {
    fn push(&mut self, sp_gid: i64, add: Option<i64>, remove: Option<i64>) {
        self.sp_gid.push(sp_gid);
        self.add_uid.push(add);
        self.remove_uid.push(remove);
    }

    fn into_batch(self) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(self.sp_gid)),
                Arc::new(Int64Array::from(self.add_uid)),
                Arc::new(Int64Array::from(self.remove_uid)),
            ],
        )
        .expect("columns of the schema")
    }
}

/// Both sides as keys, by lookups ([`lookups`]) or, when the keys do not suit an index, by
/// running both sides' queries at once and streaming their rows into keys; `None` when a key
/// does not fit `K`.
async fn gather<K: Key>(ctx: &SessionContext) -> Result<Option<Sides<K>>, EngineError> {
    match lookups::sides::<K>(ctx).await? {
        lookups::Found::Sides(sides) => return Ok(Some(sides)),
        lookups::Found::TooWide => return Ok(None),
        lookups::Found::Left => {}
    }
    let desired = async {
        let mut keys: Vec<K> = Vec::new();
        let fits = stream(ctx, "members/desired", DESIRED, |b| {
            let (gid, uid) = (ints(b, 0), ints(b, 1));
            for i in 0..b.num_rows() {
                // A row without an app group names nothing to change (members/diff.sql).
                if gid.is_null(i) || uid.is_null(i) {
                    continue;
                }
                match K::new(gid.value(i), uid.value(i)) {
                    Some(k) => push_growing_by_an_eighth(&mut keys, k),
                    None => return false,
                }
            }
            true
        })
        .await?;
        Ok::<_, EngineError>(fits.then_some(keys))
    };
    let actual = async {
        let mut keys: Vec<(K, i64)> = Vec::new();
        let mut unmatched: Vec<(i64, i64)> = Vec::new();
        let fits = stream(ctx, "members/actual", ACTUAL, |b| {
            let (gid, sp_uid, idp_uid) = (ints(b, 0), ints(b, 1), ints(b, 2));
            for i in 0..b.num_rows() {
                if gid.is_null(i) || sp_uid.is_null(i) {
                    continue;
                }
                if idp_uid.is_null(i) {
                    unmatched.push((gid.value(i), sp_uid.value(i)));
                    continue;
                }
                match K::new(gid.value(i), idp_uid.value(i)) {
                    Some(k) => push_growing_by_an_eighth(&mut keys, (k, sp_uid.value(i))),
                    None => return false,
                }
            }
            true
        })
        .await?;
        Ok::<_, EngineError>(fits.then_some((keys, unmatched)))
    };
    let (desired, actual) = futures::join!(desired, actual);
    Ok(match (desired?, actual?) {
        (Some(desired), Some((actual, unmatched_removals))) => Some(Sides {
            desired,
            actual,
            unmatched_removals,
        }),
        _ => None,
    })
}

fn ints(b: &RecordBatch, i: usize) -> &arrow::array::PrimitiveArray<Int64Type> {
    b.column(i)
        .as_primitive_opt::<Int64Type>()
        .expect("the members queries return integer keys")
}

impl<K: Key> Sides<K> {
    /// Sort both sides (on two threads) and merge them: a key on the desired side only is an
    /// addition per desired row, on the actual side only a removal per actual row, on both
    /// nothing (a full outer join's unmatched rows).
    fn diff(self) -> Rows {
        let Sides {
            mut desired,
            mut actual,
            unmatched_removals,
        } = self;
        let t = std::time::Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| K::sort(&mut desired, |k| *k));
            K::sort(&mut actual, |(k, _)| *k);
        });
        tracing::debug!(seconds = t.elapsed().as_secs_f64(), "members/sorted");
        let mut rows = Rows::default();
        let (mut d, mut a) = (0, 0);
        while d < desired.len() || a < actual.len() {
            let key = match (desired.get(d), actual.get(a)) {
                (Some(x), Some((y, _))) => *x.min(y),
                (Some(x), None) => *x,
                (None, Some((y, _))) => *y,
                (None, None) => unreachable!("the loop's condition"),
            };
            let (d0, a0) = (d, a);
            while desired.get(d) == Some(&key) {
                d += 1;
            }
            while actual.get(a).is_some_and(|(k, _)| *k == key) {
                a += 1;
            }
            if a == a0 {
                (d0..d).for_each(|_| rows.push(key.sp_gid(), Some(key.idp_uid()), None));
            } else if d == d0 {
                actual[a0..a]
                    .iter()
                    .for_each(|(_, sp_uid)| rows.push(key.sp_gid(), None, Some(*sp_uid)));
            }
        }
        for (sp_gid, sp_uid) in unmatched_removals {
            rows.push(sp_gid, None, Some(sp_uid));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The diff of `sides`, sorted.
    fn sorted(rows: Rows) -> Vec<(i64, Option<i64>, Option<i64>)> {
        let mut out: Vec<_> = (0..rows.sp_gid.len())
            .map(|i| (rows.sp_gid[i], rows.add_uid[i], rows.remove_uid[i]))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn packed_keys_order_as_group_then_user_and_refuse_what_does_not_fit() {
        let k = |g, u| <u64 as Key>::new(g, u).unwrap();
        assert!(k(1, u32::MAX.into()) < k(2, 0));
        assert_eq!((k(7, 9).sp_gid(), k(7, 9).idp_uid()), (7, 9));
        assert_eq!(<u64 as Key>::new(-1, 0), None);
        assert_eq!(<u64 as Key>::new(0, 1 << 32), None);
    }

    #[test]
    fn keys_on_one_side_only_are_differences_as_often_as_they_appear() {
        let sides = Sides {
            desired: vec![k(1, 1), k(1, 2), k(1, 2), k(2, 5)],
            actual: vec![(k(1, 1), 101), (k(1, 3), 103), (k(1, 3), 113), (k(2, 5), 105), (k(2, 5), 115)],
            unmatched_removals: vec![(3, 900)],
        };
        assert_eq!(
            sorted(sides.diff()),
            [
                (1, None, Some(103)),
                (1, None, Some(113)),
                (1, Some(2), None),
                (1, Some(2), None),
                (3, None, Some(900))
            ]
        );
        fn k(g: i64, u: i64) -> u64 {
            <u64 as Key>::new(g, u).unwrap()
        }
    }

    proptest! {
        #[test]
        fn sorting_by_group_first_sorts_by_the_whole_key(
            rows in proptest::collection::vec((0u64..40, 0u64..1000, any::<u8>()), 0..300),
            spread in 0u64..3,
            min_rows in prop_oneof![Just(0usize), Just(100usize)],
        ) {
            // Groups near each other, or spread wider than there are rows (sorted at once).
            let mut rows: Vec<(u64, u8)> = rows.iter().map(|(g, u, payload)| ((g << (spread * 8)) << 32 | u, *payload)).collect();
            let mut expected = rows.clone();
            expected.sort_unstable_by_key(|(k, _)| *k);
            sort_by_group(&mut rows, |(k, _)| *k, min_rows);
            prop_assert_eq!(rows.iter().map(|(k, _)| *k).collect::<Vec<_>>(), expected.iter().map(|(k, _)| *k).collect::<Vec<_>>());
            let (mut got, mut want) = (rows.clone(), expected.clone());
            got.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(got, want, "the same rows");
        }
    }

    /// The rows of `member_diff` in `ctx`, sorted.
    async fn member_diff_rows(ctx: &SessionContext) -> Vec<(i64, Option<i64>, Option<i64>)> {
        let batches = ctx.sql("SELECT * FROM member_diff").await.unwrap().collect().await.unwrap();
        let mut rows: Vec<_> = batches
            .iter()
            .flat_map(|b| {
                let (g, a, r) = (ints(b, 0).clone(), ints(b, 1).clone(), ints(b, 2).clone());
                (0..b.num_rows()).map(move |i| (g.value(i), a.is_valid(i).then(|| a.value(i)), r.is_valid(i).then(|| r.value(i))))
            })
            .collect();
        rows.sort_unstable();
        rows
    }

    /// One app's group links, IdP memberships and links in the tables the members queries read,
    /// and `member_diff` computed both ways: natively, and by `queries/members/diff.sql`.
    async fn both_ways(
        group_links: &[(i64, Option<i64>, &str)],
        members: &[(i64, i64)],
        links: &[(Option<i64>, i64, &str)],
    ) -> (Vec<(i64, Option<i64>, Option<i64>)>, Vec<(i64, Option<i64>, Option<i64>)>) {
        let ctx = tables(group_links, members, links).await;
        let by_sql = member_diff_rows(&ctx).await;
        for view in ["member_diff", "managed_groups"] {
            ctx.deregister_table(view).unwrap();
        }
        register_tables(&ctx).await.unwrap();
        (member_diff_rows(&ctx).await, by_sql)
    }

    /// A session with one app's tables, and the members queries as views.
    async fn tables(
        group_links: &[(i64, Option<i64>, &str)],
        members: &[(i64, i64)],
        links: &[(Option<i64>, i64, &str)],
    ) -> SessionContext {
        let ctx = crate::engine::session();
        let opt = |v: Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
        let values = crate::engine::values_clause;
        let gl = group_links
            .iter()
            .enumerate()
            .map(|(i, (sp, idp, status))| format!("('wiki', {}, {sp}, 'g{i}', '{status}')", opt(*idp)))
            .collect();
        let bindings = (0..group_links.len()).map(|i| format!("('wiki', 'idp', 'g{i}')")).collect();
        let m: Vec<String> = members.iter().map(|(g, u)| format!("({g}, {u})")).collect();
        let l = links
            .iter()
            .map(|(idp, sp, status)| format!("('wiki', {}, {sp}, '{status}')", opt(*idp)))
            .collect();
        for ddl in [
            "CREATE TABLE apps (app TEXT, idp_source TEXT, manage_groups BOOLEAN) AS VALUES ('wiki', 'idp', true)".to_string(),
            format!(
                "CREATE TABLE group_links (app TEXT, idp_gid BIGINT, sp_gid BIGINT, idp_group_id TEXT, status TEXT){}",
                values(gl)
            ),
            format!("CREATE TABLE bindings (app TEXT, idp TEXT, idp_group_id TEXT){}", values(bindings)),
            // The same pairs serve as the IdP's active members and the app's memberships: the
            // key ranges keep the two apart.
            format!("CREATE TABLE active_members (gid BIGINT, uid BIGINT){}", values(m.clone())),
            format!("CREATE TABLE memberships (gid BIGINT, uid BIGINT){}", values(m)),
            format!(
                "CREATE TABLE links (app TEXT, idp_uid BIGINT, sp_uid BIGINT, status TEXT){}",
                values(l)
            ),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        for (view, sql) in [
            ("managed_groups", MANAGED),
            ("desired_members", DESIRED),
            ("actual_members", ACTUAL),
            ("member_diff", DIFF),
        ] {
            ctx.sql(&format!("CREATE VIEW {view} AS {sql}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
        }
        ctx
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_take_the_stores_keys_and_leave_the_others_to_the_queries() {
        async fn found(shift: impl Fn(i64) -> i64, links: &[(Option<i64>, i64, &str)]) -> &'static str {
            let gl = [(shift(4), Some(shift(0)), "kept")];
            let members = [(shift(0), shift(1)), (shift(4), shift(7))];
            let links: Vec<_> = links.iter().map(|(i, s, st)| (i.map(&shift), shift(*s), *st)).collect();
            let ctx = tables(&gl, &members, &links).await;
            match lookups::sides::<u64>(&ctx).await.unwrap() {
                lookups::Found::Sides(sides) => {
                    let gone = links.iter().filter(|(idp, ..)| idp.is_none()).map(|(_, sp, _)| (shift(4), *sp));
                    assert_eq!(
                        sides.unmatched_removals,
                        gone.collect::<Vec<_>>(),
                        "a gone user's account is removed"
                    );
                    "looked up"
                }
                lookups::Found::TooWide => "too wide",
                lookups::Found::Left => "left to the queries",
            }
        }
        let same = |k| k;
        assert_eq!(found(same, &[(Some(1), 7, "kept")]).await, "looked up");
        assert_eq!(found(same, &[(None, 7, "idp_gone")]).await, "looked up");
        assert_eq!(found(same, &[(Some(1), 7, "kept"), (Some(2), 7, "conflict")]).await, "looked up");
        assert_eq!(
            found(same, &[(Some(1), 7, "kept"), (Some(2), 7, "new")]).await,
            "left to the queries",
            "an account with two links read"
        );
        assert_eq!(found(same, &[(Some(1), 7, "kept"), (Some(2), 8, "kept")]).await, "looked up");
        assert_eq!(
            found(|k| k << 20, &[(Some(1), 7, "kept"), (Some(2), 8, "kept")]).await,
            "left to the queries",
            "accounts' keys spread"
        );
        assert_eq!(found(|k| k + (1 << 40), &[(Some(1), 7, "kept")]).await, "too wide");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn the_native_diff_is_the_full_outer_join_of_diff_sql(
            wide in any::<bool>(),
            spread in any::<bool>(),
            one_link_an_account in any::<bool>(),
            group_links in proptest::collection::vec((0i64..4, proptest::option::weighted(0.9, 0i64..4), prop_oneof![Just("kept"), Just("takeover"), Just("idp_gone")]), 0..5),
            members in proptest::collection::vec((0i64..8, 0i64..12), 0..40),
            links in proptest::collection::vec((proptest::option::weighted(0.75, 0i64..6), 6i64..12, prop_oneof![Just("kept"), Just("new"), Just("idp_gone"), Just("conflict")]), 0..10),
        ) {
            // IdP groups 0..4 and users 0..6; app groups 4..8 and accounts 6..12. `wide` shifts
            // every key past 32 bits (the fallback to pairs); `spread` spaces them wider than
            // the lookups' indexes cover (the fallback to the queries, as an account with two
            // links is, which `one_link_an_account` rules out).
            let shift = if wide { 1i64 << 40 } else { 0 };
            let k = |key: i64| if spread { key * (1 << 20) + shift } else { key + shift };
            let mut links = links;
            if one_link_an_account {
                let mut seen = std::collections::HashSet::new();
                links.retain(|(_, sp, _)| seen.insert(*sp));
            }
            let gl: Vec<_> = group_links.iter().map(|(sp, idp, s)| (k(sp + 4), idp.map(k), *s)).collect();
            let m: Vec<_> = members.iter().map(|(g, u)| (k(*g), k(*u))).collect();
            let l: Vec<_> = links.iter().map(|(i, s, st)| (i.map(k), k(*s), *st)).collect();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (native, by_sql) = rt.block_on(both_ways(&gl, &m, &l));
            prop_assert_eq!(native, by_sql);
        }
    }
}
