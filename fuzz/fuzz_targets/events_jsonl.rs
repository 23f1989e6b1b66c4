//! `events.jsonl` lines (file or request body).
#![no_main]

use harbinger_core::event::parse_events_jsonl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_events_jsonl(&String::from_utf8_lossy(data), "fuzz");
});
