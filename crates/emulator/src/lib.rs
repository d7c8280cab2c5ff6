//! An in-process SCIM 2.0 service provider for tests, the demo and benchmarks: an in-memory
//! directory served over HTTP on loopback that behaves like one of the seeds' apps
//! ([`Vendor`]), with fault injection (an HTTP status with optional `Retry-After`, or a delay,
//! on every, the first N, or a share of the matching requests).
//!
//! Also the demo's sample company ([`sample`]). A crate of its own: a dependency of scimsync's
//! tests, benchmarks and its `demo` and `gen --serve` commands, never of the library. The SCIM
//! rules it shares with scimsync (schemas, filters, PATCH) are compiled from scimsync's own
//! files ([`scim`]), so both sides read one definition.
mod directory;
mod idp;
pub mod rng;
pub mod sample;
pub mod scim;
mod server;
mod vendor;

pub use directory::Directory;
pub use idp::{IdpDirectory, IdpFake, IdpGroup, IdpUser, IdpVendor};
pub use server::{Emulator, Fault};
pub use vendor::Vendor;
