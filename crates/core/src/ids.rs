//! Identifiers: hosts, metrics, series, and time.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. Every timestamp in harbinger uses this unit.
pub type TimestampMs = i64;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name. Cloning is cheap (reference counted).
            pub fn new(s: impl AsRef<str>) -> Self {
                Self(Arc::from(s.as_ref()))
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl Default for $name {
            /// The empty name; shares one allocation.
            fn default() -> Self {
                static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
                Self(Arc::clone(&EMPTY))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A host id, as in `hosts.csv` (`h017`) or a Prometheus `instance` label.
    HostId
);

/// Longest id echoed whole in an error message.
pub const ECHO_BYTES: usize = 128;

/// `s` quoted for an error message: whole when short, else its first [`ECHO_BYTES`]
/// (cut at a character boundary) and its length, so a hostile megabyte id is not echoed.
pub fn echo(s: &str) -> String {
    if s.len() <= ECHO_BYTES {
        return format!("{s:?}");
    }
    let mut end = ECHO_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..end], s.len())
}
name_type!(
    /// A metric name (`mem_util`, or any Prometheus `__name__`).
    MetricName
);
name_type!(
    /// A resource id, as in `resources.json` (`db-3`).
    ResourceId
);
name_type!(
    /// A shadow id: one passive copy of a resource on another host.
    ShadowId
);
name_type!(
    /// A deployment id, as in `events.jsonl` (`d-41`).
    DeploymentId
);

#[cfg(test)]
mod echo_tests {
    #[test]
    fn long_ids_are_cut_in_messages() {
        assert_eq!(super::echo("h9"), "\"h9\"");
        let long = "é".repeat(600_000);
        let e = super::echo(&long);
        assert!(e.len() < 200 && e.ends_with("... (1200000 bytes)"), "{e}");
    }
}

/// One time series: a metric on a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The host the samples describe.
    pub host: HostId,
    /// The metric name.
    pub metric: MetricName,
}

impl SeriesKey {
    /// Builds a key from anything string-like.
    pub fn new(host: impl AsRef<str>, metric: impl AsRef<str>) -> Self {
        Self { host: HostId::new(host), metric: MetricName::new(metric) }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_by_content_and_display_plainly() {
        let a = HostId::new("h001");
        let b: HostId = String::from("h001").into();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "h001");
        assert_eq!(format!("{a:?}"), "\"h001\"");
        assert_eq!(SeriesKey::new("h1", "cpu_util").to_string(), "h1/cpu_util");
        assert_eq!(serde_json::to_string(&a).unwrap_or_default(), "\"h001\"");
    }
}
