//! HTTP routes. Handlers return [`ApiError`] and `?`; the mapping to status codes lives in
//! one `IntoResponse` impl.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use harbinger_core::event::parse_events_jsonl;
use harbinger_core::shadow::ShadowState;
use harbinger_core::{EventError, HostId, RejectReason, RiskScorer, ScoreError, StoreError, Stores};
use harbinger_core::{ResourceId, ShadowId};
use harbinger_engine::{Engine, EngineError, EventsRefused, Ingest, StatusFilter};
use harbinger_ingest::remote_write::{self, RemoteWriteError, SeriesCache};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::telemetry::{ReasonLabel, RouteLabel, Telemetry};

/// Everything a handler needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The stores.
    pub stores: Stores,
    /// Own metrics.
    pub telemetry: Arc<Telemetry>,
    /// Largest request body accepted (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// When set, samples and events for hosts outside this set are refused.
    pub strict_hosts: Option<Arc<HashSet<HostId>>>,
    /// Remote-write label sets already mapped to series keys.
    pub series_cache: Arc<SeriesCache>,
    /// The live scorer (shared with the gRPC server). Accepted samples and events are fed
    /// to it; `GET /api/v1/risk` asks it. `None`: no model, risk routes answer 503.
    pub scorer: Option<Arc<dyn RiskScorer>>,
    /// When set, the `POST` routes need `authorization: Bearer <token>`.
    pub token: Option<Arc<str>>,
    /// With a token: the read routes (`/metrics`, risk, shadow status, snapshots) need it
    /// too; `/healthz` and `/readyz` stay open.
    pub protect_reads: bool,
    /// The engine (shadows, alerts). `None`: the shadow and alert routes answer 503.
    pub engine: Option<Engine>,
    /// Remote-write bodies decoded at once (snappy + protobuf, on blocking threads so the
    /// async threads keep answering). A request finding none free waits for one (at most
    /// [`DECODE_WAIT`]) if fewer than `decode_waiters` already wait; otherwise it gets 429.
    pub decode_permits: Arc<tokio::sync::Semaphore>,
    /// How many remote-write requests may wait for a decoding slot (each holds its body,
    /// at most `max_body_bytes`, while it waits).
    pub decode_waiters: usize,
    /// Requests waiting for a decoding slot now.
    pub decode_waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// The body timeout [`serve_with`] applies (for the 408's message).
    pub body_timeout: std::time::Duration,
    /// Where rollout records are (`<dir>/<id>.json`, written by `harbinger rollout run`);
    /// `None`: the rollout routes answer 503.
    pub rollouts_dir: Option<std::path::PathBuf>,
}

