//! The webhook actuator: POSTs every action as JSON to a URL, signed with HMAC-SHA256,
//! and reads the outcome from the HTTP status.
//!
//! Start with [`WebhookConfig`] and [`WebhookActuator::new`].
//!
//! # Request
//! `POST <url>` with `Content-Type: application/json` and the body of
//! [`RequestBody`] (the JSON the exec actuator writes on stdin:
//! `key`, `attempt`, `action`, `shadow`, `resource`), and the headers:
//!
//! - `X-Harbinger-Key: <idempotency key>` — the same key means the same action; a
//!   receiver that has done it already should answer 409.
//! - `X-Harbinger-Attempt: <n>` — 1 for the first attempt.
//! - `X-Harbinger-Signature: sha256=<hex>` — when a secret is set: the lowercase hex
//!   HMAC-SHA256 of the exact body bytes, keyed with the secret. Receivers should
//!   recompute it over the raw body and compare in constant time.
//! - any extra headers from [`WebhookConfig::headers`].
//!
//! # Response
//! | status | outcome |
//! |--------|---------|
//! | 2xx | `applied` (detail: the body, or "HTTP 200") |
//! | 409 | `already_applied` |
//! | other 4xx (and 3xx: redirects are not followed) | `failed`, marked "(not retryable)": the receiver refused the request, [`Retry`](crate::layers::Retry) does not try again |
//! | 5xx | `failed` |
//! | no answer within the timeout, connection refused, TLS error | `failed` |
//!
//! For a `create_shadow` answered 2xx or 409, a body that is (or ends with a line that
//! is) a JSON object `{"endpoint":"10.0.0.5:6380","state":"syncing"}` sets the outcome's
//! endpoint and reached state (see [`Report`]). At most 64 KiB of the
//! body is read; details keep its first 4 KiB.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use harbinger_core::JournalStatus;
use harbinger_engine::{Actuator, ActuatorOutcome, ActuatorRequest};
use harbinger_plan::ActionKind;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::exec::{Report, RequestBody};
use crate::layers::NOT_RETRYABLE;

/// Header carrying the idempotency key.
pub const KEY_HEADER: &str = "x-harbinger-key";
/// Header carrying the attempt number.
pub const ATTEMPT_HEADER: &str = "x-harbinger-attempt";
/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-harbinger-signature";

/// Most of a response body read.
const BODY_LIMIT: usize = 64 * 1024;
/// Most of a response body quoted in a detail.
const DETAIL_LIMIT: usize = 4096;

/// The signing secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A secret from its bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        WebhookSecret(secret.into())
    }

    /// `sha256=<hex>`: the signature header value of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&key, body);
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256=");
        for b in tag.as_ref() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// Configuration of a [`WebhookActuator`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where to POST (`http://` or `https://`).
    pub url: String,
    /// Signs bodies when set.
    pub secret: Option<WebhookSecret>,
    /// Longest a request may take, answer included. Default 10 s.
    pub timeout: Duration,
    /// Extra headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
}

impl WebhookConfig {
    /// POST to `url`, unsigned, 10 s timeout, no extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig { url: url.into(), secret: None, timeout: Duration::from_secs(10), headers: Vec::new() }
    }

    /// Signed with `secret`.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(WebhookSecret::new(secret));
        self
    }

    /// With `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With the extra header `name: value`.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A webhook configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse or is not http(s).
    #[error("webhook url {url:?}: {why}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// An extra header has an invalid name or value.
    #[error("webhook header {name:?}: invalid name or value")]
    Header {
        /// The header name.
        name: String,
    },
    /// The HTTP client cannot be built (TLS setup).
    #[error("webhook http client: {0}")]
    Client(String),
}

