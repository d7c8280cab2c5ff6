//! `scimsync gen`: a synthetic IdP and one app with controlled drift, written straight into a
//! store through the same snapshot path as a pull, plus a config so `plan` runs on it. Every
//! finding kind appears at about `drift` × the relevant population. Deterministic per `seed`.
use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{Binding, Group, Memberships, Snapshot, User};
use crate::rng::SplitMix;
use crate::store::{SnapshotCounts, SourceInfo, Store};

/// The IdP base URL the written config carries until `gen --serve` replaces it.
pub const PLACEHOLDER_IDP: &str = "http://127.0.0.1:9/idp";
/// The app base URL the written config carries until `gen --serve` replaces it.
pub const PLACEHOLDER_APP: &str = "http://127.0.0.1:9/app";
/// The config's note about its URLs, until `gen --serve` replaces it.
pub const PLACEHOLDER_NOTE: &str = "the URLs are placeholders; `scimsync gen --serve` serves both sides";

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// IdP users.
    pub users: usize,
    /// IdP groups (the app is bound to 49 in 50).
    pub groups: usize,
    /// IdP memberships.
    pub memberships: usize,
    /// Fraction of objects given each kind of drift (0.0–0.5).
    pub drift: f64,
    /// The generator's seed.
    pub seed: u64,
    /// Give users department, cost center and manager attributes, and the app three mappings
    /// of them to the enterprise extension (each drifted like the rest).
    pub mapped: bool,
}

const ENTERPRISE: &str = crate::attributes::ENTERPRISE_USER;

/// The IdP's attributes of user `i` (`--mapped`): ten users per manager, the first of each ten.
fn idp_attributes(i: usize) -> Option<String> {
    let mut a = crate::attributes::Attributes::default();
    a.put("department", Some(&format!("Dept {}", i % 50)));
    a.put("cost_center", Some(&format!("CC{}", i % 200)));
    a.put("manager_id", (!i.is_multiple_of(10)).then(|| format!("u{}", i - i % 10)).as_deref());
    a.into_json()
}

/// The app account's attributes of user `i` (`--mapped`): the IdP's under enterprise paths,
/// the department changed by hand when `drifted`, the manager by the app's id.
fn app_attributes(i: usize, drifted: bool, manager_account: Option<&str>) -> Option<String> {
    let mut a = crate::attributes::Attributes::default();
    let department = if drifted {
        "Changed By Hand".to_string()
    } else {
        format!("Dept {}", i % 50)
    };
    a.put(format!("{ENTERPRISE}:department"), Some(&department));
    a.put(format!("{ENTERPRISE}:costCenter"), Some(&format!("CC{}", i % 200)));
    a.put(format!("{ENTERPRISE}:manager"), manager_account);
    a.into_json()
}

/// A generated IdP and app.
pub struct Generated {
    /// The IdP's snapshot.
    pub idp: Snapshot,
    /// The app's snapshot (with the drift).
    pub app: Snapshot,
    /// Names of the IdP groups bound to the app (every group but one in 50).
    pub bound: Vec<String>,
}

