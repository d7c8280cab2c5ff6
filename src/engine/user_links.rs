//! `links`, the rows of `queries/correlate/users.sql` over `free.sql`, `candidates.sql` and
//! `chosen.sql` (their definition), computed without their joins.
//!
//! On a new store at 1M users the four queries took 1.3–1.8 s: `free` re-joined 2M users to
//! their keys, `candidates` joined 1M free users to 1M free accounts on each of three keys (2.9M
//! rows), `chosen` and `users.sql` hashed those again five times over, each build on one thread.
//! Here the stored links are bits per app in a bitmap by user key (`free`); each app's free users
//! and accounts are (hash of the key, row) pairs, sorted and merged per match key, equal hashes
//! confirmed on the keys themselves (`candidates`); the best rank and the counts both ways are
//! vectors by position (`chosen`, `users.sql`). The store numbers users densely from 1; keys
//! spread wider than the bitmaps cover, or repeated, are left to the queries.
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::{collect, deregister, register, EngineError, CANDIDATES, CHOSEN, CORRELATE_USERS, FREE};

/// The keys correlation matches on: their name in `app_match` (and `matched_by`), the column of
/// `users` that holds them.
const KEYS: [(&str, &str); 3] = [
    ("externalId", "external_id_key"),
    ("userName", "user_name_key"),
    ("email", "email_key"),
];
/// The position of `email` in [`KEYS`] (its matches follow the email reuse policy).
const EMAIL: usize = 2;

/// The columns read from `users`, in this order.
const USER_COLUMNS: &str = "SELECT uid, id, source, external_id_key, user_name_key, email_key, active FROM users";
const UID: usize = 0;
const ID: usize = 1;
const SOURCE: usize = 2;
/// The first key column: [`KEYS`] follow in order.
const FIRST_KEY: usize = 3;
const ACTIVE: usize = 6;

/// The rows of `users.sql`: natively when the users' keys are dense and unique and the config's
/// tables name each app once, else by the queries.
pub(super) async fn links(ctx: &SessionContext) -> Result<Vec<RecordBatch>, EngineError> {
    let apps = collect(ctx, "correlate/users: apps", "SELECT app, idp_source, app_source FROM apps").await?;
    let ranks = collect(ctx, "correlate/users: match keys", "SELECT app, key, rank FROM app_match").await?;
    let reuse = collect(ctx, "correlate/users: email reuse", "SELECT app, policy FROM app_email_reuse").await?;
    let Some(apps) = Apps::new(&apps, &ranks, &reuse) else {
        return by_queries(ctx).await;
    };
    let prior = collect(
        ctx,
        "correlate/users: prior",
        "SELECT app, matched_by, sp_uid, sp_user_id, idp_uid, idp_user_id FROM prior",
    )
    .await?;
    let users = collect(ctx, "correlate/users: users", USER_COLUMNS).await?;
    let Some(users) = Users::new(&users) else {
        return by_queries(ctx).await;
    };
    let mut out: Vec<RecordBatch> = prior.iter().map(prior_rows).collect();
    let new = tokio::task::block_in_place(|| apps.apps.iter().map(|app| app.new_rows(&users, &prior)).collect::<Vec<_>>());
    out.extend(new.into_iter().filter(|b| b.num_rows() > 0));
    if out.is_empty() {
        out.push(RecordBatch::new_empty(schema()));
    }
    Ok(out)
}

/// The queries themselves: `free`, `candidates` and `chosen` materialised in turn.
async fn by_queries(ctx: &SessionContext) -> Result<Vec<RecordBatch>, EngineError> {
    let free = collect(ctx, "correlate/free", FREE).await?;
    register(ctx, "free", free)?;
    let candidates = collect(ctx, "correlate/candidates", CANDIDATES).await?;
    register(ctx, "candidates", candidates)?;
    let chosen = collect(ctx, "correlate/chosen", CHOSEN).await?;
    deregister(ctx, "candidates")?;
    register(ctx, "chosen", chosen)?;
    let links = collect(ctx, "correlate/users", CORRELATE_USERS).await?;
    for step in ["chosen", "free"] {
        deregister(ctx, step)?;
    }
    Ok(links)
}

