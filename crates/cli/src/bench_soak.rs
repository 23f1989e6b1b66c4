//! `harbinger bench soak`: `harbinger serve` under a steady mixed load with faults, for
//! minutes, watching its memory.
//!
//! The server is a child process (this binary's `serve`) on free ports, over a fresh data
//! directory, with the built-in default model and a small configuration of its own
//! ([`SoakLimits`]). It is driven open-loop at `--rate` requests/s; each request's kind is
//! drawn from a fixed mix ([`Kind::weight`]) by a generator seeded with `--seed`, so two
//! runs with the same flags send the same sequence:
//! - valid remote writes (`--hosts` hosts, 20 per request, 8 metrics, stamped with the wall
//!   clock; one request at a time per group of hosts, so each series stays in order),
//! - scoring reads: gRPC `ScoreHosts` through the project's client and `GET /api/v1/risk`,
//! - faults, each a small share: a client that drops its connection half-way through the
//!   headers or the body, bodies over `http.max_body_bytes` (declared, or chunked),
//!   corrupt snappy, corrupt protobuf, a sample stamped in year 9999 on a live series,
//!   over-long host ids and metric names, hosts whose clock is 3 h behind or ahead, bursts
//!   of new hosts past `store.max_series`, clients sending their headers a byte at a time
//!   slower than `http.header_timeout`, and large valid bodies that decompress to MBs.
//!
//! Every answer is classified as expected for its kind (e.g. 400 naming `future` for the
//! year-9999 sample, 429 when every decode slot is busy) or unexpected. Every `--interval`
//! the server's RSS (`VmRSS` of the child), the counts and the latency of the valid
//! requests are reported on stderr; at the end a Markdown section (RELIABILITY.md, see
//! `bench/soak.sh`) or JSON is printed. The run fails (non-zero exit, after the report)
//! on an unexpected outcome, a crash, a store past its series limit, an unclean stop, or
//! memory that is not flat: RSS at the end above the RSS after the warm-up (the first
//! minute) plus the larger of 20 % and 30 MiB, judged on runs of two minutes or more.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harbinger_grpc::client::{Clients, connect};
use harbinger_grpc::pb;
use harbinger_ingest::remote_write::{encode, prompb};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::args::BenchSoakArgs;
use crate::bench_grpc::pct;
use crate::demo::{free_port, tcp_open_owned, until};

/// The metrics of each valid host (those of the synthetic fleets the model knows).
const METRICS: [&str; 8] = ["cpu_util", "mem_util", "disk_util", "disk_io_wait", "net_latency_ms", "error_rate", "temperature_c", "load1"];
/// A typical value of each metric, varied by a few percent.
const LEVELS: [f64; 8] = [0.35, 0.55, 0.45, 0.02, 4.0, 0.002, 48.0, 1.2];
/// Hosts per valid remote-write request.
const GROUP: usize = 20;
/// Hosts of the large valid bodies (8 metrics each).
const BIG_HOSTS: usize = 40;
/// Series the new-host bursts may create before `store.max_series` refuses them.
const NEW_SERIES_ALLOWANCE: usize = 1_000;
/// New hosts per burst (one series each).
const NEW_HOSTS_PER_REQUEST: usize = 100;
/// 9999-12-31T23:59:59Z in ms.
const YEAR_9999_MS: i64 = 253_402_300_799_000;
/// How far the skewed hosts' clocks are off.
const SKEW_MS: i64 = 3 * 3_600_000;
/// Per-request bound of the soak's HTTP and gRPC clients.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Hosts per `ScoreHosts` request and per `GET /api/v1/risk`.
const SCORE_BATCH: usize = 10;
/// RSS sampling period (the report keeps every `--interval`).
const RSS_EVERY: Duration = Duration::from_secs(1);
/// The memory rule: the end may exceed the warm-up RSS by this share or [`FLAT_MIB`],
/// whichever is larger.
const FLAT_SHARE: f64 = 0.20;
const FLAT_MIB: f64 = 30.0;
/// The shortest warm-up whose end RSS the rule compares with; runs under twice the
/// warm-up are not judged.
const WARMUP: Duration = Duration::from_secs(60);
/// The longest time-bounded state of the server: the live scorer's 24 h baselines (the
/// store's hot windows and the scorer's rolling windows span 6 h). The warm-up lasts until
/// the server's clock has covered it (see [`warmup`]).
const FILL: Duration = Duration::from_secs(24 * 3600);

/// The warm-up at `--speed`: [`WARMUP`], or the wall time the server's clock takes to
/// cover [`FILL`] plus 30 s, whichever is longer.
fn warmup(speed: u32) -> Duration {
    WARMUP.max(FILL / speed.max(1) + Duration::from_secs(30))
}

/// The clock the soak stamps samples with: the wall clock, or (`--speed`) the same sped-up
/// clock the server runs on.
static CLOCK: std::sync::OnceLock<harbinger_core::ScaledClock> = std::sync::OnceLock::new();

/// The configuration the soak runs the server with (everything else at its default).
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct SoakLimits {
    max_body_bytes: usize,
    header_timeout_s: u64,
    max_series: usize,
}

impl SoakLimits {
    fn for_hosts(hosts: usize) -> Self {
        // Valid hosts, the large bodies' hosts and the two skewed hosts, plus room for the
        // first new hosts of the bursts.
        let max_series = (hosts + BIG_HOSTS + 2) * METRICS.len() + NEW_SERIES_ALLOWANCE;
        Self { max_body_bytes: 1 << 20, header_timeout_s: 2, max_series }
    }

    fn toml(&self, data_dir: &Path) -> String {
        format!(
            "data_dir = {:?}\n\n[http]\nmax_body_bytes = {}\nheader_timeout = \"{}s\"\n\n[store]\nmax_series = {}\n",
            data_dir.display().to_string(),
            self.max_body_bytes,
            self.header_timeout_s,
            self.max_series
        )
    }
}

/// What the soak sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ingest,
    ScoreGrpc,
    ScoreHttp,
    Disconnect,
    Oversized,
    CorruptSnappy,
    CorruptProtobuf,
    FarFuture,
    LongKey,
    SkewPast,
    SkewFuture,
    NewHosts,
    SlowClient,
    BigBody,
}

impl Kind {
    const ALL: [Kind; 14] = [
        Kind::Ingest,
        Kind::ScoreGrpc,
        Kind::ScoreHttp,
        Kind::Disconnect,
        Kind::Oversized,
        Kind::CorruptSnappy,
        Kind::CorruptProtobuf,
        Kind::FarFuture,
        Kind::LongKey,
        Kind::SkewPast,
        Kind::SkewFuture,
        Kind::NewHosts,
        Kind::SlowClient,
        Kind::BigBody,
    ];

