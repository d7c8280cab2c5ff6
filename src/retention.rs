//! `scimsync prune` and the prune after each reconcile cycle: the store's retention
//! ([`crate::store::retention`]) and the columnar copies no plan will read again.
use std::path::Path;

use crate::config::Retention;
use crate::store::{PruneOptions, PruneReport, Store, StoreError};

/// What one prune did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pruned {
    /// The store's part.
    pub store: PruneReport,
    /// Columnar copy files removed, and their bytes.
    pub copies_removed: (usize, u64),
}

/// Prune the store at `path` (opened as `store`, its lock held by the caller).
pub fn prune(store: &mut Store, policy: &Retention, opts: &PruneOptions) -> Result<Pruned, StoreError> {
    let report = store.prune(policy, opts)?;
    let copies_removed = if opts.dry_run {
        (0, 0)
    } else {
        crate::engine::columnar::remove_stale(store.path(), &store.last_pulls()?)
    };
    Ok(Pruned {
        store: report,
        copies_removed,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The prune in lines of text (`prune`'s output, reconcile's log).
pub fn describe(p: &Pruned, path: &Path) -> Vec<String> {
    let r = &p.store;
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut lines = Vec::new();
    if r.rows() == 0 {
        lines.push(format!("prune {}: nothing to remove", path.display()));
    } else {
        let tables: Vec<String> = r.removed.iter().filter(|(_, n)| *n > 0).map(|(t, n)| format!("{t} {n}")).collect();
        lines.push(format!(
            "prune {}: {verb} {} row(s): {}",
            path.display(),
            r.rows(),
            tables.join(", ")
        ));
    }
    if r.dry_run {
        lines.push(format!(
            "would free {} inside the store (nothing was removed: --dry-run)",
            mib(r.freed_bytes)
        ));
    } else {
        lines.push(format!(
            "freed {} inside the store; {} handed back to the file system; {} free left for later writes",
            mib(r.freed_bytes),
            mib(r.returned_bytes),
            mib(r.free_bytes)
        ));
    }
    if p.copies_removed.0 > 0 {
        lines.push(format!(
            "removed {} stale columnar file(s), {}",
            p.copies_removed.0,
            mib(p.copies_removed.1)
        ));
    }
    for (id, why) in &r.plans_needed {
        lines.push(format!("kept plan #{id} past its retention: {why}"));
    }
    match &r.history_horizon {
        Some(h) => lines.push(format!("history horizon: {h} (`--at` and `diff` answer from then on)")),
        None => lines.push("history horizon: none (all history kept)".into()),
    }
    if !r.complete {
        lines.push("the time budget ran out: the next prune removes the rest".into());
    }
    if r.needs_rewrite {
        lines.push(
            "this store was made before incremental vacuum: freed space is reused by later runs but not handed back; `scimsync prune --vacuum` rewrites it once (needs free disk the size of the store)"
                .into(),
        );
    }
    lines
}
