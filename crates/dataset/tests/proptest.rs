//! Properties of the dataset readers: a dataset written with [`write_dataset`] (CSV and
//! Parquet) reads back with the same hosts, series, values, events and failures, and no
//! file content (arbitrary bytes, damaged Parquet) makes [`read_dataset`] panic.

use std::collections::BTreeMap;
use std::path::Path;

use harbinger_core::{Event, EventKind, Failure, Host, HostId, SeriesKey, SeriesSamples};
use harbinger_dataset::{Dataset, DatasetMeta, LoadOptions, MetricsFormat, read_dataset, write_dataset};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Names with the characters CSV has to quote (comma, quote, inner space) and non-ASCII.
/// The readers trim cells, so names never start or end with a space.
fn name() -> impl Strategy<Value = String> {
    let chars = prop_oneof![8 => prop::char::range('a', 'z'), 1 => prop::char::range('0', '9'), 1 => Just(','), 1 => Just('"'), 1 => Just(' '), 1 => Just('é'), 1 => Just('_')];
    prop::collection::vec(chars, 1..10)
        .prop_map(|c| String::from_iter(c).trim().to_string())
        .prop_filter("not empty once trimmed", |s| !s.is_empty())
}

/// Finite values of any magnitude (NaN marks a missing sample).
fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        -1e6..1e6f64,
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
    ]
}

fn capacity() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..1e6f64,
        Just(0.0),
        Just(f64::MAX),
        Just(5e-324),
        any::<f64>().prop_filter("finite, not negative", |v| v.is_finite() && *v >= 0.0)
    ]
}

fn dataset() -> impl Strategy<Value = Dataset> {
    let host = (name(), prop::option::of(name()), prop::option::of(name()), capacity(), capacity());
    let hosts = prop::collection::btree_map(name(), host, 1..4).prop_map(|m| {
        m.into_iter()
            .map(|(id, (_, zone, rack, cpu_cores, mem_gb))| Host {
                host: HostId::new(id),
                zone: zone.unwrap_or_default(),
                rack: rack.unwrap_or_default(),
                cpu_cores,
                mem_gb,
            })
            .collect::<Vec<_>>()
    });
    hosts.prop_flat_map(|hosts| {
        let n = hosts.len();
        let points = prop::collection::btree_map(any::<i64>(), prop_oneof![9 => finite(), 1 => Just(f64::NAN)], 1..6);
        let series = prop::collection::btree_map((0..n, name()), points, 0..6);
        let event = (any::<i64>(), prop::sample::select(EventKind::ALL.to_vec()), prop::option::of(0..n), prop::option::of(name()));
        let failure = (0..n, any::<i64>(), prop::option::of(name()));
        let meta =
            prop::option::of((name(), prop::option::of(any::<i64>()), prop::option::of(1..100_000i64), prop::option::of(any::<u64>())));
        (Just(hosts), series, prop::collection::vec(event, 0..4), prop::collection::vec(failure, 0..4), meta).prop_map(
            |(hosts, series, events, failures, meta)| {
                let metrics = series
                    .into_iter()
                    .map(|((h, metric), points): ((usize, String), BTreeMap<i64, f64>)| {
                        let mut s = SeriesSamples::new(SeriesKey::new(hosts[h].host.as_str(), metric));
                        for (t, v) in points {
                            s.push(t, v);
                        }
                        s
                    })
                    .collect();
                let mut events: Vec<Event> = events
                    .into_iter()
                    .map(|(ts, kind, host, deployment)| Event {
                        host: host.map(|h| hosts[h].host.clone()),
                        deployment,
                        ..Event::new(ts, kind)
                    })
                    .collect();
                events.sort_by_key(|e| e.ts);
                let mut failures: Vec<Failure> = failures
                    .into_iter()
                    .map(|(h, timestamp, kind)| Failure { host: hosts[h].host.clone(), timestamp, kind: kind.unwrap_or_default() })
                    .collect();
                failures.sort_by(|a, b| (a.timestamp, &a.host).cmp(&(b.timestamp, &b.host)));
                let meta = meta.map(|(name, start_ms, step_ms, seed)| DatasetMeta {
                    name,
                    start_ms,
                    end_ms: None,
                    step_ms,
                    seed,
                    notes: String::new(),
                });
                Dataset { meta, hosts, resources: Vec::new(), metrics, events, failures }
            },
        )
    })
}