    /// Share of the requests, in percent (the weights sum to 100).
    fn weight(self) -> u32 {
        match self {
            Kind::Ingest => 54,
            Kind::ScoreGrpc => 14,
            Kind::ScoreHttp => 10,
            _ => 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Ingest => "valid remote write (20 hosts x 8 metrics, now)",
            Kind::ScoreGrpc => "gRPC ScoreHosts (10 hosts)",
            Kind::ScoreHttp => "GET /api/v1/risk (10 hosts)",
            Kind::Disconnect => "client drops the connection mid-headers / mid-body",
            Kind::Oversized => "body over http.max_body_bytes (declared / chunked)",
            Kind::CorruptSnappy => "corrupt snappy",
            Kind::CorruptProtobuf => "corrupt protobuf (valid snappy)",
            Kind::FarFuture => "sample in year 9999 on a live series",
            Kind::LongKey => "host id > 512 B / metric name > 4 KiB",
            Kind::SkewPast => "host whose clock is 3 h behind",
            Kind::SkewFuture => "host whose clock is 3 h ahead",
            Kind::NewHosts => "100 new hosts per request, past store.max_series",
            Kind::SlowClient => "headers sent a byte per 250 ms (header timeout 2 s)",
            Kind::BigBody => "large valid body",
        }
    }

    fn json_name(self) -> &'static str {
        match self {
            Kind::Ingest => "ingest",
            Kind::ScoreGrpc => "score_grpc",
            Kind::ScoreHttp => "score_http",
            Kind::Disconnect => "disconnect",
            Kind::Oversized => "oversized",
            Kind::CorruptSnappy => "corrupt_snappy",
            Kind::CorruptProtobuf => "corrupt_protobuf",
            Kind::FarFuture => "far_future",
            Kind::LongKey => "long_key",
            Kind::SkewPast => "skew_past",
            Kind::SkewFuture => "skew_future",
            Kind::NewHosts => "new_hosts",
            Kind::SlowClient => "slow_client",
            Kind::BigBody => "big_body",
        }
    }

    fn pick(r: u32) -> Kind {
        let mut acc = 0;
        for k in Kind::ALL {
            acc += k.weight();
            if r < acc {
                return k;
            }
        }
        Kind::Ingest
    }
}

/// One answer (or its absence), classified.
struct Outcome {
    label: String,
    expected: bool,
    latency: Option<Duration>,
}

impl Outcome {
    fn ok(label: impl Into<String>, latency: Duration) -> Self {
        Self { label: label.into(), expected: true, latency: Some(latency) }
    }
    fn expected(label: impl Into<String>) -> Self {
        Self { label: label.into(), expected: true, latency: None }
    }
    fn unexpected(label: impl Into<String>) -> Self {
        Self { label: label.into(), expected: false, latency: None }
    }
}

#[derive(Default)]
struct Stats {
    /// (kind, outcome) -> (count, expected).
    outcomes: BTreeMap<(Kind, String), (u64, bool)>,
    /// Latencies (ms) of expected answers, whole run.
    latency: BTreeMap<Kind, Vec<f64>>,
    /// Latencies (ms) of expected answers since the last report.
    window: BTreeMap<Kind, Vec<f64>>,
}

impl Stats {
    fn totals(&self) -> (u64, u64) {
        let all = self.outcomes.values().map(|(n, _)| n).sum();
        let bad = self.outcomes.values().filter(|(_, e)| !e).map(|(n, _)| n).sum();
        (all, bad)
    }
}

fn now_ms() -> i64 {
    match CLOCK.get() {
        Some(c) => harbinger_core::Clock::now_ms(c),
        None => harbinger_core::Clock::now_ms(&harbinger_core::SystemClock),
    }
}

/// One series of a write request.
type Series = (String, String, Vec<(i64, f64)>);

fn write_request(series: &[Series]) -> Vec<u8> {
    encode(&prompb::WriteRequest {
        timeseries: series
            .iter()
            .map(|(host, metric, pts)| prompb::TimeSeries {
                labels: vec![
                    prompb::Label { name: "__name__".into(), value: metric.clone() },
                    prompb::Label { name: "instance".into(), value: host.clone() },
                    prompb::Label { name: "job".into(), value: "soak".into() },
                ],
                samples: pts.iter().map(|(t, v)| prompb::Sample { timestamp: *t, value: *v }).collect(),
            })
            .collect(),
    })
}

/// A plausible value of metric `m` on host number `h` at `t`.
fn value(h: usize, m: usize, t: i64) -> f64 {
    let phase = (t / 1000) as f64 / 300.0 + h as f64 * 0.37 + m as f64;
    LEVELS[m] * (1.0 + 0.05 * phase.sin())
}

/// Every metric of `hosts` at `t`.
fn all_metrics(hosts: &[(usize, &str)], t: i64) -> Vec<Series> {
    hosts
        .iter()
        .flat_map(|(h, name)| {
            METRICS.iter().enumerate().map(move |(m, metric)| (name.to_string(), metric.to_string(), vec![(t, value(*h, m, t))]))
        })
        .collect()
}

/// A raw snappy block holding `data` as one literal (`data` at most 60 bytes): valid
/// snappy around bytes that are not a valid protobuf.
fn snappy_literal(data: &[u8]) -> Vec<u8> {
    debug_assert!(!data.is_empty() && data.len() <= 60);
    let mut out = vec![data.len() as u8, ((data.len() - 1) as u8) << 2];
    out.extend_from_slice(data);
    out
}

/// Protobuf that no `WriteRequest` reader accepts.
const CORRUPT_PROTOBUF: [&[u8]; 3] = [
    // Field 1 claiming a length far past the end.
    b"\x0a\xff\xff\xff\xff\x0f",
    // Field 1 of 5 bytes with 4 left.
    b"\x0a\x05\x0a\x03\x0a\x01",
    // A varint of 11 bytes.
    b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
];

/// A short reason for an answer's body: the refusal reason it names, or its start.
fn reason(body: &str) -> String {
    for r in ["series_limit", "key_too_long", "future", "out_of_order", "duplicate", "too_old", "snappy", "protobuf", "exceeds the limit"] {
        if body.contains(r) {
            return r.to_string();
        }
    }
    body.trim().chars().take(60).collect()
}

