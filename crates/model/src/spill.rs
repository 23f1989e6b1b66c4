//! The rows of hosts computed in later blocks, written to disk as the first block reads
//! the metrics file, so that each later block reads only its own hosts' rows instead of
//! decoding the whole file again (see [`crate::train`]'s memory budget).
//!
//! The hosts are cut into buckets; each bucket has a file of chunks, one chunk per batch
//! of the source (empty when the batch had none of its rows), so the chunks of any set
//! of buckets read together come back in the source's order. A chunk: the row count
//! (u32), the source's latest timestamp after the batch (i64), the compressed length
//! (u32), then zstd of the series numbers (u32), timestamps (i64) and values (f64), as
//! columns, little-endian.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use harbinger_core::{HostId, SeriesKey};
use harbinger_dataset::{DatasetError, MetricRow};

/// zstd's fastest level: the spill is written once and read once.
const LEVEL: i32 = 1;

#[derive(Default)]
struct Columns {
    series: Vec<u32>,
    ts: Vec<i64>,
    value: Vec<f64>,
}

/// Writes the rows of bucketed hosts as a source is read.
pub(crate) struct SpillWriter {
    dir: tempfile::TempDir,
    files: Vec<BufWriter<File>>,
    bucket_of_host: HashMap<HostId, usize>,
    bucket_of_series: Vec<Option<usize>>,
    columns: Vec<Columns>,
    scratch: Vec<u8>,
    keys: Vec<SeriesKey>,
    /// Rows and compressed bytes written.
    pub rows: u64,
    pub bytes: u64,
}

fn io_error(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io { path: path.to_path_buf(), source }
}

impl SpillWriter {
    /// A spill of `buckets` (each a list of hosts) in a fresh temporary directory.
    pub(crate) fn new(buckets: &[Vec<HostId>]) -> Result<SpillWriter, DatasetError> {
        let dir = tempfile::Builder::new().prefix("harbinger-spill-").tempdir().map_err(|e| io_error(&std::env::temp_dir(), e))?;
        let mut files = Vec::with_capacity(buckets.len());
        for b in 0..buckets.len() {
            let path = dir.path().join(format!("bucket-{b}"));
            files.push(BufWriter::new(File::create(&path).map_err(|e| io_error(&path, e))?));
        }
        let bucket_of_host = buckets.iter().enumerate().flat_map(|(b, hosts)| hosts.iter().map(move |h| (h.clone(), b))).collect();
        let columns = (0..buckets.len()).map(|_| Columns::default()).collect();
        Ok(SpillWriter {
            dir,
            files,
            bucket_of_host,
            bucket_of_series: Vec::new(),
            columns,
            scratch: Vec::new(),
            keys: Vec::new(),
            rows: 0,
            bytes: 0,
        })
    }

