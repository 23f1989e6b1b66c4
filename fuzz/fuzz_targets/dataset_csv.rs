//! The text files of a dataset directory. The first byte picks the file (`hosts.csv`,
//! `metrics.csv`, `failures.csv`, `events.jsonl`, `resources.json`, `dataset.json`), the
//! rest replaces it in an otherwise valid dataset, read strictly and skipping bad rows.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use harbinger_dataset::{LoadOptions, read_dataset};
use libfuzzer_sys::fuzz_target;

const FILES: [(&str, &str); 6] = [
    ("hosts.csv", "host,zone,rack,cpu_cores,mem_gb\nh1,z1,,8,32\nh2,z2,r1,8,32\n"),
    ("metrics.csv", "timestamp,host,metric,value\n1000,h1,cpu_util,0.5\n1000,h2,cpu_util,0.4\n2000,h1,cpu_util,NaN\n"),
    ("failures.csv", "host,timestamp,kind\nh2,5000,oom\n"),
    ("events.jsonl", "{\"ts\":1000,\"kind\":\"deploy_started\",\"host\":\"h1\"}\n"),
    (
        "resources.json",
        r#"[{"id":"a","kind":"service","host":"h1","criticality":2,"depends_on":["b"]},{"id":"b","kind":"database","host":"h2","criticality":3}]"#,
    ),
    ("dataset.json", "{\"name\":\"tiny\"}\n"),
];

/// One dataset directory for the whole run (kept until the process ends).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        for (name, text) in FILES {
            std::fs::write(dir.join(name), text).expect("write");
        }
        dir
    })
}

fuzz_target!(init: harbinger_fuzz::let_polars_panics_unwind(), |data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else { return };
    let (name, valid) = FILES[usize::from(pick) % FILES.len()];
    let dir = dir();
    std::fs::write(dir.join(name), content).expect("write");
    for skip_invalid_rows in [false, true] {
        let _ = read_dataset(dir, LoadOptions { skip_invalid_rows });
    }
    std::fs::write(dir.join(name), valid).expect("restore");
});
