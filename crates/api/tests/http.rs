//! The HTTP API on a real socket: status codes, bodies, counters, and what reaches the store.

use std::collections::HashSet;
use std::sync::Arc;

use harbinger_api::{AppState, Telemetry};
use harbinger_core::{EventStore, HostId, MetricStore, SeriesKey, Stores};
use harbinger_ingest::remote_write::{encode, prompb};
use harbinger_store::{Limits, MemoryStore};

struct Server {
    url: String,
    store: Arc<MemoryStore>,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(max_body: usize, strict: Option<&[&str]>) -> Self {
        let store = Arc::new(MemoryStore::new(Limits::default()));
        let mut state = AppState::new(Stores::from_backend(store.clone()), Arc::new(Telemetry::new()), max_body);
        state.strict_hosts = strict.map(|h| Arc::new(h.iter().map(HostId::new).collect::<HashSet<_>>()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(harbinger_api::serve(listener, state, async move {
            let _stop = rx.await;
        }));
        Self { url, store, client: reqwest::Client::new(), stop: Some(tx), task: Some(task) }
    }

    async fn write(&self, body: Vec<u8>) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}/api/v1/write", self.url))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn events(&self, body: &str) -> (u16, String) {
        let r = self.client.post(format!("{}/api/v1/events", self.url)).body(body.to_string()).send().await.expect("send");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let text = self.client.get(format!("{}/metrics", self.url)).send().await.expect("scrape").text().await.expect("text");
        text.lines().find(|l| l.starts_with(line_prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _sent = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("server ran cleanly");
        }
    }
}

/// (host, metric name, points) of one series in a request.
type Series<'a> = (&'a str, &'a str, &'a [(i64, f64)]);