    /// Writes the rows of `batch` (series numbered as in `keys`) of bucketed hosts, one
    /// chunk per bucket; `latest`: the source's latest timestamp after the batch.
    pub(crate) fn write(&mut self, keys: &[SeriesKey], batch: &[MetricRow], latest: i64) -> Result<(), DatasetError> {
        while self.bucket_of_series.len() < keys.len() {
            let key = &keys[self.bucket_of_series.len()];
            self.bucket_of_series.push(self.bucket_of_host.get(&key.host).copied());
            self.keys.push(key.clone());
        }
        for r in batch {
            if let Some(Some(b)) = self.bucket_of_series.get(r.series as usize) {
                let c = &mut self.columns[*b];
                c.series.push(r.series);
                c.ts.push(r.ts);
                c.value.push(r.value);
            }
        }
        for (b, (c, file)) in self.columns.iter_mut().zip(&mut self.files).enumerate() {
            let n = c.series.len();
            self.scratch.clear();
            self.scratch.reserve(n * 20);
            self.scratch.extend(c.series.iter().flat_map(|s| s.to_le_bytes()));
            self.scratch.extend(c.ts.iter().flat_map(|t| t.to_le_bytes()));
            self.scratch.extend(c.value.iter().flat_map(|v| v.to_le_bytes()));
            let path = self.dir.path().join(format!("bucket-{b}"));
            let packed = if n == 0 { Vec::new() } else { zstd::bulk::compress(&self.scratch, LEVEL).map_err(|e| io_error(&path, e))? };
            let too_long = |what: &str| io_error(&path, std::io::Error::other(format!("a spilled chunk of {what} is over 4 GiB")));
            let header_n = u32::try_from(n).map_err(|_| too_long("rows"))?;
            let header_len = u32::try_from(packed.len()).map_err(|_| too_long("bytes"))?;
            let mut header = [0u8; 16];
            header[..4].copy_from_slice(&header_n.to_le_bytes());
            header[4..12].copy_from_slice(&latest.to_le_bytes());
            header[12..].copy_from_slice(&header_len.to_le_bytes());
            file.write_all(&header).and_then(|()| file.write_all(&packed)).map_err(|e| io_error(&path, e))?;
            self.rows += n as u64;
            self.bytes += 16 + packed.len() as u64;
            c.series.clear();
            c.ts.clear();
            c.value.clear();
        }
        Ok(())
    }

    /// Flushes the files; the spill is read back with [`Spill::reader`].
    pub(crate) fn finish(self) -> Result<Spill, DatasetError> {
        let SpillWriter { dir, files, rows, bytes, keys, .. } = self;
        let buckets = files.len();
        for (b, f) in files.into_iter().enumerate() {
            let path = dir.path().join(format!("bucket-{b}"));
            f.into_inner().map_err(|e| io_error(&path, e.into_error()))?;
        }
        tracing::info!(rows, bytes, buckets, "rows of later blocks spilled");
        Ok(Spill { dir, buckets, keys })
    }
}

/// The spilled rows, by bucket; removed from disk when dropped.
pub(crate) struct Spill {
    dir: tempfile::TempDir,
    buckets: usize,
    keys: Vec<SeriesKey>,
}

impl Spill {
    /// Reads the rows of `buckets`, batch by batch as the source came.
    pub(crate) fn reader(&self, buckets: Range<usize>) -> Result<SpillReader, DatasetError> {
        let mut files = Vec::new();
        for b in buckets.start..buckets.end.min(self.buckets) {
            let path = self.dir.path().join(format!("bucket-{b}"));
            files.push((BufReader::new(File::open(&path).map_err(|e| io_error(&path, e))?), path));
        }
        Ok(SpillReader { files, keys: self.keys.clone(), latest: i64::MIN, packed: Vec::new() })
    }
}

/// Reads spilled buckets back ([`Spill::reader`]).
pub(crate) struct SpillReader {
    files: Vec<(BufReader<File>, PathBuf)>,
    keys: Vec<SeriesKey>,
    latest: i64,
    packed: Vec<u8>,
}

impl SpillReader {
    /// Series keys the rows' series numbers index.
    pub(crate) fn keys(&self) -> &[SeriesKey] {
        &self.keys
    }

    /// The source's latest timestamp after the batches read so far.
    pub(crate) fn latest_ms(&self) -> i64 {
        self.latest
    }

