//! `prior`, the rows of `queries/correlate/prior.sql` (the stored links whose app account still
//! exists, each side confirmed by its integer key and id), computed by looking keys up.
//!
//! At 1M users the query's two hash joins built on the 975k stored links (112 + 91 MB) and
//! probed the 2M users twice: 0.46–0.56 s. Here the users' keys index their rows (8 bytes a key;
//! the `id`s stay where the table holds them), and each link is checked by two lookups. The
//! store numbers users densely from 1; keys spread wider than the index covers (never the
//! store's own) are left to the query.
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::filter;
use arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::prelude::SessionContext;

use super::{app_ids, collect, EngineError, DROPPED_USERS, PRIOR};

/// No row at a key of the index.
const ABSENT: u64 = u64::MAX;

/// The rows of `prior.sql`, and the rows of `dropped_users.sql` (app, account id): by lookups
/// when the users' keys are dense enough, else by the queries.
pub(super) async fn prior(ctx: &SessionContext) -> Result<(Vec<RecordBatch>, Vec<(String, String)>), EngineError> {
    let Some((rows, dropped)) = by_lookups(ctx).await? else {
        let rows = collect(ctx, "correlate/prior", PRIOR).await?;
        let dropped = collect(ctx, "correlate/dropped_users", DROPPED_USERS).await?;
        return Ok((rows, app_ids(&dropped)));
    };
    Ok((rows, dropped))
}

/// [`prior`] by lookups; `None` when the users' keys are not dense enough.
async fn by_lookups(ctx: &SessionContext) -> Result<Option<(Vec<RecordBatch>, Vec<(String, String)>)>, EngineError> {
    let err = |source| EngineError::Query {
        query: "correlate/prior".into(),
        source,
    };
    let schema: SchemaRef = Arc::new(ctx.sql(PRIOR).await.map_err(err)?.schema().as_arrow().clone());
    let users = collect(ctx, "correlate/prior: user keys", "SELECT uid, id FROM users").await?;
    let Some(index) = UserIndex::new(&users) else {
        return Ok(None);
    };
    let links = collect(
        ctx,
        "correlate/prior: stored links",
        "SELECT app, matched_by, sp_uid, sp_user_id, idp_uid, idp_user_id FROM prior_links",
    )
    .await?;
    let mut dropped = Vec::new();
    let out = tokio::task::block_in_place(|| links.iter().map(|b| index.confirm(b, &schema, &mut dropped)).collect::<Vec<_>>());
    Ok(Some((out, dropped)))
}

/// The smallest of the integer keys in column `column` of `batches` and how many values their
/// range spans, when that is dense enough to index by key: at most four entries a row (and
/// 64k). The store numbers its keys densely from 1; other keys are left to the queries.
pub(super) fn dense_span(batches: &[RecordBatch], column: usize) -> Option<(i64, usize)> {
    let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
    dense_span_of(count, batches.iter().flat_map(|b| ints(b, column).iter().flatten()))
}

/// [`dense_span`] of the non-NULL `keys` of `count` rows.
pub(super) fn dense_span_of(count: usize, keys: impl Iterator<Item = i64>) -> Option<(i64, usize)> {
    let (first, last) = keys
        .fold(None, |span, k| match span {
            None => Some((k, k)),
            Some((lo, hi)) => Some((k.min(lo), k.max(hi))),
        })
        .unwrap_or((0, 0));
    let span = usize::try_from(last.checked_sub(first)?).ok()?.checked_add(1)?;
    (span <= count.saturating_mul(4).max(1 << 16)).then_some((first, span))
}

/// Whether every batch holds `Int64` columns at `ints` and `Utf8` columns at `texts`: what
/// [`ints`] and [`texts`] read (the store's types; a lookup that finds others leaves the rows to
/// its query).
pub(super) fn typed(batches: &[RecordBatch], ints: &[usize], texts: &[usize]) -> bool {
    batches.iter().all(|b| {
        ints.iter().all(|&i| b.column(i).as_primitive_opt::<Int64Type>().is_some())
            && texts.iter().all(|&i| b.column(i).as_string_opt::<i32>().is_some())
    })
}

pub(super) fn ints(b: &RecordBatch, i: usize) -> &arrow::array::PrimitiveArray<Int64Type> {
    b.column(i).as_primitive_opt::<Int64Type>().expect("integer keys")
}

pub(super) fn texts(b: &RecordBatch, i: usize) -> &StringArray {
    b.column(i).as_string_opt::<i32>().expect("text ids")
}

