//! altair-orchestrator (DESIGN §2, §5–7): several run, one is elected leader in
//! ZooKeeper and only it acts. The leader watches each cluster's primary; when its
//! monitor reports it unreachable or mysql_down, the leader verifies (itself or any
//! replica can still connect → no failover), then runs the journaled failover: new epoch,
//! fence, choose, catch up, salvage, promote, repoint, publish DNS, record. Every write it
//! makes is a multi-op checked against its election node.

mod abort;
mod admission;
mod agents;
mod console;
mod ctx;
mod enrol;
mod failover;
mod forget;
mod hooks;
mod leader;
mod metrics;
mod operator;
mod pause;
mod rejoin;
mod reopen;
mod service;
mod stall;
mod topology;
mod view;
mod view_patch;
mod workers;

use std::sync::{Arc, Mutex};

use altair_core::registry::{MonitorRecord, to_json};
use altair_zk::{SessionLoop, Zk, wait_session_end};

use altair_core::config::{ConfigErrors, OrchestratorConfig, SecretSource};
use altair_dns::TsigKey;
use altair_svc::{Secret, SecretReader, bind_listener, serve_grpc};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

fn set<T>(slot: &Arc<Mutex<Option<T>>>, value: Option<T>) {
    if let Ok(mut s) = slot.lock() {
        *s = value;
    }
}

#[derive(Debug)]
pub struct OrchestratorSecrets {
    pub mysql_password: Secret,
    pub replication_password: Secret,
    pub tsig_key: Option<TsigKey>,
    pub zookeeper_auth: Option<Secret>,
    /// The ZooKeeper credential being rotated out (`zookeeper.previous_auth_file`).
    pub zookeeper_previous_auth: Option<Secret>,
    pub tls: altair_svc::Tls,
    /// TLS of the orchestrator's own sessions to primaries (`[mysql] tls`).
    pub mysql_tls: altair_svc::mysql_tls::MysqlTlsLoaded,
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
        mysql_tls: r.mysql_tls(&config.mysql.tls(), "mysql"),
        tsig_key,
        zookeeper_auth: r.zookeeper_auth(&config.zookeeper),
        zookeeper_previous_auth: r.zookeeper_previous_auth(&config.zookeeper),
        tls: r.tls(&config.tls, |id| match id {
            altair_core::authz::Identity::Orchestrator(_) => Ok(()),
            other => Err(format!(
                "the certificate names {other}; an orchestrator's names altair://orchestrator/<name>"
            )),
        }),
    };
    // ZooKeeper's TLS files, read now so a bad one stops the start with its key named.
    r.check(altair_zk::tls::tls_options(&config.zookeeper));
    if let Err(e) = altair_zk::check_role(
        &config.zookeeper,
        secrets.zookeeper_auth.as_ref().map(Secret::expose),
        altair_zk::Role::Orchestrator,
    ) {
        r.reject("zookeeper.auth_file", e);
    }
    r.finish(secrets)
}

pub async fn run(
    config: OrchestratorConfig,
    secrets: OrchestratorSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    secrets.tls.log_start();
    let tls = secrets.tls.clone();
    agents::set_tls(tls.clone());
    let listen = config.orchestrator.listen;
    let listener = bind_listener(listen)
        .await
        .with_context(|| format!("bind orchestrator.listen {listen}"))?;
    let o = &config.orchestrator;
    let dns = altair_dns::DnsClient::new(
        config.dns.server,
        &config.dns.zone,
        secrets.tsig_key.clone(),
    )
    .context("set up the DNS client")?;
    let dns_for_reads = dns.clone();
    let dns_for_console = dns.clone();
    metrics::init();
    let me = MonitorRecord {
        id: o.id.to_string(),
        address: o.advertised_address(),
    };
    let session_slot: Arc<Mutex<Option<Zk>>> = Arc::new(Mutex::new(None));
    let leader_slot: Arc<Mutex<Option<ctx::Ctx>>> = Arc::new(Mutex::new(None));
    let config = Arc::new(config);
    let secrets = Arc::new(secrets);
    let sessions = SessionLoop::new(
        &config.zookeeper,
        secrets.zookeeper_auth.as_ref().map(|s| s.expose()),
        shutdown.clone(),
    )
    .with_previous(secrets.zookeeper_previous_auth.as_ref().map(|s| s.expose()));
    let (s_slot, l_slot, cancel, cfg, sec, me2) = (
        session_slot.clone(),
        leader_slot.clone(),
        shutdown.clone(),
        config.clone(),
        secrets.clone(),
        me.clone(),
    );
    tokio::spawn(sessions.run(move |zk| {
        let (s_slot, l_slot, cancel, cfg, sec, me, dns) = (
            s_slot.clone(),
            l_slot.clone(),
            cancel.clone(),
            cfg.clone(),
            sec.clone(),
            me2.clone(),
            dns.clone(),
        );
        async move {
            zk.ensure_layout().await?;
            set(&s_slot, Some(zk.clone()));
            let node = zk
                .create_candidate(&zk.layout().election_candidate_prefix(), &to_json(&me))
                .await?;
            let work = async {
                leader::await_leadership(&zk, &node).await?;
                let ctx = ctx::Ctx {
                    zk: zk.clone(),
                    guard: node.clone(),
                    admission: Arc::new(admission::Admission::new(&cfg.admission)),
                    config: cfg,
                    secrets: sec,
                    dns,
                };
                set(&l_slot, Some(ctx.clone()));
                metrics::LEADER.set(1);
                let led = leader::lead(ctx, me, cancel.clone()).await;
                metrics::LEADER.set(0);
                led
            };
            let result = tokio::select! {
                r = work => r,
                s = wait_session_end(&zk) => {
                    tracing::warn!(state = ?s, "ZooKeeper session ended: not leading any more");
                    Ok(())
                }
                () = cancel.cancelled() => Ok(()),
            };
            set(&l_slot, None);
            set(&s_slot, None);
            // What only the leader knows goes with the leadership (however it ended).
            metrics::LEADER.set(0);
            metrics::clear_pauses();
            admission::clear_metrics();
            if let Err(e) = &result {
                tracing::error!(error = %e, "stepped down");
            }
            // Leave the election: a new session starts a new candidacy.
            let _ = zk.delete(&node).await;
            result
        }
    }));
    console::start(
        &config.console,
        &tls,
        session_slot.clone(),
        me.id.clone(),
        dns_for_console,
        shutdown.clone(),
    )
    .await?;
    let admin = service::AdminService {
        me: me.id.clone(),
        session: session_slot,
        leader: leader_slot,
        dns: dns_for_reads,
    };
    tracing::info!(orchestrator = %config.orchestrator.id, listen = %config.orchestrator.listen, zone = %config.dns.zone, "altair-orchestrator serving");
    serve_grpc(
        listener,
        &tls,
        altair_core::authz::Server::Orchestrator,
        |router| {
            router
                .add_service(altair_proto::v1::orchestrator_server::OrchestratorServer::new(admin))
        },
        shutdown,
    )
    .await
    .context("serve gRPC")
}