/// Everything the request tasks share.
struct Shared {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// `127.0.0.1:PORT` of HTTP, for the raw-socket clients.
    addr: String,
    grpc: Vec<Clients>,
    hosts: Vec<String>,
    /// Per group of [`GROUP`] hosts: the last timestamp sent (one request at a time).
    groups: Vec<tokio::sync::Mutex<i64>>,
    next_group: AtomicUsize,
    big: tokio::sync::Mutex<i64>,
    big_samples: usize,
    skew_past: tokio::sync::Mutex<i64>,
    next_new_host: AtomicU64,
    limits: SoakLimits,
    stats: Mutex<Stats>,
}

impl Shared {
    fn record(&self, kind: Kind, o: Outcome) {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let e = s.outcomes.entry((kind, o.label)).or_insert((0, o.expected));
        e.0 += 1;
        if let Some(l) = o.latency {
            let ms = l.as_secs_f64() * 1e3;
            s.latency.entry(kind).or_default().push(ms);
            s.window.entry(kind).or_default().push(ms);
        }
    }

    async fn post_write(&self, body: Vec<u8>) -> Result<(u16, String, Duration), reqwest::Error> {
        let t = Instant::now();
        let r = crate::bench::remote_write(&self.http, &format!("{}/api/v1/write", self.base), body).send().await?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((status, text, t.elapsed()))
    }

    /// A write whose expected answer is 204, or 400 naming one of `refusals`; 429 (every
    /// decode slot busy) is the server's back-pressure and expected too.
    async fn write_expecting(&self, body: Vec<u8>, refusals: &[&str], accept_204: bool) -> Outcome {
        match self.post_write(body).await {
            Ok((204, _, d)) if accept_204 => Outcome::ok("204", d),
            Ok((204, _, _)) => Outcome::unexpected("204 (accepted)"),
            Ok((429, _, _)) => Outcome::expected("429 busy"),
            Ok((400, text, d)) => {
                let r = reason(&text);
                if refusals.contains(&r.as_str()) { Outcome::ok(format!("400 {r}"), d) } else { Outcome::unexpected(format!("400 {r}")) }
            }
            Ok((s, text, _)) => Outcome::unexpected(format!("{s} {}", reason(&text))),
            Err(e) => Outcome::unexpected(format!("transport error: {}", transport(&e))),
        }
    }

    async fn run(&self, kind: Kind, seed: u64) -> Outcome {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match kind {
            Kind::Ingest => self.ingest().await,
            Kind::ScoreGrpc => self.score_grpc(&mut rng).await,
            Kind::ScoreHttp => self.score_http(&mut rng).await,
            Kind::Disconnect => self.disconnect(rng.random_bool(0.5)).await,
            Kind::Oversized => self.oversized(rng.random_bool(0.5)).await,
            Kind::CorruptSnappy => {
                let body = if rng.random_bool(0.5) {
                    vec![0xff; 8]
                } else {
                    // A valid body cut in half: the block ends before its declared length.
                    let h: Vec<(usize, &str)> = self.hosts.iter().take(GROUP).map(String::as_str).enumerate().collect();
                    let mut b = write_request(&all_metrics(&h, now_ms() - 3_600_000));
                    b.truncate(b.len() / 2);
                    b
                };
                self.write_expecting(body, &["snappy"], false).await
            }
            Kind::CorruptProtobuf => {
                let body = snappy_literal(CORRUPT_PROTOBUF[rng.random_range(0..CORRUPT_PROTOBUF.len())]);
                self.write_expecting(body, &["protobuf"], false).await
            }
            Kind::FarFuture => {
                let h = &self.hosts[rng.random_range(0..self.hosts.len())];
                let m = METRICS[rng.random_range(0..METRICS.len())];
                let body = write_request(&[(h.clone(), m.to_string(), vec![(YEAR_9999_MS, 1.0)])]);
                self.write_expecting(body, &["future"], false).await
            }
            Kind::LongKey => {
                let tag: u32 = rng.random();
                let (host, metric) = if rng.random_bool(0.5) {
                    (format!("soak-long-{tag:08x}-{}", "h".repeat(600)), "cpu_util".to_string())
                } else {
                    (self.hosts[0].clone(), format!("soak_long_{tag:08x}_{}", "m".repeat(5_000)))
                };
                let body = write_request(&[(host, metric, vec![(now_ms(), 1.0)])]);
                self.write_expecting(body, &["key_too_long"], false).await
            }
            Kind::SkewPast => {
                let mut last = self.skew_past.lock().await;
                let t = (now_ms() - SKEW_MS).max(*last + 1);
                *last = t;
                let body = write_request(&all_metrics(&[(0, "soak-skew-past")], t));
                self.write_expecting(body, &[], true).await
            }
            Kind::SkewFuture => {
                // The host never gets a series (all its samples are refused): once the new
                // hosts have filled `store.max_series`, the series limit is named first.
                let body = write_request(&all_metrics(&[(1, "soak-skew-future")], now_ms() + SKEW_MS));
                self.write_expecting(body, &["future", "series_limit"], false).await
            }
            Kind::NewHosts => {
                let first = self.next_new_host.fetch_add(NEW_HOSTS_PER_REQUEST as u64, Ordering::Relaxed);
                let t = now_ms();
                let series: Vec<Series> = (first..first + NEW_HOSTS_PER_REQUEST as u64)
                    .map(|n| (format!("soak-new-{n:07}"), "cpu_util".to_string(), vec![(t, 0.3)]))
                    .collect();
                self.write_expecting(write_request(&series), &["series_limit"], true).await
            }
            Kind::SlowClient => self.slow_client().await,
            Kind::BigBody => {
                let mut last = self.big.lock().await;
                let base = (now_ms() - 3_600_000).max(*last + 1);
                *last = base + self.big_samples as i64 - 1;
                // Sent under the lock: the next large body's samples come after these.
                self.write_expecting(big_body(base, self.big_samples), &[], true).await
            }
        }
    }

