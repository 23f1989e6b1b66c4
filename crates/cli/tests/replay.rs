//! `harbinger replay`: deterministic output, and the same decisions as the serve pipeline
//! fed the same data over HTTP.

mod common;

use std::path::Path;

use harbinger_cli::replay::{self, ReplayOptions, Steps};
use harbinger_config::Config;
use harbinger_core::{HostId, TransitionKind};
use harbinger_dataset::Dataset;
use harbinger_dataset::synth::{SynthParams, generate};
use harbinger_ingest::remote_write::{encode, prompb};

fn fleet() -> Dataset {
    let p = SynthParams { hosts: 6, days: 2.0, step_ms: 60_000, seed: 11, ..SynthParams::default() };
    generate(&p).expect("synthetic fleet").dataset
}

#[test]
fn replay_twice_gives_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("fleet");
    let d = data.to_str().expect("utf-8");
    let (code, _, err) = common::run(&["synth", "--hosts", "6", "--days", "2", "--seed", "11", "--out", d]);
    assert_eq!(code, 0, "{err}");
    let run = |out: &Path| {
        let (code, stdout, err) = common::run(&["replay", "--data", d, "--out", out.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("replay of"), "{stdout}");
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&a);
    run(&b);
    // A second run into the same directory starts its decision log afresh.
    run(&b);
    for f in ["alerts.csv", "decisions.jsonl", "summary.json", "risk.csv", "report.html"] {
        let x = std::fs::read(a.join(f)).expect(f);
        let y = std::fs::read(b.join(f)).expect(f);
        assert!(!x.is_empty(), "{f} is empty");
        assert!(x == y, "{f} differs between two replays");
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["hosts"], 6);
    let risk = std::fs::read_to_string(a.join("risk.csv")).expect("risk.csv");
    assert!(risk.starts_with("host,timestamp,risk,probability,alerting\n"), "{risk}");
    let decisions = std::fs::read_to_string(a.join("decisions.jsonl")).expect("decisions");
    assert!(decisions.lines().count() > 0);
    for l in decisions.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        for k in ["ts", "kind", "host", "reason"] {
            assert!(v.get(k).is_some(), "{k} missing in {l}");
        }
    }
}

/// `ds` replayed by the driver into `out`.
async fn driven(cfg: &Config, ds: &Dataset, out: &Path, opts: ReplayOptions) -> replay::ReplayOutput {
    let (p, clock) = replay::open(cfg, ds, out).await.expect("open");
    replay::drive(ds, &p, &clock, opts, &|_| {}).await.expect("replay")
}

/// Remote-write 1.0 body of one step's samples, as Prometheus would send it.
fn remote_write(batch: &harbinger_core::SampleBatch) -> Vec<u8> {
    let label = |name: &str, value: &str| prompb::Label { name: name.into(), value: value.into() };
    let timeseries = batch
        .series
        .iter()
        .map(|s| prompb::TimeSeries {
            labels: vec![label("__name__", s.key.metric.as_str()), label("host", s.key.host.as_str())],
            samples: s.timestamps.iter().zip(&s.values).map(|(&timestamp, &value)| prompb::Sample { value, timestamp }).collect(),
        })
        .collect();
    encode(&prompb::WriteRequest { timeseries })
}

