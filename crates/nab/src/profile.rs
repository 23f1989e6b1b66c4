//! NAB's application profiles: the cost weights of a true positive, a false positive and
//! a false negative.

use std::fmt;

use serde::Serialize;

/// One of NAB's three application profiles (`config/profiles.json`). Each is scored
/// independently, with its own optimised threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Profile {
    /// `standard`: A_TP = 1, A_FP = 0.11, A_FN = 1.
    #[serde(rename = "standard")]
    Standard,
    /// `reward_low_FP_rate`: A_TP = 1, A_FP = 0.22, A_FN = 1.
    #[serde(rename = "reward_low_FP_rate")]
    RewardLowFp,
    /// `reward_low_FN_rate`: A_TP = 1, A_FP = 0.11, A_FN = 2.
    #[serde(rename = "reward_low_FN_rate")]
    RewardLowFn,
}

/// Cost weights of a profile. NAB's `tnWeight` is never used and is left out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Weights {
    /// A_TP: reward for an alarm on the first row of a window.
    pub tp: f64,
    /// A_FP: cost of an alarm far from any window.
    pub fp: f64,
    /// A_FN: cost of a window without any alarm.
    pub fn_: f64,
}

impl Profile {
    /// All profiles, in NAB's order. Result arrays indexed by profile use this order.
    pub const ALL: [Profile; 3] = [Profile::Standard, Profile::RewardLowFp, Profile::RewardLowFn];

    /// The profile's cost weights (table in the spec, "Profiles").
    pub const fn weights(self) -> Weights {
        match self {
            Profile::Standard => Weights { tp: 1.0, fp: 0.11, fn_: 1.0 },
            Profile::RewardLowFp => Weights { tp: 1.0, fp: 0.22, fn_: 1.0 },
            Profile::RewardLowFn => Weights { tp: 1.0, fp: 0.11, fn_: 2.0 },
        }
    }

    /// NAB's name: `standard`, `reward_low_FP_rate` or `reward_low_FN_rate`.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::RewardLowFp => "reward_low_FP_rate",
            Profile::RewardLowFn => "reward_low_FN_rate",
        }
    }

    /// The profile with NAB name `name` (as returned by [`Profile::name`]).
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Position in [`Profile::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Profile::Standard => 0,
            Profile::RewardLowFp => 1,
            Profile::RewardLowFn => 2,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, p) in Profile::ALL.into_iter().enumerate() {
            assert_eq!(Profile::from_name(p.name()), Some(p));
            assert_eq!(p.index(), i);
        }
        assert_eq!(Profile::from_name("reward_low_fp_rate"), None);
    }

    #[test]
    fn weights_are_the_spec_table() {
        assert_eq!(Profile::Standard.weights(), Weights { tp: 1.0, fp: 0.11, fn_: 1.0 });
        assert_eq!(Profile::RewardLowFp.weights(), Weights { tp: 1.0, fp: 0.22, fn_: 1.0 });
        assert_eq!(Profile::RewardLowFn.weights(), Weights { tp: 1.0, fp: 0.11, fn_: 2.0 });
    }
}
