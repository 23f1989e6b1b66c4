//! The change store: stacks (their resources as last applied), change records (what each
//! change did, its snapshots, its outcome) and the change log (every stage, validation,
//! apply and rollback step with its outcome and duration). One redb file,
//! `changes.redb`, in the data directory; snapshots live beside it (`snapshots/`).
//!
//! The log feeds the duration estimates of rollback simulation and the baselines of
//! normal operations ([`crate::anomaly`]).

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{AppliedChange, UpdateOp};

const STACKS: TableDefinition<&str, &[u8]> = TableDefinition::new("stacks");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

/// A store error, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("change store {path}: {detail}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// What failed.
    pub detail: String,
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Applied, checks passed.
    Applied,
    /// Refused before anything live moved: staged validation failed (predictive
    /// rollback), the analysis was negative, or a high rollback cost was not overridden.
    Rejected,
    /// Applied, then restored from the snapshot (an apply error or a failing check).
    RolledBack,
    /// Some resources restored on request (selective rollback); the others stay changed.
    PartiallyRolledBack,
    /// A rollback did not verify: the report says which resource differs and where.
    RollbackFailed,
    /// Submitted ahead of deployment and predicted to do harm: not applied; the rollback
    /// resources (snapshots of the last good state, standby copies) are pre-provisioned
    /// and the operator was alerted.
    Held,
}

impl ChangeStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Applied => "applied",
            ChangeStatus::Rejected => "rejected",
            ChangeStatus::RolledBack => "rolled_back",
            ChangeStatus::PartiallyRolledBack => "partially_rolled_back",
            ChangeStatus::RollbackFailed => "rollback_failed",
            ChangeStatus::Held => "held",
        }
    }
}

/// One resource of a change record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedResource {
    /// Resource id.
    pub id: String,
    /// Its kind (`file`, `redis`, `exec`).
    pub kind: String,
    /// Snapshot sequence number in the snapshot store (resource `<stack>/<id>`).
    pub snapshot: u64,
    /// Whether it has been restored since.
    #[serde(default)]
    pub restored: bool,
}

/// A change as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// `c-<n>`.
    pub id: String,
    /// The stack.
    pub stack: String,
    /// When it was applied (or refused), ms since epoch.
    pub ts_ms: i64,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Outcome.
    pub status: ChangeStatus,
    /// Why it ended that way.
    pub reason: String,
    /// The update stack.
    pub ops: Vec<UpdateOp>,
    /// Changed resources and their snapshots.
    pub resources: Vec<ChangedResource>,
    /// The template as JSON (resources' specs and dependencies, to roll back later).
    pub template: Value,
    /// The template's directory (relative paths in specs resolve against it).
    pub base_dir: PathBuf,
}

/// One step of the change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When the step ended, ms since epoch.
    pub ts_ms: i64,
    /// The change.
    pub change: String,
    /// The stack.
    pub stack: String,
    /// `snapshot`, `stage`, `validate`, `apply`, `check`, `rollback`, `verify`, `reject`,
    /// `alert`.
    pub step: String,
    /// The resource, where one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The resource's kind, where one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `ok`, `failed`, `skipped`.
    pub outcome: String,
    /// How long the step took.
    pub duration_ms: f64,
    /// What happened.
    pub detail: String,
}

/// A stack as last applied: its template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackRecord {
    /// Name.
    pub name: String,
    /// The last change applied to it.
    pub last_change: String,
    /// When.
    pub updated_ms: i64,
    /// The template of that change.
    pub template: Value,
}

/// The change store.
#[derive(Debug)]
pub struct ChangeStore {
    path: PathBuf,
    db: redb::Database,
}

