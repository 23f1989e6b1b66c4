//! harbinger-detect: streaming anomaly detection for univariate metric series.
//!
//! Feed `(timestamp, value)` one point at a time to a [`StreamingDetector`] and get an
//! anomaly score in [0, 1] computed only from the points up to and including this one:
//! no look-ahead, no labels. Scores are comparable across series (they are transformed
//! tail probabilities, so one threshold serves a fleet), and the default detector's whole
//! state is serde-serialisable, so a service resumes after a restart where it left off.
//!
//! # Layout
//! - [`StreamingDetector`]: the object-safe runtime trait.
//! - [`DefaultDetector`] (module [`detector`]): the default algorithm; its docs list the
//!   steps.
//! - [`DetectorParams`] checked into [`ValidParams`] (module [`params`]): one
//!   configuration for all series.
//! - [`run_nab_dir`] (module [`nab`]): a detector over a Numenta Anomaly Benchmark
//!   corpus, writing NAB results files; `examples/nab_eval.rs` scores them.
//! - [`HostDetector`] (module [`host`]): one detector per metric of a host, combined
//!   into a host score with the driving metrics named.
//! - [`fleet_outliers`] (module [`fleet`]): hosts unlike their peers on a metric right
//!   now (augurs DBSCAN and MAD), a second signal for host risk.
//! - [`error`]: [`ParamsError`], [`DetectError`].
//!
//! # Measured (default params)
//! On the NAB v1.1 **dev** corpus in `shared/datasets/nab` (41 files, 64 windows; the
//! two held-back categories, realKnownCause and realTweets, were never run), scored by
//! `harbinger-nab` with thresholds optimised as NAB does:
//!
//! | profile | score |
//! |---|---|
//! | standard | 77.06 |
//! | reward_low_FP_rate | 73.06 |
//! | reward_low_FN_rate | 80.54 |
//!
//! Reproduce with `cargo run --release --example nab_eval -- --split` (the `--split`
//! line scores each half of the files at the threshold optimised on the other half:
//! 76.30 and 75.37). The params were chosen by a coordinate search on these same 41
//! files, so expect less on unseen data: Numenta's HTM scores 75.5 on these dev files and
//! 63.4 on the held-back ones. `--loco` scores each category at the thresholds fitted on
//! the other four, pooled as one corpus, the thresholds carried with [`TRANSFER_MARGIN`]
//! (the best mean score within 0.01 either side, not NAB's exact optimum): 76.64
//! standard with these params, 76.80 when the params are also re-chosen per fold by a
//! coordinate search on the other four that lowers none of them, 73.84 by one that
//! maximises their pooled score (at NAB's exact optimum: 75.46, 74.38, 72.84; see the
//! `nab-loco` section of BENCHMARKS.md). The margin itself was chosen after seeing the
//! LOCO at margins 0 to 0.03 (every margin from 0.005 to 0.02 gives 75.38 or more, 0.03
//! gives 73.21), so it too was fitted on these categories. Throughput of `update`: about 1.7 M points/s on one core
//! (release; the example's `--bench`).

pub mod detector;
pub mod error;
mod exact;
pub mod fleet;
pub mod host;
pub mod nab;
pub mod params;
mod stats;

pub use detector::DefaultDetector;
pub use error::{DetectError, ParamsError};
pub use fleet::{FleetError, FleetHost, FleetMethod, FleetReport, fleet_outliers};
pub use host::{HostDetector, HostScore};
pub use nab::{RunReport, TRANSFER_MARGIN, run_nab_dir};
pub use params::{DetectorParams, ValidParams};

/// A streaming anomaly detector for one univariate series.
///
/// Object-safe, so configuration can choose the implementation (`Box<dyn
/// StreamingDetector>`).
pub trait StreamingDetector: Send + Sync + std::fmt::Debug {
    /// Feeds one point — `ts` in milliseconds since the Unix epoch
    /// (`harbinger_core::TimestampMs`), `value` the sample — and returns its anomaly score
    /// in [0, 1], computed from this point and the earlier ones only.
    ///
    /// A non-finite `value` (NaN, ±inf) is skipped: it scores 0 and leaves the state as
    /// it was.
    fn update(&mut self, ts: i64, value: f64) -> f64;
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP_MS: i64 = 300_000;

