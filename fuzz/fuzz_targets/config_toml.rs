//! Config files (TOML text), checked into a `Config`.
#![no_main]

use harbinger_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Config::from_toml("fuzz.toml", &String::from_utf8_lossy(data));
});
