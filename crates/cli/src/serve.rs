//! `harbinger serve`: the HTTP service over the embedded store.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use harbinger_api::{AppState, Telemetry};
use harbinger_config::Config;
use harbinger_core::{InventoryStore, Stores};

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Opens the store, serves HTTP until `shutdown` resolves, then syncs and closes the store.
///
/// # Errors
/// The store cannot be opened, or the address cannot be bound.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let store = Arc::new(crate::open_store(&cfg)?);
    let strict_hosts = if cfg.http.strict_hosts {
        let hosts = store.hosts().await?;
        tracing::info!(hosts = hosts.len(), "strict hosts: only inventory hosts are accepted");
        Some(Arc::new(hosts.into_iter().map(|h| h.host).collect::<HashSet<_>>()))
    } else {
        None
    };
    let mut state = AppState::new(Stores::from_backend(store.clone()), Arc::new(Telemetry::new()), cfg.http.max_body_bytes);
    state.strict_hosts = strict_hosts;
    let listener = tokio::net::TcpListener::bind(cfg.http.addr)
        .await
        .with_context(|| format!("binding HTTP on {}", cfg.http.addr))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "harbinger serving HTTP");
    // Printed on stdout so scripts and tests can find the port when binding to :0.
    println!("listening on http://{addr}");
    harbinger_api::serve(listener, state, shutdown).await.context("HTTP server")?;
    store.close().context("final sync of the store")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