    /// A deterministic pseudo-random stream in [-1, 1) (xorshift), so tests need no RNG crate.
    fn noise(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed.max(1);
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1_u64 << 52) as f64 - 1.0
        }
    }

    /// A noisy daily sine, 5-minute steps.
    fn noisy_sine(n: usize, seed: u64) -> Vec<(i64, f64)> {
        let mut r = noise(seed);
        (0..n)
            .map(|i| {
                let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
                (1_400_000_000_000 + i as i64 * STEP_MS, 10.0 + 3.0 * phase.sin() + 0.3 * r())
            })
            .collect()
    }

    fn run(d: &mut impl StreamingDetector, points: &[(i64, f64)]) -> Vec<f64> {
        points.iter().map(|&(t, v)| d.update(t, v)).collect()
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn scores_are_in_unit_interval_and_deterministic() {
        let points = noisy_sine(3000, 7);
        let a = run(&mut DefaultDetector::default(), &points);
        let b = run(&mut DefaultDetector::default(), &points);
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn no_look_ahead() {
        let k = 1500;
        let base = noisy_sine(3000, 11);
        let mut changed = base.clone();
        for (i, p) in changed.iter_mut().enumerate().skip(k) {
            p.1 = if i % 2 == 0 { 1e6 } else { -42.0 };
        }
        let a = run(&mut DefaultDetector::default(), &base);
        let b = run(&mut DefaultDetector::default(), &changed);
        assert_eq!(bits(&a[..k]), bits(&b[..k]));
        assert_ne!(bits(&a[k..]), bits(&b[k..]));
    }

    #[test]
    fn restored_state_continues_bit_for_bit() -> Result<(), serde_json::Error> {
        let mut points = noisy_sine(4000, 3);
        points[2500].1 += 8.0;
        let mut original = DefaultDetector::default();
        run(&mut original, &points[..1700]);
        let json = serde_json::to_string(&original)?;
        let mut restored: DefaultDetector = serde_json::from_str(&json)?;
        assert_eq!(serde_json::to_string(&restored)?, json);
        let a = run(&mut original, &points[1700..]);
        let b = run(&mut restored, &points[1700..]);
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().any(|&s| s > 0.5), "the restored stretch should contain an alarm");
        Ok(())
    }

    #[test]
    fn state_with_mismatched_params_is_rejected() -> Result<(), Box<dyn std::error::Error>> {
        let d = DefaultDetector::default();
        let mut v: serde_json::Value = serde_json::to_value(&d)?;
        v["params"]["level_rates"] = serde_json::json!([0.5]);
        assert!(serde_json::from_value::<DefaultDetector>(v).is_err());
        Ok(())
    }

    /// The operating point: about the threshold NAB's standard profile picks for the
    /// default params (0.70 on the dev corpus).
    const ALARM: f64 = 0.7;

    #[test]
    fn spike_in_noisy_sine_scores_high_and_baseline_stays_low() {
        let spike_at = 2000;
        let mut points = noisy_sine(3000, 5);
        points[spike_at].1 += 6.0;
        let scores = run(&mut DefaultDetector::default(), &points);
        let near = scores[spike_at..spike_at + 3].iter().copied().fold(0.0, f64::max);
        assert!(near > 0.9, "score near the spike: {near}");
        let warm = DetectorParams::default().warmup as usize;
        let baseline = scores[warm..spike_at].iter().copied().fold(0.0, f64::max);
        assert!(baseline < ALARM, "baseline max {baseline}");
        let after = scores[spike_at + 3..].iter().filter(|&&s| s >= ALARM).count();
        assert!(after <= 1, "{after} alarms after the spike");

        // A flat line with a little noise and no event: nothing near an alarm.
        let mut r = noise(9);
        let flat: Vec<(i64, f64)> = (0..3000).map(|i| (i as i64 * STEP_MS, 5.0 + 0.01 * r())).collect();
        let scores = run(&mut DefaultDetector::default(), &flat);
        let max = scores.iter().copied().fold(0.0, f64::max);
        assert!(max < ALARM, "max {max} on a noisy flat line");
        // An exactly flat line scores 0 throughout.
        let scores = run(&mut DefaultDetector::default(), &flat.iter().map(|&(t, _)| (t, 5.0)).collect::<Vec<_>>());
        assert!(scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let points = noisy_sine(1000, 13);
        let mut clean = DefaultDetector::default();
        let mut dirty = DefaultDetector::default();
        let a = run(&mut clean, &points);
        let mut b = Vec::new();
        for (i, &(t, v)) in points.iter().enumerate() {
            if i % 100 == 50 {
                for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                    assert_eq!(dirty.update(t, bad), 0.0);
                }
            }
            b.push(dirty.update(t, v));
        }
        assert_eq!(bits(&a), bits(&b));
        let mut fresh = DefaultDetector::default();
        assert_eq!(fresh.update(0, f64::NAN), 0.0);
        assert_eq!(fresh.points_seen(), 0);
    }

    #[test]
    fn detectors_are_object_safe_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DefaultDetector>();
        let mut boxed: Box<dyn StreamingDetector> = Box::new(DefaultDetector::default());
        assert_eq!(boxed.update(0, 1.0), 0.0);
    }
}
