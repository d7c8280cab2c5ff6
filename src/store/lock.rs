//! One writer at a time: every command that writes the store or an app (pull, plan, apply,
//! reconcile, import) holds an exclusive lock on `STORE.lock` while it runs. The lock file says
//! who holds it. Two `apply --yes` of one plan would otherwise each send every operation.
//!
//! The lock is an OS file lock (`flock`), so a killed process lets go of it by dying; the runs
//! it left `running` are then marked `abandoned` by the next writer
//! ([`Store::abandon_unfinished_runs`]), which knows from the lock file whose they were.
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rusqlite::params;

use super::{Result, Store};

/// Why the store lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another writer holds it.
    #[error("the store '{store}' is in use by another scimsync ({holder}); wait for it, or run with --wait")]
    Held {
        /// The store.
        store: PathBuf,
        /// What the lock file says of the holder (process, command, since).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("lock file '{path}': {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// An exclusive lock on a store, held while the value lives.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
    /// What the lock file said before this process took it: the last holder, if any.
    pub previous_holder: Option<String>,
}

impl StoreLock {
    /// Take the lock; when another process holds it, fail naming the holder, or (with `wait`)
    /// wait until it lets go.
    pub fn acquire(store: &Path, wait: bool) -> std::result::Result<StoreLock, LockError> {
        let mut name = store.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                if !wait {
                    return Err(LockError::Held {
                        store: store.to_path_buf(),
                        holder,
                    });
                }
                tracing::warn!("waiting for the store lock held by {holder}");
                eprintln!("waiting for the store '{}', in use by {holder}", store.display());
                file.lock().map_err(io)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let previous = read_holder(&mut file);
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this host".into());
        write!(file, "pid {} on {host} since {}", std::process::id(), crate::time::now()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StoreLock {
            _file: file,
            path,
            previous_holder: (!previous.is_empty() && previous != "unknown").then_some(previous),
        })
    }
}

fn read_holder(file: &mut File) -> String {
    let mut holder = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut holder);
    let holder = holder.trim().to_string();
    if holder.is_empty() {
        "unknown".into()
    } else {
        holder
    }
}

impl Store {
    /// Mark the runs a killed process left `running` as `abandoned`. Only a writer holding the
    /// store lock may call this: then no other process is running any of them. Returns how many.
    pub fn abandon_unfinished_runs(&self, lock: &StoreLock) -> Result<usize> {
        let whose = match &lock.previous_holder {
            Some(h) => format!("the process that ran it ({h}) ended without finishing it"),
            None => "the process that ran it ended without finishing it".to_string(),
        };
        let n = self
            .conn
            .execute(
                "UPDATE runs SET status = 'abandoned', finished_at = ?1, error = ?2 WHERE status = 'running'",
                params![crate::time::now(), whose],
            )
            .map_err(|e| self.err(e))?;
        if n > 0 {
            tracing::warn!("{n} run(s) left running by a process that ended were marked abandoned");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder_and_a_dead_ones_runs_are_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let store = Store::open(&db).unwrap();
        let first = StoreLock::acquire(&db, false).unwrap();
        let run = store.start_run("apply", None).unwrap();
        let e = StoreLock::acquire(&db, false).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("--wait"), "{e}");
        drop(first);
        let second = StoreLock::acquire(&db, false).unwrap();
        assert!(second.previous_holder.as_deref().unwrap().contains("pid"));
        assert_eq!(store.abandon_unfinished_runs(&second).unwrap(), 1);
        let (status, error): (String, String) = store
            .connection()
            .query_row("SELECT status, error FROM runs WHERE id = ?1", [run], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(status, "abandoned");
        assert!(error.contains("pid"), "{error}");
    }
}
