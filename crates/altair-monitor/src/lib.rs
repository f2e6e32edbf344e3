//! altair-monitor is a fleet member (DESIGN §2–3). It will register in ZooKeeper, own
//! the clusters rendezvous hashing gives it, judge host health from agents' heartbeats
//! and publish transitions; today it loads and checks its configuration and serves the
//! standard gRPC health service on `monitor.listen`.

use altair_core::config::{ConfigErrors, MonitorConfig, SecretSource};
use altair_svc::{Secret, SecretReader, bind_listener, serve_grpc};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct MonitorSecrets {
    pub zookeeper_auth: Option<Secret>,
}

pub fn read_secrets(config: &MonitorConfig) -> Result<MonitorSecrets, ConfigErrors> {
    let mut r = SecretReader::default();
    let secrets = MonitorSecrets {
        zookeeper_auth: config
            .zookeeper
            .auth_file
            .as_ref()
            .map(|f| r.read(&SecretSource::File(f.clone()), "zookeeper.auth_file")),
    };
    r.finish(secrets)
}

pub async fn run(
    config: MonitorConfig,
    _secrets: MonitorSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let m = &config.monitor;
    let listener = bind_listener(m.listen)
        .await
        .with_context(|| format!("bind monitor.listen {}", m.listen))?;
    tracing::info!(monitor = %m.id, listen = %m.listen, "altair-monitor serving");
    serve_grpc(listener, |router| router, shutdown)
        .await
        .context("serve gRPC")
}