/// Default number of remote-write bodies decoded at once: the machine's cores.
pub fn default_decode_permits() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// The longest a remote-write request waits for a decoding slot before its 429.
pub const DECODE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Counts a waiting request in `decode_waiting` until dropped (also when the client goes
/// away while it waits).
struct Waiting(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A decoding slot: one free now, or one freed within [`DECODE_WAIT`] if the waiting room
/// (`decode_waiters`) has space; `None` means 429.
async fn decode_slot(state: &AppState) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(p) = state.decode_permits.clone().try_acquire_owned() {
        return Some(p);
    }
    if state.decode_waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= state.decode_waiters {
        state.decode_waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        return None;
    }
    let _waiting = Waiting(state.decode_waiting.clone());
    tokio::time::timeout(DECODE_WAIT, state.decode_permits.clone().acquire_owned()).await.ok()?.ok()
}

impl AppState {
    /// State over `stores`, with no host restriction.
    pub fn new(stores: Stores, telemetry: Arc<Telemetry>, max_body_bytes: usize) -> Self {
        Self {
            stores,
            telemetry,
            max_body_bytes,
            strict_hosts: None,
            series_cache: Arc::new(SeriesCache::default()),
            scorer: None,
            token: None,
            protect_reads: false,
            engine: None,
            decode_permits: Arc::new(tokio::sync::Semaphore::new(default_decode_permits())),
            decode_waiters: 4 * default_decode_permits(),
            decode_waiting: Arc::default(),
            body_timeout: HttpTimeouts::default().body,
            rollouts_dir: None,
        }
    }
}

/// Why a request failed. Each variant has one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is larger than `http.max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body could not be read.
    #[error("cannot read request body: {0}")]
    Body(String),
    /// Unsupported encoding or protocol version.
    #[error("{0}")]
    Unsupported(String),
    /// A remote-write body that cannot be decoded.
    #[error(transparent)]
    RemoteWrite(#[from] RemoteWriteError),
    /// A bad events body.
    #[error(transparent)]
    Events(#[from] EventError),
    /// Some samples were refused; the others were stored.
    #[error("{accepted} samples stored, {rejected} rejected ({detail})")]
    PartiallyRejected {
        /// Stored.
        accepted: u64,
        /// Refused.
        rejected: u64,
        /// Reasons and the first refused sample.
        detail: String,
    },
    /// The store failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// A mutating request without the right bearer token.
    #[error("{0}")]
    Unauthorized(#[from] crate::auth::AuthFailure),
    /// A malformed query.
    #[error("{0}")]
    BadQuery(String),
    /// The server runs without a failure model.
    #[error("no failure model is loaded; point `model.dir` at a trained model")]
    NoModel,
    /// Scoring refused or failed.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// A model reload failed; the previous model keeps serving.
    #[error("model reload failed, still serving model {previous}: {source}")]
    Reload {
        /// The version still served.
        previous: String,
        /// Why.
        source: ScoreError,
    },
    /// A worker task failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// Something named in the path does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A feature this server was started without.
    #[error("{0}")]
    Unavailable(String),
    /// The server runs without the engine.
    #[error("the engine is not running")]
    NoEngine,
    /// The request body did not arrive within the body timeout.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// Every decoding slot is taken: retry shortly.
    #[error("busy: every remote-write decoding slot is taken; retry shortly")]
    Busy,
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A JSON body that cannot be used.
    #[error("invalid JSON body: {0}")]
    Json(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RemoteWrite(RemoteWriteError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Body(_) | Self::RemoteWrite(_) | Self::Events(_) | Self::PartiallyRejected { .. } => StatusCode::BAD_REQUEST,
            Self::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadQuery(_) | Self::Score(ScoreError::Invalid(_)) => StatusCode::BAD_REQUEST,
            Self::Score(ScoreError::UnknownHost(_)) => StatusCode::NOT_FOUND,
            Self::NoModel => StatusCode::SERVICE_UNAVAILABLE,
            Self::Score(ScoreError::Model(_)) | Self::Reload { .. } | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoEngine | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Busy => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Json(_) => StatusCode::BAD_REQUEST,
            Self::Engine(e) => match e {
                EngineError::UnknownResource(_) | EngineError::UnknownShadow(_) => StatusCode::NOT_FOUND,
                EngineError::Duplicate { .. } | EngineError::NotReady { .. } | EngineError::NotPlaced { .. } => StatusCode::CONFLICT,
                EngineError::Alerts(_) | EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
                EngineError::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
                EngineError::Actuator { .. } => StatusCode::BAD_GATEWAY,
                EngineError::Snapshot(
                    harbinger_snapshot::SnapshotError::UnknownResource { .. } | harbinger_snapshot::SnapshotError::UnknownSeq { .. },
                ) => StatusCode::NOT_FOUND,
                EngineError::NoSnapshots => StatusCode::SERVICE_UNAVAILABLE,
                EngineError::Store(_) | EngineError::Internal(_) | EngineError::Snapshot(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, %status, "request refused");
        }
        let mut resp = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{self}\n")).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

/// The router with every route, body limit and latency recording. The mutating routes
/// check the bearer token first when one is configured.
pub fn router(state: AppState) -> Router {
    let mutating = Router::new()
        .route("/api/v1/write", post(remote_write_handler))
        .route("/api/v1/events", post(events_handler))
        .route("/api/v1/admin/reload", post(reload_handler))
        .route("/api/v1/alerts", post(alerts_handler))
        .route("/shadow/create", post(shadow_create_handler))
        .route("/shadow/promote", post(shadow_promote_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let reads = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/risk", get(risk_handler))
        .route("/shadow/status", get(shadow_status_handler))
        .route("/api/v1/snapshots", get(snapshots_handler))
        .route("/api/v1/samples", get(samples_handler))
        .route("/api/v1/rollouts", get(rollouts_handler))
        .route("/api/v1/rollouts/{id}", get(rollout_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token_on_reads));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(reads)
        .merge(mutating)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), refuse_declared_oversize))
        .layer(middleware::from_fn_with_state(state.clone(), record_latency))
        .with_state(state)
}

/// Bounds on what a client may make the server wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From the connection's start (or the end of the previous response on a kept-alive
    /// connection) to the end of the request's headers; an idle or slow-header client is
    /// disconnected after it.
    pub header: std::time::Duration,
    /// Longest wait for a request body to arrive in full (a slow body gets 408).
    pub body: std::time::Duration,
    /// After shutdown begins, how long in-flight requests may take before their
    /// connections are dropped (acknowledged data is durable by then).
    pub shutdown: std::time::Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            header: std::time::Duration::from_secs(10),
            body: std::time::Duration::from_secs(30),
            shutdown: std::time::Duration::from_secs(10),
        }
    }
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then finishes in-flight
/// requests and returns; with the default [`HttpTimeouts`].
///
/// # Errors
/// Accept-loop I/O errors.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    serve_with(listener, state, HttpTimeouts::default(), shutdown).await
}

/// [`serve`] with the given timeouts: slow or idle clients are disconnected, slow bodies
/// answered 408, and shutdown waits at most `timeouts.shutdown` for open connections.
///
/// # Errors
/// Accept-loop I/O errors other than per-connection ones (those are logged and skipped).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut state = state;
    state.body_timeout = timeouts.body;
    let app = router(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(timeouts.body));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(timeouts.header).keep_alive(true);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little and go on.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _nodelay = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let watched = graceful.watch(conn);
        conns.spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.shutdown, graceful.shutdown()).await.is_err() {
        tracing::warn!(deadline = ?timeouts.shutdown, open = conns.len(), "HTTP connections still open at the shutdown deadline: dropped");
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// A request whose `Content-Length` is over the body limit gets 413 at once, before any
/// of the body is read (and so before a `100 Continue` invites the client to send it).
async fn refuse_declared_oversize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        count_request_rejection(&state, "too_large");
        return ApiError::TooLarge { limit: state.max_body_bytes }.into_response();
    }
    next.run(req).await
}

