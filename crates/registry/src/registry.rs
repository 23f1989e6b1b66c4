//! The model registry: named, immutable, versioned model artifacts in a directory, which
//! batch retraining jobs publish into and `serve` loads from.
//!
//! # Layout
//! ```text
//! <root>/LOCK                            flock held by every change (publish, promote, rollback, remove)
//! <root>/<name>/<version>/model.json     the artifact, byte for byte as published; never rewritten
//! <root>/<name>/<version>/MODEL_CARD.md
//! <root>/<name>/CURRENT                  the served version, one line
//! <root>/<name>/HISTORY                  append-only, one line per change of CURRENT:
//!                                        <RFC 3339 time> <version> <previous or -> <publish|promote|rollback>
//! ```
//!
//! A version directory is named by the model's own version string (`model.json`'s
//! `version`, e.g. `20240101T000000Z-d92a3406`), so the same artifact always lands in the
//! same place: publishing it again is a no-op, and publishing other bytes under a version
//! that exists is refused. Names and versions are one path component of ASCII letters,
//! digits, `-`, `_` and `.`, not starting with `.`.
//!
//! # Consistency
//! Readers take no lock. A file is replaced by renaming a complete, fsynced temporary file
//! in the same directory, and a version appears by renaming a complete staging directory,
//! so a reader sees the state before a change or after it, never half of it. Writers
//! serialise on the flock of `<root>/LOCK`, so two publishers (or a publish and a promote)
//! cannot interleave. A change is recorded in `HISTORY` before `CURRENT` moves: the log
//! never misses a version that was served. Staging leftovers of a crashed writer are
//! removed by the next writer of that entry.
//!
//! Rollback replays `HISTORY` as a stack (publish and promote push, rollback pops), so
//! repeated rollbacks walk back through earlier promotions.
//!
//! `serve`, `eval` and `bench score` accept an entry directory `<root>/<name>` wherever
//! they take a model directory ([`crate::load_resolved`] goes through
//! [`artifact_dir`]): `CURRENT` is resolved at every load, so a promotion followed by a
//! reload (SIGHUP, `ReloadModel`) switches the served version.
//!
//! Start with [`Registry::open`].

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harbinger_core::{Clock, SystemClock};
use serde::Serialize;

use harbinger_model::{Model, ModelError};

use crate::files::{CARD_FILE, MODEL_FILE};

/// File in an entry directory naming the served version.
pub const CURRENT_FILE: &str = "CURRENT";
/// Append-only log of changes of `CURRENT` in an entry directory.
pub const HISTORY_FILE: &str = "HISTORY";
/// Lock file in the registry root, held by every change.
pub const LOCK_FILE: &str = "LOCK";
/// Longest name or version, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Prefixes of the registry's own temporary files and directories inside an entry; names
/// and versions cannot start with `.`, so these never collide with them.
const STAGING: &str = ".staging-";
const REMOVING: &str = ".removing-";
const TMP: &str = ".tmp-";

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file system operation failed.
    #[error("model registry: cannot {op} {path}: {error}")]
    Io {
        /// What was attempted (`read`, `create`, `rename`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// OS error (in the message, not repeated as the error's source).
        error: std::io::Error,
    },
    /// The registry root exists but is not a directory.
    #[error("model registry: {path} is not a directory")]
    NotADirectory {
        /// The root.
        path: PathBuf,
    },
    /// A model name or version that cannot be a registry directory.
    #[error("model registry: invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// `name` or `version`.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No entry of that name.
    #[error("model registry {registry}: no model named {name:?}")]
    UnknownName {
        /// Registry root.
        registry: PathBuf,
        /// The name.
        name: String,
    },
    /// The entry has no such version.
    #[error("model registry {registry}: model {name:?} has no version {version:?}")]
    UnknownVersion {
        /// Registry root.
        registry: PathBuf,
        /// The name.
        name: String,
        /// The version.
        version: String,
    },
    /// A directory given to publish, or a published version, is not a loadable model.
    #[error("model registry: {path} is not a usable model artifact: {reason}")]
    NotAModel {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be loaded: its `model.json` cannot be read, or what
        /// [`ModelError`] says of it.
        reason: String,
    },
    /// The version is already published with other contents.
    #[error(
        "model registry {registry}: {name} {version} is already published with different contents ({existing}); a published version never changes: retrain (a new version) or publish under another name"
    )]
    Conflict {
        /// Registry root.
        registry: PathBuf,
        /// The name.
        name: String,
        /// The version.
        version: String,
        /// The `model.json` already there.
        existing: PathBuf,
    },
    /// `CURRENT` cannot be used.
    #[error("model registry: {path} is corrupt: {reason}")]
    CorruptCurrent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A line of `HISTORY` cannot be read.
    #[error("model registry: {path} line {line} is corrupt: {reason}")]
    CorruptHistory {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `CURRENT` and the last change recorded in `HISTORY` disagree.
    #[error(
        "model registry: {path} says {current} is current but HISTORY's last change made it {recorded}; promote the version to serve to record it"
    )]
    OutOfStep {
        /// The `CURRENT` file.
        path: PathBuf,
        /// What `CURRENT` says.
        current: String,
        /// What `HISTORY` says.
        recorded: String,
    },
    /// The served version cannot be removed.
    #[error("model registry {registry}: {name} {version} is the current version and cannot be removed; promote another first")]
    RemoveCurrent {
        /// Registry root.
        registry: PathBuf,
        /// The name.
        name: String,
        /// The version.
        version: String,
    },
    /// No earlier promotion to go back to.
    #[error("model registry {registry}: {name} has no earlier promotion than {current} to roll back to")]
    NoRollback {
        /// Registry root.
        registry: PathBuf,
        /// The name.
        name: String,
        /// The current version.
        current: String,
    },
    /// The version a rollback would go back to was removed.
    #[error("model registry {registry}: cannot roll {name} back to {version}: that version was removed; promote a version instead")]
    RollbackTargetRemoved {
        /// Registry root.
        registry: PathBuf,
        /// The name.
        name: String,
        /// The removed version.
        version: String,
    },
}