fn req(series: &[Series<'_>]) -> Vec<u8> {
    encode(&prompb::WriteRequest {
        timeseries: series
            .iter()
            .map(|(host, name, pts)| prompb::TimeSeries {
                labels: vec![
                    prompb::Label { name: "__name__".into(), value: (*name).into() },
                    prompb::Label { name: "instance".into(), value: (*host).into() },
                ],
                samples: pts.iter().map(|(t, v)| prompb::Sample { timestamp: *t, value: *v }).collect(),
            })
            .collect(),
    })
}

#[tokio::test]
async fn healthz_and_metrics_answer() {
    let s = Server::start(1 << 20, None).await;
    let r = s.client.get(format!("{}/healthz", s.url)).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
    assert_eq!(v["status"], "ok");
    let m = s.client.get(format!("{}/metrics", s.url)).send().await.expect("get");
    assert!(m.headers()["content-type"].to_str().expect("ascii").starts_with("application/openmetrics-text"));
    assert_eq!(s.metric("harbinger_samples_rejected_total{reason=\"out_of_order\"}").await, Some(0.0));
    assert_eq!(s.metric("harbinger_remote_write_cache_bytes").await, Some(0.0));
    let (code, _) = s.write(req(&[("h1", "cpu", &[(1_000, 0.5)])])).await;
    assert_eq!(code, 204);
    assert_eq!(s.metric("harbinger_remote_write_cache_entries").await, Some(1.0));
    assert!(s.metric("harbinger_remote_write_cache_bytes").await.is_some_and(|b| b > 0.0));
    s.stop().await;
}

#[tokio::test]
async fn healthz_and_readyz_report_a_failed_store_and_a_missing_model() {
    let s = Server::start(1 << 20, None).await;
    let get = |path: &'static str| {
        let c = s.client.clone();
        let url = format!("{}{path}", s.url);
        async move {
            let r = c.get(url).send().await.expect("get");
            (r.status().as_u16(), serde_json::from_str::<serde_json::Value>(&r.text().await.expect("body")).expect("json"))
        }
    };
    let (code, v) = get("/readyz").await;
    assert_eq!(code, 503, "no scorer: not ready");
    assert_eq!(v["reasons"], serde_json::json!(["no failure model loaded"]));
    let (code, v) = get("/healthz").await;
    assert_eq!((code, v["status"].as_str(), v["store"]["status"].as_str()), (200, Some("ok"), Some("ok")));

    s.store.fail("fsync: No space left on device (os error 28)");
    let (code, v) = get("/healthz").await;
    assert_eq!(code, 503);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["store"]["reason"], "fsync: No space left on device (os error 28)");
    let (code, v) = get("/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(v["reasons"][0], "store failed: fsync: No space left on device (os error 28)");
    let (code, body) = s.write(req(&[("h1", "cpu", &[(1_000, 0.5)])])).await;
    assert_eq!(code, 500, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn remote_write_stores_samples_and_counts_them() {
    let s = Server::start(1 << 20, None).await;
    let (code, _) = s.write(req(&[("h1", "cpu", &[(1_000, 0.5), (2_000, 0.6)]), ("h2", "cpu", &[(1_000, 0.1)])])).await;
    assert_eq!(code, 204);
    let got = s.store.range(&SeriesKey::new("h1", "cpu"), 0, 10_000).await.expect("stored");
    assert_eq!((got.timestamps, got.values), (vec![1_000, 2_000], vec![0.5, 0.6]));
    assert_eq!(s.metric("harbinger_samples_ingested_total{source=\"remote_write\"}").await, Some(3.0));
    assert!(
        s.metric("harbinger_http_request_duration_seconds_count{route=\"/api/v1/write\",status=\"204\"}").await.is_some_and(|n| n >= 1.0)
    );
    s.stop().await;
}

#[tokio::test]
async fn out_of_order_and_duplicates_are_400_but_valid_samples_stay() {
    let s = Server::start(1 << 20, None).await;
    assert_eq!(s.write(req(&[("h1", "cpu", &[(5_000, 1.0)])])).await.0, 204);
    let (code, body) = s.write(req(&[("h1", "cpu", &[(4_000, 2.0), (5_000, 3.0), (6_000, 4.0)])])).await;
    assert_eq!(code, 400);
    assert!(body.starts_with("1 samples stored, 2 rejected (1 duplicate, 1 out_of_order, first: h1/cpu at 4000 (out_of_order))"), "{body}");
    let got = s.store.range(&SeriesKey::new("h1", "cpu"), 0, 10_000).await.expect("stored");
    assert_eq!(got.values, vec![1.0, 4.0], "accepted data is kept, rejected data never overwrites it");
    assert_eq!(s.metric("harbinger_samples_rejected_total{reason=\"out_of_order\"}").await, Some(1.0));
    assert_eq!(s.metric("harbinger_samples_rejected_total{reason=\"duplicate\"}").await, Some(1.0));
    s.stop().await;
}

#[tokio::test]
async fn nan_is_counted_not_an_error() {
    let s = Server::start(1 << 20, None).await;
    let (code, _) = s.write(req(&[("h1", "q", &[(1_000, f64::NAN), (2_000, 1.0)])])).await;
    assert_eq!(code, 204);
    assert_eq!(s.metric("harbinger_samples_rejected_total{reason=\"non_finite\"}").await, Some(1.0));
    s.stop().await;
}

#[tokio::test]
async fn corrupt_bodies_are_400_and_counted() {
    let s = Server::start(1 << 20, None).await;
    let (code, body) = s.write(b"\xff\xff\xff\xff\xff\xff\xff".to_vec()).await;
    assert_eq!(code, 400);
    assert!(body.starts_with("corrupt snappy block"), "{body}");
    let not_pb = snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff\xff\xff\x0f").expect("compress");
    let (code, body) = s.write(not_pb).await;
    assert_eq!(code, 400);
    assert!(body.starts_with("malformed protobuf WriteRequest"), "{body}");
    assert_eq!(s.metric("harbinger_http_requests_rejected_total{reason=\"corrupt_snappy\"}").await, Some(1.0));
    assert_eq!(s.metric("harbinger_http_requests_rejected_total{reason=\"corrupt_protobuf\"}").await, Some(1.0));
    assert!(s.store.series().await.expect("series").is_empty(), "nothing stored");
    s.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = Server::start(1_000, None).await;
    let (code, body) = s.write(vec![0u8; 5_000]).await;
    assert_eq!(code, 413);
    assert_eq!(body.trim(), "request body exceeds the limit of 1000 bytes");
    let (code, _) = s.events(&"x".repeat(2_000)).await;
    assert_eq!(code, 413);
    assert_eq!(s.metric("harbinger_http_requests_rejected_total{reason=\"too_large\"}").await, Some(2.0));
    s.stop().await;
}

#[tokio::test]
async fn remote_write_2_and_other_encodings_are_415() {
    let s = Server::start(1 << 20, None).await;
    let r = s
        .client
        .post(format!("{}/api/v1/write", s.url))
        .header("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
        .body(req(&[("h", "m", &[(1, 1.0)])]))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    let r =
        s.client.post(format!("{}/api/v1/write", s.url)).header("Content-Encoding", "gzip").body(vec![1, 2]).send().await.expect("send");
    assert_eq!(r.status(), 415);
    s.stop().await;
}

#[tokio::test]
async fn events_are_all_or_nothing_with_the_bad_line_named() {
    let s = Server::start(1 << 20, None).await;
    let (code, body) =
        s.events("{\"ts\":2000,\"kind\":\"deploy_started\",\"host\":\"h1\"}\n{\"ts\":1000,\"kind\":\"config_changed\"}\n").await;
    assert_eq!((code, body.as_str()), (200, "{\"accepted\":2}"));
    let evs = s.store.events(0, 10_000).await.expect("events");
    assert_eq!(evs.iter().map(|e| e.ts).collect::<Vec<_>>(), vec![1000, 2000]);

    let (code, body) = s.events("{\"ts\":3000,\"kind\":\"rolled_back\"}\n{\"ts\":\"soon\",\"kind\":\"rolled_back\"}\n").await;
    assert_eq!(code, 400);
    assert!(body.starts_with("request body line 2: `ts` must be an integer"), "{body}");
    assert_eq!(s.store.events(0, 10_000).await.expect("events").len(), 2, "no partial write");
    let (code, _) = s.events("not json").await;
    assert_eq!(code, 400);
    assert_eq!(s.metric("harbinger_http_requests_rejected_total{reason=\"invalid_event\"}").await, Some(2.0));
    s.stop().await;
}

#[tokio::test]
async fn strict_hosts_refuses_unknown_hosts() {
    let s = Server::start(1 << 20, Some(&["h1"])).await;
    let (code, body) = s.write(req(&[("h1", "cpu", &[(1, 1.0)]), ("h9", "cpu", &[(1, 1.0), (2, 2.0)])])).await;
    assert_eq!(code, 400);
    assert!(body.contains("2 unknown_host"), "{body}");
    assert_eq!(s.store.series().await.expect("series"), vec![SeriesKey::new("h1", "cpu")]);
    assert_eq!(s.metric("harbinger_samples_rejected_total{reason=\"unknown_host\"}").await, Some(2.0));
    let (code, body) = s.events("{\"ts\":1,\"kind\":\"host_recovered\",\"host\":\"h9\"}").await;
    assert_eq!(code, 400);
    assert!(body.starts_with("request body line 1: unknown host \"h9\""), "{body}");
    // A huge host id is named, not echoed whole.
    let huge = "x".repeat(512 * 1024);
    let (code, body) = s.events(&format!("{{\"ts\":1,\"kind\":\"host_recovered\",\"host\":\"{huge}\"}}")).await;
    assert_eq!(code, 400);
    assert!(
        body.len() < 2_000 && body.contains(&format!("({} bytes)", huge.len())),
        "{} bytes: {}",
        body.len(),
        &body[..body.len().min(300)]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_100_continue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start(1024, None).await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 104857600\r\nExpect: 100-continue\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 512];
    let n =
        tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await.expect("an answer within 5 s").expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_eq!(s.metric("harbinger_http_requests_rejected_total{reason=\"too_large\"}").await, Some(1.0));
    s.stop().await;
}

#[tokio::test]
async fn remote_write_decoding_is_bounded_and_excess_gets_429() {
    let store = Arc::new(MemoryStore::new(Limits::default()));
    let mut state = AppState::new(Stores::from_backend(store.clone()), Arc::new(Telemetry::new()), 1 << 20);
    let permits = Arc::new(tokio::sync::Semaphore::new(1));
    state.decode_permits = permits.clone();
    state.decode_waiters = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/v1/write", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(harbinger_api::serve(listener, state, async move {
        let _stop = rx.await;
    }));
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(&url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(req(&[("h1", "cpu", &[(1_000, 0.5)])]))
            .send()
    };
    // Every slot taken (as by concurrent large bodies): refused at once, nothing stored.
    let held = permits.clone().try_acquire_owned().expect("the one slot");
    let r = send().await.expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(store.series().await.expect("series").is_empty());
    drop(held);
    let r = send().await.expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(store.series().await.expect("series"), vec![SeriesKey::new("h1", "cpu")]);
    assert_eq!(permits.available_permits(), 1, "the slot is given back");
    let _sent = tx.send(());
    task.await.expect("join").expect("server ran cleanly");
}