    /// The next batch's rows of the buckets into `out`; `false` at the end.
    pub(crate) fn next_batch(&mut self, out: &mut Vec<MetricRow>) -> Result<bool, DatasetError> {
        out.clear();
        let mut any = false;
        for (file, path) in &mut self.files {
            let damaged = |what: String| DatasetError::Decode { path: path.clone(), reason: what };
            let mut header = [0u8; 16];
            match file.read_exact(&mut header) {
                Ok(()) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
                Err(e) => return Err(io_error(path, e)),
            }
            let n = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
            self.latest = self.latest.max(i64::from_le_bytes(header[4..12].try_into().unwrap_or_default()));
            let len = u32::from_le_bytes(header[12..].try_into().unwrap_or_default()) as usize;
            if n == 0 {
                continue;
            }
            self.packed.resize(len, 0);
            file.read_exact(&mut self.packed).map_err(|e| io_error(path, e))?;
            let raw = zstd::bulk::decompress(&self.packed, n * 20).map_err(|e| damaged(format!("a spilled chunk: {e}")))?;
            if raw.len() != n * 20 {
                return Err(damaged(format!("a spilled chunk of {n} rows holds {} bytes", raw.len())));
            }
            let (series, rest) = raw.split_at(n * 4);
            let (ts, value) = rest.split_at(n * 8);
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
            out.extend(series.chunks_exact(4).zip(ts.chunks_exact(8)).zip(value.chunks_exact(8)).map(|((s, t), v)| MetricRow {
                series: u32::from_le_bytes(s.try_into().unwrap_or_default()),
                ts: word(t) as i64,
                value: f64::from_bits(word(v)),
            }));
        }
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(series: u32, ts: i64, value: f64) -> MetricRow {
        MetricRow { series, ts, value }
    }

    /// Each bucket's rows come back batch by batch in the source's order, with the
    /// source's latest time after each batch; rows of hosts in no bucket are not kept;
    /// a damaged chunk is an error naming the file.
    #[test]
    fn spilled_buckets_read_back_batch_by_batch() {
        let hosts = |names: &[&str]| names.iter().map(|h| HostId::new(*h)).collect::<Vec<_>>();
        let mut w = SpillWriter::new(&[hosts(&["a"]), hosts(&["b", "c"])]).expect("spill");
        let mut keys = vec![SeriesKey::new("a", "cpu"), SeriesKey::new("b", "cpu"), SeriesKey::new("z", "cpu")];
        w.write(&keys, &[row(0, 10, 1.0), row(1, 10, 2.0), row(2, 10, 3.0)], 10).expect("write");
        keys.push(SeriesKey::new("c", "mem"));
        w.write(&keys, &[row(3, 20, f64::NAN), row(1, 25, 4.0)], 25).expect("write");
        w.write(&keys, &[row(0, 30, 5.0)], 30).expect("write");
        assert_eq!(w.rows, 5, "the row of z, in no bucket, is not kept");
        let spill = w.finish().expect("finish");

        let mut r = spill.reader(1..2).expect("reader");
        assert_eq!(r.keys().len(), 4);
        let mut out = Vec::new();
        assert!(r.next_batch(&mut out).expect("batch 1"));
        assert_eq!((out.clone(), r.latest_ms()), (vec![row(1, 10, 2.0)], 10));
        assert!(r.next_batch(&mut out).expect("batch 2"));
        assert_eq!(out.len(), 2);
        assert!(out[0].series == 3 && out[0].ts == 20 && out[0].value.is_nan(), "{out:?}");
        assert_eq!((out[1], r.latest_ms()), (row(1, 25, 4.0), 25));
        assert!(r.next_batch(&mut out).expect("batch 3"), "an empty chunk is still a batch");
        assert_eq!((out.len(), r.latest_ms()), (0, 30));
        assert!(!r.next_batch(&mut out).expect("end"));

        let mut both = spill.reader(0..2).expect("reader");
        let mut all = Vec::new();
        while both.next_batch(&mut out).expect("batch") {
            all.extend(out.iter().map(|r| (r.series, r.ts)));
        }
        assert_eq!(all, [(0, 10), (1, 10), (3, 20), (1, 25), (0, 30)]);

        // A chunk whose compressed bytes were overwritten.
        let path = spill.dir.path().join("bucket-0");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20..24].copy_from_slice(&[0xff; 4]);
        std::fs::write(&path, bytes).expect("write");
        let err = spill.reader(0..1).expect("reader").next_batch(&mut out).expect_err("damaged");
        assert!(err.to_string().contains("bucket-0"), "{err}");
    }
}
