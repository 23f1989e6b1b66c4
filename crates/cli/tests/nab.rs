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
        let args = [
            "nab", "score", "--data", data_s, "--labels",
            labels.to_str().expect("utf-8"), "--results", results_s, "--json",
        ];
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        v["profiles"][0]["normalised"].as_f64().expect("standard score")
    };
    assert!((score(&perfect) - 100.0).abs() < 1e-9, "alarm on the first row of the window is perfect");
    let late_score = score(&late);
    assert!(late_score > 0.0 && late_score < 100.0, "a late detection earns less: {late_score}");

    // A results file with the wrong number of rows is named.
    std::fs::write(res.join("a.csv"), "timestamp,value,anomaly_score,label\n").expect("w");
    let (code, _, stderr) = run(&[
        "nab", "score", "--data", data_s, "--labels",
        labels.to_str().expect("utf-8"), "--results", results_s,
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a.csv"), "{stderr}");
}
