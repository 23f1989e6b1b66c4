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

/// Offsets and lengths (header included) of the records of a segment file: each is a
/// little-endian u32 payload length, a u32 CRC and the payload.
fn records(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= data.len() {
        let len = u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        out.push((off, 8 + len));
        off += 8 + len;
    }
    out
}

#[tokio::test]
async fn a_flipped_byte_fails_the_checksum_and_no_corrupt_value_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = SeriesKey::new("h1", "cpu_util");
    let mut c = cfg(dir.path());
    c.segment_bytes = 1 << 20;
    {
        let s = EmbeddedStore::open(c.clone()).expect("open");
        for b in 0..3 {
            s.append(&series(&k, b * 10_000, 10, 1_000)).await.expect("append");
        }
        s.close().expect("close");
    }
    let mut segs: Vec<_> = std::fs::read_dir(dir.path().join("samples")).expect("ls").map(|e| e.expect("entry").path()).collect();
    segs.sort();
    let last = segs.last().expect("a segment");
    let mut data = std::fs::read(last).expect("read");
    let recs = records(&data);
    assert_eq!(recs.len(), 4, "a series definition and three sample records: {recs:?}");
    // The middle batch's last value byte: the record stays well-formed, only its CRC
    // tells (0.0..10.0 are its values; a flipped top byte makes another number).
    let (off, len) = recs[2];
    data[off + len - 1] ^= 0x40;
    std::fs::write(last, &data).expect("write");

    let s = EmbeddedStore::open(c).expect("reopen after the corruption");
    assert_eq!(s.recovery().samples, 10, "the batch before the corrupt record survives: {:?}", s.recovery());
    assert!(s.recovery().truncated_bytes > 0 || !s.recovery().damaged.is_empty(), "the damage is reported: {:?}", s.recovery());
    let all = s.range(&k, 0, i64::MAX).await.expect("range");
    assert_eq!(all.timestamps, (0..10).map(|i| i * 1_000).collect::<Vec<_>>());
    assert_eq!(all.values, (0..10).map(|i| i as f64).collect::<Vec<_>>(), "no corrupt value is read back");
    let r = s.append(&series(&k, 10_000, 3, 1_000)).await.expect("append");
    assert_eq!(r.accepted, 3, "the store keeps accepting after recovery");
}

/// Set in the environment of a child copy of this test binary: `DIR|INTERVAL_MS|SETTLE_MS`.
const CHILD_ENV: &str = "HARBINGER_TEST_DURABILITY_CHILD";

/// The writer of [`unsynced_samples_are_bounded_by_the_sync_interval`], run in a child
/// process (this test binary again, this test alone) so that it can be killed: appends
/// batch A (100 samples), says so, waits `SETTLE_MS`, appends batch B (100 more), says
/// so, and waits to be killed. A no-op in a normal test run.
#[tokio::test]
async fn durability_child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (dir, interval_ms, settle_ms): (&str, u64, u64) =
        (parts[0], parts[1].parse().expect("interval"), parts[2].parse().expect("settle"));
    let mut c = cfg(std::path::Path::new(dir));
    c.segment_bytes = 1 << 20; // one segment: no rollover syncs anything
    c.sync_interval = Duration::from_millis(interval_ms);
    let s = EmbeddedStore::open(c).expect("open");
    let k = SeriesKey::new("h1", "cpu_util");
    assert_eq!(s.append(&series(&k, 0, 100, 1_000)).await.expect("append").accepted, 100);
    println!("child: acked 100");
    tokio::time::sleep(Duration::from_millis(settle_ms)).await;
    assert_eq!(s.append(&series(&k, 100_000, 100, 1_000)).await.expect("append").accepted, 100);
    println!("child: acked 200");
    tokio::time::sleep(Duration::from_secs(60)).await;
    panic!("the child writer was not killed within 60 s");
}

/// Runs [`durability_child_writer`] with a sync interval, SIGKILLs it the moment it has
/// acknowledged batch B, and returns how many samples a fresh open of its directory
/// reads back: what survived the crash of the writing process.
fn samples_after_a_crash(interval_ms: u64, settle_ms: u64) -> u64 {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "durability_child_writer", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, format!("{}|{interval_ms}|{settle_ms}", dir.path().display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child writer");
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == "child: acked 200" => break,
            Ok(_) => {}
            Err(e) => {
                let _killed = child.kill();
                panic!("the child writer did not acknowledge batch B within 30 s: {e}");
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    let s = EmbeddedStore::open(cfg(dir.path())).expect("reopen after the crash");
    assert!(s.recovery().damaged.is_empty(), "{:?}", s.recovery());
    s.recovery().samples
}

/// What a crash of the writing process keeps (the kernel keeps what reached it; a power
/// cut, which would also test the fsyncs, cannot be simulated without root): with
/// `sync_interval = 0` every acknowledged sample; with an interval, every sample
/// acknowledged more than an interval before the crash; and (the control, showing that
/// the kill does lose what was not synced) with an interval of an hour, nothing.
#[tokio::test]
async fn unsynced_samples_are_bounded_by_the_sync_interval() {
    assert_eq!(samples_after_a_crash(0, 0), 200, "sync 0: both acknowledged batches survive");
    let bounded = samples_after_a_crash(200, 1_000);
    assert!(bounded == 100 || bounded == 200, "sync 200 ms: batch A, acknowledged 1 s before the crash, survives whole: {bounded}");
    assert_eq!(samples_after_a_crash(3_600_000, 0), 0, "sync 1 h: the unsynced batches are lost (the test can see a loss)");
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
