//! The action journal: every action the engine performs is written here *before* the
//! actuator is called, and its outcome after, in the same transaction as the shadow it
//! changes. A restart finds the actions that were begun and never finished
//! ([`ShadowStore::pending`](crate::ShadowStore::pending)) and performs them again;
//! actuators are idempotent by the entry's key.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::shadow::Shadow;
use crate::{ShadowId, TimestampMs};

/// Where a journaled action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// Begun: the actuator may or may not have acted. Resumed after a restart.
    Pending,
    /// The actuator did it.
    Applied,
    /// The actuator found it already done (same key).
    AlreadyApplied,
    /// The actuator chose not to act, with a reason.
    Skipped,
    /// A dry run: recorded, not performed (the `log` actuator).
    DryRun,
    /// The actuator failed; the shadow was left as it was or marked failed.
    Failed,
}

impl JournalStatus {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::AlreadyApplied => "already_applied",
            Self::Skipped => "skipped",
            Self::DryRun => "dry_run",
            Self::Failed => "failed",
        }
    }

    /// Every status but `Pending`.
    pub fn is_finished(self) -> bool {
        self != Self::Pending
    }
}

impl fmt::Display for JournalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One journaled action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Order of journaling, from 1; assigned by the store.
    pub seq: u64,
    /// The action's idempotency key; unique in the journal.
    pub key: String,
    /// The shadow acted on.
    pub shadow: ShadowId,
    /// The action as planned (the planner's `Action`, as JSON), so a restart can redo it.
    pub action: serde_json::Value,
    /// When it was begun (the engine's clock).
    pub at: TimestampMs,
    /// Where it is.
    pub status: JournalStatus,
    /// When the outcome was recorded.
    #[serde(default)]
    pub finished_at: Option<TimestampMs>,
    /// The actuator's words about the outcome (what it did, or why not).
    #[serde(default)]
    pub detail: String,
    /// How many times it was begun (a failed action begun again counts 2, ...).
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

/// An action about to be performed.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// Idempotency key.
    pub key: String,
    /// The shadow acted on.
    pub shadow: ShadowId,
    /// The action as planned, as JSON.
    pub action: serde_json::Value,
    /// Now, on the engine's clock.
    pub at: TimestampMs,
    /// For a creation: the new shadow (state `planned`), stored in the same transaction.
    pub create: Option<Shadow>,
}

/// What [`ShadowStore::begin`](crate::ShadowStore::begin) found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The key was new (or its last attempt failed): journaled as pending, go ahead.
    Started(JournalEntry),
    /// The key was journaled before and is pending or finished: nothing was written.
    Existing(JournalEntry),
}

/// An outcome to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The key of the pending entry.
    pub key: String,
    /// The outcome (not `Pending`).
    pub status: JournalStatus,
    /// The actuator's words.
    pub detail: String,
    /// Now, on the engine's clock.
    pub at: TimestampMs,
    /// The shadow's new value, stored in the same transaction.
    pub shadow: Option<Shadow>,
}
