//! Files a command writes on request (`sql -o`, `report -o/--html`, `diff -o`, `plan --out`).
//!
//! - An existing file is replaced only with `--force`.
//! - The store, its WAL, shared-memory and lock files, its columnar copies and the config are
//!   never targets, `--force` or not (`sql … -o scimsync.db` would replace the store with CSV).
//! - The data goes to a temporary file beside the target, created exclusively (`O_EXCL`: a
//!   symlink planted at its name is not followed), and is renamed into place when complete; on
//!   failure the temporary file is removed.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Paths no output may be written to.
pub struct Protected {
    paths: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Protected {
    /// The store at `store` (with its sidecar files and columnar copies) and the config.
    pub fn store_and_config(store: &Path, config: &Path) -> Protected {
        let with = |suffix: &str| {
            let mut s = store.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        Protected {
            paths: vec![
                store.to_path_buf(),
                with("-wal"),
                with("-shm"),
                with("-journal"),
                with(".lock"),
                config.to_path_buf(),
            ]
            .into_iter()
            .map(|p| absolute(&p))
            .collect(),
            dirs: vec![absolute(&with(".columns"))],
        }
    }

    fn check(&self, target: &Path, flag: &str) -> anyhow::Result<()> {
        let t = absolute(target);
        if self.paths.contains(&t) || self.dirs.iter().any(|d| t.starts_with(d)) {
            bail!(
                "{flag} '{}': that is the store, one of its files, or the config; refusing to write over it",
                target.display()
            );
        }
        Ok(())
    }
}

/// A path made absolute, with symlinks resolved as far as it exists (a symlink at the target
/// that points at the store is the store).
fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    match p.file_name() {
        Some(name) => parent.join(name),
        None => parent,
    }
}

/// Refuse `target` now, before a command does its work, when writing it later would be refused.
pub fn check_target(target: &Path, force: bool, protected: &Protected, flag: &'static str) -> anyhow::Result<()> {
    protected.check(target, flag)?;
    if !force && std::fs::symlink_metadata(target).is_ok() {
        bail!("{flag} '{}' exists; use --force to replace it", target.display());
    }
    Ok(())
}

/// An output file being written; [`OutputFile::commit`] puts it in place.
pub struct OutputFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    force: bool,
    flag: &'static str,
}

impl OutputFile {
    /// Start writing `target` (named `flag` in errors), refusing what the module doc says.
    pub fn create(target: &Path, force: bool, protected: &Protected, flag: &'static str) -> anyhow::Result<OutputFile> {
        check_target(target, force, protected, flag)?;
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut attempt = 0;
        loop {
            let tmp = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), rand::random::<u32>()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => {
                    return Ok(OutputFile {
                        target: target.to_path_buf(),
                        tmp,
                        file: Some(std::io::BufWriter::new(f)),
                        force,
                        flag,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 5 => attempt += 1,
                Err(e) => return Err(e).with_context(|| format!("{flag} '{}': temporary file '{}'", target.display(), tmp.display())),
            }
        }
    }

    pub fn writer(&mut self) -> &mut std::io::BufWriter<std::fs::File> {
        self.file.as_mut().expect("written before commit")
    }

    /// Finish the file and put it at the target: renamed over it with `--force`, else linked
    /// to the target's name only if that is still free.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let ctx = |what: &str| format!("{} '{}': {what}", self.flag, self.target.display());
        let mut file = self.file.take().expect("committed once");
        file.flush().with_context(|| ctx("writing"))?;
        file.get_ref().sync_all().with_context(|| ctx("writing"))?;
        drop(file);
        if self.force {
            std::fs::rename(&self.tmp, &self.target).with_context(|| ctx("renaming into place"))?;
        } else {
            match std::fs::hard_link(&self.tmp, &self.target) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    bail!(
                        "{} '{}' appeared while it was written; use --force to replace it",
                        self.flag,
                        self.target.display()
                    )
                }
                // A file system without hard links: a rename (the target was free a moment ago).
                Err(_) => std::fs::rename(&self.tmp, &self.target).with_context(|| ctx("renaming into place"))?,
            }
        }
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // Not committed (an error on the way), or committed by a link: the temporary goes.
        self.file.take();
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Write `bytes` to `target` as [`OutputFile`] does.
pub fn write_file(target: &Path, bytes: &[u8], force: bool, protected: &Protected, flag: &'static str) -> anyhow::Result<()> {
    let mut out = OutputFile::create(target, force, protected, flag)?;
    out.writer()
        .write_all(bytes)
        .with_context(|| format!("{flag} '{}'", target.display()))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_files_need_force_and_the_store_never_is_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("scimsync.db");
        std::fs::write(&store, b"SQLite format 3\0").unwrap();
        let config = dir.path().join("scimsync.toml");
        let p = Protected::store_and_config(&store, &config);
        for target in [
            store.clone(),
            dir.path().join("scimsync.db-wal"),
            config.clone(),
            dir.path().join("scimsync.db.columns/x.arrow"),
        ] {
            let e = write_file(&target, b"csv", true, &p, "-o").unwrap_err().to_string();
            assert!(e.contains("refusing"), "{e}");
        }
        // A symlink pointing at the store is the store.
        let link = dir.path().join("innocent.csv");
        std::os::unix::fs::symlink(&store, &link).unwrap();
        assert!(write_file(&link, b"csv", true, &p, "-o")
            .unwrap_err()
            .to_string()
            .contains("refusing"));
        assert_eq!(std::fs::read(&store).unwrap(), b"SQLite format 3\0");

        let out = dir.path().join("out.csv");
        write_file(&out, b"one", false, &p, "-o").unwrap();
        let e = write_file(&out, b"two", false, &p, "-o").unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"one");
        write_file(&out, b"two", true, &p, "-o").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
    }

    #[test]
    fn a_planted_symlink_is_not_followed_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = Protected::store_and_config(&dir.path().join("s.db"), &dir.path().join("c.toml"));
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // The old fixed temporary name, planted: ignored now.
        std::os::unix::fs::symlink(&victim, dir.path().join("out.csv.tmp")).unwrap();
        let target = dir.path().join("out.csv");
        {
            let mut f = OutputFile::create(&target, false, &p, "-o").unwrap();
            f.writer().write_all(b"partial").unwrap();
            // Dropped without commit: a failed write.
        }
        assert!(!target.exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && n != "out.csv.tmp")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
