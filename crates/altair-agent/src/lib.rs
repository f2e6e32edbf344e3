//! altair-agent runs on every MySQL host (DESIGN §2). It will probe the local mysqld,
//! send heartbeats to the monitor that owns its cluster and execute host-side actions
//! for the orchestrator; today it loads and checks its configuration and secrets and
//! serves the standard gRPC health service on `agent.listen`.

use altair_core::config::{AgentConfig, ConfigErrors, SecretSource};
use altair_svc::{Secret, SecretReader, bind_listener, serve_grpc};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// The agent's secrets, read at start-up.
#[derive(Debug)]
pub struct AgentSecrets {
    pub mysql_password: Secret,
    pub replication_password: Secret,
    pub zookeeper_auth: Option<Secret>,
}

pub fn read_secrets(config: &AgentConfig) -> Result<AgentSecrets, ConfigErrors> {
    let mut r = SecretReader::default();
    let secrets = AgentSecrets {
        mysql_password: r.password(&config.mysql.credentials(), "mysql"),
        replication_password: r.password(&config.replication, "replication"),
        zookeeper_auth: config
            .zookeeper
            .auth_file
            .as_ref()
            .map(|f| r.read(&SecretSource::File(f.clone()), "zookeeper.auth_file")),
    };
    r.finish(secrets)
}

pub async fn run(
    config: AgentConfig,
    _secrets: AgentSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let a = &config.agent;
    let listener = bind_listener(a.listen)
        .await
        .with_context(|| format!("bind agent.listen {}", a.listen))?;
    tracing::info!(
        cluster = %a.cluster,
        host = %a.host,
        listen = %a.listen,
        mysql = %format!("{}:{}", config.mysql.host, config.mysql.port),
        "altair-agent serving"
    );
    serve_grpc(listener, |router| router, shutdown)
        .await
        .context("serve gRPC")
}