async fn require_token_on_reads(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.protect_reads { require_token(State(state), req, next).await } else { next.run(req).await }
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req.headers().get(header::AUTHORIZATION).map(header::HeaderValue::as_bytes);
        if let Err(e) = crate::auth::check_bearer(token, given) {
            count_request_rejection(&state, "unauthorized");
            return ApiError::from(e).into_response();
        }
    }
    next.run(req).await
}

/// Runs `f` on the blocking pool (scorer calls are CPU work).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("worker task: {e}")))
}

/// `GET /api/v1/risk?host=h1&host=h2` (or `host=h1,h2`): those hosts' scores, in order;
/// without `host`, every known host.
async fn risk_handler(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<harbinger_core::HostRisk>>, ApiError> {
    let scorer = state.scorer.clone().ok_or(ApiError::NoModel)?;
    let mut hosts = Vec::new();
    for (k, v) in &params {
        if k != "host" {
            return Err(ApiError::BadQuery(format!("unknown query parameter {k:?} (expected `host`)")));
        }
        for h in v.split(',') {
            let h = h.trim();
            if h.is_empty() {
                return Err(ApiError::BadQuery("empty `host` in the query".into()));
            }
            hosts.push(HostId::new(h));
        }
    }
    let risks = blocking(move || if hosts.is_empty() { Ok(scorer.score_all()) } else { scorer.score_hosts(&hosts) }).await??;
    Ok(Json(risks))
}

/// Most samples `GET /api/v1/samples` answers at once.
pub const MAX_SAMPLES_PER_READ: usize = 100_000;

/// What `GET /api/v1/samples` answers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SamplesAnswer {
    /// The host.
    pub host: String,
    /// The metric.
    pub metric: String,
    /// `[timestamp_ms, value]` pairs, oldest first, in `[from, to)`.
    pub samples: Vec<(i64, f64)>,
    /// Whether more samples lie in the range than `limit` (the first `limit` are given).
    pub truncated: bool,
}

