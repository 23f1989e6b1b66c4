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
}

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open");
    conformance::metric_store(&s).await;
    conformance::event_store(&s).await;
    conformance::inventory_store(&s).await;
    conformance::failure_store(&s).await;
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
