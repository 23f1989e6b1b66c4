//! Baselines of a stack's changes and the anomalies they flag.

#![allow(clippy::unwrap_used)]

use harbinger_change::anomaly::{AnomalyKind, Baseline, BaselineConfig};
use harbinger_change::{AppliedChange, Op, UpdateOp};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2023-11-14T00:00:00Z.
const T0: i64 = 1_699_920_000_000;

fn replace(resource: &str, path: &str, from: Value, to: Value) -> UpdateOp {
    UpdateOp { resource: resource.into(), path: path.into(), from, to, op: Op::Replace }
}

fn change(i: usize, ts_ms: i64, ops: Vec<UpdateOp>) -> AppliedChange {
    AppliedChange { ts_ms, stack: "shop".into(), change: format!("c-{i}"), ops }
}

fn usual(i: usize) -> Vec<UpdateOp> {
    let n = i as i64;
    vec![
        replace("web", "/content/server/port", json!(8000 + n), json!(8001 + n)),
        replace("web", "/content/server/workers", json!(4 + n), json!(5 + n)),
    ]
}

/// `n` usual changes, one a day at 10:30 UTC.
fn history(n: usize) -> Vec<AppliedChange> {
    (0..n).map(|i| change(i, T0 + i as i64 * DAY + 10 * HOUR + 30 * 60_000, usual(i))).collect()
}

/// A day after the history, at 10:45 UTC.
fn next(n: usize) -> i64 {
    T0 + n as i64 * DAY + 10 * HOUR + 45 * 60_000
}

#[test]
fn the_usual_change_is_not_flagged() {
    let b = Baseline::learn(&history(10));
    assert!(b.is_warm("shop"));
    assert_eq!(b.history_len("shop"), 10);
    let flags = b.flag("shop", &usual(10), next(10));
    assert!(flags.is_empty(), "{flags:#?}");
    // A new leaf beside known ones (parent /content/server known) is not new.
    let flags = b.flag("shop", &[replace("web", "/content/server/timeout_s", json!(30), json!(60))], next(10));
    assert!(flags.is_empty(), "{flags:#?}");
    // A resource the stack never changed is not flagged as a new path.
    let flags = b.flag("shop", &[replace("db", "/content/auth/secret_key", json!("a"), json!("b"))], next(10));
    assert!(flags.is_empty(), "{flags:#?}");
}

/// Kind, resource, path and op index of an anomaly.
type Flag<'a> = (AnomalyKind, Option<&'a str>, Option<&'a str>, Option<usize>);

#[test]
fn a_new_subtree_is_named_once_at_its_top() {
    let b = Baseline::learn(&history(10));
    let ops = vec![
        replace("web", "/content/server/port", json!(8010), json!(8011)),
        UpdateOp { resource: "web".into(), path: "/content/auth/secret_key".into(), from: Value::Null, to: json!("s3cr3t"), op: Op::Add },
        UpdateOp { resource: "web".into(), path: "/content/auth/issuer".into(), from: Value::Null, to: json!("me"), op: Op::Add },
        UpdateOp { resource: "web".into(), path: "/replicas".into(), from: Value::Null, to: json!(3), op: Op::Add },
    ];
    let flags = b.flag("shop", &ops, next(10));
    let got: Vec<Flag> = flags.iter().map(|a| (a.kind, a.resource.as_deref(), a.path.as_deref(), a.op_index)).collect();
    assert_eq!(
        got,
        vec![
            (AnomalyKind::NewPath, Some("web"), Some("/content/auth"), Some(1)),
            (AnomalyKind::NewPath, Some("web"), Some("/replicas"), Some(3)),
        ]
    );
    assert_eq!(
        flags[0].reason,
        "web /content/auth is new: none of the 10 earlier changes of this stack touched it or its parent \
         (they touched 2 paths of web); 2 ops under it, first /content/auth/secret_key"
    );
    let json = serde_json::to_value(&flags[0]).unwrap();
    assert_eq!(json["kind"], "new_path");
}

