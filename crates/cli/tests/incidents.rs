//! The incident recordings under `datasets/incidents/` load as datasets and hold the
//! incidents their README describes.

use std::path::Path;

use harbinger_dataset::{LoadOptions, read_dataset};

#[test]
fn every_incident_recording_loads_with_its_ground_truth() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/incidents");
    for (name, failures) in [
        ("memory-leak", &[("h03", "oom")][..]),
        ("bad-deploy", &[("h02", "bad_deploy")]),
        ("thermal", &[("h05", "thermal")]),
        ("fleet-false-alarm", &[]),
    ] {
        let dir = root.join(name);
        let (ds, load) = read_dataset(&dir, LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(load.skipped_rows, 0, "{name}");
        assert_eq!(ds.hosts.len(), 8, "{name}");
        assert_eq!(ds.metrics.len(), 40, "{name}: 8 hosts x 5 metrics");
        let got: Vec<(&str, &str)> = ds.failures.iter().map(|f| (f.host.as_str(), f.kind.as_str())).collect();
        assert_eq!(got, failures, "{name}");
        assert!(std::fs::metadata(dir.join("metrics.csv")).expect("metrics.csv").len() < 2_300_000, "{name} stays small");
    }
    let (ds, _) = read_dataset(&root.join("bad-deploy"), LoadOptions::default()).expect("bad-deploy");
    let kinds: Vec<&str> = ds.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["deploy_started", "deploy_succeeded", "rolled_back", "host_recovered"]);
}