/// Values compared bit for bit, except that every NaN is the same "missing".
fn same_values(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits())
}

fn check_round_trip(ds: &Dataset, format: MetricsFormat) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_dataset(ds, dir.path(), format).expect("write");
    let (back, report) = read_dataset(dir.path(), LoadOptions::default()).map_err(|e| TestCaseError::fail(format!("{format:?}: {e}")))?;
    prop_assert_eq!(&back.hosts, &ds.hosts);
    prop_assert_eq!(&back.events, &ds.events);
    prop_assert_eq!(&back.failures, &ds.failures);
    prop_assert_eq!(&back.meta, &ds.meta);
    let mut want: Vec<&SeriesSamples> = ds.metrics.iter().collect();
    want.sort_by(|a, b| a.key.cmp(&b.key));
    prop_assert_eq!(back.metrics.len(), want.len());
    for (got, want) in back.metrics.iter().zip(want) {
        prop_assert_eq!(&got.key, &want.key);
        prop_assert_eq!(&got.timestamps, &want.timestamps);
        prop_assert!(same_values(&got.values, &want.values), "{format:?} {}: {:?} != {:?}", got.key, got.values, want.values);
    }
    prop_assert_eq!(report.metric_rows as usize, ds.metric_rows());
    prop_assert_eq!((report.duplicate_rows, report.out_of_order_rows, report.skipped_rows), (0, 0, 0));
    Ok(())
}

