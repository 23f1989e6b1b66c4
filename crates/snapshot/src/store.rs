//! [`SnapshotStore`]: delta snapshots on disk, with an optional replica.
//!
//! # Layout
//! ```text
//! <dir>/<resource dir>/<seq, 20 digits>.hbsnap
//! <dir>/<resource dir>/last-seq.json     (only once expiry removed the latest snapshot)
//! ```
//! The resource directory is `x` + the lowercase hex of the id's UTF-8 bytes when the id
//! is at most 100 bytes, else `h` + the BLAKE3 hash of the id in hex. Either way, no id
//! (`../../etc`, `a/b`, unicode, thousands of bytes) can name a path outside its own
//! directory, and every payload carries the full id, which reads check against the
//! directory name. The replica, when configured, has the same layout.
//!
//! Every write is atomic: a temporary file in the same directory, `fsync`, `rename`, then
//! `fsync` of the directory (the `fsync`s left out when the store is configured not
//! [`durable`](crate::SnapshotConfig::durable)). The primary copy is written first, then
//! the replica.
//!
//! # Chains
//! Sequence numbers start at 1 per resource and only grow, across expiry too: when
//! expiry removes a resource's latest snapshot, its number is kept in `last-seq.json`
//! (both locations), so a seq someone noted down never comes to name another snapshot.
//! A snapshot is a **base** (all
//! profiled paths) or a **delta** on the previous snapshot (only the paths whose value
//! changed, bit for bit, plus the paths no longer profiled). A delta is written while the
//! previous snapshot has fewer than `max_chain` deltas under it; otherwise the new
//! snapshot is a base. If the previous snapshot cannot be read, the new one is a base
//! too, so taking a snapshot before a change never depends on a damaged file.
//!
//! # Consolidation keeps restore points
//! [`SnapshotStore::consolidate`] rewrites the *latest* snapshot of a resource as a base
//! holding its materialised state (same seq, same time). Older snapshots are **kept** and
//! stay restorable: a delta only depends on snapshots before it, never after, so nothing
//! depends on the rewritten file's old form. Consolidation bounds how many files a
//! restore reads; removing old restore points is the job of the TTL
//! ([`SnapshotStore::expire`]). Automatic consolidation (a new base every
//! `max_chain + 1` snapshots) follows from the rule above.
//!
//! # Expiry
//! [`SnapshotStore::expire`] removes snapshots older than `ttl_ms`. Before removing, every
//! kept delta whose chain goes through a snapshot being removed is rewritten as a base,
//! so what is kept stays restorable. A resource with a snapshot that cannot be read in
//! either copy is left alone (and reported), since its chains cannot be followed.
//!
//! # Checks and repair
//! Every read verifies the file (magic, version, length, BLAKE3 checksum, decoding,
//! and that the payload's resource and seq match the file's place). A primary file that
//! fails is read from the replica (verified) and rewritten in the primary. Both bad: an
//! [`SnapshotError::Unrecoverable`] naming the resource, seq, both files and the checks.
//! [`SnapshotStore::verify`] checks every copy in both places without changing anything;
//! [`SnapshotStore::repair`] does the same and rewrites each bad copy from its good twin.
//!
//! All public methods take an internal lock, so a store can be shared between threads.
//! Two stores (or processes) must not write the same directory at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use harbinger_core::TimestampMs;
use serde_json::Value;

use crate::capture::{Captured, apply, capture, exact_eq};
use crate::codec::{Check, CheckFailure, Decoded, Payload, decode_file, encode_file, hex, unhex};
use crate::config::SnapshotConfig;
use crate::error::{CopyFailure, Result, SnapshotError};

/// Ids up to this many bytes get a readable (hex) directory name; longer ones are hashed.
const MAX_HEX_ID_BYTES: usize = 100;
/// Extension of snapshot files.
const EXT: &str = ".hbsnap";
/// The file that keeps a resource's highest seq once expiry removed its latest snapshot.
const HIGH_WATER: &str = "last-seq.json";

/// Where a copy of a snapshot file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// Under [`SnapshotConfig::dir`].
    Primary,
    /// Under [`SnapshotConfig::replica_dir`].
    Replica,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Location::Primary => "primary",
            Location::Replica => "replica",
        })
    }
}

/// One snapshot of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotRef {
    /// The resource id.
    pub resource: String,
    /// The snapshot's sequence number.
    pub seq: u64,
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resource {} snapshot {}", crate::error::show_id(&self.resource), self.seq)
    }
}

