//! Checking who answered when dialling an altair service over mutual TLS: the server's
//! certificate must verify against the CA, name the address dialled (as any TLS client
//! checks) and name the identity the caller meant to reach
//! (`altair_core::authz_peer::Expected`). tonic's TLS client is given this verifier
//! (`Endpoint::tls_config_with_verifier`); it does the first two checks through
//! rustls' own WebPKI verifier, then the third.

use std::sync::Arc;

use altair_core::authz_peer::Expected;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// How a refusal for naming another identity begins (callers tell it from "unreachable").
pub const REFUSED_IDENTITY: &str = "the server's certificate names";

/// Why a server's certificate was refused (carried in a rustls error).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

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
        let refuse = |why: String| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(Refused(why)),
            )))
        };
        let id = crate::tls::identity_of_der(end_entity)
            .map_err(|e| refuse(format!("the server's certificate: {e}")))?;
        if !self.expected.admits(&id) {
            return Err(refuse(format!(
                "{REFUSED_IDENTITY} {id}, not {}",
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

/// An error and its causes, one after another: a transport error's own text ("transport
/// error") says nothing; the reason (a refused handshake, the identity a certificate
/// names, a timeout) is in its sources.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
