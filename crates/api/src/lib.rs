//! harbinger-api: the HTTP server, and the only place domain errors become status codes.
//!
//! # Layout
//! - [`http`]: the axum router ([`http::router`]) and [`http::serve`], which runs it on a
//!   given listener until a given shutdown future resolves.
//! - [`telemetry`]: harbinger's own Prometheus metrics (`/metrics`), defined in the engine.
//! - [`auth`]: the bearer-token check shared with the gRPC server.
//!
//! Routes: `GET /healthz`, `GET /metrics`, `POST /api/v1/write` (Prometheus
//! remote-write 1.0), `POST /api/v1/events` (JSON lines in the `events.jsonl` schema),
//! `GET /api/v1/risk` (host scores from the shared `RiskScorer`), `POST /api/v1/admin/reload`
//! (model reload). With a token configured the `POST` routes need `authorization: Bearer`.
//! Start with [`http::router`].

pub mod auth;
pub mod http;
/// harbinger's own metrics (defined in the engine, shared by both transports).
pub use harbinger_engine::telemetry;

pub use http::{AppState, HttpTimeouts, router, serve, serve_with};
pub use telemetry::Telemetry;