/// Why `CURRENT` moved, as recorded in `HISTORY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The first version published under a name.
    Publish,
    /// `promote`.
    Promote,
    /// `rollback`.
    Rollback,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Publish => "publish",
            Change::Promote => "promote",
            Change::Rollback => "rollback",
        }
    }
}

/// One line of `HISTORY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When (ms since epoch).
    pub at_ms: i64,
    /// The version that became current.
    pub version: String,
    /// The version current before, if any.
    pub previous: Option<String>,
    /// Why.
    pub change: Change,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The version (the model's own version string).
    pub version: String,
    /// False when the identical artifact was already published (nothing was written).
    pub added: bool,
    /// True when this publish made it the current version (the name's first version).
    pub made_current: bool,
    /// The version's directory.
    pub path: PathBuf,
}

/// What a promote or rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The version current before.
    pub from: Option<String>,
    /// The version current now.
    pub to: String,
    /// False when `to` was already current (nothing was written).
    pub changed: bool,
}

/// A published version and the facts of its model card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfo {
    /// Model name.
    pub name: String,
    /// The version.
    pub version: String,
    /// Whether `CURRENT` names it.
    pub current: bool,
    /// When it was trained (ms since epoch).
    pub trained_at_ms: i64,
    /// harbinger version that trained it.
    pub harbinger_version: String,
    /// Failure horizon (ms).
    pub horizon_ms: i64,
    /// Training dataset.
    pub dataset: String,
    /// Hosts in the training dataset.
    pub hosts: usize,
    /// The learner kept (`logistic` or `random_forest`).
    pub learner: String,
    /// Held-back PR-AUC of the kept learner.
    pub pr_auc: Option<f64>,
    /// Held-back event recall at the chosen threshold.
    pub recall: Option<f64>,
    /// Held-back event precision at the chosen threshold.
    pub precision: Option<f64>,
    /// Held-back false alarms per host-day at the chosen threshold.
    pub false_alarms_per_host_day: Option<f64>,
    /// The version's directory.
    pub path: PathBuf,
}

impl VersionInfo {
    fn of(name: &str, m: &Model, current: bool, path: PathBuf) -> Self {
        let h = &m.card.holdout_summary;
        let num = |k: &str| h.get(k).and_then(serde_json::Value::as_f64);
        VersionInfo {
            name: name.to_string(),
            version: m.version.clone(),
            current,
            trained_at_ms: m.trained_at_ms,
            harbinger_version: m.harbinger_version.clone(),
            horizon_ms: m.horizon_ms,
            dataset: m.card.dataset.clone(),
            hosts: m.card.hosts,
            learner: m.learner.name().to_string(),
            pr_auc: m.card.learners.iter().find(|l| l.learner == m.learner.name()).map(|l| l.pr_auc),
            recall: num("recall"),
            precision: num("precision"),
            false_alarms_per_host_day: num("false_alarms_per_host_day"),
            path,
        }
    }
}

/// Checks that `value` can be a name or version: one path component that is not hidden,
/// special or one of the registry's own files.
///
/// # Errors
/// [`RegistryError::InvalidName`] saying why.
pub fn check_name(what: &'static str, value: &str) -> Result<(), RegistryError> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value.len() > MAX_NAME_LEN {
        "it is longer than 128 bytes"
    } else if value.starts_with('.') {
        "it starts with '.' (hidden names, '.' and '..' are reserved)"
    } else if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        "only ASCII letters, digits, '-', '_' and '.' are allowed (no path separators or spaces)"
    } else if [CURRENT_FILE, HISTORY_FILE, LOCK_FILE].contains(&value) {
        "it is the name of one of the registry's own files"
    } else {
        return Ok(());
    };
    Err(RegistryError::InvalidName { what, value: value.to_string(), reason })
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |error| RegistryError::Io { op, path, error }
}

/// Makes renames and new entries in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))
}

/// Writes `path` whole or not at all: a temporary file in the same directory, fsynced,
/// renamed over `path`, and the directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!("{TMP}{file}-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io("write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    sync_dir(dir)
}

