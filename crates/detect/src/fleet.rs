//! Fleet outliers: which hosts behave unlike their peers right now, on one metric.
//!
//! A second signal for host risk beside the per-series detectors: a host whose memory is
//! rising on its own is suspicious even when its own history says "trend". Two methods
//! from augurs, over aligned recent windows (one value per host per step):
//! - [`FleetMethod::Dbscan`]: density clustering at each step; a host outside the main
//!   cluster is outlying there.
//! - [`FleetMethod::Mad`]: double median absolute deviation against the fleet.
//!
//! Both take a sensitivity in (0, 1): higher flags more.

use augurs::outlier::{DbscanDetector, MADDetector, OutlierDetector};
use serde::{Deserialize, Serialize};

/// Which augurs detector to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetMethod {
    /// DBSCAN clustering per step.
    Dbscan,
    /// Double median absolute deviation.
    Mad,
}

/// One host's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetHost {
    /// Host id.
    pub host: String,
    /// Outlying at some step of the window.
    pub outlier: bool,
    /// Steps of the window at which it was outlying.
    pub outlying_steps: usize,
    /// Its outlier score at the last step (method-specific scale; 0 = with the fleet).
    pub last_score: f64,
}

/// The fleet's verdicts, in input order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    /// Method used.
    pub method: FleetMethod,
    /// One entry per input host.
    pub hosts: Vec<FleetHost>,
}

impl FleetReport {
    /// Ids of the outlying hosts.
    pub fn outliers(&self) -> Vec<&str> {
        self.hosts.iter().filter(|h| h.outlier).map(|h| h.host.as_str()).collect()
    }
}

/// Input that cannot be compared across the fleet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// Fewer than three hosts: there is no "peer group".
    #[error("fleet outliers need at least 3 hosts, got {0}")]
    TooFewHosts(usize),
    /// Windows of different lengths.
    #[error("host {host}: window has {len} values, expected {expected} like the first host")]
    Misaligned {
        /// The host.
        host: String,
        /// Its length.
        len: usize,
        /// The first host's length.
        expected: usize,
    },
    /// NaN or infinity in a window (fill gaps before comparing).
    #[error("host {host}: value at step {step} is not finite")]
    NonFinite {
        /// The host.
        host: String,
        /// Index in its window.
        step: usize,
    },
    /// Sensitivity outside (0, 1).
    #[error("sensitivity must be in (0, 1), got {0}")]
    Sensitivity(f64),
    /// augurs refused the data.
    #[error("{method:?} outlier detection failed: {reason}")]
    Detector {
        /// The method.
        method: FleetMethod,
        /// augurs' message (its error type is not `Send`, so it is kept as text).
        reason: String,
    },
}

/// Finds the hosts whose recent window of one metric is unlike their peers'.
///
/// # Errors
/// [`FleetError`] naming the host for misaligned or non-finite windows.
pub fn fleet_outliers(windows: &[(String, Vec<f64>)], method: FleetMethod, sensitivity: f64) -> Result<FleetReport, FleetError> {
    if windows.len() < 3 {
        return Err(FleetError::TooFewHosts(windows.len()));
    }
    if !(sensitivity > 0.0 && sensitivity < 1.0) {
        return Err(FleetError::Sensitivity(sensitivity));
    }
    let expected = windows[0].1.len();
    for (host, w) in windows {
        if w.len() != expected {
            return Err(FleetError::Misaligned { host: host.clone(), len: w.len(), expected });
        }
        if let Some(step) = w.iter().position(|v| !v.is_finite()) {
            return Err(FleetError::NonFinite { host: host.clone(), step });
        }
    }
    let series: Vec<&[f64]> = windows.iter().map(|(_, w)| w.as_slice()).collect();
    let err = |e: augurs::outlier::Error| FleetError::Detector { method, reason: e.to_string() };
    let out = match method {
        FleetMethod::Dbscan => {
            let d = DbscanDetector::with_sensitivity(sensitivity).map_err(err)?;
            d.detect(&d.preprocess(&series).map_err(err)?).map_err(err)?
        }
        FleetMethod::Mad => {
            let d = MADDetector::with_sensitivity(sensitivity).map_err(err)?;
            d.detect(&d.preprocess(&series).map_err(err)?).map_err(err)?
        }
    };
    let hosts = windows
        .iter()
        .zip(&out.series_results)
        .map(|((host, _), s)| FleetHost {
            host: host.clone(),
            outlier: s.is_outlier,
            outlying_steps: s.outlier_intervals.intervals.iter().map(|i| i.end.unwrap_or(expected).saturating_sub(i.start)).sum(),
            last_score: s.scores.last().copied().unwrap_or(0.0),
        })
        .collect();
    Ok(FleetReport { method, hosts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(odd: Option<usize>) -> Vec<(String, Vec<f64>)> {
        (0..8)
            .map(|h| {
                let w = (0..60)
                    .map(|t| {
                        let base = 0.5 + 0.1 * (t as f64 / 10.0).sin() + 0.002 * ((h * 7 + t) % 5) as f64;
                        if Some(h) == odd && t >= 30 { base + 0.4 } else { base }
                    })
                    .collect();
                (format!("h{h:02}"), w)
            })
            .collect()
    }

    #[test]
    fn both_methods_flag_the_host_that_departs_from_its_peers() {
        for method in [FleetMethod::Dbscan, FleetMethod::Mad] {
            let r = fleet_outliers(&fleet(Some(3)), method, 0.5).expect("detects");
            assert_eq!(r.outliers(), ["h03"], "{method:?}: {r:?}");
            let h3 = &r.hosts[3];
            assert!(h3.outlying_steps > 0 && h3.outlying_steps <= 30, "{method:?}: only the second half departs: {h3:?}");
            let calm = fleet_outliers(&fleet(None), method, 0.5).expect("detects");
            assert!(calm.outliers().is_empty(), "{method:?}: {calm:?}");
        }
    }

    #[test]
    fn bad_input_names_the_host() {
        let mut f = fleet(None);
        f[2].1.pop();
        assert_eq!(fleet_outliers(&f, FleetMethod::Mad, 0.5), Err(FleetError::Misaligned { host: "h02".into(), len: 59, expected: 60 }));
        let mut f = fleet(None);
        f[5].1[7] = f64::NAN;
        assert_eq!(fleet_outliers(&f, FleetMethod::Dbscan, 0.5), Err(FleetError::NonFinite { host: "h05".into(), step: 7 }));
        assert_eq!(fleet_outliers(&fleet(None)[..2], FleetMethod::Mad, 0.5), Err(FleetError::TooFewHosts(2)));
        assert_eq!(fleet_outliers(&fleet(None), FleetMethod::Mad, 1.5), Err(FleetError::Sensitivity(1.5)));
    }
}
