//! altair-agent runs on every MySQL host (DESIGN §2–3): it probes the local mysqld every
//! second, sends a heartbeat every 10 s to the monitor that owns its cluster (and one at
//! once on any change of state), registers its host in ZooKeeper, and serves the agent
//! gRPC API (status, "can you reach MySQL at X"). Fencing, salvage and promotion arrive
//! with the orchestrator.

mod actions;
mod apply_durability;
mod binlog_files;
mod deadline;
mod fence_targets;
mod heartbeat;
mod killer;
mod metrics;
mod mysql;
mod notrunning;
mod peers;
mod probe;
mod promoted;
mod register;
mod rejoin;
mod salvage;
mod selffence;
mod semisync;
mod service;
mod write_probe;

use std::sync::Arc;
use std::time::Duration;

use altair_core::config::{AgentConfig, ConfigErrors};
use altair_core::registry::HostRecord;
use altair_proto::v1::{Endpoint, HostRef, HostRegistration, MysqlSnapshot};
use altair_svc::mysql_tls::MysqlTlsLoaded;
use altair_svc::{Secret, SecretReader, bind_listener, serve_grpc};
use altair_zk::{SessionLoop, follow_monitors, wait_session_end};
use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The agent's secrets, read at start-up.
#[derive(Debug)]
pub struct AgentSecrets {
    pub mysql_password: Secret,
    pub replication_password: Secret,
    /// The `[probe]` account's password (`CheckReachability`), when one is configured.
    pub probe_password: Option<Secret>,
    pub tls: altair_svc::Tls,
    /// TLS of the sessions to the local mysqld (`[mysql] tls`).
    pub mysql_tls: MysqlTlsLoaded,
    /// TLS of replication from the primary (`[replication] tls`: `CHANGE MASTER`).
    pub replication_tls: MysqlTlsLoaded,
    /// TLS of `CheckReachability`'s sessions (`[probe] tls`, else `[mysql]`'s).
    pub probe_tls: MysqlTlsLoaded,
}

pub fn read_secrets(config: &AgentConfig) -> Result<AgentSecrets, ConfigErrors> {
    let mut r = SecretReader::default();
    let secrets = AgentSecrets {
        mysql_password: r.password(&config.mysql.credentials(), "mysql"),
        replication_password: r.password(&config.replication, "replication"),
        probe_password: config.probe.as_ref().map(|p| r.password(p, "probe")),
        mysql_tls: r.mysql_tls(&config.mysql.credentials().tls(), "mysql"),
        replication_tls: r.mysql_tls(&config.replication.tls(), "replication"),
        probe_tls: match &config.probe {
            Some(p) => r.mysql_tls(&p.tls(), "probe"),
            None => r.mysql_tls(&config.mysql.credentials().tls(), "mysql"),
        },
        tls: r.tls(&config.tls, |id| {
            let me = &config.agent;
            match id {
                altair_core::authz::Identity::Agent { cluster, host }
                    if *cluster == me.cluster && *host == me.host =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "the certificate names {other}; this agent is agent/{}/{}",
                    me.cluster, me.host
                )),
            }
        }),
    };
    // ZooKeeper's TLS files, read now so a bad one stops the start with its key named.
    r.check(altair_zk::tls::tls_options(&config.zookeeper));
    r.finish(secrets)
}

/// The epoch accepted before a restart (`<state_dir>/epoch`), 0 when none.
fn read_epoch(state_dir: &std::path::Path) -> u64 {
    let path = state_dir.join("epoch");
    match std::fs::read_to_string(&path) {
        Ok(text) => match altair_core::epoch::from_file(&text) {
            Ok(e) => {
                tracing::info!(epoch = e, "accepted epoch restored");
                e
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "the epoch file is unreadable: starting from 0 (ZooKeeper's epoch still bounds what is accepted)");
                0
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the epoch file: starting from 0");
            0
        }
    }
}

