//! The main crate's parser modules, compiled from their own source files: the sans-I/O SCIM
//! layer (list, error, resource, filter, PATCH, ServiceProviderConfig), the model it fills, and
//! the config parser with what it reads (its secret type, durations, the paging cap, the
//! attribute mappings' targets: their expressions are planned by DataFusion, which fuzz builds
//! leave out, see `src/mapping/mod.rs`).
//! `crate::…` paths inside them resolve here as there.
#![allow(dead_code)]

#[path = "../../src/model.rs"]
pub mod model;
#[path = "../../src/attributes.rs"]
pub mod attributes;
#[path = "../../src/mapping/mod.rs"]
pub mod mapping;
#[path = "../../src/secret.rs"]
pub mod secret;
#[path = "../../src/config/mod.rs"]
pub mod config;
#[path = "../../src/paging.rs"]
pub mod paging;
#[path = "../../src/time.rs"]
pub mod time;

pub mod scim;