    async fn ingest(&self) -> Outcome {
        let g = self.next_group.fetch_add(1, Ordering::Relaxed) % self.groups.len();
        let mut last = self.groups[g].lock().await;
        let t = now_ms().max(*last + 1);
        *last = t;
        let hosts: Vec<(usize, &str)> = self.hosts.iter().enumerate().skip(g * GROUP).take(GROUP).map(|(i, h)| (i, h.as_str())).collect();
        let body = write_request(&all_metrics(&hosts, t));
        // Back-pressure (429) is retried as a sender would; the group stays locked so its
        // series stay in order.
        for _ in 0..5 {
            let o = self.write_expecting(body.clone(), &[], true).await;
            if o.label != "429 busy" {
                return o;
            }
            self.record(Kind::Ingest, o);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Outcome::unexpected("429 five times in a row")
    }

    fn score_hosts(&self, rng: &mut ChaCha8Rng) -> Vec<String> {
        (0..SCORE_BATCH).map(|_| self.hosts[rng.random_range(0..self.hosts.len())].clone()).collect()
    }

    async fn score_grpc(&self, rng: &mut ChaCha8Rng) -> Outcome {
        let hosts = self.score_hosts(rng);
        let mut c = self.grpc[rng.random_range(0..self.grpc.len())].clone();
        let mut req = tonic::Request::new(pb::ScoreHostsRequest { hosts });
        req.set_timeout(CALL_TIMEOUT);
        let t = Instant::now();
        match c.risk.score_hosts(req).await {
            Ok(r) if r.get_ref().risks.len() == SCORE_BATCH => Outcome::ok("OK", t.elapsed()),
            Ok(r) => Outcome::unexpected(format!("OK with {} scores", r.get_ref().risks.len())),
            Err(s) => Outcome::unexpected(format!("{:?}", s.code())),
        }
    }

    async fn score_http(&self, rng: &mut ChaCha8Rng) -> Outcome {
        let hosts = self.score_hosts(rng);
        let t = Instant::now();
        let r = match self.http.get(format!("{}/api/v1/risk?host={}", self.base, hosts.join(","))).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::unexpected(format!("transport error: {}", transport(&e))),
        };
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        let d = t.elapsed();
        match serde_json::from_str::<Vec<serde_json::Value>>(&body) {
            Ok(v) if status == 200 && v.len() == SCORE_BATCH => Outcome::ok("200", d),
            _ => Outcome::unexpected(format!("{status} {}", reason(&body))),
        }
    }

    async fn connect_raw(&self) -> Result<tokio::net::TcpStream, Outcome> {
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(&self.addr)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(Outcome::unexpected(format!("connect: {}", e.kind()))),
            Err(_) => Err(Outcome::unexpected("connect: timed out")),
        }
    }

    /// Half of a request, then the connection dropped.
    async fn disconnect(&self, mid_body: bool) -> Outcome {
        let mut s = match self.connect_raw().await {
            Ok(s) => s,
            Err(o) => return o,
        };
        let h: Vec<(usize, &str)> = self.hosts.iter().take(GROUP).map(String::as_str).enumerate().collect();
        let body = write_request(&all_metrics(&h, now_ms() - 3_600_000));
        let head = format!(
            "POST /api/v1/write HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let sent = if mid_body {
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body[..body.len() / 2]);
            s.write_all(&bytes).await
        } else {
            s.write_all(&head.as_bytes()[..head.len() / 2]).await
        };
        if let Err(e) = sent {
            return Outcome::unexpected(format!("write: {}", e.kind()));
        }
        // Long enough for the server to start on the request.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(s);
        Outcome::expected(if mid_body { "dropped mid-body" } else { "dropped mid-headers" })
    }

    /// A body over the limit: declared in `Content-Length` (refused before it is read), or
    /// sent chunked (refused once the limit is read).
    async fn oversized(&self, chunked: bool) -> Outcome {
        let s = match self.connect_raw().await {
            Ok(s) => s,
            Err(o) => return o,
        };
        let limit = self.limits.max_body_bytes;
        let t = Instant::now();
        let (mut rd, mut wr) = s.into_split();
        let addr = self.addr.clone();
        let writer = tokio::spawn(async move {
            let framing = if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {}", limit + 1) };
            let head = format!(
                "POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n{framing}\r\n\r\n"
            );
            wr.write_all(head.as_bytes()).await?;
            if chunked {
                let chunk = vec![0x5a_u8; 64 << 10];
                let mut sent = 0;
                while sent <= limit {
                    wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                    wr.write_all(&chunk).await?;
                    wr.write_all(b"\r\n").await?;
                    sent += chunk.len();
                }
                wr.write_all(b"0\r\n\r\n").await?;
            }
            // Keep the write half open until the answer is read.
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::io::Error>(())
        });
        let answer = read_head(&mut rd, Duration::from_secs(10)).await;
        writer.abort();
        match answer {
            Ok(Some(head)) if head.starts_with("HTTP/1.1 413") => Outcome::ok("413", t.elapsed()),
            Ok(Some(head)) => Outcome::unexpected(head.lines().next().unwrap_or_default().to_string()),
            Ok(None) => Outcome::unexpected("closed without an answer"),
            Err(e) => Outcome::unexpected(format!("no answer: {e}")),
        }
    }

    /// Headers a byte at a time, 250 ms apart, never finished: the server must close the
    /// connection once `http.header_timeout` has passed.
    async fn slow_client(&self) -> Outcome {
        let s = match self.connect_raw().await {
            Ok(s) => s,
            Err(o) => return o,
        };
        let t = Instant::now();
        let timeout = Duration::from_secs(self.limits.header_timeout_s);
        let bound = timeout * 2 + Duration::from_secs(3);
        let (mut rd, mut wr) = s.into_split();
        let writer = tokio::spawn(async move {
            let head = b"POST /api/v1/write HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
            let mut sent = wr.write_all(head).await;
            while sent.is_ok() {
                tokio::time::sleep(Duration::from_millis(250)).await;
                sent = wr.write_all(b"a").await;
            }
        });
        let mut said = Vec::new();
        let mut buf = [0u8; 512];
        let closed = loop {
            match tokio::time::timeout_at((t + bound).into(), rd.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(n)) => said.extend_from_slice(&buf[..n]),
            }
        };
        writer.abort();
        let elapsed = t.elapsed();
        let status = String::from_utf8_lossy(&said).lines().next().unwrap_or_default().to_string();
        if !closed {
            return Outcome::unexpected(format!("still open after {:.0} s", bound.as_secs_f64()));
        }
        if elapsed + Duration::from_millis(100) < timeout {
            return Outcome::unexpected(format!("closed after {:.1} s, before the header timeout", elapsed.as_secs_f64()));
        }
        match status.as_str() {
            "" => Outcome::ok("closed by the server", elapsed),
            s if s.starts_with("HTTP/1.1 408") => Outcome::ok("408, closed", elapsed),
            s => Outcome::unexpected(format!("{s}, closed")),
        }
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        let mut s = e.to_string();
        let mut cur = std::error::Error::source(e);
        while let Some(c) = cur {
            let _w = write!(s, ": {c}");
            cur = c.source();
        }
        s
    }
}