/// Reads a `CURRENT` file: `None` when there is none.
fn read_current_file(path: &Path) -> Result<Option<String>, RegistryError> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    let corrupt = |reason: String| RegistryError::CorruptCurrent { path: path.to_path_buf(), reason };
    let text = String::from_utf8(text).map_err(|_| corrupt("it is not UTF-8 text".into()))?;
    let version = text.strip_suffix('\n').unwrap_or(&text);
    check_name("version", version).map_err(|e| corrupt(format!("it does not hold one version: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.join(version).join(MODEL_FILE).is_file() {
        return Err(corrupt(format!("it names version {version}, which has no {MODEL_FILE} in {}", dir.display())));
    }
    Ok(Some(version.to_string()))
}

/// The artifact directory `dir` stands for: `dir` itself when it holds `model.json` (or
/// holds neither `model.json` nor `CURRENT`, so that loading names the missing file), or
/// the directory of the version `dir/CURRENT` names when `dir` is a registry entry.
///
/// # Errors
/// `CURRENT` is unreadable or names no published version.
pub fn artifact_dir(dir: &Path) -> Result<PathBuf, RegistryError> {
    if dir.join(MODEL_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    match read_current_file(&dir.join(CURRENT_FILE))? {
        Some(v) => Ok(dir.join(v)),
        None => Ok(dir.to_path_buf()),
    }
}

/// Reads and checks `dir/model.json`: its bytes and the model.
fn read_model(dir: &Path) -> Result<(Vec<u8>, Model), RegistryError> {
    let path = dir.join(MODEL_FILE);
    let not_a_model = |reason: String| RegistryError::NotAModel { path: dir.to_path_buf(), reason };
    let bytes = std::fs::read(&path).map_err(|e| not_a_model(format!("cannot read {}: {e}", path.display())))?;
    let model = Model::parse_bytes(path, &bytes).map_err(|e: ModelError| not_a_model(e.to_string()))?;
    Ok((bytes, model))
}

/// Checks that `dir` holds a model this harbinger loads.
fn load_checked(dir: &Path) -> Result<Model, RegistryError> {
    read_model(dir).map(|(_, m)| m)
}

fn parse_history(path: &Path, text: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
    let mut out = Vec::new();
    if !text.is_empty() && !text.ends_with('\n') {
        let line = text.lines().count();
        return Err(RegistryError::CorruptHistory { path: path.to_path_buf(), line, reason: "the last line is cut short".into() });
    }
    for (i, line) in text.lines().enumerate() {
        let corrupt = |reason: String| RegistryError::CorruptHistory { path: path.to_path_buf(), line: i + 1, reason };
        let fields: Vec<&str> = line.split(' ').collect();
        let &[at, version, previous, change] = fields.as_slice() else {
            return Err(corrupt(format!("expected 4 fields (time version previous change), found {}", fields.len())));
        };
        let at_ms = harbinger_core::time::parse_timestamp_ms(at).map_err(|e| corrupt(e.to_string()))?;
        check_name("version", version).map_err(|e| corrupt(e.to_string()))?;
        let previous = match previous {
            "-" => None,
            p => {
                check_name("version", p).map_err(|e| corrupt(e.to_string()))?;
                Some(p.to_string())
            }
        };
        let change = match change {
            "publish" => Change::Publish,
            "promote" => Change::Promote,
            "rollback" => Change::Rollback,
            other => return Err(corrupt(format!("change {other:?} is not publish, promote or rollback"))),
        };
        out.push(HistoryEntry { at_ms, version: version.to_string(), previous, change });
    }
    Ok(out)
}

/// The promotions a rollback can return to, oldest first: publish and promote push (once
/// when repeated), rollback pops back to its target.
fn promotion_stack(history: &[HistoryEntry]) -> Vec<&str> {
    let mut stack: Vec<&str> = Vec::new();
    for h in history {
        match h.change {
            Change::Publish | Change::Promote => {
                if stack.last() != Some(&h.version.as_str()) {
                    stack.push(&h.version);
                }
            }
            Change::Rollback => {
                stack.pop();
                if stack.last() != Some(&h.version.as_str()) {
                    stack.push(&h.version);
                }
            }
        }
    }
    stack
}

fn time_text(ms: i64) -> String {
    harbinger_core::time::format_ms(ms)
}

/// A model registry rooted at a directory. Cheap to clone; holds no open files.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    /// Stamps `HISTORY` lines; the wall clock unless a test injects another.
    clock: Arc<dyn Clock>,
}

impl Registry {
    /// A registry in `root`. Nothing is created until the first publish; a missing root is
    /// an empty registry.
    ///
    /// # Errors
    /// `root` exists and is not a directory, or cannot be examined.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(m) if !m.is_dir() => return Err(RegistryError::NotADirectory { path: root }),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("examine", &root)(e)),
        }
        Ok(Registry { root, clock: Arc::new(SystemClock) })
    }

    /// The same registry with `HISTORY` stamped by `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entry directory of `name` (`<root>/<name>`), which `serve` can load; not checked
    /// to exist.
    ///
    /// # Errors
    /// An invalid name.
    pub fn entry_dir(&self, name: &str) -> Result<PathBuf, RegistryError> {
        check_name("name", name)?;
        Ok(self.root.join(name))
    }

    /// Names with a current version, sorted.
    ///
    /// # Errors
    /// The root cannot be listed.
    pub fn names(&self) -> Result<Vec<String>, RegistryError> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(io("list", &self.root))?;
            let Ok(name) = e.file_name().into_string() else { continue };
            if check_name("name", &name).is_ok() && e.path().join(CURRENT_FILE).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The entry directory of an existing name.
    fn entry(&self, name: &str) -> Result<PathBuf, RegistryError> {
        let dir = self.entry_dir(name)?;
        if dir.join(CURRENT_FILE).is_file() {
            Ok(dir)
        } else {
            Err(RegistryError::UnknownName { registry: self.root.clone(), name: name.to_string() })
        }
    }

    /// The current version of `name`.
    ///
    /// # Errors
    /// Unknown name, or a `CURRENT` that names no published version.
    pub fn current(&self, name: &str) -> Result<String, RegistryError> {
        let dir = self.entry_dir(name)?;
        read_current_file(&dir.join(CURRENT_FILE))?
            .ok_or_else(|| RegistryError::UnknownName { registry: self.root.clone(), name: name.to_string() })
    }

    /// The artifact directory of the current version of `name`.
    ///
    /// # Errors
    /// As [`Registry::current`].
    pub fn resolve(&self, name: &str) -> Result<PathBuf, RegistryError> {
        let v = self.current(name)?;
        Ok(self.root.join(name).join(v))
    }

    /// The artifact directory of `name` `version`.
    ///
    /// # Errors
    /// Invalid or unknown name or version.
    pub fn version_dir(&self, name: &str, version: &str) -> Result<PathBuf, RegistryError> {
        let entry = self.entry(name)?;
        check_name("version", version)?;
        let dir = entry.join(version);
        if dir.join(MODEL_FILE).is_file() {
            Ok(dir)
        } else {
            Err(RegistryError::UnknownVersion { registry: self.root.clone(), name: name.to_string(), version: version.to_string() })
        }
    }

    fn load_version(&self, name: &str, version: &str) -> Result<(Model, PathBuf), RegistryError> {
        let dir = self.version_dir(name, version)?;
        let m = load_checked(&dir)?;
        Ok((m, dir))
    }

    /// One version with its model card facts.
    ///
    /// # Errors
    /// Unknown name or version, or an artifact that no longer loads.
    pub fn info(&self, name: &str, version: &str) -> Result<VersionInfo, RegistryError> {
        let current = self.current(name)?;
        let (m, dir) = self.load_version(name, version)?;
        Ok(VersionInfo::of(name, &m, current == version, dir))
    }

    /// Every version of `name` with its model card facts, oldest first (by training time,
    /// then version).
    ///
    /// # Errors
    /// Unknown name, a corrupt `CURRENT`, or a version that no longer loads (named).
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        let current = self.current(name)?;
        let entry = self.root.join(name);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&entry).map_err(io("list", &entry))? {
            let e = e.map_err(io("list", &entry))?;
            let Ok(version) = e.file_name().into_string() else { continue };
            if check_name("version", &version).is_err() || !e.path().is_dir() {
                continue;
            }
            let (m, dir) = self.load_version(name, &version)?;
            out.push(VersionInfo::of(name, &m, current == version, dir));
        }
        out.sort_by(|a, b| a.trained_at_ms.cmp(&b.trained_at_ms).then_with(|| a.version.cmp(&b.version)));
        Ok(out)
    }

    /// The changes of `CURRENT` of `name`, oldest first.
    ///
    /// # Errors
    /// Unknown name, an unreadable or corrupt `HISTORY`.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        let entry = self.entry(name)?;
        Self::read_history(&entry)
    }

    fn read_history(entry: &Path) -> Result<Vec<HistoryEntry>, RegistryError> {
        let path = entry.join(HISTORY_FILE);
        match std::fs::read(&path) {
            Ok(b) => {
                let text = String::from_utf8(b).map_err(|_| RegistryError::CorruptHistory {
                    path: path.clone(),
                    line: 0,
                    reason: "it is not UTF-8 text".into(),
                })?;
                parse_history(&path, &text)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Takes the registry's write lock (blocking until other writers are done); released
    /// when the returned file is dropped.
    fn lock(&self) -> Result<File, RegistryError> {
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let path = self.root.join(LOCK_FILE);
        let f = File::options().create(true).truncate(false).write(true).open(&path).map_err(io("open", &path))?;
        f.lock().map_err(io("lock", &path))?;
        Ok(f)
    }

    /// Removes what a crashed writer left in `entry`. Only called with the lock held, when
    /// no other writer can be using them.
    fn clean(entry: &Path) -> Result<(), RegistryError> {
        for e in std::fs::read_dir(entry).map_err(io("list", entry))? {
            let e = e.map_err(io("list", entry))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(STAGING) || name.starts_with(REMOVING) {
                std::fs::remove_dir_all(e.path()).map_err(io("remove", &e.path()))?;
            } else if name.starts_with(TMP) {
                std::fs::remove_file(e.path()).map_err(io("remove", &e.path()))?;
            }
        }
        Ok(())
    }

    /// Records a change in `HISTORY`, then moves `CURRENT`. Called with the lock held.
    fn set_current(&self, entry: &Path, version: &str, previous: Option<&str>, change: Change) -> Result<(), RegistryError> {
        let line = format!("{} {version} {} {}\n", time_text(self.clock.now_ms()), previous.unwrap_or("-"), change.as_str());
        let path = entry.join(HISTORY_FILE);
        let mut f = File::options().create(true).append(true).open(&path).map_err(io("open", &path))?;
        f.write_all(line.as_bytes()).and_then(|()| f.sync_all()).map_err(io("append to", &path))?;
        drop(f);
        sync_dir(entry)?;
        write_atomic(&entry.join(CURRENT_FILE), format!("{version}\n").as_bytes())
    }

    /// Publishes the artifact in `artifact` (a directory with `model.json`, as `harbinger
    /// train` writes it) under `name`, as the model's own version. The model is loaded
    /// first, so nothing unloadable gets in. The first version of a name becomes current;
    /// later ones wait for [`Registry::promote`].
    ///
    /// Publishing a version that exists with identical `model.json` bytes does nothing.
    /// `MODEL_CARD.md` is copied as is (rendered from the model if absent) and not compared:
    /// it is derived from `model.json`.
    ///
    /// # Errors
    /// Invalid name; `artifact` is not a loadable model; its version is already published
    /// with other bytes ([`RegistryError::Conflict`]); I/O errors naming the path.
    pub fn publish(&self, name: &str, artifact: &Path) -> Result<Published, RegistryError> {
        check_name("name", name)?;
        let (json, model) = read_model(artifact)?;
        let version = model.version.clone();
        check_name("version", &version)?;
        let card_path = artifact.join(CARD_FILE);
        let card = match std::fs::read(&card_path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => harbinger_model::card::render(&model).into_bytes(),
            Err(e) => return Err(io("read", &card_path)(e)),
        };

        let _lock = self.lock()?;
        let entry = self.root.join(name);
        if !entry.is_dir() {
            std::fs::create_dir(&entry).map_err(io("create", &entry))?;
            sync_dir(&self.root)?;
        }
        Self::clean(&entry)?;
        let dest = entry.join(&version);
        let added = if dest.exists() {
            let existing = dest.join(MODEL_FILE);
            let old = std::fs::read(&existing).map_err(io("read", &existing))?;
            if old != json {
                return Err(RegistryError::Conflict { registry: self.root.clone(), name: name.to_string(), version, existing });
            }
            false
        } else {
            let staging = entry.join(format!("{STAGING}{version}"));
            std::fs::create_dir(&staging).map_err(io("create", &staging))?;
            for (file, bytes) in [(MODEL_FILE, &json), (CARD_FILE, &card)] {
                let p = staging.join(file);
                let mut f = File::create(&p).map_err(io("create", &p))?;
                f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io("write", &p))?;
            }
            sync_dir(&staging)?;
            std::fs::rename(&staging, &dest).map_err(io("rename into place", &dest))?;
            sync_dir(&entry)?;
            true
        };
        // No CURRENT yet: the name's first version (or a first publish that crashed after
        // placing the version).
        let made_current = match read_current_file(&entry.join(CURRENT_FILE)) {
            Ok(Some(_)) => false,
            Ok(None) => {
                self.set_current(&entry, &version, None, Change::Publish)?;
                true
            }
            Err(e) => return Err(e),
        };
        tracing::info!(registry = %self.root.display(), name, version, added, made_current, "model published");
        Ok(Published { version, added, made_current, path: dest })
    }

    /// Makes `version` the current version of `name`. Promoting the current version again
    /// does nothing. A corrupt `CURRENT` is replaced (this is how it is repaired).
    ///
    /// # Errors
    /// Unknown name or version, a version that no longer loads, I/O errors.
    pub fn promote(&self, name: &str, version: &str) -> Result<Promotion, RegistryError> {
        check_name("name", name)?;
        check_name("version", version)?;
        let _lock = self.lock()?;
        let entry = self.root.join(name);
        if !entry.join(CURRENT_FILE).is_file() && !entry.join(version).is_dir() {
            return Err(RegistryError::UnknownName { registry: self.root.clone(), name: name.to_string() });
        }
        let dir = entry.join(version);
        if !dir.join(MODEL_FILE).is_file() {
            return Err(RegistryError::UnknownVersion {
                registry: self.root.clone(),
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        load_checked(&dir)?;
        let from = read_current_file(&entry.join(CURRENT_FILE)).ok().flatten();
        let history = Self::read_history(&entry)?;
        if from.as_deref() == Some(version) && promotion_stack(&history).last() == Some(&version) {
            return Ok(Promotion { from, to: version.to_string(), changed: false });
        }
        Self::clean(&entry)?;
        self.set_current(&entry, version, from.as_deref(), Change::Promote)?;
        tracing::info!(registry = %self.root.display(), name, version, from = from.as_deref().unwrap_or("-"), "model promoted");
        Ok(Promotion { from, to: version.to_string(), changed: true })
    }

    /// Makes the version promoted before the current one current again (from `HISTORY`);
    /// repeated rollbacks walk further back.
    ///
    /// # Errors
    /// Unknown name; corrupt `CURRENT` or `HISTORY`; the two disagree; nothing to go back
    /// to; the version to go back to was removed or no longer loads.
    pub fn rollback(&self, name: &str) -> Result<Promotion, RegistryError> {
        check_name("name", name)?;
        let _lock = self.lock()?;
        let entry = self.entry(name)?;
        let current_path = entry.join(CURRENT_FILE);
        let Some(current) = read_current_file(&current_path)? else {
            return Err(RegistryError::UnknownName { registry: self.root.clone(), name: name.to_string() });
        };
        let history = Self::read_history(&entry)?;
        let stack = promotion_stack(&history);
        match stack.last() {
            Some(&top) if top == current => {}
            recorded => {
                return Err(RegistryError::OutOfStep {
                    path: current_path,
                    current,
                    recorded: recorded.map_or_else(|| "nothing".to_string(), |s| (*s).to_string()),
                });
            }
        }
        let Some(&target) = stack.len().checked_sub(2).and_then(|i| stack.get(i)) else {
            return Err(RegistryError::NoRollback { registry: self.root.clone(), name: name.to_string(), current });
        };
        let dir = entry.join(target);
        if !dir.join(MODEL_FILE).is_file() {
            return Err(RegistryError::RollbackTargetRemoved {
                registry: self.root.clone(),
                name: name.to_string(),
                version: target.to_string(),
            });
        }
        load_checked(&dir)?;
        let target = target.to_string();
        Self::clean(&entry)?;
        self.set_current(&entry, &target, Some(&current), Change::Rollback)?;
        tracing::info!(registry = %self.root.display(), name, version = %target, from = %current, "model rolled back");
        Ok(Promotion { from: Some(current), to: target, changed: true })
    }

    /// Deletes a version that is not current.
    ///
    /// # Errors
    /// Unknown name or version; the version is current (or `CURRENT` is corrupt, so that
    /// cannot be ruled out); I/O errors.
    pub fn remove(&self, name: &str, version: &str) -> Result<(), RegistryError> {
        check_name("name", name)?;
        check_name("version", version)?;
        let _lock = self.lock()?;
        let entry = self.entry(name)?;
        let dir = entry.join(version);
        if !dir.is_dir() {
            return Err(RegistryError::UnknownVersion {
                registry: self.root.clone(),
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        if read_current_file(&entry.join(CURRENT_FILE))?.as_deref() == Some(version) {
            return Err(RegistryError::RemoveCurrent { registry: self.root.clone(), name: name.to_string(), version: version.to_string() });
        }
        Self::clean(&entry)?;
        // Renamed away first, so readers never see a half-deleted version.
        let doomed = entry.join(format!("{REMOVING}{version}"));
        std::fs::rename(&dir, &doomed).map_err(io("rename", &dir))?;
        sync_dir(&entry)?;
        std::fs::remove_dir_all(&doomed).map_err(io("remove", &doomed))?;
        tracing::info!(registry = %self.root.display(), name, version, "model version removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbinger_core::ManualClock;

    /// The shipped default model's `model.json`, as JSON to vary.
    fn shipped() -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default").join(MODEL_FILE);
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the shipped model is in the repository")).expect("json")
    }

    /// Writes an artifact directory holding the shipped model with `version`, trained at
    /// `trained_at_ms`.
    fn artifact(dir: &Path, version: &str, trained_at_ms: i64) -> PathBuf {
        let mut m = shipped();
        m["version"] = version.into();
        m["trained_at_ms"] = trained_at_ms.into();
        let d = dir.join(format!("art-{}-{trained_at_ms}", version.replace(['/', '.'], "_")));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(MODEL_FILE), serde_json::to_string(&m).expect("json")).expect("write");
        std::fs::write(d.join(CARD_FILE), format!("# card {version}\n")).expect("write");
        d
    }

    fn registry(dir: &Path) -> Registry {
        Registry::open(dir.join("reg")).expect("open").with_clock(Arc::new(ManualClock::new(1_700_000_000_000)))
    }

    fn versions(r: &Registry, name: &str) -> Vec<(String, bool)> {
        r.versions(name).expect("versions").into_iter().map(|v| (v.version, v.current)).collect()
    }

    #[test]
    fn publish_lists_and_the_first_version_becomes_current() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        assert_eq!(r.names().expect("names"), Vec::<String>::new(), "a missing root is an empty registry");
        let a = artifact(tmp.path(), "v1", 1_000);
        let b = artifact(tmp.path(), "v2", 2_000);
        let p = r.publish("failure", &a).expect("publish v1");
        assert_eq!((p.version.as_str(), p.added, p.made_current), ("v1", true, true));
        let p = r.publish("failure", &b).expect("publish v2");
        assert_eq!((p.version.as_str(), p.added, p.made_current), ("v2", true, false));
        assert_eq!(r.names().expect("names"), ["failure"]);
        assert_eq!(versions(&r, "failure"), [("v1".to_string(), true), ("v2".to_string(), false)]);
        assert_eq!(r.current("failure").expect("current"), "v1");
        assert_eq!(r.resolve("failure").expect("resolve"), tmp.path().join("reg/failure/v1"));
        let info = r.info("failure", "v2").expect("info");
        assert_eq!(
            (info.trained_at_ms, info.learner.as_str(), info.current),
            (2_000, shipped()["learner"]["kind"].as_str().expect("kind"), false)
        );
        assert!(info.hosts > 0 && !info.dataset.is_empty(), "card facts: {info:?}");
        assert!(info.pr_auc.is_some_and(|x| (0.0..=1.0).contains(&x)), "{info:?}");
        let card = std::fs::read_to_string(info.path.join(CARD_FILE)).expect("card copied");
        assert_eq!(card, "# card v2\n");
        let h = r.history("failure").expect("history");
        assert_eq!(h, [HistoryEntry { at_ms: 1_700_000_000_000, version: "v1".into(), previous: None, change: Change::Publish }]);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("reg/failure/HISTORY")).expect("history file"),
            "2023-11-14T22:13:20.000Z v1 - publish\n"
        );
    }

    #[test]
    fn publishing_the_same_bytes_again_is_a_no_op_and_other_bytes_conflict() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        let a = artifact(tmp.path(), "v1", 1_000);
        r.publish("failure", &a).expect("publish");
        let history = std::fs::read(tmp.path().join("reg/failure/HISTORY")).expect("history");
        let again = r.publish("failure", &a).expect("publish again");
        assert_eq!((again.added, again.made_current), (false, false));
        assert_eq!(std::fs::read(tmp.path().join("reg/failure/HISTORY")).expect("history"), history, "nothing recorded");

        let other = artifact(tmp.path(), "v1", 9_999);
        let e = r.publish("failure", &other).expect_err("same version, other bytes");
        assert!(matches!(&e, RegistryError::Conflict { name, version, .. } if name == "failure" && version == "v1"), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("reg") && msg.contains("failure v1") && msg.contains("different contents"), "{msg}");
        assert_eq!(r.info("failure", "v1").expect("info").trained_at_ms, 1_000, "the published artifact is unchanged");
    }

    #[test]
    fn promote_and_rollback_walk_the_history_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let r = Registry::open(tmp.path().join("reg")).expect("open").with_clock(clock.clone());
        for (v, t) in [("v1", 1), ("v2", 2), ("v3", 3)] {
            r.publish("failure", &artifact(tmp.path(), v, t)).expect("publish");
        }
        clock.advance(1_000);
        let p = r.promote("failure", "v2").expect("promote v2");
        assert_eq!(p, Promotion { from: Some("v1".into()), to: "v2".into(), changed: true });
        clock.advance(1_000);
        r.promote("failure", "v3").expect("promote v3");
        let same = r.promote("failure", "v3").expect("promote v3 again");
        assert!(!same.changed, "promoting the current version records nothing");
        assert_eq!(r.current("failure").expect("current"), "v3");

        assert_eq!(r.rollback("failure").expect("rollback").to, "v2");
        assert_eq!(r.current("failure").expect("current"), "v2");
        let back = r.rollback("failure").expect("rollback again");
        assert_eq!(back, Promotion { from: Some("v2".into()), to: "v1".into(), changed: true });
        let e = r.rollback("failure").expect_err("nothing before v1");
        assert!(matches!(&e, RegistryError::NoRollback { current, .. } if current == "v1"), "{e:?}");
        assert_eq!(r.current("failure").expect("current"), "v1", "a refused rollback changes nothing");

        let changes: Vec<(String, Option<String>, Change)> =
            r.history("failure").expect("history").into_iter().map(|h| (h.version, h.previous, h.change)).collect();
        let s = |x: &str| x.to_string();
        assert_eq!(
            changes,
            [
                (s("v1"), None, Change::Publish),
                (s("v2"), Some(s("v1")), Change::Promote),
                (s("v3"), Some(s("v2")), Change::Promote),
                (s("v2"), Some(s("v3")), Change::Rollback),
                (s("v1"), Some(s("v2")), Change::Rollback),
            ]
        );
        let e = r.promote("failure", "v9").expect_err("unknown version");
        assert!(matches!(&e, RegistryError::UnknownVersion { version, .. } if version == "v9"), "{e:?}");
        assert!(e.to_string().contains("\"failure\"") && e.to_string().contains("\"v9\""), "{e}");
        let e = r.rollback("nope").expect_err("unknown name");
        assert!(matches!(&e, RegistryError::UnknownName { name, .. } if name == "nope"), "{e:?}");
    }

    #[test]
    fn remove_refuses_the_current_version_and_rollback_names_a_removed_target() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        r.publish("failure", &artifact(tmp.path(), "v1", 1)).expect("publish");
        r.publish("failure", &artifact(tmp.path(), "v2", 2)).expect("publish");
        let e = r.remove("failure", "v1").expect_err("current");
        assert!(matches!(&e, RegistryError::RemoveCurrent { version, .. } if version == "v1"), "{e:?}");
        assert!(e.to_string().contains("promote another first"), "{e}");
        r.promote("failure", "v2").expect("promote");
        r.remove("failure", "v1").expect("v1 is no longer current");
        assert_eq!(versions(&r, "failure"), [("v2".to_string(), true)]);
        assert!(!tmp.path().join("reg/failure/v1").exists());
        let e = r.remove("failure", "v1").expect_err("gone");
        assert!(matches!(e, RegistryError::UnknownVersion { .. }), "{e:?}");
        let e = r.rollback("failure").expect_err("v1 was removed");
        assert!(matches!(&e, RegistryError::RollbackTargetRemoved { version, .. } if version == "v1"), "{e:?}");
        assert_eq!(r.current("failure").expect("current"), "v2");
    }

    #[test]
    fn invalid_names_are_refused_before_touching_the_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        let a = artifact(tmp.path(), "v1", 1);
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in ["", ".", "..", "../up", "a/b", "a\\b", ".hidden", "with space", "CURRENT", "LOCK", long.as_str(), "é"] {
            let e = r.publish(bad, &a).expect_err(bad);
            assert!(matches!(&e, RegistryError::InvalidName { what: "name", value, .. } if value == bad), "{bad:?}: {e:?}");
            assert!(matches!(r.promote(bad, "v1"), Err(RegistryError::InvalidName { .. })), "{bad:?}");
            assert!(matches!(r.remove("failure", bad), Err(RegistryError::InvalidName { .. })), "{bad:?}");
        }
        assert!(!tmp.path().join("reg").exists(), "nothing was created");
        // A model whose own version is not a safe directory name.
        let evil = artifact(tmp.path(), "../../escape", 1);
        let e = r.publish("failure", &evil).expect_err("version with separators");
        assert!(matches!(&e, RegistryError::InvalidName { what: "version", .. }), "{e:?}");
        assert_eq!(r.names().expect("names"), Vec::<String>::new());
    }

    #[test]
    fn publishing_something_that_is_not_a_model_names_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        let e = r.publish("failure", &empty).expect_err("no model.json");
        assert!(matches!(e, RegistryError::NotAModel { .. }), "{e:?}");
        assert!(e.to_string().contains("empty") && e.to_string().contains(MODEL_FILE), "{e}");
        let bad = tmp.path().join("bad");
        std::fs::create_dir(&bad).expect("mkdir");
        std::fs::write(bad.join(MODEL_FILE), b"{\"format\": 1").expect("write");
        let e = r.publish("failure", &bad).expect_err("corrupt");
        assert!(e.to_string().contains("corrupt") && e.to_string().contains("bad"), "{e}");
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(Registry::open(&file), Err(RegistryError::NotADirectory { .. })));
    }

    #[test]
    fn a_corrupt_current_or_history_is_named_and_promote_repairs_current() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        r.publish("failure", &artifact(tmp.path(), "v1", 1)).expect("publish");
        r.publish("failure", &artifact(tmp.path(), "v2", 2)).expect("publish");
        let current = tmp.path().join("reg/failure/CURRENT");
        for (text, why) in [("v7\n", "no model.json"), ("../v1\n", "does not hold one version"), ("v1\nv2\n", "does not hold one version")]
        {
            std::fs::write(&current, text).expect("write");
            let e = r.current("failure").expect_err(text);
            assert!(matches!(e, RegistryError::CorruptCurrent { .. }), "{text:?}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains("failure/CURRENT") && msg.contains(why), "{msg}");
            let e = crate::load_resolved(&tmp.path().join("reg/failure")).expect_err("serve cannot resolve it");
            assert!(e.to_string().contains("failure/CURRENT"), "{e}");
            assert!(matches!(r.versions("failure"), Err(RegistryError::CorruptCurrent { .. })));
            assert!(matches!(r.remove("failure", "v2"), Err(RegistryError::CorruptCurrent { .. })), "no removal while unsure");
        }
        r.promote("failure", "v2").expect("promote repairs CURRENT");
        assert_eq!(r.current("failure").expect("current"), "v2");

        let history = tmp.path().join("reg/failure/HISTORY");
        let good = std::fs::read_to_string(&history).expect("read");
        std::fs::write(&history, format!("{good}yesterday v1 - promote\n")).expect("write");
        let e = r.rollback("failure").expect_err("corrupt history");
        assert!(matches!(&e, RegistryError::CorruptHistory { line: 3, .. }), "{e:?}");
        assert!(e.to_string().contains("HISTORY line 3") && e.to_string().contains("yesterday"), "{e}");
        std::fs::write(&history, &good[..good.len() - 3]).expect("write");
        assert!(matches!(r.history("failure"), Err(RegistryError::CorruptHistory { line: 2, .. })), "cut short");
        std::fs::write(&history, "").expect("write");
        let e = r.rollback("failure").expect_err("CURRENT not in HISTORY");
        assert!(matches!(&e, RegistryError::OutOfStep { current, .. } if current == "v2"), "{e:?}");
    }

    #[test]
    fn load_resolved_follows_current_and_accepts_plain_artifacts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        let a = artifact(tmp.path(), "v1", 1);
        r.publish("failure", &a).expect("publish");
        r.publish("failure", &artifact(tmp.path(), "v2", 2)).expect("publish");
        let entry = r.entry_dir("failure").expect("name");
        assert_eq!(crate::load_resolved(&entry).expect("entry").version, "v1");
        r.promote("failure", "v2").expect("promote");
        assert_eq!(crate::load_resolved(&entry).expect("entry").version, "v2", "resolved at every load");
        assert_eq!(crate::load_resolved(&a).expect("plain artifact").version, "v1");
        let e = crate::load_resolved(&tmp.path().join("nowhere")).expect_err("neither");
        assert!(matches!(e, crate::LoadError::Io { .. }) && e.to_string().contains("nowhere/model.json"), "{e}");
    }

    #[test]
    fn concurrent_publishers_and_promoters_leave_a_consistent_registry() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let arts: Vec<PathBuf> = (0..8).map(|i| artifact(tmp.path(), &format!("v{i}"), i)).collect();
        let root = tmp.path().join("reg");
        std::thread::scope(|s| {
            for t in 0..4 {
                let arts = &arts;
                let root = &root;
                s.spawn(move || {
                    // Each its own Registry value (own LOCK file handle), as separate processes would.
                    let r = Registry::open(root).expect("open");
                    for k in 0..arts.len() {
                        let a = &arts[(k + t * 3) % arts.len()];
                        r.publish("failure", a).expect("concurrent publish");
                        if k % 3 == 0 {
                            let v = format!("v{}", (k + t) % arts.len());
                            match r.promote("failure", &v) {
                                Ok(_) | Err(RegistryError::UnknownVersion { .. }) => {}
                                Err(e) => panic!("promote {v}: {e}"),
                            }
                        }
                    }
                });
            }
        });
        let r = Registry::open(&root).expect("open");
        let vs = r.versions("failure").expect("versions");
        assert_eq!(vs.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]);
        assert_eq!(vs.iter().filter(|v| v.current).count(), 1);
        let history = r.history("failure").expect("every HISTORY line is whole");
        assert_eq!(history.iter().filter(|h| h.change == Change::Publish).count(), 1, "exactly one first publish");
        assert_eq!(history.last().map(|h| h.version.clone()), Some(r.current("failure").expect("current")));
        for v in &vs {
            let json = std::fs::read(v.path.join(MODEL_FILE)).expect("read");
            let src = std::fs::read(arts[v.trained_at_ms as usize].join(MODEL_FILE)).expect("read");
            assert!(json == src, "{} holds exactly what was published", v.version);
        }
        let leftovers: Vec<String> = std::fs::read_dir(root.join("failure"))
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "no staging leftovers: {leftovers:?}");
    }

    #[test]
    fn a_crashed_writer_s_leftovers_are_cleaned_by_the_next_publish() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = registry(tmp.path());
        r.publish("failure", &artifact(tmp.path(), "v1", 1)).expect("publish");
        let entry = tmp.path().join("reg/failure");
        std::fs::create_dir(entry.join(".staging-v2")).expect("mkdir");
        std::fs::write(entry.join(".staging-v2/model.json"), "half").expect("write");
        std::fs::write(entry.join(".tmp-CURRENT-1"), "v").expect("write");
        assert_eq!(versions(&r, "failure"), [("v1".to_string(), true)], "leftovers are not versions");
        r.publish("failure", &artifact(tmp.path(), "v2", 2)).expect("publish");
        assert!(!entry.join(".staging-v2").exists() && !entry.join(".tmp-CURRENT-1").exists());
        assert_eq!(versions(&r, "failure").len(), 2);
    }
}
