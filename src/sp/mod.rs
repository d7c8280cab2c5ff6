//! The SP side over the network: [`ScimClient`] moves the sans-I/O rules of [`crate::scim`]
//! (paths, list pages, PATCH, filters, ServiceProviderConfig) over [`crate::http`]. Pull, the
//! SCIM IdP connector, `apply` and single-object reconcile all reach apps through it.
pub mod client;

pub use client::{Listed, ScimClient};
