//! Resources that a change touches: read their state, write a state (apply a change or
//! restore a snapshot), and make a staging copy to validate a change on before it goes
//! live. Used by change safety (`harbinger-change`): `whatif`, `apply`, `rollback`.
//!
//! A resource's state is JSON; which parts a change may touch is its kind's *change
//! profile* ([`ResourceDriver::profile`]), and every read and write covers exactly those
//! parts, so a snapshot taken by reading and restored by writing puts back exactly what a
//! change could have moved.
//!
//! Kinds (the `kind` key of a template's resource, parsed by [`ResourceSpec`]):
//! - [`file`](mod@file): a configuration file (JSON, YAML or TOML) or a directory of them, on disk;
//!   staged in a scratch copy.
//! - [`redis`](mod@redis): keys and `CONFIG SET` parameters of a real Redis server; staged
//!   on a staging server (given, or started for the change).
//! - [`exec`](mod@exec): commands that read, apply and restore state, for anything else.
//!
//! Start with [`driver_for`].

pub mod exec;
pub mod file;
pub mod redis;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

/// What went wrong with a resource. Every message names the resource and what was done.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The resource's spec is wrong (a missing or unknown key, a bad value).
    #[error("resource {resource}: {detail}")]
    Spec {
        /// The resource id.
        resource: String,
        /// What is wrong.
        detail: String,
    },
    /// The resource could not be reached or read or written.
    #[error("resource {resource}: {op}: {detail}")]
    Io {
        /// The resource id.
        resource: String,
        /// `read`, `write`, `stage`.
        op: &'static str,
        /// What failed, with the path, address or command.
        detail: String,
    },
    /// A state to write does not fit the kind (e.g. a non-object where keys are expected,
    /// a path outside the change profile).
    #[error("resource {resource}: invalid state: {detail}")]
    State {
        /// The resource id.
        resource: String,
        /// What is wrong.
        detail: String,
    },
}

/// A staging copy of a resource, holding a changed state. Dropping it removes the copy
/// (scratch files deleted, a staging server started for it stopped).
#[derive(Debug)]
pub struct Staged {
    /// Where the copy is: a path for files, `host:port` for Redis, what the `stage` command
    /// printed for exec. Validation tests see it as `{staged:<resource id>}`.
    pub location: String,
    /// Whatever must live as long as the copy (a temporary directory, a child process).
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for dyn ResourceDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.kind(), self.describe())
    }
}

/// A real resource of some kind.
#[async_trait]
pub trait ResourceDriver: Send + Sync {
    /// The kind: `file`, `redis`, `exec`.
    fn kind(&self) -> &'static str;
    /// Where it is, for messages (a path, `host:port`, the read command).
    fn describe(&self) -> String;
    /// The JSON pointers into the state that a change of this resource may touch. A state
    /// read has exactly these top-level parts; an update-stack path outside them is refused.
    fn profile(&self) -> Vec<String>;
    /// Reads the current state (the profiled parts).
    async fn read(&self) -> Result<Value, ResourceError>;
    /// Makes the live resource hold `state` (the profiled parts): applies a change, or
    /// restores a snapshot. Parts of the profile absent from `state` are removed (a key
    /// deleted, a file removed from a directory).
    async fn write(&self, state: &Value) -> Result<(), ResourceError>;
    /// Makes a staging copy holding `state`, or `None` when this resource has no way to
    /// be staged (an exec resource without a `stage` command).
    async fn stage(&self, state: &Value) -> Result<Option<Staged>, ResourceError>;

    /// Where the live resource is, for validation tests (`{live:ID}`): a path for files,
    /// `host:port` for Redis. Default: [`ResourceDriver::describe`].
    fn location(&self) -> String {
        self.describe()
    }

    /// Restores a snapshot taken by [`read`](ResourceDriver::read): the same as
    /// [`write`](ResourceDriver::write), except for an exec resource with a `restore`
    /// command, which runs that instead of `apply`.
    async fn write_restore(&self, state: &Value) -> Result<(), ResourceError> {
        self.write(state).await
    }
    /// Widens what [`read`](ResourceDriver::read) covers to every part that `state` (a
    /// state about to be written) names, so that a snapshot read afterwards holds what
    /// writing `state` will overwrite. Call it with the desired state *before* taking the
    /// snapshot. Only Redis needs it (keys of `state.keys` not declared in the spec become
    /// managed); the other kinds ignore it.
    fn manage_state(&self, state: &Value) {
        let _unused = state;
    }
}

/// A template resource's kind and kind-specific keys (the template's other keys — `id`,
/// `depends_on`, `criticality`, `desired`, ... — are the change crate's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ResourceSpec {
    /// A configuration file or directory.
    File(file::FileSpec),
    /// Keys and parameters of a Redis server.
    Redis(redis::RedisSpec),
    /// Commands.
    Exec(exec::ExecSpec),
}

impl ResourceSpec {
    /// The kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            ResourceSpec::File(_) => "file",
            ResourceSpec::Redis(_) => "redis",
            ResourceSpec::Exec(_) => "exec",
        }
    }
}

/// The kinds [`ResourceSpec`] knows, for messages.
pub const KINDS: &[&str] = &["file", "redis", "exec"];

/// Builds the driver for resource `id` from its spec; relative paths are resolved against
/// `base_dir` (the template's directory).
///
/// # Errors
/// [`ResourceError::Spec`] for a spec that cannot be used (an empty command, a bad
/// address).
pub fn driver_for(id: &str, spec: &ResourceSpec, base_dir: &Path) -> Result<Arc<dyn ResourceDriver>, ResourceError> {
    Ok(match spec {
        ResourceSpec::File(s) => Arc::new(file::FileResource::new(id, s, base_dir)?),
        ResourceSpec::Redis(s) => Arc::new(redis::RedisResource::new(id, s)?),
        ResourceSpec::Exec(s) => Arc::new(exec::ExecResource::new(id, s, base_dir)?),
    })
}

/// Resolves `p` against `base` when relative.
pub(crate) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// Default bound on one resource operation (a read, a write, a command).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