/// The output schema (that of `users.sql`).
pub(super) fn schema() -> SchemaRef {
    let text = |name| Field::new(name, DataType::Utf8, true);
    let int = |name| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        text("app"),
        int("idp_uid"),
        int("sp_uid"),
        text("idp_user_id"),
        text("sp_user_id"),
        text("matched_by"),
        text("status"),
    ]))
}

fn ints(b: &RecordBatch, i: usize) -> &arrow::array::PrimitiveArray<Int64Type> {
    b.column(i).as_primitive_opt::<Int64Type>().expect("integer keys")
}

fn texts(b: &RecordBatch, i: usize) -> &StringArray {
    b.column(i).as_string_opt::<i32>().expect("Utf8 text")
}

fn text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// The first part of `users.sql`: a stored link that still holds, with its status.
fn prior_rows(b: &RecordBatch) -> RecordBatch {
    let (sp_uid, idp_uid) = (ints(b, 2), ints(b, 4));
    let status: StringArray = (0..b.num_rows())
        .map(|i| {
            Some(if sp_uid.is_null(i) {
                "pending"
            } else if idp_uid.is_null(i) {
                "idp_gone"
            } else {
                "kept"
            })
        })
        .collect();
    let c = |i: usize| b.column(i).clone();
    RecordBatch::try_new(schema(), vec![c(0), c(4), c(2), c(5), c(3), c(1), Arc::new(status)])
        .expect("prior's columns are those of users.sql")
}

/// What an inactive account that matches only by email is (`app_email_reuse.policy`, NULL or
/// missing read as 'conflict').
#[derive(Clone, Copy, PartialEq)]
enum Reuse {
    Conflict,
    Release,
    Other,
}

/// One app of the config's tables.
struct App {
    name: String,
    idp_source: Option<String>,
    app_source: Option<String>,
    /// The ranks `app_match` gives each of [`KEYS`] (a key listed twice has two).
    ranks: [Vec<i64>; 3],
    reuse: Reuse,
}

struct Apps {
    apps: Vec<App>,
}

