//! [`SnapshotError`]: what can go wrong, each naming the resource, snapshot and file.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::capture::ApplyConflict;
use crate::codec::Check;

/// Resource ids longer than this many bytes are cut in messages (the full id stays in
/// the error's field).
const MAX_ID_IN_MESSAGE: usize = 128;

/// The resource id as shown in a message: quoted, and cut to 128 bytes (on a character
/// boundary) with the full length noted.
pub(crate) fn show_id(id: &str) -> String {
    if id.len() <= MAX_ID_IN_MESSAGE {
        return format!("{id:?}");
    }
    let mut end = MAX_ID_IN_MESSAGE;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &id[..end], id.len())
}

fn show_seq(seq: Option<u64>) -> String {
    seq.map_or_else(|| "(none)".to_owned(), |s| s.to_string())
}

/// One copy of a snapshot file that failed a check (in [`SnapshotError::Unrecoverable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFailure {
    /// The file.
    pub file: PathBuf,
    /// The check it failed.
    pub check: Check,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for CopyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file {} failed the {} check ({})", self.file.display(), self.check, self.detail)
    }
}

/// Errors of the snapshot store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The [`SnapshotConfig`](crate::SnapshotConfig) cannot be used.
    #[error("snapshot config: invalid `{field}`: {reason}")]
    Config {
        /// The field, e.g. `ttl_ms`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No snapshot of this resource exists.
    #[error("resource {}: no snapshots (directory {})", show_id(.resource), .dir.display())]
    UnknownResource {
        /// The resource id.
        resource: String,
        /// Where its snapshots would be.
        dir: PathBuf,
    },
    /// The resource has snapshots, but not this one (neither copy exists).
    #[error("resource {} snapshot {seq}: no such snapshot (file {} does not exist{})", show_id(.resource), .file.display(), if *.replicated { ", nor its replica" } else { "" })]
    UnknownSeq {
        /// The resource id.
        resource: String,
        /// The sequence number asked for.
        seq: u64,
        /// The primary file it would be in.
        file: PathBuf,
        /// Whether the replica was looked at too.
        replicated: bool,
    },
    /// The only copy of a snapshot (no replica is configured) failed a check.
    #[error("resource {} snapshot {seq}: file {} failed the {check} check: {detail} (no replica configured)", show_id(.resource), .file.display())]
    Corrupt {
        /// The resource id.
        resource: String,
        /// The snapshot.
        seq: u64,
        /// The file.
        file: PathBuf,
        /// The check that failed.
        check: Check,
        /// What was found.
        detail: String,
    },
    /// Both copies of a snapshot failed a check.
    #[error("resource {} snapshot {seq}: primary {primary} and replica {replica}", show_id(.resource))]
    Unrecoverable {
        /// The resource id.
        resource: String,
        /// The snapshot.
        seq: u64,
        /// What is wrong with the primary copy.
        primary: Box<CopyFailure>,
        /// What is wrong with the replica copy.
        replica: Box<CopyFailure>,
    },
    /// A delta's chain cannot be walked: a snapshot it is built on cannot be read.
    #[error("resource {} snapshot {seq}: it is a delta on snapshot {needs} (file {}), which cannot be read: {source}", show_id(.resource), .file.display())]
    BrokenChain {
        /// The resource id.
        resource: String,
        /// The snapshot asked for.
        seq: u64,
        /// The snapshot of its chain that failed.
        needs: u64,
        /// That snapshot's primary file.
        file: PathBuf,
        /// Why it cannot be read.
        source: Box<SnapshotError>,
    },
    /// A file or directory operation failed.
    #[error("resource {} snapshot {}: {op} {}: {source}", show_id(.resource), show_seq(*.seq), .file.display())]
    Io {
        /// The resource id.
        resource: String,
        /// The snapshot, when the operation concerns one.
        seq: Option<u64>,
        /// What was being done (`write`, `remove`, `list`, ...).
        op: &'static str,
        /// The file or directory.
        file: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The captured state cannot be stored (nested too deep, a string over 4 GiB, ...).
    #[error("resource {} snapshot {seq}: cannot encode file {}: {reason}", show_id(.resource), .file.display())]
    Encode {
        /// The resource id.
        resource: String,
        /// The snapshot being written.
        seq: u64,
        /// The file it was going to.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A captured path cannot be put back into the current state.
    #[error("resource {} snapshot {seq} (file {}): cannot restore {source}", show_id(.resource), .file.display())]
    Restore {
        /// The resource id.
        resource: String,
        /// The snapshot restored from.
        seq: u64,
        /// Its primary file.
        file: PathBuf,
        /// The path and why.
        source: ApplyConflict,
    },
}

/// `Result` with a [`SnapshotError`].
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_are_cut_in_messages_on_char_boundaries() {
        let id = "é".repeat(200);
        let shown = show_id(&id);
        assert!(shown.len() < 160, "{shown}");
        assert!(shown.contains("(400 bytes)"));
        assert_eq!(show_id("a/b"), "\"a/b\"");
    }
}
