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

/// Read the attributes the mappings need and register `idp_attrs` and `app_attrs` (nothing when
/// no app has mappings).
pub(super) fn load(ctx: &SessionContext, store_path: &Path, apps: &[AppInput<'_>]) -> Result<(), EngineError> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut idp_sources: BTreeSet<&str> = BTreeSet::new();
    let mut targets: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for a in with_mappings(apps) {
        idp_sources.insert(&a.idp_source);
        for m in &a.mappings {
            names.extend(m.reads.iter().map(String::as_str));
            if m.kind != TargetKind::Path && m.kind != TargetKind::Manager {
                continue;
            }
            targets.entry(a.config.source_name()).or_default().insert(&m.target);
        }
    }
    if idp_sources.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = names.into_iter().collect();
    // The IdP side and the app side are read on two threads, each on its own connection: at
    // 1M users a side each is a scan of one source's rows and a parse of their JSON.
    let (idp_batch, app_batch) = std::thread::scope(|s| {
        let idp = s.spawn(|| idp_attrs(store_path, &idp_sources, &names));
        let app = app_attrs(store_path, &targets);
        (idp.join().expect("reading attributes does not panic"), app)
    });
    register(ctx, "idp_attrs", vec![idp_batch?])?;
    register(ctx, "app_attrs", vec![app_batch?])
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
fn idp_attrs(store_path: &Path, sources: &BTreeSet<&str>, names: &[&str]) -> Result<RecordBatch, EngineError> {
    let conn = super::scan::open(store_path).map_err(scan_error)?;
    let mut uids = Vec::new();
    let mut columns: Vec<StringBuilder> = names.iter().map(|_| StringBuilder::new()).collect();
    let mut found: Vec<Option<String>> = vec![None; names.len()];
    for source in sources {
        read_attributes(&conn, source, &mut |uid, text| {
            uids.push(uid);
            found.iter_mut().for_each(|f| *f = None);
            crate::attributes::for_each(text, |k, v| {
                if let Some(i) = names.iter().position(|n| *n == k) {
                    found[i] = Some(v.to_string());
                }
            });
            for (col, value) in columns.iter_mut().zip(found.iter()) {
                col.append_option(value.as_deref());
            }
        })?;
    }
    let mut fields = vec![Field::new("uid", DataType::Int64, false)];
    fields.extend(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)));
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(uids))];
    arrays.extend(columns.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns match"))
}

/// `app_attrs`: (uid, attribute, value) of the mapped paths of the app accounts.
fn app_attrs(store_path: &Path, targets: &BTreeMap<String, BTreeSet<&str>>) -> Result<RecordBatch, EngineError> {
    let conn = super::scan::open(store_path).map_err(scan_error)?;
    let mut uid = Vec::new();
    let (mut attribute, mut value) = (StringBuilder::new(), StringBuilder::new());
    for (source, wanted) in targets {
        read_attributes(&conn, source, &mut |u, text| {
            crate::attributes::for_each(text, |k, v| {
                if wanted.contains(k) {
                    uid.push(u);
                    attribute.append_value(k);
                    value.append_value(v);
                }
            });
        })?;
    }
    Ok(RecordBatch::try_from_iter([
        ("uid", Arc::new(Int64Array::from(uid)) as ArrayRef),
        ("attribute", Arc::new(attribute.finish()) as ArrayRef),
        ("value", Arc::new(value.finish()) as ArrayRef),
    ])
    .expect("columns match"))
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

/// One mapping's drift over `mapped_pairs` (the app's linked pairs with their values).
fn drift_sql(app: &AppInput<'_>, k: usize, m: &Mapping) -> String {
    let (old, join) = match m.kind {
        TargetKind::Column(col) => (format!("s.{}", ident(col)), "JOIN users s ON s.uid = m.sp_uid".to_string()),
        TargetKind::Path | TargetKind::Manager => (
            "a.value".to_string(),
            format!("LEFT JOIN app_attrs a ON a.uid = m.sp_uid AND a.attribute = {}", lit(&m.target)),
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
        "SELECT app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail FROM (\
         SELECT m.app, 'user.drift' AS kind, m.subject, m.idp_id, m.sp_id, {target} AS attribute, {old} AS old_value, {new} AS new_value, {detail} AS detail \
         FROM mapped_pairs m {joins} WHERE m.m{k} IS NOT NULL) d WHERE {keep}",
        target = lit(&m.target),
    )
}

/// The attributes `idp_attrs` has (none registered: none).
fn idp_attr_names(ctx: &SessionContext) -> Vec<String> {
    futures::executor::block_on(ctx.table_provider("idp_attrs"))
        .map(|t| t.schema().fields().iter().skip(1).map(|f| f.name().clone()).collect())
        .unwrap_or_default()
}

/// `user.drift` of every mapped attribute of every app with mappings (reads `pairs`), in their
/// order.
pub(super) async fn drift(ctx: &SessionContext, apps: &[AppInput<'_>]) -> Result<Vec<Finding>, EngineError> {
    let names = idp_attr_names(ctx);
    let mut out = Vec::new();
    for app in with_mappings(apps) {
        let sql = format!(
            "SELECT p.app, p.subject, p.idp_id, p.sp_id, p.sp_uid, v.* FROM pairs p JOIN ({values}) v ON v.m_uid = p.idp_uid WHERE p.app = {app}",
            values = values_sql(app, &names),
            app = lit(&app.config.name)
        );
        let query = format!("drift/mapped/{}", app.config.name);
        let pairs = collect(ctx, &query, &sql).await?;
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
