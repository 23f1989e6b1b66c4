//! Crash consistency: `harbinger serve` killed with SIGKILL at pseudo-random points of a
//! write load, again and again on the same data directory. With `store.sync_interval = 0s`
//! every sample and event the server acknowledged must be there after the restarts, and
//! every start-up must succeed.
//!
//! The harness (`kill_during`) takes the load as a closure, so other writers (shadows,
//! journals) can reuse it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Serve, run};
use harbinger_dataset::{LoadOptions, read_dataset};
use harbinger_ingest::remote_write::{encode, prompb};

const KILLS: u64 = 20;

/// Starts `serve` on `data` (start-up must succeed: [`Serve::start`] panics otherwise),
/// runs `load` against its URL on a thread, and SIGKILLs the server after `after`.
/// The load is told to stop once the server is dead; its result is returned.
fn kill_during<T: Send + 'static>(
    data: &Path,
    config: &Path,
    after: Duration,
    load: impl FnOnce(String, Arc<AtomicBool>) -> T + Send + 'static,
) -> T {
    let serve = Serve::start(data, &["--config", config.to_str().expect("utf-8 path")]);
    let pid = serve.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (url, stop) = (serve.url.clone(), stop.clone());
        std::thread::spawn(move || load(url, stop))
    };
    std::thread::sleep(after);
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    assert!(killed.success(), "kill -KILL {pid}");
    drop(serve); // reaps the child
    stop.store(true, Ordering::SeqCst);
    worker.join().expect("load thread")
}

/// What one run of the load had acknowledged.
#[derive(Default)]
struct Acked {
    /// (host, timestamp, value) of every sample in a batch answered 204.
    samples: Vec<(String, i64, f64)>,
    /// Deployment ids of events in a request answered 2xx.
    events: Vec<String>,
}

/// Remote-write batches of 20 samples (two hosts) and one event per batch, as fast as the
/// server answers, until told to stop. Timestamps continue from `t0` upwards.
fn write_load(url: &str, stop: &AtomicBool, iter: u64, t0: i64) -> Acked {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        let mut acked = Acked::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut batch = 0_i64;
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let base = t0 + batch * 10_000;
            let series: Vec<(String, Vec<(i64, f64)>)> = ["crash-a", "crash-b"]
                .iter()
                .map(|h| (h.to_string(), (0..10).map(|i| (base + i * 1000, (iter * 1_000_000 + (batch * 10 + i) as u64) as f64)).collect()))
                .collect();
            let body = encode(&prompb::WriteRequest {
                timeseries: series
                    .iter()
                    .map(|(h, pts)| prompb::TimeSeries {
                        labels: vec![
                            prompb::Label { name: "__name__".into(), value: "load".into() },
                            prompb::Label { name: "instance".into(), value: h.clone() },
                        ],
                        samples: pts.iter().map(|(t, v)| prompb::Sample { timestamp: *t, value: *v }).collect(),
                    })
                    .collect(),
            });
            let sent = client
                .post(format!("{url}/api/v1/write"))
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().as_u16() == 204 => {
                    for (h, pts) in series {
                        acked.samples.extend(pts.into_iter().map(|(t, v)| (h.clone(), t, v)));
                    }
                }
                Ok(r) => panic!("remote write answered {} before the kill", r.status()),
                Err(_) => break, // the server is gone
            }
            let deployment = format!("d-{iter}-{batch}");
            let ev = format!("{{\"ts\":{base},\"kind\":\"deploy_started\",\"host\":\"crash-a\",\"deployment\":\"{deployment}\"}}\n");
            match client.post(format!("{url}/api/v1/events")).body(ev).send().await {
                Ok(r) if r.status().is_success() => acked.events.push(deployment),
                Ok(r) => panic!("events answered {} before the kill", r.status()),
                Err(_) => break,
            }
            batch += 1;
        }
        acked
    })
}

#[test]
fn sigkill_at_random_points_of_a_write_load_loses_no_acknowledged_sample_or_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = tmp.path().join("harbinger.toml");
    std::fs::write(&config, "[store]\nsync_interval = \"0s\"\n").expect("config");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    // Far enough back that 20 runs of writes stay in the past (the server refuses the future).
    let mut t0 = now - 48 * 3_600_000;
    let mut samples = Vec::new();
    let mut events = Vec::new();
    let mut seed = 0x5eed_u64;
    for iter in 0..KILLS {
        // Kill points spread over the first 40..400 ms of the load (an LCG: reproducible).
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis(40 + (seed >> 33) % 360);
        let start = t0;
        let acked = kill_during(&data, &config, after, move |url, stop| write_load(&url, &stop, iter, start));
        // The next run writes after anything this one may have written unacknowledged.
        t0 = acked.samples.iter().map(|s| s.1).max().unwrap_or(t0) + 3_600_000;
        samples.extend(acked.samples);
        events.extend(acked.events);
    }
    assert!(samples.len() >= 20 * KILLS as usize, "the load wrote before each kill: {} samples", samples.len());

    // A clean start after the last kill, a clean stop, then what the store holds.
    let serve = Serve::start(&data, &["--config", config.to_str().expect("utf-8 path")]);
    assert_eq!(serve.terminate(), 0);
    let out = tmp.path().join("exported");
    let (code, stdout, stderr) = run(&["--data-dir", data.to_str().expect("utf-8"), "export", "--out", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "export: {stdout}{stderr}");
    let (ds, _) = read_dataset(&out, LoadOptions::default()).expect("the export reads back");
    let stored: BTreeSet<(String, i64, u64)> = ds
        .metrics
        .iter()
        .filter(|s| s.key.metric.as_str() == "load")
        .flat_map(|s| s.timestamps.iter().zip(&s.values).map(move |(t, v)| (s.key.host.as_str().to_string(), *t, v.to_bits())))
        .collect();
    let lost: Vec<_> = samples.iter().filter(|(h, t, v)| !stored.contains(&(h.clone(), *t, v.to_bits()))).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged samples lost, e.g. {:?}", lost.len(), samples.len(), &lost[..lost.len().min(5)]);
    let stored_events: BTreeSet<&str> = ds.events.iter().filter_map(|e| e.deployment.as_deref()).collect();
    let lost: Vec<_> = events.iter().filter(|d| !stored_events.contains(d.as_str())).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged events lost: {:?}", lost.len(), events.len(), lost);
}

/// A SIGTERM that arrives as soon as the server says it is listening stops it cleanly (the
/// handlers are installed before serving starts; they used to be installed on the first poll
/// of the shutdown future, and such a SIGTERM killed the process).
#[test]
fn sigterm_right_after_start_up_is_a_clean_stop() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..5 {
        let serve = Serve::start(&tmp.path().join("data"), &[]);
        assert_eq!(serve.terminate(), 0, "start {i}: exit code after an immediate SIGTERM");
    }
}
