//! The seeded generator of the demo company and of `scimsync gen`, compiled from scimsync's
//! own file so that both draw the same sequence.
#[path = "../../../src/rng.rs"]
mod shared;

pub use shared::SplitMix;
