//! Mapped attributes (an app's `mappings`): each expression evaluated over the IdP users in
//! scope, compared with what the linked account holds, as `user.drift` findings; and the values
//! a created account gets. Runs only for apps with mappings: a plan without any reads nothing
//! more than before.
//!
//! Tables (registered by [`load`]): `idp_attrs(uid, <each attribute a mapping reads>)` from the
//! IdP users' `attributes`, and `app_attrs(uid, attribute, value)` with the mapped paths of the
//! app accounts. The SQL is generated per app from its mappings (a mapping is a projection);
//! each finding's `detail` names the expression that produced the desired value.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

use super::{collect, deregister, findings::findings_of, register, strings, AppInput, EngineError, Finding};
use crate::mapping::{Mapping, TargetKind};
use crate::store::{sql_ident as ident, sql_text as lit};

/// App → IdP user id → (target, value) for the accounts `user.missing` creates.
pub type CreateValues = BTreeMap<String, HashMap<String, Vec<(String, String)>>>;

fn with_mappings<'a>(apps: &'a [AppInput<'a>]) -> impl Iterator<Item = &'a AppInput<'a>> {
    apps.iter().filter(|a| !a.mappings.is_empty())
}

/// The attribute tables the mappings need (`idp_attrs`, `app_attrs`), read on threads of their
/// own from the moment the engine loads: at 1M users a side that is a scan and a JSON parse of
/// 2M users' `attributes`, about 1 s, which the engine's first steps (correlation, the first
/// drift queries) no longer wait for. [`Attributes::register`] waits for them.
pub(super) struct Attributes(Option<std::thread::JoinHandle<Result<[RecordBatch; 2], EngineError>>>);

impl Attributes {
    /// Start reading what the apps' mappings need (nothing when no app has mappings).
    pub(super) fn read(store_path: &Path, apps: &[AppInput<'_>]) -> Attributes {
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut idp_sources: BTreeSet<String> = BTreeSet::new();
        let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in with_mappings(apps) {
            idp_sources.insert(a.idp_source.clone());
            for m in &a.mappings {
                names.extend(m.reads.iter().cloned());
                if m.kind != TargetKind::Path && m.kind != TargetKind::Manager {
                    continue;
                }
                targets.entry(a.config.source_name()).or_default().insert(m.target.clone());
            }
        }
        if idp_sources.is_empty() {
            return Attributes(None);
        }
        let store_path = store_path.to_path_buf();
        Attributes(Some(std::thread::spawn(move || {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            // The IdP side and the app side on two threads, each on its own connection.
            std::thread::scope(|s| {
                let idp = s.spawn(|| idp_attrs(&store_path, &idp_sources, &names));
                let app = app_attrs(&store_path, &targets);
                Ok([idp.join().expect("reading attributes does not panic")?, app?])
            })
        })))
    }

    /// Wait for the tables and register them in `ctx`.
    pub(super) fn register(self, ctx: &SessionContext) -> Result<(), EngineError> {
        let Some(reading) = self.0 else { return Ok(()) };
        let [idp, app] = reading.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        register(ctx, "idp_attrs", vec![idp])?;
        register(ctx, "app_attrs", vec![app])
    }
}

fn scan_error(source: rusqlite::Error) -> EngineError {
    EngineError::Scan(super::scan::ScanError::Sqlite {
        table: "users (attributes)",
        source,
    })
}

/// Each `(uid, attributes)` of the users of `source` that have attributes.
fn read_attributes(conn: &rusqlite::Connection, source: &str, row: &mut dyn FnMut(i64, &str)) -> Result<(), EngineError> {
    let mut stmt = conn
        .prepare_cached("SELECT uid, attributes FROM users WHERE source = ?1 AND attributes IS NOT NULL")
        .map_err(scan_error)?;
    let mut rows = stmt.query([source]).map_err(scan_error)?;
    while let Some(r) = rows.next().map_err(scan_error)? {
        let uid: i64 = r.get(0).map_err(scan_error)?;
        let text = r.get_ref(1).map_err(scan_error)?.as_str().map_err(|e| scan_error(e.into()))?;
        row(uid, text);
    }
    Ok(())
}

/// `idp_attrs`: the IdP users' uid and one column per attribute the mappings read.
fn idp_attrs(store_path: &Path, sources: &BTreeSet<String>, names: &[&str]) -> Result<RecordBatch, EngineError> {
    let conn = super::scan::open(store_path).map_err(scan_error)?;
    let mut table = NamedValues::new(names);
    for source in sources {
        read_attributes(&conn, source, &mut |uid, text| {
            table.read(text, |_| true);
            table.push(uid);
        })?;
    }
    Ok(table.finish())
}

/// `app_attrs`: the app accounts' uid and one column per path a mapping writes (`targets`, by
/// app source), for the accounts that hold any of them. One column per path rather than a row
/// per value: at 1M accounts with three mapped paths, rows of (uid, path, value) held the
/// 69-byte enterprise path 2.9M times (0.2 GB by its length alone).
fn app_attrs(store_path: &Path, targets: &BTreeMap<String, BTreeSet<String>>) -> Result<RecordBatch, EngineError> {
    let conn = super::scan::open(store_path).map_err(scan_error)?;
    let paths: Vec<&str> = targets
        .values()
        .flatten()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut table = NamedValues::new(&paths);
    for (source, wanted) in targets {
        read_attributes(&conn, source, &mut |uid, text| {
            if table.read(text, |path| wanted.contains(path)) {
                table.push(uid);
            }
        })?;
    }
    Ok(table.finish())
}

/// A table of `uid` and one text column per name, built row by row from `attributes` texts.
struct NamedValues<'a> {
    names: &'a [&'a str],
    uids: Vec<i64>,
    columns: Vec<StringBuilder>,
    /// The row being read: each name's value, if the text has it (buffers reused).
    values: Vec<String>,
    present: Vec<bool>,
}

