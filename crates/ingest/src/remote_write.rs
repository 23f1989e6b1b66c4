//! Prometheus remote-write 1.0 receiver logic (no HTTP here).
//!
//! The body is a raw (block-format) snappy frame of a protobuf `prometheus.WriteRequest`.
//! Each time series becomes one harbinger series:
//! - host: the `instance` label, or else `host`;
//! - metric: `__name__`, followed by the remaining labels in Prometheus selector syntax
//!   when there are any besides `job`, e.g. `http_requests_total{code="200",handler="/"}`,
//!   so distinct Prometheus series never collide.
//!
//! Staleness markers (a special NaN) are dropped and counted; they mean "gone", not a value.

use std::collections::BTreeMap;

use harbinger_core::{SampleBatch, SeriesKey, SeriesSamples};
use prost::Message;

/// The protobuf messages of remote-write 1.0 (`prometheus/prompb`), the fields harbinger reads.
pub mod prompb {
    /// A batch of series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    /// One labelled series with samples.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Labels, `__name__` among them.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Samples, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    /// A label pair.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Label name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Label value.
        #[prost(string, tag = "2")]
        pub value: String,
    }
    /// A sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// Value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// The bit pattern Prometheus uses for staleness markers.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A remote-write body that cannot be used at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteWriteError {
    /// The snappy block is corrupt.
    #[error("corrupt snappy block: {0}")]
    Snappy(String),
    /// The decompressed body would exceed the limit.
    #[error("decompressed body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Declared decompressed size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The protobuf is malformed.
    #[error("malformed protobuf WriteRequest: {0}")]
    Protobuf(String),
}

impl RemoteWriteError {
    /// Stable reason label for `/metrics`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Snappy(_) => "corrupt_snappy",
            Self::TooLarge { .. } => "too_large",
            Self::Protobuf(_) => "corrupt_protobuf",
        }
    }
}

/// A decoded request: the samples to store, and series that could not be mapped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DecodedWrite {
    /// Samples by series.
    pub batch: SampleBatch,
    /// Samples dropped before storage, by reason (`missing_name`, `missing_host`, `stale_marker`).
    pub dropped: BTreeMap<&'static str, u64>,
}

