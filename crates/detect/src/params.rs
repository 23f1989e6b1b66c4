//! Detector configuration: [`DetectorParams`] (serde, with defaults) checked into
//! [`ValidParams`], the only type a [`crate::DefaultDetector`] is built from.
//!
//! One configuration serves every series: nothing here is per series, and the defaults
//! are the configuration measured on NAB (see the crate docs).

use serde::{Deserialize, Serialize};

use crate::error::ParamsError;

/// Knobs of [`crate::DefaultDetector`]. Unknown fields are rejected; missing fields take
/// their [`Default`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorParams {
    /// Points at the start of a series whose score is always 0 (the models learn).
    pub warmup: u32,
    /// Smoothing rates of the level predictors, each in (0, 1]: an EWMA of the values
    /// with that rate predicts the next value (`1.0` is "the last value").
    pub level_rates: Vec<f64>,
    /// Add a time-of-day profile predictor: bins as wide as the series' step (median of
    /// its first timestamp gaps, clamped to 1 min ..= 1 h); catches a daily pattern that
    /// breaks. Irregular or missing timestamps only leave bins empty.
    pub seasonal: bool,
    /// Smoothing rate of each time-of-day bin, in (0, 1]; 1 predicts the value at the
    /// same time the previous day.
    pub seasonal_rate: f64,
    /// Smoothing rate of each predictor's error scale (EW mean absolute error), in (0, 1).
    pub error_rate: f64,
    /// Knee of the raw score: an error of `z` error scales scores `z / (z + knee)`, > 0.
    pub error_knee: f64,
    /// Points in the short-term mean of the raw score (the anomaly-likelihood step), >= 1.
    pub short_window: u32,
    /// Smoothing rate of the long-term mean and variance of that short-term mean, in (0, 1).
    pub long_rate: f64,
    /// Floor on the long-term standard deviation, > 0.
    pub min_std: f64,
    /// A value further outside the range seen so far than this fraction of the range is
    /// an anomaly by itself; `None` disables the range check.
    pub range_tolerance: Option<f64>,
    /// Surprise (in decades of tail probability) given to an out-of-range value, > 0.
    pub range_surprise: f64,
    /// After a surprise S, scores stay 0 until a surprise exceeds S decayed with this
    /// half-life, in points, > 0 (repeated alarms for one event are suppressed).
    pub hold_half_life: f64,
    /// After a reported surprise, another is reported only if it exceeds the first
    /// (decayed) by this factor, >= 1: a slowly rising surprise then raises a few alarms,
    /// not one per point.
    pub record_ratio: f64,
    /// Bins of the decayed histogram of the short-term mean; 0 disables. When earlier
    /// short-term means at least as high carry more than `empirical_min_mass`, the surprise
    /// is capped at their empirical rarity (familiar error levels, e.g. a daily spike, stop
    /// alarming).
    pub empirical_bins: u32,
    /// See `empirical_bins`, >= 0.
    pub empirical_min_mass: f64,
    /// Pseudo-count added to the empirical tail, > 0.
    pub empirical_prior: f64,
    /// Surprise (decades) that maps to score 0.9: `score = 1 - 10^(-S / score_decades)`, > 0.
    pub score_decades: f64,
}

impl Default for DetectorParams {
    /// The configuration measured on NAB (crate docs): one for all series.
    fn default() -> Self {
        DetectorParams {
            warmup: 250,
            level_rates: vec![1.0, 0.01],
            seasonal: true,
            seasonal_rate: 1.0,
            error_rate: 0.01,
            error_knee: 2.0,
            short_window: 20,
            long_rate: 0.0003,
            min_std: 0.05,
            range_tolerance: Some(0.05),
            range_surprise: 20.0,
            hold_half_life: 100.0,
            record_ratio: 1.3,
            empirical_bins: 64,
            empirical_min_mass: 1.0,
            empirical_prior: 2.0,
            score_decades: 5.0,
        }
    }
}

/// [`DetectorParams`] that passed [`DetectorParams::check`]. Serialises as the plain
/// params; deserialising checks them again.
///
/// Its `Default` is [`DetectorParams::default`], which is valid (tested).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DetectorParams", into = "DetectorParams")]
pub struct ValidParams(DetectorParams);

