//! The SQLite store: the only module that writes SQL. One file holds the mirror of every source
//! (current state plus closed versions), the run records and, later, plans and the journal.
mod baseline;
mod events;
mod health;
mod import;
pub mod integrity;
mod links;
mod lock;
mod pulls;
pub mod retention;
pub(crate) mod rows;
mod schema;
mod snapshot;
mod status;

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

pub use events::Event;
pub use health::AppHealth;
pub use import::AppAccount;
pub use lock::{LockError, StoreLock};
pub use pulls::PullState;
pub use retention::{PruneOptions, PruneReport, Vacuum};
pub use schema::VIEWS;

/// `s` as an SQL text literal.
pub fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `name` as an SQL identifier.
pub fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The body of a view as `sqlite_master` keeps it (`CREATE VIEW name AS <body>`), if it is one.
pub fn view_body(create: &str) -> Option<&str> {
    Some(&create[create.find(" AS")? + 3..])
}
pub use snapshot::{GroupRefresh, SnapshotCounts, SnapshotKeys, SourceInfo};
pub use status::SourceStatus;

/// Why the store could not be read or written; names the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (a damaged file is said so plainly, with what to do).
    #[error("store '{}': {}", .path.display(), describe_sqlite(.source))]
    Sqlite {
        /// The store.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A store written by a newer scimsync.
    #[error("store '{path}': schema version {found} is newer than this scimsync understands ({known}); upgrade scimsync (nothing in the store was changed)")]
    TooNew {
        /// The store.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A snapshot that cannot be stored as it is.
    #[error("store '{path}': {source_name}: {object}: {message}")]
    Snapshot {
        /// The store.
        path: PathBuf,
        /// The source of the snapshot.
        source_name: String,
        /// The object.
        object: String,
        /// What is wrong with it.
        message: String,
    },
    /// A path the command cannot use as asked (backup onto an existing file, no store).
    #[error("{0}")]
    Input(String),
}

/// SQLite's error, and for a damaged file (a bad page, not a database at all) what that means
/// and what to do: every command says it the same way, at the first read that finds it.
pub fn describe_sqlite(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt | NotADatabase) => format!(
            "{e}: the store file is damaged (the statement that found it was not applied). `scimsync check` names what is wrong; restore the latest `scimsync backup` (or move the file away and pull again: the IdP and the apps are mirrored anew, but links, plans and history are lost)"
        ),
        _ => e.to_string(),
    }
}

/// A store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The SQLite store: one connection, and the file it is.
pub struct Store {
    /// Crate-visible so that the stages above the store (the plan's journal) can keep their
    /// tables with their own types, without the store depending on them.
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// SQLite's page cache for a connection to a store, in MiB.
pub const CACHE_MIB: u32 = 256;

impl Store {
    /// Open (creating if needed) the store for reading and writing, migrating its schema.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite { path: path.into(), source })?;
        let store = Store { conn, path: path.into() };
        // A store from a newer scimsync is refused before anything touches it (journal mode,
        // migrations, views): an older binary must not rewrite what it does not understand.
        schema::version(&store.conn).map_err(|e| store.err(e))?.check(path)?;
        store.create_with_incremental_vacuum()?;
        store.configure()?;
        schema::migrate(&store.conn).map_err(|e| store.err(e))?.check(path)?;
        Ok(store)
    }

    /// Open an existing store read-only (auditor queries, status). A store written by an older
    /// scimsync is upgraded first (a read-write open) when the file allows it.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let store = Self::open_read_only_as_is(path)?;
        if !schema::version(&store.conn).map_err(|e| store.err(e))?.is_older() {
            return Ok(store);
        }
        drop(store);
        Store::open(path)?;
        Self::open_read_only_as_is(path)
    }

    fn open_read_only_as_is(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|source| StoreError::Sqlite { path: path.into(), source })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| StoreError::Sqlite { path: path.into(), source })?;
        let store = Store { conn, path: path.into() };
        schema::version(&store.conn).map_err(|e| store.err(e))?.check(path)?;
        Ok(store)
    }

    /// A new (empty) file is made with incremental vacuum, so that `prune` can hand space back
    /// without rewriting the store. It can only be chosen before the first table.
    fn create_with_incremental_vacuum(&self) -> Result<()> {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if pages == 0 {
            self.conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn configure(&self) -> Result<()> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")
            .map_err(|e| self.err(e))?;
        self.set_cache_mib(CACHE_MIB)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size SQLite's page cache for this connection ([`CACHE_MIB`] when opened).
    pub fn set_cache_mib(&self, mib: u32) -> Result<()> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{}", u64::from(mib) * 1024))
            .map_err(|e| self.err(e))
    }

    /// Hand back the memory this connection holds (its page cache) and what the process has
    /// freed, before work that other connections do; the cache fills again as it is used.
    pub fn release_memory(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA shrink_memory").map_err(|e| self.err(e))?;
        crate::memory::release_freed();
        Ok(())
    }

    /// Its connection (read-only work of the auditor and tests).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Record the start of a run; returns its id. Committed at once, so a run that fails later
    /// is still on record.
    pub fn start_run(&self, kind: &str, source: Option<&str>) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (kind, source, started_at, status) VALUES (?1, ?2, ?3, 'running')",
                params![kind, source, crate::time::now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The store's own key for the digests that tell a plan's findings and operations from the
    /// previous plan's: 16 random bytes, made at the first plan and kept in `store_meta`. Keyed,
    /// so that nobody who writes to the IdP or an app can craft a plan whose digest matches the
    /// previous plan's without its rows being the same.
    pub fn digest_key(&self) -> Result<u128> {
        let stored = retention::meta(&self.conn, "digest_key").map_err(|e| self.err(e))?;
        if let Some(key) = stored.and_then(|hex| u128::from_str_radix(&hex, 16).ok()) {
            return Ok(key);
        }
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Input(format!("no random bytes for the store's digest key: {e}")))?;
        let key = u128::from_le_bytes(bytes);
        retention::set_meta(&self.conn, "digest_key", &format!("{key:032x}")).map_err(|e| self.err(e))?;
        Ok(key)
    }

    /// Mark a run failed with its (redacted) error.
    pub fn fail_run(&self, run_id: i64, error: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1",
                params![run_id, crate::time::now(), crate::secret::redact(error)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
