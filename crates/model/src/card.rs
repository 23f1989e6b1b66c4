//! The model card: a Markdown page beside every artifact saying what it was trained on,
//! how, and how well it did on held-back data.

use std::fmt::Write;

use crate::model::Model;

fn iso(ms: i64) -> String {
    harbinger_core::time::format_seconds(ms)
}

fn opt(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), |f| format!("{f:.3}")),
        Some(serde_json::Value::Null) | None => "n/a".into(),
        Some(other) => other.to_string(),
    }
}

/// The detector's configuration as `field value` pairs.
fn detector_text(p: &harbinger_detect::DetectorParams) -> String {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::Object(map)) => map.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        _ => "n/a".into(),
    }
}

/// Renders the card.
pub fn render(m: &Model) -> String {
    let c = &m.card;
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: harbinger failure model {}\n", m.version);
    let _ = writeln!(s, "- Trained: {} by harbinger {} (artifact format {})", iso(m.trained_at_ms), m.harbinger_version, m.format_version);
    let _ = writeln!(s, "- Predicts: probability that a host fails within {} h", m.horizon_ms as f64 / 3_600_000.0);
    match m.imminence.as_ref().filter(|im| !im.companions.is_empty()) {
        Some(im) => {
            let _ = writeln!(s, "- Leading learner: `{}` (the highest PR-AUC on held-back data)", m.learner.name());
            let names: Vec<String> = im.companions.iter().map(|c| format!("`{}`", c.learner.name())).collect();
            let _ = writeln!(s, "- Stacked with it: {}", names.join(", "));
        }
        None => {
            let _ = writeln!(s, "- Learner: `{}`", m.learner.name());
        }
    }
    if let Some(im) = &c.imminence {
        let _ = writeln!(
            s,
            "- Stacked with a {} h imminence model (`{}`; held-back PR-AUC {:.3} on its own labels); stacked PR-AUC {:.3} for the {} h horizon",
            im.horizon_ms as f64 / 3_600_000.0,
            im.learner,
            im.pr_auc_short,
            im.pr_auc_stacked,
            m.horizon_ms as f64 / 3_600_000.0
        );
    }
    let _ = writeln!(
        s,
        "- Alerting: enter at risk ≥ {:.3} held for {} min, clear below {:.3} held for {} min",
        m.policy.alert_threshold,
        m.policy.enter_after_ms / 60_000,
        m.policy.clear_threshold,
        m.policy.clear_after_ms / 60_000
    );
    let _ = writeln!(s, "- Time scales: {}", m.schema.scales.describe());
    if let Some(rule) = &c.threshold_rule {
        let _ = writeln!(s, "- Alert threshold chosen on the held-back part: {rule}");
    }
    let _ = writeln!(s, "- Anomaly detector: {}", detector_text(m.schema.detector.params()));
    let _ = writeln!(s, "\n## Data\n");
    let _ = writeln!(s, "- Dataset: `{}`, {} hosts, {} → {}", c.dataset, c.hosts, iso(c.span_ms.0), iso(c.span_ms.1));
    let kinds: Vec<String> = c.failures_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(s, "- Failures: {}", kinds.join(", "));
    match c.held_back_hosts {
        Some(held) => {
            if let Some((tr, ho)) = c.split_failures {
                let _ = writeln!(
                    s,
                    "- Split by host: {held} of {} hosts held back over the whole period; failures {tr} on training hosts, {ho} on held-back hosts",
                    c.hosts
                );
            }
        }
        None => {
            if let Some((tr, ho)) = c.split_failures {
                let _ = writeln!(s, "- Split by failures: {tr} before the split (training), {ho} after it (held back)");
            }
            let _ = writeln!(
                s,
                "- Split by time at {}: training rows end their label window before it, held-back rows start at it",
                iso(c.split_ms)
            );
        }
    }
    let _ = writeln!(s, "- Training rows: {} ({} failure rows; healthy rows sampled)", c.train_rows, c.train_positives);
    let _ = writeln!(s, "- Held-back rows: {} ({} failure rows)", c.holdout_rows, c.holdout_positives);
    let _ = writeln!(s, "- Rows left out because a mitigation cut their outcome short: {}", c.censored_rows);
    let metrics: Vec<String> = m
        .schema
        .metrics
        .iter()
        .map(|x| {
            let mut tags = Vec::new();
            if x.bounded {
                tags.push("bounded".to_string());
            }
            if let Some(p) = x.season_buckets {
                tags.push(format!("season {:.1} h", f64::from(p) * 5.0 / 60.0));
            }
            if tags.is_empty() { format!("`{}`", x.name) } else { format!("`{}` ({})", x.name, tags.join(", ")) }
        })
        .collect();
    let _ = writeln!(s, "- Metrics read: {}", metrics.join(", "));
    let _ = writeln!(s, "- Features: {} (see `harbinger_model::features`)", m.schema.len());
    let _ = writeln!(s, "\n## Learners on held-back data\n");
    let _ = writeln!(s, "| learner | PR-AUC | log loss (calibrated) | fit s |\n|---|---|---|---|");
    for l in &c.learners {
        let _ = writeln!(s, "| {} | {:.3} | {:.4} | {:.2} |", l.learner, l.pr_auc, l.log_loss, l.fit_seconds);
    }
    let h = &c.holdout_summary;
    let _ = writeln!(s, "\n## Alerts on the held-back period (contract rule)\n");
    let _ = writeln!(
        s,
        "recall {} (predictable kinds {}), precision {}, false alarms per host-day {}, lead time median {} min (p10 {}, p90 {}); {} failures, {} alerts.",
        opt(h.get("recall")),
        opt(h.get("recall_predictable")),
        opt(h.get("precision")),
        opt(h.get("false_alarms_per_host_day")),
        opt(h.get("lead_time_median_min")),
        opt(h.get("lead_time_p10_min")),
        opt(h.get("lead_time_p90_min")),
        opt(h.get("failures")),
        opt(h.get("alerts")),
    );
    let _ = writeln!(
        s,
        "\nThe held-back period also chose the learner, the calibration and the threshold, so these figures are optimistic; `harbinger eval` on a fleet the model has not seen is the honest test."
    );
    let _ = writeln!(s, "\n## Most important features\n");
    for (n, v) in &c.top_features {
        let _ = writeln!(s, "- `{n}`: {v:.3}");
    }
    let _ = writeln!(s, "\n## Timing\n\nfeatures {:.1} s, fitting {:.1} s, whole job {:.1} s.", c.seconds.0, c.seconds.1, c.seconds.2);
    s
}
