//! The webhook actuator against local axum servers on 127.0.0.1:0: the signature, the
//! headers and body, status mapping, a server that never answers, a refused connection,
//! and `Retry` around it.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use harbinger_actuate::layers::{ActuatorExt, RetryPolicy};
use harbinger_actuate::webhook::{WebhookActuator, WebhookConfig};
use harbinger_core::JournalStatus;
use harbinger_core::shadow::{Shadow, ShadowState};
use harbinger_engine::{Actuator, ActuatorRequest};
use harbinger_plan::ActionKind;

const SECRET: &[u8] = b"s3cret";

/// A receiver answering from a script (then 200), recording what it got.
#[derive(Default)]
struct Receiver {
    answers: Mutex<VecDeque<(u16, &'static str)>>,
    seen: Mutex<Vec<(HeaderMap, Bytes)>>,
}

impl Receiver {
    fn seen(&self) -> Vec<(HeaderMap, Bytes)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    r.seen.lock().unwrap().push((headers, body));
    let (code, text) = r.answers.lock().unwrap().pop_front().unwrap_or((200, ""));
    (StatusCode::from_u16(code).unwrap(), text)
}

/// Serves a receiver answering `answers`; returns its URL.
async fn serve(answers: impl IntoIterator<Item = (u16, &'static str)>) -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver { answers: Mutex::new(answers.into_iter().collect()), ..Receiver::default() });
    let app = Router::new().route("/hook", post(hook)).with_state(Arc::clone(&r));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

fn shadow() -> Shadow {
    Shadow {
        id: "db-3@h042#1000".into(),
        resource: "db-3".into(),
        primary: "h017".into(),
        host: "h042".into(),
        state: ShadowState::Planned,
        causes: vec![],
        priority: 0.5,
        cpu_cores: 1.0,
        mem_gb: 1.0,
        created_at: 1000,
        updated_at: 1000,
        last_used_at: 1000,
        expires_at: None,
        endpoint: None,
    }
}

fn create() -> ActuatorRequest {
    let s = shadow();
    ActuatorRequest {
        key: "create:db-3@h042#1000".into(),
        attempt: 1,
        action: ActionKind::CreateShadow { shadow: s.clone() },
        shadow: s,
        resource: None,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn webhook(url: &str) -> WebhookActuator {
    WebhookActuator::new(WebhookConfig::new(url).secret(SECRET).timeout(Duration::from_secs(5))).unwrap()
}

#[tokio::test]
async fn the_body_is_signed_with_the_secret_and_carries_the_key() {
    let (url, rx) = serve([(200, "{\"endpoint\":\"10.0.0.5:6380\",\"state\":\"syncing\"}")]).await;
    let wh = WebhookActuator::new(WebhookConfig::new(&url).secret(SECRET).header("Authorization", "Bearer t0k")).unwrap();
    let out = wh.apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Applied, "{}", out.detail);
    assert_eq!(out.endpoint.as_deref(), Some("10.0.0.5:6380"));
    assert_eq!(out.reached, Some(ShadowState::Syncing));

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    let sig = headers["x-harbinger-signature"].to_str().unwrap();
    let hex = sig.strip_prefix("sha256=").unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    assert!(ring::hmac::verify(&key, body, &unhex(hex)).is_ok(), "signature {sig} does not verify");
    let wrong = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
    assert!(ring::hmac::verify(&wrong, body, &unhex(hex)).is_err());
    assert_eq!(headers["x-harbinger-key"], "create:db-3@h042#1000");
    assert_eq!(headers["x-harbinger-attempt"], "1");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["authorization"], "Bearer t0k");

    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["key"], "create:db-3@h042#1000");
    assert_eq!(json["action"]["type"], "create_shadow");
    assert_eq!(json["shadow"]["id"], "db-3@h042#1000");
    assert!(json["resource"].is_null());
}

#[tokio::test]
async fn without_a_secret_nothing_is_signed() {
    let (url, rx) = serve([(204, "")]).await;
    let out = WebhookActuator::new(WebhookConfig::new(&url)).unwrap().apply(&create()).await;
    assert_eq!((out.status, out.detail.as_str()), (JournalStatus::Applied, "HTTP 204"));
    assert!(!rx.seen()[0].0.contains_key("x-harbinger-signature"));
}

#[tokio::test]
async fn status_codes_map_to_outcomes() {
    let cases = [
        (200, "provisioned", JournalStatus::Applied, "provisioned"),
        (409, "", JournalStatus::AlreadyApplied, "HTTP 409: already applied"),
        (500, "database down", JournalStatus::Failed, "answered HTTP 500 Internal Server Error: database down"),
        (503, "", JournalStatus::Failed, "answered HTTP 503 Service Unavailable"),
        (
            400,
            "bad shadow",
            JournalStatus::Failed,
            "answered HTTP 400 Bad Request: bad shadow — the receiver refused the request (not retryable)",
        ),
        (404, "", JournalStatus::Failed, "(not retryable)"),
        (302, "", JournalStatus::Failed, "(not retryable)"),
    ];
    for (code, text, status, detail) in cases {
        let (url, _rx) = serve([(code, text)]).await;
        let out = webhook(&url).apply(&create()).await;
        assert_eq!(out.status, status, "{code}: {}", out.detail);
        assert!(out.detail.contains(detail), "{code}: {}", out.detail);
        if code >= 500 {
            assert!(!out.detail.contains("not retryable"), "{code}: {}", out.detail);
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_fails_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections, never answers.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let wh = WebhookActuator::new(WebhookConfig::new(format!("http://{addr}/hook")).timeout(Duration::from_millis(300))).unwrap();
    let start = Instant::now();
    let out = wh.apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.contains("timed out after 300ms"), "{}", out.detail);
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    held.abort();
}

#[tokio::test]
async fn a_refused_connection_fails() {
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let out = webhook(&format!("http://{addr}/hook")).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert!(out.detail.starts_with(&format!("POST http://{addr}/hook: ")), "{}", out.detail);
}

#[tokio::test]
async fn retry_around_the_webhook_succeeds_on_the_second_attempt() {
    let (url, rx) = serve([(500, "try later"), (200, "ok")]).await;
    let policy = RetryPolicy { attempts: 3, base: Duration::from_millis(10), max: Duration::from_millis(50) };
    let out = webhook(&url).with_retry(policy).apply(&create()).await;
    assert_eq!(out.status, JournalStatus::Applied);
    assert_eq!(out.detail, "ok (succeeded on attempt 2 of 3)");
    let seen = rx.seen();
    let attempts: Vec<&str> = seen.iter().map(|(h, _)| h["x-harbinger-attempt"].to_str().unwrap()).collect();
    assert_eq!(attempts, ["1", "2"]);
    assert!(seen.iter().all(|(h, _)| h["x-harbinger-key"] == "create:db-3@h042#1000"));
}

#[tokio::test]
async fn retry_does_not_repeat_a_refused_request() {
    let (url, rx) = serve([(422, "no such resource")]).await;
    let out = webhook(&url)
        .with_retry(RetryPolicy { attempts: 3, base: Duration::from_millis(10), max: Duration::from_millis(50) })
        .apply(&create())
        .await;
    assert_eq!(out.status, JournalStatus::Failed);
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    assert!(WebhookActuator::new(WebhookConfig::new("not a url")).is_err());
    assert!(WebhookActuator::new(WebhookConfig::new("ftp://example.com/x")).is_err());
    assert!(WebhookActuator::new(WebhookConfig::new("http://127.0.0.1/x").header("bad header", "v")).is_err());
    let wh = WebhookActuator::new(WebhookConfig::new("http://127.0.0.1/x").secret("hidden-value")).unwrap();
    assert!(!format!("{wh:?}").contains("hidden-value"), "the secret is not in Debug");
    assert_eq!(wh.name(), "webhook");
}
