//! `pairs`, the rows of `queries/pairs.sql` (the linked in-scope pairs a drift query can report
//! on, with both sides' attributes), computed by looking keys up.
//!
//! At 1M users a side the query joined the 975k linked pairs with `scope` (962k rows) and with
//! the 2M users twice, keyed both sides' attributes with `comparison_key` and kept 18,840 of
//! them: 0.53–0.61 s, the longest of the drift queries' two streams (0.22–0.25 s here, beside
//! the other stream's queries; most of it reading the values compared). Here the users' keys index
//! their rows ([`UserIndex`]), each app's scope is a bitmap by user key, and each pair's values
//! are compared where the users table holds them: two comparison keys differ exactly when a
//! value does (or the IdP's userName or email is not lower-case), so no digest is taken. The
//! pairs kept are gathered from the users' columns with `interleave`. The query stays the
//! definition (a property test compares the two) and the fallback for keys the index does not
//! cover (never the store's own).
use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::interleave;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::error::ArrowError;
use datafusion::prelude::SessionContext;

use super::prior::UserIndex;
use super::{collect, create_view, deregister, EngineError, LINKED_PAIRS, PAIRS};

/// The users' columns this reads, in this order (`uid` and `id` first, as [`UserIndex`] needs).
const USER_COLUMNS: &str =
    "uid, id, user_name, email, external_id, given_name, family_name, display_name, title, phone, timezone, active, role";
/// Where the attributes `user.drift` compares start in [`USER_COLUMNS`] (user_name, email, then
/// the rest), and how many there are.
const FIRST_ATTRIBUTE: usize = 2;
const ATTRIBUTES: usize = 9;
const USER_NAME: usize = 2;
const EMAIL: usize = 3;
const ACTIVE: usize = 11;
const ROLE: usize = 12;
/// The output's i_/s_ attribute columns in order: indexes into [`USER_COLUMNS`].
const OUTPUT_ATTRIBUTES: [usize; ATTRIBUTES] = [USER_NAME, 4, 5, 6, 7, EMAIL, 8, 9, 10];
/// Rows an output batch holds at most.
const BATCH_ROWS: usize = 8192;

/// The rows of `pairs.sql`: by lookups when the users' keys are dense, else by the query.
pub(super) async fn pairs(ctx: &SessionContext) -> Result<Vec<RecordBatch>, EngineError> {
    create_view(ctx, "linked_pairs", LINKED_PAIRS).await?;
    let rows = match by_lookups(ctx).await? {
        Some(rows) => rows,
        None => collect(ctx, "pairs", PAIRS).await?,
    };
    deregister(ctx, "linked_pairs")?;
    Ok(rows)
}

/// [`pairs`] by lookups; `None` when the users' keys are not dense, or repeat.
async fn by_lookups(ctx: &SessionContext) -> Result<Option<Vec<RecordBatch>>, EngineError> {
    let err = |source| EngineError::Query {
        query: "pairs".into(),
        source,
    };
    let schema: SchemaRef = Arc::new(ctx.sql(PAIRS).await.map_err(err)?.schema().as_arrow().clone());
    let users = collect(ctx, "pairs: users", &format!("SELECT {USER_COLUMNS} FROM users")).await?;
    let Some(index) = UserIndex::new(&users) else {
        return Ok(None);
    };
    let Some(columns) = UserColumns::new(&users) else {
        return Ok(None);
    };
    let links = collect(
        ctx,
        "pairs: links",
        "SELECT app, idp_uid, sp_uid FROM links WHERE status IN ('kept', 'new')",
    )
    .await?;
    let scope = collect(ctx, "pairs: scope", "SELECT app, uid FROM scope").await?;
    // Apps with roles: user.role_mismatch compares every pair of theirs.
    let with_roles = collect(ctx, "pairs: apps", "SELECT app FROM app_roles").await?;
    let always = &texts_of(&with_roles, 0).map(str::to_string).collect::<HashSet<String>>();
    let t = std::time::Instant::now();
    let rows = tokio::task::block_in_place(|| {
        let scope = Scope::new(&scope, &index);
        let kept = |links: &[RecordBatch], first: usize| {
            let mut kept = Vec::new();
            for (b, batch) in links.iter().enumerate() {
                keep(batch, first + b, &index, &scope, always, &columns, &mut kept);
            }
            kept
        };
        let (first, second) = links.split_at(links.len() / 2);
        let (mut kept_first, kept_second) = crate::threads::join(|| kept(first, 0), || kept(second, first.len()));
        kept_first.extend(kept_second);
        kept_first
    });
    tracing::debug!(seconds = t.elapsed().as_secs_f64(), rows = rows.len(), "pairs: compared");
    let t = std::time::Instant::now();
    match output(&schema, &links, &users, &rows) {
        Ok(batches) => {
            tracing::debug!(seconds = t.elapsed().as_secs_f64(), "pairs: gathered");
            Ok(Some(batches))
        }
        Err(e) => {
            // The users' or links' columns are not of the types the query gives: it answers.
            tracing::warn!("pairs by lookups: {e}; the query answers instead");
            Ok(None)
        }
    }
}

