//! Dialling an altair service over mutual TLS and checking who answered: the server's
//! certificate must verify against the CA, name the address dialled (as any TLS client
//! checks) and name the identity the caller meant to reach
//! (`altair_core::authz_peer::Expected`). tonic's own TLS client checks only the first
//! two, so the TLS handshake is done here, in a connector, with a verifier that checks
//! the third.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use altair_core::authz_peer::Expected;
use hyper_util::rt::TokioIo;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// A server certificate verifier: the CA's verdict (chain, validity, the name dialled),
/// then the identity its SAN URI names.
#[derive(Debug)]
pub(crate) struct NamesExpected {
    pub(crate) inner: Arc<WebPkiServerVerifier>,
    pub(crate) expected: Expected,
}

impl ServerCertVerifier for NamesExpected {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let id = crate::tls::identity_of_der(end_entity)
            .map_err(|e| rustls::Error::General(format!("the server's certificate: {e}")))?;
        if !self.expected.admits(&id) {
            return Err(rustls::Error::General(format!(
                "the server's certificate names {id}, not {}",
                self.expected
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Opens TCP (no Nagle delay) then TLS to the URI's `host:port`, presenting our
/// certificate and checking the server's with `NamesExpected`.
#[derive(Clone)]
pub struct Connector {
    pub(crate) config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}

type Connecting =
    Pin<Box<dyn Future<Output = Result<TokioIo<TlsStream<TcpStream>>, std::io::Error>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move {
            let bad =
                |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
            let host = uri.host().ok_or_else(|| bad("no host in the address"))?;
            let port = uri
                .port_u16()
                .ok_or_else(|| bad("no port in the address"))?;
            // `[::1]` in a URI is `::1` to a resolver and to a certificate's IP name.
            let bare = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = ServerName::try_from(bare.clone())
                .map_err(|_| bad("the host is neither an IP address nor a DNS name"))?;
            let tcp = TcpStream::connect((bare.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// An endpoint to dial, and how: plaintext (insecure) or through a `Connector`.
/// Configure the endpoint (timeouts, keep-alive) with `map`, then connect.
#[derive(Debug, Clone)]
pub struct Dial {
    pub(crate) endpoint: Endpoint,
    pub(crate) connector: Option<Connector>,
}

impl Dial {
    /// Sets the endpoint's options (connect timeout, request timeout, keep-alive).
    /// Socket options are the connector's: it always sets TCP_NODELAY.
    pub fn map(self, f: impl FnOnce(Endpoint) -> Endpoint) -> Self {
        Self {
            endpoint: f(self.endpoint),
            connector: self.connector,
        }
    }

    pub async fn connect(self) -> Result<Channel, tonic::transport::Error> {
        match self.connector {
            Some(c) => self.endpoint.connect_with_connector(c).await,
            None => self.endpoint.tcp_nodelay(true).connect().await,
        }
    }

    /// A channel that connects at its first request (and again after a failure).
    pub fn connect_lazy(self) -> Channel {
        match self.connector {
            Some(c) => self.endpoint.connect_with_connector_lazy(c),
            None => self.endpoint.tcp_nodelay(true).connect_lazy(),
        }
    }
}
