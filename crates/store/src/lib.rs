//! harbinger-store: where samples, events and inventory live.
//!
//! Two backends implement every store trait of `harbinger-core`:
//! - [`EmbeddedStore`]: the default. Append-only sample segments with a background
//!   fsync every `sync_interval`, bounded in-memory hot windows rebuilt at start-up,
//!   retention by data time, and a redb database for events, hosts, resources and
//!   failures, shadows and the action journal. One process per data directory.
//! - [`MemoryStore`]: the same semantics in memory, for replay and tests.
//!
//! # Layout
//! - [`series`]: admission rules (ordering, duplicates, limits) and hot windows, shared.
//! - `segment`: the on-disk sample record format.
//! - `journal`: the rules of the shadow store's action journal, shared.
//! - [`embedded`], [`memory`]: the backends.
//!
//! Both pass `harbinger_testkit::conformance`; start there to see the contract.

pub mod embedded;
mod journal;
pub mod memory;
mod segment;
#[cfg(test)]
mod segment_proptest;
pub mod series;

pub use embedded::{EmbeddedConfig, EmbeddedStore, RecoveryReport, SegmentCheck, check_segment};
pub use memory::MemoryStore;
pub use series::{DEFAULT_MAX_FUTURE_MS, DEFAULT_MAX_HOST_BYTES, DEFAULT_MAX_METRIC_BYTES, Limits, MAX_KEY_BYTES};
