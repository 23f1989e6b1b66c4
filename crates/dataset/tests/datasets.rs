//! Reading and writing datasets: round trips, reproducibility, other tools' files, bad input.

use std::path::Path;

use harbinger_dataset::read::Location;
use harbinger_dataset::synth::{SynthParams, generate};
use harbinger_dataset::{Dataset, DatasetError, LoadOptions, MetricsFormat, read_dataset, write_dataset};

fn small() -> Dataset {
    let p = SynthParams { hosts: 4, days: 1.0, step_ms: 300_000, seed: 7, ..SynthParams::default() };
    generate(&p).expect("valid params").dataset
}

/// Datasets are equal when every field is, metric values compared bit for bit (NaN included).
fn assert_same(a: &Dataset, b: &Dataset) {
    assert_eq!(a.hosts, b.hosts);
    assert_eq!(a.resources, b.resources);
    assert_eq!(a.events, b.events);
    assert_eq!(a.failures, b.failures);
    assert_eq!(a.meta, b.meta);
    assert_eq!(a.metrics.len(), b.metrics.len());
    for (x, y) in a.metrics.iter().zip(&b.metrics) {
        assert_eq!(x.key, y.key);
        assert_eq!(x.timestamps, y.timestamps, "{}", x.key);
        let xb: Vec<u64> = x.values.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u64> = y.values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(xb, yb, "{}", x.key);
    }
}

#[test]
fn parquet_and_csv_round_trip() {
    let ds = small();
    assert!(ds.metrics.iter().any(|s| s.values.iter().any(|v| v.is_nan())), "fixture has NaN rows");
    for format in [MetricsFormat::Parquet, MetricsFormat::Csv] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_dataset(&ds, dir.path(), format).expect("write");
        let (back, report) = read_dataset(dir.path(), LoadOptions::default()).expect("read");
        assert_same(&ds, &back);
        assert_eq!(report.metric_rows as usize, ds.metric_rows());
        assert_eq!((report.duplicate_rows, report.out_of_order_rows, report.skipped_rows), (0, 0, 0));
        assert!(report.absent_files.is_empty(), "{:?}", report.absent_files);
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_same_dataset_gives_byte_identical_files() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    write_dataset(&small(), a.path(), MetricsFormat::Parquet).expect("write");
    write_dataset(&small(), b.path(), MetricsFormat::Parquet).expect("write");
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        ["dataset.json", "events.jsonl", "failures.csv", "hosts.csv", "metrics.parquet", "resources.json"]
    );
    assert!(fa == fb, "files differ between two writes of the same seed");
}

#[test]
fn a_dataset_written_by_pandas_and_pyarrow_loads_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/foreign");
    let (ds, report) = read_dataset(&dir, LoadOptions::default()).expect("foreign dataset loads");
    assert_eq!(ds.hosts.len(), 2);
    assert_eq!(ds.hosts[1].rack, "r7");
    assert_eq!(ds.hosts[0].cpu_cores, 4.0);
    assert_eq!(report.metric_rows, 20, "19 rows plus one duplicate");
    assert_eq!(report.duplicate_rows, 1);
    assert!(report.out_of_order_rows > 0, "rows were reversed");
    assert_eq!(report.missing_values, 1);
    assert_eq!(report.absent_files, ["resources.json", "dataset.json"]);
    let keys: Vec<String> = ds.metrics.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(keys, ["web-1/cpu_util", "web-2/cpu_util"]);
    let w1 = &ds.metrics[0];
    assert_eq!(w1.len(), 10);
    assert!(w1.timestamps.windows(2).all(|w| w[0] < w[1]), "sorted and de-duplicated");
    assert_eq!(ds.metrics[1].len(), 9, "web-2 has a gap");
    assert_eq!(ds.events.len(), 2);
    assert!(ds.events[0].ts < ds.events[1].ts, "events sorted");
    assert_eq!(report.out_of_order_events, 1);
    assert_eq!(ds.events[1].extra["ticket"], "OPS-1");
    assert_eq!(ds.failures[0].kind, "oom");
}

