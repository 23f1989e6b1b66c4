//! Checks on the real NAB dev corpus (`shared/datasets/nab`, beside the clone). Without
//! the dataset these tests fail, unless `HARBINGER_ALLOW_MISSING_DATA=1` lets them skip
//! (saying so on stderr).

use std::path::{Path, PathBuf};

use harbinger_nab::{FileInput, Profile, load_windows, read_data_file, score_corpus, score_dirs, write_results_file};

/// The NAB directory; `None` (skip) only when it is missing and skipping is allowed.
fn nab_dir() -> Option<PathBuf> {
    let candidates =
        [PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/nab")), PathBuf::from("/work/shared/datasets/nab")];
    if let Some(found) = candidates.iter().find(|p| p.join("labels/combined_windows.json").is_file()) {
        return Some(found.clone());
    }
    let tried = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ");
    if std::env::var("HARBINGER_ALLOW_MISSING_DATA").as_deref() == Ok("1") {
        eprintln!("SKIPPED: NAB dataset not found at {tried} (HARBINGER_ALLOW_MISSING_DATA=1)");
        return None;
    }
    panic!("NAB dataset not found at {tried}: put NAB's data/ and labels/ there, or set HARBINGER_ALLOW_MISSING_DATA=1 to skip");
}

const FILE: &str = "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv";

fn one_file(nab: &Path, score: impl Fn(usize, &str, &[(String, String)]) -> f64) -> FileInput {
    let windows = load_windows(&nab.join("labels/combined_windows.json")).expect("labels").remove(FILE).expect("entry");
    let data = read_data_file(&nab.join("data").join(FILE)).expect("data");
    let scores = data.timestamps.iter().enumerate().map(|(i, t)| score(i, t, &windows)).collect();
    FileInput { name: FILE.to_string(), timestamps: data.timestamps, scores, windows }
}

/// Whether `t` (data spelling) is the start of a window (labels spelling, `.000000`).
fn starts_window(t: &str, windows: &[(String, String)]) -> bool {
    windows.iter().any(|(start, _)| start.strip_suffix(".000000") == Some(t))
}

#[test]
fn ec2_cpu_24ae8d_null_scores_0_and_perfect_100() {
    let Some(nab) = nab_dir() else { return };
    // NAB's null detector: 0.5 on every row. Its best threshold is "no alarm".
    let null = score_corpus(&[one_file(&nab, |_, _, _| 0.5)]).expect("scores");
    // 4032 rows, P = 604; two windows, both after P.
    assert_eq!((null.windows, null.scored_rows), (2, 4032 - 604));
    for p in &null.profiles {
        assert_eq!(p.threshold, harbinger_nab::NO_ALARM_THRESHOLD);
        assert_eq!(p.null, -2.0 * p.profile.weights().fn_);
        assert_eq!(p.normalised, 0.0, "{}", p.profile);
    }
    // The perfect detector: 1 on the first row of each window, 0 elsewhere.
    let perfect = score_corpus(&[one_file(&nab, |_, t, w| if starts_window(t, w) { 1.0 } else { 0.0 })]).expect("scores");
    for p in &perfect.profiles {
        assert_eq!(p.threshold, 1.0);
        assert_eq!(p.files[0].detected, 2);
        assert_eq!(p.normalised, 100.0, "{}", p.profile);
    }
}

#[test]
fn whole_dev_corpus_through_results_directories() {
    let Some(nab) = nab_dir() else { return };
    let labels = nab.join("labels/combined_windows.json");
    let windows = load_windows(&labels).expect("labels");
    let out = tempfile::tempdir().expect("tempdir");
    let (perfect_dir, null_dir) = (out.path().join("perfect"), out.path().join("null"));
    for (name, file_windows) in &windows {
        let data = read_data_file(&nab.join("data").join(name)).expect("data");
        let perfect: Vec<f64> = data.timestamps.iter().map(|t| if starts_window(t, file_windows) { 1.0 } else { 0.0 }).collect();
        write_results_file(&perfect_dir.join(name), name, &data, &perfect, file_windows).expect("writes");
        write_results_file(&null_dir.join(name), name, &data, &vec![0.5; perfect.len()], file_windows).expect("writes");
    }

    let s = score_dirs(&nab.join("data"), &labels, &perfect_dir).expect("scores");
    // README: 41 files, 64 windows in the dev categories.
    assert_eq!((s.files, s.windows), (41, 64));
    for p in &s.profiles {
        assert_eq!(p.normalised, 100.0, "{}", p.profile);
        // Every window starts after probation, as in NAB: S_null = -A_FN * N.
        assert_eq!(p.null, -64.0 * p.profile.weights().fn_);
    }
    let table = s.to_table();
    assert!(table.lines().any(|l| l.starts_with("realAWSCloudwatch") && l.contains("100.00")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("artificialNoAnomaly") && l.contains("n/a")), "{table}");

    let s = score_dirs(&nab.join("data"), &labels, &null_dir).expect("scores");
    for p in &s.profiles {
        assert_eq!(p.normalised, 0.0, "{}", p.profile);
    }
    assert_eq!(s.profile(Profile::Standard).categories.len(), 5);
}
