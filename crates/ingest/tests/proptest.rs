//! Properties of the remote-write decoder: `encode` → `decode` gives back the samples
//! (staleness markers dropped and counted, plain NaN kept, as documented), the in-place
//! decoder agrees with prost + `convert`, and no input makes it panic.

use harbinger_ingest::remote_write::prompb::{Label, Sample, TimeSeries, WriteRequest};
use harbinger_ingest::remote_write::{RemoteWriteError, STALE_NAN_BITS, SeriesCache, convert, decode, decode_with, encode};
use proptest::prelude::*;

const LIMIT: usize = 1 << 24;

fn name() -> impl Strategy<Value = String> {
    let chars = prop_oneof![prop::char::range('a', 'z'), Just('_'), Just(':'), Just('"'), Just('\\'), Just('\n'), Just('é')];
    prop::collection::vec(chars, 1..10).prop_map(String::from_iter)
}

/// Finite values, plain NaN and staleness markers.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
        1 => Just(f64::NAN),
        1 => Just(f64::from_bits(STALE_NAN_BITS)),
    ]
}

fn samples() -> impl Strategy<Value = Vec<Sample>> {
    prop::collection::vec((any::<i64>(), value()).prop_map(|(timestamp, value)| Sample { value, timestamp }), 0..6)
}

/// A series Prometheus would send: `__name__`, `instance`, maybe `job`, in any order.
fn plain_series() -> impl Strategy<Value = TimeSeries> {
    (name(), name(), prop::option::of(name()), samples(), any::<prop::sample::Index>()).prop_map(|(n, host, job, samples, rot)| {
        let mut labels = vec![Label { name: "__name__".into(), value: n }, Label { name: "instance".into(), value: host }];
        if let Some(job) = job {
            labels.push(Label { name: "job".into(), value: job });
        }
        let k = rot.index(labels.len());
        labels.rotate_left(k);
        TimeSeries { labels, samples }
    })
}

/// Any labelled series: well-known names and others, possibly empty or missing.
fn any_series() -> impl Strategy<Value = TimeSeries> {
    let label_name =
        prop_oneof![Just("__name__".to_string()), Just("instance".to_string()), Just("host".to_string()), Just("job".to_string()), name()];
    let label = (label_name, prop_oneof![Just(String::new()), name()]).prop_map(|(name, value)| Label { name, value });
    (prop::collection::vec(label, 0..5), samples()).prop_map(|(labels, samples)| TimeSeries { labels, samples })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encoded_samples_decode_back(timeseries in prop::collection::vec(plain_series(), 0..6)) {
        let req = WriteRequest { timeseries };
        let d = decode(&encode(&req), LIMIT).expect("an encoded request decodes");
        let mut stale = 0;
        let mut expected = Vec::new();
        for ts in &req.timeseries {
            let get = |n: &str| ts.labels.iter().find(|l| l.name == n).map(|l| l.value.clone()).unwrap_or_default();
            let kept: Vec<&Sample> = ts.samples.iter().filter(|s| s.value.to_bits() != STALE_NAN_BITS).collect();
            stale += ts.samples.len() - kept.len();
            if !kept.is_empty() {
                let times: Vec<i64> = kept.iter().map(|s| s.timestamp).collect();
                // Protobuf leaves out a double equal to 0.0, so -0.0 arrives as 0.0 (as it
                // does from Prometheus).
                let values: Vec<f64> = kept.iter().map(|s| if s.value == 0.0 { 0.0 } else { s.value }).collect();
                expected.push((format!("{}/{}", get("instance"), get("__name__")), times, bits(&values)));
            }
        }
        let got: Vec<(String, Vec<i64>, Vec<u64>)> =
            d.batch.series.iter().map(|s| (s.key.to_string(), s.timestamps.clone(), bits(&s.values))).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(d.dropped.get("stale_marker").copied().unwrap_or(0), stale as u64);
        prop_assert!(d.dropped.keys().all(|k| *k == "stale_marker"), "{:?}", d.dropped);
    }

    #[test]
    fn the_in_place_decoder_agrees_with_prost_and_convert(timeseries in prop::collection::vec(any_series(), 0..6)) {
        let req = WriteRequest { timeseries };
        let body = encode(&req);
        let cache = SeriesCache::new(64);
        let cold = decode_with(&body, LIMIT, &cache).expect("decodes");
        let warm = decode_with(&body, LIMIT, &cache).expect("decodes again, from the cache");
        // prost reads the same bytes into messages, then `convert` maps them.
        let raw = snap::raw::Decoder::new().decompress_vec(&body).expect("snappy");
        let want = convert(<WriteRequest as prost::Message>::decode(raw.as_slice()).expect("protobuf"));
        // NaN != NaN: compare values as bits.
        let view = |d: &harbinger_ingest::remote_write::DecodedWrite| {
            (d.batch.series.iter().map(|s| (s.key.to_string(), s.timestamps.clone(), bits(&s.values))).collect::<Vec<_>>(), d.dropped.clone())
        };
        prop_assert_eq!(view(&cold), view(&want));
        prop_assert_eq!(view(&warm), view(&want));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        // As a body (nearly always refused as snappy), and as the protobuf inside a valid
        // snappy block, so the protobuf reader sees the bytes.
        let _ = decode(&bytes, LIMIT);
        let framed = snap::raw::Encoder::new().compress_vec(&bytes).expect("compresses");
        if let Err(e) = decode(&framed, LIMIT) {
            prop_assert!(matches!(e, RemoteWriteError::Protobuf(_)), "{e}");
        }
    }

    #[test]
    fn cut_or_flipped_bodies_never_panic(timeseries in prop::collection::vec(any_series(), 1..4), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let pb = prost::Message::encode_to_vec(&WriteRequest { timeseries });
        let at = cut.index(pb.len() + 1);
        let mut flipped = pb.clone();
        let i = flip.0.index(flipped.len());
        flipped[i] ^= flip.1 | 1;
        let cache = SeriesCache::new(8);
        for raw in [&pb[..at], &flipped[..]] {
            let body = snap::raw::Encoder::new().compress_vec(raw).expect("compresses");
            let _ = decode_with(&body, LIMIT, &cache);
        }
    }
}

/// Regressions (found by `the_in_place_decoder_agrees_with_prost_and_convert`): `convert`
/// counted a series without samples as `missing_name: 0`, and the staleness markers of a
/// series without a name as `missing_name`; the decoder counts neither.
#[test]
fn convert_counts_what_it_drops_as_the_decoder_does() {
    let stale = Sample { value: f64::from_bits(STALE_NAN_BITS), timestamp: 1 };
    let req = WriteRequest {
        timeseries: vec![
            TimeSeries { labels: vec![], samples: vec![] },
            TimeSeries { labels: vec![Label { name: "instance".into(), value: "h".into() }], samples: vec![stale] },
        ],
    };
    let want = decode(&encode(&req), LIMIT).expect("decodes");
    assert_eq!(want.dropped.into_iter().collect::<Vec<_>>(), [("stale_marker", 1)]);
    assert_eq!(convert(req).dropped.into_iter().collect::<Vec<_>>(), [("stale_marker", 1)]);
}