/// A valid tiny dataset in CSV, to break one file at a time.
fn tiny(dir: &Path) {
    std::fs::write(dir.join("hosts.csv"), "host,zone,rack,cpu_cores,mem_gb\nh1,z1,,8,32\nh2,z2,r1,8,32\n").expect("w");
    std::fs::write(
        dir.join("metrics.csv"),
        "timestamp,host,metric,value\n1000,h1,cpu_util,0.5\n1000,h2,cpu_util,0.4\n2000,h1,cpu_util,NaN\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("resources.json"),
        r#"[{"id":"a","kind":"service","host":"h1","criticality":2,"depends_on":["b"]},{"id":"b","kind":"database","host":"h2","criticality":3}]"#,
    )
    .expect("w");
    std::fs::write(dir.join("events.jsonl"), "{\"ts\":1000,\"kind\":\"deploy_started\",\"host\":\"h1\"}\n").expect("w");
    std::fs::write(dir.join("failures.csv"), "host,timestamp,kind\nh2,5000,oom\n").expect("w");
}

fn read_err(setup: impl FnOnce(&Path)) -> DatasetError {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    setup(dir.path());
    read_dataset(dir.path(), LoadOptions::default()).expect_err("must be refused")
}

fn invalid_at(e: &DatasetError) -> (Location, String) {
    match e {
        DatasetError::Invalid { location, reason, .. } => (*location, reason.clone()),
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn the_tiny_dataset_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    let (ds, rep) = read_dataset(dir.path(), LoadOptions::default()).expect("valid");
    assert_eq!((ds.metric_rows(), rep.missing_values), (3, 1));
}

#[test]
fn bad_metric_rows_name_file_line_and_reason() {
    let put = |rows: &'static str| {
        move |d: &Path| std::fs::write(d.join("metrics.csv"), format!("timestamp,host,metric,value\n{rows}")).expect("w")
    };

    let e = read_err(put("1000,h1,cpu_util,0.5\n2000,h1,cpu_util,abc\n"));
    assert_eq!(invalid_at(&e), (Location::Line(3), "`value` is not a number: \"abc\"".into()));
    assert!(e.to_string().ends_with("metrics.csv line 3: `value` is not a number: \"abc\""), "{e}");

    let e = read_err(put("1000,h1,cpu_util,inf\n"));
    assert_eq!(invalid_at(&e), (Location::Line(2), "value is infinite (inf)".into()));
    let e = read_err(put("1000,h1,cpu_util,1\n1000,h1,cpu_util,-inf\n"));
    assert_eq!(invalid_at(&e).0, Location::Line(3));

    let e = read_err(put("1000,h9,cpu_util,0.5\n"));
    assert_eq!(invalid_at(&e), (Location::Line(2), "unknown host \"h9\" (not in hosts.csv)".into()));

    let e = read_err(put("1.5e3,h1,cpu_util,0.5\n"));
    assert_eq!(invalid_at(&e), (Location::Line(2), "`timestamp` is not an integer (ms since epoch): \"1.5e3\"".into()));

    let e = read_err(put("1000,,cpu_util,0.5\n"));
    assert_eq!(invalid_at(&e), (Location::Line(2), "empty `host`".into()));
}

#[test]
fn skip_invalid_rows_counts_instead_of_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    std::fs::write(dir.path().join("metrics.csv"), "timestamp,host,metric,value\n1000,h1,m,1\n2000,h1,m,oops\n3000,h9,m,1\n4000,h1,m,2\n")
        .expect("w");
    let (ds, rep) = read_dataset(dir.path(), LoadOptions { skip_invalid_rows: true }).expect("skips");
    assert_eq!(rep.skipped_rows, 2);
    assert!(rep.first_skipped.as_deref().is_some_and(|s| s.ends_with("line 3: `value` is not a number: \"oops\"")));
    assert_eq!(ds.metrics[0].timestamps, vec![1000, 4000]);
}

#[test]
fn missing_files_and_columns_are_named() {
    let e = read_err(|d| std::fs::remove_file(d.join("hosts.csv")).expect("rm"));
    assert!(matches!(e, DatasetError::MissingFile { file: "hosts.csv", .. }), "{e}");
    let e = read_err(|d| std::fs::remove_file(d.join("metrics.csv")).expect("rm"));
    assert!(matches!(e, DatasetError::MissingFile { file: "metrics.parquet", .. }), "{e}");
    let e = read_err(|d| std::fs::write(d.join("metrics.csv"), "timestamp,host,metric\n1,h1,m\n").expect("w"));
    match &e {
        DatasetError::MissingColumn { column, found, .. } => {
            assert_eq!(*column, "value");
            assert_eq!(found, &["timestamp", "host", "metric"]);
        }
        other => panic!("expected MissingColumn, got {other}"),
    }
    assert!(e.to_string().contains("missing column `value` (found: timestamp, host, metric)"), "{e}");
}

