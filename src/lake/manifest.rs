//! A store's manifest in the lake (`_scimsync/STORE_ID.json`): what its last export wrote, so the
//! next one writes only what changed. Replaced whole (written beside, then renamed over) after
//! the partitions it describes are in place, so a crash leaves the previous one.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LakeError;

/// One store's manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The lake format ([`super::tables::FORMAT`]).
    pub format: u32,
    /// The store the manifest is of.
    pub store_id: String,
    /// Exports that wrote something.
    pub exports: u64,
    /// When the last export that wrote something read the store (RFC 3339, UTC).
    pub exported_at: Option<String>,
    /// The newest run and event the store had then: an export with neither newer reads nothing.
    pub last_run: i64,
    /// See `last_run`.
    pub last_event: i64,
    /// The earliest instant whose state the lake holds whole (the store's history horizon when
    /// the lake first missed versions the store's retention had removed), None: from the start.
    pub horizon: Option<String>,
    /// Table → its partitions.
    pub tables: BTreeMap<String, TableState>,
    /// The store's views over these tables (name → SQL), as its schema defines them: readers of
    /// the lake plan them as the store does.
    pub views: BTreeMap<String, String>,
}

/// What the lake holds of one table of the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableState {
    /// Partition (the day, or `all` for a table with no days) → what its file holds.
    pub partitions: BTreeMap<String, Partition>,
}

/// One partition file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Partition {
    /// Its path under the lake directory.
    pub file: String,
    /// Its rows.
    pub rows: u64,
    /// A digest of its rows, in any order (see `super::digest`).
    pub digest: String,
}

/// The manifests of every store in `lake`, by store id.
pub fn load_all(lake: &Path) -> Result<Vec<Manifest>, LakeError> {
    let dir = dir(lake);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LakeError::Io { path: dir, source }),
    };
    let mut ids = Vec::new();
    for e in entries {
        let e = e.map_err(|source| LakeError::Io { path: dir.clone(), source })?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".json").filter(|id| crate::config::valid_store_id(id)) {
            ids.push(id.to_string());
        }
    }
    ids.sort();
    ids.iter().map(|id| load(lake, id)).collect()
}

/// Where the manifests live.
pub fn dir(lake: &Path) -> PathBuf {
    lake.join("_scimsync")
}

fn path(lake: &Path, store_id: &str) -> PathBuf {
    dir(lake).join(format!("{store_id}.json"))
}

/// The manifest of `store_id` in `lake`, or an empty one when it has none yet.
pub fn load(lake: &Path, store_id: &str) -> Result<Manifest, LakeError> {
    let path = path(lake, store_id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Manifest {
                format: super::tables::FORMAT,
                store_id: store_id.to_string(),
                ..Manifest::default()
            })
        }
        Err(source) => return Err(LakeError::Io { path, source }),
    };
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| LakeError::Manifest {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if manifest.format != super::tables::FORMAT {
        return Err(LakeError::Manifest {
            path,
            message: format!(
                "the lake is in format {}, this scimsync writes format {}: export into a new directory",
                manifest.format,
                super::tables::FORMAT
            ),
        });
    }
    if manifest.store_id != store_id {
        return Err(LakeError::Manifest {
            path,
            message: format!("it belongs to store '{}', not '{store_id}'", manifest.store_id),
        });
    }
    Ok(manifest)
}

/// Write `manifest` in place of the store's previous one, atomically.
pub fn save(lake: &Path, manifest: &Manifest) -> Result<(), LakeError> {
    let path = path(lake, &manifest.store_id);
    let text = serde_json::to_string_pretty(manifest).expect("a manifest is plain data");
    super::write_atomically(&path, text.as_bytes())
}
