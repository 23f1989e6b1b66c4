//! `harbinger nab score` on a tiny NAB tree.

mod common;

use common::run;

fn ts(i: usize) -> String {
    format!("2014-04-10 {:02}:{:02}:00", i / 60, i % 60)
}

#[test]
fn nab_score_prints_the_three_profiles() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data/realTest");
    let res = tmp.path().join("results/realTest");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::create_dir_all(&res).expect("mkdir");
    let n = 40;
    let mut d = String::from("timestamp,value\n");
    let mut perfect = String::from("timestamp,value,anomaly_score,label\n");
    let mut late = perfect.clone();
    for i in 0..n {
        d.push_str(&format!("{},{}\n", ts(i), i % 7));
        perfect.push_str(&format!("{},{},{},0\n", ts(i), i % 7, if i == 20 { 1.0 } else { 0.0 }));
        late.push_str(&format!("{},{},{},0\n", ts(i), i % 7, if i == 23 { 1.0 } else { 0.0 }));
    }
    std::fs::write(data.join("a.csv"), &d).expect("w");
    let labels = tmp.path().join("windows.json");
    let (data_dir, results_dir) = (tmp.path().join("data"), tmp.path().join("results"));
    let (data_s, results_s) = (data_dir.to_str().expect("utf-8"), results_dir.to_str().expect("utf-8"));
    std::fs::write(&labels, format!("{{\"realTest/a.csv\": [[\"{}.000000\", \"{}.000000\"]]}}", ts(20), ts(24))).expect("w");

    let score = |results: &str| {
        std::fs::write(res.join("a.csv"), results).expect("w");
        let args = ["nab", "score", "--data", data_s, "--labels", labels.to_str().expect("utf-8"), "--results", results_s, "--json"];
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        v["profiles"][0]["normalised"].as_f64().expect("standard score")
    };
    assert!((score(&perfect) - 100.0).abs() < 1e-9, "alarm on the first row of the window is perfect");
    let late_score = score(&late);
    assert!(late_score > 0.0 && late_score < 100.0, "a late detection earns less: {late_score}");

    // The threshold for other data keeps a margin below the detection's score (1.0), and
    // --threshold scores at a given threshold instead of optimising one.
    std::fs::write(res.join("a.csv"), &perfect).expect("w");
    let base = ["nab", "score", "--data", data_s, "--labels", labels.to_str().expect("utf-8"), "--results", results_s];
    let (code, stdout, stderr) = run(&[&base[..], &["--json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["profiles"][0]["threshold"].as_f64(), Some(1.0), "NAB's optimum: the detection's own score");
    let carried = v["for_other_data"]["thresholds"]["standard"].as_f64().expect("carried threshold");
    assert!((carried - 0.99).abs() < 1e-9, "1.0 less the default margin 0.01: {carried}");
    let (code, stdout, _) = run(&[&base[..], &["--margin", "0.25"]].concat());
    assert_eq!(code, 0);
    assert!(stdout.contains("thresholds for other data") && stdout.contains("0.750000"), "{stdout}");
    let at = |t: &str| {
        let (code, stdout, stderr) = run(&[&base[..], &["--threshold", t, "--json"]].concat());
        assert_eq!(code, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert!(v["for_other_data"].is_null(), "nothing to carry from a given threshold");
        (v["threshold_source"].as_str().map(str::to_string), v["profiles"][0]["normalised"].as_f64().expect("score"))
    };
    assert_eq!(at("0.99"), (Some("Fixed".to_string()), 100.0));
    assert_eq!(at("1.05").1, 0.0, "above every score: no alarm, the window missed");
    let (code, _, stderr) = run(&[&base[..], &["--threshold=-0.5"]].concat());
    assert_eq!(code, 1);
    assert!(stderr.contains("--threshold -0.5"), "{stderr}");
    let (code, _, stderr) = run(&[&base[..], &["--margin=-1"]].concat());
    assert_eq!(code, 1);
    assert!(stderr.contains("margin"), "{stderr}");

    // A results file with the wrong number of rows is named.
    std::fs::write(res.join("a.csv"), "timestamp,value,anomaly_score,label\n").expect("w");
    let (code, _, stderr) = run(&["nab", "score", "--data", data_s, "--labels", labels.to_str().expect("utf-8"), "--results", results_s]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a.csv"), "{stderr}");
}

#[test]
fn nab_run_writes_one_scored_row_per_input_row() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data/realTest");
    std::fs::create_dir_all(&data).expect("mkdir");
    let mut d = String::from("timestamp,value\n");
    for i in 0..600 {
        let v = if i == 500 { 1000.0 } else { 10.0 + (i % 5) as f64 };
        d.push_str(&format!("{},{v}\n", ts(i)));
    }
    std::fs::write(data.join("b.csv"), &d).expect("w");
    let out = tmp.path().join("out");
    let (code, stdout, stderr) =
        run(&["nab", "run", "--data", tmp.path().join("data").to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("wrote 1 files, 600 points"), "{stdout}");
    let text = std::fs::read_to_string(out.join("realTest/b.csv")).expect("results written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score,label"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 600);
    assert_eq!(rows[500][0], ts(500), "same order as the input");
    let score = |i: usize| rows[i][2].parse::<f64>().expect("score");
    assert!(score(500) > 0.9, "the spike is flagged: {}", score(500));
    assert!((0..500).all(|i| score(i) < 0.5), "the calm stretch is not");

    // A bad value is named with its file and line.
    std::fs::write(data.join("b.csv"), "timestamp,value\n2014-04-10 00:00:00,1\n2014-04-10 00:01:00,x\n").expect("w");
    let data_dir = tmp.path().join("data");
    let (code, _, stderr) = run(&["nab", "run", "--data", data_dir.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    let d = data_dir.display();
    assert_eq!(stderr, format!("error: running the detector over {d}: {d}/realTest/b.csv line 3: bad value \"x\" (not a number)\n"));
}
