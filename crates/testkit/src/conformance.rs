//! Store conformance suites: the behaviour every backend of a store trait must show.
//!
//! Each suite takes a fresh, empty store whose hot window holds at least 16 points and
//! whose retention is off (or longer than a day).

use harbinger_core::shadow::{Cause, Shadow, ShadowState};
use harbinger_core::{
    Begun, Event, EventKind, EventStore, Failure, FailureStore, Finish, Host, Intent, InventoryStore, JournalStatus, MetricStore,
    RejectReason, Resource, SampleBatch, SeriesKey, SeriesSamples, ShadowStore, StoreError,
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
    let bad = SampleBatch { series: vec![SeriesSamples { key: b.clone(), timestamps: vec![1, 2], values: vec![1.0] }] };
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
    assert_eq!(store.events(2_000, 2_001).await.expect("events"), vec![e1.clone(), e3.clone()]);
    assert!(store.events(5, 5).await.expect("empty span").is_empty());
    // An append older than what is held lands in time order; a later one after the rest.
    let e4 = Event::new(1_500, EventKind::HostMaintenance);
    let e5 = Event::new(3_000, EventKind::HostRecovered);
    store.append_events(std::slice::from_ref(&e4)).await.expect("append");
    store.append_events(std::slice::from_ref(&e5)).await.expect("append");
    assert_eq!(store.events(0, 10_000).await.expect("events"), vec![e2, e4, e1, e3, e5]);
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

/// A shadow in state `planned` for the shadow-store suite.
fn planned_shadow(id: &str, at: i64) -> Shadow {
    Shadow {
        id: id.into(),
        resource: "db-1".into(),
        primary: "h1".into(),
        host: "h2".into(),
        state: ShadowState::Planned,
        causes: vec![Cause::Manual { by: "alice".into() }],
        priority: 0.5,
        cpu_cores: 2.0,
        mem_gb: 8.0,
        created_at: at,
        updated_at: at,
        last_used_at: at,
        expires_at: None,
        endpoint: None,
    }
}

fn intent(key: &str, shadow: &str, at: i64, create: Option<Shadow>) -> Intent {
    Intent { key: key.into(), shadow: shadow.into(), action: serde_json::json!({"key": key}), at, create }
}

/// The action journal and the shadows it writes: idempotent `begin` by key, retry of a
/// failed key, outcome and shadow in one step, pending entries in order, pruning.
///
/// # Panics
/// When the store breaks a rule of `ShadowStore`.
pub async fn shadow_store(store: &dyn ShadowStore) {
    let s1 = planned_shadow("db-1@h2#100", 100);
    assert_eq!(store.shadows().await.expect("shadows"), vec![]);
    assert!(store.pending().await.expect("pending").is_empty());

    // A creation stores its shadow with the intent.
    let b = store.begin(intent("create:db-1@h2#100", "db-1@h2#100", 100, Some(s1.clone()))).await.expect("begin");
    let Begun::Started(e) = b else { panic!("a new key starts: {b:?}") };
    assert_eq!((e.seq, e.status, e.attempts, e.at), (1, JournalStatus::Pending, 1, 100));
    assert_eq!(store.shadow(&s1.id).await.expect("shadow"), Some(s1.clone()), "stored with its intent");

    // The same key again writes nothing, even with another shadow attached.
    let mut other = s1.clone();
    other.priority = 0.9;
    let b = store.begin(intent("create:db-1@h2#100", "db-1@h2#100", 200, Some(other))).await.expect("begin again");
    assert!(matches!(&b, Begun::Existing(e) if e.seq == 1 && e.at == 100), "idempotent: {b:?}");
    assert_eq!(store.shadow(&s1.id).await.expect("shadow").map(|s| s.priority), Some(0.5), "not overwritten");
    assert_eq!(store.shadows().await.expect("shadows").len(), 1, "never stored twice");

    // Pending until finished; the outcome and the shadow's new value land together.
    let b2 = store.begin(intent("retire:x", "x", 150, None)).await.expect("begin");
    assert!(matches!(&b2, Begun::Started(e) if e.seq == 2));
    let pending: Vec<String> = store.pending().await.expect("pending").into_iter().map(|e| e.key).collect();
    assert_eq!(pending, ["create:db-1@h2#100", "retire:x"], "oldest first");
    let mut ready = s1.clone();
    ready.state = ShadowState::Ready;
    ready.updated_at = 300;
    let done = store
        .finish(Finish {
            key: "create:db-1@h2#100".into(),
            status: JournalStatus::DryRun,
            detail: "log".into(),
            at: 300,
            shadow: Some(ready.clone()),
        })
        .await
        .expect("finish");
    assert_eq!((done.status, done.finished_at, done.detail.as_str()), (JournalStatus::DryRun, Some(300), "log"));
    assert_eq!(store.shadow(&s1.id).await.expect("shadow"), Some(ready.clone()));
    let pending: Vec<String> = store.pending().await.expect("pending").into_iter().map(|e| e.key).collect();
    assert_eq!(pending, ["retire:x"]);
    let b = store.begin(intent("create:db-1@h2#100", "db-1@h2#100", 400, None)).await.expect("begin finished");
    assert!(matches!(&b, Begun::Existing(e) if e.status == JournalStatus::DryRun), "a finished key is not redone: {b:?}");

    // A failed key is begun again, with its attempts counted; its seq stays.
    store
        .finish(Finish { key: "retire:x".into(), status: JournalStatus::Failed, detail: "timeout".into(), at: 500, shadow: None })
        .await
        .expect("finish failed");
    let b = store.begin(intent("retire:x", "x", 600, None)).await.expect("retry");
    assert!(matches!(&b, Begun::Started(e) if e.seq == 2 && e.attempts == 2 && e.status == JournalStatus::Pending), "{b:?}");
    assert_eq!(store.pending().await.expect("pending").len(), 1);

    // Unknown keys cannot be finished.
    let err = store
        .finish(Finish { key: "nope".into(), status: JournalStatus::Applied, detail: String::new(), at: 1, shadow: None })
        .await
        .expect_err("unknown key");
    assert!(matches!(err, StoreError::UnknownJournalKey(ref k) if k == "nope"), "{err}");

    // The journal reads in order from a cursor; seqs are never reused.
    let keys: Vec<(u64, String)> = store.journal(0, 10).await.expect("journal").into_iter().map(|e| (e.seq, e.key)).collect();
    assert_eq!(keys, [(1, "create:db-1@h2#100".to_string()), (2, "retire:x".to_string())]);
    assert_eq!(store.journal(1, 10).await.expect("journal").len(), 1);
    assert_eq!(store.journal(0, 1).await.expect("journal").len(), 1);
    assert_eq!(store.journal_entry("retire:x").await.expect("entry").map(|e| e.attempts), Some(2));
    assert_eq!(store.journal_entry("nope").await.expect("entry"), None);

    // put_shadow upserts.
    let mut used = ready.clone();
    used.last_used_at = 700;
    store.put_shadow(&used).await.expect("put");
    assert_eq!(store.shadow(&s1.id).await.expect("shadow").map(|s| s.last_used_at), Some(700));

    // Pruning drops terminal shadows and finished entries older than the cut, nothing else.
    let mut gone = planned_shadow("db-1@h3#50", 50);
    gone.state = ShadowState::Retired;
    store.put_shadow(&gone).await.expect("put");
    let (shadows, entries) = store.prune(1_000).await.expect("prune");
    assert_eq!((shadows, entries), (1, 1), "the retired shadow and the finished create entry");
    assert_eq!(store.shadows().await.expect("shadows"), vec![used], "the live shadow stays");
    let keys: Vec<String> = store.journal(0, 10).await.expect("journal").into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["retire:x"], "the pending entry stays");
    let b = store.begin(intent("create:new", "n", 1_100, None)).await.expect("begin after prune");
    assert!(matches!(&b, Begun::Started(e) if e.seq == 3), "seqs are not reused after pruning: {b:?}");
}
