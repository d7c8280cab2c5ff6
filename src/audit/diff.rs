//! `scimsync diff`: what changed in the mirrored state between two instants (or the ends of
//! two runs), from the history views: users and groups added, removed or changed (naming the
//! columns that changed), memberships added or removed.
use rusqlite::OptionalExtension;

use super::AuditError;
use crate::store::sql_text;

/// Columns of a user compared by `diff` (the raw object catches the rest).
const USER_COLUMNS: &[&str] = &[
    "user_name",
    "external_id",
    "given_name",
    "family_name",
    "formatted",
    "display_name",
    "email",
    "active",
    "title",
    "phone",
    "timezone",
    "role",
    "attributes",
];
const GROUP_COLUMNS: &[&str] = &["display_name", "external_id"];

/// The store opened read-only, and how its errors become the auditor's (naming the store).
fn read_only(store: &std::path::Path) -> Result<(rusqlite::Connection, impl Fn(rusqlite::Error) -> AuditError + Copy + '_), AuditError> {
    let failed = move |source| AuditError::Store {
        path: store.display().to_string(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    Ok((conn, failed))
}

/// `RUN` (a run id: the instant that run finished) or a time, in stored form. An instant
/// before the store's history horizon (what retention removed) is refused, naming the earliest
/// instant still answerable: never a silently partial answer.
pub fn resolve_point(store: &std::path::Path, point: &str) -> Result<String, AuditError> {
    let (conn, failed) = read_only(store)?;
    let horizon = crate::store::retention::history_horizon(&conn).map_err(failed)?;
    let instant = match point.parse::<i64>() {
        Ok(run) => {
            let finished: Option<Option<String>> = conn
                .query_row("SELECT finished_at FROM runs WHERE id = ?1", [run], |r| r.get(0))
                .optional()
                .map_err(failed)?;
            match (finished, &horizon) {
                (Some(Some(t)), _) => t,
                (Some(None), _) => return Err(AuditError::Input(format!("run {run} has not finished"))),
                (None, Some(h)) => {
                    return Err(AuditError::Input(format!(
                        "no run {run} in the store: retention may have removed it; the earliest instant still answerable is {h} (see `scimsync status`)"
                    )))
                }
                (None, None) => {
                    return Err(AuditError::Input(format!(
                        "no run {run} in the store (see `scimsync status` or the runs table)"
                    )))
                }
            }
        }
        Err(_) => crate::time::parse_instant(point).ok_or_else(|| {
            AuditError::Input(format!(
                "'{point}' is neither a run id nor a time like 2026-10-01T00:00:00Z or 2026-10-01"
            ))
        })?,
    };
    match horizon {
        Some(h) if instant < h => Err(AuditError::Input(format!(
            "'{point}' ({instant}) is before the store's history horizon: retention removed the versions that ended before {h}, so the state then is no longer whole; the earliest instant still answerable is {h}"
        ))),
        _ => Ok(instant),
    }
}

/// `at` is an SQL literal ([`sql_text`]).
fn valid_at(at: &str) -> String {
    format!("(valid_from <= {at} AND (valid_to IS NULL OR valid_to > {at}))")
}

/// The versions of `source`'s objects in `history` valid at `at` and not at `other` (each an SQL
/// literal, [`sql_text`]). A version valid at both instants is the same row on both sides of
/// the diff and cannot differ, so neither side reads it: the join meets only what changed in
/// between.
fn state(history: &str, columns: &str, source: &str, at: &str, other: &str) -> String {
    format!(
        "SELECT {columns} FROM {history} WHERE source = {source} AND {} AND NOT {}",
        valid_at(at),
        valid_at(other)
    )
}

/// The output's columns, from a query's `source, object, id, name, change, changed_columns`.
const OUTPUT: &str = "CASE WHEN source LIKE 'app.%' THEN substr(source, 5) END AS app, source, object, id, name, change, changed_columns";

/// `source`, `from` and `to` are SQL literals ([`sql_text`]).
fn compared(object: &str, history: &str, name: &str, columns: &[&str], source: &str, from: &str, to: &str) -> String {
    let changed: Vec<String> = columns
        .iter()
        .map(|c| format!("CASE WHEN (a.{c} IS DISTINCT FROM b.{c}) THEN '{c}' END"))
        .collect();
    let read = format!("source, id, raw, {}", columns.join(", "));
    format!(
        "SELECT {OUTPUT} FROM (SELECT coalesce(b.source, a.source) AS source, '{object}' AS object, coalesce(b.id, a.id) AS id, \
         coalesce(b.{name}, a.{name}) AS name, \
         CASE WHEN a.id IS NULL THEN 'added' WHEN b.id IS NULL THEN 'removed' ELSE 'changed' END AS change, \
         CAST(CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL THEN coalesce(nullif(concat_ws(', ', {cols}), ''), 'other attributes') END AS VARCHAR) AS changed_columns \
         FROM ({a}) a FULL OUTER JOIN ({b}) b ON a.id = b.id \
         WHERE a.id IS NULL OR b.id IS NULL OR (a.raw IS DISTINCT FROM b.raw) OR {differs}) d \
         ORDER BY change, name, id",
        cols = changed.join(", "),
        differs = columns.iter().map(|c| format!("(a.{c} IS DISTINCT FROM b.{c})")).collect::<Vec<_>>().join(" OR "),
        a = state(history, &read, source, from, to),
        b = state(history, &read, source, to, from),
    )
}

/// Memberships added or removed, named by the group's and the user's current names (else
/// their ids), from `source`'s rows of the name tables only. The engine picks each join's
/// build side by its estimates: for a whole app added (4.8M memberships at 1M users) it hashes
/// the differences and streams the names through them. `source`, `from` and `to` are SQL
/// literals ([`sql_text`]).
fn memberships(source: &str, from: &str, to: &str) -> String {
    let read = "group_id, user_id";
    format!(
        "SELECT {OUTPUT} FROM (SELECT {source} AS source, 'membership' AS object, d.group_id || ' ' || d.user_id AS id, \
         coalesce(g.display_name, d.group_id) || ': ' || coalesce(u.user_name, d.user_id) AS name, d.change, CAST(NULL AS VARCHAR) AS changed_columns \
         FROM (SELECT id, user_name FROM users WHERE source = {source}) u RIGHT JOIN \
         ((SELECT id, display_name FROM groups WHERE source = {source}) g RIGHT JOIN \
         (SELECT coalesce(b.group_id, a.group_id) AS group_id, coalesce(b.user_id, a.user_id) AS user_id, \
         CASE WHEN a.group_id IS NULL THEN 'added' ELSE 'removed' END AS change \
         FROM ({a}) a FULL OUTER JOIN ({b}) b ON a.group_id = b.group_id AND a.user_id = b.user_id \
         WHERE a.group_id IS NULL OR b.group_id IS NULL) d ON g.id = d.group_id) ON u.id = d.user_id) m \
         ORDER BY change, name, id",
        a = state("membership_history", read, source, from, to),
        b = state("membership_history", read, source, to, from),
    )
}

/// The sources whose history `diff` reads, in order: every source with a user or group,
/// current or closed (found by skipping through the indexes on `source`, not by reading the
/// rows). A membership's source is its group's, and a group's closed version outlives its
/// memberships' (retention removes versions by when they ended), so no source is missed.
pub fn sources(store: &std::path::Path) -> Result<Vec<String>, AuditError> {
    let (conn, failed) = read_only(store)?;
    let mut found = std::collections::BTreeSet::new();
    for table in ["users", "user_versions", "groups", "group_versions"] {
        let sql = format!(
            "WITH RECURSIVE s(x) AS (SELECT min(source) FROM {table} \
             UNION ALL SELECT (SELECT min(source) FROM {table} WHERE source > x) FROM s WHERE x IS NOT NULL) \
             SELECT x FROM s WHERE x IS NOT NULL"
        );
        let mut stmt = conn.prepare(&sql).map_err(failed)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(failed)?;
        for source in rows {
            found.insert(source.map_err(failed)?);
        }
    }
    Ok(found.into_iter().collect())
}

/// The diff between two stored-form instants, optionally for one app's source, as statements
/// to run one after the other: each source's groups, memberships and users in turn, which is
/// the order of the whole (source, object, change, name, id). One at a time, each join holds
/// one source's changes of one kind: at 1M users `--from 1` (5.9M changes) had three joins of
/// whole states of every source at once, 1.63 GiB (hash joins cannot spill).
pub fn queries(from: &str, to: &str, app: Option<&str>, sources: &[String]) -> Vec<String> {
    let (from, to) = (sql_text(from), sql_text(to));
    let wanted = app.map(|a| format!("app.{a}"));
    let mut out = Vec::new();
    for source in sources.iter().filter(|s| wanted.as_ref().is_none_or(|w| w == *s)) {
        let source = sql_text(source);
        out.push(compared(
            "group",
            "group_history",
            "display_name",
            GROUP_COLUMNS,
            &source,
            &from,
            &to,
        ));
        out.push(memberships(&source, &from, &to));
        out.push(compared("user", "user_history", "user_name", USER_COLUMNS, &source, &from, &to));
    }
    if out.is_empty() {
        // No such source: an empty result, with its columns.
        let none = sql_text(&wanted.unwrap_or_default());
        out.push(compared("group", "group_history", "display_name", GROUP_COLUMNS, &none, &from, &to));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::rng::SplitMix;

    /// The source, with a quote: the queries' literals are escaped, not cut.
    const SOURCE: &str = "app.o'x";

    /// Instants `T00` … `T11`, ordered as text like stored times.
    fn instant(i: u64) -> String {
        format!("T{i:02}")
    }

    /// One object's history: its content (column values, the last being `raw`) at each instant,
    /// `None` while it does not exist.
    type Timeline = Vec<Option<Vec<Option<String>>>>;

    /// A random timeline over 10 instants: created, changed (sometimes to the same content, a new
    /// version all the same), removed and created again.
    fn timeline(rng: &mut SplitMix, columns: usize) -> Timeline {
        let value = |rng: &mut SplitMix| match rng.below(3) {
            0 => None,
            v => Some(format!("v{v}")),
        };
        let mut now: Option<Vec<Option<String>>> = None;
        let mut out = Vec::new();
        for _ in 0..10 {
            match rng.below(6) {
                0 => now = None,
                1 | 2 => {
                    let mut content = now.clone().unwrap_or_else(|| (0..=columns).map(|_| value(rng)).collect());
                    let c = rng.below(columns as u64 + 1) as usize;
                    content[c] = value(rng);
                    now = Some(content);
                }
                _ => {}
            }
            out.push(now.clone());
        }
        out
    }

    /// The versions of a timeline as history rows: (content, valid_from, valid_to). A new
    /// version starts at each change, and at random where nothing changed.
    fn versions(rng: &mut SplitMix, t: &Timeline) -> Vec<(Vec<Option<String>>, String, Option<String>)> {
        let mut rows: Vec<(Vec<Option<String>>, String, Option<String>)> = Vec::new();
        let mut open: Option<usize> = None;
        for (i, state) in t.iter().enumerate() {
            let same = i > 0 && t[i - 1] == *state;
            if same && !(state.is_some() && rng.chance(15)) {
                continue;
            }
            if let Some(o) = open.take() {
                rows[o].2 = Some(instant(i as u64));
            }
            if let Some(content) = state {
                rows.push((content.clone(), instant(i as u64), None));
                open = Some(rows.len() - 1);
            }
        }
        rows
    }

    fn table(columns: &[&str], rows: Vec<Vec<Option<String>>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|c| Arc::new(rows.iter().map(|r| r[c].clone()).collect::<StringArray>()) as ArrayRef)
            .collect();
        RecordBatch::try_new(schema, arrays).unwrap()
    }

    /// What `diff` must say, worked out object by object from the timelines: (source, object,
    /// id, name, change, changed columns).
    fn expected(objects: &[(&str, &str, &Timeline)], columns: &[&str], from: u64, to: u64) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        for (object, id, t) in objects {
            let (a, b) = (&t[from as usize], &t[to as usize]);
            let (change, changed) = match (a, b) {
                (None, None) => continue,
                (None, Some(_)) => ("added", None),
                (Some(_), None) => ("removed", None),
                (Some(a), Some(b)) if a == b => continue,
                (Some(a), Some(b)) => {
                    let named: Vec<&str> = (0..columns.len()).filter(|&c| a[c] != b[c]).map(|c| columns[c]).collect();
                    (
                        "changed",
                        Some(if named.is_empty() {
                            "other attributes".to_string()
                        } else {
                            named.join(", ")
                        }),
                    )
                }
            };
            let name = if *object == "membership" {
                Some(id.replace(' ', ": "))
            } else {
                // coalesce(b.name, a.name)
                b.as_ref()
                    .and_then(|b| b[0].clone())
                    .or_else(|| a.as_ref().and_then(|a| a[0].clone()))
            };
            out.push(vec![
                Some(SOURCE.to_string()),
                Some(object.to_string()),
                Some(id.to_string()),
                name,
                Some(change.to_string()),
                changed,
            ]);
        }
        out.sort();
        out
    }

    /// The diff between any two instants (either way round) reads only the versions valid at
    /// one and not the other, and says exactly what comparing the two whole states says.
    #[tokio::test]
    async fn diff_equals_the_whole_states_compared_between_any_two_instants() {
        let mut rng = SplitMix::new(7);
        let user_columns: Vec<&str> = USER_COLUMNS.to_vec();
        let users: Vec<(String, Timeline)> = (0..40).map(|i| (format!("u{i}"), timeline(&mut rng, user_columns.len()))).collect();
        let groups: Vec<(String, Timeline)> = (0..20)
            .map(|i| (format!("g{i}"), timeline(&mut rng, GROUP_COLUMNS.len())))
            .collect();
        let members: Vec<(String, Timeline)> = (0..40)
            .map(|i| {
                // A membership has no columns: it exists or not.
                let t = timeline(&mut rng, 0).into_iter().map(|s| s.map(|_| vec![])).collect();
                (format!("g{} u{}", i % 5, i), t)
            })
            .collect();

        let history = |objects: &[(String, Timeline)], rng: &mut SplitMix, keys: &dyn Fn(&str) -> Vec<Option<String>>| {
            let mut rows = Vec::new();
            for (id, t) in objects {
                for (content, from, to) in versions(rng, t) {
                    let mut row = vec![Some(SOURCE.to_string())];
                    row.extend(keys(id));
                    row.extend(content);
                    row.extend([Some(from), to]);
                    rows.push(row);
                }
            }
            rows
        };
        let ctx = datafusion::prelude::SessionContext::new();
        let mut user_table = vec!["source", "id"];
        user_table.extend(&user_columns);
        user_table.extend(["raw", "valid_from", "valid_to"]);
        let mut group_table = vec!["source", "id"];
        group_table.extend(GROUP_COLUMNS);
        group_table.extend(["raw", "valid_from", "valid_to"]);
        let one = |id: &str| vec![Some(id.to_string())];
        let user_rows = history(&users, &mut rng, &one);
        let group_rows = history(&groups, &mut rng, &one);
        let member_rows = history(&members, &mut rng, &|id: &str| id.split(' ').map(|p| Some(p.to_string())).collect());
        for (name, columns, rows) in [
            ("user_history", user_table, user_rows),
            ("group_history", group_table, group_rows),
            (
                "membership_history",
                vec!["source", "group_id", "user_id", "valid_from", "valid_to"],
                member_rows,
            ),
            ("groups", vec!["source", "id", "display_name"], vec![]),
            ("users", vec!["source", "id", "user_name"], vec![]),
        ] {
            ctx.register_batch(name, table(&columns, rows)).unwrap();
        }

        for from in 0..10 {
            for to in 0..10 {
                let mut got: Vec<Vec<Option<String>>> = Vec::new();
                for sql in queries(&instant(from), &instant(to), None, &[SOURCE.to_string()]) {
                    let mut rows = Vec::new();
                    for b in ctx.sql(&sql).await.unwrap().collect().await.unwrap() {
                        for r in 0..b.num_rows() {
                            rows.push(
                                // Less the first column, `app`.
                                (1..7)
                                    .map(|c| {
                                        let col = arrow::compute::cast(b.column(c), &DataType::Utf8).unwrap();
                                        let col = col.as_string::<i32>();
                                        (!col.is_null(r)).then(|| col.value(r).to_string())
                                    })
                                    .collect::<Vec<_>>(),
                            );
                        }
                    }
                    // In the order of the whole: change, then name (absent last), then id.
                    let key = |r: &Vec<Option<String>>| (r[4].clone(), r[3].is_none(), r[3].clone(), r[2].clone());
                    assert!(rows.windows(2).all(|w| key(&w[0]) <= key(&w[1])), "{sql}: {rows:?}");
                    got.extend(rows);
                }
                got.sort();
                let mut want = expected(
                    &users.iter().map(|(id, t)| ("user", id.as_str(), t)).collect::<Vec<_>>(),
                    &user_columns,
                    from,
                    to,
                );
                want.extend(expected(
                    &groups.iter().map(|(id, t)| ("group", id.as_str(), t)).collect::<Vec<_>>(),
                    GROUP_COLUMNS,
                    from,
                    to,
                ));
                want.extend(expected(
                    &members.iter().map(|(id, t)| ("membership", id.as_str(), t)).collect::<Vec<_>>(),
                    &[],
                    from,
                    to,
                ));
                want.sort();
                assert_eq!(got, want, "from T{from:02} to T{to:02}");
            }
        }
    }
}
