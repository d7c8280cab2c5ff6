//! SCIM 2.0 (RFC 7643/7644). Everything but [`transport`] is sans-I/O: it builds requests and
//! reads responses, so protocol rules are tested without a server.
pub mod client;
pub mod error;
pub mod filter;
pub mod list;
pub mod patch;
pub mod path;
pub mod resource;
mod schemas;
pub mod spc;

pub use client::ScimClient;
pub use error::ScimErrorBody;
pub use schemas::*;
