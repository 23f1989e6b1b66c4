//! Values shared across the change pipeline.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an update-stack entry does at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The path is absent now and present after.
    Add,
    /// The path holds another value after.
    Replace,
    /// The path is present now and absent after.
    Remove,
}

impl Op {
    /// `add`, `replace`, `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Remove => "remove",
        }
    }
}

/// One entry of the update stack: a leaf of a resource's state that the change moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateOp {
    /// The resource id.
    pub resource: String,
    /// JSON pointer into the resource's state (RFC 6901), e.g. `/content/server/port`.
    pub path: String,
    /// The value now (`null` for `add`).
    pub from: Value,
    /// The value after (`null` for `remove`).
    pub to: Value,
    /// What the entry does.
    pub op: Op,
}

/// A change that was applied to a stack, as the change log remembers it: what baselines
/// of "normal" operations are learned from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedChange {
    /// When it was applied, ms since epoch (UTC).
    pub ts_ms: i64,
    /// The stack.
    pub stack: String,
    /// The change id.
    pub change: String,
    /// Its update stack.
    pub ops: Vec<UpdateOp>,
}
