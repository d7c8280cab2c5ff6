//! An in-process SCIM 2.0 service provider for tests, the demo and benchmarks: an in-memory
//! directory served over HTTP on loopback, with fault injection (an HTTP status with optional
//! `Retry-After`, or a delay) on chosen requests.
mod directory;
mod server;

pub use directory::Directory;
pub use server::{Emulator, Fault};
