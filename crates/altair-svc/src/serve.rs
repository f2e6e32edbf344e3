//! The gRPC listener and shutdown on signals.

use std::net::SocketAddr;
use std::time::Duration;

use altair_core::authz::Server;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::authz::AuthzLayer;
use crate::tls::Tls;

/// Binds `addr` before anything else starts, so a taken port is reported at once.
pub async fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// How long open connections may take to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the standard gRPC health service (the server as a whole reports SERVING) plus
/// what `add_services` adds, on `listener`, until `shutdown` is cancelled; then lets open
/// connections finish for at most `SHUTDOWN_GRACE`. With mutual TLS every call passes
/// the authorization `policy` first (`altair_core::authz`).
pub async fn serve_grpc(
    listener: TcpListener,
    tls: &Tls,
    policy: Server,
    add_services: impl FnOnce(Routes) -> Routes,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    // `serve_with_incoming*` ignores the builder's TCP settings: without TCP_NODELAY on
    // the accepted sockets, small answers wait out the peer's delayed ACK (~40 ms).
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            conn.inspect(|s| {
                if let Err(e) = s.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            })
        },
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(cfg) = tls.server_config() {
        builder = builder.tls_config(cfg)?;
    }
    let routes = add_services(Routes::new(health));
    let server = builder
        .layer(AuthzLayer::new(policy, tls.is_insecure()))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "gRPC connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn shutdown_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
        token.cancel();
    });
}
