//! harbinger-testkit: contract suites every backend must pass, and test fixtures.
//! Used only as a dev-dependency.
//!
//! # Layout
//! - [`conformance`]: one async suite per store trait. Call each with a fresh, empty store.
//! - [`rollouts`]: rollout records for the tests of the rollout routes.
//!
//! The suites panic (via `assert!`) on the first violated rule, naming it.

pub mod conformance;
pub mod rollouts;