impl Apps {
    /// `None` when an app is named twice in `apps` or `app_email_reuse` (the queries' joins would
    /// then repeat rows).
    fn new(apps: &[RecordBatch], ranks: &[RecordBatch], reuse: &[RecordBatch]) -> Option<Apps> {
        let mut out: Vec<App> = Vec::new();
        for b in apps {
            let (name, idp, sp) = (texts(b, 0), texts(b, 1), texts(b, 2));
            for i in 0..b.num_rows() {
                // An app without a name joins nothing: it links no one.
                let Some(name) = text(name, i) else { continue };
                if out.iter().any(|a| a.name == name) {
                    return None;
                }
                out.push(App {
                    name: name.to_string(),
                    idp_source: text(idp, i).map(String::from),
                    app_source: text(sp, i).map(String::from),
                    ranks: Default::default(),
                    reuse: Reuse::Conflict,
                });
            }
        }
        for b in ranks {
            let (name, key, rank) = (texts(b, 0), texts(b, 1), ints(b, 2));
            for i in 0..b.num_rows() {
                let app = out.iter_mut().find(|a| Some(a.name.as_str()) == text(name, i));
                let k = KEYS.iter().position(|(n, _)| Some(*n) == text(key, i));
                // A NULL rank is never the best one (MIN skips it, `=` never matches it).
                if let (Some(app), Some(k), true) = (app, k, rank.is_valid(i)) {
                    app.ranks[k].push(rank.value(i));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for b in reuse {
            let (name, policy) = (texts(b, 0), texts(b, 1));
            for i in 0..b.num_rows() {
                let Some(name) = text(name, i) else { continue };
                if !seen.insert(name.to_string()) {
                    return None;
                }
                if let Some(app) = out.iter_mut().find(|a| a.name == name) {
                    app.reuse = match text(policy, i).unwrap_or("conflict") {
                        "conflict" => Reuse::Conflict,
                        "release" => Reuse::Release,
                        _ => Reuse::Other,
                    };
                }
            }
        }
        Some(Apps { apps: out })
    }
}

/// A user's place: (batch, row) of the `users` batches.
type At = (u32, u32);

/// The users, their keys dense and unique.
struct Users<'a> {
    batches: &'a [RecordBatch],
    first: i64,
    span: usize,
}

impl<'a> Users<'a> {
    /// `None` when the keys are not dense ([`super::prior::dense_span`]), or repeat.
    fn new(batches: &'a [RecordBatch]) -> Option<Users<'a>> {
        let (first, span) = super::prior::dense_span(batches, UID)?;
        let users = Users { batches, first, span };
        let mut seen = users.bits();
        for uid in batches.iter().flat_map(|b| ints(b, UID).iter().flatten()) {
            if !set(&mut seen, users.bit(uid)?) {
                return None;
            }
        }
        Some(users)
    }

    fn bits(&self) -> Vec<u64> {
        vec![0; self.span.div_ceil(64)]
    }

    /// The bit of `uid`, if it is within the span.
    fn bit(&self, uid: i64) -> Option<usize> {
        let at = usize::try_from(uid.checked_sub(self.first)?).ok()?;
        (at < self.span).then_some(at)
    }

    fn column(&self, (b, _): At, i: usize) -> &'a StringArray {
        texts(&self.batches[b as usize], i)
    }

    fn uid(&self, (b, r): At) -> i64 {
        ints(&self.batches[b as usize], UID).value(r as usize)
    }

    fn key(&self, at: At, k: usize) -> Option<&'a str> {
        text(self.column(at, FIRST_KEY + k), at.1 as usize)
    }

    fn active(&self, (b, r): At) -> Option<bool> {
        let a = self.batches[b as usize].column(ACTIVE).as_boolean();
        a.is_valid(r as usize).then(|| a.value(r as usize))
    }

    /// Column `i` (text) at each place, as one array.
    fn gather(&self, i: usize, places: &[At]) -> ArrayRef {
        let columns: Vec<&dyn Array> = self.batches.iter().map(|b| b.column(i).as_ref()).collect();
        let indices: Vec<(usize, usize)> = places.iter().map(|&(b, r)| (b as usize, r as usize)).collect();
        arrow::compute::interleave(&columns, &indices).expect("places within the batches")
    }
}

/// Set `bit`; false when it was set already.
fn set(bits: &mut [u64], bit: usize) -> bool {
    let (word, mask) = (bit / 64, 1u64 << (bit % 64));
    let was = bits[word] & mask != 0;
    bits[word] |= mask;
    !was
}

fn is_set(bits: &[u64], bit: usize) -> bool {
    bits[bit / 64] & (1u64 << (bit % 64)) != 0
}

impl App {
    /// The second part of `users.sql` for this app: its candidates on their best rank, with
    /// their status.
    fn new_rows(&self, users: &Users, prior: &[RecordBatch]) -> RecordBatch {
        if self.ranks.iter().all(Vec::is_empty) {
            return RecordBatch::new_empty(schema());
        }
        let t = std::time::Instant::now();
        let (idp, sp) = self.free(users, prior);
        tracing::debug!(
            seconds = t.elapsed().as_secs_f64(),
            idp = idp.len(),
            sp = sp.len(),
            "correlate/users: free"
        );
        let t = std::time::Instant::now();
        let matches = self.candidates(users, &idp, &sp);
        tracing::debug!(
            seconds = t.elapsed().as_secs_f64(),
            rows = matches.len(),
            "correlate/users: candidates"
        );
        let t = std::time::Instant::now();
        // chosen.sql: each IdP user's candidates on its best rank.
        let mut best = vec![i64::MAX; idp.len()];
        for &(i, _, k) in &matches {
            let rank = self.ranks[k as usize].iter().min().expect("a key with a rank");
            best[i as usize] = best[i as usize].min(*rank);
        }
        let mut chosen = Vec::new();
        let (mut per_idp, mut per_sp) = (vec![0u32; idp.len()], vec![0u32; sp.len()]);
        for &(i, s, k) in &matches {
            for &rank in &self.ranks[k as usize] {
                if rank == best[i as usize] {
                    chosen.push((i, s, k));
                    per_idp[i as usize] += 1;
                    per_sp[s as usize] += 1;
                }
            }
        }
        drop(matches);
        tracing::debug!(seconds = t.elapsed().as_secs_f64(), rows = chosen.len(), "correlate/users: chosen");
        let t = std::time::Instant::now();
        // users.sql: unique both ways is new, anything else a conflict; an inactive account
        // matched by email alone is a conflict, or (policy 'release') no candidate.
        let (mut idp_at, mut sp_at, mut matched_by, mut status) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, s, k) in chosen {
            let (i, s, k) = (i as usize, s as usize, k as usize);
            let active = users.active(sp[s]);
            if k == EMAIL && self.reuse == Reuse::Release && active != Some(true) {
                continue;
            }
            let unique = per_idp[i] == 1 && per_sp[s] == 1;
            let new = !(k == EMAIL && active == Some(false) && self.reuse == Reuse::Conflict) && unique;
            idp_at.push(idp[i]);
            sp_at.push(sp[s]);
            matched_by.push(KEYS[k].0);
            status.push(if new { "new" } else { "conflict" });
        }
        let uids = |places: &[At]| Arc::new(places.iter().map(|&at| users.uid(at)).collect::<Int64Array>()) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.name.as_str(); idp_at.len()])),
            uids(&idp_at),
            uids(&sp_at),
            users.gather(ID, &idp_at),
            users.gather(ID, &sp_at),
            Arc::new(StringArray::from(matched_by)),
            Arc::new(StringArray::from(status)),
        ];
        let out = RecordBatch::try_new(schema(), columns).expect("columns of users.sql");
        tracing::debug!(seconds = t.elapsed().as_secs_f64(), "correlate/users: rows");
        out
    }

    /// free.sql: this app's IdP users and app accounts that no stored link holds.
    fn free(&self, users: &Users, prior: &[RecordBatch]) -> (Vec<At>, Vec<At>) {
        let (mut idp_held, mut sp_held) = (users.bits(), users.bits());
        for b in prior {
            let (app, sp_uid, idp_uid) = (texts(b, 0), ints(b, 2), ints(b, 4));
            for r in 0..b.num_rows() {
                if text(app, r) != Some(self.name.as_str()) {
                    continue;
                }
                for (uids, held) in [(idp_uid, &mut idp_held), (sp_uid, &mut sp_held)] {
                    if let Some(bit) = uids.is_valid(r).then(|| users.bit(uids.value(r))).flatten() {
                        set(held, bit);
                    }
                }
            }
        }
        let (mut idp, mut sp) = (Vec::new(), Vec::new());
        for (b, batch) in users.batches.iter().enumerate() {
            let (uid, source) = (ints(batch, UID), texts(batch, SOURCE));
            for r in 0..batch.num_rows() {
                let (Some(source), true) = (text(source, r), uid.is_valid(r)) else {
                    continue; // a NULL joins nothing
                };
                let bit = users.bit(uid.value(r)).expect("every key is within the span");
                let at = (b as u32, r as u32);
                if self.idp_source.as_deref() == Some(source) && !is_set(&idp_held, bit) {
                    idp.push(at);
                }
                if self.app_source.as_deref() == Some(source) && !is_set(&sp_held, bit) {
                    sp.push(at);
                }
            }
        }
        (idp, sp)
    }

    /// The candidates of candidates.sql that chosen.sql can choose: (IdP user, account, key)
    /// for each key both share, as positions in `idp` and `sp`. Keys are matched best rank
    /// first, and a key only for the IdP users no better-ranked key matched (a candidate on a
    /// worse rank than a user's best is never chosen): on a new store most users match on the
    /// first key, and the next ones are looked up for the few left.
    fn candidates(&self, users: &Users, idp: &[At], sp: &[At]) -> Vec<(u32, u32, u8)> {
        let mut keys: Vec<(i64, usize)> = (0..KEYS.len()).filter_map(|k| Some((*self.ranks[k].iter().min()?, k))).collect();
        keys.sort_unstable();
        let mut matched = vec![false; idp.len()];
        let mut out = Vec::new();
        for group in keys.chunk_by(|a, b| a.0 == b.0) {
            let left: Vec<u32> = (0..idp.len() as u32).filter(|&p| !matched[p as usize]).collect();
            let first = out.len();
            for &(_, k) in group {
                out.extend(matches(users, idp, &left, sp, k).into_iter().map(|(p, q)| (p, q, k as u8)));
            }
            for &(p, _, _) in &out[first..] {
                matched[p as usize] = true;
            }
        }
        out
    }
}