/// The replay driver and the serve pipeline fed over HTTP (remote write and
/// `/api/v1/events`, the manual clock set and the engine ticked once per step, failures
/// reported with `Engine::host_failed` as the watchdog does) take the same decisions and
/// raise the same alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_decides_as_serve_fed_over_http() {
    let ds = fleet();
    assert!(!ds.failures.is_empty(), "the test fleet should have failures");
    let cfg = Config::defaults();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ReplayOptions { tick_ms: 60_000, trace_every_ms: None };

    // 1. The replay driver.
    let out_a = dir.path().join("replay");
    let a = driven(&cfg, &ds, &out_a, opts).await;

    // 2. The same pipeline behind serve's HTTP server, fed step by step.
    let out_b = dir.path().join("http");
    let (p, clock) = replay::open(&cfg, &ds, &out_b).await.expect("open");
    let mut state = harbinger_api::AppState::new(p.stores.clone(), p.telemetry.clone(), 64 << 20);
    state.engine = Some(p.engine.clone());
    state.scorer = p.scorer.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(harbinger_api::serve(listener, state, async move {
        let _stop = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let mut alerts: Vec<(HostId, i64, String)> = Vec::new();
    for step in Steps::new(&ds, opts.tick_ms).expect("steps") {
        clock.set(step.now);
        if !step.events.is_empty() {
            let body: String = step.events.iter().map(|e| serde_json::to_string(e).expect("event") + "\n").collect();
            let r = http.post(format!("{url}/api/v1/events")).body(body).send().await.expect("events");
            assert!(r.status().is_success(), "events: {}", r.status());
        }
        if !step.samples.series.is_empty() {
            let r = http
                .post(format!("{url}/api/v1/write"))
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "snappy")
                .body(remote_write(&step.samples))
                .send()
                .await
                .expect("write");
            assert!(r.status().is_success(), "write: {}", r.status());
        }
        for (host, why) in &step.failures {
            p.engine.host_failed(host, why).await.expect("host failed");
        }
        let report = p.engine.tick().await.expect("tick");
        let mut entered: Vec<_> = report
            .transitions
            .iter()
            .filter(|t| t.kind == TransitionKind::Entered)
            .map(|t| (t.host.clone(), step.now, format!("{:.6}", t.risk)))
            .collect();
        entered.sort();
        alerts.extend(entered);
    }
    let _stopped = stop_tx.send(());
    server.await.expect("server task").expect("server");

    let replayed: Vec<(HostId, i64, String)> = a.alerts.iter().map(|x| (x.host.clone(), x.timestamp, format!("{:.6}", x.score))).collect();
    assert!(!replayed.is_empty(), "the test fleet should raise alerts");
    assert_eq!(replayed, alerts, "alerts differ");
    let da = std::fs::read_to_string(out_a.join("decisions.jsonl")).expect("replay decisions");
    let db = std::fs::read_to_string(out_b.join("decisions.jsonl")).expect("http decisions");
    assert!(da.lines().count() > 0, "no decisions");
    assert!(da.contains("\"kind\":\"failover\"") || da.contains("\"kind\":\"shadow_promoted\""), "no failure handled:\n{da}");
    assert_eq!(da, db, "decisions.jsonl differs between replay and serve over HTTP");
}

/// Replay feeds the scorer an hour of ticks at a time; fed tick by tick through the ingest
/// path (`run_step`) it decides, alerts and traces the same, also when a host outside the
/// inventory starts reporting halfway (it must not be known before its first sample). The
/// store takes a block's samples at once; with a retention shorter than a block, or a
/// series limit that refuses some of the dataset's series, it takes them step by step
/// (which series a limit refuses depends on the order they come in), and the replay is
/// the same as fed tick by tick with that store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_fed_a_block_of_ticks_at_a_time_equals_replay_fed_tick_by_tick() {
    let mut ds = fleet();
    let late = ds.hosts.remove(2).host;
    let (start, end) = harbinger_model::runner::data_span(&ds).expect("samples");
    // Half way and between two ticks: its first sample is fed at the next minute.
    let from = start + (end - start) / 2 + 17_000;
    for s in ds.metrics.iter_mut().filter(|s| s.key.host == late) {
        let keep = s.timestamps.partition_point(|&t| t < from);
        s.timestamps.drain(..keep);
        s.values.drain(..keep);
    }
    ds.events.retain(|e| e.host.as_ref() != Some(&late) || e.ts >= from);
    let opts = ReplayOptions { tick_ms: 60_000, trace_every_ms: Some(60_000) };
    let mut short = Config::defaults();
    short.store.retention = Some(std::time::Duration::from_secs(30 * 60));
    let mut limited = Config::defaults();
    limited.store.max_series = ds.metrics.len() - 3;
    // (case, config, stored a block at once, series refused)
    for (name, cfg, at_once, refused) in
        [("at once", Config::defaults(), true, 0), ("30 min retention", short, false, 0), ("series limit", limited, false, 3)]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_a = dir.path().join("blocks");
        let a = driven(&cfg, &ds, &out_a, opts).await;

        let out_b = dir.path().join("ticks");
        let (p, clock) = replay::open(&cfg, &ds, &out_b).await.expect("open");
        // Blocks of an hour of minute ticks (at most) for this small fleet.
        assert_eq!(clock.admit_span_ms >= 60 * 60_000, at_once, "{name}: {}", clock.admit_span_ms);
        let mut rec = replay::Recorder::default();
        for step in Steps::new(&ds, opts.tick_ms).expect("steps") {
            replay::run_step(&p, &clock, step, opts.trace_every_ms, true, &mut rec).await.expect("step");
        }
        let kept = p.stores.metrics.series().await.expect("series").len();
        drop(p);

        assert_eq!(kept, ds.metrics.len() - refused, "{name}: series stored");
        let da = std::fs::read_to_string(out_a.join("decisions.jsonl")).expect("decisions");
        assert!(da.lines().count() > 0, "{name}: no decisions");
        assert_eq!(da, std::fs::read_to_string(out_b.join("decisions.jsonl")).expect("decisions"), "{name}: decisions differ");
        let alerts =
            |v: &[harbinger_model::Alert]| v.iter().map(|x| format!("{} {} {:.9}", x.host, x.timestamp, x.score)).collect::<Vec<_>>();
        assert!(!a.alerts.is_empty(), "{name}: the fleet raises alerts");
        assert_eq!(alerts(&a.alerts), alerts(&rec.alerts), "{name}: alerts differ");
        assert_eq!(a.risk, rec.risk, "{name}: risk traces differ");
        let first_seen = a.risk.iter().find(|r| r.host == late).map(|r| r.timestamp).expect("the late host is traced");
        assert_eq!(
            first_seen,
            from.div_euclid(60_000) * 60_000 + 60_000,
            "{name}: the late host is known from the tick after its first sample"
        );
    }
}