/// What [`SnapshotStore::list`] and [`SnapshotStore::take`] tell about a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotMeta {
    /// The resource id.
    pub resource: String,
    /// The resource kind at the time (it chose the profile).
    pub resource_kind: String,
    /// Sequence number, from 1, per resource.
    pub seq: u64,
    /// When it was taken (as passed to `take`).
    pub taken_at: TimestampMs,
    /// `None` for a base; the snapshot this delta is built on.
    pub parent: Option<u64>,
    /// Deltas between this snapshot and its base (0 for a base). `None` from
    /// [`SnapshotStore::list`] when a snapshot of its chain is missing.
    pub depth: Option<usize>,
    /// The pointers this file stores a value (or an absence) for: every profiled path
    /// in a base, only the changed ones in a delta.
    pub stored_paths: Vec<String>,
    /// Pointers the previous snapshot had that this one no longer profiles (deltas only).
    pub dropped_paths: Vec<String>,
    /// Size of the file, compressed, header included.
    pub bytes: u64,
    /// Size of the uncompressed payload.
    pub payload_bytes: u64,
    /// BLAKE3 hash of the uncompressed payload, lowercase hex.
    pub checksum: String,
    /// The primary file.
    pub file: PathBuf,
}

impl SnapshotMeta {
    /// True for a full base, false for a delta.
    pub fn is_base(&self) -> bool {
        self.parent.is_none()
    }
}

/// What [`SnapshotStore::expire`] did.
#[derive(Debug, Default)]
pub struct ExpireReport {
    /// Snapshots removed (both copies).
    pub removed: Vec<SnapshotRef>,
    /// Kept deltas rewritten as bases because their chain went through a removed snapshot.
    pub rebased: Vec<SnapshotRef>,
    /// Resources left untouched because a snapshot could not be read, with the reason.
    pub skipped: Vec<SnapshotError>,
}

/// One copy of a snapshot file that failed a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyProblem {
    /// The snapshot.
    pub snapshot: SnapshotRef,
    /// Which copy.
    pub location: Location,
    /// The file.
    pub file: PathBuf,
    /// The check it failed.
    pub check: Check,
    /// What was found.
    pub detail: String,
    /// Whether [`SnapshotStore::repair`] rewrote it from the good copy.
    pub repaired: bool,
}

/// A delta whose parent cannot be read in either copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// The delta.
    pub snapshot: SnapshotRef,
    /// The snapshot it is built on.
    pub needs: u64,
}

/// What [`SnapshotStore::verify`] or [`SnapshotStore::repair`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Resources seen (in either location).
    pub resources: usize,
    /// Snapshots seen (a snapshot counts once, whatever its copies).
    pub snapshots: usize,
    /// Copies that passed every check.
    pub copies_ok: usize,
    /// Copies that failed a check (missing copies included).
    pub problems: Vec<CopyProblem>,
    /// Snapshots with no good copy left.
    pub unrecoverable: Vec<SnapshotRef>,
    /// Deltas whose chain is broken (a snapshot they need is gone or unrecoverable).
    pub broken_chains: Vec<BrokenLink>,
}

impl VerifyReport {
    /// True when every copy passed (after repair, for [`SnapshotStore::repair`]: when
    /// nothing was unrecoverable and every problem was repaired).
    pub fn is_clean(&self) -> bool {
        self.unrecoverable.is_empty() && self.broken_chains.is_empty() && self.problems.iter().all(|p| p.repaired)
    }
}

/// A resource as stored: its id (or a label when only its hashed directory is known)
/// and its directory name.
#[derive(Clone, Debug)]
struct Key {
    id: String,
    dir: String,
}

impl Key {
    fn new(id: &str) -> Self {
        Self { id: id.to_owned(), dir: dir_name(id) }
    }
}

/// The directory name for a resource id (see the module docs).
fn dir_name(id: &str) -> String {
    if id.len() <= MAX_HEX_ID_BYTES { format!("x{}", hex(id.as_bytes())) } else { format!("h{}", blake3::hash(id.as_bytes()).to_hex()) }
}

/// The key of a directory found on disk; `None` for names this store does not write.
fn key_from_dir(name: &str) -> Option<Key> {
    if let Some(h) = name.strip_prefix('x') {
        let id = String::from_utf8(unhex(h)?).ok()?;
        (dir_name(&id) == name).then_some(Key { id, dir: name.to_owned() })
    } else if let Some(h) = name.strip_prefix('h') {
        (h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Key { id: format!("<id unknown: resource directory {name}>"), dir: name.to_owned() })
    } else {
        None
    }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}{EXT}")
}

