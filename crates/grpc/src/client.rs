//! Client side: connecting to a harbinger gRPC server, with or without TLS and a token.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::BearerToken;
use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::change_service_client::ChangeServiceClient;
use crate::pb::ingest_service_client::IngestServiceClient;
use crate::pb::risk_service_client::RiskServiceClient;
use crate::pb::shadow_service_client::ShadowServiceClient;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`.
    #[error("invalid server address {addr:?}: {reason}")]
    Address {
        /// The address given.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS settings were refused, or the connection failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// The token is not usable as a header value.
    #[error(transparent)]
    Token(#[from] crate::GrpcError),
}

/// A channel with the bearer token (if any) added to every call.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// Clients of the five services over one connection.
#[derive(Clone, Debug)]
pub struct Clients {
    /// `RiskService`.
    pub risk: RiskServiceClient<AuthChannel>,
    /// `IngestService`.
    pub ingest: IngestServiceClient<AuthChannel>,
    /// `AdminService`.
    pub admin: AdminServiceClient<AuthChannel>,
    /// `ShadowService`.
    pub shadow: ShadowServiceClient<AuthChannel>,
    /// `ChangeService`.
    pub change: ChangeServiceClient<AuthChannel>,
    /// The bare channel (for health checks and custom clients).
    pub channel: Channel,
}

/// Connects to `addr` (`HOST:PORT` means `http://`, or `https://` when `ca_pem` is given),
/// trusting `ca_pem` for TLS, sending `token` on every call.
///
/// # Errors
/// [`ClientError`] naming the address.
pub async fn connect(addr: &str, token: Option<&str>, ca_pem: Option<Vec<u8>>) -> Result<Clients, ClientError> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else if ca_pem.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let bad = |reason: String| ClientError::Address { addr: addr.to_string(), reason };
    let mut endpoint =
        Endpoint::from_shared(uri.clone()).map_err(|e| bad(e.to_string()))?.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true);
    if let Some(ca) = ca_pem {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
            .map_err(|source| ClientError::Connect { addr: uri.clone(), source })?;
    } else if uri.starts_with("https://") {
        return Err(bad("https needs a CA certificate to trust (--ca-cert)".into()));
    }
    let channel = endpoint.connect().await.map_err(|source| ClientError::Connect { addr: uri.clone(), source })?;
    let token = BearerToken::new(token)?;
    Ok(Clients {
        risk: RiskServiceClient::with_interceptor(channel.clone(), token.clone()),
        ingest: IngestServiceClient::with_interceptor(channel.clone(), token.clone()),
        admin: AdminServiceClient::with_interceptor(channel.clone(), token.clone()),
        shadow: ShadowServiceClient::with_interceptor(channel.clone(), token.clone()),
        change: ChangeServiceClient::with_interceptor(channel.clone(), token),
        channel,
    })
}
