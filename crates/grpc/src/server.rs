//! Serving: every service, health and reflection on one listener, with graceful shutdown.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::change::ChangeApi;
use crate::deadline::DeadlineLayer;
use crate::pb::admin_service_server::AdminServiceServer;
use crate::pb::change_service_server::ChangeServiceServer;
use crate::pb::ingest_service_server::IngestServiceServer;
use crate::pb::risk_service_server::RiskServiceServer;
use crate::pb::shadow_service_server::ShadowServiceServer;
use crate::service::{AdminApi, GrpcState, IngestApi, RiskApi, ShadowApi};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS certificate or key was refused.
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    /// The reflection service could not read the descriptor set (a build problem).
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while running.
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
}

/// Serves `RiskService`, `IngestService`, `AdminService`, `ShadowService`,
/// `ChangeService`, `grpc.health.v1.Health` and server reflection on `listener` (TLS with
/// `tls` when given) until `shutdown` resolves; then open `WatchRisk` and `WatchShadows`
/// streams end, in-flight calls finish (an apply, submission or rollback already started
/// runs to its end), and it returns.
///
/// Health reports every service SERVING, except `RiskService` when there is no model,
/// `ShadowService` when there is no engine and `ChangeService` when there is no change
/// engine (the overall status stays SERVING).
///
/// # Errors
/// [`ServeError`] for a TLS identity rustls refuses, or a transport failure.
pub async fn serve(
    listener: TcpListener,
    mut state: GrpcState,
    tls: Option<Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    state.stopping = stop_rx;
    let max = state.limits.max_message_bytes;

    let (health, health_service) = tonic_health::server::health_reporter();
    if state.scorer.is_some() {
        health.set_serving::<RiskServiceServer<RiskApi>>().await;
        health.set_serving::<AdminServiceServer<AdminApi>>().await;
    } else {
        health.set_not_serving::<RiskServiceServer<RiskApi>>().await;
        health.set_serving::<AdminServiceServer<AdminApi>>().await;
    }
    health.set_serving::<IngestServiceServer<IngestApi>>().await;
    if state.engine.is_some() {
        health.set_serving::<ShadowServiceServer<ShadowApi>>().await;
    } else {
        health.set_not_serving::<ShadowServiceServer<ShadowApi>>().await;
    }
    if state.change.is_some() {
        health.set_serving::<ChangeServiceServer<ChangeApi>>().await;
    } else {
        health.set_not_serving::<ChangeServiceServer<ChangeApi>>().await;
    }
    // Reflection v1 and v1alpha (older grpcurl and several GUI clients ask v1alpha), both
    // listing harbinger's services and the health service.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;

    let mut builder = Server::builder();
    if let Some(identity) = tls {
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity)).map_err(ServeError::Tls)?;
    }
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    builder
        .layer(DeadlineLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(RiskServiceServer::new(RiskApi(state.clone())).max_decoding_message_size(max))
        .add_service(IngestServiceServer::new(IngestApi(state.clone())).max_decoding_message_size(max))
        .add_service(AdminServiceServer::new(AdminApi(state.clone())).max_decoding_message_size(max))
        .add_service(ShadowServiceServer::new(ShadowApi(state.clone())).max_decoding_message_size(max))
        .add_service(ChangeServiceServer::new(ChangeApi(state)).max_decoding_message_size(max))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            // Ignored when no stream is open: nobody listens then.
            let _no_streams = stop_tx.send(true);
        })
        .await
        .map_err(ServeError::Transport)
}