fn seq_from_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXT)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn meta_of(d: &Decoded, bytes: u64, file: PathBuf, depth: Option<usize>) -> SnapshotMeta {
    let p = &d.payload;
    SnapshotMeta {
        resource: p.resource.clone(),
        resource_kind: p.kind.clone(),
        seq: p.seq,
        taken_at: p.taken_at,
        parent: p.parent,
        depth,
        stored_paths: p.set.keys().cloned().collect(),
        dropped_paths: p.dropped.clone(),
        bytes,
        payload_bytes: d.payload_len,
        checksum: hex(&d.hash),
        file,
    }
}

/// A verified copy: the decoded file and its raw bytes.
struct Loaded {
    decoded: Decoded,
    raw: Vec<u8>,
}

/// Delta snapshots of resource state on disk. See the [module docs](self) for the
/// layout, chains, consolidation, expiry and repair.
#[derive(Debug)]
pub struct SnapshotStore {
    cfg: SnapshotConfig,
    lock: Mutex<()>,
    tmp_counter: AtomicU64,
    /// When each primary file read so far was taken, with the file's identity then:
    /// [`SnapshotStore::expire`] reads a file again only when it changed.
    taken: Mutex<HashMap<PathBuf, (FileStamp, TimestampMs)>>,
}

/// What tells one version of a file from another without reading it: a file rewritten
/// (repaired, rebased) gets a new inode or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let m = fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp { len: m.len(), modified: m.modified().ok(), inode })
    }
}

