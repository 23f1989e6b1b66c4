//! Append-only sample segments.
//!
//! A segment is a file `samples/<first-seq>.seg` of records:
//!
//! ```text
//! record  := len:u32le crc32(payload):u32le payload
//! payload := 0x01 id:u32 host_len:u16 host metric_len:u16 metric        (series definition)
//!          | 0x02 count:u32 { id:u32 n:u32 t0:i64 delta:zigzag-varint*(n-1) value:f64le*n }*count
//! ```
//!
//! Every segment starts with the definitions of all series known when it was opened, so
//! a segment is readable on its own and retention can delete old segments freely.
//! A torn record at the end of the newest segment (a crash mid-write) is cut off at
//! start-up; a bad record anywhere else is reported and the rest of that segment skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use harbinger_core::{SeriesKey, StoreError, TimestampMs};

const DEF: u8 = 1;
const SAMPLES: u8 = 2;
/// Records larger than this are treated as corruption (a batch is far smaller).
const MAX_RECORD: usize = 256 << 20;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { op, path: path.to_path_buf(), source }
}

/// Appends a zigzag varint.
fn put_varint(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

/// Encodes a series definition payload. Admission ([`crate::Limits::key_fits`]) refuses
/// keys whose parts exceed `u16::MAX` bytes, so nothing is ever cut here; a key that
/// slipped through would be refused rather than truncated (`false`).
pub(crate) fn encode_def(buf: &mut Vec<u8>, id: u32, key: &SeriesKey) -> bool {
    let h = key.host.as_str().as_bytes();
    let m = key.metric.as_str().as_bytes();
    let (Ok(hl), Ok(ml)) = (u16::try_from(h.len()), u16::try_from(m.len())) else { return false };
    buf.push(DEF);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&hl.to_le_bytes());
    buf.extend_from_slice(h);
    buf.extend_from_slice(&ml.to_le_bytes());
    buf.extend_from_slice(m);
    true
}

/// Builds one samples payload from several series chunks.
#[derive(Debug, Default)]
pub(crate) struct SamplesPayload {
    buf: Vec<u8>,
    count: u32,
    pub(crate) min_ts: Option<TimestampMs>,
    pub(crate) max_ts: Option<TimestampMs>,
}

impl SamplesPayload {
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.min_ts = None;
        self.max_ts = None;
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub(crate) fn push(&mut self, id: u32, ts: &[TimestampMs], vs: &[f64]) {
        if ts.is_empty() {
            return;
        }
        if self.count == 0 {
            self.buf.push(SAMPLES);
            self.buf.extend_from_slice(&0u32.to_le_bytes());
        }
        self.count += 1;
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf.extend_from_slice(&(ts.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&ts[0].to_le_bytes());
        for w in ts.windows(2) {
            put_varint(&mut self.buf, w[1].wrapping_sub(w[0]));
        }
        for v in vs {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        let (lo, hi) = (ts[0], ts[ts.len() - 1]);
        self.min_ts = Some(self.min_ts.map_or(lo, |m| m.min(lo)));
        self.max_ts = Some(self.max_ts.map_or(hi, |m| m.max(hi)));
    }
    pub(crate) fn bytes(&mut self) -> &[u8] {
        if self.count > 0 {
            self.buf[1..5].copy_from_slice(&self.count.to_le_bytes());
        }
        &self.buf
    }
}

/// One decoded record.
pub(crate) enum Record<'a> {
    Def { id: u32, key: SeriesKey },
    Samples(SamplesReader<'a>),
}

/// Iterates the series chunks of a samples record.
pub(crate) struct SamplesReader<'a> {
    buf: &'a [u8],
    left: u32,
}

/// One series chunk: id, timestamps and values.
pub(crate) type Chunk = (u32, Vec<TimestampMs>, Vec<f64>);

impl SamplesReader<'_> {
    /// The next chunk, `Err` on malformed bytes.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Chunk>, &'static str> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let id = u32::from_le_bytes(take(&mut self.buf, 4)?.try_into().map_err(|_| "short id")?);
        let n = u32::from_le_bytes(take(&mut self.buf, 4)?.try_into().map_err(|_| "short count")?) as usize;
        if n == 0 || n > self.buf.len() {
            return Err("bad sample count");
        }
        let mut ts = Vec::with_capacity(n);
        let mut t = i64::from_le_bytes(take(&mut self.buf, 8)?.try_into().map_err(|_| "short t0")?);
        ts.push(t);
        for _ in 1..n {
            t = t.wrapping_add(get_varint(&mut self.buf)?);
            ts.push(t);
        }
        let raw = take(&mut self.buf, 8 * n)?;
        let vs = raw.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
        Ok(Some((id, ts, vs)))
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
    if buf.len() < n {
        return Err("record ends early");
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Ok(a)
}

fn get_varint(buf: &mut &[u8]) -> Result<i64, &'static str> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *take(buf, 1)?.first().ok_or("record ends early")?;
        z |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err("varint too long")
}