impl<'a> NamedValues<'a> {
    fn new(names: &'a [&'a str]) -> Self {
        Self {
            names,
            uids: Vec::new(),
            columns: names.iter().map(|_| StringBuilder::new()).collect(),
            values: vec![String::new(); names.len()],
            present: vec![false; names.len()],
        }
    }

    /// Read the values of `text` whose name is one of the table's and `wanted`; whether any was.
    fn read(&mut self, text: &str, wanted: impl Fn(&str) -> bool) -> bool {
        self.present.fill(false);
        let mut any = false;
        crate::attributes::for_each(text, |k, v| {
            if let Some(i) = self.names.iter().position(|n| *n == k).filter(|_| wanted(k)) {
                self.values[i].clear();
                self.values[i].push_str(v);
                self.present[i] = true;
                any = true;
            }
        });
        any
    }

    /// Add the row last read, as `uid`'s.
    fn push(&mut self, uid: i64) {
        self.uids.push(uid);
        for ((column, value), present) in self.columns.iter_mut().zip(&self.values).zip(&self.present) {
            column.append_option(present.then_some(value.as_str()));
        }
    }

    fn finish(mut self) -> RecordBatch {
        let mut fields = vec![Field::new("uid", DataType::Int64, false)];
        fields.extend(self.names.iter().map(|n| Field::new(*n, DataType::Utf8, true)));
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(self.uids))];
        arrays.extend(self.columns.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns match")
    }
}

/// The IdP users of `app` with each mapping's value (`m0`, `m1`, …), keyed by `m_uid`/`m_id`.
fn values_sql(app: &AppInput<'_>, idp_attr_names: &[String]) -> String {
    let mut inner: Vec<String> = crate::attributes::IDP_COLUMNS.iter().map(|c| format!("u.{}", ident(c))).collect();
    inner.extend(idp_attr_names.iter().map(|n| format!("x.{}", ident(n))));
    let values: Vec<String> = app
        .mappings
        .iter()
        .enumerate()
        .map(|(k, m)| format!("CAST(({}) AS VARCHAR) AS m{k}", m.expression))
        .collect();
    format!(
        "SELECT m_uid, m_id, {values} FROM (SELECT u.uid AS m_uid, u.id AS m_id, {inner} FROM users u LEFT JOIN idp_attrs x ON x.uid = u.uid WHERE u.source = {source})",
        values = values.join(", "),
        inner = inner.join(", "),
        source = lit(&app.idp_source),
    )
}

