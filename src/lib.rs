//! scimsync mirrors an identity provider (IdP) and the SaaS apps it provisions over SCIM 2.0
//! into one SQLite file, so that drift between them can be found with SQL and fixed.
//!
//! The pipeline, each stage using only the ones before it (docs/architecture.md has the whole
//! map, what each module may use and which tables each writes):
//!
//! 1. [`source`] pulls each IdP (JumpCloud, Okta, Entra, SCIM, file) and each app over
//!    [`sp`] (the SCIM client: [`scim`]'s sans-I/O rules over the [`http`] transport);
//! 2. [`store`] writes each snapshot in one transaction, with history, runs, links and events;
//!    [`pull`] drives sources into the store;
//! 3. [`engine`] runs the `queries/` over the store with DataFusion: correlation, scope, one
//!    drift query per finding kind;
//! 4. [`plan`] turns findings into SCIM operations through each app's [`profile`], and keeps the
//!    plan and its journal;
//! 5. [`apply`] runs a plan's operations against the apps, journaled before and after.
//!
//! On top: [`reconcile`] (pull → plan → apply on a schedule), [`import`] and [`audit`]
//! (auditor SQL and reports); [`gen`] writes synthetic stores for benchmarks. Shared leaves:
//! [`vocab`], [`model`] and [`attributes`] (the domain's words and data), [`config`], [`secret`], [`time`],
//! [`paging`], [`memory`], [`terminal`], [`rng`]; [`mapping`] checks attribute mappings.
//!
//! Not here: the command line is the `scimsync` binary's (`src/main.rs`, `src/cli/`), and the
//! emulators (in-process SCIM apps, IdP fakes) and the demo's sample company are the
//! `scimsync-emulator` crate (`crates/emulator`), which the binary, the tests and the benchmarks
//! use and the library does not.

#![warn(missing_docs)]

pub mod apply;
pub mod attributes;
pub mod audit;
pub mod config;
pub mod engine;
pub mod gen;
pub mod http;
pub mod import;
pub mod lake;
pub mod mapping;
pub mod memory;
pub mod model;
pub mod paging;
pub mod plan;
pub mod profile;
pub mod pull;
pub mod reconcile;
pub mod retention;
pub mod rng;
pub mod scim;
pub mod secret;
pub mod source;
pub mod sp;
pub mod store;
pub mod terminal;
pub mod threads;
pub mod time;
pub mod vocab;
