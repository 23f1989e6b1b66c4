//! The snapshot file format.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  89 'H' 'B' 'S' 'N' 'A' 'P' 0A
//!      8     2  format version, u16 little-endian (currently 1)
//!     10     2  flags, u16 LE, must be 0
//!     12     8  length of the uncompressed payload, u64 LE
//!     20    32  BLAKE3 hash of the uncompressed payload
//!     52     8  length of the zstd frame, u64 LE
//!     60    32  BLAKE3 hash of the zstd frame
//!     92     …  the payload, one zstd frame
//! ```
//!
//! The payload hash is the checksum [`SnapshotMeta::checksum`](crate::SnapshotMeta)
//! reports. The frame hash makes every byte of the file count: without it, a flipped bit
//! in the zstd frame header (the window size, say) can decode to the same payload and go
//! unnoticed, while the copy is in fact damaged.
//!
//! The payload is a small binary encoding, not JSON, so that every number comes back
//! with the same bits (`serde_json` parses floats to within one ulp unless its
//! `float_roundtrip` feature is on; `-0.0`, `1e300` and `1` vs `1.0` all survive here):
//!
//! ```text
//! str resource id · str resource kind · u64 seq · i64 taken_at (ms)
//! u8 0 (base) | u8 1, u64 parent seq (delta)
//! u32 n, n × (str pointer, u8 0 (absent) | u8 1, value)   -- the paths this file sets
//! u32 m, m × str pointer                                   -- paths no longer profiled
//! ```
//!
//! A `str` is a u32 LE byte length and UTF-8; a value is a tag byte: 0 null, 1 false,
//! 2 true, 3 u64, 4 i64, 5 f64 bits (8 bytes LE each), 6 str, 7 array (u32 count, values),
//! 8 object (u32 count, (str key, value) pairs), 9 number as its decimal text (only for
//! numbers that are neither u64, i64 nor f64). Nesting is limited to [`MAX_DEPTH`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use harbinger_core::TimestampMs;
use serde_json::{Map, Number, Value};

/// First bytes of every snapshot file (PNG-style: a high byte, a name, a newline).
pub(crate) const MAGIC: [u8; 8] = *b"\x89HBSNAP\n";
/// The format version this crate writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Header size in bytes.
pub(crate) const HEADER_LEN: usize = 92;
/// Largest payload read back (1 GiB): a corrupt length cannot make a read allocate more.
pub(crate) const MAX_PAYLOAD: u64 = 1 << 30;
/// Deepest nesting of arrays and objects stored in a snapshot.
pub(crate) const MAX_DEPTH: usize = 512;
/// zstd level: fast, and state documents are small.
const ZSTD_LEVEL: i32 = 3;

/// Which check a snapshot file copy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// The file does not exist.
    Missing,
    /// The file could not be read (I/O error).
    Read,
    /// Shorter than the fixed header.
    Truncated,
    /// The first eight bytes are not the snapshot magic.
    Magic,
    /// A format version (or flags) this crate does not read.
    Version,
    /// The zstd frame is damaged.
    Decompress,
    /// The zstd frame or the payload is not as long as the header says (or the payload
    /// is over 1 GiB).
    Length,
    /// The BLAKE3 hash of the zstd frame or of the payload does not match the header.
    Checksum,
    /// The payload does not decode (only possible with a matching checksum if the file
    /// was written by something else).
    Decode,
    /// The payload belongs to another resource or sequence number than its file name says.
    Identity,
}

impl Check {
    /// A short lowercase name (`"checksum"`, `"magic"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Check::Missing => "exists",
            Check::Read => "read",
            Check::Truncated => "truncated",
            Check::Magic => "magic",
            Check::Version => "version",
            Check::Decompress => "decompress",
            Check::Length => "length",
            Check::Checksum => "checksum",
            Check::Decode => "decode",
            Check::Identity => "identity",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed check and what exactly was found.
pub(crate) type CheckFailure = (Check, String);

/// What one snapshot file holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Payload {
    pub(crate) resource: String,
    pub(crate) kind: String,
    pub(crate) seq: u64,
    pub(crate) taken_at: TimestampMs,
    /// `None` for a base, the previous snapshot for a delta.
    pub(crate) parent: Option<u64>,
    /// Paths this file sets (`None`: absent at capture).
    pub(crate) set: BTreeMap<String, Option<Value>>,
    /// Paths the previous snapshot had that are no longer profiled.
    pub(crate) dropped: Vec<String>,
}

