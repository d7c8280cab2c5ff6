//! From findings to changes in the apps: [`planner`] turns findings into SCIM operations through
//! each app's profile; [`executor`] runs them with the journal, retries and the guard.
mod bodies;
pub mod executor;
pub mod planner;

pub use executor::{apply, apply_loaded, ApplyError, ApplyOptions, ApplyReport};
