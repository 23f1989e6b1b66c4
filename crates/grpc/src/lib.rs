//! harbinger-grpc: the gRPC API of harbinger, server and client.
//!
//! The contract is `proto/harbinger/v1/*.proto` (package `harbinger.v1`), compiled by
//! `build.rs` with protox (no protoc needed) into [`pb`]. Schedulers call `RiskService`
//! (`ScoreHosts`, `WatchRisk`, `ExplainHost`); other services push through `IngestService`
//! (`PushMetrics`, `PushEvents`); operators use `AdminService` (`ReloadModel`, `GetModel`,
//! `Ping`) and `ShadowService` (`CreateShadow`, `GetShadowStatus`, `PromoteShadow`,
//! `WatchShadows`, over the engine of `harbinger-engine`) and `ChangeService` (`Simulate`,
//! `Apply`, `Submit`, `Rollback`, `ListChanges`, `GetChange`, over the change engine of
//! `harbinger-change`; `GetRollout`, `ListRollouts`, over the shadow-stack rollout
//! records). The standard health service and server reflection are served beside them.
//!
//! # Layout
//! - [`service`]: the four service implementations over [`GrpcState`] (stores, the
//!   `RiskScorer`, the engine, limits, auth).
//! - [`change`]: `ChangeService`, over the state's change engine.
//! - [`rollout`]: rollout records on the wire (`GetRollout`, `ListRollouts`), read from
//!   the state's rollouts directory.
//! - [`server`]: [`serve`], every service on one listener until a shutdown future resolves.
//! - [`error`]: [`GrpcError`], the only place where errors become status codes.
//! - [`deadline`]: the layer that answers DEADLINE_EXCEEDED (tonic's own timer answers
//!   CANCELLED) and RESOURCE_EXHAUSTED for oversized messages.
//! - [`auth`]: the bearer-token check for mutating calls, and the client interceptor.
//! - [`convert`]: wire messages to domain types and back, with request validation.
//! - [`client`]: [`client::connect`], used by `harbinger score`, `harbinger shadows` and
//!   `harbinger bench grpc`.
//!
//! The design decision that matters: the servers only see `Arc<dyn RiskScorer>`
//! (`harbinger-core`), so one scorer is shared with the HTTP server and tests substitute
//! their own. Scorer calls run on the blocking pool. Start with [`service`].

pub mod auth;
pub mod change;
pub mod client;
pub mod convert;
pub mod deadline;
pub mod error;
pub mod rollout;
pub mod server;
pub mod service;

pub use error::GrpcError;
pub use server::{ServeError, serve};
pub use service::{GrpcState, Limits};

/// The generated messages, clients (`*_client`) and servers (`*_server`) of `harbinger.v1`.
#[allow(missing_docs, unreachable_pub, clippy::unwrap_used)]
pub mod pb {
    tonic::include_proto!("harbinger.v1");

    /// The encoded `FileDescriptorSet` of `proto/harbinger/v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/harbinger_v1_descriptor.bin"));
}