/// A replay reading the samples from the file as it goes (`replay::read`, the way
/// `harbinger replay` runs on a Parquet dataset) writes the same bytes as the replay of
/// the dataset loaded whole, and so does one over a CSV dataset (loaded whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reading_the_file_as_it_goes_equals_replay_of_the_loaded_dataset() {
    let ds = fleet();
    let cfg = Config::defaults();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ReplayOptions::default();
    let files = ["alerts.csv", "decisions.jsonl", "summary.json", "risk.csv"];
    let mut outputs = Vec::new();
    for format in [harbinger_dataset::MetricsFormat::Parquet, harbinger_dataset::MetricsFormat::Csv] {
        let data = dir.path().join(format!("{format:?}"));
        harbinger_dataset::write_dataset(&ds, &data, format).expect("write");
        let (read, cuts) = replay::read(&data).expect("read");
        assert_eq!(cuts.is_some(), format == harbinger_dataset::MetricsFormat::Parquet, "{format:?}");
        assert_eq!(read.metrics.is_empty(), cuts.is_some(), "samples either cut or loaded");
        let out = dir.path().join(format!("{format:?}-out"));
        let o = match cuts {
            Some(cuts) => {
                let (p, clocks) = replay::open_with(&cfg, &read, cuts.span(), None, &out).await.expect("open");
                replay::drive_cut(&read, cuts, &p, &clocks, opts, &|_| {}).await.expect("replay")
            }
            None => driven(&cfg, &read, &out, opts).await,
        };
        replay::write(&out, &o).expect("write output");
        outputs.push(out);
    }
    let loaded = dir.path().join("loaded");
    let o = driven(&cfg, &ds, &loaded, opts).await;
    assert!(o.samples > 0 && !o.alerts.is_empty(), "a replay with something to compare");
    replay::write(&loaded, &o).expect("write output");
    for out in &outputs {
        for f in files {
            let (x, y) = (std::fs::read(loaded.join(f)).expect(f), std::fs::read(out.join(f)).expect(f));
            assert!(x == y, "{f} of {} differs from the loaded replay's", out.display());
        }
    }
}

/// A row the replay meets as it reads (here a host not in hosts.csv) stops it with an error
/// naming the row, both through the driver and through the step iterator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_met_while_reading_stops_the_replay_naming_it() {
    let mut ds = fleet();
    let mut ghost = ds.metrics[0].clone();
    ghost.key = harbinger_core::SeriesKey::new("ghost", ghost.key.metric.as_str());
    ds.metrics.push(ghost);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    harbinger_dataset::write_dataset(&ds, &data, harbinger_dataset::MetricsFormat::Parquet).expect("write");
    let (read, cuts) = replay::read(&data).expect("opened: the rows are read as the replay goes");
    let cuts = cuts.expect("a Parquet file with statistics is cut");
    let (p, clocks) = replay::open_with(&Config::defaults(), &read, cuts.span(), None, &dir.path().join("out")).await.expect("open");
    let err = format!("{:#}", replay::drive_cut(&read, cuts, &p, &clocks, ReplayOptions::default(), &|_| {}).await.expect_err("a bad row"));
    assert!(err.contains("metrics.parquet row ") && err.contains("ghost"), "{err}");
    let (_, cuts) = replay::read(&data).expect("opened");
    let mut steps = Steps::cut(&read, cuts.expect("cut"), 60_000).expect("steps");
    assert_eq!(steps.by_ref().count(), 0, "the first step's samples include the bad row");
    let err = format!("{:#}", steps.error().expect("why the steps ended"));
    assert!(err.contains("ghost"), "{err}");
}