/// POSTs actions to a URL (see the module docs for headers and status codes).
#[derive(Debug, Clone)]
pub struct WebhookActuator {
    url: reqwest::Url,
    secret: Option<WebhookSecret>,
    timeout: Duration,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl WebhookActuator {
    /// An actuator for `cfg`.
    ///
    /// # Errors
    /// [`WebhookError`] for a URL that is not http(s), an invalid header, or a client
    /// that cannot be built.
    pub fn new(cfg: WebhookConfig) -> Result<Self, WebhookError> {
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| WebhookError::Url { url: cfg.url.clone(), why: e.to_string() })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookError::Url { url: cfg.url.clone(), why: "not http or https".into() });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let bad = || WebhookError::Header { name: name.clone() };
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let v = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.append(n, v);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .user_agent(concat!("harbinger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(crate::error_chain(&e)))?;
        Ok(WebhookActuator { url, secret: cfg.secret, timeout: cfg.timeout, headers, client })
    }

    /// The URL it posts to.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs an event that is not a shadow action (a rollout's rollback or promotion
    /// alert) as `body`, with the configured headers, the signature when a secret is set,
    /// and `key` as the idempotency key. Answers the receiver's status and reply.
    ///
    /// # Errors
    /// A timeout, a transport error or a non-2xx answer, as a sentence.
    pub async fn notify(&self, key: &str, body: &serde_json::Value) -> Result<String, String> {
        let body = body.to_string();
        let mut rb = self.client.post(self.url.clone()).headers(self.headers.clone()).header(CONTENT_TYPE, "application/json");
        if let Ok(v) = HeaderValue::from_str(key) {
            rb = rb.header(KEY_HEADER, v);
        }
        if let Some(s) = &self.secret {
            rb = rb.header(SIGNATURE_HEADER, s.sign(body.as_bytes()));
        }
        let exchange = async {
            let resp = rb.body(body).send().await?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            Ok::<_, reqwest::Error>((status, text))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(format!("POST {} timed out after {:?}", self.url, self.timeout)),
            Ok(Err(e)) => Err(format!("POST {}: {}", self.url, crate::error_chain(&e))),
            Ok(Ok((status, _))) if status.is_success() => Ok(format!("HTTP {}", status.as_u16())),
            Ok(Ok((status, text))) => Err(format!("POST {} answered HTTP {status}: {}", self.url, quote(&text))),
        }
    }

    async fn post(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let body = RequestBody::of(req).to_json();
        let mut rb = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ATTEMPT_HEADER, req.attempt.to_string());
        match HeaderValue::from_str(&req.key) {
            Ok(v) => rb = rb.header(KEY_HEADER, v),
            Err(_) => return ActuatorOutcome::failed(format!("key {:?} cannot be sent as a header {NOT_RETRYABLE}", req.key)),
        }
        if let Some(s) = &self.secret {
            rb = rb.header(SIGNATURE_HEADER, s.sign(&body));
        }
        let exchange = async {
            let mut resp = rb.body(body).send().await?;
            let status = resp.status();
            let mut buf = Vec::new();
            while buf.len() < BODY_LIMIT {
                match resp.chunk().await? {
                    Some(c) => buf.extend_from_slice(&c),
                    None => break,
                }
            }
            buf.truncate(BODY_LIMIT);
            Ok::<_, reqwest::Error>((status, buf))
        };
        let (status, buf) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_elapsed) => return ActuatorOutcome::failed(format!("POST {} timed out after {:?}", self.url, self.timeout)),
            Ok(Err(e)) if e.is_timeout() => {
                return ActuatorOutcome::failed(format!("POST {} timed out after {:?}", self.url, self.timeout));
            }
            Ok(Err(e)) => return ActuatorOutcome::failed(format!("POST {}: {}", self.url, crate::error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        let text = String::from_utf8_lossy(&buf);
        let quoted = quote(&text);
        let code = status.as_u16();
        let mut out = if status.is_success() {
            ActuatorOutcome::new(JournalStatus::Applied, if quoted.is_empty() { format!("HTTP {code}") } else { quoted })
        } else if code == 409 {
            let detail = if quoted.is_empty() { "HTTP 409: already applied".to_string() } else { format!("HTTP 409: {quoted}") };
            ActuatorOutcome::new(JournalStatus::AlreadyApplied, detail)
        } else {
            let sep = if quoted.is_empty() { "" } else { ": " };
            let what =
                if status.is_server_error() { String::new() } else { format!(" — the receiver refused the request {NOT_RETRYABLE}") };
            return ActuatorOutcome::failed(format!("POST {} answered HTTP {status}{sep}{quoted}{what}", self.url));
        };
        if matches!(req.action, ActionKind::CreateShadow { .. })
            && let Some(r) = Report::parse(&text)
        {
            r.apply_to(&mut out);
        }
        out
    }
}

/// `text` trimmed, cut to [`DETAIL_LIMIT`] bytes at a character boundary.
fn quote(text: &str) -> String {
    let t = text.trim();
    if t.len() <= DETAIL_LIMIT {
        return t.to_string();
    }
    let mut end = DETAIL_LIMIT;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}[… {} more bytes]", &t[..end], t.len() - end)
}

#[async_trait]
impl Actuator for WebhookActuator {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn apply(&self, req: &ActuatorRequest) -> ActuatorOutcome {
        let out = self.post(req).await;
        crate::log_answer("webhook", req, &out, &self.url);
        out
    }
}
