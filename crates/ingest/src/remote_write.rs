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
use std::sync::{PoisonError, RwLock};

use foldhash::HashMap;
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

/// Maps raw label bytes of a series to its harbinger key, so the steady state of a
/// Prometheus sender (the same series every scrape) costs a hash lookup per series and no
/// string allocation. Bounded by entries and by bytes: cleared when either would be
/// exceeded; a label set over [`MAX_CACHED_LABEL_BYTES`] is never cached (such series are
/// rare, and refused by the store's name limits anyway).
#[derive(Debug)]
pub struct SeriesCache {
    map: RwLock<HashMap<Box<[u8]>, SeriesKey>>,
    max_entries: usize,
    max_bytes: usize,
    bytes: std::sync::atomic::AtomicUsize,
}

/// Longest label set (encoded bytes) the cache keeps.
pub const MAX_CACHED_LABEL_BYTES: usize = 4096;

/// Default byte budget of the cache (label bytes and key strings).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl Default for SeriesCache {
    fn default() -> Self {
        Self::with_budget(1 << 20, DEFAULT_CACHE_BYTES)
    }
}

impl SeriesCache {
    /// A cache holding at most `max_entries` series (and [`DEFAULT_CACHE_BYTES`]).
    pub fn new(max_entries: usize) -> Self {
        Self::with_budget(max_entries, DEFAULT_CACHE_BYTES)
    }

