//! Lossless serde for the `f64`s of detector state.
//!
//! serde_json's default float parser (without its `float_roundtrip` feature, which this
//! crate cannot switch on without changing the whole workspace's build) may be off by one
//! ulp, so a restored detector would drift from the original. State floats are therefore
//! written as strings in Rust's shortest round-trip form (`{:?}`: `0.1`, `1e-7`, `NaN`)
//! and read back with `str::parse`, which is exact.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// One `f64` as its exact string.
pub(crate) fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{value:?}"))
}

/// One `f64` from its exact string.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
    text.parse().map_err(|_| D::Error::custom(format_args!("not a float: {text:?}")))
}

/// A `Vec<f64>` as a list of exact strings.
pub(crate) mod vec {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Item<'a>(&'a f64);

    impl Serialize for Item<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, s)
        }
    }

    pub(crate) fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(Item))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let texts = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        texts.iter().map(|t| t.parse().map_err(|_| D::Error::custom(format_args!("not a float: {t:?}")))).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct S {
        #[serde(with = "super")]
        a: f64,
        #[serde(with = "super::vec")]
        v: Vec<f64>,
    }

    #[test]
    fn floats_round_trip_bit_for_bit() -> Result<(), serde_json::Error> {
        let awkward = [0.1 + 0.2, 1.0 / 3.0, 2.0_f64.sqrt() * 1e-300, f64::MAX, f64::MIN_POSITIVE / 3.0, -0.0];
        for &a in &awkward {
            let s = S { a, v: awkward.to_vec() };
            let back: S = serde_json::from_str(&serde_json::to_string(&s)?)?;
            assert_eq!(back.a.to_bits(), a.to_bits());
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back.v), bits(&s.v));
        }
        let nan = S { a: f64::NAN, v: vec![f64::INFINITY] };
        let back: S = serde_json::from_str(&serde_json::to_string(&nan)?)?;
        assert!(back.a.is_nan() && back.v[0] == f64::INFINITY);
        Ok(())
    }
}
