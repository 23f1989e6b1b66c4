//! Every backend passes the contract suites.

use harbinger_store::{EmbeddedConfig, EmbeddedStore, Limits, MemoryStore};
use harbinger_testkit::conformance;

#[tokio::test]
async fn memory_store_conforms() {
    let s = MemoryStore::new(Limits::default());
    conformance::metric_store(&s).await;
    conformance::event_store(&s).await;
    conformance::inventory_store(&s).await;
    conformance::failure_store(&s).await;
    conformance::shadow_store(&s).await;
}

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open");
    conformance::metric_store(&s).await;
    conformance::event_store(&s).await;
    conformance::inventory_store(&s).await;
    conformance::failure_store(&s).await;
    conformance::shadow_store(&s).await;
}

#[tokio::test]
async fn embedded_store_conforms_with_sync_on_every_append_and_tiny_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.sync_interval = std::time::Duration::ZERO;
    cfg.segment_bytes = 64;
    let s = EmbeddedStore::open(cfg).expect("open");
    conformance::metric_store(&s).await;
}

#[tokio::test]
async fn embedded_shadow_store_keeps_shadows_and_pending_entries_across_a_restart() {
    use harbinger_core::{Begun, Intent, ShadowStore};
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open");
        conformance::shadow_store(&s).await;
    }
    let s = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("reopen");
    let pending: Vec<String> = s.pending().await.expect("pending").into_iter().map(|e| e.key).collect();
    assert_eq!(pending, ["retire:x", "create:new"], "pending entries survive a restart, oldest first");
    assert_eq!(s.shadows().await.expect("shadows").len(), 1);
    let b =
        s.begin(Intent { key: "k".into(), shadow: "s".into(), action: serde_json::Value::Null, at: 1, create: None }).await.expect("begin");
    assert!(matches!(b, Begun::Started(e) if e.seq == 4), "the sequence continues after a restart");
}

#[tokio::test]
async fn a_memory_store_without_history_keeps_the_hot_window_and_refuses_the_same_samples() {
    use harbinger_core::{Clock, MetricStore, SampleBatch, SeriesKey, SeriesSamples};
    let limits = Limits { hot_window_ms: 10 * 60_000, ..Limits::default() };
    let full = MemoryStore::new(limits);
    let hot = MemoryStore::new(limits).without_history();
    let key = SeriesKey::new("h1", "cpu_util");
    let now = harbinger_core::SystemClock.now_ms();
    let start = now - 60 * 60_000;
    // An hour of minute samples, then a duplicate and an out-of-order one.
    let mut ts: Vec<i64> = (0..60).map(|i| start + i * 60_000).collect();
    ts.extend([start + 59 * 60_000, start + 30 * 60_000]);
    let vs: Vec<f64> = (0..ts.len()).map(|i| i as f64).collect();
    let batch = SampleBatch { series: vec![SeriesSamples { key: key.clone(), timestamps: ts, values: vs }] };
    let a = full.append(&batch).await.expect("store");
    let b = hot.append(&batch).await.expect("store");
    assert_eq!(a, b, "the same samples are accepted and refused");
    assert_eq!(b.accepted, 60);
    assert_eq!(full.recent(&key).await.expect("store"), hot.recent(&key).await.expect("store"));
    // Inside the hot window both serve the same range; before it only the full store does.
    let last10 = (start + 50 * 60_000, start + 60 * 60_000);
    assert_eq!(full.range(&key, last10.0, last10.1).await.expect("store"), hot.range(&key, last10.0, last10.1).await.expect("store"));
    assert_eq!(hot.range(&key, last10.0, last10.1).await.expect("store").timestamps.len(), 10);
    assert_eq!(full.range(&key, start, start + 10 * 60_000).await.expect("store").timestamps.len(), 10);
    assert!(hot.range(&key, start, start + 10 * 60_000).await.expect("store").timestamps.is_empty());
    assert!(hot.range(&SeriesKey::new("h2", "cpu_util"), start, now).await.is_err(), "an unknown series is an error");
}
