//! Honest explanations (issue 21): a factor names what drives a host's score with the
//! value seen for that host. A missing input (absent metric, stale, not warm) is never
//! shown with a made-up value, and a host without recent data has no top factors.

use std::sync::Arc;

use harbinger_core::{Factor, HostId, ManualClock, RiskScorer, SampleBatch, SeriesSamples, TimestampMs};
use harbinger_dataset::Dataset;
use harbinger_dataset::synth::{SynthParams, generate};
use harbinger_model::features::HostFeatures;
use harbinger_model::{LiveScorer, Model};

const HOUR: i64 = 3_600_000;

/// The samples of `host` before `end`, only of the metrics `keep` accepts.
fn samples(ds: &Dataset, host: &str, end: TimestampMs, keep: impl Fn(&str) -> bool) -> Vec<SeriesSamples> {
    ds.metrics
        .iter()
        .filter(|s| s.key.host.as_str() == host && keep(s.key.metric.as_str()))
        .map(|s| {
            let mut part = SeriesSamples::new(s.key.clone());
            for (&t, &v) in s.timestamps.iter().zip(&s.values) {
                if t <= end {
                    part.push(t, v);
                }
            }
            part
        })
        .collect()
}

/// The host's raw feature row at `at` (NaN = missing), computed apart from the scorer.
fn raw_row(m: &Model, series: &[SeriesSamples], at: TimestampMs) -> Vec<f64> {
    let mut f = HostFeatures::new(&m.schema);
    for s in series {
        let Some(mi) = m.schema.metric_index(s.key.metric.as_str()) else { continue };
        for (&t, &v) in s.timestamps.iter().zip(&s.values) {
            f.push(mi, t, v);
        }
    }
    let mut row = vec![f64::NAN; m.schema.len()];
    f.write(&m.schema, at, &mut row);
    row
}

fn index(m: &Model, f: &Factor) -> usize {
    m.feature_names().iter().position(|n| *n == f.name).unwrap_or_else(|| panic!("{} is not a feature", f.name))
}

/// Every top factor was seen (finite, equal to the host's own feature value), moved the
/// score, and they come largest |contribution| first.
fn assert_seen_and_ranked(m: &Model, host: &str, factors: &[Factor], row: &[f64]) {
    assert!(!factors.is_empty() && factors.len() <= 5, "{host}: {factors:?}");
    for f in factors {
        let j = index(m, f);
        assert!(f.value.is_finite(), "{host}: {} has no seen value: {f:?}", f.name);
        assert!(f.contribution != 0.0 && f.contribution.is_finite(), "{host}: {f:?}");
        // The fleet feature is filled from the other hosts; every other value is the host's own.
        if f.name != "host.fleet_z_max" {
            assert!(row[j].is_finite(), "{host}: {} is missing for this host, yet a top factor: {f:?}", f.name);
            assert!(
                (f.value - row[j]).abs() <= 1e-9 * row[j].abs().max(1.0),
                "{host}: {} = {} but the host's value is {}",
                f.name,
                f.value,
                row[j]
            );
        }
    }
    assert!(factors.windows(2).all(|w| w[0].contribution.abs() >= w[1].contribution.abs()), "{host}: {factors:?}");
}

