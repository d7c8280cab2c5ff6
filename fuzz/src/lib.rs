//! The main crate's parser modules, compiled from their own source files: the sans-I/O SCIM
//! layer (list, error, resource, filter, PATCH, ServiceProviderConfig), the model it fills, and
//! the config parser with its secret type. `crate::…` paths inside them resolve here as there.
#![allow(dead_code)]

#[path = "../../src/model.rs"]
pub mod model;
#[path = "../../src/secret.rs"]
pub mod secret;
#[path = "../../src/config.rs"]
pub mod config;

pub mod scim;
