//! What the embedded store keeps across restarts, crashes and retention.

use std::time::Duration;

use harbinger_core::{
    Event, EventKind, EventStore, MetricStore, RejectReason, SampleBatch, SeriesKey, SeriesSamples, StoreError,
};
use harbinger_store::{EmbeddedConfig, EmbeddedStore, Limits};

fn series(key: &SeriesKey, from: i64, n: i64, step: i64) -> SampleBatch {
    let mut s = SeriesSamples::new(key.clone());
    for i in 0..n {
        s.push(from + i * step, i as f64);
    }
    SampleBatch { series: vec![s] }
}

fn cfg(dir: &std::path::Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.segment_bytes = 4 << 10; // several segments in these tests
    c.limits.hot_max_points = 50;
    c
}

#[tokio::test]
async fn clean_stop_keeps_everything_and_rebuilds_hot_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = SeriesKey::new("h1", "mem_util");
    {
        let s = EmbeddedStore::open(cfg(dir.path())).expect("open");
        let r = s.append(&series(&k, 0, 2_000, 1_000)).await.expect("append");
        assert_eq!(r.accepted, 2_000);
        s.append_events(&[Event::new(5, EventKind::HostMaintenance)]).await.expect("events");
    } // drop = clean stop
    let s = EmbeddedStore::open(cfg(dir.path())).expect("reopen");
    assert_eq!(s.recovery().samples, 2_000);
    assert!(s.recovery().segments > 1, "4 KiB segments roll");
    let st = s.stats().await.expect("stats");
    assert_eq!((st.series, st.samples), (1, 2_000));
    let recent = s.recent(&k).await.expect("recent");
    assert_eq!(recent.len(), 50, "hot window bounded by hot_max_points");
    assert_eq!(recent.timestamps.last(), Some(&1_999_000));
    // A range older than the hot window comes from disk.
    let old = s.range(&k, 10_000, 20_000).await.expect("range");
    assert_eq!(old.timestamps, (10..20).map(|i| i * 1_000).collect::<Vec<_>>());
    assert_eq!(old.values, (10..20).map(|i| i as f64).collect::<Vec<_>>());
    // Ordering survives the restart: an old timestamp is still out of order.
    let r = s.append(&series(&k, 5_000, 1, 1)).await.expect("append");
    assert_eq!(r.rejected.get(&RejectReason::OutOfOrder), Some(&1));
    assert_eq!(s.events(0, 10).await.expect("events").len(), 1);
}

#[tokio::test]
async fn a_second_process_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _s = EmbeddedStore::open(cfg(dir.path())).expect("open");
    let e = EmbeddedStore::open(cfg(dir.path())).expect_err("locked");
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("in use by another harbinger process"));
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = SeriesKey::new("h1", "cpu_util");
    let mut c = cfg(dir.path());
    c.segment_bytes = 1 << 20;
    {
        let s = EmbeddedStore::open(c.clone()).expect("open");
        s.append(&series(&k, 0, 10, 1_000)).await.expect("append");
        s.append(&series(&k, 10_000, 10, 1_000)).await.expect("append");
        s.close().expect("close");
    }
    // Simulate a crash mid-write: chop 5 bytes off the newest segment.
    let mut segs: Vec<_> = std::fs::read_dir(dir.path().join("samples"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    segs.sort();
    let last = segs.last().expect("a segment");
    let len = std::fs::metadata(last).expect("stat").len();
    std::fs::OpenOptions::new().write(true).open(last).and_then(|f| f.set_len(len - 5)).expect("truncate");

    let s = EmbeddedStore::open(c).expect("reopen after crash");
    assert_eq!(s.recovery().samples, 10, "the first batch survives, the torn one is dropped");
    assert!(s.recovery().truncated_bytes > 0);
    let all = s.range(&k, 0, i64::MAX).await.expect("range");
    assert_eq!(all.len(), 10);
    // The store keeps accepting after recovery.
    let r = s.append(&series(&k, 10_000, 3, 1_000)).await.expect("append");
    assert_eq!(r.accepted, 3);
}

#[tokio::test]
async fn unsynced_samples_are_bounded_by_the_sync_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = SeriesKey::new("h1", "cpu_util");
    let mut c = cfg(dir.path());
    c.sync_interval = Duration::ZERO; // every append is durable on return
    let s = EmbeddedStore::open(c.clone()).expect("open");
    s.append(&series(&k, 0, 100, 1_000)).await.expect("append");
    // Read the files while the store is still open (as after a power cut): all there.
    let bytes: u64 = std::fs::read_dir(dir.path().join("samples"))
        .expect("ls")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum();
    assert!(bytes >= 100 * 9, "samples reached the files before append returned ({bytes} bytes)");
    std::mem::forget(s); // no clean close: like a crash (the lock dies with the file handle)
}

#[tokio::test]
async fn retention_deletes_old_segments_and_rejects_too_old_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = SeriesKey::new("h1", "disk_util");
    let mut c = cfg(dir.path());
    c.limits = Limits { retention_ms: Some(100_000), ..c.limits };
    let s = EmbeddedStore::open(c).expect("open");
    for chunk in 0..40 {
        s.append(&series(&k, chunk * 50_000, 50, 1_000)).await.expect("append");
    }
    let st = s.stats().await.expect("stats");
    assert!(st.samples < 2_000, "old segments were deleted, {} samples left", st.samples);
    assert!(st.samples >= 100, "the retention span is kept");
    let kept = s.range(&k, 0, i64::MAX).await.expect("range");
    let newest = 40 * 50_000 - 1_000;
    assert_eq!(kept.timestamps.last(), Some(&newest));
    assert!(kept.timestamps.first().is_some_and(|t| *t > 0), "the oldest data is gone");
    let r = s
        .append(&SampleBatch { series: vec![SeriesSamples { key: SeriesKey::new("h2", "x"), timestamps: vec![1], values: vec![1.0] }] })
        .await
        .expect("append");
    assert_eq!(r.rejected.get(&RejectReason::TooOld), Some(&1));
}

#[tokio::test]
async fn series_limit_rejects_new_series_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(dir.path());
    c.limits.max_series = 1;
    let s = EmbeddedStore::open(c).expect("open");
    s.append(&series(&SeriesKey::new("h1", "a"), 0, 2, 1)).await.expect("append");
    let r = s.append(&series(&SeriesKey::new("h1", "b"), 0, 2, 1)).await.expect("append");
    assert_eq!(r.rejected.get(&RejectReason::SeriesLimit), Some(&2));
    let r = s.append(&series(&SeriesKey::new("h1", "a"), 10, 2, 1)).await.expect("append");
    assert_eq!(r.accepted, 2);
}