/// The value the app should hold for mapping `k` of the row `m` (case rules applied), and
/// for a manager, whether it is resolved (an id), to be created (a reference) or out of scope.
fn desired(app: &AppInput<'_>, k: usize, m: &Mapping) -> String {
    let v = format!("m.m{k}");
    match m.kind {
        TargetKind::Manager => format!(
            "CASE WHEN ml{k}.sp_user_id IS NOT NULL THEN ml{k}.sp_user_id \
             WHEN ms{k}.uid IS NOT NULL THEN '{{\"{r}\":\"' || replace(replace({v}, '\\', '\\\\'), '\"', '\\\"') || '\"}}' END",
            r = crate::attributes::IDP_USER_REF
        ),
        _ if app.profile.lowercases(&m.target) => format!("lower({v})"),
        _ => v,
    }
}

/// The joins that resolve mapping `k`'s manager: its IdP user, that user's link, its scope.
fn manager_joins(app: &AppInput<'_>, k: usize, on: &str) -> String {
    format!(
        " LEFT JOIN users mu{k} ON mu{k}.source = {src} AND mu{k}.id = {on}.m{k} \
         LEFT JOIN links ml{k} ON ml{k}.app = {app} AND ml{k}.idp_uid = mu{k}.uid AND ml{k}.status IN ('kept', 'new', 'pending') \
         LEFT JOIN scope ms{k} ON ms{k}.app = {app} AND ms{k}.uid = mu{k}.uid",
        src = lit(&app.idp_source),
        app = lit(&app.config.name),
    )
}

/// One mapping's drift over `mapped_pairs` (the app's linked pairs with their values): the
/// pairs whose value differs are found on keys alone, then given their names and ids.
fn drift_sql(app: &AppInput<'_>, k: usize, m: &Mapping) -> String {
    let (old, join) = match m.kind {
        TargetKind::Column(col) => (format!("a.{}", ident(col)), "JOIN users a ON a.uid = m.sp_uid".to_string()),
        TargetKind::Path | TargetKind::Manager => (
            format!("a.{}", ident(&m.target)),
            "LEFT JOIN app_attrs a ON a.uid = m.sp_uid".to_string(),
        ),
    };
    let mut joins = join;
    let mut detail = lit(&format!("mapping: {}", m.expression));
    if m.kind == TargetKind::Manager {
        joins.push_str(&manager_joins(app, k, "m"));
        detail = format!(
            "CASE WHEN ml{k}.sp_user_id IS NULL AND ms{k}.uid IS NULL THEN 'manager ' || m.m{k} || ' is not in this app''s scope: the attribute is left empty; ' || {detail} ELSE {detail} END"
        );
    }
    let new = desired(app, k, m);
    let keep = if m.kind == TargetKind::Manager {
        "(new_value IS NULL AND old_value IS NOT NULL) OR (new_value IS NOT NULL AND (old_value IS NULL OR old_value <> new_value))"
    } else {
        "new_value IS NOT NULL AND (old_value IS NULL OR old_value <> new_value)"
    };
    format!(
        "SELECT {app} AS app, 'user.drift' AS kind, i.user_name AS subject, i.id AS idp_id, s.id AS sp_id, d.attribute, d.old_value, d.new_value, d.detail FROM (\
         SELECT m.idp_uid, m.sp_uid, {target} AS attribute, {old} AS old_value, {new} AS new_value, {detail} AS detail \
         FROM mapped_pairs m {joins} WHERE m.m{k} IS NOT NULL) d \
         JOIN users i ON i.uid = d.idp_uid JOIN users s ON s.uid = d.sp_uid WHERE {keep}",
        app = lit(&app.config.name),
        target = lit(&m.target),
    )
}

