//! Small streaming statistics: an exponentially weighted mean/variance and the Gaussian
//! tail in decades.

use serde::{Deserialize, Serialize};

/// `ln erfc(x)`, relative error of `erfc` below 1.2e-7 everywhere (Numerical Recipes'
/// Chebyshev fit, `erfcc`), computed in log space so that far tails do not underflow.
fn ln_erfc(x: f64) -> f64 {
    let ax = x.abs();
    let t = 1.0 / (1.0 + 0.5 * ax);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ln_pos = t.ln() - ax * ax + poly;
    if x >= 0.0 { ln_pos } else { (2.0 - ln_pos.exp()).ln() }
}

/// Surprise of a standard-normal deviate `z`: `-log10 P(Z >= z)`, in decades: 0.3 at
/// `z = 0`, 2.9 at `z = 3`, 23 at `z = 10`; never negative.
pub(crate) fn normal_tail_decades(z: f64) -> f64 {
    const LN_10: f64 = std::f64::consts::LN_10;
    let ln_tail = std::f64::consts::LN_2.mul_add(-1.0, ln_erfc(z * std::f64::consts::FRAC_1_SQRT_2));
    (-ln_tail / LN_10).max(0.0)
}

/// Exponentially weighted mean and variance. The first points are averaged with rate
/// `max(rate, 1/n)`, so early estimates are plain means rather than biased to the start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ew {
    /// Points seen.
    pub(crate) n: u64,
    #[serde(with = "crate::exact")]
    pub(crate) mean: f64,
    #[serde(with = "crate::exact")]
    pub(crate) var: f64,
}

impl Ew {
    pub(crate) fn update(&mut self, x: f64, rate: f64) {
        self.n += 1;
        // n >= 1; the conversion rounds only beyond 2^53 points, harmlessly. Once n * rate
        // is 2 or more, 1 / n is at most half the rate, rounded or not: the rate, without a
        // division (two per point and predictor in the detector).
        let n = self.n as f64;
        let a = if n * rate >= 2.0 { rate } else { rate.max(1.0 / n) };
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_matches_known_values() {
        // -log10 of the upper tail at z = 0, 1, 2, 3, 5, 10.
        let known =
            [(0.0, std::f64::consts::LOG10_2), (1.0, 0.799_546), (2.0, 1.643_016), (3.0, 2.869_699), (5.0, 6.542_646), (10.0, 23.118_053)];
        for (z, want) in known {
            let got = normal_tail_decades(z);
            assert!((got - want).abs() < 1e-4 * want.max(1.0), "z={z}: {got} vs {want}");
        }
        assert!(normal_tail_decades(-8.0) < 1e-10);
        assert!(normal_tail_decades(40.0).is_finite());
    }

    #[test]
    fn ew_starts_as_plain_mean() {
        let mut e = Ew::default();
        for x in [1.0, 2.0, 3.0] {
            e.update(x, 0.01);
        }
        assert!((e.mean - 2.0).abs() < 1e-12);
        assert!((e.var - 2.0 / 3.0).abs() < 1e-12);
    }
}