fn registration(config: &AgentConfig) -> (HostRecord, HostRegistration) {
    let a = &config.agent;
    let mysql = config.mysql.advertised_address();
    let (mhost, mport) = mysql.rsplit_once(':').unwrap_or((mysql.as_str(), "3306"));
    let record = HostRecord {
        cluster: a.cluster.to_string(),
        host: a.host.to_string(),
        datacenter: a.datacenter.clone(),
        mysql: mysql.clone(),
        agent: a.advertised_address(),
        promotion_rule: a.promotion_rule,
        self_fence_after_ms: Some(a.self_fence_after()),
        probe_interval_ms: Some(a.probe_interval_ms),
        durability: a.durability,
    };
    let wire = HostRegistration {
        id: Some(HostRef {
            cluster: a.cluster.to_string(),
            host: a.host.to_string(),
        }),
        datacenter: a.datacenter.clone(),
        mysql: Some(Endpoint {
            host: mhost.to_owned(),
            port: mport.parse().unwrap_or(3306),
        }),
        agent_address: a.advertised_address(),
        promotion_rule: altair_proto::v1::PromotionRule::from(a.promotion_rule) as i32,
    };
    (record, wire)
}

pub async fn run(
    config: AgentConfig,
    secrets: AgentSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    metrics::init();
    secrets.tls.log_start();
    let a = &config.agent;
    let listener = bind_listener(a.listen)
        .await
        .with_context(|| format!("bind agent.listen {}", a.listen))?;
    let (record, wire) = registration(&config);
    let (snap_tx, snap_rx) = watch::channel(Arc::new(MysqlSnapshot::default()));
    let (mon_tx, mon_rx) = watch::channel(Vec::new());

    let facts = Arc::new(std::sync::Mutex::new(probe::ServerFacts::default()));
    let admin_opts = mysql::opts(
        &config.mysql.host,
        config.mysql.port,
        &config.mysql.user,
        &secrets.mysql_password,
        &secrets.mysql_tls,
    );
    let reprobe = Arc::new(tokio::sync::Notify::new());
    let (zk_tx, zk_rx) = watch::channel(None);
    let zk_tx = Arc::new(zk_tx);
    let accepted = read_epoch(&config.agent.state_dir);
    let actions = Arc::new(actions::Actions {
        opts: admin_opts,
        host: config.mysql.host.clone(),
        port: config.mysql.port,
        admin_user: config.mysql.user.clone(),
        admin_password: secrets.mysql_password.clone(),
        repl_user: config.replication.user.clone(),
        repl_password: secrets.replication_password.clone(),
        admin_tls: secrets.mysql_tls.clone(),
        repl_tls: secrets.replication_tls.clone(),
        facts: facts.clone(),
        epoch: std::sync::atomic::AtomicU64::new(accepted),
        // Until ZooKeeper is read, the last accepted epoch stands for the cluster's.
        cluster_epoch: std::sync::atomic::AtomicU64::new(accepted),
        cluster: config.agent.cluster.clone(),
        zk: zk_rx,
        epoch_file: std::sync::Mutex::new(()),
        state_dir: config.agent.state_dir.clone(),
        reprobe: reprobe.clone(),
        semi_sync: (a.durability == altair_core::config::Durability::SemiSync).then(|| {
            semisync::SemiSync {
                timeout_ms: a.semi_sync_timeout(),
                ackers: a.semi_sync_ackers,
            }
        }),
        apply_lock: tokio::sync::Mutex::new(()),
        killer: Arc::default(),
    });
    tokio::spawn({
        let (killer, opts) = (actions.killer.clone(), actions.opts.clone());
        async move { killer.warm(opts).await }
    });
    let write_state = Arc::new(write_probe::WriteState::default());
    let probe = probe::ProbeSettings {
        facts,
        opts: mysql::opts(
            &config.mysql.host,
            config.mysql.port,
            &config.mysql.user,
            &secrets.mysql_password,
            &secrets.mysql_tls,
        ),
        interval: Duration::from_millis(a.probe_interval_ms),
        timeout: Duration::from_millis(a.probe_timeout_ms),
        connect_timeout: Duration::from_millis(config.mysql.connect_timeout_ms),
        wake: reprobe.clone(),
        semi_sync: actions.semi_sync.is_some(),
        write: write_state.clone(),
    };
    tokio::spawn(apply_durability::restore_leftover(
        actions.opts.clone(),
        actions.state_dir.clone(),
        shutdown.clone(),
    ));
    let semi_sync_rx = snap_tx.subscribe();
    if a.write_stall_after_ms > 0 {
        tokio::spawn(write_probe::run(
            actions.clone(),
            write_state,
            snap_tx.subscribe(),
            (
                Duration::from_millis(a.probe_interval_ms),
                Duration::from_millis(a.write_stall_after_ms),
            ),
            shutdown.clone(),
        ));
    }
    tokio::spawn(probe::run(probe, snap_tx, shutdown.clone()));
    if actions.semi_sync.is_some() {
        tokio::spawn(semisync::reconcile(
            actions.clone(),
            semi_sync_rx,
            shutdown.clone(),
        ));
    }

    if config.zookeeper.auth_file.is_some() || config.zookeeper.previous_auth_file.is_some() {
        tracing::warn!(
            "zookeeper.auth_file is set but an agent no longer uses it: it only reads ZooKeeper (its monitor writes its host record); remove the file and the key so this database host holds no credential that can change altair's state"
        );
    }
    let sessions = SessionLoop::reader(&config.zookeeper, shutdown.clone());
    let register_monitors = mon_rx.clone();
    let register_tls = secrets.tls.clone();
    // Heartbeats start once the host is registered: a monitor publishes a host's health
    // only while its record exists, so a first "healthy" judged before it would be lost.
    let (registered_tx, registered_rx) = watch::channel(false);
    let registered_tx = Arc::new(registered_tx);
    let zk_record = record.clone();
    let (cluster, host) = (a.cluster.clone(), a.host.clone());
    let cancel = shutdown.clone();
    let contact = Arc::new(selffence::Contact::new());
    let zk_contact = contact.clone();
    let zk_actions = actions.clone();
    tokio::spawn(sessions.run(move |zk| {
        let record = zk_record.clone();
        let (cluster, host) = (cluster.clone(), host.clone());
        let mon_tx = mon_tx.clone();
        let cancel = cancel.clone();
        let contact = zk_contact.clone();
        let actions = zk_actions.clone();
        let (monitors, tls) = (register_monitors.clone(), register_tls.clone());
        let registered = registered_tx.clone();
        zk_tx.send_replace(Some(zk.clone()));
        let zk_tx = zk_tx.clone();
        async move {
            let result = async {
                let path = zk.layout().host(&cluster, &host);
                tokio::select! {
                    r = register::keep(&zk, &path, &record, monitors, &tls, &registered) => r,
                    r = follow_monitors(&zk, &mon_tx, &cancel) => r,
                    r = peers::follow(&zk, &cluster, &host, &contact, &actions.cluster_epoch) => r,
                    state = wait_session_end(&zk) => {
                        tracing::warn!(?state, "ZooKeeper session ended");
                        Ok(())
                    }
                }
            }
            .await;
            // No session: an epoch check does not wait on a dead one.
            zk_tx.send_replace(None);
            result
        }
    }));

    tokio::spawn(selffence::run(
        contact.clone(),
        snap_rx.clone(),
        actions.clone(),
        (a.host.to_string(), a.self_fence_after()),
        Duration::from_millis(a.probe_interval_ms),
        shutdown.clone(),
    ));
    let heartbeater = heartbeat::Heartbeater {
        contact: contact.clone(),
        cluster: a.cluster.to_string(),
        registration: wire.clone(),
        interval: Duration::from_millis(a.heartbeat_interval_ms),
        ping_every: (a.liveness_interval_ms > 0)
            .then(|| Duration::from_millis(a.liveness_interval_ms)),
        snapshots: snap_rx.clone(),
        monitors: mon_rx,
        cancel: shutdown.clone(),
        tls: secrets.tls.clone(),
    };
    tokio::spawn(heartbeater.run_once_registered(registered_rx));

    tracing::info!(
        cluster = %a.cluster,
        host = %a.host,
        listen = %a.listen,
        mysql = %record.mysql,
        "altair-agent serving"
    );
    // CheckReachability's account: the unprivileged `[probe]` one, else the admin's.
    let (probe_user, probe_password) = match (&config.probe, &secrets.probe_password) {
        (Some(p), Some(password)) => (p.user.clone(), password.clone()),
        _ => {
            tracing::warn!(
                user = %config.mysql.user,
                "no [probe] account: CheckReachability logs in to this cluster's other mysqlds as the admin user; configure an account with USAGE only"
            );
            (config.mysql.user.clone(), secrets.mysql_password.clone())
        }
    };
    let service = service::AgentService {
        contact,
        actions,
        registration: wire,
        snapshots: snap_rx,
        probe_user: probe_user.clone(),
        probe_password: probe_password.clone(),
        probe_tls: secrets.probe_tls.clone(),
    };
    serve_grpc(
        listener,
        &secrets.tls,
        altair_core::authz::Server::Agent {
            cluster: a.cluster.clone(),
        },
        |router| router.add_service(altair_proto::v1::agent_server::AgentServer::new(service)),
        shutdown,
    )
    .await
    .context("serve gRPC")
}