/// The users' rows by key: `rows[uid - first]` is (batch << 32 | row), or [`ABSENT`]. The
/// batches' first two columns are `uid` and `id`.
pub(super) struct UserIndex<'a> {
    users: &'a [RecordBatch],
    first: i64,
    rows: Vec<u64>,
}

impl<'a> UserIndex<'a> {
    /// `None` when the keys are not dense ([`dense_span`]), or repeat.
    pub(super) fn new(users: &'a [RecordBatch]) -> Option<UserIndex<'a>> {
        let (first, span) = dense_span(users, 0)?;
        let mut rows = vec![ABSENT; span];
        for (b, batch) in users.iter().enumerate() {
            let uid = ints(batch, 0);
            for r in 0..batch.num_rows() {
                if uid.is_null(r) {
                    continue; // a join on NULL matches nothing
                }
                let at = &mut rows[(uid.value(r) - first) as usize];
                if *at != ABSENT {
                    return None; // one link would match two rows
                }
                *at = (b as u64) << 32 | r as u64;
            }
        }
        Some(UserIndex { users, first, rows })
    }

    /// The smallest key, and how many keys the index spans.
    pub(super) fn span(&self) -> (i64, usize) {
        (self.first, self.rows.len())
    }

    /// The (batch, row) of the user at `uid`, if there is one.
    pub(super) fn row(&self, uid: i64) -> Option<(usize, usize)> {
        let at = uid.checked_sub(self.first).and_then(|at| usize::try_from(at).ok())?;
        match self.rows.get(at) {
            Some(&pos) if pos != ABSENT => Some(((pos >> 32) as usize, (pos & u64::from(u32::MAX)) as usize)),
            _ => None,
        }
    }

    /// Whether the user at `uid` exists and has `id`.
    fn has(&self, uid: Option<i64>, id: Option<&str>) -> bool {
        let (Some(uid), Some(id)) = (uid, id) else {
            return false;
        };
        match self.row(uid) {
            Some((b, row)) => {
                let ids = texts(&self.users[b], 1);
                ids.is_valid(row) && ids.value(row) == id
            }
            None => false,
        }
    }

    /// `batch` of stored links as rows of `prior.sql`: a link with an app account's key is kept
    /// when that account exists with its id; one without (created by apply, not listed yet) is
    /// kept as it is; the IdP side's key stays only where that user exists with its id. The
    /// others, whose account is gone, go to `dropped` as (app, account id) (those of
    /// `dropped_users.sql`, but for NULLs).
    fn confirm(&self, batch: &RecordBatch, schema: &SchemaRef, dropped: &mut Vec<(String, String)>) -> RecordBatch {
        fn opt(ids: &StringArray, i: usize) -> Option<&str> {
            ids.is_valid(i).then(|| ids.value(i))
        }
        let (sp_uid, sp_id, idp_uid, idp_id) = (ints(batch, 2), texts(batch, 3), ints(batch, 4), texts(batch, 5));
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| Some(sp_uid.is_null(i) || self.has(Some(sp_uid.value(i)), opt(sp_id, i))))
            .collect();
        let idp_found: Int64Array = (0..batch.num_rows())
            .map(|i| {
                let uid = idp_uid.is_valid(i).then(|| idp_uid.value(i));
                uid.filter(|_| self.has(uid, opt(idp_id, i)))
            })
            .collect();
        let app = texts(batch, 0);
        for i in (0..batch.num_rows()).filter(|&i| !keep.value(i)) {
            if let (Some(app), Some(id)) = (opt(app, i), opt(sp_id, i)) {
                dropped.push((app.to_string(), id.to_string()));
            }
        }
        let mut columns = batch.columns().to_vec();
        columns[4] = Arc::new(idp_found);
        let columns = columns
            .iter()
            .map(|c| filter(c, &keep).expect("a mask as long as the batch"))
            .collect();
        RecordBatch::try_new(schema.clone(), columns).expect("prior.sql's columns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Row = (String, String, Option<i64>, Option<String>, Option<i64>, Option<String>);
    /// A stored link: (sp_uid, sp_user_id, idp_uid, idp_user_id).
    type Link<'a> = (Option<i64>, Option<&'a str>, Option<i64>, Option<&'a str>);

    fn rows(batches: &[RecordBatch]) -> Vec<Row> {
        let text = |b: &RecordBatch, c, i| {
            let a = texts(b, c);
            a.is_valid(i).then(|| a.value(i).to_string())
        };
        let int = |b: &RecordBatch, c, i| {
            let a = ints(b, c);
            a.is_valid(i).then(|| a.value(i))
        };
        let mut out: Vec<Row> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |i| {
                    let t = |c| text(b, c, i);
                    (t(0).unwrap(), t(1).unwrap(), int(b, 2, i), t(3), int(b, 4, i), t(5))
                })
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// `prior` computed by lookups and by `queries/correlate/prior.sql`.
    async fn both_ways(users: &[(Option<i64>, Option<&str>)], links: &[Link<'_>]) -> (Vec<Row>, Vec<Row>) {
        let ctx = crate::engine::session();
        let int = |v: &Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
        let text = |v: &Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
        let values = crate::engine::values_clause;
        let u = users.iter().map(|(uid, id)| format!("({}, {})", int(uid), text(id))).collect();
        let l = links
            .iter()
            .enumerate()
            .map(|(n, (sp, sp_id, idp, idp_id))| {
                format!(
                    "('app{}', 'email', {}, {}, {}, {})",
                    n % 2,
                    int(sp),
                    text(sp_id),
                    int(idp),
                    text(idp_id)
                )
            })
            .collect();
        for ddl in [
            format!("CREATE TABLE users (uid BIGINT, id TEXT){}", values(u)),
            format!(
                "CREATE TABLE prior_links (app TEXT, matched_by TEXT, sp_uid BIGINT, sp_user_id TEXT, idp_uid BIGINT, idp_user_id TEXT){}",
                values(l)
            ),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        let by_sql = ctx.sql(PRIOR).await.unwrap().collect().await.unwrap();
        let dropped_by_sql = ctx.sql(DROPPED_USERS).await.unwrap().collect().await.unwrap();
        let (native, mut dropped) = prior(&ctx).await.unwrap();
        let mut dropped_by_sql = app_ids(&dropped_by_sql);
        dropped.sort_unstable();
        dropped_by_sql.sort_unstable();
        assert_eq!(dropped, dropped_by_sql, "the user links dropped_users.sql drops");
        (rows(&native), rows(&by_sql))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn lookups_give_the_rows_of_prior_sql(
            spread in 0usize..3,
            users in proptest::collection::vec((proptest::option::weighted(0.95, 0i64..30), proptest::option::weighted(0.95, prop_oneof![Just("a"), Just("b"), Just("c")])), 0..30),
            links in proptest::collection::vec((
                proptest::option::weighted(0.8, 0i64..34),
                proptest::option::weighted(0.95, prop_oneof![Just("a"), Just("b"), Just("c")]),
                proptest::option::weighted(0.8, 0i64..34),
                proptest::option::weighted(0.95, prop_oneof![Just("a"), Just("b"), Just("c")]),
            ), 0..30),
        ) {
            // `spread` 1 spaces the keys wider than the index covers, 2 moves them below 0:
            // the query answers then, or the index with its offset, and the rows must not change.
            let key = |k: i64| match spread {
                1 => k * (1 << 20),
                2 => k - 1_000,
                _ => k,
            };
            let users: Vec<_> = users.iter().map(|(u, id)| (u.map(key), *id)).collect();
            let links: Vec<_> = links.iter().map(|(s, sid, i, iid)| (s.map(key), *sid, i.map(key), *iid)).collect();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (native, by_sql) = rt.block_on(both_ways(&users, &links));
            prop_assert_eq!(native, by_sql);
        }
    }

    #[test]
    fn a_link_is_kept_when_its_account_is_there_and_its_idp_user_only_when_it_is() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let (native, by_sql) = rt.block_on(both_ways(
            &[
                (Some(1), Some("i1")),
                (Some(2), Some("i2")),
                (Some(10), Some("s10")),
                (Some(11), Some("s11")),
            ],
            &[
                (Some(10), Some("s10"), Some(1), Some("i1")),    // both sides there
                (Some(11), Some("s11"), Some(2), Some("other")), // the IdP user's id changed
                (Some(12), Some("s12"), Some(1), Some("i1")),    // the account is gone
                (None, Some("new"), Some(2), Some("i2")),        // created by apply, not listed yet
            ],
        ));
        let row = |app: &str, sp: Option<i64>, sp_id: &str, idp: Option<i64>, idp_id: &str| {
            (
                app.to_string(),
                "email".to_string(),
                sp,
                Some(sp_id.to_string()),
                idp,
                Some(idp_id.to_string()),
            )
        };
        let expected = vec![
            row("app0", Some(10), "s10", Some(1), "i1"),
            row("app1", None, "new", Some(2), "i2"),
            row("app1", Some(11), "s11", None, "other"),
        ];
        assert_eq!(native, expected);
        assert_eq!(by_sql, expected);
    }
}
