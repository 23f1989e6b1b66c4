//! Remote-write bodies: as sent (snappy block), and as the protobuf inside a valid snappy
//! block so that the protobuf reader sees the bytes. Errors are fine; panics are not.
#![no_main]

use harbinger_ingest::remote_write::{SeriesCache, decode, decode_with};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, LIMIT);
    let framed = snap::raw::Encoder::new().compress_vec(data).expect("compresses");
    let cache = SeriesCache::new(16);
    // Twice through one cache: the second pass maps series from cached keys.
    for _ in 0..2 {
        let _ = decode_with(&framed, LIMIT, &cache);
    }
});