impl ChangeStore {
    /// Opens (or creates) `<dir>/changes.redb`.
    ///
    /// # Errors
    /// [`StoreError`], e.g. when another process (a running `harbinger serve`) holds it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("changes.redb");
        std::fs::create_dir_all(dir).map_err(|e| StoreError { path: path.clone(), detail: e.to_string() })?;
        let db = redb::Database::create(&path).map_err(|e| {
            let detail = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "in use by another process (a running `harbinger serve`? send the change to its ChangeService)".to_string()
                }
                e => e.to_string(),
            };
            StoreError { path: path.clone(), detail }
        })?;
        let s = ChangeStore { path, db };
        s.write(|tx| {
            tx.open_table(STACKS)?;
            tx.open_table(CHANGES)?;
            tx.open_table(LOG)?;
            Ok(())
        })?;
        Ok(s)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.clone(), detail: e.to_string() }
    }

    fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>) -> Result<T, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, what: &str, bytes: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| self.err(format!("{what}: corrupt record: {e}")))
    }

    /// The id the next change gets: `c-<n>`.
    pub fn next_change_id(&self) -> Result<String, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        let last = t.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value()).unwrap_or(0);
        Ok(format!("c-{}", last + 1))
    }

    /// Stores (or replaces) a change record.
    pub fn put_change(&self, rec: &ChangeRecord) -> Result<(), StoreError> {
        let n = change_number(&rec.id).ok_or_else(|| self.err(format!("change id {:?} is not c-<n>", rec.id)))?;
        let bytes = serde_json::to_vec(rec).map_err(|e| self.err(e))?;
        self.write(|tx| {
            tx.open_table(CHANGES)?.insert(n, bytes.as_slice())?;
            Ok(())
        })
    }

    /// The change `id`, if recorded.
    pub fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        let Some(n) = change_number(id) else { return Ok(None) };
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        match t.get(n).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(self.decode(id, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every change, oldest first; of one stack when `stack` is given.
    pub fn changes(&self, stack: Option<&str>) -> Result<Vec<ChangeRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let rec: ChangeRecord = self.decode(&format!("c-{}", k.value()), v.value())?;
            if stack.is_none_or(|s| s == rec.stack) {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// The applied changes of `stack` (also those later rolled back: they were applied),
    /// oldest first: what baselines learn from.
    pub fn history(&self, stack: &str) -> Result<Vec<AppliedChange>, StoreError> {
        Ok(self
            .changes(Some(stack))?
            .into_iter()
            .filter(|c| c.status != ChangeStatus::Rejected)
            .map(|c| AppliedChange { ts_ms: c.ts_ms, stack: c.stack, change: c.id, ops: c.ops })
            .collect())
    }

    /// Stores a stack.
    pub fn put_stack(&self, rec: &StackRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec).map_err(|e| self.err(e))?;
        self.write(|tx| {
            tx.open_table(STACKS)?.insert(rec.name.as_str(), bytes.as_slice())?;
            Ok(())
        })
    }

    /// The stack `name`, if any change was applied to it.
    pub fn stack(&self, name: &str) -> Result<Option<StackRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(STACKS).map_err(|e| self.err(e))?;
        match t.get(name).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(self.decode(name, v.value())?)),
            None => Ok(None),
        }
    }

    /// Appends steps to the log, in one transaction.
    pub fn append_log(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let encoded: Vec<Vec<u8>> = entries.iter().map(serde_json::to_vec).collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        self.write(|tx| {
            let mut t = tx.open_table(LOG)?;
            let first = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            for (seq, e) in (first..).zip(&encoded) {
                t.insert(seq, e.as_slice())?;
            }
            Ok(())
        })
    }

    /// The log, oldest first, filtered by change and/or stack.
    pub fn log(&self, change: Option<&str>, stack: Option<&str>) -> Result<Vec<LogEntry>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(LOG).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let e: LogEntry = self.decode(&format!("log entry {}", k.value()), v.value())?;
            if change.is_none_or(|c| c == e.change) && stack.is_none_or(|s| s == e.stack) {
                out.push(e);
            }
        }
        Ok(out)
    }
}

fn change_number(id: &str) -> Option<u64> {
    id.strip_prefix("c-")?.parse().ok()
}
