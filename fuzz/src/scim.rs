//! The sans-I/O SCIM modules of the main crate (its `src/scim/`), without the HTTP client.
#[path = "../../src/scim/error.rs"]
pub mod error;
#[path = "../../src/scim/filter.rs"]
pub mod filter;
#[path = "../../src/scim/list.rs"]
pub mod list;
#[path = "../../src/scim/patch.rs"]
pub mod patch;
#[path = "../../src/scim/resource.rs"]
pub mod resource;
#[path = "../../src/scim/schemas.rs"]
mod schemas;
#[path = "../../src/scim/spc.rs"]
pub mod spc;
pub use schemas::*;
