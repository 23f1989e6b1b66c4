//! Sample segments (`samples/*.seg`), read as start-up does: the bytes as a file, and the
//! bytes cut into records (`len:u16le payload`, each framed with a good checksum) so that
//! the record decoder sees them past the checksum.
#![no_main]

use harbinger_store::check_segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_segment(data);
    let mut framed = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let payload = &rest[2..2 + n];
        framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        framed.extend_from_slice(payload);
        rest = &rest[2 + n..];
    }
    let _ = check_segment(&framed);
});