/// Decompresses and decodes a remote-write body.
///
/// # Errors
/// [`RemoteWriteError`] when the body is not snappy, too large once decompressed, or not a
/// `WriteRequest`.
pub fn decode(body: &[u8], max_decoded: usize) -> Result<DecodedWrite, RemoteWriteError> {
    let size = snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if size > max_decoded {
        return Err(RemoteWriteError::TooLarge { size, limit: max_decoded });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    let req = prompb::WriteRequest::decode(raw.as_slice()).map_err(|e| RemoteWriteError::Protobuf(e.to_string()))?;
    Ok(convert(req))
}

/// Maps decoded series to harbinger series.
pub fn convert(req: prompb::WriteRequest) -> DecodedWrite {
    let mut out = DecodedWrite::default();
    out.batch.series.reserve(req.timeseries.len());
    for ts in req.timeseries {
        let n = ts.samples.len() as u64;
        let Some(key) = series_key(&ts.labels) else {
            let reason = if ts.labels.iter().any(|l| l.name == "__name__") { "missing_host" } else { "missing_name" };
            *out.dropped.entry(reason).or_default() += n;
            continue;
        };
        let mut s = SeriesSamples::new(key);
        s.timestamps.reserve(ts.samples.len());
        s.values.reserve(ts.samples.len());
        for smp in &ts.samples {
            if smp.value.to_bits() == STALE_NAN_BITS {
                *out.dropped.entry("stale_marker").or_default() += 1;
                continue;
            }
            s.push(smp.timestamp, smp.value);
        }
        if !s.is_empty() {
            out.batch.series.push(s);
        }
    }
    out
}

fn series_key(labels: &[prompb::Label]) -> Option<SeriesKey> {
    let mut name = None;
    let mut instance = None;
    let mut host = None;
    for l in labels {
        match l.name.as_str() {
            "__name__" => name = Some(l.value.as_str()),
            "instance" => instance = Some(l.value.as_str()),
            "host" => host = Some(l.value.as_str()),
            _ => {}
        }
    }
    let name = name.filter(|n| !n.is_empty())?;
    let host = instance.or(host).filter(|h| !h.is_empty())?;
    let mut extra: Vec<&prompb::Label> = labels
        .iter()
        .filter(|l| match l.name.as_str() {
            "__name__" | "instance" | "job" => false,
            "host" => instance.is_some(), // a plain label when `instance` names the host
            _ => true,
        })
        .collect();
    if extra.is_empty() {
        return Some(SeriesKey::new(host, name));
    }
    extra.sort_by(|a, b| a.name.cmp(&b.name));
    let mut metric = String::with_capacity(name.len() + 32);
    metric.push_str(name);
    metric.push('{');
    for (i, l) in extra.iter().enumerate() {
        if i > 0 {
            metric.push(',');
        }
        metric.push_str(&l.name);
        metric.push_str("=\"");
        for c in l.value.chars() {
            match c {
                '\\' => metric.push_str("\\\\"),
                '"' => metric.push_str("\\\""),
                '\n' => metric.push_str("\\n"),
                c => metric.push(c),
            }
        }
        metric.push('"');
    }
    metric.push('}');
    Some(SeriesKey::new(host, metric))
}

/// Encodes a request the way Prometheus sends it (protobuf, then a snappy block).
pub fn encode(req: &prompb::WriteRequest) -> Vec<u8> {
    let pb = req.encode_to_vec();
    // Compressing an in-memory buffer cannot fail except for inputs over 4 GiB.
    snap::raw::Encoder::new().compress_vec(&pb).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::prompb::*;
    use super::*;

    fn label(n: &str, v: &str) -> Label {
        Label { name: n.into(), value: v.into() }
    }

    fn series(labels: Vec<Label>, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries { labels, samples: samples.iter().map(|(t, v)| Sample { timestamp: *t, value: *v }).collect() }
    }

    #[test]
    fn maps_labels_to_host_and_metric() {
        let req = WriteRequest {
            timeseries: vec![
                series(vec![label("__name__", "up"), label("instance", "h1:9100"), label("job", "node")], &[(1, 1.0)]),
                series(
                    vec![label("instance", "h1:9100"), label("__name__", "http_total"), label("code", "200"), label("handler", "/a\"b")],
                    &[(1, 2.0), (2, 3.0)],
                ),
                series(vec![label("__name__", "mem_util"), label("host", "h7")], &[(5, 0.5)]),
                series(vec![label("__name__", "orphan")], &[(1, 1.0)]),
                series(vec![label("instance", "h1")], &[(1, 1.0), (2, 2.0)]),
            ],
        };
        let d = decode(&encode(&req), 1 << 20).expect("decodes");
        let keys: Vec<String> = d.batch.series.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(keys, ["h1:9100/up", "h1:9100/http_total{code=\"200\",handler=\"/a\\\"b\"}", "h7/mem_util"]);
        assert_eq!(d.batch.series[1].timestamps, vec![1, 2]);
        assert_eq!(d.dropped.get("missing_host"), Some(&1));
        assert_eq!(d.dropped.get("missing_name"), Some(&2));
    }

    #[test]
    fn drops_staleness_markers_but_keeps_plain_nan() {
        let req = WriteRequest {
            timeseries: vec![series(
                vec![label("__name__", "x"), label("instance", "h")],
                &[(1, f64::from_bits(STALE_NAN_BITS)), (2, f64::NAN), (3, 1.0)],
            )],
        };
        let d = decode(&encode(&req), 1 << 20).expect("decodes");
        assert_eq!(d.dropped.get("stale_marker"), Some(&1));
        assert_eq!(d.batch.series[0].timestamps, vec![2, 3], "plain NaN goes on, for the store to count");
    }

    #[test]
    fn corrupt_inputs_are_named() {
        let e = decode(b"\xff\xff\xff\xff\xff\xff", 1 << 20).expect_err("not snappy");
        assert_eq!(e.reason(), "corrupt_snappy");
        assert!(e.to_string().starts_with("corrupt snappy block"), "{e}");

        let not_pb = snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff\xff\xff\x0f").expect("compress");
        let e = decode(&not_pb, 1 << 20).expect_err("not protobuf");
        assert_eq!(e.reason(), "corrupt_protobuf");
        assert!(e.to_string().starts_with("malformed protobuf WriteRequest"), "{e}");

        let big = encode(&WriteRequest {
            timeseries: vec![series(vec![label("__name__", &"x".repeat(2_000)), label("instance", "h")], &[(1, 1.0)])],
        });
        let e = decode(&big, 1_000).expect_err("too large");
        assert!(matches!(e, RemoteWriteError::TooLarge { limit: 1_000, .. }), "{e}");
    }
}