#[tokio::test]
async fn a_remote_write_waits_for_a_decoding_slot_while_the_waiting_room_has_space() {
    let store = Arc::new(MemoryStore::new(Limits::default()));
    let mut state = AppState::new(Stores::from_backend(store.clone()), Arc::new(Telemetry::new()), 1 << 20);
    let permits = Arc::new(tokio::sync::Semaphore::new(1));
    state.decode_permits = permits.clone();
    state.decode_waiters = 1;
    let waiting = state.decode_waiting.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/v1/write", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(harbinger_api::serve(listener, state, async move {
        let _stop = rx.await;
    }));
    let client = reqwest::Client::new();
    let send = |host: &'static str| {
        client
            .post(&url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(req(&[(host, "cpu", &[(1_000, 0.5)])]))
            .send()
    };
    let held = permits.clone().try_acquire_owned().expect("the one slot");
    // The first request waits in the one place of the waiting room...
    let first = tokio::spawn(send("h1"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the first request never waited");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // ...so the second finds it full: 429 at once.
    let r = send("h2").await.expect("send");
    assert_eq!(r.status(), 429);
    // The slot comes free well within the wait: the first is decoded and stored.
    drop(held);
    let r = first.await.expect("join").expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(store.series().await.expect("series"), vec![SeriesKey::new("h1", "cpu")]);
    assert_eq!(waiting.load(std::sync::atomic::Ordering::SeqCst), 0, "nobody waits any more");
    assert_eq!(permits.available_permits(), 1, "the slot is given back");
    let _sent = tx.send(());
    task.await.expect("join").expect("server ran cleanly");
}

/// A server with short timeouts; returns its address, the stop sender and the task.
async fn with_timeouts(
    t: harbinger_api::HttpTimeouts,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let store = Arc::new(MemoryStore::new(Limits::default()));
    let state = AppState::new(Stores::from_backend(store), Arc::new(Telemetry::new()), 1 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(harbinger_api::serve_with(listener, state, t, async move {
        let _stop = rx.await;
    }));
    (addr, tx, task)
}

/// Reads until the server closes the connection (bounded); returns what it said.
async fn read_until_closed(conn: &mut tokio::net::TcpStream, bound: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open past {bound:?}; said {:?}", String::from_utf8_lossy(&all)),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&all).into_owned(),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn idle_and_slow_header_clients_are_disconnected() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let t =
        harbinger_api::HttpTimeouts { header: Duration::from_millis(300), body: Duration::from_secs(30), shutdown: Duration::from_secs(5) };
    let (addr, stop, task) = with_timeouts(t).await;
    // Idle: connects and says nothing.
    let started = std::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(250), "closed after {:?}", started.elapsed());
    // Slow headers: a request line, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    read_until_closed(&mut slow, Duration::from_secs(5)).await;
    // A normal client on a kept-alive connection is served, then closed once idle.
    let mut ok = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let said = read_until_closed(&mut ok, Duration::from_secs(5)).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    let _sent = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").expect("join").expect("ok");
}

#[tokio::test]
async fn a_slow_body_gets_408_and_shutdown_does_not_wait_past_its_deadline() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let t = harbinger_api::HttpTimeouts {
        header: Duration::from_secs(30),
        body: Duration::from_millis(300),
        shutdown: Duration::from_millis(500),
    };
    let (addr, stop, task) = with_timeouts(t).await;
    let head = "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ts\":1,";
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(head.as_bytes()).await.expect("write");
    let said = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");

    // A stalled upload when shutdown begins: the server stops within its deadline anyway.
    let t2 = harbinger_api::HttpTimeouts {
        header: Duration::from_secs(30),
        body: Duration::from_secs(60),
        shutdown: Duration::from_millis(500),
    };
    let (addr2, stop2, task2) = with_timeouts(t2).await;
    let mut stalled = tokio::net::TcpStream::connect(&addr2).await.expect("connect");
    stalled.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let _sent = stop2.send(());
    tokio::time::timeout(Duration::from_secs(5), task2).await.expect("stops within 5 s").expect("join").expect("ok");
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    let _sent = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").expect("join").expect("ok");
}