fn user(id: String, i: usize, active: bool, title: &str) -> User {
    let email = format!("user{i}@example.com");
    User {
        raw: format!(r#"{{"id":"{id}","userName":"{email}","externalId":"E{i}","active":{active},"title":"{title}"}}"#),
        id,
        user_name: Some(email.clone()),
        external_id: Some(format!("E{i}")),
        given_name: Some(format!("Given{}", i % 997)),
        family_name: Some(format!("Family{}", i % 1009)),
        formatted: None,
        display_name: Some(format!("User {i}")),
        email: Some(email),
        active,
        title: Some(title.to_string()),
        phone: None,
        timezone: Some("Europe/Paris".into()),
        role: None,
        status_raw: None,
        attributes: None,
    }
}

/// Generate the IdP and the app for `spec`.
pub fn generate(spec: &GenSpec) -> Generated {
    generate_sides(spec, true, true)
}

/// [`generate`], keeping the IdP's and the app's objects only as asked: the same directory
/// either way (every random draw is made), so each side can be generated and written while
/// the other is not held.
fn generate_sides(spec: &GenSpec, keep_idp: bool, keep_app: bool) -> Generated {
    let mut rng = SplitMix::new(spec.seed);
    let per_mille = (spec.drift.clamp(0.0, 0.5) * 1000.0) as u64;
    let hit = |rng: &mut SplitMix| rng.below(1000) < per_mille;
    let mut idp = Snapshot::default();
    let mut app = Snapshot::default();
    let groups = spec.groups.max(1);

    // Users: ~3% inactive in the IdP; the app has every user except the missing ones. User
    // `i`'s account is `a{i}`: whether it has one is all that is kept of it here (as ids, 1M
    // of them held 56 MB more while the side was generated).
    let mut has_account: Vec<bool> = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let active = rng.below(100) >= 3;
        let mut idp_user = user(format!("u{i}"), i, active, "Engineer");
        if spec.mapped {
            idp_user.attributes = idp_attributes(i);
        }
        if keep_idp {
            idp.users.push(idp_user.into());
        }
        let missing = active && hit(&mut rng);
        let deprovisioned = !active && rng.below(2) == 0;
        if missing || deprovisioned {
            has_account.push(false);
            continue;
        }
        let title = if hit(&mut rng) { "Changed By Hand" } else { "Engineer" };
        let app_active = !(active && hit(&mut rng));
        let mut account = user(format!("a{i}"), i, app_active, title);
        if spec.mapped {
            // The manager's account, when the manager (generated earlier) has one.
            let manager = i - i % 10;
            let manager = (!i.is_multiple_of(10) && has_account[manager]).then(|| format!("a{manager}"));
            account.attributes = app_attributes(i, hit(&mut rng), manager.as_deref());
        }
        if keep_app {
            app.users.push(account.into());
        }
        has_account.push(true);
    }
    let unmanaged = (spec.users as f64 * spec.drift) as usize;
    for k in (0..unmanaged).filter(|_| keep_app) {
        app.users.push(user(format!("x{k}"), spec.users + k, true, "Contractor").into());
    }

    // Groups: the app has each bound group, except a few missing and a few renamed. Group
    // `g`'s is `ag{g}`.
    let mut has_app_group: Vec<bool> = Vec::with_capacity(groups);
    let mut bound = Vec::new();
    for g in 0..groups {
        let name = format!("Group {g:06}");
        if keep_idp {
            idp.groups.push(Group {
                id: format!("g{g}"),
                display_name: name.clone(),
                external_id: None,
                raw: format!(r#"{{"id":"g{g}","displayName":"{name}"}}"#),
            });
        }
        if g % 50 != 49 {
            bound.push(name.clone());
        }
        if hit(&mut rng) {
            has_app_group.push(false);
            continue;
        }
        let app_name = if hit(&mut rng) { format!("{name} (old)") } else { name };
        let id = format!("ag{g}");
        if keep_app {
            app.groups.push(Group {
                id: id.clone(),
                raw: format!(r#"{{"id":"{id}","displayName":"{app_name}"}}"#),
                display_name: app_name,
                external_id: None,
            });
        }
        has_app_group.push(true);
    }

    // Memberships: each user in memberships/users groups on average; the app mirrors them,
    // with a few removed and a few extra. Drawn as (group, user) numbers, then listed group by
    // group as a connector lists them: drawn in random order, each was a run of its own group
    // (the group's id and 8 bytes more, 1M-user sides held 60 MB more).
    let mut idp_pairs: Vec<(u32, u32)> = Vec::with_capacity(if keep_idp { spec.memberships } else { 0 });
    let mut app_pairs: Vec<(u32, u32)> = Vec::with_capacity(if keep_app { spec.memberships } else { 0 });
    let number = |n: usize| u32::try_from(n).expect("gen makes fewer than 2^32 users and groups");
    for _ in 0..spec.memberships {
        let u = rng.below(spec.users.max(1) as u64) as usize;
        let g = rng.below(groups as u64) as usize;
        if keep_idp {
            idp_pairs.push((number(g), number(u)));
        }
        if has_app_group[g] && has_account[u] {
            if !hit(&mut rng) && keep_app {
                app_pairs.push((number(g), number(u)));
            }
            if hit(&mut rng) {
                let other = rng.below(spec.users as u64) as usize;
                if has_account[other] && keep_app {
                    app_pairs.push((number(g), number(other)));
                }
            }
        }
    }
    idp.memberships = listed_by_group(idp_pairs, "g", "u");
    app.memberships = listed_by_group(app_pairs, "ag", "a");
    Generated { idp, app, bound }
}

/// `pairs` (group, user) as memberships listed group by group, ids `{group_prefix}{group}` and
/// `{user_prefix}{user}` (in the order drawn within a group).
fn listed_by_group(mut pairs: Vec<(u32, u32)>, group_prefix: &str, user_prefix: &str) -> Memberships {
    pairs.sort_by_key(|&(g, _)| g);
    // Room for user numbers of up to seven digits (10M users).
    let mut out = Memberships::with_capacity(pairs.len(), pairs.len() * (user_prefix.len() + 7));
    let (mut group, mut user) = (String::new(), String::new());
    for (g, u) in pairs {
        group.clear();
        user.clear();
        let _ = write!(group, "{group_prefix}{g}");
        let _ = write!(user, "{user_prefix}{u}");
        out.push(&group, &user);
    }
    out
}

/// Write a generated directory into a fresh store at `dir/scimsync.db` with `dir/scimsync.toml`.
/// Per source: its name, what was written, and the seconds it took.
pub type WriteTimings = Vec<(String, SnapshotCounts, f64)>;

/// Generate, and write both snapshots into a new store under `dir` with its config: the IdP
/// generated and written, then the app, so that one side is held at a time (at 1M users both
/// sides held at once took the process to 1.44–2.5 GiB).
pub fn write(spec: &GenSpec, dir: &Path) -> anyhow::Result<(PathBuf, WriteTimings)> {
    let (store_path, mut store) = fresh_store(dir)?;
    let mut timings = Vec::new();
    for side in [Side::Idp, Side::App] {
        let mut g = generate_sides(spec, side == Side::Idp, side == Side::App);
        tracing::debug!(side = ?side, memory = %crate::memory::resident(), "generated");
        if side == Side::Idp {
            bind(&mut g);
            write_config(spec, dir, &g.bound)?;
        }
        // The side's memberships go to the write, which lets them go once resolved.
        let memberships = std::mem::take(&mut g.side_mut(side).memberships);
        timings.push(write_side(&mut store, &store_path, side, g.side(side), Cow::Owned(memberships))?);
        drop(g);
        // What the side held goes back before the next is generated.
        crate::memory::release_freed();
    }
    Ok((store_path, timings))
}

/// [`write`], both sides generated at once and returned (for [`serve`], which serves them).
pub fn write_generated(spec: &GenSpec, dir: &Path) -> anyhow::Result<(PathBuf, WriteTimings, Generated)> {
    let (store_path, mut store) = fresh_store(dir)?;
    let mut g = generate(spec);
    bind(&mut g);
    write_config(spec, dir, &g.bound)?;
    let mut timings = Vec::new();
    for side in [Side::Idp, Side::App] {
        let snap = g.side(side);
        timings.push(write_side(&mut store, &store_path, side, snap, Cow::Borrowed(&snap.memberships))?);
    }
    Ok((store_path, timings, g))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Idp,
    App,
}

impl Generated {
    fn side(&self, side: Side) -> &Snapshot {
        match side {
            Side::Idp => &self.idp,
            Side::App => &self.app,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Snapshot {
        match side {
            Side::Idp => &mut self.idp,
            Side::App => &mut self.app,
        }
    }
}

/// A new, empty store at `dir/scimsync.db` (what was there is removed, columnar copies too).
fn fresh_store(dir: &Path) -> anyhow::Result<(PathBuf, Store)> {
    std::fs::create_dir_all(dir)?;
    let store_path = dir.join("scimsync.db");
    for f in ["scimsync.db", "scimsync.db-wal", "scimsync.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir_all(crate::engine::columnar::dir_for(&store_path));
    let store = Store::open(&store_path)?;
    // As in a pull: the writes fill SQLite's page cache while a snapshot is held (a 1M-user
    // `gen` peaked at 1,050 MiB with the 256 MiB a store opens with).
    store.set_cache_mib(64)?;
    Ok((store_path, store))
}

/// The IdP's bindings of the app to the bound groups.
fn bind(g: &mut Generated) {
    g.idp.bindings = g
        .bound
        .iter()
        .map(|n| Binding {
            app: "bench".into(),
            group_name: n.clone(),
            idp_group_id: Some(format!("g{}", n.trim_start_matches("Group ").parse::<usize>().unwrap_or(0))),
        })
        .collect();
}

fn write_config(spec: &GenSpec, dir: &Path, bound: &[String]) -> anyhow::Result<()> {
    let mut config = format!(
        "# Written by `scimsync gen`: a synthetic directory for benchmarks ({PLACEHOLDER_NOTE}).\nstore = \"scimsync.db\"\n\n[idp.corp]\nkind = \"scim\"\nbase_url = \"{PLACEHOLDER_IDP}\"\n\n[app.bench]\nidp = \"corp\"\nbase_url = \"{PLACEHOLDER_APP}\"\ngroups = [\n"
    );
    for n in bound {
        let _ = writeln!(config, "  \"{n}\",");
    }
    config.push_str("]\n");
    if spec.mapped {
        let _ = write!(
            config,
            "\n[app.bench.mappings]\n\"{ENTERPRISE}:department\" = \"department\"\n\"{ENTERPRISE}:costCenter\" = \"cost_center\"\n\"{ENTERPRISE}:manager\" = \"manager_id\"\n"
        );
    }
    std::fs::write(dir.join("scimsync.toml"), config)?;
    Ok(())
}

/// Write one side's snapshot as a pull of it would, with its columnar copy beside the commit.
/// `memberships` are `snap`'s (owned, the write lets them go once resolved).
fn write_side(
    store: &mut Store,
    store_path: &Path,
    side: Side,
    snap: &Snapshot,
    memberships: Cow<'_, Memberships>,
) -> anyhow::Result<(String, SnapshotCounts, f64)> {
    let info = match side {
        Side::Idp => SourceInfo {
            name: "idp.corp".into(),
            role: "idp",
            kind: "scim".into(),
            profile: None,
            base_url: None,
        },
        Side::App => SourceInfo {
            name: "app.bench".into(),
            role: "app",
            kind: "scim".into(),
            profile: Some("generic".into()),
            base_url: None,
        },
    };
    let t = std::time::Instant::now();
    let run = store.start_run("pull", Some(&info.name))?;
    let mut copied = Ok(());
    let (counts, _) = store.write_snapshot_keyed(&info, run, snap, memberships, |keys| {
        copied = crate::engine::columnar::write(store_path, &info.name, info.role, run, snap, keys)
    })?;
    copied.map_err(|e| anyhow::anyhow!("columnar copy: {e}"))?;
    Ok((info.name.clone(), counts, t.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_drifts() {
        let spec = GenSpec {
            users: 2000,
            groups: 100,
            memberships: 8000,
            drift: 0.05,
            seed: 3,
            mapped: false,
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.app.users.len(), b.app.users.len());
        assert_eq!(a.idp.memberships, b.idp.memberships);
        assert_eq!(a.idp.users.len(), 2000);
        assert!(a.app.users.len() < 2000 + 100 && a.app.users.len() > 1800);
        assert!(a
            .app
            .users
            .iter()
            .any(|u| u.get(crate::model::UserField::Title) == Some("Changed By Hand")));
        assert!(a.app.groups.iter().any(|g| g.display_name.ends_with("(old)")));
    }

    /// Each side's memberships come group by group, one run per group, as a connector lists
    /// them: drawn in random order, nearly every membership was a run of its own, and a run
    /// costs its group's id (60 MB more on a 1M-user side).
    #[test]
    fn memberships_are_listed_group_by_group() {
        let spec = GenSpec {
            users: 2000,
            groups: 100,
            memberships: 8000,
            drift: 0.05,
            seed: 5,
            mapped: false,
        };
        let g = generate(&spec);
        for (side, snap) in [("idp", &g.idp), ("app", &g.app)] {
            let members: Vec<_> = snap.memberships.iter().collect();
            let runs = 1 + members.windows(2).filter(|w| w[0].group_id != w[1].group_id).count();
            assert!(members.len() > 7000, "{side}: {} memberships", members.len());
            assert!(runs <= snap.groups.len(), "{side}: {runs} runs of {} groups", snap.groups.len());
        }
    }

    /// Each side generated alone (as `gen` writes them, one after the other) is that side of
    /// the directory generated whole.
    #[test]
    fn each_side_alone_is_that_side_of_the_whole() {
        let spec = GenSpec {
            users: 3000,
            groups: 120,
            memberships: 12000,
            drift: 0.05,
            seed: 11,
            mapped: true,
        };
        let whole = generate(&spec);
        let idp = generate_sides(&spec, true, false);
        let app = generate_sides(&spec, false, true);
        assert!(idp.app.users.is_empty() && app.idp.users.is_empty() && app.idp.memberships.is_empty());
        assert!(idp.idp.users == whole.idp.users && idp.idp.groups == whole.idp.groups);
        assert_eq!(idp.idp.memberships, whole.idp.memberships);
        assert!(app.app.users == whole.app.users && app.app.groups == whole.app.groups);
        assert_eq!(app.app.memberships, whole.app.memberships);
        assert_eq!(idp.bound, whole.bound);
        assert!(whole.app.users.len() > 2800 && whole.app.memberships.len() > 10000);
    }
}
