//! SCIM 2.0 (RFC 7643/7644), sans-I/O: it builds requests and reads responses, so protocol rules
//! are tested without a server. The client that sends them is [`crate::sp`].
pub mod discovery;
pub mod error;
pub mod filter;
pub mod list;
pub mod outcome;
pub mod patch;
pub mod path;
pub mod resource;
mod schemas;
pub mod spc;

pub use error::ScimErrorBody;
pub use schemas::*;
