//! Change profiles: which parts of a resource's state a change of each kind touches.
//!
//! A [`ChangeProfile`] is a set of JSON pointers (RFC 6901) into `Resource::state`.
//! [`Profiles`] maps a resource kind (`database`, `service`, ...) to its profile, with a
//! fallback for kinds it does not name. In a TOML file it is a table of arrays:
//!
//! ```toml
//! [snapshots.profiles]
//! database = ["/config", "/schema_version", "/parameters"]
//! "*" = [""]          # the fallback: "" is the whole state
//! ```
//!
//! Deserialising starts from [`Profiles::builtin`] and replaces the kinds the table names
//! (the key `"*"` replaces the fallback), so a config that only tunes `database` keeps the
//! built-in `service` and `cache` profiles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

/// The key that names the fallback profile in a [`Profiles`] table.
pub const FALLBACK_KEY: &str = "*";

/// A JSON pointer in a change profile that is not valid RFC 6901.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot profile for kind {kind:?}: invalid JSON pointer {path:?}: {reason}")]
pub struct ProfileError {
    /// The resource kind whose profile holds the pointer (`*` for the fallback).
    pub kind: String,
    /// The pointer as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks one pointer: `""` (the whole state) or `/`-separated tokens in which `~` is
/// only ever followed by `0` or `1`.
///
/// # Errors
/// A [`ProfileError`] naming `kind` and `path`.
pub fn validate_pointer(kind: &str, path: &str) -> Result<(), ProfileError> {
    let bad = |reason: &str| ProfileError { kind: kind.to_owned(), path: path.to_owned(), reason: reason.to_owned() };
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(bad("a pointer is \"\" (the whole state) or starts with '/'"));
    }
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(bad("'~' must be followed by '0' (for '~') or '1' (for '/')"));
        }
    }
    Ok(())
}

/// The JSON pointers a change to one kind of resource touches.
///
/// Pointers are validated on construction and kept sorted and unique, so a parent path
/// (`/config`) always comes before the paths inside it (`/config/pool`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ChangeProfile {
    paths: Vec<String>,
}

impl ChangeProfile {
    /// A profile for `kind` from its pointers.
    ///
    /// # Errors
    /// The first pointer that is not valid RFC 6901, naming `kind` and the pointer.
    pub fn new<I, S>(kind: &str, paths: I) -> Result<Self, ProfileError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut set = BTreeSet::new();
        for p in paths {
            let p = p.into();
            validate_pointer(kind, &p)?;
            set.insert(p);
        }
        Ok(Self { paths: set.into_iter().collect() })
    }

    /// The profile that captures the whole state (the pointer `""`).
    pub fn whole_state() -> Self {
        Self { paths: vec![String::new()] }
    }

    /// The pointers, sorted and unique.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }
}

impl fmt::Debug for ChangeProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.paths).finish()
    }
}

/// Change profiles by resource kind, with a fallback for kinds not listed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, Vec<String>>")]
pub struct Profiles {
    kinds: BTreeMap<String, ChangeProfile>,
    fallback: ChangeProfile,
}

impl Profiles {
    /// The built-in profiles:
    ///
    /// | kind | paths |
    /// | --- | --- |
    /// | `database` | `/config`, `/parameters`, `/schema_version` |
    /// | `service` | `/config`, `/env`, `/image`, `/replicas` |
    /// | `cache` | `/config`, `/maxmemory` |
    /// | any other (fallback) | `""`: the whole state |
    pub fn builtin() -> Self {
        let p =
            |paths: &[&str]| ChangeProfile { paths: paths.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>().into_iter().collect() };
        let mut kinds = BTreeMap::new();
        kinds.insert("database".to_owned(), p(&["/config", "/schema_version", "/parameters"]));
        kinds.insert("service".to_owned(), p(&["/image", "/env", "/replicas", "/config"]));
        kinds.insert("cache".to_owned(), p(&["/config", "/maxmemory"]));
        Self { kinds, fallback: ChangeProfile::whole_state() }
    }