/// The linked in-scope pairs of `app` (`linked_pairs.sql`'s: a link kept or made by this plan
/// whose IdP user is in the app's scope) as keys, with each mapping's value (`m0`, `m1`, …).
/// Keys only: the names and ids of the few pairs that drift are joined after (holding every
/// pair's with `pairs`' attributes took 0.3 GiB at 1M users).
fn mapped_pairs_sql(app: &AppInput<'_>, idp_attr_names: &[String]) -> String {
    let values: Vec<String> = (0..app.mappings.len()).map(|k| format!("v.m{k}")).collect();
    format!(
        "SELECT l.idp_uid, l.sp_uid, {values} FROM links l \
         JOIN scope sc ON sc.app = l.app AND sc.uid = l.idp_uid \
         JOIN ({all}) v ON v.m_uid = l.idp_uid \
         WHERE l.status IN ('kept', 'new') AND l.app = {app}",
        values = values.join(", "),
        all = values_sql(app, idp_attr_names),
        app = lit(&app.config.name),
    )
}

/// The attributes `idp_attrs` has (none registered: none).
fn idp_attr_names(ctx: &SessionContext) -> Vec<String> {
    futures::executor::block_on(ctx.table_provider("idp_attrs"))
        .map(|t| t.schema().fields().iter().skip(1).map(|f| f.name().clone()).collect())
        .unwrap_or_default()
}

