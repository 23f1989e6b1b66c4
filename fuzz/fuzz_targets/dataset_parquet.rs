//! `metrics.parquet` in an otherwise valid dataset. polars panics on some damaged files;
//! `read_dataset` turns those into errors, so only a panic that escapes it is a crash.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use harbinger_dataset::{LoadOptions, read_dataset};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        std::fs::write(dir.join("hosts.csv"), "host,zone,rack,cpu_cores,mem_gb\nh1,z1,,8,32\nh2,z2,r1,8,32\n").expect("write");
        dir
    })
}

fuzz_target!(
    init: harbinger_fuzz::let_polars_panics_unwind(),
    |data: &[u8]| {
        let dir = dir();
        std::fs::write(dir.join("metrics.parquet"), data).expect("write");
        for skip_invalid_rows in [false, true] {
            let _ = read_dataset(dir, LoadOptions { skip_invalid_rows });
        }
    }
);