/// A decoded, verified file.
#[derive(Clone, Debug)]
pub(crate) struct Decoded {
    pub(crate) payload: Payload,
    pub(crate) hash: [u8; 32],
    pub(crate) payload_len: u64,
}

/// The file bytes for `p`, its payload hash and payload length.
pub(crate) fn encode_file(p: &Payload) -> Result<(Vec<u8>, [u8; 32], u64), String> {
    let mut w = Vec::new();
    put_str(&mut w, &p.resource)?;
    put_str(&mut w, &p.kind)?;
    w.extend_from_slice(&p.seq.to_le_bytes());
    w.extend_from_slice(&p.taken_at.to_le_bytes());
    match p.parent {
        None => w.push(0),
        Some(parent) => {
            w.push(1);
            w.extend_from_slice(&parent.to_le_bytes());
        }
    }
    put_len(&mut w, p.set.len())?;
    for (path, part) in &p.set {
        put_str(&mut w, path)?;
        match part {
            None => w.push(0),
            Some(v) => {
                w.push(1);
                put_value(&mut w, v, 0).map_err(|e| format!("path {path:?}: {e}"))?;
            }
        }
    }
    put_len(&mut w, p.dropped.len())?;
    for path in &p.dropped {
        put_str(&mut w, path)?;
    }
    let payload_len = w.len() as u64;
    if payload_len > MAX_PAYLOAD {
        return Err(format!("payload of {payload_len} bytes is over the {MAX_PAYLOAD}-byte limit"));
    }
    let hash = *blake3::hash(&w).as_bytes();
    let compressed = zstd::stream::encode_all(&w[..], ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))?;
    let mut file = Vec::with_capacity(HEADER_LEN + compressed.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&0u16.to_le_bytes());
    file.extend_from_slice(&payload_len.to_le_bytes());
    file.extend_from_slice(&hash);
    file.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    file.extend_from_slice(blake3::hash(&compressed).as_bytes());
    file.extend_from_slice(&compressed);
    Ok((file, hash, payload_len))
}

/// Verifies and decodes a file: header, length, checksum, then the payload.
pub(crate) fn decode_file(bytes: &[u8]) -> Result<Decoded, CheckFailure> {
    if bytes.len() < HEADER_LEN {
        return Err((Check::Truncated, format!("{} bytes, the header alone is {HEADER_LEN}", bytes.len())));
    }
    let (header, body) = bytes.split_at(HEADER_LEN);
    if header[..8] != MAGIC {
        return Err((Check::Magic, format!("starts with {:02x?}, not a snapshot file", &header[..8])));
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    let flags = u16::from_le_bytes([header[10], header[11]]);
    if version != FORMAT_VERSION || flags != 0 {
        return Err((
            Check::Version,
            format!("format version {version} flags {flags:#x}; this build reads version {FORMAT_VERSION} flags 0"),
        ));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&header[12..20]);
    let payload_len = u64::from_le_bytes(len8);
    if payload_len > MAX_PAYLOAD {
        return Err((Check::Length, format!("header says {payload_len} payload bytes, over the {MAX_PAYLOAD}-byte limit")));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&header[20..52]);
    len8.copy_from_slice(&header[52..60]);
    let frame_len = u64::from_le_bytes(len8);
    if frame_len != body.len() as u64 {
        return Err((Check::Length, format!("zstd frame is {} bytes, header says {frame_len}", body.len())));
    }
    let frame_hash = *blake3::hash(body).as_bytes();
    if frame_hash[..] != header[60..92] {
        return Err((Check::Checksum, format!("zstd frame hash {} != header {}", hex(&frame_hash), hex(&header[60..92]))));
    }

    let mut payload = Vec::new();
    let decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(|e| (Check::Decompress, e.to_string()))?;
    decoder.take(payload_len + 1).read_to_end(&mut payload).map_err(|e| (Check::Decompress, e.to_string()))?;
    if payload.len() as u64 != payload_len {
        return Err((
            Check::Length,
            format!(
                "payload is {}{} bytes, header says {payload_len}",
                payload.len(),
                if payload.len() as u64 > payload_len { "+" } else { "" }
            ),
        ));
    }
    let actual = *blake3::hash(&payload).as_bytes();
    if actual != hash {
        return Err((Check::Checksum, format!("payload hash {} != header {}", hex(&actual), hex(&hash))));
    }
    let payload = decode_payload(&payload).map_err(|e| (Check::Decode, e))?;
    Ok(Decoded { payload, hash, payload_len })
}

fn decode_payload(buf: &[u8]) -> Result<Payload, String> {
    let mut r = Reader { buf, pos: 0 };
    let resource = r.str()?;
    let kind = r.str()?;
    let seq = r.u64()?;
    let taken_at = r.u64()? as i64;
    let parent = match r.u8()? {
        0 => None,
        1 => Some(r.u64()?),
        t => return Err(format!("base/delta tag {t} at byte {}", r.pos - 1)),
    };
    let n = r.u32()?;
    let mut set = BTreeMap::new();
    for _ in 0..n {
        let path = r.str()?;
        let part = match r.u8()? {
            0 => None,
            1 => Some(r.value(0)?),
            t => return Err(format!("presence tag {t} at byte {}", r.pos - 1)),
        };
        set.insert(path, part);
    }
    let m = r.u32()?;
    let mut dropped = Vec::new();
    for _ in 0..m {
        dropped.push(r.str()?);
    }
    if r.pos != buf.len() {
        return Err(format!("{} trailing bytes", buf.len() - r.pos));
    }
    Ok(Payload { resource, kind, seq, taken_at, parent, set, dropped })
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of lowercase (or uppercase) hex, `None` if not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let d = |c: u8| char::from(c).to_digit(16);
            u8::try_from(d(pair[0])? * 16 + d(pair[1])?).ok()
        })
        .collect()
}