/// The (IdP user, account) pairs, as positions in `idp` and `sp`, whose key `k` is equal, for
/// the IdP users at `wanted`: the smaller side's keys in a hash table, the other side's looked
/// up in it.
fn matches(users: &Users, idp: &[At], wanted: &[u32], sp: &[At], k: usize) -> Vec<(u32, u32)> {
    let key = |at: At| users.key(at, k);
    let idp_side = || wanted.iter().map(|&p| (p, idp[p as usize]));
    let sp_side = || (0..sp.len() as u32).map(|q| (q, sp[q as usize]));
    let mut out = Vec::new();
    if wanted.len() <= sp.len() {
        let table = KeyTable::new(wanted.len(), idp_side().filter_map(|(p, at)| Some((p, key(at)?))));
        for (q, value) in sp_side().filter_map(|(q, at)| Some((q, key(at)?))) {
            table.each(value, |p| out.push((p, q)));
        }
    } else {
        let table = KeyTable::new(sp.len(), sp_side().filter_map(|(q, at)| Some((q, key(at)?))));
        for (p, value) in idp_side().filter_map(|(p, at)| Some((p, key(at)?))) {
            table.each(value, |q| out.push((p, q)));
        }
    }
    out
}

/// The end of a chain in [`KeyTable`].
const END: u32 = u32::MAX;