/// A linked pair kept: (links batch, row), and the users' (batch, row) of its IdP and app sides.
type Kept = ((usize, usize), (usize, usize), (usize, usize));

/// The pairs of `batch` (links batch number `b`) a drift query can report on, into `kept`.
fn keep(
    batch: &RecordBatch,
    b: usize,
    index: &UserIndex,
    scope: &Scope,
    always: &HashSet<String>,
    columns: &UserColumns,
    kept: &mut Vec<Kept>,
) {
    let app = batch.column(0).as_string::<i32>();
    let (idp_uid, sp_uid) = (ints(batch, 1), ints(batch, 2));
    // The app of the rows before, its scope and whether its every pair is kept: the links come
    // app by app, so an app's name is looked up when it changes rather than for each link.
    let mut last: Option<(&str, Option<&[u64]>, bool)> = None;
    for row in 0..batch.num_rows() {
        if app.is_null(row) || idp_uid.is_null(row) || sp_uid.is_null(row) {
            continue; // a join on NULL matches nothing
        }
        let (name, idp_uid, sp_uid) = (app.value(row), idp_uid.value(row), sp_uid.value(row));
        let (in_scope, always) = match last {
            Some((last_name, bits, always)) if last_name == name => (bits, always),
            _ => {
                let resolved = (name, scope.of(name), always.contains(name));
                last = Some(resolved);
                (resolved.1, resolved.2)
            }
        };
        if !in_scope.is_some_and(|bits| scope.holds(bits, idp_uid)) {
            continue;
        }
        let (Some(idp), Some(sp)) = (index.row(idp_uid), index.row(sp_uid)) else {
            continue;
        };
        if always || columns.inactive(sp) || columns.differ(idp, sp) {
            kept.push(((b, row), idp, sp));
        }
    }
}

/// The users' columns [`USER_COLUMNS`] names, batch by batch.
struct UserColumns<'a> {
    /// `text[c][b]`: column `c` (of the attributes, from [`FIRST_ATTRIBUTE`]) of batch `b`.
    text: Vec<Vec<&'a StringArray>>,
    active: Vec<&'a BooleanArray>,
}

impl<'a> UserColumns<'a> {
    /// `None` when a column is not of the type the comparison reads.
    fn new(users: &'a [RecordBatch]) -> Option<UserColumns<'a>> {
        let text = (FIRST_ATTRIBUTE..FIRST_ATTRIBUTE + ATTRIBUTES)
            .map(|c| users.iter().map(|b| b.column(c).as_string_opt::<i32>()).collect::<Option<Vec<_>>>())
            .collect::<Option<Vec<_>>>()?;
        let active = users
            .iter()
            .map(|b| b.column(ACTIVE).as_boolean_opt())
            .collect::<Option<Vec<_>>>()?;
        Some(UserColumns { text, active })
    }

    fn value(&self, column: usize, (b, row): (usize, usize)) -> Option<&'a str> {
        let a = self.text[column - FIRST_ATTRIBUTE][b];
        a.is_valid(row).then(|| a.value(row))
    }

    /// `NOT s.active`: the account is inactive (an unknown activity is not).
    fn inactive(&self, (b, row): (usize, usize)) -> bool {
        let a = self.active[b];
        a.is_valid(row) && !a.value(row)
    }

    /// Whether the IdP side's comparison key differs from the app side's: a value differs (two
    /// NULLs are equal), or the IdP's userName or email is not its own lower case.
    fn differ(&self, idp: (usize, usize), sp: (usize, usize)) -> bool {
        [USER_NAME, EMAIL].iter().any(|&c| self.value(c, idp).is_some_and(not_lower_case))
            || (FIRST_ATTRIBUTE..FIRST_ATTRIBUTE + ATTRIBUTES).any(|c| self.value(c, idp) != self.value(c, sp))
    }
}