#[test]
fn corrupt_or_incomplete_parquet_is_refused_with_the_file_named() {
    let e = read_err(|d| std::fs::write(d.join("metrics.parquet"), b"PAR1 this is not parquet at all").expect("w"));
    assert!(matches!(e, DatasetError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("metrics.parquet: cannot decode"), "{e}");

    // Half a real file: the footer is gone.
    let src = tempfile::tempdir().expect("tempdir");
    write_dataset(&small(), src.path(), MetricsFormat::Parquet).expect("write");
    let bytes = std::fs::read(src.path().join("metrics.parquet")).expect("read");
    let e = read_err(|d| std::fs::write(d.join("metrics.parquet"), &bytes[..bytes.len() / 2]).expect("w"));
    assert!(e.to_string().contains("metrics.parquet: cannot decode"), "{e}");

    // A valid parquet file without the `value` column, and one with text timestamps.
    use polars::prelude::*;
    let write_pq = |d: &Path, mut df: DataFrame| {
        let f = std::fs::File::create(d.join("metrics.parquet")).expect("create");
        ParquetWriter::new(f).finish(&mut df).expect("write parquet");
    };
    let e = read_err(|d| {
        let df = df!("timestamp" => [1i64], "host" => ["h1"], "metric" => ["m"]).expect("df");
        write_pq(d, df)
    });
    assert!(matches!(e, DatasetError::MissingColumn { column: "value", .. }), "{e}");
    let e = read_err(|d| {
        let df = df!("timestamp" => ["x"], "host" => ["h1"], "metric" => ["m"], "value" => [1.0]).expect("df");
        write_pq(d, df)
    });
    assert!(e.to_string().ends_with("metrics.parquet: column `timestamp` has type str, expected i64"), "{e}");
    let e = read_err(|d| {
        let df = df!("timestamp" => [1i64, 2], "host" => ["h1", "h7"], "metric" => ["m", "m"], "value" => [1.0, 2.0]).expect("df");
        write_pq(d, df)
    });
    assert_eq!(invalid_at(&e), (Location::Row(1), "unknown host \"h7\" (not in hosts.csv)".into()));
}

#[test]
fn inventory_and_event_problems_are_named() {
    let e = read_err(|d| {
        std::fs::write(
            d.join("resources.json"),
            r#"[{"id":"a","kind":"s","host":"h1","criticality":1,"depends_on":["b"]},{"id":"b","kind":"s","host":"h1","criticality":1,"depends_on":["a"]}]"#,
        )
        .expect("w")
    });
    assert!(e.to_string().ends_with("resources.json: dependency cycle: a -> b -> a"), "{e}");

    let e = read_err(|d| std::fs::write(d.join("resources.json"), "[{\"id\": 1}]").expect("w"));
    assert!(e.to_string().contains("resources.json line 1: invalid resources.json"), "{e}");

    let e = read_err(|d| {
        std::fs::write(d.join("events.jsonl"), "{\"ts\":1,\"kind\":\"config_changed\"}\n\n{\"ts\":2,\"kind\":\"boom\"}\n").expect("w")
    });
    assert!(e.to_string().contains("events.jsonl line 3: unknown event kind \"boom\""), "{e}");

    let e = read_err(|d| std::fs::write(d.join("events.jsonl"), "{\"ts\":1,\"kind\":\"config_changed\",\"host\":\"zz\"}\n").expect("w"));
    assert_eq!(invalid_at(&e), (Location::Line(1), "unknown host \"zz\" (not in hosts.csv)".into()));

    let e = read_err(|d| std::fs::write(d.join("failures.csv"), "host,timestamp,kind\nh1,soon,oom\n").expect("w"));
    assert_eq!(invalid_at(&e).0, Location::Line(2));

    let e = read_err(|d| std::fs::write(d.join("hosts.csv"), "host,zone,cpu_cores,mem_gb\nh1,z,8,32\nh1,z,8,32\n").expect("w"));
    assert!(e.to_string().ends_with("hosts.csv: host h1 is listed twice"), "{e}");

    let e = read_err(|d| std::fs::write(d.join("hosts.csv"), "host,zone,cpu_cores,mem_gb\nh1,z,eight,32\n").expect("w"));
    assert_eq!(invalid_at(&e), (Location::Line(2), "`cpu_cores` is not a number: \"eight\"".into()));
}

/// A metrics file long enough to be validated in several parallel ranges.
fn long_metrics(dir: &Path, bad: &[(usize, &str)]) {
    use std::fmt::Write as _;
    let mut text = String::from("timestamp,host,metric,value\n");
    for i in 0..300_000usize {
        let row = match bad.iter().find(|(j, _)| *j == i) {
            Some((_, row)) => (*row).to_string(),
            // h2's series only appears in the second half of the file.
            None if i >= 200_000 && i % 3 == 0 => format!("{i},h2,late,{i}"),
            None => format!("{i},h1,{},{i}", if i % 2 == 0 { "a" } else { "b" }),
        };
        writeln!(text, "{row}").expect("string");
    }
    std::fs::write(dir.join("metrics.csv"), text).expect("w");
}

#[test]
fn long_files_group_and_report_as_one_pass_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    long_metrics(dir.path(), &[]);
    let (ds, rep) = read_dataset(dir.path(), LoadOptions::default()).expect("valid");
    assert_eq!(rep.metric_rows, 300_000);
    let keys: Vec<String> = ds.metrics.iter().map(|s| s.key.to_string()).collect();
    let sizes: Vec<usize> = ds.metrics.iter().map(|s| s.len()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 300_000);
    assert_eq!(sizes[2], 33_333, "{keys:?}");
    assert!(ds.metrics.iter().all(|s| s.timestamps.windows(2).all(|w| w[0] < w[1])));

    // The first bad row in the file is the one reported, wherever the others are.
    for bad in [vec![(250_000, "250000,h9,a,1"), (260_000, "oops,h1,a,1")], vec![(40, "40,h1,a,inf"), (280_000, "280000,h9,a,1")]] {
        let dir = tempfile::tempdir().expect("tempdir");
        tiny(dir.path());
        long_metrics(dir.path(), &bad);
        let e = read_dataset(dir.path(), LoadOptions::default()).expect_err("refused");
        assert_eq!(invalid_at(&e).0, Location::Line(bad[0].0 + 2), "{e}");
        let (ds, rep) = read_dataset(dir.path(), LoadOptions { skip_invalid_rows: true }).expect("skips");
        assert_eq!(rep.skipped_rows, 2);
        assert!(rep.first_skipped.as_deref().is_some_and(|s| s.contains(&format!("line {}:", bad[0].0 + 2))), "{rep:?}");
        assert_eq!(ds.metric_rows(), 300_000 - 2);
    }
}

