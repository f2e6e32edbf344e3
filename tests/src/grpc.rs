//! A test's own gRPC client: dials an altair service over mutual TLS with a certificate
//! of the fleet's CA for the identity the test acts as.

use altair_core::config::TlsConfig;
use altair_proto::v1::agent_client::AgentClient;
use altair_testkit::fleet::Fleet;
use altair_testkit::pki::TlsFiles;
use tonic::transport::Channel;

/// What an orchestrator's certificate may do.
pub const ORCHESTRATOR: &str = "altair://orchestrator/test";

/// The TLS settings of `files`, as a service would load them.
pub fn tls_of(files: &TlsFiles) -> altair_svc::Tls {
    altair_svc::Tls::load(&TlsConfig {
        ca_file: Some(files.ca.clone()),
        cert_file: Some(files.cert.clone()),
        key_file: Some(files.key.clone()),
        ..TlsConfig::default()
    })
    .expect("the test's client certificate loads")
}

/// A certificate file name for `uri` (unique per identity).
fn file_for(uri: &str) -> String {
    format!(
        "client-{}",
        uri.trim_start_matches("altair://")
            .replace(['/', '?', '='], "-")
    )
}

/// A channel to `address` as `uri`.
pub async fn dial_as(fleet: &Fleet, address: &str, uri: &str) -> Result<Channel, String> {
    let files = fleet
        .client_tls(&file_for(uri), uri)
        .map_err(|e| e.to_string())?;
    tls_of(&files)
        .endpoint(address, altair_core::authz_peer::Expected::Any)?
        .connect()
        .await
        .map_err(|e| format!("connect to {address}: {e}"))
}

/// The agent `i` of the fleet, called as an orchestrator.
pub async fn agent(fleet: &Fleet, i: usize) -> AgentClient<Channel> {
    let address = &fleet.agents[i].address;
    AgentClient::new(
        dial_as(fleet, address, ORCHESTRATOR)
            .await
            .expect("connect to the agent"),
    )
}

/// The agent `i` of the fleet, called as an orchestrator over a connection kept alive as
/// the orchestrator keeps its own: an HTTP/2 ping every `ping_every` while a request is in
/// flight, the connection closed when one goes unanswered for `ping_timeout`.
pub async fn agent_kept_alive(
    fleet: &Fleet,
    i: usize,
    ping_every: std::time::Duration,
    ping_timeout: std::time::Duration,
) -> AgentClient<Channel> {
    let address = &fleet.agents[i].address;
    let files = fleet
        .client_tls(&file_for(ORCHESTRATOR), ORCHESTRATOR)
        .expect("an orchestrator certificate");
    let channel = tls_of(&files)
        .endpoint(address, altair_core::authz_peer::Expected::Any)
        .expect("an endpoint")
        .http2_keep_alive_interval(ping_every)
        .keep_alive_timeout(ping_timeout)
        .keep_alive_while_idle(false)
        .connect()
        .await
        .expect("connect to the agent");
    AgentClient::new(channel)
}

/// A viewer's TLS settings (status reads).
pub fn viewer(fleet: &Fleet) -> altair_svc::Tls {
    let uri = "altair://operator/test-viewer?role=viewer";
    tls_of(
        &fleet
            .client_tls(&file_for(uri), uri)
            .expect("a viewer certificate"),
    )
}
