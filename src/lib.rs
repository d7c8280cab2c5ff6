//! scimsync mirrors an identity provider (IdP) and the SaaS apps it provisions over SCIM 2.0
//! into one SQLite file, so that drift between them can be found with SQL and fixed.
//!
//! The pipeline, one module per stage:
//! - [`source`] pulls a consistent snapshot from each IdP (`scim`, `file`, …) and each app
//!   (a SCIM service provider) through [`scim`], the sans-I/O protocol layer, and its transport;
//! - [`store`] writes each snapshot in one transaction, keeping history and run records;
//! - [`pull`] drives the sources and the store for `scimsync pull`;
//! - [`cli`] is the command line; [`emulator`] is an in-process SCIM service provider used by
//!   tests, the demo and benchmarks.
//!
//! Dependencies run one way: `cli` → `pull` → (`source`, `store`) → (`scim`, `model`, `config`).

pub mod apply;
pub mod audit;
pub mod cli;
pub mod config;
pub mod drift;
pub mod emulator;
pub mod engine;
pub mod gen;
pub mod http;
pub mod import;
pub mod memory;
pub mod model;
pub mod ops;
pub mod paging;
pub mod profile;
pub mod pull;
pub mod reconcile;
pub mod sample;
pub mod scim;
pub mod secret;
pub mod source;
pub mod store;
pub mod terminal;
pub mod time;
