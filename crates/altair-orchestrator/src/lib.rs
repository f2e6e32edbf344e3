//! altair-orchestrator (DESIGN §2, §5–7): several run, one is the leader; it verifies
//! failures and runs failover, fencing, DNS publication and switchover. Today it loads
//! and checks its configuration and secrets (including that the TSIG secret is a usable
//! key) and serves the standard gRPC health service on `orchestrator.listen`.

use altair_core::config::{ConfigErrors, OrchestratorConfig, SecretSource};
use altair_dns::TsigKey;
use altair_svc::{Secret, SecretReader, bind_listener, serve_grpc};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct OrchestratorSecrets {
    pub mysql_password: Secret,
    pub replication_password: Secret,
    pub tsig_key: Option<TsigKey>,
    pub zookeeper_auth: Option<Secret>,
}

pub fn read_secrets(config: &OrchestratorConfig) -> Result<OrchestratorSecrets, ConfigErrors> {
    let mut r = SecretReader::default();
    let dns = &config.dns;
    let tsig_secret = r.read(
        &SecretSource::File(dns.tsig_secret_file.clone()),
        "dns.tsig_secret_file",
    );
    let tsig_key = if tsig_secret.expose().is_empty() {
        None
    } else {
        match TsigKey::new(
            &dns.tsig_key_name,
            &dns.tsig_algorithm,
            tsig_secret.expose(),
        ) {
            Ok(key) => Some(key),
            Err(e) => {
                r.reject("dns.tsig_secret_file", e.to_string());
                None
            }
        }
    };
    let secrets = OrchestratorSecrets {
        mysql_password: r.password(&config.mysql, "mysql"),
        replication_password: r.password(&config.replication, "replication"),
        tsig_key,
        zookeeper_auth: r.zookeeper_auth(&config.zookeeper),
    };
    r.finish(secrets)
}

pub async fn run(
    config: OrchestratorConfig,
    _secrets: OrchestratorSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let o = &config.orchestrator;
    let listener = bind_listener(o.listen)
        .await
        .with_context(|| format!("bind orchestrator.listen {}", o.listen))?;
    tracing::info!(orchestrator = %o.id, listen = %o.listen, zone = %config.dns.zone, "altair-orchestrator serving");
    serve_grpc(listener, |router| router, shutdown)
        .await
        .context("serve gRPC")
}