/// Reads a response head (up to the blank line); `None` when the server closed first.
async fn read_head(rd: &mut (impl AsyncReadExt + Unpin), bound: Duration) -> anyhow::Result<Option<String>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let n = tokio::time::timeout_at(deadline, rd.read(&mut buf)).await.context("timed out")??;
        if n == 0 {
            return Ok((!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned()));
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&got).into_owned()));
        }
    }
}

/// The large valid body: [`BIG_HOSTS`] hosts x 8 metrics x `samples` samples 1 ms apart
/// from `base`, values repeating enough to compress well (so it decompresses to MBs).
fn big_body(base: i64, samples: usize) -> Vec<u8> {
    let names: Vec<String> = (0..BIG_HOSTS).map(|h| format!("soak-big-{h:03}")).collect();
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .flat_map(|(h, name)| {
            METRICS.iter().enumerate().map(move |(m, metric)| {
                let pts = (0..samples).map(|k| (base + k as i64, LEVELS[m] * (1.0 + ((k + h) % 16) as f64 / 100.0))).collect();
                (name.clone(), metric.to_string(), pts)
            })
        })
        .collect();
    write_request(&series)
}

/// Samples per series of the large bodies: the most (in steps of 50) whose snappy body
/// stays under 3/4 of `max_body` and whose decoded size stays under 6/8 of the decoded
/// limit (8 x `max_body`). Returns (samples, wire bytes, decoded bytes).
fn size_big_body(max_body: usize) -> (usize, usize, usize) {
    let mut best = (50, 0, 0);
    let mut n = 50;
    loop {
        let b = big_body(0, n);
        let decoded = snap_len(&b);
        if b.len() > max_body * 3 / 4 || decoded > max_body * 6 {
            return best;
        }
        best = (n, b.len(), decoded);
        n += 50;
        if n > 20_000 {
            return best;
        }
    }
}

/// The uncompressed length a snappy block declares (its leading varint).
fn snap_len(b: &[u8]) -> usize {
    let mut v = 0usize;
    for (i, byte) in b.iter().take(5).enumerate() {
        v |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// VmRSS of `pid` in MiB; `None` when the process is gone or a zombie.
fn rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if s.lines().any(|l| l.starts_with("State:") && l.contains('Z')) {
        return None;
    }
    let kb: f64 = s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The server's own gauges the report shows.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct Gauges {
    store_series: f64,
    store_samples: f64,
    cache_entries: f64,
    cache_bytes: f64,
}

async fn gauges(http: &reqwest::Client, base: &str) -> Option<Gauges> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    let get = |name: &str| {
        text.lines()
            .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Some(Gauges {
        store_series: get("harbinger_store_series"),
        store_samples: get("harbinger_store_samples"),
        cache_entries: get("harbinger_remote_write_cache_entries"),
        cache_bytes: get("harbinger_remote_write_cache_bytes"),
    })
}

/// One report row.
#[derive(Clone, Debug, serde::Serialize)]
struct Row {
    t_s: f64,
    rss_mib: f64,
    requests: u64,
    unexpected: u64,
    ingest_p50_ms: f64,
    ingest_p99_ms: f64,
    score_p50_ms: f64,
    score_p99_ms: f64,
    #[serde(flatten)]
    gauges: Gauges,
}

/// The serve child, killed on drop.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    http: String,
    grpc: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `clock`: (origin, speed) of a sped-up server clock.
    async fn start(limits: SoakLimits, clock: Option<(i64, u32)>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("harbinger-soak-").tempdir()?;
        let config = dir.path().join("soak.toml");
        std::fs::write(&config, limits.toml(&dir.path().join("data")))?;
        let log = dir.path().join("serve.log");
        let (hp, gp) = (free_port()?, free_port()?);
        let (http, grpc) = (format!("127.0.0.1:{hp}"), format!("127.0.0.1:{gp}"));
        let exe = std::env::current_exe()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("--config").arg(&config).args(["--log-level", "warn", "serve", "--http-addr", &http, "--grpc-addr", &grpc]);
        if let Some((origin, speed)) = clock {
            cmd.args(["--clock-speed", &speed.to_string(), "--clock-origin-ms", &origin.to_string()]);
        }
        // Run where no `models/default` is: the built-in default model.
        let child = cmd
            .current_dir(dir.path())
            .env_remove("HARBINGER_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting harbinger serve")?;
        let pid = child.id().context("the serve child has no pid")?;
        let s = Self { child, pid, http, grpc, log, _dir: dir };
        until("harbinger serve to listen", Duration::from_secs(60), || tcp_open_owned(s.http.clone())).await.map_err(|e| s.explain(e))?;
        Ok(s)
    }

    /// `e` with the end of the server's log.
    fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        e.context(format!("serve's log ends:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
    }

    /// SIGTERM, then the exit: (exit code or the signal that ended it, seconds taken).
    async fn stop(&mut self) -> (String, f64) {
        if let Some(st) = self.child.try_wait().ok().flatten() {
            return (exit_text(st), 0.0);
        }
        let t = Instant::now();
        if let Some(pid) = i32::try_from(self.pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _gone = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(st)) => (exit_text(st), t.elapsed().as_secs_f64()),
            Ok(Err(e)) => (format!("wait failed: {e}"), t.elapsed().as_secs_f64()),
            Err(_) => ("still running 30 s after SIGTERM".into(), t.elapsed().as_secs_f64()),
        }
    }
}

fn exit_text(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended".into(),
    }
}