impl SnapshotStore {
    /// Opens (creating the directories if needed) a store.
    ///
    /// # Errors
    /// An invalid config, or a directory that cannot be created.
    pub fn open(cfg: SnapshotConfig) -> Result<Self> {
        cfg.validate()?;
        for dir in std::iter::once(&cfg.dir).chain(cfg.replica_dir.as_ref()) {
            fs::create_dir_all(dir).map_err(|source| SnapshotError::Io {
                resource: String::new(),
                seq: None,
                op: "create directory",
                file: dir.clone(),
                source,
            })?;
        }
        Ok(Self { cfg, lock: Mutex::new(()), tmp_counter: AtomicU64::new(0), taken: Mutex::new(HashMap::new()) })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &SnapshotConfig {
        &self.cfg
    }

    /// Where the primary copy of a resource's snapshot `seq` is (whether or not it exists).
    pub fn file_path(&self, resource: &str, seq: u64) -> PathBuf {
        self.path(Location::Primary, &Key::new(resource), seq)
    }

    /// Where the replica copy is, when a replica is configured.
    pub fn replica_file_path(&self, resource: &str, seq: u64) -> Option<PathBuf> {
        self.cfg.replica_dir.as_ref().map(|_| self.path(Location::Replica, &Key::new(resource), seq))
    }

    /// Captures the paths the profile of `kind` names from `state` and stores them as
    /// the resource's next snapshot: a delta on the previous one (only changed paths) or
    /// a base (the first, after `max_chain` deltas, or when the previous cannot be read).
    ///
    /// # Errors
    /// Writing either copy failed, or the state cannot be encoded (nested deeper than 512).
    pub fn take(&self, resource: &str, kind: &str, state: &Value, now_ms: TimestampMs) -> Result<SnapshotMeta> {
        let _g = self.guard();
        let key = Key::new(resource);
        let captured = capture(self.cfg.profiles.for_kind(kind), state);
        let seqs = self.seqs(&key)?;
        let last = seqs.last().copied();
        let seq = match last.max(self.high_water(&key)) {
            None => 1,
            Some(l) => l.checked_add(1).ok_or_else(|| SnapshotError::Encode {
                resource: resource.to_owned(),
                seq: l,
                file: self.path(Location::Primary, &key, l),
                reason: "sequence numbers exhausted".to_owned(),
            })?,
        };
        let prev = last.and_then(|l| self.materialize_key(&key, l).ok().map(|(c, depth)| (l, c, depth)));
        let (parent, set, dropped, depth) = match prev {
            Some((l, prev, depth)) if depth < self.cfg.max_chain => {
                let dropped: Vec<String> = prev.parts.keys().filter(|p| !captured.parts.contains_key(*p)).cloned().collect();
                let set: BTreeMap<String, Option<Value>> = captured
                    .parts
                    .into_iter()
                    .filter(|(path, now)| match (prev.parts.get(path), now) {
                        (Some(Some(a)), Some(b)) => !exact_eq(a, b),
                        (Some(None), None) => false,
                        _ => true,
                    })
                    .collect();
                (Some(l), set, dropped, depth + 1)
            }
            _ => (None, captured.parts, Vec::new(), 0),
        };
        let payload = Payload { resource: resource.to_owned(), kind: kind.to_owned(), seq, taken_at: now_ms, parent, set, dropped };
        self.write_snapshot(&key, &payload, Some(depth))
    }

    /// The snapshots of a resource, oldest first. Each is read and verified (and
    /// repaired from the replica if needed). An unknown resource has none.
    ///
    /// # Errors
    /// A snapshot that cannot be read from either copy, or a directory that cannot be listed.
    pub fn list(&self, resource: &str) -> Result<Vec<SnapshotMeta>> {
        let _g = self.guard();
        self.list_key(&Key::new(resource))
    }

    /// The captured parts of the resource's state at `seq`: its chain applied from the
    /// base up.
    ///
    /// # Errors
    /// Unknown resource or seq, or a snapshot of the chain that cannot be read.
    pub fn materialize(&self, resource: &str, seq: u64) -> Result<Captured> {
        let _g = self.guard();
        let key = Key::new(resource);
        self.require_resource(&key)?;
        Ok(self.materialize_key(&key, seq)?.0)
    }

    /// `current_state` with every path profiled at `seq` put back as it was then: set to
    /// its value, or removed if it was absent. Paths not profiled are left as they are.
    ///
    /// # Errors
    /// As [`SnapshotStore::materialize`], or [`SnapshotError::Restore`] when a path
    /// cannot be reached in `current_state` (see [`apply`]).
    pub fn restore(&self, resource: &str, seq: u64, current_state: &Value) -> Result<Value> {
        let captured = self.materialize(resource, seq)?;
        apply(&captured, current_state).map_err(|source| SnapshotError::Restore {
            resource: resource.to_owned(),
            seq,
            file: self.file_path(resource, seq),
            source,
        })
    }

    /// Rewrites the latest snapshot of a resource as a base with the same content, seq
    /// and time, so the next delta starts a fresh chain. Older snapshots are kept and
    /// stay restorable. A latest snapshot that is already a base is left as it is.
    ///
    /// # Errors
    /// Unknown resource, a chain that cannot be read, or a failed write.
    pub fn consolidate(&self, resource: &str) -> Result<SnapshotMeta> {
        let _g = self.guard();
        let key = Key::new(resource);
        let Some(last) = self.require_resource(&key)?.last().copied() else {
            return Err(self.unknown_resource(&key));
        };
        let loaded = self.read(&key, last)?;
        if loaded.decoded.payload.parent.is_none() {
            let bytes = loaded.raw.len() as u64;
            return Ok(meta_of(&loaded.decoded, bytes, self.path(Location::Primary, &key, last), Some(0)));
        }
        self.rebase(&key, &loaded.decoded.payload)
    }

    /// Removes every snapshot older than `ttl_ms` (`now_ms - taken_at > ttl_ms`) from
    /// both copies, after rewriting as bases the kept deltas whose chains need one of
    /// them. Nothing happens without a TTL. The TTL is strict: a resource whose
    /// snapshots are all older than it, the latest included, has none left; its next
    /// snapshot is a base, and its sequence number still follows the removed ones.
    ///
    /// # Errors
    /// Only when the directories cannot be listed; per-resource problems are in
    /// [`ExpireReport::skipped`].
    pub fn expire(&self, now_ms: TimestampMs) -> Result<ExpireReport> {
        let _g = self.guard();
        let mut report = ExpireReport::default();
        let Some(ttl) = self.cfg.ttl_ms else {
            return Ok(report);
        };
        for key in self.keys()? {
            if let Err(e) = self.expire_key(&key, now_ms, ttl, &mut report) {
                report.skipped.push(e);
            }
        }
        Ok(report)
    }

    /// Checks every copy of every snapshot in both locations, and every chain. Changes
    /// nothing (unlike reads, which repair a bad primary from the replica).
    ///
    /// # Errors
    /// Only when a directory cannot be listed.
    pub fn verify(&self) -> Result<VerifyReport> {
        let _g = self.guard();
        self.scan(false)
    }

    /// As [`SnapshotStore::verify`], and rewrites each bad copy (primary or replica) from
    /// its good twin; [`CopyProblem::repaired`] says which were.
    ///
    /// # Errors
    /// Only when a directory cannot be listed.
    pub fn repair(&self) -> Result<VerifyReport> {
        let _g = self.guard();
        self.scan(true)
    }

    // ---- internals (callers hold the lock) ----

    fn guard(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn root(&self, loc: Location) -> Option<&Path> {
        match loc {
            Location::Primary => Some(&self.cfg.dir),
            Location::Replica => self.cfg.replica_dir.as_deref(),
        }
    }

    fn locations(&self) -> impl Iterator<Item = Location> + '_ {
        [Location::Primary, Location::Replica].into_iter().filter(|l| self.root(*l).is_some())
    }

    fn res_dir(&self, loc: Location, key: &Key) -> PathBuf {
        self.root(loc).unwrap_or(&self.cfg.dir).join(&key.dir)
    }

    fn path(&self, loc: Location, key: &Key, seq: u64) -> PathBuf {
        self.res_dir(loc, key).join(file_name(seq))
    }

    fn unknown_resource(&self, key: &Key) -> SnapshotError {
        SnapshotError::UnknownResource { resource: key.id.clone(), dir: self.res_dir(Location::Primary, key) }
    }

    fn require_resource(&self, key: &Key) -> Result<BTreeSet<u64>> {
        let seqs = self.seqs(key)?;
        if seqs.is_empty() {
            return Err(self.unknown_resource(key));
        }
        Ok(seqs)
    }

    /// Sequence numbers present in either location.
    fn seqs(&self, key: &Key) -> Result<BTreeSet<u64>> {
        let mut out = BTreeSet::new();
        for loc in self.locations() {
            let dir = self.res_dir(loc, key);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SnapshotError::Io { resource: key.id.clone(), seq: None, op: "list", file: dir, source }),
            };
            for entry in entries {
                let entry = entry.map_err(|source| SnapshotError::Io {
                    resource: key.id.clone(),
                    seq: None,
                    op: "list",
                    file: dir.clone(),
                    source,
                })?;
                if let Some(seq) = entry.file_name().to_str().and_then(seq_from_file_name) {
                    out.insert(seq);
                }
            }
        }
        Ok(out)
    }

    /// Resources found in either location, ids resolved for hashed directories where a
    /// snapshot can be read.
    fn keys(&self) -> Result<Vec<Key>> {
        let mut names = BTreeSet::new();
        for loc in self.locations() {
            let Some(root) = self.root(loc) else { continue };
            let entries = match fs::read_dir(root) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(SnapshotError::Io { resource: String::new(), seq: None, op: "list", file: root.to_path_buf(), source });
                }
            };
            for entry in entries {
                let entry = entry.map_err(|source| SnapshotError::Io {
                    resource: String::new(),
                    seq: None,
                    op: "list",
                    file: root.to_path_buf(),
                    source,
                })?;
                if let Some(name) = entry.file_name().to_str() {
                    names.insert(name.to_owned());
                }
            }
        }
        let mut keys = Vec::new();
        for name in names {
            let Some(mut key) = key_from_dir(&name) else { continue };
            if name.starts_with('h') {
                let from_snapshot = self.seqs(&key)?.into_iter().find_map(|seq| {
                    self.locations().find_map(|loc| self.read_copy(loc, &key, seq).ok()).map(|l| l.decoded.payload.resource)
                });
                let from_marker = || self.locations().find_map(|loc| self.read_high_water(loc, &key).map(|(id, _)| id));
                if let Some(id) = from_snapshot.or_else(from_marker) {
                    key.id = id;
                }
            }
            keys.push(key);
        }
        Ok(keys)
    }

    fn high_water_path(&self, loc: Location, key: &Key) -> PathBuf {
        self.res_dir(loc, key).join(HIGH_WATER)
    }

    /// The id and seq in one copy of `last-seq.json`, if it is there, parses, and is
    /// this resource's.
    fn read_high_water(&self, loc: Location, key: &Key) -> Option<(String, u64)> {
        let raw = fs::read(self.high_water_path(loc, key)).ok()?;
        let v: Value = serde_json::from_slice(&raw).ok()?;
        let id = v.get("resource")?.as_str()?;
        let seq = v.get("last_seq")?.as_u64()?;
        (dir_name(id) == key.dir).then(|| (id.to_owned(), seq))
    }

    /// The highest seq expiry removed, from either copy of `last-seq.json`.
    fn high_water(&self, key: &Key) -> Option<u64> {
        self.locations().filter_map(|loc| self.read_high_water(loc, key)).map(|(_, seq)| seq).max()
    }

    fn write_high_water(&self, key: &Key, seq: u64) -> Result<()> {
        if self.high_water(key).is_some_and(|hw| hw >= seq) {
            return Ok(());
        }
        let body = serde_json::json!({"resource": key.id, "last_seq": seq}).to_string();
        for loc in self.locations() {
            let path = self.high_water_path(loc, key);
            self.write_atomic(&path, body.as_bytes()).map_err(|source| SnapshotError::Io {
                resource: key.id.clone(),
                seq: Some(seq),
                op: "write",
                file: path,
                source,
            })?;
        }
        Ok(())
    }

    /// Reads and verifies one copy.
    fn read_copy(&self, loc: Location, key: &Key, seq: u64) -> Result<Loaded, CheckFailure> {
        let path = self.path(loc, key, seq);
        let raw = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err((Check::Missing, "no such file".to_owned())),
            Err(e) => return Err((Check::Read, e.to_string())),
        };
        let decoded = decode_file(&raw)?;
        let p = &decoded.payload;
        if p.seq != seq || dir_name(&p.resource) != key.dir {
            return Err((Check::Identity, format!("the file holds resource {} snapshot {}", crate::error::show_id(&p.resource), p.seq)));
        }
        if p.parent.is_some_and(|parent| parent >= seq) {
            return Err((Check::Identity, format!("delta on snapshot {:?}, not an earlier one", p.parent)));
        }
        Ok(Loaded { decoded, raw })
    }

    /// Reads a snapshot: the primary, else the replica (then repairing the primary).
    fn read(&self, key: &Key, seq: u64) -> Result<Loaded> {
        let primary_path = self.path(Location::Primary, key, seq);
        let (pc, pd) = match self.read_copy(Location::Primary, key, seq) {
            Ok(l) => return Ok(l),
            Err(e) => e,
        };
        if self.cfg.replica_dir.is_none() {
            return Err(if pc == Check::Missing {
                SnapshotError::UnknownSeq { resource: key.id.clone(), seq, file: primary_path, replicated: false }
            } else {
                SnapshotError::Corrupt { resource: key.id.clone(), seq, file: primary_path, check: pc, detail: pd }
            });
        }
        let replica_path = self.path(Location::Replica, key, seq);
        match self.read_copy(Location::Replica, key, seq) {
            Ok(l) => {
                // Best effort: the data is good either way; verify() reports a primary
                // that could not be rewritten.
                let _ = self.write_atomic(&primary_path, &l.raw);
                Ok(l)
            }
            Err((Check::Missing, _)) if pc == Check::Missing => {
                Err(SnapshotError::UnknownSeq { resource: key.id.clone(), seq, file: primary_path, replicated: true })
            }
            Err((rc, rd)) => Err(SnapshotError::Unrecoverable {
                resource: key.id.clone(),
                seq,
                primary: Box::new(CopyFailure { file: primary_path, check: pc, detail: pd }),
                replica: Box::new(CopyFailure { file: replica_path, check: rc, detail: rd }),
            }),
        }
    }

    /// The captured parts at `seq` and its depth (deltas above its base).
    fn materialize_key(&self, key: &Key, seq: u64) -> Result<(Captured, usize)> {
        let mut chain: Vec<Payload> = Vec::new();
        let mut cur = seq;
        loop {
            let loaded = self.read(key, cur).map_err(|e| {
                if cur == seq {
                    e
                } else {
                    SnapshotError::BrokenChain {
                        resource: key.id.clone(),
                        seq,
                        needs: cur,
                        file: self.path(Location::Primary, key, cur),
                        source: Box::new(e),
                    }
                }
            })?;
            let parent = loaded.decoded.payload.parent;
            chain.push(loaded.decoded.payload);
            match parent {
                None => break,
                // read_copy guarantees parent < cur, so the walk ends.
                Some(p) => cur = p,
            }
        }
        let depth = chain.len() - 1;
        let mut parts = BTreeMap::new();
        for p in chain.into_iter().rev() {
            for path in &p.dropped {
                parts.remove(path);
            }
            parts.extend(p.set);
        }
        Ok((Captured { parts }, depth))
    }

    fn list_key(&self, key: &Key) -> Result<Vec<SnapshotMeta>> {
        let mut out: Vec<SnapshotMeta> = Vec::new();
        let mut depths: BTreeMap<u64, Option<usize>> = BTreeMap::new();
        for seq in self.seqs(key)? {
            let loaded = self.read(key, seq)?;
            let depth = match loaded.decoded.payload.parent {
                None => Some(0),
                Some(p) => depths.get(&p).copied().flatten().map(|d| d + 1),
            };
            depths.insert(seq, depth);
            out.push(meta_of(&loaded.decoded, loaded.raw.len() as u64, self.path(Location::Primary, key, seq), depth));
        }
        Ok(out)
    }

    /// Rewrites `payload`'s snapshot as a base with its materialised content.
    fn rebase(&self, key: &Key, payload: &Payload) -> Result<SnapshotMeta> {
        let (captured, _) = self.materialize_key(key, payload.seq)?;
        let base = Payload {
            resource: payload.resource.clone(),
            kind: payload.kind.clone(),
            seq: payload.seq,
            taken_at: payload.taken_at,
            parent: None,
            set: captured.parts,
            dropped: Vec::new(),
        };
        self.write_snapshot(key, &base, Some(0))
    }

    fn write_snapshot(&self, key: &Key, payload: &Payload, depth: Option<usize>) -> Result<SnapshotMeta> {
        let primary = self.path(Location::Primary, key, payload.seq);
        let (raw, hash, payload_len) = encode_file(payload).map_err(|reason| SnapshotError::Encode {
            resource: key.id.clone(),
            seq: payload.seq,
            file: primary.clone(),
            reason,
        })?;
        for loc in self.locations() {
            let path = self.path(loc, key, payload.seq);
            self.write_atomic(&path, &raw).map_err(|source| SnapshotError::Io {
                resource: key.id.clone(),
                seq: Some(payload.seq),
                op: if loc == Location::Primary { "write" } else { "write replica" },
                file: path,
                source,
            })?;
        }
        let decoded = Decoded { payload: payload.clone(), hash, payload_len };
        Ok(meta_of(&decoded, raw.len() as u64, primary, depth))
    }

    /// Temp file, fsync, rename, fsync of the directory (and of the parent when the
    /// directory is new); without the fsyncs when the store is not
    /// [`durable`](SnapshotConfig::durable).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let durable = self.config().durable;
        let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent().filter(|_| durable) {
                sync_dir(parent)?;
            }
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("snapshot");
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            if durable {
                f.sync_all()?;
            }
            drop(f);
            fs::rename(&tmp, path)?;
            if durable { sync_dir(dir) } else { Ok(()) }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes both copies of a snapshot (missing copies are fine).
    fn remove(&self, key: &Key, seq: u64) -> Result<()> {
        for loc in self.locations() {
            let path = self.path(loc, key, seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(SnapshotError::Io { resource: key.id.clone(), seq: Some(seq), op: "remove", file: path, source });
                }
            }
            let dir = self.res_dir(loc, key);
            if !self.cfg.durable {
                continue;
            }
            sync_dir(&dir).map_err(|source| SnapshotError::Io {
                resource: key.id.clone(),
                seq: Some(seq),
                op: "sync directory",
                file: dir,
                source,
            })?;
        }
        Ok(())
    }

    /// When snapshot `seq` of `key` was taken: remembered from an earlier read while its
    /// primary file is unchanged, else read (and checked, and repaired) again.
    fn taken_at(&self, key: &Key, seq: u64) -> Result<TimestampMs> {
        let path = self.path(Location::Primary, key, seq);
        let memo = || self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(stamp) = FileStamp::of(&path)
            && let Some(&(then, at)) = memo().get(&path)
            && then == stamp
        {
            return Ok(at);
        }
        let at = self.read(key, seq)?.decoded.payload.taken_at;
        // The file as it is after the read, which may have rewritten it from the replica.
        if let Some(stamp) = FileStamp::of(&path) {
            memo().insert(path, (stamp, at));
        }
        Ok(at)
    }

    fn expire_key(&self, key: &Key, now: TimestampMs, ttl: i64, report: &mut ExpireReport) -> Result<()> {
        // Most runs find nothing to expire: decide that from the times taken alone.
        let mut due = false;
        for seq in self.seqs(key)? {
            if now.saturating_sub(self.taken_at(key, seq)?) > ttl {
                due = true;
                break;
            }
        }
        if !due {
            return Ok(());
        }
        // Read everything first: a resource with an unreadable snapshot is left alone.
        let mut parents: BTreeMap<u64, Option<u64>> = BTreeMap::new();
        let mut payloads: BTreeMap<u64, Payload> = BTreeMap::new();
        for seq in self.seqs(key)? {
            let loaded = self.read(key, seq)?;
            parents.insert(seq, loaded.decoded.payload.parent);
            payloads.insert(seq, loaded.decoded.payload);
        }
        let expired: BTreeSet<u64> = payloads.values().filter(|p| now.saturating_sub(p.taken_at) > ttl).map(|p| p.seq).collect();
        if expired.is_empty() {
            return Ok(());
        }
        // Rebase, oldest first, every kept delta whose chain reaches an expired snapshot;
        // a later delta's chain then stops at the rebased one.
        for (seq, payload) in &payloads {
            if expired.contains(seq) || payload.parent.is_none() {
                continue;
            }
            let mut cur = payload.parent;
            let mut needs_expired = false;
            while let Some(p) = cur {
                if expired.contains(&p) {
                    needs_expired = true;
                    break;
                }
                cur = parents.get(&p).copied().flatten();
            }
            if needs_expired {
                self.rebase(key, payload)?;
                parents.insert(*seq, None);
                report.rebased.push(SnapshotRef { resource: payload.resource.clone(), seq: *seq });
            }
        }
        let latest = payloads.keys().next_back().copied();
        if let Some(latest) = latest.filter(|l| expired.contains(l)) {
            self.write_high_water(key, latest)?;
        }
        for seq in expired {
            self.remove(key, seq)?;
            report.removed.push(SnapshotRef { resource: key.id.clone(), seq });
        }
        Ok(())
    }

    fn scan(&self, repair: bool) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let replicated = self.cfg.replica_dir.is_some();
        for key in self.keys()? {
            report.resources += 1;
            let mut readable: BTreeMap<u64, Option<u64>> = BTreeMap::new();
            for seq in self.seqs(&key)? {
                report.snapshots += 1;
                let snapshot = SnapshotRef { resource: key.id.clone(), seq };
                let primary = self.read_copy(Location::Primary, &key, seq);
                let replica = replicated.then(|| self.read_copy(Location::Replica, &key, seq));
                let good = match (&primary, &replica) {
                    (Ok(l), _) | (_, Some(Ok(l))) => Some(l),
                    _ => None,
                };
                for (loc, copy) in [(Location::Primary, Some(&primary)), (Location::Replica, replica.as_ref())] {
                    let Some(copy) = copy else { continue };
                    let Err((check, detail)) = copy else {
                        report.copies_ok += 1;
                        continue;
                    };
                    let file = self.path(loc, &key, seq);
                    let repaired = repair && good.is_some_and(|g| self.write_atomic(&file, &g.raw).is_ok());
                    report.problems.push(CopyProblem {
                        snapshot: snapshot.clone(),
                        location: loc,
                        file,
                        check: *check,
                        detail: detail.clone(),
                        repaired,
                    });
                }
                match good {
                    Some(l) => {
                        readable.insert(seq, l.decoded.payload.parent);
                    }
                    None => report.unrecoverable.push(snapshot),
                }
            }
            for (seq, parent) in &readable {
                if let Some(p) = parent
                    && !readable.contains_key(p)
                {
                    report.broken_chains.push(BrokenLink { snapshot: SnapshotRef { resource: key.id.clone(), seq: *seq }, needs: *p });
                }
            }
        }
        Ok(report)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_are_safe_and_reversible() {
        for id in ["../../etc", "a/b", "é∂", "", ".", "..", "x", "a\0b"] {
            let name = dir_name(id);
            assert!(name.starts_with('x') && name[1..].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
            assert_eq!(key_from_dir(&name).map(|k| k.id), Some(id.to_owned()));
        }
        let long = "r".repeat(300);
        let name = dir_name(&long);
        assert_eq!(name.len(), 65);
        assert!(name.starts_with('h'));
        assert!(key_from_dir(&name).is_some());
        assert!(key_from_dir("xzz").is_none());
        assert!(key_from_dir("x4").is_none());
        assert!(key_from_dir("hdeadbeef").is_none());
        assert!(key_from_dir(".tmp").is_none());
    }

    #[test]
    fn file_names_parse_strictly() {
        assert_eq!(seq_from_file_name(&file_name(42)), Some(42));
        assert_eq!(seq_from_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(seq_from_file_name("42.hbsnap"), None);
        assert_eq!(seq_from_file_name(".00000000000000000042.hbsnap.tmp-1-2"), None);
    }
}
