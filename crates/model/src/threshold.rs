//! The host bootstrap behind the alert-threshold choice: how far a threshold's held-back
//! precision can be trusted on another fleet.
//!
//! The held-back hosts are resampled with replacement (a fixed seed, so the choice is
//! deterministic); a candidate's precision is recomputed on every resample from its
//! per-host alert counts, and the rule asks a low quantile of those precisions (not only
//! the pooled figure) to reach a floor. False alarms crowded on a few hosts, which a
//! different fleet may not repeat the same way, then no longer pass as noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of the bootstrap rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Resamples of the held-back hosts (200).
    pub resamples: usize,
    /// Quantile of the resampled precisions that must reach the floor (0.1).
    pub quantile: f64,
    /// Precision the quantile must reach (0.8, the contract's target); the threshold
    /// choice lowers it to its target precision when that is lower.
    pub floor: f64,
    /// Seed of the resampling (fixed: the same data gives the same threshold).
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap { resamples: 200, quantile: 0.1, floor: 0.8, seed: 0x7e5_0ed }
    }
}

impl Bootstrap {
    /// One line for the model card and logs.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "precision at the {:.0}th percentile of {} resamples of the held-back hosts (with replacement, seed {:#x}) >= {}",
            self.quantile * 100.0,
            self.resamples,
            self.seed,
            self.floor
        )
    }
}

/// Host multiplicities of each resample: `resamples` rows of `n` counts, each row the
/// number of times every host of `hosts` (indices below `n`) was drawn when drawing
/// `hosts.len()` of them with replacement; hosts not in `hosts` count 0.
#[must_use]
pub fn resample_hosts(hosts: &[usize], n: usize, resamples: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..resamples)
        .map(|_| {
            let mut w = vec![0u32; n];
            if !hosts.is_empty() {
                for _ in 0..hosts.len() {
                    w[hosts[rng.random_range(0..hosts.len())]] += 1;
                }
            }
            w
        })
        .collect()
}

/// The `q` quantile (lower nearest rank) of the precision over the resamples `weights`,
/// given each host's `(true alerts, alerts)`. Resamples without any alert are left out;
/// `None` when every one is.
#[must_use]
pub fn precision_quantile(per_host: &[(u32, u32)], weights: &[Vec<u32>], q: f64) -> Option<f64> {
    let mut precs: Vec<f64> = weights
        .iter()
        .filter_map(|w| {
            let (mut hit, mut all) = (0u64, 0u64);
            for (&(h, a), &k) in per_host.iter().zip(w) {
                hit += u64::from(h) * u64::from(k);
                all += u64::from(a) * u64::from(k);
            }
            (all > 0).then(|| hit as f64 / all as f64)
        })
        .collect();
    if precs.is_empty() {
        return None;
    }
    precs.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * precs.len() as f64).ceil() as usize).clamp(1, precs.len());
    Some(precs[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resamples_draw_as_many_hosts_as_there_are_and_only_those() {
        let w = resample_hosts(&[1, 3, 4], 6, 50, 7);
        assert_eq!(w.len(), 50);
        for r in &w {
            assert_eq!(r.iter().sum::<u32>(), 3);
            assert_eq!((r[0], r[2], r[5]), (0, 0, 0));
        }
        assert_eq!(w, resample_hosts(&[1, 3, 4], 6, 50, 7), "deterministic");
        assert!(resample_hosts(&[], 2, 3, 7).iter().all(|r| r == &vec![0, 0]));
    }

    #[test]
    fn the_quantile_is_the_lower_nearest_rank_over_resamples_with_alerts() {
        // Host 0: 3 true of 3; host 1: 0 of 1; host 2: no alerts.
        let per_host = [(3, 3), (0, 1), (0, 0)];
        let weights = vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 0, 2], vec![1, 2, 0], vec![2, 1, 1]];
        // Precisions 1, 0.75, (none), 0.6, 6/7.
        assert_eq!(precision_quantile(&per_host, &weights, 0.0), Some(0.6));
        assert_eq!(precision_quantile(&per_host, &weights, 0.25), Some(0.6));
        assert_eq!(precision_quantile(&per_host, &weights, 0.5), Some(0.75));
        assert_eq!(precision_quantile(&per_host, &weights, 1.0), Some(1.0));
        assert_eq!(precision_quantile(&per_host, &weights[2..3], 0.1), None);
    }
}