/// `v <> lower(v)`, as DataFusion's `lower` (Unicode lower case) decides it.
fn not_lower_case(v: &str) -> bool {
    if v.is_ascii() {
        v.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        v.to_lowercase() != v
    }
}

/// Each app's users in scope: bits by user key, over the keys the users' index covers (a key
/// outside it is no user's, and its pair is dropped by the join with the users anyway).
struct Scope {
    first: i64,
    span: usize,
    /// Each app and its bits (a few apps: looked up by name in order).
    apps: Vec<(String, Vec<u64>)>,
}

impl Scope {
    fn new(scope: &[RecordBatch], index: &UserIndex) -> Scope {
        let (first, span) = index.span();
        let mut apps: Vec<(String, Vec<u64>)> = Vec::new();
        let mut current: Option<usize> = None;
        for batch in scope {
            let (app, uid) = (batch.column(0).as_string::<i32>(), ints(batch, 1));
            for row in 0..batch.num_rows() {
                if app.is_null(row) || uid.is_null(row) {
                    continue;
                }
                let Some(at) = offset(first, span, uid.value(row)) else {
                    continue;
                };
                let app = app.value(row);
                // The rows come app by app: the name is looked up when it changes.
                let i = match current {
                    Some(i) if apps[i].0 == app => i,
                    _ => apps.iter().position(|(name, _)| name == app).unwrap_or_else(|| {
                        apps.push((app.to_string(), vec![0; span.div_ceil(64)]));
                        apps.len() - 1
                    }),
                };
                current = Some(i);
                apps[i].1[at / 64] |= 1 << (at % 64);
            }
        }
        Scope { first, span, apps }
    }

    /// The bits of `app`'s users, if it has any in scope.
    fn of(&self, app: &str) -> Option<&[u64]> {
        self.apps.iter().find(|(name, _)| name == app).map(|(_, bits)| bits.as_slice())
    }

    /// Whether `uid` is among an app's users, `bits` (from [`Scope::of`]).
    fn holds(&self, bits: &[u64], uid: i64) -> bool {
        offset(self.first, self.span, uid).is_some_and(|at| bits[at / 64] & (1 << (at % 64)) != 0)
    }
}

/// `uid`'s place in a span of `span` keys from `first`.
fn offset(first: i64, span: usize, uid: i64) -> Option<usize> {
    let at = usize::try_from(uid.checked_sub(first)?).ok()?;
    (at < span).then_some(at)
}

