//! What the embedded store keeps across restarts, crashes and retention.

use std::sync::Arc;
use std::time::Duration;

use harbinger_core::{
    Event, EventKind, EventStore, ManualClock, MetricStore, RejectReason, SampleBatch, SeriesKey, SeriesSamples, StoreError,
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
    let mut segs: Vec<_> = std::fs::read_dir(dir.path().join("samples")).expect("ls").map(|e| e.expect("entry").path()).collect();
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
    let bytes: u64 =
        std::fs::read_dir(dir.path().join("samples")).expect("ls").map(|e| e.expect("entry").metadata().expect("stat").len()).sum();
    assert!(bytes >= 100 * 9, "samples reached the files before append returned ({bytes} bytes)");
    std::mem::forget(s); // no clean close: like a crash (the lock dies with the file handle)
}

#[tokio::test]
async fn retention_deletes_old_segments_and_rejects_too_old_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = SeriesKey::new("h1", "disk_util");
    let clock = Arc::new(ManualClock::new(0));
    let mut c = cfg(dir.path());
    c.clock = clock.clone();
    c.limits = Limits { retention_ms: Some(100_000), ..c.limits };
    let s = EmbeddedStore::open(c).expect("open");
    for chunk in 0..40 {
        // The server's clock follows the data, as a live feed's would.
        clock.set(chunk * 50_000 + 49_000);
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

fn one(host: &str, metric: &str, t: i64) -> SampleBatch {
    SampleBatch { series: vec![SeriesSamples { key: SeriesKey::new(host, metric), timestamps: vec![t], values: vec![1.0] }] }
}

/// Regression: one sample stamped in year 9999 made every later sample `too_old` and, at
/// the next start, retention deleted every older segment.
#[tokio::test]
async fn a_far_future_sample_neither_blocks_ingestion_nor_expires_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_800_000_000_000; // 2027-01-15
    let clock = Arc::new(ManualClock::new(now));
    let make = || {
        let mut c = cfg(dir.path());
        c.clock = clock.clone();
        c.limits.retention_ms = Some(30 * 86_400_000);
        c
    };
    let k = SeriesKey::new("h1", "mem_util");
    {
        let s = EmbeddedStore::open(make()).expect("open");
        // 11 samples over the last 11 minutes: a closed segment or two with 4 KiB segments.
        assert_eq!(s.append(&series(&k, now - 660_000, 11, 60_000)).await.expect("append").accepted, 11);
        let year_9999 = 253_402_300_799_000;
        let r = s.append(&one("h2", "mem_util", year_9999)).await.expect("append");
        assert_eq!((r.accepted, r.rejected.get(&RejectReason::Future)), (0, Some(&1)));
        let skewed = s.append(&one("h3", "mem_util", now + 31 * 86_400_000)).await.expect("append");
        assert_eq!(skewed.rejected.get(&RejectReason::Future), Some(&1), "a host 31 days ahead is refused");
        let in_allowance = s.append(&one("h4", "mem_util", now + 9 * 60_000)).await.expect("append");
        assert_eq!(in_allowance.accepted, 1, "within the 10 min allowance");
        clock.set(now + 60_000);
        let later = s.append(&series(&k, now, 1, 1)).await.expect("append");
        assert_eq!(later.accepted, 1, "later samples from every host are still accepted: {later:?}");
        let st = s.stats().await.expect("stats");
        assert_eq!((st.series, st.samples), (2, 13), "refused series are not created");
    }
    let s = EmbeddedStore::open(make()).expect("reopen");
    assert_eq!(s.recovery().expired_segments, 0);
    assert_eq!(s.recovery().samples, 13, "nothing acknowledged was deleted");
    assert_eq!(s.range(&k, 0, i64::MAX).await.expect("range").len(), 12);
}

/// Regression: definitions cut host and metric names at 65,535 bytes, so two long keys
/// that differ after the cut clashed at start-up and the newest segment was truncated.
#[tokio::test]
async fn long_series_keys_are_refused_or_kept_whole_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "m".repeat(65_534);
    let (a, b) = (format!("{base}a"), format!("{base}b")); // 65,535 bytes: the longest a segment records
    let split = format!("{base}é"); // 65,536 bytes: a 2-byte character across the old cut
    let make = || {
        let mut c = cfg(dir.path());
        c.limits.max_metric_bytes = 1 << 20; // above what a segment records: still capped
        c.limits.max_host_bytes = 1 << 20;
        c
    };
    {
        let s = EmbeddedStore::open(make()).expect("open");
        for (m, t0) in [(&a, 0), (&b, 0)] {
            assert_eq!(s.append(&series(&SeriesKey::new("h1", m), t0, 11, 1_000)).await.expect("append").accepted, 11);
        }
        let r = s.append(&one("h1", &split, 0)).await.expect("append");
        assert_eq!(r.rejected.get(&RejectReason::KeyTooLong), Some(&1), "{r:?}");
        let r = s.append(&one(&"h".repeat(70_000), "m", 0)).await.expect("append");
        assert_eq!(r.rejected.get(&RejectReason::KeyTooLong), Some(&1), "{r:?}");
        s.close().expect("close");
    }
    let s = EmbeddedStore::open(make()).expect("reopen after a clean stop");
    assert!(s.recovery().damaged.is_empty() && s.recovery().truncated_bytes == 0, "{:?}", s.recovery());
    assert_eq!(s.recovery().samples, 22);
    for m in [&a, &b] {
        assert_eq!(s.range(&SeriesKey::new("h1", m), 0, i64::MAX).await.expect("range").len(), 11);
    }
    assert_eq!(s.stats().await.expect("stats").series, 2);
}

#[tokio::test]
async fn configured_key_limits_refuse_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(dir.path());
    c.limits.max_host_bytes = 8;
    c.limits.max_metric_bytes = 16;
    c.limits.max_series = 1;
    let s = EmbeddedStore::open(c).expect("open");
    let r = s.append(&one("a-very-long-host", "m", 0)).await.expect("append");
    assert_eq!(r.rejected.get(&RejectReason::KeyTooLong), Some(&1));
    let r = s.append(&one("h1", "a_metric_name_of_many_bytes", 0)).await.expect("append");
    assert_eq!(r.rejected.get(&RejectReason::KeyTooLong), Some(&1));
    let r = s.append(&one("h1", "fits", 0)).await.expect("append");
    assert_eq!(r.accepted, 1, "refused keys took no slot of max_series = 1");
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
