//! The one risk step: how a host's risk and alert state advance at a tick.
//!
//! Live scoring (the engine tick behind `serve`), `eval`, `replay` and the threshold
//! choice in `train` all advance alert state through [`risk_step`] (or [`advance`], when
//! the risk is already combined), so the copies cannot drift apart. It is a pure
//! function of the state, the observation, the criticality and the tick's time.
//!
//! A host without a fresh feature row at a tick (failed, or not reporting) is silent: its
//! alert state resets, and an alerting host emits [`TransitionKind::Cleared`].

use harbinger_core::{TimestampMs, TransitionKind};

use crate::model::{AlertState, Assessment, RiskPolicy};

/// What the model saw of a host at a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Calibrated failure probability within the horizon.
    pub probability: f64,
    /// Anomaly score.
    pub anomaly: f64,
    /// Share of the model's inputs present and warm.
    pub confidence: f64,
}

impl From<&Assessment> for Observation {
    fn from(a: &Assessment) -> Self {
        Observation { probability: a.probability, anomaly: a.anomaly, confidence: a.confidence }
    }
}

/// The result of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Combined risk (`None` for a silent host).
    pub risk: Option<f64>,
    /// The alert-state change, if any.
    pub transition: Option<TransitionKind>,
}

/// Advances `state` by one observation at `now`: combines probability, anomaly and
/// criticality into risk by `policy`, then applies the hysteresis. `None` = silent host.
pub fn risk_step(state: &mut AlertState, obs: Option<&Observation>, criticality: u8, now: TimestampMs, policy: &RiskPolicy) -> Step {
    let input = obs.map(|o| (policy.risk(o.probability, o.anomaly, criticality), o.confidence));
    Step { risk: input.map(|i| i.0), transition: advance(state, input, now, policy) }
}

/// The hysteresis half of [`risk_step`], for callers that already hold the combined risk:
/// `input` is `(risk, confidence)`, or `None` for a silent host.
pub fn advance(state: &mut AlertState, input: Option<(f64, f64)>, now: TimestampMs, policy: &RiskPolicy) -> Option<TransitionKind> {
    let was = state.alerting;
    match input {
        None => {
            *state = AlertState::default();
            was.then_some(TransitionKind::Cleared)
        }
        Some((risk, confidence)) => {
            if state.step(now, risk, confidence, policy) {
                Some(TransitionKind::Entered)
            } else if was && !state.alerting {
                Some(TransitionKind::Cleared)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RiskPolicy {
        RiskPolicy {
            alert_threshold: 0.8,
            clear_threshold: 0.5,
            clear_after_ms: 120_000,
            enter_after_ms: 60_000,
            anomaly_weight: 0.0,
            criticality_exponent: [1.0; 4],
            min_confidence: 0.5,
        }
    }

    fn obs(p: f64) -> Observation {
        Observation { probability: p, anomaly: 0.0, confidence: 1.0 }
    }

    #[test]
    fn entry_waits_for_the_delay_then_clears_after_its_own() {
        let (p, mut st) = (policy(), AlertState::default());
        let mut seen = Vec::new();
        for (i, prob) in [0.9, 0.9, 0.9, 0.4, 0.4, 0.4, 0.4].into_iter().enumerate() {
            let s = risk_step(&mut st, Some(&obs(prob)), 0, i as i64 * 60_000, &p);
            assert_eq!(s.risk, Some(prob));
            seen.push(s.transition);
        }
        use TransitionKind::*;
        assert_eq!(seen, [None, Some(Entered), None, None, None, Some(Cleared), None]);
    }

    #[test]
    fn a_silent_host_clears_at_once_and_low_confidence_never_enters() {
        let (p, mut st) = (policy(), AlertState::default());
        risk_step(&mut st, Some(&obs(0.95)), 0, 0, &p);
        assert_eq!(risk_step(&mut st, Some(&obs(0.95)), 0, 60_000, &p).transition, Some(TransitionKind::Entered));
        let silent = risk_step(&mut st, None, 0, 120_000, &p);
        assert_eq!((silent.risk, silent.transition), (None, Some(TransitionKind::Cleared)));
        assert_eq!(st, AlertState::default());
        assert_eq!(risk_step(&mut st, None, 0, 180_000, &p).transition, None, "silent twice: one clear");
        let unsure = Observation { confidence: 0.2, ..obs(0.99) };
        for i in 0..5 {
            assert_eq!(risk_step(&mut st, Some(&unsure), 0, 240_000 + i * 60_000, &p).transition, None);
        }
    }

    #[test]
    fn criticality_raises_the_risk_by_the_policy() {
        let mut p = policy();
        p.criticality_exponent = [1.0, 1.0, 1.0, 2.0];
        let mut st = AlertState::default();
        let s = risk_step(&mut st, Some(&obs(0.5)), 3, 0, &p);
        assert_eq!(s.risk, Some(0.75), "1 - (1 - 0.5)^2");
    }
}
