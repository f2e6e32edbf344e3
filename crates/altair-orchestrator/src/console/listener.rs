//! The console's listeners for axum: HTTPS with the process's certificate (each
//! connection carrying the identity its client certificate names) or plain HTTP
//! (behind an authenticating proxy).

use std::net::SocketAddr;

use altair_core::authz::Identity;
use altair_svc::{Protocol, Tls, TlsConn};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Who is at the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// HTTPS: the identity the client certificate names; `None`: no certificate.
    /// `Err`: a certificate the CA signed that names no altair identity.
    pub certificate: Option<Result<Identity, String>>,
}

/// Accepted TLS connections, handshakes done concurrently (`altair_svc::tls_incoming`).
pub struct HttpsListener {
    incoming: ReceiverStream<Result<TlsConn, std::io::Error>>,
    local: SocketAddr,
}

impl HttpsListener {
    pub fn new(
        listener: TcpListener,
        tls: Tls,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self {
            incoming: altair_svc::tls_incoming(listener, tls, Protocol::Http, shutdown),
            local,
        })
    }
}

impl Listener for HttpsListener {
    type Io = TlsConn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let (tcp, session) = conn.get_ref();
                    let addr = tcp
                        .peer_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    let certificate = session
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|der| altair_svc::tls::identity_of_der(der));
                    return (conn, Peer { addr, certificate });
                }
                Some(Err(e)) => tracing::debug!(error = %e, "console connection failed"),
                // Shutting down: axum's graceful shutdown ends the server.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            certificate: None,
        })
    }
}

/// Plain TCP (the proxy terminates TLS and authenticates).
pub struct HttpListener(pub TcpListener);

impl Listener for HttpListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (sock, addr) = Listener::accept(&mut self.0).await;
        if let Err(e) = sock.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        (
            sock,
            Peer {
                addr,
                certificate: None,
            },
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            certificate: None,
        })
    }
}

impl Connected<IncomingStream<'_, HttpsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, HttpsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, HttpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        stream.remote_addr().clone()
    }
}
