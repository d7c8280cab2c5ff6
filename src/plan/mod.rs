//! Planning: from the drift engine's findings to the SCIM operations that correct them.
//!
//! - [`Finding`] (the engine's output) and the domain's vocabulary ([`crate::vocab`]) are
//!   re-exported here;
//! - [`operation`]: a plan as data ([`Plan`], [`Operation`], [`Body`]) — what `plan --out`
//!   writes, the journal stores and `apply` runs;
//! - [`planner`] (with [`bodies`]): the pure step, findings → operations, through each app's
//!   profile;
//! - [`run`]: a plan run, start to end (snapshots checked, engine run, operations planned, all
//!   stored);
//! - [`journal`]: the plan run's findings and links, the plan and its operations journal in the
//!   store, and each operation's claim and end (written by `apply`);
//! - [`render`]: findings in words.
//!
//! Depends on `engine` (the findings), `store` (snapshots in, plan runs out), `profile` and
//! `config`; `apply`, `reconcile`, `import` and the CLI depend on it.
pub mod bodies;
mod digest;
pub mod journal;
pub mod json;
pub mod operation;
pub mod planner;
pub mod render;
pub mod run;

pub use crate::engine::Finding;
pub use crate::vocab::{Action, FindingKind, Method, OpStatus};
pub use journal::{Finish, JournalEntry};
pub use operation::*;
pub use render::{describe_finding, symbol};
pub use run::{plan, plan_with, AppPlanInfo, PlanError, PlanOutcome, WITHHELD};
