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