/// The rows of `pairs.sql` for the pairs `kept`, in batches of at most [`BATCH_ROWS`].
fn output(schema: &SchemaRef, links: &[RecordBatch], users: &[RecordBatch], kept: &[Kept]) -> Result<Vec<RecordBatch>, ArrowError> {
    let gather = |arrays: &[&dyn Array], at: &[(usize, usize)]| interleave(arrays, at);
    let mut out = kept
        .chunks(BATCH_ROWS)
        .map(|chunk| {
            let link_at: Vec<_> = chunk.iter().map(|k| k.0).collect();
            let idp_at: Vec<_> = chunk.iter().map(|k| k.1).collect();
            let sp_at: Vec<_> = chunk.iter().map(|k| k.2).collect();
            let links_column = |c| gather(&arrays(links, c), &link_at);
            let idp = |c| gather(&arrays(users, c), &idp_at);
            let sp = |c| gather(&arrays(users, c), &sp_at);
            let mut columns: Vec<ArrayRef> = vec![links_column(0)?, links_column(1)?, links_column(2)?];
            columns.extend([idp(USER_NAME)?, idp(1)?, sp(1)?]);
            for c in OUTPUT_ATTRIBUTES {
                columns.extend([idp(c)?, sp(c)?]);
            }
            columns.extend([sp(ACTIVE)?, sp(ROLE)?]);
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        out.push(RecordBatch::new_empty(schema.clone()));
    }
    Ok(out)
}

/// Column `c` of each of `batches`.
fn arrays(batches: &[RecordBatch], c: usize) -> Vec<&dyn Array> {
    batches.iter().map(|b| b.column(c).as_ref()).collect()
}

fn ints(b: &RecordBatch, i: usize) -> &arrow::array::PrimitiveArray<Int64Type> {
    b.column(i).as_primitive_opt::<Int64Type>().expect("integer keys")
}

/// The non-NULL texts of column `c` of `batches`.
fn texts_of(batches: &[RecordBatch], c: usize) -> impl Iterator<Item = &str> {
    batches.iter().flat_map(move |b| b.column(c).as_string::<i32>().iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A user: (uid, the nine attributes from user_name on as small texts, active, role).
    type User = (Option<i64>, Vec<Option<&'static str>>, Option<bool>, Option<&'static str>);
    /// A link: (app, idp_uid, sp_uid, status).
    type Link = (Option<&'static str>, Option<i64>, Option<i64>, &'static str);

    fn sql_text(v: Option<&str>) -> String {
        v.map_or("NULL".into(), |v| format!("'{v}'"))
    }

    fn sql_int(v: Option<i64>) -> String {
        v.map_or("NULL".into(), |v| v.to_string())
    }

    /// Every row of `batches` as texts, sorted.
    fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
        let mut out: Vec<Vec<Option<String>>> = batches
            .iter()
            .flat_map(|b| {
                let texts: Vec<ArrayRef> = b
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
                    .collect();
                (0..b.num_rows())
                    .map(|r| {
                        texts
                            .iter()
                            .map(|c| {
                                let c = c.as_string::<i32>();
                                c.is_valid(r).then(|| c.value(r).to_string())
                            })
                            .collect()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// `pairs` by lookups (`None` when it leaves them to the query) and by `pairs.sql`.
    async fn both_ways(
        users: &[User],
        links: &[Link],
        scope: &[(&str, i64)],
        always: &[&str],
    ) -> (Option<Vec<RecordBatch>>, Vec<RecordBatch>) {
        let ctx = crate::engine::session();
        let values = crate::engine::values_clause;
        let u = users
            .iter()
            .enumerate()
            .map(|(n, (uid, attributes, active, role))| {
                let attributes: Vec<String> = attributes.iter().map(|v| sql_text(*v)).collect();
                let active = active.map_or("NULL".into(), |a| a.to_string());
                format!(
                    "({}, 'id{n}', {}, {active}, {})",
                    sql_int(*uid),
                    attributes.join(", "),
                    sql_text(*role)
                )
            })
            .collect();
        let l = links
            .iter()
            .map(|(app, idp, sp, status)| format!("({}, {}, {}, '{status}')", sql_text(*app), sql_int(*idp), sql_int(*sp)))
            .collect();
        let s = scope.iter().map(|(app, uid)| format!("('{app}', {uid})")).collect();
        let a = always.iter().map(|app| format!("('{app}')")).collect::<Vec<_>>();
        for ddl in [
            format!(
                "CREATE TABLE users (uid BIGINT, id TEXT, user_name TEXT, email TEXT, external_id TEXT, given_name TEXT, family_name TEXT, display_name TEXT, title TEXT, phone TEXT, timezone TEXT, active BOOLEAN, role TEXT){}",
                values(u)
            ),
            format!("CREATE TABLE links (app TEXT, idp_uid BIGINT, sp_uid BIGINT, status TEXT){}", values(l)),
            format!("CREATE TABLE scope (app TEXT, uid BIGINT){}", values(s)),
            format!("CREATE TABLE app_roles (app TEXT){}", values(a)),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        create_view(&ctx, "linked_pairs", LINKED_PAIRS).await.unwrap();
        let by_sql = ctx.sql(PAIRS).await.unwrap().collect().await.unwrap();
        let native = by_lookups(&ctx).await.unwrap();
        let answered = pairs(&ctx).await;
        assert!(answered.is_err() || native.is_some() || rows(&answered.unwrap()) == rows(&by_sql));
        (native, by_sql)
    }

    fn text() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::weighted(0.85, prop_oneof![Just("a"), Just("A"), Just("b"), Just("é"), Just("É"), Just("")])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn lookups_give_the_rows_of_pairs_sql(
            spread in 0usize..4,
            base in proptest::collection::vec(text(), ATTRIBUTES),
            users in proptest::collection::vec((
                proptest::option::weighted(0.95, 1i64..10),
                proptest::collection::vec(proptest::option::weighted(0.04, text()), ATTRIBUTES),
                proptest::option::weighted(0.7, any::<bool>()),
                text(),
            ), 0..10),
            links in proptest::collection::vec((
                proptest::option::weighted(0.95, prop_oneof![Just("a0"), Just("a1"), Just("a2")]),
                proptest::option::weighted(0.95, 0i64..11),
                proptest::option::weighted(0.95, 0i64..11),
                prop_oneof![3 => Just("kept"), 1 => Just("new"), 1 => Just("gone"), 1 => Just("conflict")],
            ), 0..24),
            scope in proptest::collection::btree_set((prop_oneof![Just("a0"), Just("a1"), Just("a2")], 0i64..11), 0..40),
            always in proptest::collection::vec(prop_oneof![Just("a0"), Just("a1"), Just("a2")], 0..3),
        ) {
            // Users' keys: as the store gives them (dense, unique) most of the time; `spread` 1
            // spaces them wider than the index covers, 2 moves them below 0 (the index answers
            // with its offset); and a key may repeat (the query answers then).
            let key = |k: i64| match spread {
                1 => k * (1 << 20),
                2 => k - 1_000,
                _ => k,
            };
            let unique = spread != 3;
            let mut seen = std::collections::HashSet::new();
            let users: Vec<User> = users
                .into_iter()
                .filter(|(uid, ..)| !unique || uid.is_none_or(|u| seen.insert(u)))
                .map(|(uid, changed, active, role)| {
                    // Most values are everyone's, so that pairs often differ in one value only.
                    let values = changed.iter().zip(&base).map(|(changed, base)| changed.unwrap_or(*base)).collect();
                    (uid.map(key), values, active, role)
                })
                .collect();
            let links: Vec<Link> = links.into_iter().map(|(app, i, s, st)| (app, i.map(key), s.map(key), st)).collect();
            let scope: Vec<(&str, i64)> = scope.into_iter().map(|(app, uid)| (app, key(uid))).collect();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (native, by_sql) = rt.block_on(both_ways(&users, &links, &scope, &always));
            if spread != 1 && unique {
                prop_assert!(native.is_some(), "dense unique keys are looked up");
            }
            if let Some(native) = native {
                prop_assert_eq!(rows(&native), rows(&by_sql));
            }
        }
    }

    #[test]
    fn a_pair_is_kept_when_a_value_differs_its_idp_name_is_not_lower_case_its_account_is_inactive_or_its_app_always_reports() {
        let same = |name: &'static str| vec![Some(name), Some("e@x"), Some("E1"), Some("G"), None, Some("D"), None, None, None];
        let users: Vec<User> = vec![
            (Some(1), same("ann"), Some(true), None),
            (Some(2), same("ann"), Some(true), None), // ann's account, the same values
            (Some(3), same("Bob"), Some(true), None),
            (Some(4), same("Bob"), Some(true), None), // the same, but the IdP's name is not lower case
            (Some(5), same("cy"), Some(true), None),
            (Some(6), same("cy"), Some(false), None), // inactive
            (Some(7), same("di"), Some(true), None),
            (Some(8), same("dee"), Some(true), None), // a value differs
            (Some(9), same("ed"), Some(true), None),
            (Some(10), same("ed"), None, None), // activity unknown: not inactive
            (Some(11), same("fay"), Some(true), None),
            (Some(12), same("fay"), Some(true), None), // in an app that always reports
            (Some(13), same("Éva"), Some(true), None),
            (Some(14), same("Éva"), Some(true), None), // not lower case beyond ASCII
            (Some(15), same("gil"), Some(true), None),
            (
                Some(16),
                same("gil").into_iter().take(ATTRIBUTES - 1).chain([Some("UTC")]).collect(),
                Some(true),
                None,
            ), // the last value differs
            (Some(17), same("hal"), Some(true), None),
            (Some(18), same("hal"), Some(true), None), // out of scope
        ];
        let links: Vec<Link> = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (13, 14), (15, 16), (17, 18)]
            .iter()
            .map(|&(i, s)| (Some("a0"), Some(i), Some(s), "kept"))
            .chain([(Some("a1"), Some(11), Some(12), "new")])
            .collect();
        let scope: Vec<(&str, i64)> = [1, 3, 5, 7, 9, 13, 15].iter().map(|&u| ("a0", u)).chain([("a1", 11)]).collect();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let (native, by_sql) = rt.block_on(both_ways(&users, &links, &scope, &["a1"]));
        let native = rows(&native.expect("dense keys are looked up"));
        assert_eq!(native, rows(&by_sql));
        let kept: Vec<(String, String)> = native.iter().map(|r| (r[1].clone().unwrap(), r[2].clone().unwrap())).collect();
        assert_eq!(
            kept,
            [("13", "14"), ("15", "16"), ("3", "4"), ("5", "6"), ("7", "8"), ("11", "12")].map(|(i, s)| (i.to_string(), s.to_string()))
        );
    }
}
