//! SCIM 2.0 (RFC 7643/7644). Everything but [`transport`] is sans-I/O: it builds requests and
//! reads responses, so protocol rules are tested without a server.
pub mod client;
pub mod error;
pub mod filter;
pub mod list;
pub mod patch;
pub mod resource;
pub mod spc;

pub use client::ScimClient;
pub use error::ScimErrorBody;

/// RFC 7644 §3.8: the SCIM media type.
pub const MEDIA_TYPE: &str = "application/scim+json";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
