//! The SP side over the network: [`ScimClient`] moves the sans-I/O rules of [`crate::scim`]
//! (paths, list pages, PATCH, filters, ServiceProviderConfig) over [`crate::http`]. Pull, the
//! SCIM IdP connector, `apply` and single-object reconcile all reach apps through it.
pub mod client;
pub mod directory;

pub use client::{Listed, ScimClient};
pub use directory::{Directory, GroupSearch};

use crate::config::{ConfigError, HttpSettings as ConnSettings};
use crate::http::{Auth, Http, HttpSettings, RetryPolicy};

/// Why an app's client could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The token could not be read (names the source and the variable or file).
    #[error(transparent)]
    Token(#[from] ConfigError),
    /// The HTTP client could not be built from the settings.
    #[error("{source_name}: {message}")]
    Client {
        /// The app's source name (`app.NAME`).
        source_name: String,
        /// What was wrong.
        message: String,
    },
}

/// Open a SCIM client for an app's connection settings, reading its token now.
pub fn connect(source_name: &str, conn: &ConnSettings, retry: RetryPolicy) -> Result<ScimClient, ConnectError> {
    let auth = match conn.token.resolve(source_name)? {
        Some(t) => Auth::Bearer(t),
        None => Auth::None,
    };
    let mut settings = HttpSettings::new(source_name, auth);
    settings.concurrency = conn.concurrency;
    settings.max_objects = conn.max_objects;
    settings.retry = retry;
    let http = Http::new(settings).map_err(|message| ConnectError::Client {
        source_name: source_name.to_string(),
        message,
    })?;
    Ok(ScimClient::new(&conn.base_url, http))
}