/// A valid CSV dataset with two hosts, one file of which the caller replaces.
fn tiny(dir: &Path) {
    std::fs::write(dir.join("hosts.csv"), "host,zone,rack,cpu_cores,mem_gb\nh1,z1,,8,32\nh2,z2,r1,8,32\n").expect("w");
    std::fs::write(dir.join("metrics.csv"), "timestamp,host,metric,value\n1000,h1,cpu_util,0.5\n2000,h2,cpu_util,NaN\n").expect("w");
    std::fs::write(dir.join("resources.json"), r#"[{"id":"a","kind":"service","host":"h1","criticality":2}]"#).expect("w");
    std::fs::write(dir.join("events.jsonl"), "{\"ts\":1000,\"kind\":\"deploy_started\",\"host\":\"h1\"}\n").expect("w");
    std::fs::write(dir.join("failures.csv"), "host,timestamp,kind\nh2,5000,oom\n").expect("w");
    std::fs::write(dir.join("dataset.json"), "{\"name\":\"tiny\"}\n").expect("w");
}

const FILES: [&str; 7] = ["hosts.csv", "metrics.csv", "metrics.parquet", "failures.csv", "events.jsonl", "resources.json", "dataset.json"];

/// Reads the tiny dataset with `file` replaced by `bytes`, both strict and skipping bad rows.
fn read_with(file: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    std::fs::write(dir.path().join(file), bytes).expect("w");
    for skip_invalid_rows in [false, true] {
        let _ = read_dataset(dir.path(), LoadOptions { skip_invalid_rows });
    }
    let _ = streamed(dir.path());
}

/// The bytes of a small valid `metrics.parquet` for the tiny dataset's hosts.
fn valid_parquet() -> Vec<u8> {
    let mut ds = Dataset {
        hosts: ["h1", "h2"]
            .iter()
            .map(|h| Host { host: HostId::new(h), zone: "z".into(), rack: String::new(), cpu_cores: 8.0, mem_gb: 32.0 })
            .collect(),
        ..Dataset::default()
    };
    for (i, h) in ["h1", "h2"].iter().enumerate() {
        let mut s = SeriesSamples::new(SeriesKey::new(h, "cpu_util"));
        for t in 0..20 {
            s.push(1_000 * t, if t % 7 == 3 { f64::NAN } else { (t + i as i64) as f64 / 20.0 });
        }
        ds.metrics.push(s);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    write_dataset(&ds, dir.path(), MetricsFormat::Parquet).expect("write");
    std::fs::read(dir.path().join("metrics.parquet")).expect("read")
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn datasets_round_trip_through_csv_and_parquet(ds in dataset()) {
        check_round_trip(&ds, MetricsFormat::Csv)?;
        check_round_trip(&ds, MetricsFormat::Parquet)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn arbitrary_bytes_in_any_file_never_panic(file in prop::sample::select(FILES.to_vec()), bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        read_with(file, &bytes);
    }

    #[test]
    fn csv_lines_of_arbitrary_cells_never_panic(
        file in prop::sample::select(vec!["hosts.csv", "metrics.csv", "failures.csv"]),
        header in prop::bool::ANY,
        rows in prop::collection::vec(prop::collection::vec(prop_oneof![name(), Just(String::new()), Just("NaN".to_string()), Just("inf".to_string()), Just("\"".to_string()), any::<i64>().prop_map(|i| i.to_string()), any::<f64>().prop_map(|f| f.to_string())], 0..7), 0..8),
    ) {
        // Well-formed headers with arbitrary cells, and arbitrary first lines.
        let head = match (file, header) {
            (_, false) => String::new(),
            ("hosts.csv", true) => "host,zone,rack,cpu_cores,mem_gb\n".to_string(),
            ("metrics.csv", true) => "timestamp,host,metric,value\n".to_string(),
            _ => "host,timestamp,kind\n".to_string(),
        };
        let text = head + &rows.iter().map(|r| r.join(",")).collect::<Vec<_>>().join("\n");
        read_with(file, text.as_bytes());
    }

    #[test]
    fn damaged_parquet_never_panics(flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4), cut in prop::option::of(any::<prop::sample::Index>())) {
        static VALID: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let mut bytes = VALID.get_or_init(valid_parquet).clone();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        read_with("metrics.parquet", &bytes);
    }
}

/// Regressions found by `damaged_parquet_never_panics`: a flipped bit anywhere in a small
/// `metrics.parquet` panicked inside polars ("invalid num_bits", "thrift bool field",
/// out-of-range slices) or, when it made a data page's value count negative, aborted the
/// process on a 2^61-byte allocation. Each is now an error naming the file.
#[test]
fn every_single_bit_flip_of_a_parquet_file_is_refused_or_read() {
    let bytes = valid_parquet();
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    let path = dir.path().join("metrics.parquet");
    let (mut negative, mut streamed_negative) = (0, 0);
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1;
        std::fs::write(&path, &b).expect("w");
        if let Err(e) = read_dataset(dir.path(), LoadOptions::default()) {
            let text = e.to_string();
            assert!(text.contains("metrics.parquet"), "{text}");
            negative += usize::from(text.contains("declares a negative count"));
        }
        // Read a row group at a time (as `train` reads): refused naming the file, or read.
        if let Err(e) = streamed(dir.path()) {
            let text = e.to_string();
            assert!(text.contains("metrics.parquet"), "streamed, flip at byte {i}: {text}");
            streamed_negative += usize::from(text.contains("declares a negative count"));
        }
    }
    assert!(negative > 0, "some flip makes a page's value count negative");
    assert!(streamed_negative > 0, "and the stream checks the page headers too");
}

/// Every row of a dataset's metrics through [`harbinger_dataset::MetricStream`].
fn streamed(dir: &std::path::Path) -> Result<u64, harbinger_dataset::DatasetError> {
    let (ds, report) = harbinger_dataset::read_inventory(dir)?;
    let hosts: Vec<harbinger_core::HostId> = ds.hosts.iter().map(|h| h.host.clone()).collect();
    let mut s = harbinger_dataset::MetricStream::open(&report.metrics_file, &hosts, None, LoadOptions::default())?;
    let mut batch = Vec::new();
    while s.next_batch(&mut batch)? {}
    Ok(s.rows_read())
}
