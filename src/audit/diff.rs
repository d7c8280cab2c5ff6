//! `scimsync diff`: what changed in the mirrored state between two instants (or the ends of
//! two runs), from the history views: users and groups added, removed or changed (naming the
//! columns that changed), memberships added or removed.
use rusqlite::OptionalExtension;

use super::AuditError;

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

/// `RUN` (a run id: the instant that run finished) or a time, in stored form. An instant
/// before the store's history horizon (what retention removed) is refused, naming the earliest
/// instant still answerable: never a silently partial answer.
pub fn resolve_point(store: &std::path::Path, point: &str) -> Result<String, AuditError> {
    let failed = |source| AuditError::Store {
        path: store.display().to_string(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
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

fn state(history: &str, at: &str) -> String {
    format!("SELECT * FROM {history} WHERE valid_from <= '{at}' AND (valid_to IS NULL OR valid_to > '{at}')")
}

fn compared(object: &str, history: &str, name: &str, columns: &[&str], from: &str, to: &str) -> String {
    let changed: Vec<String> = columns
        .iter()
        .map(|c| format!("CASE WHEN (a.{c} IS DISTINCT FROM b.{c}) THEN '{c}' END"))
        .collect();
    format!(
        "SELECT coalesce(b.source, a.source) AS source, '{object}' AS object, coalesce(b.id, a.id) AS id, \
         coalesce(b.{name}, a.{name}) AS name, \
         CASE WHEN a.id IS NULL THEN 'added' WHEN b.id IS NULL THEN 'removed' ELSE 'changed' END AS change, \
         CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL THEN coalesce(nullif(concat_ws(', ', {cols}), ''), 'other attributes') END AS changed_columns \
         FROM ({a}) a FULL OUTER JOIN ({b}) b ON a.source = b.source AND a.id = b.id \
         WHERE a.id IS NULL OR b.id IS NULL OR (a.raw IS DISTINCT FROM b.raw) OR {differs}",
        cols = changed.join(", "),
        differs = columns.iter().map(|c| format!("(a.{c} IS DISTINCT FROM b.{c})")).collect::<Vec<_>>().join(" OR "),
        a = state(history, from),
        b = state(history, to),
    )
}

/// The diff query between two stored-form instants, optionally for one app's source.
pub fn query(from: &str, to: &str, app: Option<&str>) -> String {
    let (from, to) = (from.replace('\'', ""), to.replace('\'', ""));
    let memberships = format!(
        "SELECT coalesce(b.source, a.source) AS source, 'membership' AS object, \
         coalesce(b.group_id, a.group_id) || ' ' || coalesce(b.user_id, a.user_id) AS id, \
         coalesce(g.display_name, coalesce(b.group_id, a.group_id)) || ': ' || coalesce(u.user_name, coalesce(b.user_id, a.user_id)) AS name, \
         CASE WHEN a.group_id IS NULL THEN 'added' ELSE 'removed' END AS change, CAST(NULL AS VARCHAR) AS changed_columns \
         FROM ({a}) a FULL OUTER JOIN ({b}) b ON a.source = b.source AND a.group_id = b.group_id AND a.user_id = b.user_id \
         LEFT JOIN groups g ON g.source = coalesce(b.source, a.source) AND g.id = coalesce(b.group_id, a.group_id) \
         LEFT JOIN users u ON u.source = coalesce(b.source, a.source) AND u.id = coalesce(b.user_id, a.user_id) \
         WHERE a.group_id IS NULL OR b.group_id IS NULL",
        a = state("membership_history", &from),
        b = state("membership_history", &to),
    );
    let filter = match app {
        Some(a) => format!("WHERE source = 'app.{}'", a.replace('\'', "''")),
        None => String::new(),
    };
    format!(
        "SELECT CASE WHEN source LIKE 'app.%' THEN substr(source, 5) END AS app, source, object, id, name, change, changed_columns FROM (\n{}\nUNION ALL\n{}\nUNION ALL\n{}\n) d {filter} ORDER BY source, object, change, name, id",
        compared("user", "user_history", "user_name", USER_COLUMNS, &from, &to),
        compared("group", "group_history", "display_name", GROUP_COLUMNS, &from, &to),
        memberships
    )
}
