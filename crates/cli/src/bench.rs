//! `harbinger bench ingest`: ingest throughput, with a real Prometheus as the peer.
//!
//! Three figures, each the median of `--runs` runs on fresh stores:
//! 1. Parquet load: read + validate `metrics.parquet` of a synthetic fleet and store it.
//! 2. Remote-write decode + store, in process, on one thread.
//! 3. Remote-write over HTTP: the same payloads sent by the same client to `harbinger serve`
//!    and to a real Prometheus (`--web.enable-remote-write-receiver`), 4 connections, each
//!    owning disjoint series so per-series order holds.
//!
//! The output is a Markdown section for `BENCHMARKS.md` (see `bench/ingest.sh`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harbinger_api::{AppState, Telemetry};
use harbinger_core::{MetricStore, Stores};
use harbinger_dataset::synth::{SynthParams, generate};
use harbinger_dataset::{LoadOptions, MetricsFormat, read_dataset, store_dataset, write_dataset};
use harbinger_ingest::remote_write::{self, prompb};
use harbinger_store::{EmbeddedConfig, EmbeddedStore};

use crate::args::BenchIngestArgs;

const WORKERS: usize = 4;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn fresh_store(dir: &Path) -> anyhow::Result<EmbeddedStore> {
    let mut cfg = EmbeddedConfig::new(dir);
    cfg.limits.retention_ms = None;
    Ok(EmbeddedStore::open(cfg)?)
}

/// Remote-write payloads: `payloads[w][i]` is worker w's i-th request. Worker w owns the
/// series `m{k}` on hosts `w{w}-h{j}`; request i carries samples at `base + i * step`.
fn payloads(a: &BenchIngestArgs, base_ms: i64) -> Vec<Vec<Vec<u8>>> {
    let per_worker = a.requests.div_ceil(WORKERS);
    (0..WORKERS)
        .map(|w| {
            (0..per_worker)
                .map(|i| {
                    let timeseries = (0..a.series_per_request)
                        .map(|j| prompb::TimeSeries {
                            labels: vec![
                                prompb::Label { name: "__name__".into(), value: format!("bench_metric_{}", j % 20) },
                                prompb::Label { name: "instance".into(), value: format!("w{w}-h{:04}", j / 20) },
                                prompb::Label { name: "job".into(), value: "bench".into() },
                            ],
                            samples: (0..a.samples_per_series)
                                .map(|k| prompb::Sample {
                                    value: ((i * 7 + j + k) % 1000) as f64 / 10.0,
                                    timestamp: base_ms + ((i * a.samples_per_series + k) as i64) * 1_000,
                                })
                                .collect(),
                        })
                        .collect();
                    remote_write::encode(&prompb::WriteRequest { timeseries })
                })
                .collect()
        })
        .collect()
}