/// `GET /api/v1/samples?host=H&metric=M&from=MS&to=MS[&limit=N]`: one series' samples in
/// `[from, to)` (ms since epoch), at most `limit` (default and most 100,000).
async fn samples_handler(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<SamplesAnswer>, ApiError> {
    let (mut host, mut metric, mut from, mut to, mut limit) = (None, None, None, None, MAX_SAMPLES_PER_READ);
    let int =
        |k: &str, v: &str| v.trim().parse::<i64>().map_err(|_| ApiError::BadQuery(format!("`{k}` must be ms since epoch, got {v:?}")));
    for (k, v) in &params {
        match k.as_str() {
            "host" if !v.trim().is_empty() => host = Some(v.trim().to_string()),
            "metric" if !v.trim().is_empty() => metric = Some(v.trim().to_string()),
            "host" | "metric" => return Err(ApiError::BadQuery(format!("empty `{k}` in the query"))),
            "from" => from = Some(int(k, v)?),
            "to" => to = Some(int(k, v)?),
            "limit" => {
                limit = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_SAMPLES_PER_READ).contains(n))
                    .ok_or_else(|| ApiError::BadQuery(format!("`limit` must be 1..={MAX_SAMPLES_PER_READ}, got {v:?}")))?;
            }
            _ => return Err(ApiError::BadQuery(format!("unknown query parameter {k:?} (expected host, metric, from, to, limit)"))),
        }
    }
    let need = |what: &str| ApiError::BadQuery(format!("`{what}` is required"));
    let (host, metric) = (host.ok_or_else(|| need("host"))?, metric.ok_or_else(|| need("metric"))?);
    let (from, to) = (from.ok_or_else(|| need("from"))?, to.ok_or_else(|| need("to"))?);
    if to < from {
        return Err(ApiError::BadQuery(format!("`to` ({to}) is before `from` ({from})")));
    }
    let got = match state.stores.metrics.range(&harbinger_core::SeriesKey::new(&host, &metric), from, to).await {
        Ok(g) => g,
        Err(StoreError::UnknownSeries(_)) => {
            let cut = |s: &str| s.chars().take(128).collect::<String>();
            return Err(ApiError::NotFound(format!("no series for host {:?} and metric {:?}", cut(&host), cut(&metric))));
        }
        Err(e) => return Err(e.into()),
    };
    let truncated = got.timestamps.len() > limit;
    let samples = got.timestamps.into_iter().zip(got.values).take(limit).collect();
    Ok(Json(SamplesAnswer { host, metric, samples, truncated }))
}

/// `POST /api/v1/admin/reload`: reloads the configured model; answers the versions.
async fn reload_handler(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let scorer = state.scorer.clone().ok_or(ApiError::NoModel)?;
    let previous = scorer.model_info();
    let s = scorer.clone();
    let current =
        blocking(move || s.reload(None)).await?.map_err(|source| ApiError::Reload { previous: previous.version.to_string(), source })?;
    tracing::info!(previous = %previous.version, current = %current.version, "model reloaded (HTTP)");
    Ok(Json(serde_json::json!({ "previous": previous, "current": current })))
}

async fn record_latency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .telemetry
        .request_seconds
        .get_or_create(&RouteLabel { route, status: resp.status().as_u16() })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Liveness and the store's health: 200 `{"status": "ok", ...}`, or 503
/// `{"status": "failed", "reason": ...}` once the store refuses writes (a write or fsync
/// failed; it stays so until a restart).
async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let st = state.stores.metrics.stats().await?;
    let body = serde_json::json!({
        "status": if st.failed.is_some() { "failed" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "series": st.series,
        "samples": st.samples,
        "newest_ms": st.newest_ms,
        "store": match &st.failed {
            Some(reason) => serde_json::json!({"status": "failed", "reason": reason}),
            None => serde_json::json!({"status": "ok"}),
        },
    });
    let code = if st.failed.is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    Ok((code, Json(body)).into_response())
}

/// Readiness: 200 when the store takes writes and a failure model is loaded (risk can be
/// scored), else 503 with every reason. Load balancers send traffic only when ready.
async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let st = state.stores.metrics.stats().await?;
    let mut reasons = Vec::new();
    if let Some(r) = &st.failed {
        reasons.push(format!("store failed: {r}"));
    }
    if state.scorer.is_none() {
        reasons.push("no failure model loaded".to_string());
    }
    let ready = reasons.is_empty();
    let body = serde_json::json!({"ready": ready, "reasons": reasons});
    Ok((if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body)).into_response())
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let st = state.stores.metrics.stats().await?;
    let t = &state.telemetry;
    t.store_series.set(i64::try_from(st.series).unwrap_or(i64::MAX));
    t.store_samples.set(i64::try_from(st.samples).unwrap_or(i64::MAX));
    t.series_cache_entries.set(i64::try_from(state.series_cache.len()).unwrap_or(i64::MAX));
    t.series_cache_bytes.set(i64::try_from(state.series_cache.bytes()).unwrap_or(i64::MAX));
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], t.encode()).into_response())
}

