//! `altairctl ping`: does every configured orchestrator answer?

use std::time::{Duration, Instant};

use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Serialize)]
pub struct PingResult {
    pub address: String,
    pub serving: bool,
    /// "SERVING", or what went wrong.
    pub status: String,
    pub elapsed_ms: u64,
}

/// Asks `address`'s standard gRPC health service, bounded by `timeout`.
pub async fn ping(address: &str, timeout: Duration) -> PingResult {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, check(address)).await;
    let (serving, status) = match outcome {
        Ok(Ok(ServingStatus::Serving)) => (true, "SERVING".to_owned()),
        Ok(Ok(other)) => (false, other.as_str_name().to_owned()),
        Ok(Err(e)) => (false, e),
        Err(_) => (
            false,
            format!("no answer within {} ms", timeout.as_millis()),
        ),
    };
    PingResult {
        address: address.to_owned(),
        serving,
        status,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

async fn check(address: &str) -> Result<ServingStatus, String> {
    // Any altair service answers a ping: orchestrator, monitor or agent.
    let channel = crate::tls::endpoint(address, altair_core::authz_peer::Expected::Any)?
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {}", altair_svc::dial::describe(&e)))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| format!("health check failed: {}", s.message()))?;
    Ok(response.into_inner().status())
}
