//! Properties of the segment format: records written read back the same, a segment cut
//! anywhere keeps every whole record before the cut, and no bytes make the reader panic.

use proptest::prelude::*;

use crate::check_segment;
use crate::segment::{Chunk, Record, SamplesPayload, SegmentMeta, SegmentWriter, encode_def, scan_bytes, scan_segment};
use harbinger_core::SeriesKey;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn name() -> impl Strategy<Value = String> {
    let chars = prop_oneof![prop::char::range('a', 'z'), Just('{'), Just('"'), Just('/'), Just('é'), Just('\u{0}')];
    prop::collection::vec(chars, 0..12).prop_map(String::from_iter)
}

/// Any timestamps (deltas are zigzag varints with wrapping arithmetic, so order and
/// range do not matter) and any values, NaN payloads included.
fn chunk() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    prop::collection::vec((any::<i64>(), any::<u64>().prop_map(f64::from_bits)), 1..8).prop_map(|p| p.into_iter().unzip())
}

/// What a segment holds: series keys (ids 0..n, defined first, as a new segment starts),
/// then samples records of chunks naming those ids.
#[derive(Debug, Clone)]
struct Contents {
    keys: Vec<SeriesKey>,
    records: Vec<Vec<Chunk>>,
}

fn contents() -> impl Strategy<Value = Contents> {
    prop::collection::btree_set((name(), name()), 1..5).prop_flat_map(|keys| {
        let keys: Vec<SeriesKey> = keys.into_iter().map(|(h, m)| SeriesKey::new(h, m)).collect();
        let n = keys.len() as u32;
        let chunk = (0..n, chunk()).prop_map(|(id, (ts, vs))| (id, ts, vs));
        (Just(keys), prop::collection::vec(prop::collection::vec(chunk, 1..4), 0..5)).prop_map(|(keys, records)| Contents { keys, records })
    })
}

/// The payloads of `c`, in order.
fn payloads(c: &Contents) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (id, key) in c.keys.iter().enumerate() {
        let mut buf = Vec::new();
        assert!(encode_def(&mut buf, id as u32, key));
        out.push(buf);
    }
    for rec in &c.records {
        let mut p = SamplesPayload::default();
        for (id, ts, vs) in rec {
            p.push(*id, ts, vs);
        }
        out.push(p.bytes().to_vec());
    }
    out
}

/// A record as [`SegmentWriter::write_record`] frames it.
fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

type Read = (Vec<SeriesKey>, Vec<Vec<(u32, Vec<i64>, Vec<u64>)>>);

/// Every record of `data` as the reader sees it (values as bits: NaN payloads matter).
fn read_back(data: &[u8]) -> (Read, crate::segment::ScanEnd) {
    let (mut keys, mut records) = (Vec::new(), Vec::new());
    let end = scan_bytes(data, |rec| {
        match rec {
            Record::Def { id, key } => {
                if id as usize != keys.len() {
                    return Err("ids out of order");
                }
                keys.push(key);
            }
            Record::Samples(mut r) => {
                let mut chunks = Vec::new();
                while let Some((id, ts, vs)) = r.next_chunk()? {
                    chunks.push((id, ts, vs.iter().map(|v| v.to_bits()).collect()));
                }
                records.push(chunks);
            }
        }
        Ok(())
    });
    ((keys, records), end)
}

fn expected(c: &Contents) -> Read {
    let records = c
        .records
        .iter()
        .map(|r| r.iter().map(|(id, ts, vs)| (*id, ts.clone(), vs.iter().map(|v| v.to_bits()).collect())).collect())
        .collect();
    (c.keys.clone(), records)
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn records_written_read_back_the_same(c in contents()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{:020}.seg", 1));
        let meta = SegmentMeta { path: path.clone(), seq: 1, min_ts: None, max_ts: None, samples: 0, bytes: 0 };
        let mut w = SegmentWriter::open(meta, None).expect("create");
        for p in payloads(&c) {
            w.write_record(&p).expect("write");
        }
        w.sync().expect("sync");
        let len = w.meta.bytes;
        drop(w);

        let data = std::fs::read(&path).expect("read");
        prop_assert_eq!(data.len() as u64, len);
        let (got, end) = read_back(&data);
        prop_assert_eq!(got, expected(&c));
        prop_assert_eq!(&end, &crate::segment::ScanEnd { good_len: len, problem: None });
        // The file reader and start-up's replay agree.
        let mut records = 0;
        let file_end = scan_segment(&path, |_| { records += 1; Ok(()) }).expect("scan");
        prop_assert_eq!((file_end, records), (end, c.keys.len() + c.records.len()));
        let check = check_segment(&data);
        let samples: usize = c.records.iter().flatten().map(|(_, ts, _)| ts.len()).sum();
        prop_assert_eq!((check.series, check.samples, check.good_len, check.problem), (c.keys.len() as u64, samples as u64, len, None));
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_segment_cut_anywhere_keeps_the_whole_records_before_the_cut(c in contents(), cut in any::<prop::sample::Index>()) {
        let mut data = Vec::new();
        let mut ends = vec![0u64];
        for p in payloads(&c) {
            frame(&mut data, &p);
            ends.push(data.len() as u64);
        }
        let at = cut.index(data.len() + 1);
        let check = check_segment(&data[..at]);
        // The good length is the last record boundary at or before the cut.
        let boundary = *ends.iter().rev().find(|e| **e <= at as u64).expect("0 is a boundary");
        prop_assert_eq!(check.good_len, boundary);
        prop_assert_eq!(check.problem.is_some(), boundary != at as u64, "{:?}", check.problem);
        let (got, _) = read_back(&data[..at]);
        let (keys, records) = expected(&c);
        let whole = ends.iter().filter(|e| **e > 0 && **e <= at as u64).count();
        let kept_keys = whole.min(keys.len());
        prop_assert_eq!(&got.0[..], &keys[..kept_keys]);
        prop_assert_eq!(&got.1[..], &records[..whole - kept_keys]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        // Raw (nearly always a bad header or checksum), and framed with a good checksum so
        // the payload decoder sees the bytes, after the definitions of a few series.
        let check = check_segment(&bytes);
        prop_assert!(check.good_len <= bytes.len() as u64);
        let mut data = Vec::new();
        for (id, key) in [SeriesKey::new("h", "m"), SeriesKey::new("h", "n")].iter().enumerate() {
            let mut def = Vec::new();
            encode_def(&mut def, id as u32, key);
            frame(&mut data, &def);
        }
        let defs = data.len() as u64;
        frame(&mut data, &bytes);
        let check = check_segment(&data);
        prop_assert!(check.good_len == defs || check.good_len == data.len() as u64, "{check:?}");
        prop_assert_eq!(check.series >= 2, true);
    }

    #[test]
    fn payloads_with_a_flipped_byte_never_panic(c in contents(), flip in any::<(prop::sample::Index, prop::sample::Index)>(), x in 1..=255u8) {
        // A flipped byte inside a payload that still carries a good checksum (a bug before
        // the write, not a bad disk): the decoder must refuse or accept it, never panic.
        let mut ps = payloads(&c);
        let p = flip.0.index(ps.len());
        let i = flip.1.index(ps[p].len());
        ps[p][i] ^= x;
        let mut data = Vec::new();
        for p in &ps {
            frame(&mut data, p);
        }
        let check = check_segment(&data);
        prop_assert!(check.good_len <= data.len() as u64);
    }
}