/// `metrics.parquet` is read a row group at a time, `metrics.csv` whole: the same rows,
/// out of time order, with duplicates, missing values and an invalid row, spread over many
/// row groups, load as the same dataset with the same report either way.
#[test]
fn a_parquet_file_of_many_row_groups_loads_as_its_csv_twin() {
    use std::fmt::Write as _;
    let mut rows: Vec<(i64, &str, &str, f64)> = Vec::new();
    for i in 0..20_000i64 {
        // Each series goes back in time every 1,000 rows; every 97th row repeats the one
        // before it with another value (the last row wins); every 50th value is missing.
        let t = (i % 1_000) * 1_000 + (i / 1_000) * 7;
        let v = if i % 50 == 0 { f64::NAN } else { i as f64 };
        rows.push((t, if i % 3 == 0 { "h2" } else { "h1" }, if i % 2 == 0 { "a" } else { "b" }, v));
        if i % 97 == 0 {
            let last = *rows.last().expect("a row");
            rows.push((last.0, last.1, last.2, v + 0.5));
        }
    }
    rows.insert(12_345, (5, "h9", "a", 1.0)); // not in hosts.csv
    let both = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
    for d in &both {
        tiny(d.path());
    }
    let mut csv = String::from("timestamp,host,metric,value\n");
    for (t, h, m, v) in &rows {
        writeln!(csv, "{t},{h},{m},{}", if v.is_nan() { String::new() } else { v.to_string() }).expect("string");
    }
    std::fs::write(both[0].path().join("metrics.csv"), csv).expect("w");
    std::fs::remove_file(both[1].path().join("metrics.csv")).expect("rm");
    write_rows(&both[1].path().join("metrics.parquet"), &rows, 1_500);

    let e = read_dataset(both[1].path(), LoadOptions::default()).expect_err("the unknown host is refused");
    assert_eq!(invalid_at(&e), (Location::Row(12_345), "unknown host \"h9\" (not in hosts.csv)".into()));
    let opts = LoadOptions { skip_invalid_rows: true };
    let (from_csv, mut csv_report) = read_dataset(both[0].path(), opts).expect("csv");
    let (from_parquet, parquet_report) = read_dataset(both[1].path(), opts).expect("parquet");
    assert_same(&from_csv, &from_parquet);
    assert_eq!(from_parquet.metric_rows(), 20_000, "duplicates dropped, the invalid row skipped");
    assert!(parquet_report.out_of_order_rows > 0 && parquet_report.duplicate_rows > 200 && parquet_report.missing_values > 0);
    assert_eq!(parquet_report.skipped_rows, 1);
    // Reports equal but for the file named (and where the skipped row is: line or row).
    csv_report.metrics_file.clone_from(&parquet_report.metrics_file);
    csv_report.first_skipped = parquet_report.first_skipped.clone();
    assert_eq!(format!("{csv_report:?}"), format!("{parquet_report:?}"));
}