/// `harbinger bench soak`.
///
/// # Errors
/// The server cannot be started or primed; or, after the report is printed, the soak
/// failed (an unexpected outcome, a crash, memory not flat, an unclean stop).
pub async fn run(a: &BenchSoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.minutes > 0.0 && a.minutes.is_finite(), "--minutes must be positive");
    anyhow::ensure!(a.rate > 0, "--rate must be positive");
    anyhow::ensure!(a.hosts >= SCORE_BATCH, "--hosts must be at least {SCORE_BATCH}");
    let duration = Duration::from_secs_f64(a.minutes * 60.0);
    let limits = SoakLimits::for_hosts(a.hosts);
    let (big_samples, big_wire, big_decoded) = size_big_body(limits.max_body_bytes);

    let clock = (a.speed > 1).then(|| (harbinger_core::Clock::now_ms(&harbinger_core::SystemClock), a.speed));
    if let Some((origin, speed)) = clock {
        anyhow::ensure!(CLOCK.set(harbinger_core::ScaledClock::new(origin, speed)).is_ok(), "the soak clock is already set");
    }
    let warmup = warmup(a.speed);
    let mut server = Server::start(limits, clock).await?;
    let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).pool_max_idle_per_host(16).build()?;
    let base = format!("http://{}", server.http);
    until("harbinger serve to be ready", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), format!("{base}/readyz"));
        async move { http.get(url).send().await.ok().filter(|r| r.status().is_success()).map(drop) }
    })
    .await
    .map_err(|e| server.explain(e))?;
    let mut grpc = Vec::new();
    for _ in 0..4 {
        grpc.push(connect(&server.grpc, None, None).await.context("connecting to serve's gRPC")?);
    }
    let hosts: Vec<String> = (0..a.hosts).map(|i| format!("soak-{i:05}")).collect();
    let shared = Arc::new(Shared {
        http: http.clone(),
        base: base.clone(),
        addr: server.http.clone(),
        grpc,
        groups: (0..a.hosts.div_ceil(GROUP)).map(|_| tokio::sync::Mutex::new(0)).collect(),
        hosts,
        next_group: AtomicUsize::new(0),
        big: tokio::sync::Mutex::new(0),
        big_samples,
        skew_past: tokio::sync::Mutex::new(0),
        next_new_host: AtomicU64::new(0),
        limits,
        stats: Mutex::new(Stats::default()),
    });
    // Every valid host known to the server before the clock starts.
    for _ in 0..shared.groups.len() {
        let o = shared.ingest().await;
        if !o.expected {
            bail!("priming the valid hosts: {}", o.label);
        }
    }
    *shared.stats.lock().unwrap_or_else(PoisonError::into_inner) = Stats::default();

    // The reporter: RSS every second, a row every --interval, the crash check.
    let start = Instant::now();
    let crashed = Arc::new(AtomicBool::new(false));
    let rss: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let rows: Arc<Mutex<Vec<Row>>> = Arc::default();
    let reporter = {
        let (shared, crashed, rss, rows) = (shared.clone(), crashed.clone(), rss.clone(), rows.clone());
        let (pid, every) = (server.pid, a.interval.max(RSS_EVERY));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RSS_EVERY);
            let mut next_row = start + every;
            loop {
                tick.tick().await;
                let Some(mib) = rss_mib(pid) else {
                    crashed.store(true, Ordering::SeqCst);
                    return;
                };
                rss.lock().unwrap_or_else(PoisonError::into_inner).push((start.elapsed().as_secs_f64(), mib));
                if Instant::now() >= next_row {
                    next_row += every;
                    let row = row(&shared, start, mib).await;
                    eprintln!(
                        "soak {:>6.0} s: RSS {:.1} MiB, {} requests, {} unexpected, ingest p50/p99 {:.1}/{:.1} ms, score p50/p99 {:.1}/{:.1} ms, {} series",
                        row.t_s,
                        row.rss_mib,
                        row.requests,
                        row.unexpected,
                        row.ingest_p50_ms,
                        row.ingest_p99_ms,
                        row.score_p50_ms,
                        row.score_p99_ms,
                        row.gauges.store_series
                    );
                    rows.lock().unwrap_or_else(PoisonError::into_inner).push(row);
                }
            }
        })
    };

    // The load, open loop: request i is sent at start + i / rate whatever came before.
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let gap = Duration::from_secs_f64(1.0 / f64::from(a.rate));
    let mut tasks = tokio::task::JoinSet::new();
    let mut i: u32 = 0;
    loop {
        let at = start + gap * i;
        if at >= start + duration || crashed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let kind = Kind::pick(rng.random_range(0..100));
        let seed: u64 = rng.random();
        let s = shared.clone();
        tasks.spawn(async move {
            let o = s.run(kind, seed).await;
            s.record(kind, o);
        });
        while tasks.try_join_next().is_some() {}
        i += 1;
    }
    let drained = tokio::time::timeout(Duration::from_secs(60), async { while tasks.join_next().await.is_some() {} }).await.is_ok();
    let unfinished = tasks.len();
    tasks.abort_all();
    let elapsed = start.elapsed();
    let end_rss = rss_mib(server.pid);
    reporter.abort();
    let final_gauges = gauges(&http, &base).await.unwrap_or_default();
    let last_row = match end_rss {
        Some(m) => Some(row(&shared, start, m).await),
        None => None,
    };
    let (stopped, stop_s) = server.stop().await;
    let crashed = crashed.load(Ordering::SeqCst) || end_rss.is_none();

    let rss = rss.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut rows = rows.lock().unwrap_or_else(PoisonError::into_inner).clone();
    rows.extend(last_row);
    let memory = Memory::judge(&rss, end_rss, duration, warmup);
    let stats = shared.stats.lock().unwrap_or_else(PoisonError::into_inner);
    let (requests, unexpected) = stats.totals();
    let kinds = Kind::ALL.iter().map(|k| KindReport::of(*k, &stats)).collect();
    drop(stats);
    let mut failures = Vec::new();
    if crashed {
        failures.push(format!("the server crashed ({stopped})"));
    }
    if unexpected > 0 {
        failures.push(format!("{unexpected} unexpected outcomes"));
    }
    if !drained {
        failures.push(format!("{unfinished} requests unfinished 60 s after the load ended"));
    }
    if memory.flat == Some(false) {
        failures.push(format!("memory not flat: {:.1} MiB at the end, over {:.1} MiB", memory.end, memory.allowed));
    }
    if final_gauges.store_series > limits.max_series as f64 {
        failures.push(format!("{} series stored, over store.max_series = {}", final_gauges.store_series, limits.max_series));
    }
    if !crashed && stopped != "exit 0" {
        failures.push(format!("unclean stop after the soak: {stopped}"));
    }
    let report = Report {
        command: std::env::args().collect(),
        machine: crate::bench::machine(),
        minutes: a.minutes,
        rate: a.rate,
        hosts: a.hosts,
        seed: a.seed,
        interval_s: a.interval.max(RSS_EVERY).as_secs_f64(),
        limits,
        big_body: BigBody { samples_per_series: big_samples, wire_bytes: big_wire, decoded_bytes: big_decoded },
        elapsed_s: elapsed.as_secs_f64(),
        requests,
        unexpected,
        kinds,
        memory,
        memory_rule: memory_rule(warmup),
        speed: a.speed,
        crashed,
        stop: stopped,
        stop_s,
        end: final_gauges,
        intervals: rows,
        failures,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_markdown();
    }
    if !report.failures.is_empty() {
        let e = anyhow::anyhow!("soak failed: {}", report.failures.join("; "));
        return Err(if crashed { server.explain(e) } else { e });
    }
    Ok(())
}