/// Turns an extractor rejection into our error, counting it.
fn body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rej| {
        let e = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit: state.max_body_bytes }
        } else if timed_out(&rej) {
            ApiError::BodyTimeout(state.body_timeout)
        } else {
            ApiError::Body(rej.body_text())
        };
        count_request_rejection(
            state,
            match e {
                ApiError::TooLarge { .. } => "too_large",
                ApiError::BodyTimeout(_) => "body_timeout",
                _ => "unreadable_body",
            },
        );
        e
    })
}

/// Whether a body rejection comes from the body timeout (somewhere in its source chain).
fn timed_out(rej: &BytesRejection) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(rej);
    while let Some(e) = cur {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn count_request_rejection(state: &AppState, reason: &'static str) {
    state.telemetry.requests_rejected.get_or_create(&ReasonLabel { reason }).inc();
}

async fn remote_write_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let raw = body(&state, raw)?;
    let header_str = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ctype = header_str(header::CONTENT_TYPE);
    if ctype.contains("io.prometheus.write.v2") {
        count_request_rejection(&state, "unsupported");
        return Err(ApiError::Unsupported(
            "remote-write 2.0 is not supported; configure the sender for remote-write 1.0 (protobuf_message: prometheus.WriteRequest)"
                .into(),
        ));
    }
    let encoding = header_str(header::CONTENT_ENCODING);
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("snappy") {
        count_request_rejection(&state, "unsupported");
        return Err(ApiError::Unsupported(format!("content-encoding {encoding:?} is not supported (expected snappy)")));
    }
    // A decoded body may be larger than the wire body; allow a generous factor.
    let max_decoded = state.max_body_bytes.saturating_mul(8);
    // Decompression and decoding are CPU work of up to `max_decoded` bytes: on a blocking
    // thread, at most `decode_permits` at once, so /healthz and reads stay responsive.
    let Some(permit) = decode_slot(&state).await else {
        count_request_rejection(&state, "busy");
        return Err(ApiError::Busy);
    };
    let cache = state.series_cache.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        remote_write::decode_with(&raw, max_decoded, &cache)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("remote-write decoding: {e}")))?
    .inspect_err(|e| count_request_rejection(&state, e.reason()))?;
    let accepted = ingest(&state).samples("remote_write", decoded.batch, decoded.dropped).await?;
    let (report, dropped) = (accepted.report, accepted.dropped);

    // NaN values and staleness markers are normal in Prometheus data (they mean "no
    // value"): counted, not an error. Anything else refused makes the request a 400,
    // after the valid samples were stored.
    let serious: u64 = report.rejected.iter().filter(|(r, _)| **r != RejectReason::NonFinite).map(|(_, n)| n).sum::<u64>()
        + dropped.iter().filter(|(r, _)| **r != "stale_marker").map(|(_, n)| n).sum::<u64>();
    if serious > 0 {
        let mut parts: Vec<String> =
            report.rejected.iter().map(|(r, n)| format!("{n} {r}")).chain(dropped.iter().map(|(r, n)| format!("{n} {r}"))).collect();
        if let Some(first) = &report.first_rejection {
            parts.push(format!("first: {} at {} ({})", first.key, first.timestamp, first.reason));
        }
        return Err(ApiError::PartiallyRejected {
            accepted: report.accepted,
            rejected: report.rejected_total() + dropped.values().sum::<u64>(),
            detail: parts.join(", "),
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn events_handler(State(state): State<AppState>, raw: Result<Bytes, BytesRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = body(&state, raw)?;
    let text = std::str::from_utf8(&raw).map_err(|e| {
        count_request_rejection(&state, "invalid_utf8");
        ApiError::Body(format!("body is not UTF-8: {e}"))
    })?;
    let events = parse_events_jsonl(text, "request body").inspect_err(|_| count_request_rejection(&state, "invalid_event"))?;
    let n = match ingest(&state).events(events).await {
        Ok(n) => n,
        Err(EventsRefused::Store(e)) => return Err(e.into()),
        Err(EventsRefused::UnknownHost { index, host }) => {
            // Name the line of the body, counting only the non-blank ones as events.
            let line = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).nth(index).map_or(index + 1, |(i, _)| i + 1);
            return Err(ApiError::Events(EventError {
                source_name: "request body".into(),
                line,
                reason: format!("unknown host {} (not in the inventory)", harbinger_core::ids::echo(host.as_str())),
            }));
        }
    };
    Ok(Json(serde_json::json!({ "accepted": n })))
}

/// The shared ingest path over this state's stores, scorer, engine and host restriction.
fn ingest(state: &AppState) -> Ingest {
    Ingest {
        stores: state.stores.clone(),
        scorer: state.scorer.clone(),
        engine: state.engine.clone(),
        telemetry: state.telemetry.clone(),
        strict_hosts: state.strict_hosts.clone(),
    }
}

fn engine(state: &AppState) -> Result<Engine, ApiError> {
    state.engine.clone().ok_or(ApiError::NoEngine)
}

/// Parses a JSON body, naming what is wrong.
fn json_body<T: serde::de::DeserializeOwned>(state: &AppState, raw: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let raw = body(state, raw)?;
    serde_json::from_slice(&raw).map_err(|e| {
        count_request_rejection(state, "invalid_json");
        ApiError::Json(e.to_string())
    })
}

/// `POST /shadow/create` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    resource: String,
    #[serde(default)]
    by: String,
}

/// `POST /shadow/promote` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    id: String,
    #[serde(default)]
    by: String,
}

