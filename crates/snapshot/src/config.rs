//! [`SnapshotConfig`]: where snapshots live, how long they are kept, how long a delta
//! chain may grow, and the change profiles.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Result, SnapshotError};
use crate::profile::Profiles;

/// Default for [`SnapshotConfig::max_chain`].
pub const DEFAULT_MAX_CHAIN: usize = 8;

/// Snapshot store settings. In TOML (the shape a `[snapshots]` section of the service
/// config would embed):
///
/// ```toml
/// dir = "/var/lib/harbinger/snapshots"
/// replica_dir = "/mnt/other-disk/harbinger-snapshots"   # optional
/// ttl_ms = 2592000000                                   # optional: 30 days
/// max_chain = 8
/// [profiles]
/// database = ["/config", "/schema_version", "/parameters"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Directory of the primary copy (created if missing).
    pub dir: PathBuf,
    /// Directory of the replica copy: every file written to `dir` is also written here,
    /// and a damaged or missing primary file is read from here and repaired. Best on
    /// another disk. `None`: no replica.
    #[serde(default)]
    pub replica_dir: Option<PathBuf>,
    /// Snapshots older than this many milliseconds are removed by
    /// [`SnapshotStore::expire`](crate::SnapshotStore::expire). `None`: kept forever.
    #[serde(default)]
    pub ttl_ms: Option<i64>,
    /// Most deltas stacked on one base: when a new snapshot would be delta number
    /// `max_chain + 1`, it is written as a full base instead. `0`: every snapshot is a
    /// base. Default 8.
    #[serde(default = "default_max_chain")]
    pub max_chain: usize,
    /// Which paths of the state each kind of resource's changes touch. Default (and the
    /// base a TOML table is laid over): [`Profiles::builtin`].
    #[serde(default)]
    pub profiles: Profiles,
    /// Whether each write is flushed to the disk (`fsync` of the file and its directory)
    /// before it counts as written. Default `true`. `false` keeps writes atomic (a
    /// temporary file renamed into place) but leaves flushing to the kernel: for
    /// snapshots that are a simulation's output (`harbinger replay`), not state to
    /// survive a power loss.
    #[serde(default = "durable_by_default")]
    pub durable: bool,
}

fn durable_by_default() -> bool {
    true
}

fn default_max_chain() -> usize {
    DEFAULT_MAX_CHAIN
}

impl SnapshotConfig {
    /// Defaults for everything but the directory: no replica, no TTL, `max_chain` 8,
    /// built-in profiles, durable writes.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            replica_dir: None,
            ttl_ms: None,
            max_chain: DEFAULT_MAX_CHAIN,
            profiles: Profiles::builtin(),
            durable: true,
        }
    }

    /// Checks what serde cannot: a non-negative TTL, a replica that is not the primary.
    ///
    /// # Errors
    /// [`SnapshotError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(ttl) = self.ttl_ms
            && ttl < 0
        {
            return Err(SnapshotError::Config { field: "ttl_ms", reason: format!("{ttl} is negative") });
        }
        if self.dir.as_os_str().is_empty() {
            return Err(SnapshotError::Config { field: "dir", reason: "is empty".to_owned() });
        }
        if let Some(r) = &self.replica_dir
            && (r == &self.dir || r.as_os_str().is_empty())
        {
            return Err(SnapshotError::Config {
                field: "replica_dir",
                reason: format!("{} must be a directory other than `dir`", r.display()),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialize_with_defaults() {
        let c: SnapshotConfig = serde_json::from_str(r#"{"dir": "/tmp/s"}"#).unwrap();
        assert_eq!(c, SnapshotConfig::new("/tmp/s"));
        let c: SnapshotConfig = serde_json::from_str(
            r#"{"dir": "/a", "replica_dir": "/b", "ttl_ms": 1000, "max_chain": 3, "profiles": {"queue": ["/depth"]}}"#,
        )
        .unwrap();
        assert_eq!(c.replica_dir.as_deref(), Some(std::path::Path::new("/b")));
        assert_eq!(c.max_chain, 3);
        assert_eq!(c.profiles.for_kind("queue").paths(), ["/depth"]);
        assert_eq!(c.profiles.for_kind("cache").paths(), ["/config", "/maxmemory"]);
        assert!(serde_json::from_str::<SnapshotConfig>(r#"{"dir": "/a", "ttl": 5}"#).is_err());
        let e = serde_json::from_str::<SnapshotConfig>(r#"{"dir": "/a", "profiles": {"db": ["x"]}}"#).unwrap_err();
        assert!(e.to_string().contains("\"db\""), "{e}");
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = SnapshotConfig::new("/a");
        c.ttl_ms = Some(-1);
        assert!(c.validate().unwrap_err().to_string().contains("ttl_ms"));
        let mut c = SnapshotConfig::new("/a");
        c.replica_dir = Some("/a".into());
        assert!(c.validate().unwrap_err().to_string().contains("replica_dir"));
    }
}