#[test]
fn factors_name_seen_values_and_hosts_without_recent_data_have_none() {
    let m = Model::embedded_default().expect("embedded model");
    let ds = generate(&SynthParams { hosts: 6, days: 1.0, seed: 11, ..SynthParams::default() }).expect("valid params").dataset;
    let t0 = ds.metrics.iter().filter_map(|s| s.timestamps.first().copied()).min().expect("samples");
    let now = t0 + 12 * HOUR;
    let first = m.schema.metrics[0].name.clone();
    // h000: every metric; h001: only the model's first metric; h002: nothing at all;
    // h003: every metric, but silent for the last 2 hours (stale).
    let full = samples(&ds, "h000", now, |_| true);
    let partial = samples(&ds, "h001", now, |k| k == first);
    let stale = samples(&ds, "h003", now - 2 * HOUR, |_| true);
    let clock = Arc::new(ManualClock::new(now));
    let live = LiveScorer::new(m.clone(), no_reload(), clock, None, None);
    live.set_inventory(&ds.hosts, &ds.resources);
    live.observe_samples(&SampleBatch { series: full.clone() });
    live.observe_samples(&SampleBatch { series: partial.clone() });
    live.observe_samples(&SampleBatch { series: stale });
    let ids: Vec<HostId> = ["h000", "h001", "h002", "h003"].into_iter().map(HostId::new).collect();
    let r = live.score_hosts(&ids).expect("inventory hosts");

    // No data, and stale data: confidence 0 and no top factors (nothing seen drives them).
    for (i, why) in [(2, "never sent data"), (3, "silent for 2 h")] {
        assert_eq!(r[i].confidence, 0.0, "{why}: {:?}", r[i]);
        assert!(r[i].factors.is_empty(), "{why}: no factor can name what drives the score: {:?}", r[i].factors);
        assert!(r[i].risk.is_finite() && r[i].failure_probability.is_finite());
    }

    // Real data: the factors are the host's own values, ranked by contribution.
    assert!(r[0].confidence > 0.9, "{:?}", r[0]);
    let row0 = raw_row(&m, &full, r[0].at);
    assert_seen_and_ranked(&m, "h000", &r[0].factors, &row0);
    let ex = live.explain_host(&ids[0]).expect("explain");
    assert_eq!(ex.risk.factors, r[0].factors, "explain's top factors are the score's");
    assert_eq!(ex.all_factors.len(), m.schema.len(), "every feature is listed");
    let expected_top: Vec<&Factor> = ex.all_factors.iter().filter(|f| f.value.is_finite() && f.contribution != 0.0).take(5).collect();
    assert_eq!(r[0].factors.iter().collect::<Vec<_>>(), expected_top, "the top factors lead the full list");

    // One metric of several: the others are missing, never a top factor, never a value.
    assert!(r[1].confidence > 0.0 && r[1].confidence < r[0].confidence, "{:?}", r[1]);
    let row1 = raw_row(&m, &partial, r[1].at);
    assert_seen_and_ranked(&m, "h001", &r[1].factors, &row1);
    let ex = live.explain_host(&ids[1]).expect("explain");
    assert_eq!(ex.all_factors.len(), m.schema.len());
    let missing = ex.all_factors.iter().position(|f| f.value.is_nan()).expect("the absent metrics' features are missing");
    assert!(ex.all_factors[missing..].iter().all(|f| f.value.is_nan()), "missing inputs come last, all marked missing");
    for f in &ex.all_factors {
        let j = index(&m, f);
        if f.name != "host.fleet_z_max" {
            assert_eq!(f.value.is_nan(), row1[j].is_nan(), "{f:?} vs the host's value {}", row1[j]);
        }
    }
    let other = &m.schema.metrics[1].name;
    assert!(ex.all_factors.iter().filter(|f| f.name.starts_with(&format!("{other}."))).all(|f| f.value.is_nan()), "{other} was never sent");

    let ex = live.explain_host(&ids[2]).expect("explain");
    assert!(ex.risk.factors.is_empty());
    assert_eq!(ex.all_factors.len(), m.schema.len());
    assert!(ex.all_factors.iter().all(|f| f.value.is_nan()), "no value was seen, none is shown: {:?}", &ex.all_factors[..3]);
    assert!(live.explain_host(&ids[3]).expect("explain").risk.factors.is_empty());
}

/// Scorers under test never reload: their source refuses to.
fn no_reload() -> harbinger_model::ModelSource {
    harbinger_model::ModelSource::new(std::path::Path::new("unused"), |d| Err(format!("no model at {} in this test", d.display())))
}