/// `POST /shadow/create` `{"resource": "db-3", "by": "alice"}`: a shadow of the resource,
/// placed now. 201 with the actions taken; 404 unknown resource; 409 duplicate or no fit.
async fn shadow_create_handler(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let engine = engine(&state)?;
    let b: CreateBody = json_body(&state, raw)?;
    if b.resource.trim().is_empty() {
        return Err(ApiError::Json("`resource` is empty".into()));
    }
    let actions = engine.create(&ResourceId::new(b.resource.trim()), &b.by).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "actions": actions }))))
}

/// `POST /shadow/promote` `{"id": "db-3@h042#...", "by": "alice"}`: a ready shadow takes
/// over. 200 with the action; 404 unknown shadow; 409 not ready; 502 actuator failed.
async fn shadow_promote_handler(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = engine(&state)?;
    let b: PromoteBody = json_body(&state, raw)?;
    if b.id.trim().is_empty() {
        return Err(ApiError::Json("`id` is empty".into()));
    }
    let done = engine.promote(&ShadowId::new(b.id.trim()), &b.by).await?;
    Ok(Json(serde_json::json!({ "action": done })))
}

/// `GET /shadow/status?id=&resource=&host=&state=&live=true`: shadows, counts by state,
/// recent decisions and pending actions.
async fn shadow_status_handler(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<harbinger_engine::Status>, ApiError> {
    let engine = engine(&state)?;
    let mut f = StatusFilter::default();
    for (k, v) in params {
        match k.as_str() {
            "id" => f.id = Some(ShadowId::new(&v)),
            "resource" => f.resource = Some(ResourceId::new(&v)),
            "host" => f.host = Some(HostId::new(&v)),
            "state" => {
                let s: ShadowState = serde_json::from_value(serde_json::Value::String(v.clone())).map_err(|_| {
                    ApiError::BadQuery(format!(
                        "unknown state {v:?} (expected planned, provisioning, syncing, ready, promoted, expired, retired or failed)"
                    ))
                })?;
                f.state = Some(s);
            }
            "live" => {
                f.live = match v.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(ApiError::BadQuery(format!("`live` is {v:?} (expected true or false)"))),
                };
            }
            _ => {
                return Err(ApiError::BadQuery(format!("unknown query parameter {k:?} (expected id, resource, host, state or live)")));
            }
        }
    }
    Ok(Json(engine.status(&f).await?))
}

