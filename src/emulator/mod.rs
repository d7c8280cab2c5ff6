//! An in-process SCIM 2.0 service provider for tests, the demo and benchmarks: an in-memory
//! directory served over HTTP on loopback that behaves like one of the seeds' apps
//! ([`Vendor`]), with fault injection (an HTTP status with optional `Retry-After`, or a delay,
//! on every, the first N, or a share of the matching requests).
mod directory;
mod idp;
mod server;
mod vendor;

pub use directory::Directory;
pub use idp::{IdpDirectory, IdpFake, IdpGroup, IdpUser, IdpVendor};
pub use server::{Emulator, Fault};
pub use vendor::Vendor;
