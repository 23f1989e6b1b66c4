//! `model.json` artifacts; a model that loads must also score without panicking.
#![no_main]

use std::path::PathBuf;

use harbinger_model::Model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Model::parse_bytes(PathBuf::from("fuzz/model.json"), data) {
        let mut row: Vec<f64> = (0..m.schema.len()).map(|i| if i % 5 == 0 { f64::NAN } else { i as f64 / 7.0 }).collect();
        let _ = m.assess(&mut row, true);
    }
});