/// The memory figures and the verdict of the rule ([`memory_rule`]).
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Memory {
    /// When the warm-up RSS was read (s from the start of the load).
    warmup_s: f64,
    after_warmup_mib: f64,
    end: f64,
    peak: f64,
    /// The most the end may be.
    allowed: f64,
    /// Least-squares slope of the RSS after the warm-up, MiB per minute.
    trend_mib_per_min: f64,
    /// `None` when the run is too short to judge (under twice the warm-up).
    flat: Option<bool>,
}

impl Memory {
    /// `rss`: (s since the start, MiB) every second; `end`: the RSS once the load is over.
    fn judge(rss: &[(f64, f64)], end: Option<f64>, duration: Duration, warmup_for: Duration) -> Self {
        let warmup = warmup_for.as_secs_f64();
        let (warmup_s, after) = rss.iter().find(|(t, _)| *t >= warmup).or(rss.last()).copied().unwrap_or((0.0, f64::NAN));
        let end_v = end.unwrap_or(f64::NAN);
        let peak = rss.iter().map(|r| r.1).chain(end).fold(f64::NAN, f64::max);
        let allowed = after + (after * FLAT_SHARE).max(FLAT_MIB);
        let tail: Vec<(f64, f64)> = rss.iter().copied().filter(|(t, _)| *t >= warmup_s).collect();
        let n = tail.len() as f64;
        let (mt, mr) = (tail.iter().map(|p| p.0).sum::<f64>() / n, tail.iter().map(|p| p.1).sum::<f64>() / n);
        let (sxy, sxx) = tail.iter().fold((0.0, 0.0), |(sxy, sxx), (t, r)| (sxy + (t - mt) * (r - mr), sxx + (t - mt) * (t - mt)));
        let trend = if tail.len() >= 10 && sxx > 0.0 { sxy / sxx * 60.0 } else { f64::NAN };
        let judged = duration >= warmup_for * 2 && end.is_some();
        Memory {
            warmup_s,
            after_warmup_mib: after,
            end: end_v,
            peak,
            allowed,
            trend_mib_per_min: trend,
            flat: judged.then_some(end_v <= allowed),
        }
    }
}

/// Sizes of the large valid bodies.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct BigBody {
    samples_per_series: usize,
    wire_bytes: usize,
    decoded_bytes: usize,
}

/// One kind's outcomes and latencies.
#[derive(Clone, Debug, serde::Serialize)]
struct KindReport {
    #[serde(skip)]
    kind: Kind,
    name: &'static str,
    share_percent: u32,
    requests: u64,
    expected: BTreeMap<String, u64>,
    unexpected: BTreeMap<String, u64>,
    p50_ms: f64,
    p99_ms: f64,
}

impl KindReport {
    fn of(kind: Kind, stats: &Stats) -> Self {
        let (mut expected, mut unexpected) = (BTreeMap::new(), BTreeMap::new());
        for ((k, label), (n, ok)) in &stats.outcomes {
            if *k == kind {
                if *ok { &mut expected } else { &mut unexpected }.insert(label.clone(), *n);
            }
        }
        let mut lat = stats.latency.get(&kind).cloned().unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        KindReport {
            kind,
            name: kind.json_name(),
            share_percent: kind.weight(),
            requests: expected.values().chain(unexpected.values()).sum(),
            expected,
            unexpected,
            p50_ms: pct(&lat, 50.0),
            p99_ms: pct(&lat, 99.0),
        }
    }
}

/// Everything the soak reports.
#[derive(Debug, serde::Serialize)]
struct Report {
    command: Vec<String>,
    machine: String,
    minutes: f64,
    rate: u32,
    hosts: usize,
    seed: u64,
    interval_s: f64,
    limits: SoakLimits,
    big_body: BigBody,
    elapsed_s: f64,
    requests: u64,
    unexpected: u64,
    kinds: Vec<KindReport>,
    memory: Memory,
    memory_rule: String,
    /// How many times as fast as the wall clock the server's clock (and the samples' stamps) ran.
    speed: u32,
    crashed: bool,
    stop: String,
    stop_s: f64,
    /// The server's gauges once the load is over.
    end: Gauges,
    intervals: Vec<Row>,
    failures: Vec<String>,
}

