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

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once.
const MAX_HANDSHAKES: usize = 256;

/// How often an idle connection is pinged (HTTP/2 PING), and how long its answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the standard gRPC health service (the server as a whole reports SERVING) plus
/// what `add_services` adds, on `listener`, until `shutdown` is cancelled; then lets open
/// connections finish for at most `SHUTDOWN_GRACE`. With mutual TLS every call passes
/// the authorization `policy` first (`altair_core::authz`), and SIGHUP re-reads the
/// certificate files (`Tls::reload`).
pub async fn serve_grpc(
    listener: TcpListener,
    tls: &Tls,
    policy: Server,
    add_services: impl FnOnce(Routes) -> Routes,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let routes = add_services(Routes::new(health));
    // HTTP/2 keepalive: a peer that vanished (its host powered off, cut away) leaves no
    // connection — nor a long-lived liveness stream — open on this server for ever.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(AuthzLayer::new(policy, tls.is_insecure()));
    let router = builder.add_routes(routes);
    let signal = shutdown.clone().cancelled_owned();
    if tls.is_insecure() {
        // `serve_with_incoming*` ignores the builder's TCP settings: without TCP_NODELAY
        // on the accepted sockets, small answers wait out the peer's delayed ACK (~40 ms).
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |conn| {
                conn.inspect(|s| {
                    if let Ok(peer) = s.peer_addr() {
                        crate::peers::accepted(peer.ip());
                    }
                    if let Err(e) = s.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                })
            },
        );
        with_grace(
            router.serve_with_incoming_shutdown(incoming, signal),
            &shutdown,
        )
        .await
    } else {
        reload_on_sighup(tls.clone(), shutdown.clone());
        if let Some(every) = tls.reload_interval() {
            reload_on_file_change(tls.clone(), shutdown.clone(), every);
        }
        let incoming = tls_incoming(listener, tls.clone(), Protocol::Grpc, shutdown.clone());
        with_grace(
            router.serve_with_incoming_shutdown(incoming, signal),
            &shutdown,
        )
        .await
    }
}

/// Runs `server` until it ends, or until `SHUTDOWN_GRACE` after `shutdown`.
async fn with_grace(
    server: impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
    shutdown: &CancellationToken,
) -> Result<(), tonic::transport::Error> {
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

pub type TlsConn = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// What a TLS listener serves (its ALPN offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// h2.
    Grpc,
    /// http/1.1 (the web console).
    Http,
}

/// Accepted connections after their TLS handshake, each with the certificate current
/// when it was accepted (a reload applies to the next connection). Handshakes run
/// concurrently, each bounded by `HANDSHAKE_TIMEOUT`; a failed one is dropped.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Tls,
    protocol: Protocol,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    // A flood of connections that never finish their handshake holds at most this many
    // sockets; beyond it new ones are closed at once.
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = shutdown.cancelled() => return,
            };
            let (sock, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if protocol == Protocol::Grpc {
                crate::peers::accepted(peer.ip());
            }
            if let Err(e) = sock.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
            let acceptor = match protocol {
                Protocol::Grpc => tls.acceptor(),
                Protocol::Http => tls.http_acceptor(),
            };
            let Some(acceptor) = acceptor else {
                return;
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                tracing::warn!(%peer, limit = MAX_HANDSHAKES, "too many TLS handshakes in progress: connection closed");
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        crate::metrics::refused("tls_handshake", tonic::Code::Unauthenticated);
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Re-reads the certificate files on every SIGHUP until `shutdown`.
pub fn reload_on_sighup(tls: Tls, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler: certificates are not reloaded");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                s = hup.recv() => if s.is_none() { return },
                () = shutdown.cancelled() => return,
            }
            match tls.reload() {
                Ok(_) => {
                    tracing::info!("SIGHUP: certificate files reloaded; new connections use them")
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: certificate files not reloaded; the previous ones stay in force")
                }
            }
        }
    });
}

/// Re-reads the certificate files whenever they change on disk (looked at every
/// `every`, `tls.reload_interval_ms`), until `shutdown`: a renewal tool that only
/// replaces the files needs no SIGHUP. Files caught half-written (a key that does not
/// match the certificate yet) are refused and the previous certificate stays in force;
/// the next change is tried again.
pub fn reload_on_file_change(tls: Tls, shutdown: CancellationToken, every: Duration) {
    // From what the files looked like when the certificate in force was read: a
    // renewal that landed since (before this watch started) is loaded at the first look.
    let Some(mut seen) = tls.loaded_stamp() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let look = tls.clone();
            let Ok(Some(now)) = tokio::task::spawn_blocking(move || look.files_stamp()).await
            else {
                return;
            };
            if now == seen {
                continue;
            }
            seen = now;
            let load = tls.clone();
            let Ok(loaded) = tokio::task::spawn_blocking(move || load.reload()).await else {
                return;
            };
            match loaded {
                Ok(_) => tracing::info!(
                    "certificate files changed on disk: reloaded; new connections use them"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "certificate files changed on disk but not reloaded; the previous ones stay in force"
                ),
            }
        }
    });
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