async fn send_all(client: &reqwest::Client, url: &str, payloads: &[Vec<Vec<u8>>]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in payloads {
        let worker = worker.clone();
        let client = client.clone();
        let url = url.to_string();
        tasks.spawn(async move {
            for body in worker {
                let resp = remote_write(&client, &url, body).send().await?;
                let status = resp.status();
                if !status.is_success() {
                    let text = resp.text().await.unwrap_or_default();
                    bail!("{url}: HTTP {status}: {}", text.trim());
                }
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("sender task")??;
    }
    Ok(start.elapsed())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A Prometheus process with the remote-write receiver, stopped on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(bin: &Path, client: &reqwest::Client) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n")?;
        let port = free_port()?;
        let child = std::process::Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let p = Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", p.url)).send().await
                && r.status().is_success()
            {
                return Ok(p);
            }
            if Instant::now() > deadline {
                bail!("Prometheus at {} did not become ready in 30 s", p.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// An in-process `harbinger serve` on its own runtime thread, over a fresh store.
struct Harbinger {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Harbinger {
    fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(fresh_store(dir.path())?);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let state = AppState::new(Stores::from_backend(store.clone()), Arc::new(Telemetry::new()), 64 << 20);
                harbinger_api::serve(listener, state, async move {
                    let _stopped = rx.await;
                })
                .await?;
                store.close()?;
                Ok(())
            })
        });
        Ok(Self { url: format!("http://{addr}"), stop: Some(tx), thread: Some(thread), _dir: dir })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("harbinger server thread panicked"),
            None => Ok(()),
        }
    }
}

/// Prints the head of a BENCHMARKS.md section: the title, then the command that ran, the
/// date and the machine.
pub(crate) fn print_header(title: &str) {
    let cmd: Vec<String> = std::env::args().collect();
    println!("### {title}\n");
    println!("Command: `{}`  ", cmd.join(" "));
    println!("Date: {}  ", humantime::format_rfc3339_seconds(std::time::SystemTime::now()));
    println!(
        "Machine: {}, {} cores usable by this process  ",
        machine(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 { format!("{:.2} M", r / 1e6) } else { format!("{:.0} k", r / 1e3) }
}

/// Runs the ingest benchmark and prints a Markdown section.
///
/// # Errors
/// Setup failures, or a server answering with an error status.
pub async fn ingest(a: &BenchIngestArgs) -> anyhow::Result<()> {
    let runs = a.runs.max(1);
    let client = reqwest::Client::builder().pool_max_idle_per_host(WORKERS).build()?;

    // 1. Parquet load.
    let work = tempfile::tempdir()?;
    let params = SynthParams { hosts: a.hosts, days: a.days, ..SynthParams::default() };
    let fleet = generate(&params)?;
    let ds_dir = work.path().join("fleet");
    write_dataset(&fleet.dataset, &ds_dir, MetricsFormat::Parquet)?;
    drop(fleet);
    let mut parquet_rates = Vec::new();
    let mut parquet_samples = 0;
    for run in 0..runs {
        let store_dir = work.path().join(format!("store-pq-{run}"));
        let start = Instant::now();
        let (ds, _) = read_dataset(&ds_dir, LoadOptions::default())?;
        let store = Arc::new(fresh_store(&store_dir)?);
        let rep = store_dataset(ds, &Stores::from_backend(store.clone())).await?;
        store.close()?;
        let secs = start.elapsed().as_secs_f64();
        parquet_samples = rep.samples.accepted;
        parquet_rates.push(rep.samples.accepted as f64 / secs);
        std::fs::remove_dir_all(&store_dir).ok();
    }

    // 2. Remote-write decode + store, one thread, in process.
    let base_ms = harbinger_core::Clock::now_ms(&harbinger_core::SystemClock) - 3_600_000;
    let bodies = payloads(a, base_ms);
    let total_samples: usize = bodies.iter().map(Vec::len).sum::<usize>() * a.series_per_request * a.samples_per_series;
    let wire_bytes: usize = bodies.iter().flatten().map(Vec::len).sum();
    let mut decode_rates = Vec::new();
    for run in 0..runs {
        let store_dir = work.path().join(format!("store-rw-{run}"));
        let store = fresh_store(&store_dir)?;
        let cache = remote_write::SeriesCache::default();
        let start = Instant::now();
        let mut stored = 0;
        for body in bodies.iter().flatten() {
            let d = remote_write::decode_with(body, 256 << 20, &cache)?;
            stored += store.append(&d.batch).await?.accepted;
        }
        store.flush().await?;
        let secs = start.elapsed().as_secs_f64();
        if stored as usize != total_samples {
            bail!("decode+store kept {stored} of {total_samples} samples");
        }
        decode_rates.push(stored as f64 / secs);
        drop(store);
        std::fs::remove_dir_all(&store_dir).ok();
    }

    // 3. Over HTTP: harbinger vs Prometheus, same payloads, same client.
    let mut http_h = Vec::new();
    let mut http_p = Vec::new();
    for _ in 0..runs {
        let h = Harbinger::start()?;
        let d = send_all(&client, &format!("{}/api/v1/write", h.url), &bodies).await?;
        h.stop()?;
        http_h.push(total_samples as f64 / d.as_secs_f64());
        if let Some(bin) = &a.prometheus {
            let p = Prometheus::start(bin, &client).await?;
            let d = send_all(&client, &format!("{}/api/v1/write", p.url), &bodies).await?;
            http_p.push(total_samples as f64 / d.as_secs_f64());
            drop(p);
        }
    }

    let pq = median(parquet_rates.clone());
    let dec = median(decode_rates.clone());
    let hh = median(http_h.clone());
    let prom_version = a.prometheus.as_ref().map(prometheus_version);
    let cmd: Vec<String> = std::env::args().collect();
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut md = String::new();
    md.push_str(&format!("Command: `{}`  \n", cmd.join(" ")));
    md.push_str(&format!("Date: {date}  \nMachine: {}  \n", machine()));
    md.push_str(&format!(
        "Workload: Parquet fleet of {} hosts x {} days x 8 metrics at 60 s ({} samples); remote-write: {} requests x {} series x {} samples ({} samples, {:.1} MB snappy on the wire). Medians of {runs} runs.\n\n",
        a.hosts, a.days, parquet_samples, bodies.iter().map(Vec::len).sum::<usize>(), a.series_per_request, a.samples_per_series, total_samples, wire_bytes as f64 / 1e6
    ));
    md.push_str("| figure | median | runs | target |\n|---|---|---|---|\n");
    md.push_str(&format!("| Parquet read + validate + store | {} samples/s | {} | >= 5 M/s |\n", fmt_rate(pq), runs_list(&parquet_rates)));
    md.push_str(&format!(
        "| remote-write decode + store, 1 thread | {} samples/s | {} | >= 2 M/s |\n",
        fmt_rate(dec),
        runs_list(&decode_rates)
    ));
    md.push_str(&format!("| remote-write over HTTP, harbinger | {} samples/s | {} | |\n", fmt_rate(hh), runs_list(&http_h)));
    if let Some(v) = &prom_version {
        let pp = median(http_p.clone());
        md.push_str(&format!("| remote-write over HTTP, Prometheus {v} | {} samples/s | {} | |\n", fmt_rate(pp), runs_list(&http_p)));
        md.push_str(&format!("| **ratio harbinger / Prometheus** | **{:.2}x** | | >= 1.5x |\n", hh / pp));
    }
    println!("{md}");
    if let Some(out) = &a.json_out {
        let v = serde_json::json!({
            "date": date.to_string(), "machine": machine(), "command": cmd,
            "parquet_samples_per_s": parquet_rates, "decode_store_samples_per_s": decode_rates,
            "http_harbinger_samples_per_s": http_h, "http_prometheus_samples_per_s": http_p,
            "prometheus_version": prom_version, "markdown": md,
        });
        std::fs::write(out, serde_json::to_string_pretty(&v)?).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn runs_list(v: &[f64]) -> String {
    v.iter().map(|r| format!("{:.2}", r / 1e6)).collect::<Vec<_>>().join(", ") + " M/s"
}

fn prometheus_version(bin: &PathBuf) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
            s.split_whitespace().skip_while(|w| *w != "version").nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A remote-write 1.0 POST of `body` (snappy + protobuf) to `url`, with Prometheus' headers.
pub(crate) fn remote_write(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
}