fn decode(payload: &[u8]) -> Result<Record<'_>, &'static str> {
    let mut buf = payload;
    match *take(&mut buf, 1)?.first().ok_or("empty record")? {
        DEF => {
            let id = u32::from_le_bytes(take(&mut buf, 4)?.try_into().map_err(|_| "short id")?);
            let hl = u16::from_le_bytes(take(&mut buf, 2)?.try_into().map_err(|_| "short len")?) as usize;
            let host = std::str::from_utf8(take(&mut buf, hl)?).map_err(|_| "host is not UTF-8")?;
            let ml = u16::from_le_bytes(take(&mut buf, 2)?.try_into().map_err(|_| "short len")?) as usize;
            let metric = std::str::from_utf8(take(&mut buf, ml)?).map_err(|_| "metric is not UTF-8")?;
            Ok(Record::Def { id, key: SeriesKey::new(host, metric) })
        }
        SAMPLES => {
            let left = u32::from_le_bytes(take(&mut buf, 4)?.try_into().map_err(|_| "short count")?);
            Ok(Record::Samples(SamplesReader { buf, left }))
        }
        _ => Err("unknown record type"),
    }
}

/// How reading a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Offset just after the last good record.
    pub(crate) good_len: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub(crate) problem: Option<String>,
}