impl ValidParams {
    /// The checked params.
    pub fn params(&self) -> &DetectorParams {
        &self.0
    }
}

impl From<ValidParams> for DetectorParams {
    fn from(v: ValidParams) -> Self {
        v.0
    }
}

impl TryFrom<DetectorParams> for ValidParams {
    type Error = ParamsError;
    fn try_from(p: DetectorParams) -> Result<Self, ParamsError> {
        p.check()
    }
}

fn open_unit(field: &'static str, v: f64) -> Result<(), ParamsError> {
    if v > 0.0 && v < 1.0 { Ok(()) } else { Err(ParamsError::OutOfRange { field, value: v, range: "(0, 1)" }) }
}

fn half_open_unit(field: &'static str, v: f64) -> Result<(), ParamsError> {
    if v > 0.0 && v <= 1.0 { Ok(()) } else { Err(ParamsError::OutOfRange { field, value: v, range: "(0, 1]" }) }
}

fn positive(field: &'static str, v: f64) -> Result<(), ParamsError> {
    if v > 0.0 && v.is_finite() { Ok(()) } else { Err(ParamsError::OutOfRange { field, value: v, range: "(0, inf)" }) }
}

impl DetectorParams {
    /// Checks every field's range.
    ///
    /// # Errors
    /// [`ParamsError`] naming the first field out of range.
    pub fn check(self) -> Result<ValidParams, ParamsError> {
        for &r in &self.level_rates {
            half_open_unit("level_rates", r)?;
        }
        if self.level_rates.is_empty() && !self.seasonal {
            return Err(ParamsError::NoPredictor);
        }
        half_open_unit("seasonal_rate", self.seasonal_rate)?;
        open_unit("error_rate", self.error_rate)?;
        positive("error_knee", self.error_knee)?;
        if self.short_window == 0 {
            return Err(ParamsError::OutOfRange { field: "short_window", value: 0.0, range: "[1, inf)" });
        }
        open_unit("long_rate", self.long_rate)?;
        positive("min_std", self.min_std)?;
        if let Some(t) = self.range_tolerance
            && !(t >= 0.0 && t.is_finite())
        {
            return Err(ParamsError::OutOfRange { field: "range_tolerance", value: t, range: "[0, inf)" });
        }
        positive("range_surprise", self.range_surprise)?;
        positive("hold_half_life", self.hold_half_life)?;
        positive("score_decades", self.score_decades)?;
        positive("empirical_prior", self.empirical_prior)?;
        if !(self.empirical_min_mass >= 0.0 && self.empirical_min_mass.is_finite()) {
            return Err(ParamsError::OutOfRange { field: "empirical_min_mass", value: self.empirical_min_mass, range: "[0, inf)" });
        }
        if !(self.record_ratio >= 1.0 && self.record_ratio.is_finite()) {
            return Err(ParamsError::OutOfRange { field: "record_ratio", value: self.record_ratio, range: "[1, inf)" });
        }

        Ok(ValidParams(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let v = DetectorParams::default().check()?;
        assert_eq!(v, ValidParams::default());
        let json = serde_json::to_string(&v)?;
        let back: ValidParams = serde_json::from_str(&json)?;
        assert_eq!(back, v);
        // Missing fields take defaults.
        let partial: DetectorParams = serde_json::from_str(r#"{"warmup": 5}"#)?;
        assert_eq!(partial.warmup, 5);
        assert_eq!(partial.level_rates, DetectorParams::default().level_rates);
        Ok(())
    }

    #[test]
    fn bad_params_are_rejected() {
        let bad = DetectorParams { error_rate: 1.5, ..DetectorParams::default() };
        assert!(matches!(bad.check(), Err(ParamsError::OutOfRange { field: "error_rate", .. })));
        let none = DetectorParams { level_rates: vec![], seasonal: false, ..DetectorParams::default() };
        assert!(matches!(none.check(), Err(ParamsError::NoPredictor)));
        assert!(serde_json::from_str::<DetectorParams>(r#"{"warmpu": 5}"#).is_err());
        assert!(serde_json::from_str::<ValidParams>(r#"{"long_rate": 0}"#).is_err());
    }
}
