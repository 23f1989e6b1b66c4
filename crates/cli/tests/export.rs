//! `harbinger export`: what the store holds, written back as a dataset.

mod common;

use std::path::Path;

use common::{Serve, run};
use harbinger_dataset::{LoadOptions, read_dataset};

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fleet-sample")
}

/// Ingest the sample fleet, export it, read it back: the same hosts, resources, series,
/// samples (NaNs are not stored), events and failures.
#[test]
fn export_round_trips_an_ingested_dataset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let d = data.to_str().expect("utf-8");
    let (code, out, err) = run(&["--data-dir", d, "ingest", "--data", sample().to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");

    let exported = tmp.path().join("exported");
    let (code, out, err) = run(&["--data-dir", d, "export", "--out", exported.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");

    let (orig, _) = read_dataset(&sample(), LoadOptions::default()).expect("sample");
    let (back, _) = read_dataset(&exported, LoadOptions::default()).expect("the export reads back");
    assert_eq!(back.hosts, orig.hosts);
    assert_eq!(back.resources.len(), orig.resources.len());
    assert_eq!(back.metrics.len(), orig.metrics.len(), "series");
    let finite = |ds: &harbinger_dataset::Dataset| ds.metrics.iter().flat_map(|s| &s.values).filter(|v| !v.is_nan()).count();
    assert_eq!(finite(&back), finite(&orig), "samples");
    assert_eq!(back.events.len(), orig.events.len(), "events");
    assert_eq!(back.failures, orig.failures);
    assert!(exported.join("decisions.jsonl").exists());

    // A window: only the first day.
    let day = orig.meta.as_ref().and_then(|m| m.start_ms).expect("start") + 86_400_000;
    let part = tmp.path().join("day1");
    let (code, out, err) =
        run(&["--data-dir", d, "export", "--to", &day.to_string(), "--format", "csv", "--out", part.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    let (p, _) = read_dataset(&part, LoadOptions::default()).expect("reads back");
    assert!(p.metrics.iter().all(|s| s.timestamps.iter().all(|t| *t < day)));
    assert!(p.events.iter().all(|e| e.ts < day) && p.events.len() < orig.events.len());
    assert!(finite(&p) < finite(&orig) && finite(&p) > 0);

    // A running serve holds the store: a clear error, nothing half-written.
    let serve = Serve::start(&data, &[]);
    let (code, out, err) = run(&["--data-dir", d, "export", "--out", tmp.path().join("locked").to_str().expect("utf-8")]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("in use") && err.contains("harbinger serve"), "{err}");
    drop(serve);

    let (code, _, err) = run(&["--data-dir", tmp.path().join("nothing").to_str().expect("utf-8"), "export", "--out", "/tmp/never"]);
    assert_ne!(code, 0);
    assert!(err.contains("no data directory"), "{err}");
}
