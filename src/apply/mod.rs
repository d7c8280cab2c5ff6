//! A plan's operations carried out in the apps: [`executor`] runs them with the journal, retries
//! and the deletion guard (the operations themselves come from [`crate::plan`]).
pub mod executor;

pub use executor::{apply, apply_loaded, ApplyError, ApplyOptions, ApplyReport};