/// Reads every record of a segment, calling `f` for each. Stops at the first bad record.
pub(crate) fn scan_segment(path: &Path, f: impl FnMut(Record<'_>) -> Result<(), &'static str>) -> Result<ScanEnd, StoreError> {
    let mut data = Vec::new();
    File::open(path).and_then(|mut file| file.read_to_end(&mut data)).map_err(io_err("read", path))?;
    Ok(scan_bytes(&data, f))
}

/// [`scan_segment`] over the bytes of a segment already in memory.
pub(crate) fn scan_bytes(data: &[u8], mut f: impl FnMut(Record<'_>) -> Result<(), &'static str>) -> ScanEnd {
    let mut off = 0usize;
    while off < data.len() {
        if data.len() - off < 8 {
            return ScanEnd { good_len: off as u64, problem: Some("truncated record header".into()) };
        }
        let len = u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        let crc = u32::from_le_bytes([data[off + 4], data[off + 5], data[off + 6], data[off + 7]]);
        if len > MAX_RECORD || data.len() - off - 8 < len {
            return ScanEnd { good_len: off as u64, problem: Some(format!("truncated record of {len} bytes")) };
        }
        let payload = &data[off + 8..off + 8 + len];
        if crc32fast::hash(payload) != crc {
            return ScanEnd { good_len: off as u64, problem: Some("checksum mismatch".into()) };
        }
        if let Err(e) = decode(payload).and_then(&mut f) {
            return ScanEnd { good_len: off as u64, problem: Some(e.to_string()) };
        }
        off += 8 + len;
    }
    ScanEnd { good_len: off as u64, problem: None }
}

/// Metadata of a segment file, kept in memory.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub(crate) path: PathBuf,
    pub(crate) seq: u64,
    pub(crate) min_ts: Option<TimestampMs>,
    pub(crate) max_ts: Option<TimestampMs>,
    pub(crate) samples: u64,
    pub(crate) bytes: u64,
}

impl SegmentMeta {
    pub(crate) fn note(&mut self, lo: Option<TimestampMs>, hi: Option<TimestampMs>, samples: u64) {
        if let Some(lo) = lo {
            self.min_ts = Some(self.min_ts.map_or(lo, |m| m.min(lo)));
        }
        if let Some(hi) = hi {
            self.max_ts = Some(self.max_ts.map_or(hi, |m| m.max(hi)));
        }
        self.samples += samples;
    }
}

/// File name of segment `seq`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// Sequence numbers of the segments in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".seg").and_then(|s| s.parse::<u64>().ok()) {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

thread_local! {
    /// Directory fsyncs done on this thread (a new segment makes one); tests read it.
    pub(crate) static DIR_SYNCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// fsyncs a directory, so the entries created in it are durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()?;
    DIR_SYNCS.with(|c| c.set(c.get() + 1));
    Ok(())
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    pub(crate) meta: SegmentMeta,
    file: BufWriter<File>,
    /// Bytes written since the last fsync.
    pub(crate) unsynced: u64,
}

impl SegmentWriter {
    /// Opens (creating or appending to) segment `seq`, after cutting it to `good_len`.
    pub(crate) fn open(meta: SegmentMeta, good_len: Option<u64>) -> Result<Self, StoreError> {
        let path = meta.path.clone();
        let created = !path.exists();
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err("open", &path))?;
        if created {
            // A new segment (start-up, rollover) must survive a power loss as a directory
            // entry too, not only as data: fsync the file, then its directory.
            file.sync_all().map_err(io_err("fsync", &path))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            sync_dir(dir).map_err(io_err("fsync directory", dir))?;
        }
        if let Some(len) = good_len {
            file.set_len(len).map_err(io_err("truncate", &path))?;
        }
        let bytes = file.metadata().map_err(io_err("stat", &path))?.len();
        Ok(Self { meta: SegmentMeta { bytes, ..meta }, file: BufWriter::with_capacity(1 << 20, file), unsynced: 0 })
    }

    /// Appends one record (buffered).
    pub(crate) fn write_record(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        let path = &self.meta.path;
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        hdr[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.file.write_all(&hdr).map_err(io_err("write", path))?;
        self.file.write_all(payload).map_err(io_err("write", path))?;
        let n = 8 + payload.len() as u64;
        self.meta.bytes += n;
        self.unsynced += n;
        Ok(())
    }

    /// Flushes the buffer and fsyncs the file.
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        let path = &self.meta.path;
        self.file.flush().map_err(io_err("write", path))?;
        self.file.get_ref().sync_data().map_err(io_err("fsync", path))?;
        self.unsynced = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_segment_syncs_its_directory_and_reopening_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = |seq: u64| SegmentMeta {
            seq,
            path: dir.path().join(format!("{seq:020}.seg")),
            min_ts: None,
            max_ts: None,
            samples: 0,
            bytes: 0,
        };
        let syncs = || DIR_SYNCS.with(std::cell::Cell::get);
        let before = syncs();
        let mut w = SegmentWriter::open(meta(1), None).expect("create");
        w.write_record(b"x").expect("write");
        w.sync().expect("sync");
        assert_eq!(syncs(), before + 1, "creating a segment fsyncs its directory");
        drop(w);
        let w = SegmentWriter::open(meta(1), Some(9)).expect("reopen");
        assert_eq!(w.meta.bytes, 9);
        assert_eq!(syncs(), before + 1, "reopening an existing segment makes no new entry");
        SegmentWriter::open(meta(2), None).expect("rollover");
        assert_eq!(syncs(), before + 2, "a rollover's segment is synced too");
    }

    #[test]
    fn varints_round_trip_extremes() {
        for v in [0i64, 1, -1, 63, -64, 64, 60_000, -60_000, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut s = b.as_slice();
            assert_eq!(get_varint(&mut s), Ok(v));
            assert!(s.is_empty());
        }
    }

    #[test]
    fn payload_round_trips_and_detects_corruption() {
        let mut p = SamplesPayload::default();
        p.push(7, &[1000, 61_000, 121_000], &[0.5, 0.25, -3.0]);
        p.push(2, &[5], &[1e300]);
        let bytes = p.bytes().to_vec();
        let Ok(Record::Samples(mut r)) = decode(&bytes) else { panic!("samples record expected") };
        assert_eq!(r.next_chunk(), Ok(Some((7, vec![1000, 61_000, 121_000], vec![0.5, 0.25, -3.0]))));
        assert_eq!(r.next_chunk(), Ok(Some((2, vec![5], vec![1e300]))));
        assert_eq!(r.next_chunk(), Ok(None));
        let Ok(Record::Samples(mut r)) = decode(&bytes[..bytes.len() - 3]) else { panic!("samples record expected") };
        assert!(r.next_chunk().is_ok());
        assert_eq!(r.next_chunk(), Err("record ends early"));
    }

    /// Three records on disk; one byte flipped inside the second one's payload (a value:
    /// still a well-formed record) fails its checksum: scanning stops before it, with
    /// the first record read and its end as the good length.
    #[test]
    fn a_flipped_payload_byte_is_a_checksum_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{:020}.seg", 1));
        let meta = SegmentMeta { seq: 1, path: path.clone(), min_ts: None, max_ts: None, samples: 0, bytes: 0 };
        let mut w = SegmentWriter::open(meta, None).expect("create");
        let mut lens = Vec::new();
        for (i, v) in [0.5, 0.25, -3.0].into_iter().enumerate() {
            let mut p = SamplesPayload::default();
            p.push(7, &[i as i64 * 1_000], &[v]);
            let bytes = p.bytes().to_vec();
            lens.push(8 + bytes.len() as u64);
            w.write_record(&bytes).expect("write");
        }
        w.sync().expect("sync");
        drop(w);
        let scan = |path: &Path| {
            let mut values = Vec::new();
            let end = scan_segment(path, |r| {
                let Record::Samples(mut r) = r else { return Err("samples record expected") };
                while let Some((_, _, vs)) = r.next_chunk()? {
                    values.extend(vs);
                }
                Ok(())
            })
            .expect("scan");
            (values, end)
        };
        let (values, end) = scan(&path);
        assert_eq!((values, end), (vec![0.5, 0.25, -3.0], ScanEnd { good_len: lens.iter().sum(), problem: None }));

        let mut data = std::fs::read(&path).expect("read");
        let last_of_second = (lens[0] + lens[1] - 1) as usize; // the value's last byte
        data[last_of_second] ^= 0x01;
        std::fs::write(&path, &data).expect("write");
        let (values, end) = scan(&path);
        assert_eq!(values, vec![0.5], "nothing of the corrupt record or after it is read");
        assert_eq!(end, ScanEnd { good_len: lens[0], problem: Some("checksum mismatch".into()) });
    }
}
