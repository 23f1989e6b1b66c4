//! harbinger-snapshot: delta snapshots of resource state, taken before a change and
//! restorable exactly.
//!
//! Before a deployment or a config change, harbinger captures the parts of a resource's
//! `state` (`harbinger_core::Resource::state`) that changes of the resource's kind touch,
//! so it can put them back. Which parts is a [`ChangeProfile`]: JSON pointers per kind,
//! in [`Profiles`] (built-in defaults, or a `[snapshots.profiles]` TOML table).
//!
//! Start with [`SnapshotStore`]:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use harbinger_snapshot::{SnapshotConfig, SnapshotStore};
//! use serde_json::json;
//!
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("snapshots");
//! // dir: e.g. /var/lib/harbinger/snapshots
//! let store = SnapshotStore::open(SnapshotConfig::new(dir))?;
//! let before = json!({"config": {"pool": 10}, "schema_version": 41});
//! let meta = store.take("db-1", "database", &before, 1_700_000_000_000)?;
//! // ... the change happens, the state moves on ...
//! let after = json!({"config": {"pool": 50}, "schema_version": 42, "parameters": {"x": 1}});
//! let restored = store.restore("db-1", meta.seq, &after)?;
//! assert_eq!(restored, before); // "/parameters" was absent before: it is removed again
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`profile`]: [`ChangeProfile`], [`Profiles`] and pointer validation.
//! - [`capture`](mod@capture): [`capture()`](capture::capture) reads the profiled parts of a
//!   state into a [`Captured`]; [`apply`] puts them back into a later state.
//! - [`config`]: [`SnapshotConfig`] (directories, TTL, `max_chain`, profiles).
//! - [`store`]: [`SnapshotStore`]: `take`, `list`, `materialize`, `restore`,
//!   `consolidate`, `expire`, `verify`, `repair`. Its module docs describe the file
//!   layout, delta chains, consolidation (restore points are kept), expiry and repair.
//! - `codec` (internal): the file format: magic, version, BLAKE3 checksum, zstd, and a
//!   bit-exact binary encoding of JSON values.
//! - [`error`]: [`SnapshotError`]; every message names the resource, snapshot and file.
//!
//! Synchronous, no clock: every time is passed in (`now_ms`), so behaviour is
//! deterministic under test.

// Tests may unwrap; the library may not (workspace lint `clippy::unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod capture;
mod codec;
pub mod config;
pub mod error;
pub mod profile;
pub mod store;

pub use capture::{ApplyConflict, Captured, apply, capture, exact_eq};
pub use codec::Check;
pub use config::{DEFAULT_MAX_CHAIN, SnapshotConfig};
pub use error::{CopyFailure, Result, SnapshotError};
pub use profile::{ChangeProfile, FALLBACK_KEY, ProfileError, Profiles, validate_pointer};
pub use store::{BrokenLink, CopyProblem, ExpireReport, Location, SnapshotMeta, SnapshotRef, SnapshotStore, VerifyReport};
