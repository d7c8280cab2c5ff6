//! Both sides of the membership diff by looking keys up, instead of the hash joins of
//! `queries/members/desired.sql` and `actual.sql` (their definition, and the way taken when the
//! keys do not suit an index).
//!
//! At 1M users each side joins 4.8M memberships with what is small beside them: the managed app
//! groups (96k) and the links (975k). The joins built their hash tables on those and streamed the
//! rows out in batches: 0.10 s for the desired side and 0.23 s for the actual one. Here the
//! managed groups are indexed by their IdP group's key and by their own, the links by their
//! account's key (the store numbers groups and users densely), and each membership is looked up
//! where it lies, one side on each thread, into vectors sized for every row.
use arrow::array::{Array, AsArray, PrimitiveArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;

use super::{Key, Sides};
use crate::engine::prior::dense_span_of;
use crate::engine::{collect, release_mapped_pages, table_columns, EngineError};

/// What the lookups found.
pub(super) enum Found<K> {
    /// Both sides.
    Sides(Sides<K>),
    /// A key that does not fit `K`: to be read again with wider keys.
    TooWide,
    /// Keys an index cannot hold (spread out, repeated, or not integers): left to the queries.
    Left,
}

/// The links `actual.sql` translates members through (its `WHERE`).
const LINKS: &str = "SELECT sp_uid, idp_uid FROM links WHERE status IN ('kept', 'new', 'idp_gone')";

/// Both sides of the diff by lookups.
pub(super) async fn sides<K: Key>(ctx: &SessionContext) -> Result<Found<K>, EngineError> {
    let managed = collect(ctx, "members/lookups: managed", "SELECT idp_gid, sp_gid FROM managed_groups").await?;
    let links = collect(ctx, "members/lookups: links", LINKS).await?;
    let (Some(memberships), Some(active)) = (
        table_columns(ctx, "memberships", &["gid", "uid"]).await?,
        table_columns(ctx, "active_members", &["gid", "uid"]).await?,
    ) else {
        return Ok(Found::Left);
    };
    let (Some(managed), Some(links), Some(memberships), Some(active)) =
        (columns(&managed), columns(&links), columns(&memberships), columns(&active))
    else {
        return Ok(Found::Left);
    };
    let (Some(desired_of), Some(managed_count), Some(link_of)) = (GroupsOf::new(&managed), Counts::new(&managed), LinkIndex::new(&links))
    else {
        return Ok(Found::Left);
    };
    let found = tokio::task::block_in_place(|| {
        let (actual, desired) = crate::threads::join(
            || actual_side::<K>(&memberships, &managed_count, &link_of),
            || desired_side::<K>(&active, &desired_of),
        );
        match (desired, actual) {
            (Some(desired), Some((actual, unmatched_removals))) => Found::Sides(Sides {
                desired,
                actual,
                unmatched_removals,
            }),
            _ => Found::TooWide,
        }
    });
    // The memberships' pages (mapped copies, 150 MB at 1M users) are faulted in as read here,
    // outside a query, which would hand them back: handed back before the keys are sorted
    // beside them, the first plan's peak at 1M users is 0.1 GiB lower.
    release_mapped_pages(ctx);
    Ok(found)
}

/// A two-column integer table, as (first, second) columns per batch; `None` when a column is
/// not `Int64`.
type Pairs = Vec<(PrimitiveArray<Int64Type>, PrimitiveArray<Int64Type>)>;

fn columns(batches: &[RecordBatch]) -> Option<Pairs> {
    batches
        .iter()
        .map(|b| {
            let int = |i: usize| b.column(i).as_primitive_opt::<Int64Type>().cloned();
            Some((int(0)?, int(1)?))
        })
        .collect()
}

/// Call `f` with each non-NULL (first, second) row of `pairs`, until it returns `None`.
fn try_each(pairs: &Pairs, mut f: impl FnMut(i64, i64) -> Option<()>) -> Option<()> {
    for (a, b) in pairs {
        let values = a.values().iter().zip(b.values().iter());
        if a.null_count() == 0 && b.null_count() == 0 {
            for (&x, &y) in values {
                f(x, y)?;
            }
        } else {
            for (i, (&x, &y)) in values.enumerate() {
                if a.is_valid(i) && b.is_valid(i) {
                    f(x, y)?;
                }
            }
        }
    }
    Some(())
}

/// The position of `key` in an index that starts at `first` and spans `len` keys.
fn slot(key: i64, first: i64, len: usize) -> Option<usize> {
    usize::try_from(key.checked_sub(first)?).ok().filter(|&at| at < len)
}

/// The smallest key of column `column` of `pairs` and the span of its keys, when dense
/// (see [`dense_span_of`]).
fn span(pairs: &Pairs, column: usize) -> Option<(i64, usize)> {
    let count = pairs.iter().map(|(a, _)| a.len()).sum();
    let keys = pairs.iter().flat_map(|(a, b)| if column == 0 { a } else { b }.iter().flatten());
    dense_span_of(count, keys)
}

/// The app groups managed for each IdP group (`idp_gid → sp_gid`, several when an IdP group is
/// managed in several apps): the desired side's join.
struct GroupsOf {
    first: i64,
    /// Where each IdP group's app groups start in `sp_gids` (one more than the span).
    starts: Vec<u32>,
    sp_gids: Vec<i64>,
}

impl GroupsOf {
    fn new(managed: &Pairs) -> Option<GroupsOf> {
        let (first, len) = span(managed, 0)?;
        let mut starts = vec![0u32; len + 1];
        try_each(managed, |idp_gid, _| {
            starts[slot(idp_gid, first, len)? + 1] += 1;
            Some(())
        })?;
        for i in 1..=len {
            starts[i] += starts[i - 1];
        }
        let mut next = starts[..len].to_vec();
        let mut sp_gids = vec![0; starts[len] as usize];
        try_each(managed, |idp_gid, sp_gid| {
            let at = &mut next[slot(idp_gid, first, len)?];
            sp_gids[*at as usize] = sp_gid;
            *at += 1;
            Some(())
        })?;
        Some(GroupsOf { first, starts, sp_gids })
    }

    fn of(&self, idp_gid: i64) -> &[i64] {
        match slot(idp_gid, self.first, self.starts.len() - 1) {
            Some(at) => &self.sp_gids[self.starts[at] as usize..self.starts[at + 1] as usize],
            None => &[],
        }
    }
}

/// How many managed rows each app group has (`sp_gid`): the actual side's join with them.
struct Counts {
    first: i64,
    counts: Vec<u32>,
}

impl Counts {
    fn new(managed: &Pairs) -> Option<Counts> {
        let (first, len) = span(managed, 1)?;
        let mut counts = vec![0u32; len];
        // Every row with an app group: the join is on it alone.
        for sp_gid in managed.iter().flat_map(|(_, sp)| sp.iter().flatten()) {
            counts[slot(sp_gid, first, len)?] += 1;
        }
        Some(Counts { first, counts })
    }

    fn of(&self, sp_gid: i64) -> u32 {
        slot(sp_gid, self.first, self.counts.len()).map_or(0, |at| self.counts[at])
    }
}

/// No link at a key of [`LinkIndex`].
const NO_LINK: u32 = u32::MAX;
/// A link whose IdP user is gone (NULL `idp_uid`).
const GONE: u32 = u32::MAX - 1;

/// The links by their account's key (`sp_uid`), each to its IdP user's key (NULL when that user
/// is gone): one `u32` an account (the IdP user's key from the smallest), 4 MB at 1M users,
/// looked up once for each of millions of memberships in no order. `None` when an account has
/// two links (the join would give two rows) or the IdP users' keys span too much.
struct LinkIndex {
    first: i64,
    first_idp: i64,
    idp_of: Vec<u32>,
}

impl LinkIndex {
    fn new(links: &Pairs) -> Option<LinkIndex> {
        let (first, len) = span(links, 0)?;
        let first_idp = links.iter().flat_map(|(_, idp)| idp.iter().flatten()).min().unwrap_or(0);
        let mut idp_of = vec![NO_LINK; len];
        for (sp, idp) in links {
            for i in (0..sp.len()).filter(|&i| sp.is_valid(i)) {
                let value = match idp.is_valid(i) {
                    true => u32::try_from(idp.value(i).checked_sub(first_idp)?).ok().filter(|&v| v < GONE)?,
                    false => GONE,
                };
                let place = &mut idp_of[slot(sp.value(i), first, len)?];
                if *place != NO_LINK {
                    return None;
                }
                *place = value;
            }
        }
        Some(LinkIndex { first, first_idp, idp_of })
    }

    /// `Some(idp_uid)` of the account's link, when it has one.
    fn of(&self, sp_uid: i64) -> Option<Option<i64>> {
        match *self.idp_of.get(slot(sp_uid, self.first, self.idp_of.len())?)? {
            NO_LINK => None,
            GONE => Some(None),
            v => Some(Some(self.first_idp + i64::from(v))),
        }
    }
}

/// `desired.sql`'s rows as keys: each active member of an IdP group, once per app group managed
/// for it; `None` when a key does not fit `K`.
fn desired_side<K: Key>(active: &Pairs, groups_of: &GroupsOf) -> Option<Vec<K>> {
    let mut keys = Vec::with_capacity(active.iter().map(|(g, _)| g.len()).sum());
    try_each(active, |gid, uid| {
        for &sp_gid in groups_of.of(gid) {
            keys.push(K::new(sp_gid, uid)?);
        }
        Some(())
    })?;
    Some(keys)
}

/// `actual.sql`'s rows: each member of a managed app group whose account is linked, as its key
/// and account (once per managed row of its group), or as a removal when its IdP user is gone;
/// `None` when a key does not fit `K`.
#[allow(clippy::type_complexity)]
fn actual_side<K: Key>(memberships: &Pairs, managed: &Counts, link_of: &LinkIndex) -> Option<(Vec<(K, i64)>, Vec<(i64, i64)>)> {
    let mut keys = Vec::with_capacity(memberships.iter().map(|(g, _)| g.len()).sum());
    let mut unmatched = Vec::new();
    try_each(memberships, |gid, sp_uid| {
        let times = managed.of(gid);
        if times == 0 {
            return Some(());
        }
        match link_of.of(sp_uid) {
            None => {}
            Some(None) => (0..times).for_each(|_| unmatched.push((gid, sp_uid))),
            Some(Some(idp_uid)) => {
                let key = K::new(gid, idp_uid)?;
                (0..times).for_each(|_| keys.push((key, sp_uid)));
            }
        }
        Some(())
    })?;
    Some((keys, unmatched))
}