fn put_len(w: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let n = u32::try_from(n).map_err(|_| format!("{n} items or bytes is over the u32 limit"))?;
    w.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_str(w: &mut Vec<u8>, s: &str) -> Result<(), String> {
    put_len(w, s.len())?;
    w.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_value(w: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("value nested deeper than {MAX_DEPTH} levels"));
    }
    match v {
        Value::Null => w.push(0),
        Value::Bool(false) => w.push(1),
        Value::Bool(true) => w.push(2),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                w.push(3);
                w.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                w.push(4);
                w.extend_from_slice(&i.to_le_bytes());
            } else if let (true, Some(f)) = (n.is_f64(), n.as_f64()) {
                w.push(5);
                w.extend_from_slice(&f.to_bits().to_le_bytes());
            } else {
                w.push(9);
                put_str(w, &n.to_string())?;
            }
        }
        Value::String(s) => {
            w.push(6);
            put_str(w, s)?;
        }
        Value::Array(items) => {
            w.push(7);
            put_len(w, items.len())?;
            for item in items {
                put_value(w, item, depth + 1)?;
            }
        }
        Value::Object(map) => {
            w.push(8);
            put_len(w, map.len())?;
            for (k, item) in map {
                put_str(w, k)?;
                put_value(w, item, depth + 1)?;
            }
        }
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!("needs {n} bytes at byte {}, payload ends at {}", self.pos, self.buf.len())),
        }
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn str(&mut self) -> Result<String, String> {
        let at = self.pos;
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("string at byte {at} is not UTF-8"))
    }
    /// Room for at most this many items: each takes at least one byte.
    fn cap(&self, n: u32) -> usize {
        (n as usize).min(self.buf.len() - self.pos)
    }
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("value nested deeper than {MAX_DEPTH} levels at byte {}", self.pos));
        }
        let at = self.pos;
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Number(self.u64()?.into()),
            4 => Value::Number((self.u64()? as i64).into()),
            5 => {
                let f = f64::from_bits(self.u64()?);
                Value::Number(Number::from_f64(f).ok_or_else(|| format!("non-finite float at byte {at}"))?)
            }
            6 => Value::String(self.str()?),
            7 => {
                let n = self.u32()?;
                let mut items = Vec::with_capacity(self.cap(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            8 => {
                let n = self.u32()?;
                let mut map = Map::new();
                for _ in 0..n {
                    let k = self.str()?;
                    let v = self.value(depth + 1)?;
                    map.insert(k, v);
                }
                Value::Object(map)
            }
            9 => {
                let s = self.str()?;
                Value::Number(s.parse::<Number>().map_err(|e| format!("number {s:?} at byte {at}: {e}"))?)
            }
            t => return Err(format!("value tag {t} at byte {at}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Payload {
        let mut set = BTreeMap::new();
        set.insert("/config".to_owned(), Some(json!({"a": [1, -2, 1.5, 1e300, -0.0, null, true, "é∂"], "u": u64::MAX, "i": i64::MIN})));
        set.insert("/gone".to_owned(), None);
        set.insert("/n".to_owned(), Some(Value::Null));
        Payload {
            resource: "r/é".into(),
            kind: "database".into(),
            seq: 7,
            taken_at: -3,
            parent: Some(6),
            set,
            dropped: vec!["/old".into()],
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let p = sample();
        let (file, hash, len) = encode_file(&p).unwrap();
        assert_eq!(&file[..8], &MAGIC);
        let d = decode_file(&file).unwrap();
        assert_eq!(d.hash, hash);
        assert_eq!(d.payload_len, len);
        assert_eq!(d.payload.resource, p.resource);
        assert_eq!(d.payload.dropped, p.dropped);
        for (k, v) in &p.set {
            match (v, &d.payload.set[k]) {
                (Some(a), Some(b)) => assert!(crate::capture::exact_eq(a, b), "{k}"),
                (None, None) => {}
                other => panic!("{k}: {other:?}"),
            }
        }
        let neg_zero = d.payload.set["/config"].as_ref().unwrap()["a"][4].as_f64().unwrap();
        assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
    }

    #[test]
    fn every_single_byte_flip_and_truncation_is_detected() {
        let (file, _, _) = encode_file(&sample()).unwrap();
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x41;
            assert!(decode_file(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        for n in 0..file.len() {
            assert!(decode_file(&file[..n]).is_err(), "truncation to {n} bytes went unnoticed");
        }
        let mut longer = file.clone();
        longer.extend_from_slice(b"junk");
        assert!(decode_file(&longer).is_err());
    }

    #[test]
    fn checks_are_named() {
        let (file, _, _) = encode_file(&sample()).unwrap();
        assert_eq!(decode_file(&file[..10]).unwrap_err().0, Check::Truncated);
        let mut bad = file.clone();
        bad[0] = b'X';
        assert_eq!(decode_file(&bad).unwrap_err().0, Check::Magic);
        let mut bad = file.clone();
        bad[8] = 9;
        assert_eq!(decode_file(&bad).unwrap_err().0, Check::Version);
        let mut bad = file.clone();
        bad[30] ^= 1;
        assert_eq!(decode_file(&bad).unwrap_err().0, Check::Checksum);
        let mut bad = file.clone();
        bad[70] ^= 1;
        assert_eq!(decode_file(&bad).unwrap_err().0, Check::Checksum);
        let mut bad = file.clone();
        bad[19] = 0xff;
        assert_eq!(decode_file(&bad).unwrap_err().0, Check::Length);
        assert_eq!(decode_file(&file[..file.len() - 1]).unwrap_err().0, Check::Length);
    }

    #[test]
    fn hostile_payloads_do_not_panic() {
        // A payload with a matching checksum but nonsense inside: huge counts, bad tags, deep nesting.
        // resource "", kind "", seq 0, taken_at 0, base, one path "" present: 10,000 nested arrays.
        let mut deep = vec![0u8; 4 + 4 + 8 + 8 + 1];
        deep.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1]);
        deep.extend(std::iter::repeat_n([7u8, 1, 0, 0, 0], 10_000).flatten());
        let mut huge_count = vec![0u8; 4 + 4 + 8 + 8 + 1];
        huge_count.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 7, 0xff, 0xff, 0xff, 0xff]);
        for payload in [vec![0xff; 64], vec![0, 0, 0, 0, 0, 0, 0, 0], deep, huge_count] {
            let hash = *blake3::hash(&payload).as_bytes();
            let mut file = MAGIC.to_vec();
            file.extend_from_slice(&1u16.to_le_bytes());
            file.extend_from_slice(&0u16.to_le_bytes());
            file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            file.extend_from_slice(&hash);
            let frame = zstd::stream::encode_all(&payload[..], 1).unwrap();
            file.extend_from_slice(&(frame.len() as u64).to_le_bytes());
            file.extend_from_slice(blake3::hash(&frame).as_bytes());
            file.extend_from_slice(&frame);
            assert_eq!(decode_file(&file).unwrap_err().0, Check::Decode);
        }
    }

    #[test]
    fn too_deep_values_are_refused_on_write() {
        let mut v = json!(1);
        for _ in 0..(MAX_DEPTH + 2) {
            v = json!([v]);
        }
        let mut p = sample();
        p.set.insert("/deep".into(), Some(v));
        assert!(encode_file(&p).unwrap_err().contains("deeper"));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