/// `GET /api/v1/samples` answers one series' samples in `[from, to)`, with a limit, and
/// names what is wrong with a query.
#[tokio::test]
async fn samples_of_a_series_are_read_back_in_a_half_open_range() {
    let s = Server::start(1 << 20, None).await;
    const T: i64 = 1_780_000_000_000;
    let pts: Vec<(i64, f64)> = (0..10).map(|i| (T + i * 100, f64::from(i as i32))).collect();
    assert_eq!(s.write(req(&[("web-1", "latency_ms", &pts)])).await.0, 204);
    let get = |q: String| {
        let c = s.client.clone();
        let url = format!("{}/api/v1/samples?{q}", s.url);
        async move {
            let r = c.get(url).send().await.expect("send");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let (code, body) = get(format!("host=web-1&metric=latency_ms&from={}&to={}", T + 200, T + 500)).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["samples"], serde_json::json!([[T + 200, 2.0], [T + 300, 3.0], [T + 400, 4.0]]), "to is excluded");
    assert_eq!(v["truncated"], false);
    let (code, body) = get(format!("host=web-1&metric=latency_ms&from=0&to={}&limit=4", T * 2)).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((code, v["samples"].as_array().map(Vec::len), v["truncated"].clone()), (200, Some(4), serde_json::json!(true)));
    for (q, code, says) in [
        ("host=web-2&metric=latency_ms&from=0&to=1", 404, "no series for host \"web-2\""),
        ("host=web-1&metric=latency_ms&from=0", 400, "`to` is required"),
        ("host=web-1&metric=latency_ms&from=x&to=1", 400, "`from` must be ms since epoch"),
        ("host=web-1&metric=latency_ms&from=5&to=1", 400, "before `from`"),
        ("host=web-1&metric=latency_ms&from=0&to=1&limit=0", 400, "`limit` must be"),
        ("host=web-1&metric=latency_ms&from=0&to=1&step=5", 400, "unknown query parameter \"step\""),
    ] {
        let (c, body) = get(q.to_string()).await;
        assert_eq!(c, code, "{q}: {body}");
        assert!(body.contains(says), "{q}: {body}");
    }
    s.stop().await;
}