impl Report {
    fn print_markdown(&self) {
        let (l, m, b) = (&self.limits, &self.memory, &self.big_body);
        crate::bench::print_header(&format!("Soak: {} of mixed load and faults against `harbinger serve`", minutes_text(self.minutes)));
        println!(
            "`harbinger serve` as a child process on a fresh data directory with the built-in default model and \
             `http.max_body_bytes = {}` (1 MiB), `http.header_timeout = \"{}s\"`, `store.max_series = {}`; everything else at its default. \
             Driven open-loop at {} requests/s for {:.0} s (seed {}), {} valid hosts; large valid bodies are {} hosts x 8 metrics x {} samples \
             1 ms apart, {:.0} KiB snappy decoding to {:.1} MiB. Latencies are those of expected answers, from the request sent to the answer read.  {}",
            l.max_body_bytes,
            l.header_timeout_s,
            l.max_series,
            self.rate,
            self.elapsed_s,
            self.seed,
            self.hosts,
            BIG_HOSTS,
            b.samples_per_series,
            b.wire_bytes as f64 / 1024.0,
            b.decoded_bytes as f64 / (1024.0 * 1024.0),
            if self.speed > 1 {
                format!(
                    "\nClock: the server's clock and the samples' stamps ran {}x as fast as the wall clock (`--speed {}`, `serve --clock-speed`), \
                     so the run covered {:.1} h of server time.  ",
                    self.speed,
                    self.speed,
                    self.elapsed_s * f64::from(self.speed) / 3600.0
                )
            } else {
                String::new()
            }
        );
        println!("Memory rule: {}.\n", self.memory_rule);
        println!("| check | result |\n|---|---|");
        println!("| server crashed | {} |", if self.crashed { format!("**yes** ({})", self.stop) } else { "no".into() });
        println!("| unexpected outcomes / requests | **{}** / {} |", self.unexpected, self.requests);
        println!(
            "| RSS after the warm-up (t = {:.0} s) → end → peak | {:.1} → **{:.1}** → {:.1} MiB |",
            m.warmup_s, m.after_warmup_mib, m.end, m.peak
        );
        println!("| RSS trend after the warm-up (least squares) | {:+.2} MiB/min |", m.trend_mib_per_min);
        match m.flat {
            Some(flat) => println!("| memory flat (end ≤ {:.1} MiB) | **{}** |", m.allowed, if flat { "yes" } else { "no" }),
            None => println!(
                "| memory flat | not judged (a run under twice the warm-up, {:.1} min, has no steady state to compare) |",
                m.warmup_s * 2.0 / 60.0
            ),
        }
        println!(
            "| series stored / store.max_series | {:.0} / {} (remote-write series cache: {:.0} entries, {:.1} MiB) |",
            self.end.store_series,
            l.max_series,
            self.end.cache_entries,
            self.end.cache_bytes / (1024.0 * 1024.0)
        );
        println!("| samples stored | {:.0} |", self.end.store_samples);
        println!("| stop after the soak (SIGTERM) | {} in {:.1} s |", self.stop, self.stop_s);
        let verdict = if self.failures.is_empty() { "pass".to_string() } else { format!("FAIL: {}", self.failures.join("; ")) };
        println!("| verdict | **{verdict}** |\n");
        println!(
            "| request kind | share | requests | expected outcomes | unexpected outcomes | p50 | p99 |\n|---|---|---|---|---|---|---|"
        );
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() { "—".to_string() } else { m.iter().map(|(l, n)| format!("{l} × {n}")).collect::<Vec<_>>().join(", ") }
        };
        let ms = |x: f64| if x.is_finite() { format!("{x:.1} ms") } else { "—".into() };
        for k in &self.kinds {
            println!(
                "| {} | {} % | {} | {} | {} | {} | {} |",
                k.kind.label(),
                k.share_percent,
                k.requests,
                list(&k.expected),
                list(&k.unexpected),
                ms(k.p50_ms),
                ms(k.p99_ms)
            );
        }
        println!("\nOver time (every {:.0} s; latencies of that interval):\n", self.interval_s);
        println!(
            "| t (s) | RSS (MiB) | requests | unexpected | valid ingest p50 / p99 (ms) | scoring p50 / p99 (ms) | series stored | series cache entries |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let pair = |a: f64, b: f64| if a.is_finite() && b.is_finite() { format!("{a:.1} / {b:.1}") } else { "—".into() };
        for r in &self.intervals {
            println!(
                "| {:.0} | {:.1} | {} | {} | {} | {} | {:.0} | {:.0} |",
                r.t_s,
                r.rss_mib,
                r.requests,
                r.unexpected,
                pair(r.ingest_p50_ms, r.ingest_p99_ms),
                pair(r.score_p50_ms, r.score_p99_ms),
                r.gauges.store_series,
                r.gauges.cache_entries
            );
        }
    }
}

fn memory_rule(warmup: Duration) -> String {
    format!(
        "flat when the server's RSS at the end is at most its RSS after the first {:.0} s (the warm-up: at least {:.0} s, and until the server's \
         clock has covered its longest windows, {:.0} h) plus the larger of {:.0} % and {:.0} MiB; judged on runs of {:.1} min or more",
        warmup.as_secs_f64(),
        WARMUP.as_secs_f64(),
        FILL.as_secs_f64() / 3600.0,
        FLAT_SHARE * 100.0,
        FLAT_MIB,
        (warmup * 2).as_secs_f64() / 60.0
    )
}

fn minutes_text(m: f64) -> String {
    if (m - m.round()).abs() < 1e-9 { format!("{m:.0} min") } else { format!("{:.0} s", m * 60.0) }
}

/// A report row now: counts so far, latencies since the last row, the server's gauges.
async fn row(shared: &Shared, start: Instant, rss: f64) -> Row {
    let g = gauges(&shared.http, &shared.base).await.unwrap_or(Gauges {
        store_series: f64::NAN,
        store_samples: f64::NAN,
        cache_entries: f64::NAN,
        cache_bytes: f64::NAN,
    });
    let mut s = shared.stats.lock().unwrap_or_else(PoisonError::into_inner);
    let (requests, unexpected) = s.totals();
    let mut ingest = s.window.remove(&Kind::Ingest).unwrap_or_default();
    let mut score: Vec<f64> = [Kind::ScoreGrpc, Kind::ScoreHttp].iter().flat_map(|k| s.window.remove(k).unwrap_or_default()).collect();
    s.window.clear();
    drop(s);
    ingest.sort_by(f64::total_cmp);
    score.sort_by(f64::total_cmp);
    Row {
        t_s: start.elapsed().as_secs_f64(),
        rss_mib: rss,
        requests,
        unexpected,
        ingest_p50_ms: pct(&ingest, 50.0),
        ingest_p99_ms: pct(&ingest, 99.0),
        score_p50_ms: pct(&score, 50.0),
        score_p99_ms: pct(&score, 99.0),
        gauges: g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_sums_to_100_and_every_kind_is_drawn() {
        assert_eq!(Kind::ALL.iter().map(|k| k.weight()).sum::<u32>(), 100);
        let drawn: std::collections::BTreeSet<Kind> = (0..100).map(Kind::pick).collect();
        assert_eq!(drawn.len(), Kind::ALL.len());
    }

    #[test]
    fn corrupt_bodies_are_refused_for_the_reason_the_soak_expects() {
        for p in CORRUPT_PROTOBUF {
            let e = harbinger_ingest::remote_write::decode(&snappy_literal(p), 1 << 20).expect_err("corrupt protobuf");
            assert_eq!(e.reason(), "corrupt_protobuf", "{p:?}");
        }
        let mut b = write_request(&all_metrics(&[(0, "h")], 1_000));
        b.truncate(b.len() / 2);
        assert_eq!(harbinger_ingest::remote_write::decode(&b, 1 << 20).expect_err("cut").reason(), "corrupt_snappy");
        let (n, wire, decoded) = size_big_body(1 << 20);
        assert!(n >= 100 && wire < 1 << 20 && decoded <= 6 << 20 && decoded > 2 * wire, "{n} {wire} {decoded}");
        let d = harbinger_ingest::remote_write::decode(&big_body(0, n), 8 << 20).expect("valid");
        assert_eq!(d.batch.sample_count(), BIG_HOSTS * METRICS.len() * n);
    }
}