/// Writes `(timestamp, host, metric, value)` rows to a Parquet file at `path`, in row
/// groups of `rows_per_group`.
fn write_rows(path: &Path, rows: &[(i64, &str, &str, f64)], rows_per_group: usize) {
    use polars::prelude::*;
    let mut df = df!(
        "timestamp" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "host" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "value" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
    )
    .expect("df");
    let f = std::fs::File::create(path).expect("create");
    ParquetWriter::new(f).with_row_group_size(Some(rows_per_group)).finish(&mut df).expect("write parquet");
}

/// A series read from `metrics.parquet` gets the room `dataset.json` says it needs when it
/// is first seen, not a vector grown by doubling; a `dataset.json` that claims far more
/// samples than the file holds gets no more room than the file's rows.
#[test]
fn series_are_sized_by_dataset_json_within_the_rows_of_the_file() {
    let (n, step) = (1_000i64, 60_000i64);
    // Time-ordered, as exporters write: every series at each step.
    let mut rows: Vec<(i64, &str, &str, f64)> = Vec::new();
    for i in 0..n {
        for (h, m) in [("h1", "a"), ("h1", "b"), ("h2", "a"), ("h2", "b")] {
            rows.push((i * step, h, m, i as f64));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    tiny(dir.path());
    std::fs::remove_file(dir.path().join("metrics.csv")).expect("rm");
    write_rows(&dir.path().join("metrics.parquet"), &rows, 700);
    let load = |meta: &str| {
        std::fs::write(dir.path().join("dataset.json"), meta).expect("w");
        let (ds, _) = read_dataset(dir.path(), LoadOptions::default()).expect("loads");
        assert_eq!(ds.metric_rows(), 4 * n as usize);
        assert!(ds.metrics.iter().all(|s| s.timestamps.len() == n as usize && s.values.len() == n as usize));
        ds.metrics.iter().map(|s| (s.timestamps.capacity(), s.values.capacity())).collect::<Vec<_>>()
    };
    // The span over the step and one more (an end given inclusive): room for 1,001 samples
    // (by doubling: 1,024); the last series gets the 997 rows left and grows from there.
    let sized = load(&format!(r#"{{"name":"t","start_ms":0,"end_ms":{},"step_ms":{step}}}"#, n * step));
    assert!(sized[..3].iter().all(|&(t, v)| t == 1_001 && v == 1_001), "{sized:?}");
    assert!(sized[3].0 >= 997 && sized[3].0 <= 2 * 997, "{sized:?}");
    // A year at 1 ms: the first series gets the file's 4,000 rows, the others grow as they come.
    let claimed = load(r#"{"name":"t","start_ms":0,"end_ms":31536000000,"step_ms":1}"#);
    assert_eq!(claimed[0], (4_000, 4_000));
    assert!(claimed[1..].iter().all(|&(t, v)| t < 2 * n as usize && v < 2 * n as usize), "{claimed:?}");
    // Without a step: grown as they come.
    let grown = load(r#"{"name":"t"}"#);
    assert!(grown.iter().all(|&(t, _)| t >= n as usize && t < 2 * n as usize), "{grown:?}");
}
