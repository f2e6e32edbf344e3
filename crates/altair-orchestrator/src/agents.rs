//! Talking to agents and to MySQL directly, always bounded in time.

use std::time::Duration;

use altair_proto::v1::agent_client::AgentClient;
use altair_svc::Secret;
use tonic::transport::{Channel, Endpoint};

/// A client for the agent at `address` (`host:port`), connected within `timeout`; each
/// request on it must answer within `timeout` too.
pub async fn agent(address: &str, timeout: Duration) -> Result<AgentClient<Channel>, String> {
    agent_with_deadline(address, timeout, timeout).await
}

/// A client connected within `connect` whose requests carry `deadline` (sent as the gRPC
/// timeout, so the agent stops at the same instant).
pub async fn agent_with_deadline(
    address: &str,
    connect: Duration,
    deadline: Duration,
) -> Result<AgentClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("bad agent address {address}: {e}"))?
        .connect_timeout(connect)
        .timeout(deadline);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("agent {address} unreachable: {e}"))?;
    Ok(AgentClient::new(channel))
}

/// Can the orchestrator itself open a MySQL session to `mysql` (`host:port`)?
pub async fn mysql_reachable(
    mysql: &str,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> bool {
    let Some((host, port)) = mysql.rsplit_once(':') else {
        return false;
    };
    let Ok(port) = port.parse::<u16>() else {
        return false;
    };
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port)
        .user(Some(user.to_owned()))
        .pass(Some(password.expose().to_owned()))
        .prefer_socket(false)
        .into();
    match tokio::time::timeout(timeout, mysql_async::Conn::new(opts)).await {
        Ok(Ok(conn)) => {
            drop(conn);
            true
        }
        _ => false,
    }
}

/// `host:port` → the endpoint message.
pub fn endpoint(mysql: &str) -> Option<altair_proto::v1::Endpoint> {
    let (host, port) = mysql.rsplit_once(':')?;
    Some(altair_proto::v1::Endpoint {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}