/// `user.drift` of every mapped attribute of every app with mappings, in their order.
pub(super) async fn drift(ctx: &SessionContext, apps: &[AppInput<'_>]) -> Result<Vec<Finding>, EngineError> {
    let names = idp_attr_names(ctx);
    let mut out = Vec::new();
    for app in with_mappings(apps) {
        let query = format!("drift/mapped/{}", app.config.name);
        let pairs = collect(ctx, &query, &mapped_pairs_sql(app, &names)).await?;
        register(ctx, "mapped_pairs", pairs)?;
        for (k, m) in app.mappings.iter().enumerate() {
            if app.profile.users.create_only.iter().any(|a| a == &m.target) {
                continue; // sent when the account is created, never changed afterwards
            }
            for b in collect(ctx, &query, &drift_sql(app, k, m)).await? {
                out.extend(findings_of(&query, &b)?);
            }
        }
        deregister(ctx, "mapped_pairs")?;
    }
    // In their order: the engine merges each query's sorted findings.
    out.sort_unstable();
    Ok(out)
}

/// The mapped values of the accounts `user.missing` creates. A manager whose own account this
/// plan creates too is left out (the next plan sets it, once both exist).
pub(super) async fn create_values(ctx: &SessionContext, apps: &[AppInput<'_>], findings: &[Finding]) -> Result<CreateValues, EngineError> {
    let mut out = CreateValues::new();
    let names = idp_attr_names(ctx);
    for app in with_mappings(apps) {
        let ids: Vec<&str> = findings
            .iter()
            .filter(|f| f.kind == crate::vocab::FindingKind::UserMissing && f.app == app.config.name)
            .filter_map(|f| f.idp_id.as_deref())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let batch = RecordBatch::try_from_iter([("user_id", Arc::new(StringArray::from(ids)) as ArrayRef)]).expect("one column");
        register(ctx, "creating_users", vec![batch])?;
        let mut selects = Vec::new();
        let mut joins = String::new();
        for (k, m) in app.mappings.iter().enumerate() {
            let v = desired(app, k, m);
            if m.kind == TargetKind::Manager {
                joins.push_str(&manager_joins(app, k, "m"));
                selects.push(format!("CASE WHEN ml{k}.sp_user_id IS NOT NULL THEN {v} END AS v{k}"));
            } else {
                selects.push(format!("{v} AS v{k}"));
            }
        }
        let sql = format!(
            "SELECT m.m_id AS idp_id, {selects} FROM ({values}) m JOIN creating_users c ON c.user_id = m.m_id{joins}",
            selects = selects.join(", "),
            values = values_sql(app, &names),
        );
        let query = format!("planner/mapped/{}", app.config.name);
        let per_user = out.entry(app.config.name.clone()).or_default();
        for b in collect(ctx, &query, &sql).await? {
            let ids = strings(&b, "idp_id");
            let values: Vec<Vec<Option<String>>> = (0..app.mappings.len()).map(|k| strings(&b, &format!("v{k}"))).collect();
            for (row, id) in ids.into_iter().enumerate() {
                let Some(id) = id else { continue };
                let set: Vec<(String, String)> = app
                    .mappings
                    .iter()
                    .zip(&values)
                    .filter_map(|(m, vals)| vals[row].clone().map(|v| (m.target.clone(), v)))
                    .collect();
                if !set.is_empty() {
                    per_user.insert(id, set);
                }
            }
        }
        deregister(ctx, "creating_users")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    /// A store whose users are `(uid, source, attributes)`.
    fn store_with(users: &[(i64, &str, Option<&str>)]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(crate::store::Store::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (uid, source, attributes) in users {
            conn.execute(
                "INSERT INTO users (uid, source, id, active, raw, hash, valid_from, run_id, attributes) \
                 VALUES (?1, ?2, ?1, 1, '{}', 0, '2026-01-01', 1, ?3)",
                rusqlite::params![uid, source, attributes],
            )
            .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn app_attrs_has_a_row_per_account_holding_a_mapped_path_and_a_column_per_path() {
        let (_dir, path) = store_with(&[
            (1, "app.a", Some(r#"{"urn:x:dept":"Sales","urn:x:cc":"CC1","nickName":"al"}"#)),
            (2, "app.a", Some(r#"{"urn:x:cc":"CC2"}"#)),
            (3, "app.a", Some(r#"{"nickName":"cy"}"#)), // holds no path app.a maps
            (4, "app.a", None),
            (5, "app.b", Some(r#"{"urn:x:dept":"Ops","nickName":"ed"}"#)), // app.b maps nickName only
            (6, "idp.i", Some(r#"{"urn:x:dept":"Sales"}"#)),               // not an app source
        ]);
        let targets = BTreeMap::from([
            (
                "app.a".to_string(),
                BTreeSet::from(["urn:x:dept".to_string(), "urn:x:cc".to_string()]),
            ),
            ("app.b".to_string(), BTreeSet::from(["nickName".to_string()])),
        ]);
        let batch = app_attrs(&path, &targets).unwrap();
        let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["uid", "nickName", "urn:x:cc", "urn:x:dept"]);
        let column =
            |i: usize| -> Vec<Option<String>> { batch.column(i).as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect() };
        let uids: Vec<i64> = batch.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        assert_eq!(uids, [1, 2, 5]);
        let s = |v: &str| Some(v.to_string());
        assert_eq!(column(1), [None, None, s("ed")]);
        assert_eq!(column(2), [s("CC1"), s("CC2"), None]);
        assert_eq!(column(3), [s("Sales"), None, None]);
    }

    #[test]
    fn idp_attrs_has_a_row_per_user_with_attributes_and_a_column_per_name_read() {
        let (_dir, path) = store_with(&[
            (1, "idp.i", Some(r#"{"department":"Sales","manager_id":"u0","other":"x"}"#)),
            (2, "idp.i", Some(r#"{"other":"y"}"#)),
            (3, "idp.i", None),
            (4, "app.a", Some(r#"{"department":"Ops"}"#)),
        ]);
        let batch = idp_attrs(&path, &BTreeSet::from(["idp.i".to_string()]), &["department", "manager_id"]).unwrap();
        let uids: Vec<i64> = batch.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        assert_eq!(uids, [1, 2]);
        let column = |i: usize| -> Vec<Option<&str>> { batch.column(i).as_string::<i32>().iter().collect() };
        assert_eq!(column(1), [Some("Sales"), None]);
        assert_eq!(column(2), [Some("u0"), None]);
    }
}