#[test]
fn removing_forty_keys_is_a_large_deletion() {
    let mut hist = history(10);
    // Two earlier changes removed a key or two.
    hist[3].ops.push(UpdateOp {
        resource: "web".into(),
        path: "/content/server/k".into(),
        from: json!(1),
        to: Value::Null,
        op: Op::Remove,
    });
    hist[6].ops.push(UpdateOp {
        resource: "web".into(),
        path: "/content/server/old".into(),
        from: json!({"a": 1, "b": 2}),
        to: Value::Null,
        op: Op::Remove,
    });
    let b = Baseline::learn(&hist);
    let ops: Vec<UpdateOp> = (0..40)
        .map(|i| UpdateOp {
            resource: "web".into(),
            path: format!("/content/server/key{i}"),
            from: json!(i),
            to: Value::Null,
            op: Op::Remove,
        })
        .collect();
    let flags = b.flag("shop", &ops, next(10));
    let del = flags.iter().find(|a| a.kind == AnomalyKind::LargeDeletion).unwrap();
    assert_eq!(del.reason, "removes 40 keys; usual removals per change: median 0, max 2 (MAD 0; flagged above 6)");
    assert_eq!((del.resource.as_deref(), del.op_index), (Some("web"), Some(0)));
    let big = flags.iter().find(|a| a.kind == AnomalyKind::LargeChange).unwrap();
    assert_eq!(big.reason, "changes 40 leaves; usual ops per change: median 2, max 3 (MAD 0; flagged above 10)");
    assert!(flags.iter().all(|a| a.kind != AnomalyKind::NewPath), "{flags:#?}");

    // One removed object of 40 keys counts as 40 removals.
    let subtree: serde_json::Map<String, Value> = (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
    let one = UpdateOp {
        resource: "web".into(),
        path: "/content/server/table".into(),
        from: Value::Object(subtree),
        to: Value::Null,
        op: Op::Remove,
    };
    let flags = b.flag("shop", &[one], next(10));
    assert_eq!(flags.iter().map(|a| a.kind).collect::<Vec<_>>(), vec![AnomalyKind::LargeDeletion]);
    // Five removals stay under the floor.
    assert!(b.flag("shop", &ops[..5], next(10)).is_empty());
}

#[test]
fn a_cold_baseline_flags_nothing() {
    let b = Baseline::learn(&history(2));
    assert!(!b.is_warm("shop"));
    assert_eq!((b.history_len("shop"), b.config.min_history), (2, 3));
    let ops: Vec<UpdateOp> = (0..40)
        .map(|i| UpdateOp { resource: "web".into(), path: format!("/x/k{i}"), from: json!(i), to: Value::Null, op: Op::Remove })
        .collect();
    assert!(b.flag("shop", &ops, next(2)).is_empty());
    assert!(!b.is_warm("other"));
    assert_eq!(b.history_len("other"), 0);
    assert!(b.flag("other", &ops, next(2)).is_empty());
}

#[test]
fn an_unusual_hour_is_flagged_with_enough_history() {
    // 30 changes, one a day between 10:00 and 11:00 UTC.
    let hist: Vec<AppliedChange> =
        (0..30).map(|i| change(i, T0 + i as i64 * DAY + 10 * HOUR + (i as i64 % 60) * 60_000, usual(i))).collect();
    let b = Baseline::learn(&hist);
    let at_three = T0 + 30 * DAY + 3 * HOUR + 12 * 60_000;
    let flags = b.flag("shop", &usual(30), at_three);
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert_eq!(flags[0].kind, AnomalyKind::UnusualHour);
    assert_eq!(
        flags[0].reason,
        "applied at 03:xx UTC; 0 of 30 earlier changes (0.0%) were in that hour (flagged below 2.0%); busiest hour 10:xx UTC with 30"
    );
    assert!(b.flag("shop", &usual(30), T0 + 30 * DAY + 10 * HOUR + 5 * 60_000).is_empty());
    // With fewer than 20 changes the hour is not judged.
    let b = Baseline::learn(&hist[..19]);
    assert!(b.flag("shop", &usual(19), at_three).is_empty());
}

#[test]
fn a_burst_of_changes_is_a_high_rate() {
    let b = Baseline::learn(&history(10));
    // Usual: one a day. Four more in the last 24 h plus this one = 5 > max(3, 3 × 14 / 9.97 days).
    let mut hist = history(10);
    let now = next(10);
    for (k, ts) in [now - 4 * HOUR, now - 3 * HOUR, now - 2 * HOUR, now - HOUR].into_iter().enumerate() {
        hist.push(change(20 + k, ts, usual(1)));
    }
    assert!(b.flag("shop", &usual(10), now).is_empty());
    let burst = Baseline::learn(&hist);
    let flags = burst.flag("shop", &usual(10), now);
    let rate: Vec<_> = flags.iter().filter(|a| a.kind == AnomalyKind::HighRate).collect();
    assert_eq!(rate.len(), 1, "{flags:#?}");
    assert!(
        rate[0]
            .reason
            .starts_with("5 changes in the last 24 h including this one; usual rate 1.4 per day over 14 changes (flagged above 4.2)"),
        "{}",
        rate[0].reason
    );
}

#[test]
fn thresholds_are_configurable() {
    let cfg = BaselineConfig { min_history: 12, ..BaselineConfig::default() };
    let b = Baseline::learn_with(&history(10), cfg);
    assert!(!b.is_warm("shop"));
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(json["stacks"]["shop"]["changes"], 10);
    assert_eq!(json["config"]["min_history"], 12);
}