    /// A cache holding at most `max_entries` series and `max_bytes` bytes of them.
    pub fn with_budget(max_entries: usize, max_bytes: usize) -> Self {
        Self { map: RwLock::new(HashMap::default()), max_entries, max_bytes, bytes: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Bytes the cached entries hold (label bytes and key strings).
    pub fn bytes(&self) -> usize {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of cached series.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decompresses and decodes a remote-write body with a throwaway cache.
///
/// # Errors
/// See [`decode_with`].
pub fn decode(body: &[u8], max_decoded: usize) -> Result<DecodedWrite, RemoteWriteError> {
    decode_with(body, max_decoded, &SeriesCache::new(0))
}

/// Decompresses and decodes a remote-write body, reusing `cache` for series seen before.
///
/// The protobuf is read in place (no intermediate message structs): field numbers and
/// wire types follow `prometheus/prompb` `WriteRequest`; unknown fields are skipped.
///
/// # Errors
/// [`RemoteWriteError`] when the body is not snappy, too large once decompressed, or not a
/// `WriteRequest` (truncated fields, bad wire types, labels that are not UTF-8).
pub fn decode_with(body: &[u8], max_decoded: usize, cache: &SeriesCache) -> Result<DecodedWrite, RemoteWriteError> {
    let size = snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if size > max_decoded {
        return Err(RemoteWriteError::TooLarge { size, limit: max_decoded });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    parse_write_request(&raw, cache)
}

fn pb_err(what: &str) -> RemoteWriteError {
    RemoteWriteError::Protobuf(what.to_string())
}

/// A protobuf reader over a byte slice.
struct Pb<'a>(&'a [u8]);

impl<'a> Pb<'a> {
    fn varint(&mut self) -> Result<u64, RemoteWriteError> {
        let mut v: u64 = 0;
        for (i, b) in self.0.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if *b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err(pb_err("truncated or overlong varint"))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RemoteWriteError> {
        if self.0.len() < n {
            return Err(pb_err("field runs past the end of its message"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    /// The next (field number, wire type), or None at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, RemoteWriteError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }
    fn len_delimited(&mut self) -> Result<&'a [u8], RemoteWriteError> {
        let n = usize::try_from(self.varint()?).map_err(|_| pb_err("length overflows"))?;
        self.bytes(n)
    }
    fn skip(&mut self, wire: u8) -> Result<(), RemoteWriteError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.bytes(8).map(drop),
            2 => self.len_delimited().map(drop),
            5 => self.bytes(4).map(drop),
            w => Err(RemoteWriteError::Protobuf(format!("unsupported wire type {w}"))),
        }
    }
}

fn parse_write_request(raw: &[u8], cache: &SeriesCache) -> Result<DecodedWrite, RemoteWriteError> {
    let mut out = DecodedWrite::default();
    let mut pb = Pb(raw);
    let mut label_bytes: Vec<u8> = Vec::with_capacity(256);
    let mut labels: Vec<&[u8]> = Vec::with_capacity(16);
    // Series whose key was not cached: (index in batch, raw label key).
    let mut misses: Vec<(usize, Box<[u8]>)> = Vec::new();
    let map = cache.map.read().unwrap_or_else(PoisonError::into_inner);
    while let Some((field, wire)) = pb.key()? {
        if field != 1 || wire != 2 {
            pb.skip(wire)?;
            continue;
        }
        let ts_bytes = pb.len_delimited()?;
        let mut ts = Pb(ts_bytes);
        label_bytes.clear();
        labels.clear();
        // Labels normally come first and back to back: then their raw bytes are the cache
        // key as they stand. Otherwise they are copied together.
        let mut contiguous_end: Option<usize> = Some(0);
        let mut samples = SeriesSamples::default();
        while let Some((f, w)) = ts.key()? {
            match (f, w) {
                (1, 2) => {
                    let l = ts.len_delimited()?;
                    let end = ts_bytes.len() - ts.0.len();
                    match contiguous_end {
                        Some(_) if samples.is_empty() => contiguous_end = Some(end),
                        _ => contiguous_end = None,
                    }
                    labels.push(l);
                }
                (2, 2) => {
                    let mut s = Pb(ts.len_delimited()?);
                    let (mut value, mut t) = (0.0f64, 0i64);
                    while let Some((sf, sw)) = s.key()? {
                        match (sf, sw) {
                            (1, 1) => {
                                let b = s.bytes(8)?;
                                value = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                            }
                            (2, 0) => t = s.varint()? as i64,
                            (_, w) => s.skip(w)?,
                        }
                    }
                    if value.to_bits() == STALE_NAN_BITS {
                        *out.dropped.entry("stale_marker").or_default() += 1;
                        continue;
                    }
                    samples.push(t, value);
                }
                (_, w) => ts.skip(w)?,
            }
        }
        let key_bytes: &[u8] = match contiguous_end {
            Some(end) => &ts_bytes[..end],
            None => {
                // 0xff never starts a contiguous key (that starts with tag 0x0a), so the two
                // key forms cannot collide.
                label_bytes.push(0xff);
                for l in &labels {
                    label_bytes.extend_from_slice(&(l.len() as u32).to_le_bytes());
                    label_bytes.extend_from_slice(l);
                }
                &label_bytes
            }
        };
        if samples.is_empty() {
            continue;
        }
        if let Some(key) = map.get(key_bytes) {
            samples.key = key.clone();
        } else {
            let mut parsed = Vec::with_capacity(labels.len());
            for l in &labels {
                parsed.push(parse_label(l)?);
            }
            match series_key(&parsed) {
                Ok(key) => {
                    samples.key = key;
                    misses.push((out.batch.series.len(), key_bytes.into()));
                }
                Err(reason) => {
                    *out.dropped.entry(reason).or_default() += samples.len() as u64;
                    continue;
                }
            }
        }
        out.batch.series.push(samples);
    }
    drop(map);
    if !misses.is_empty() && cache.max_entries > 0 {
        use std::sync::atomic::Ordering::Relaxed;
        let entry_bytes = |k: &[u8], key: &SeriesKey| k.len() + key.host.as_str().len() + key.metric.as_str().len();
        let misses: Vec<(usize, Box<[u8]>)> = misses.into_iter().filter(|(_, k)| k.len() <= MAX_CACHED_LABEL_BYTES).collect();
        let adding: usize = misses.iter().map(|(i, k)| entry_bytes(k, &out.batch.series[*i].key)).sum();
        let mut map = cache.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() + misses.len() > cache.max_entries || cache.bytes.load(Relaxed) + adding > cache.max_bytes {
            map.clear();
            cache.bytes.store(0, Relaxed);
        }
        let mut added = 0;
        for (i, k) in misses.into_iter().take(cache.max_entries) {
            let key = out.batch.series[i].key.clone();
            let b = entry_bytes(&k, &key);
            if added + b > cache.max_bytes {
                break;
            }
            if map.insert(k, key).is_none() {
                added += b;
            }
        }
        cache.bytes.fetch_add(added, Relaxed);
    }
    Ok(out)
}

fn parse_label(raw: &[u8]) -> Result<(&str, &str), RemoteWriteError> {
    let mut pb = Pb(raw);
    let (mut name, mut value) = (&b""[..], &b""[..]);
    while let Some((f, w)) = pb.key()? {
        match (f, w) {
            (1, 2) => name = pb.len_delimited()?,
            (2, 2) => value = pb.len_delimited()?,
            (_, w) => pb.skip(w)?,
        }
    }
    let utf8 = |b| std::str::from_utf8(b).map_err(|_| pb_err("label is not UTF-8"));
    Ok((utf8(name)?, utf8(value)?))
}

/// Maps decoded series to harbinger series (for callers that already hold messages).
/// Counts as [`decode_with`] does: staleness markers first, then series without a usable
/// key by the samples they still have; a series left without samples counts nothing else.
pub fn convert(req: prompb::WriteRequest) -> DecodedWrite {
    let mut out = DecodedWrite::default();
    for ts in req.timeseries {
        let mut s = SeriesSamples::default();
        for smp in &ts.samples {
            if smp.value.to_bits() == STALE_NAN_BITS {
                *out.dropped.entry("stale_marker").or_default() += 1;
            } else {
                s.push(smp.timestamp, smp.value);
            }
        }
        if s.is_empty() {
            continue;
        }
        let labels: Vec<(&str, &str)> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        match series_key(&labels) {
            Ok(key) => {
                s.key = key;
                out.batch.series.push(s);
            }
            Err(reason) => *out.dropped.entry(reason).or_default() += s.len() as u64,
        }
    }
    out
}

/// The harbinger key of a labelled series, or why there is none.
fn series_key(labels: &[(&str, &str)]) -> Result<SeriesKey, &'static str> {
    let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map(|(_, v)| *v).filter(|v| !v.is_empty());
    let name = get("__name__").ok_or("missing_name")?;
    let instance = get("instance");
    let host = instance.or_else(|| get("host")).ok_or("missing_host")?;
    let mut extra: Vec<&(&str, &str)> = labels
        .iter()
        .filter(|(k, _)| match *k {
            "__name__" | "instance" | "job" => false,
            "host" => instance.is_some(), // a plain label when `instance` names the host
            _ => true,
        })
        .collect();
    if extra.is_empty() {
        return Ok(SeriesKey::new(host, name));
    }
    extra.sort_by(|a, b| a.0.cmp(b.0));
    let mut metric = String::with_capacity(name.len() + 32);
    metric.push_str(name);
    metric.push('{');
    for (i, (k, v)) in extra.iter().enumerate() {
        if i > 0 {
            metric.push(',');
        }
        metric.push_str(k);
        metric.push_str("=\"");
        for c in v.chars() {
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
    Ok(SeriesKey::new(host, metric))
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
    fn the_cache_is_bounded_by_bytes_and_skips_huge_label_sets() {
        let cache = SeriesCache::with_budget(1 << 20, 10_000);
        // 40 requests whose series carry 60 KB labels: decoded, never cached.
        let huge = "v".repeat(60_000);
        for i in 0..40 {
            let req = WriteRequest {
                timeseries: vec![series(
                    vec![label("__name__", "m"), label("instance", &format!("h{i}")), label("big", &huge)],
                    &[(1, 1.0)],
                )],
            };
            let d = decode_with(&encode(&req), 1 << 24, &cache).expect("decodes");
            assert_eq!(d.batch.series.len(), 1);
        }
        assert_eq!((cache.len(), cache.bytes()), (0, 0), "huge label sets are not cached");
        // Many small series: the byte budget holds (the cache is cleared when it would not).
        for i in 0..500 {
            let req = WriteRequest {
                timeseries: vec![series(vec![label("__name__", "cpu"), label("instance", &format!("host-{i}"))], &[(1, 1.0)])],
            };
            decode_with(&encode(&req), 1 << 20, &cache).expect("decodes");
            assert!(cache.bytes() <= 10_000, "{} bytes cached", cache.bytes());
        }
        assert!(!cache.is_empty() && cache.bytes() > 0);
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
    fn the_cache_maps_repeat_series_to_the_same_keys() {
        let req = |t: i64| WriteRequest {
            timeseries: vec![
                series(vec![label("__name__", "up"), label("instance", "h1")], &[(t, 1.0)]),
                series(vec![label("__name__", "up"), label("instance", "h2")], &[(t, 0.0)]),
                series(vec![label("instance", "h3")], &[(t, 0.0)]),
            ],
        };
        let cache = SeriesCache::new(10);
        let a = decode_with(&encode(&req(1)), 1 << 20, &cache).expect("decodes");
        assert_eq!(cache.len(), 2, "unmappable series are not cached");
        let b = decode_with(&encode(&req(2)), 1 << 20, &cache).expect("decodes");
        let keys = |d: &DecodedWrite| d.batch.series.iter().map(|s| s.key.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(keys(&b), ["h1/up", "h2/up"]);
        assert_eq!(b.batch.series[0].timestamps, vec![2]);
        assert_eq!(b.dropped.get("missing_name"), Some(&1));
        // The same messages through prost and `convert` give the same result.
        assert_eq!(convert(req(2)), b);
        let tiny = SeriesCache::new(1);
        decode_with(&encode(&req(1)), 1 << 20, &tiny).expect("decodes");
        assert!(tiny.len() <= 1, "bounded");
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

        for bad in [
            &b"\x0a\xff\xff\xff\xff\x0f"[..],
            b"\x0a\x05\x0a\x03",
            b"\x0b",
            b"\x0a\x0f\x0a\x02\x0a\xff\x12\x09\x09\x00\x00\x00\x00\x00\x00\xf0\x3f",
        ] {
            let not_pb = snap::raw::Encoder::new().compress_vec(bad).expect("compress");
            let e = decode(&not_pb, 1 << 20).expect_err("not protobuf");
            assert_eq!(e.reason(), "corrupt_protobuf", "{bad:?}");
            assert!(e.to_string().starts_with("malformed protobuf WriteRequest"), "{e}");
        }
        assert!(decode(&encode(&WriteRequest::default()), 1 << 20).expect("empty request is fine").batch.series.is_empty());

        // A well-formed request but for one label (name or value) that is not UTF-8,
        // built byte by byte (prost's `String` cannot hold such bytes): refused whole,
        // named, and the same bytes with the byte made valid decode.
        fn field(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag, u8::try_from(body.len()).expect("short field")];
            v.extend_from_slice(body);
            v
        }
        let request = |name: &[u8], instance: &[u8]| {
            let label = |n: &[u8], v: &[u8]| field(0x0a, &[field(0x0a, n), field(0x12, v)].concat());
            let mut sample = vec![0x09];
            sample.extend_from_slice(&0.5f64.to_le_bytes());
            sample.extend_from_slice(&[0x10, 0x01]); // timestamp 1
            let series = [label(b"__name__", name), label(b"instance", instance), field(0x12, &sample)].concat();
            snap::raw::Encoder::new().compress_vec(&field(0x0a, &series)).expect("compress")
        };
        let good = decode(&request(b"up", b"h1x"), 1 << 20).expect("valid UTF-8 decodes");
        assert_eq!(good.batch.series[0].key.to_string(), "h1x/up");
        assert_eq!((good.batch.series[0].timestamps.as_slice(), good.batch.series[0].values.as_slice()), (&[1][..], &[0.5][..]));
        for (name, instance) in [(&b"up"[..], &b"h1\xff"[..]), (b"u\xc3", b"h1x"), (b"up", b"h\xed\xa0\x80")] {
            let e = decode(&request(name, instance), 1 << 20).expect_err("not UTF-8");
            assert_eq!(e.reason(), "corrupt_protobuf", "{name:?} {instance:?}");
            assert_eq!(e.to_string(), "malformed protobuf WriteRequest: label is not UTF-8");
            let cache = SeriesCache::new(10);
            assert!(decode_with(&request(name, instance), 1 << 20, &cache).is_err());
            assert!(cache.is_empty(), "nothing is cached from a refused request");
        }

        let big = encode(&WriteRequest {
            timeseries: vec![series(vec![label("__name__", &"x".repeat(2_000)), label("instance", "h")], &[(1, 1.0)])],
        });
        let e = decode(&big, 1_000).expect_err("too large");
        assert!(matches!(e, RemoteWriteError::TooLarge { limit: 1_000, .. }), "{e}");
    }
}