    /// Profiles from a table `kind → pointers` laid over [`Profiles::builtin`]: each kind
    /// named replaces the built-in one, the key `"*"` replaces the fallback.
    ///
    /// # Errors
    /// The first invalid pointer, naming its kind and the pointer.
    pub fn from_table<I, K, P, S>(table: I) -> Result<Self, ProfileError>
    where
        I: IntoIterator<Item = (K, P)>,
        K: Into<String>,
        P: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = Self::builtin();
        for (kind, paths) in table {
            let kind = kind.into();
            let profile = ChangeProfile::new(&kind, paths)?;
            if kind == FALLBACK_KEY {
                out.fallback = profile;
            } else {
                out.kinds.insert(kind, profile);
            }
        }
        Ok(out)
    }

    /// Profiles with exactly these kinds (no built-ins) and this fallback.
    pub fn with_kinds(kinds: BTreeMap<String, ChangeProfile>, fallback: ChangeProfile) -> Self {
        Self { kinds, fallback }
    }

    /// The profile for `kind`, or the fallback when the kind is not listed.
    pub fn for_kind(&self, kind: &str) -> &ChangeProfile {
        self.kinds.get(kind).unwrap_or(&self.fallback)
    }

    /// The kinds listed, with their profiles (the fallback is not among them).
    pub fn kinds(&self) -> &BTreeMap<String, ChangeProfile> {
        &self.kinds
    }

    /// The profile for kinds not listed.
    pub fn fallback(&self) -> &ChangeProfile {
        &self.fallback
    }
}

impl Default for Profiles {
    /// [`Profiles::builtin`].
    fn default() -> Self {
        Self::builtin()
    }
}

impl TryFrom<BTreeMap<String, Vec<String>>> for Profiles {
    type Error = ProfileError;

    fn try_from(table: BTreeMap<String, Vec<String>>) -> Result<Self, Self::Error> {
        Self::from_table(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_and_fallback() {
        let p = Profiles::builtin();
        assert_eq!(p.for_kind("database").paths(), ["/config", "/parameters", "/schema_version"]);
        assert_eq!(p.for_kind("service").paths(), ["/config", "/env", "/image", "/replicas"]);
        assert_eq!(p.for_kind("cache").paths(), ["/config", "/maxmemory"]);
        assert_eq!(p.for_kind("queue").paths(), [""]);
    }

    #[test]
    fn invalid_pointers_name_kind_and_path() {
        let e = ChangeProfile::new("database", ["/config", "config"]).unwrap_err();
        assert_eq!(e.kind, "database");
        assert_eq!(e.path, "config");
        let msg = e.to_string();
        assert!(msg.contains("database") && msg.contains("\"config\""), "{msg}");

        let e = ChangeProfile::new("cache", ["/a~2b"]).unwrap_err();
        assert_eq!(e.path, "/a~2b");
        assert!(ChangeProfile::new("cache", ["/a~"]).is_err());
        assert!(ChangeProfile::new("cache", ["", "/a~0b/c~1d", "/x/0"]).is_ok());
    }

    #[test]
    fn table_overrides_builtin_kind_and_fallback() {
        let p = Profiles::from_table([("database", vec!["/params"]), ("*", vec!["/meta"])]).unwrap();
        assert_eq!(p.for_kind("database").paths(), ["/params"]);
        assert_eq!(p.for_kind("service").paths(), ["/config", "/env", "/image", "/replicas"]);
        assert_eq!(p.for_kind("unknown").paths(), ["/meta"]);
    }

    #[test]
    fn deserialize_validates() {
        let ok: Profiles = serde_json::from_str(r#"{"database": ["/config", "/config", "/x"]}"#).unwrap();
        assert_eq!(ok.for_kind("database").paths(), ["/config", "/x"]);
        let err = serde_json::from_str::<Profiles>(r#"{"service": ["image"]}"#).unwrap_err().to_string();
        assert!(err.contains("service") && err.contains("image"), "{err}");
    }
}
