//! Where a token comes from (an environment variable or a file), read when a connection opens.
use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::secret::Secret;

/// Where a token comes from. The value itself is read only when a connection is opened.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// No token (an emulator, a test).
    None,
    /// An environment variable's name.
    Env(String),
    /// A file holding it.
    File(PathBuf),
}

impl TokenSource {
    /// Read the token. `source_name` (like `app.quip`) names the connection in errors;
    /// the token value never appears in one.
    pub fn resolve(&self, source_name: &str) -> Result<Option<Secret>, ConfigError> {
        let err = |message: String| ConfigError::Token {
            source_name: source_name.to_string(),
            message,
        };
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
                Ok(_) => Err(err(format!("environment variable {var} (token_env) is empty"))),
                Err(_) => Err(err(format!("environment variable {var} (token_env) is not set"))),
            },
            TokenSource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => {
                    warn_if_readable_by_others(source_name, path);
                    Ok(Some(Secret::new(v.trim())))
                }
                Ok(_) => Err(err(format!("token_file '{}' is empty", path.display()))),
                Err(e) => Err(err(format!("cannot read token_file '{}': {e}", path.display()))),
            },
        }
    }
}

/// Warn, as ssh does for a private key, when a token file can be read by its group or by
/// others.
fn warn_if_readable_by_others(source_name: &str, path: &Path) {
    if let Some(mode) = group_or_world_readable(path) {
        tracing::warn!(
            "{source_name}: token_file '{}' has mode {mode:04o}: readable by its group or by others; `chmod 600` it",
            path.display()
        );
    }
}

/// The file's permission bits when its group or others may read it.
pub fn group_or_world_readable(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
