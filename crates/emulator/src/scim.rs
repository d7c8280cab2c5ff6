//! scimsync's sans-I/O SCIM rules the emulators apply as a service provider would, compiled
//! from scimsync's own source files (one definition for both sides).
#![allow(dead_code)]

#[path = "../../../src/scim/filter.rs"]
pub mod filter;
#[path = "../../../src/scim/patch.rs"]
pub mod patch;
#[path = "../../../src/scim/schemas.rs"]
mod schemas;

pub use schemas::*;