/// `POST /api/v1/alerts`: Alertmanager's webhook. 200 with what was done; 400 for a
/// malformed payload (nothing changes).
async fn alerts_handler(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<harbinger_engine::AlertReport>, ApiError> {
    let engine = engine(&state)?;
    let raw = body(&state, raw)?;
    let report = engine.alerts(&raw).await.inspect_err(|e| {
        if matches!(e, EngineError::Alerts(_)) {
            count_request_rejection(&state, "invalid_alert");
        }
    })?;
    Ok(Json(report))
}

/// `GET /api/v1/snapshots?resource=R`: the resource's delta snapshots, oldest first.
async fn snapshots_handler(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<harbinger_snapshot::SnapshotMeta>>, ApiError> {
    let engine = engine(&state)?;
    let mut resource = None;
    for (k, v) in params {
        match k.as_str() {
            "resource" if !v.trim().is_empty() => resource = Some(ResourceId::new(v.trim())),
            "resource" => return Err(ApiError::BadQuery("empty `resource` in the query".into())),
            _ => return Err(ApiError::BadQuery(format!("unknown query parameter {k:?} (expected `resource`)"))),
        }
    }
    let resource = resource.ok_or_else(|| ApiError::BadQuery("`resource` is required".into()))?;
    Ok(Json(engine.snapshots(&resource).await?))
}

fn rollouts_dir(state: &AppState) -> Result<&std::path::Path, ApiError> {
    state.rollouts_dir.as_deref().ok_or_else(|| ApiError::Unavailable("this server keeps no rollout records".into()))
}

/// Reads the record of rollout `id` from `dir`.
///
/// # Errors
/// [`ApiError::BadQuery`] for an id that cannot name a rollout, [`ApiError::NotFound`]
/// when there is no record, [`ApiError::Internal`] for one that cannot be read.
pub fn read_rollout(dir: &std::path::Path, id: &str) -> Result<harbinger_plan::rollout::RolloutRecord, ApiError> {
    if !harbinger_plan::rollout::valid_id(id) {
        let shown: String = id.chars().take(64).collect();
        return Err(ApiError::BadQuery(format!("rollout id {shown:?}: use 1 to 64 letters, digits, '-', '_' or '.' (not first)")));
    }
    let path = dir.join(format!("{id}.json"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::NotFound(format!("no rollout {id:?}"))),
        Err(e) => return Err(ApiError::Internal(format!("reading the record of rollout {id:?}: {e}"))),
    };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(format!("the record of rollout {id:?} is not valid: {e}")))
}

/// `GET /api/v1/rollouts/{id}`: the rollout's record: steps, every judgement with its KPI
/// sample windows, events and decision.
async fn rollout_handler(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<harbinger_plan::rollout::RolloutRecord>, ApiError> {
    let dir = rollouts_dir(&state)?.to_path_buf();
    let r = tokio::task::spawn_blocking(move || read_rollout(&dir, &id)).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(r?))
}

/// One line of `GET /api/v1/rollouts`: a rollout without its judgements.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RolloutSummary {
    /// Its id.
    pub id: String,
    /// When it started (ms since epoch).
    pub created_ms: i64,
    /// Its last change (ms since epoch).
    pub updated_ms: i64,
    /// Where it is.
    pub phase: harbinger_plan::rollout::Phase,
    /// The share of the traffic (percent) the shadow stack is meant to get now.
    pub share: u32,
    /// Judgements made so far.
    pub judgements: usize,
    /// `promoted` or `rolled_back` once over.
    pub decision: Option<String>,
}

/// Every rollout in `dir` whose record can be read ([`read_rollout`]), newest first (by
/// `created_ms`, then by id). Files that are not `<id>.json`, and records that cannot be
/// read, are left out; a missing directory has none.
///
/// # Errors
/// [`ApiError::Internal`] when the directory cannot be listed.
pub fn list_rollouts(dir: &std::path::Path) -> Result<Vec<RolloutSummary>, ApiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ApiError::Internal(format!("listing {}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else { continue };
        if let Ok(r) = read_rollout(dir, id) {
            out.push(RolloutSummary {
                id: r.id,
                created_ms: r.created_ms,
                updated_ms: r.updated_ms,
                phase: r.rollout.phase,
                share: r.rollout.share,
                judgements: r.judgements.len(),
                decision: r.decision,
            });
        }
    }
    out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// `GET /api/v1/rollouts`: every rollout, newest first, without the judgements.
async fn rollouts_handler(State(state): State<AppState>) -> Result<Json<Vec<RolloutSummary>>, ApiError> {
    let dir = rollouts_dir(&state)?.to_path_buf();
    let list = tokio::task::spawn_blocking(move || list_rollouts(&dir)).await.map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(list))
}
