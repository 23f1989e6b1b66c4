//! Store conformance suites: the behaviour every backend of a store trait must show.
//!
//! Each suite takes a fresh, empty store whose hot window holds at least 16 points and
//! whose retention is off (or longer than a day).

use harbinger_core::{
    Event, EventKind, EventStore, Failure, FailureStore, Host, InventoryStore, MetricStore, RejectReason,
    Resource, SampleBatch, SeriesKey, SeriesSamples, StoreError,
};

fn batch(key: &SeriesKey, pts: &[(i64, f64)]) -> SampleBatch {
    let mut s = SeriesSamples::new(key.clone());
    for (t, v) in pts {
        s.push(*t, *v);
    }
    SampleBatch { series: vec![s] }
}

/// Ordering, duplicates, non-finite values, malformed columns, reads and stats.
///
/// # Panics
/// When the store breaks a rule of `MetricStore`.
pub async fn metric_store(store: &dyn MetricStore) {
    let a = SeriesKey::new("h001", "cpu_util");
    let b = SeriesKey::new("h002", "mem_util");
    assert!(matches!(store.recent(&a).await, Err(StoreError::UnknownSeries(_))), "unknown series must be an error");
    assert!(matches!(store.range(&a, 0, 10).await, Err(StoreError::UnknownSeries(_))));

    let r = store.append(&batch(&a, &[(1_000, 0.1), (2_000, 0.2), (3_000, 0.3)])).await.expect("append");
    assert_eq!((r.accepted, r.rejected_total(), r.new_series), (3, 0, 1), "plain append");

    // Duplicates, out-of-order and non-finite values are rejected one by one; the rest lands.
    let r = store
        .append(&batch(&a, &[(3_000, 9.0), (2_500, 9.0), (4_000, f64::NAN), (4_000, f64::INFINITY), (5_000, 0.5)]))
        .await
        .expect("append");
    assert_eq!(r.accepted, 1, "only the last sample is valid");
    assert_eq!(r.rejected.get(&RejectReason::Duplicate), Some(&1));
    assert_eq!(r.rejected.get(&RejectReason::OutOfOrder), Some(&1));
    assert_eq!(r.rejected.get(&RejectReason::NonFinite), Some(&2));
    let first = r.first_rejection.expect("first rejection recorded");
    assert_eq!((first.timestamp, first.reason), (3_000, RejectReason::Duplicate));
    assert_eq!(r.new_series, 0);

    // Mismatched columns are malformed, not a crash.
    let bad = SampleBatch {
        series: vec![SeriesSamples { key: b.clone(), timestamps: vec![1, 2], values: vec![1.0] }],
    };
    let r = store.append(&bad).await.expect("append malformed");
    assert_eq!((r.accepted, r.rejected.get(&RejectReason::Malformed)), (0, Some(&2)));

    // Within one batch a series may repeat; order is by entry.
    let r = store
        .append(&SampleBatch {
            series: vec![
                SeriesSamples { key: b.clone(), timestamps: vec![10_000], values: vec![1.0] },
                SeriesSamples { key: a.clone(), timestamps: vec![6_000], values: vec![0.6] },
                SeriesSamples { key: b.clone(), timestamps: vec![11_000, 10_500], values: vec![2.0, 3.0] },
            ],
        })
        .await
        .expect("append");
    assert_eq!((r.accepted, r.new_series, r.rejected_total()), (3, 1, 1));

    let s = store.range(&a, 2_000, 6_000).await.expect("range");
    assert_eq!(s.timestamps, vec![2_000, 3_000, 5_000], "range is [from, to)");
    assert_eq!(s.values, vec![0.2, 0.3, 0.5], "rejected values never replace stored ones");
    let s = store.range(&a, 7_000, 1_000).await.expect("empty range");
    assert!(s.is_empty());
    let s = store.recent(&a).await.expect("recent");
    assert_eq!(s.timestamps.last(), Some(&6_000));
    assert_eq!(s.values.last(), Some(&0.6));
    assert_eq!(store.series().await.expect("series"), vec![a.clone(), b.clone()], "series sorted");

    let st = store.stats().await.expect("stats");
    assert_eq!(st.series, 2);
    assert_eq!(st.samples, 7);
    assert_eq!((st.oldest_ms, st.newest_ms), (Some(1_000), Some(11_000)));
    store.flush().await.expect("flush");
}

/// Events come back ordered by time, ties in arrival order, filtered by `[from, to)`.
///
/// # Panics
/// When the store breaks a rule of `EventStore`.
pub async fn event_store(store: &dyn EventStore) {
    let mut e1 = Event::new(2_000, EventKind::DeployStarted);
    e1.deployment = Some("d-1".into());
    e1.extra.insert("team".into(), serde_json::json!("core"));
    let e2 = Event::new(1_000, EventKind::ConfigChanged);
    let mut e3 = Event::new(2_000, EventKind::DeploySucceeded);
    e3.deployment = Some("d-1".into());
    assert_eq!(store.append_events(&[e1.clone(), e2.clone()]).await.expect("append"), 2);
    assert_eq!(store.append_events(&[e3.clone()]).await.expect("append"), 1);
    assert_eq!(store.events(0, 10_000).await.expect("events"), vec![e2.clone(), e1.clone(), e3.clone()]);
    assert_eq!(store.events(1_500, 2_000).await.expect("events"), Vec::<Event>::new(), "to is exclusive");
    assert_eq!(store.events(2_000, 2_001).await.expect("events"), vec![e1, e3]);
    assert!(store.events(5, 5).await.expect("empty span").is_empty());
}

/// Hosts and resources are upserted by id and listed sorted.
///
/// # Panics
/// When the store breaks a rule of `InventoryStore`.
pub async fn inventory_store(store: &dyn InventoryStore) {
    let h = |id: &str, cores: f64| Host { host: id.into(), zone: "z".into(), rack: String::new(), cpu_cores: cores, mem_gb: 1.0 };
    store.put_hosts(&[h("h2", 8.0), h("h1", 8.0)]).await.expect("put");
    store.put_hosts(&[h("h2", 16.0)]).await.expect("upsert");
    assert_eq!(store.hosts().await.expect("hosts"), vec![h("h1", 8.0), h("h2", 16.0)]);
    let r = Resource {
        id: "db-1".into(),
        kind: "database".into(),
        host: "h1".into(),
        criticality: 3,
        cpu_cores: 2.0,
        mem_gb: 8.0,
        depends_on: vec![],
        state: serde_json::json!({"version": "14.2"}),
    };
    store.put_resources(std::slice::from_ref(&r)).await.expect("put");
    assert_eq!(store.resources().await.expect("resources"), vec![r]);
}

/// Failures are keyed by (host, timestamp) and listed by time.
///
/// # Panics
/// When the store breaks a rule of `FailureStore`.
pub async fn failure_store(store: &dyn FailureStore) {
    let f = |h: &str, t: i64, k: &str| Failure { host: h.into(), timestamp: t, kind: k.into() };
    store.put_failures(&[f("h2", 50, "oom"), f("h1", 10, "sudden")]).await.expect("put");
    store.put_failures(&[f("h2", 50, "disk_full")]).await.expect("upsert");
    assert_eq!(store.failures().await.expect("failures"), vec![f("h1", 10, "sudden"), f("h2", 50, "disk_full")]);
}
