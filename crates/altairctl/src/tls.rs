//! How altairctl dials the orchestrators and monitors (`[tls]` of its config), set once
//! by `main` before any call.

use std::sync::OnceLock;

use altair_core::authz_peer::Expected;
use altair_svc::Tls;
use tonic::transport::Endpoint;

static TLS: OnceLock<Tls> = OnceLock::new();

/// Sets the TLS material every call uses (the first call wins).
pub fn set(tls: Tls) {
    let _ = TLS.set(tls);
}

/// An endpoint for `host:port` with altairctl's certificate, the server required to be
/// `expected`; `Err` names the address.
pub fn endpoint(address: &str, expected: Expected) -> Result<Endpoint, String> {
    TLS.get()
        .ok_or_else(|| "internal: altairctl's [tls] settings are not loaded".to_owned())?
        .endpoint(address, expected)
}