/// Positions by key: a head per key hash, chained through the entries (positions whose keys
/// share a hash, equal or not).
struct KeyTable<'a> {
    heads: rustc_hash::FxHashMap<u64, u32>,
    /// (position, key, the next entry of its hash or [`END`]).
    entries: Vec<(u32, &'a str, u32)>,
}

impl<'a> KeyTable<'a> {
    /// Up to `capacity` rows (sized once: grown by doubling, a million keys were rehashed
    /// twenty times).
    fn new(capacity: usize, rows: impl Iterator<Item = (u32, &'a str)>) -> KeyTable<'a> {
        let mut table = KeyTable {
            heads: rustc_hash::FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            entries: Vec::with_capacity(capacity),
        };
        for (position, key) in rows {
            let at = table.entries.len() as u32;
            let next = table.heads.insert(hash(key), at).unwrap_or(END);
            table.entries.push((position, key, next));
        }
        table
    }

    /// Call `f` with each position whose key is `key`.
    fn each(&self, key: &str, mut f: impl FnMut(u32)) {
        let mut at = self.heads.get(&hash(key)).copied().unwrap_or(END);
        while at != END {
            let (position, k, next) = self.entries[at as usize];
            if k == key {
                f(position);
            }
            at = next;
        }
    }
}

fn hash(key: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Row = (String, Option<i64>, Option<i64>, Option<String>, Option<String>, String, String);

    fn rows(batches: &[RecordBatch]) -> Vec<Row> {
        let mut out: Vec<Row> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |i| {
                    let t = |c| text(texts(b, c), i).map(String::from);
                    let n = |c| ints(b, c).is_valid(i).then(|| ints(b, c).value(i));
                    (t(0).unwrap(), n(1), n(2), t(3), t(4), t(5).unwrap(), t(6).unwrap())
                })
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// A user: (uid, source index, external id key, user name key, email key, active).
    type User = (Option<i64>, usize, Option<u8>, Option<u8>, Option<u8>, Option<bool>);
    /// A stored link: (app index, idp_uid, sp_uid).
    type Link = (usize, Option<i64>, Option<i64>);

    /// `links` computed natively and by the queries, over two apps ('a' on sources idp/app1,
    /// 'b' on idp/app2) with the match keys and email policies given.
    async fn both_ways(
        users: &[User],
        links: &[Link],
        keys: &[(usize, &str, Option<i64>)],
        policies: [&str; 2],
    ) -> (bool, Vec<Row>, Vec<Row>) {
        let ctx = crate::engine::session();
        let int = |v: Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
        let key = |v: Option<u8>| v.map_or("NULL".to_string(), |v| format!("'k{v}'"));
        let values = crate::engine::values_clause;
        let sources = ["idp", "app1", "app2"];
        let u = users
            .iter()
            .map(|(uid, s, x, n, e, active)| {
                let active = active.map_or("NULL".to_string(), |a| a.to_string());
                // Ids repeat the key (the queries confirm none by id here).
                format!(
                    "({}, '{}', 'u{}', {}, {}, {}, {active})",
                    int(*uid),
                    sources[*s],
                    int(*uid),
                    key(*x),
                    key(*n),
                    key(*e)
                )
            })
            .collect();
        let l = links
            .iter()
            .map(|(a, i, s)| {
                format!(
                    "('{}', 'email', {}, 'u{}', {}, 'u{}')",
                    ["a", "b"][*a],
                    int(*s),
                    int(*s),
                    int(*i),
                    int(*i)
                )
            })
            .collect();
        let k = keys
            .iter()
            .map(|(a, name, rank)| format!("('{}', '{name}', {})", ["a", "b"][*a], int(*rank)))
            .collect();
        for ddl in [
            format!(
                "CREATE TABLE users (uid BIGINT, source TEXT, id TEXT, external_id_key TEXT, user_name_key TEXT, email_key TEXT, active BOOLEAN){}",
                values(u)
            ),
            format!(
                "CREATE TABLE prior (app TEXT, matched_by TEXT, sp_uid BIGINT, sp_user_id TEXT, idp_uid BIGINT, idp_user_id TEXT){}",
                values(l)
            ),
            "CREATE TABLE apps (app TEXT, idp_source TEXT, app_source TEXT) AS VALUES ('a', 'idp', 'app1'), ('b', 'idp', 'app2')".to_string(),
            format!("CREATE TABLE app_match (app TEXT, \"key\" TEXT, rank BIGINT){}", values(k)),
            format!(
                "CREATE TABLE app_email_reuse (app TEXT, policy TEXT) AS VALUES ('a', '{}'), ('b', '{}')",
                policies[0], policies[1]
            ),
        ] {
            ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        }
        // Whether `links` computes them itself (what the property test compares) or falls back.
        let collected = |sql: &'static str| {
            let ctx = ctx.clone();
            async move { ctx.sql(sql).await.unwrap().collect().await.unwrap() }
        };
        let (config, ranks, reuse) = (
            collected("SELECT app, idp_source, app_source FROM apps").await,
            collected("SELECT app, key, rank FROM app_match").await,
            collected("SELECT app, policy FROM app_email_reuse").await,
        );
        let native = Apps::new(&config, &ranks, &reuse).is_some() && Users::new(&collected(USER_COLUMNS).await).is_some();
        let by_queries = by_queries(&ctx).await.unwrap();
        let columns = |s: SchemaRef| {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(columns(by_queries[0].schema()), columns(schema()), "users.sql's columns");
        (native, rows(&super::links(&ctx).await.unwrap()), rows(&by_queries))
    }

    #[test]
    fn an_app_named_twice_is_left_to_the_queries() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("app", DataType::Utf8, true),
                Field::new("idp_source", DataType::Utf8, true),
                Field::new("app_source", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["a", "a"])),
                Arc::new(StringArray::from(vec!["idp", "idp"])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap();
        assert!(Apps::new(std::slice::from_ref(&b), &[], &[]).is_none());
        assert!(Apps::new(&[b.slice(0, 1)], &[], &[]).is_some());
    }

    #[test]
    fn users_whose_keys_repeat_or_spread_too_wide_are_left_to_the_queries() {
        let users = |uids: Vec<Option<i64>>| {
            let n = uids.len();
            let text = || Arc::new(StringArray::from(vec![Some("x"); n])) as ArrayRef;
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(uids)),
                text(),
                text(),
                text(),
                text(),
                text(),
                Arc::new(arrow::array::BooleanArray::from(vec![true; n])),
            ];
            let fields: Vec<Field> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                .collect();
            vec![RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()]
        };
        assert!(Users::new(&users(vec![Some(1), None, Some(2), None])).is_some());
        assert!(Users::new(&users(vec![Some(1), Some(2), Some(1)])).is_none());
        assert!(Users::new(&users(vec![Some(1), Some(1 << 40)])).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_native_links_are_those_of_users_sql(
            wide in any::<bool>(),
            users in proptest::collection::vec(
                (proptest::option::weighted(0.95, 0i64..40), 0usize..3,
                 proptest::option::weighted(0.7, 0u8..6), proptest::option::weighted(0.7, 0u8..6),
                 proptest::option::weighted(0.7, 0u8..6), proptest::option::weighted(0.9, any::<bool>())),
                0..30),
            links in proptest::collection::vec((0usize..2, proptest::option::weighted(0.8, 0i64..40), proptest::option::weighted(0.8, 0i64..40)), 0..8),
            keys in proptest::collection::vec((0usize..2, prop_oneof![Just("externalId"), Just("userName"), Just("email"), Just("phone")], proptest::option::weighted(0.9, 1i64..4)), 0..7),
            policies in (prop_oneof![Just("conflict"), Just("release"), Just("reactivate")], prop_oneof![Just("conflict"), Just("release"), Just("reactivate")]),
        ) {
            // Unique keys (a repeated one is left to the queries: kept here as the first).
            let mut seen = std::collections::HashSet::new();
            let users: Vec<User> = users.into_iter().filter(|u| u.0.is_none_or(|uid| seen.insert(uid))).collect();
            // `wide` spreads the keys past what the bitmaps cover (the queries answer).
            let spread = |uid: Option<i64>| uid.map(|u| if wide { u << 40 } else { u + 1 });
            let users: Vec<User> = users.into_iter().map(|(uid, s, x, n, e, a)| (spread(uid), s, x, n, e, a)).collect();
            let links: Vec<Link> = links.into_iter().map(|(a, i, s)| (a, spread(i), spread(s))).collect();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let (computed, native, by_queries) = rt.block_on(both_ways(&users, &links, &keys, [policies.0, policies.1]));
            // Dense keys are computed, not left to the queries (which would compare them with themselves).
            prop_assert!(computed || wide, "dense, unique keys take the native path");
            prop_assert_eq!(native, by_queries);
        }
    }
}
