//! altair-monitor is a fleet member (DESIGN §2–3). It registers an ephemeral znode with
//! its gRPC address, owns the clusters that rendezvous hashing over the live monitors
//! gives it, judges each host's health from its agent's heartbeats (healthy → suspect →
//! unreachable after N misses; mysql_down and replication_broken from the agent's
//! report), and publishes transitions only to ZooKeeper. A monitor that takes a cluster
//! over grants every host a full detection window before judging it.

mod metrics;
mod publish;
mod readiness;
mod reconcile;
mod register;
mod service;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_core::config::{ConfigErrors, MonitorConfig};
use altair_core::health::DetectorConfig;
use altair_core::registry::{MonitorRecord, to_json};
use altair_svc::{Secret, SecretReader, bind_listener, serve_grpc};
use altair_zk::{SessionLoop, Zk, follow_monitors, wait_session_end};
use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::reconcile::{lock, reconcile};
use crate::state::{Clock, State};

/// How often ownership is re-checked against ZooKeeper's cluster list (reads only).
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How often silence is judged.
const TICK_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct MonitorSecrets {
    pub zookeeper_auth: Option<Secret>,
    /// The ZooKeeper credential being rotated out (`zookeeper.previous_auth_file`).
    pub zookeeper_previous_auth: Option<Secret>,
    pub tls: altair_svc::Tls,
}

pub fn read_secrets(config: &MonitorConfig) -> Result<MonitorSecrets, ConfigErrors> {
    let mut r = SecretReader::default();
    let secrets = MonitorSecrets {
        zookeeper_auth: r.zookeeper_auth(&config.zookeeper),
        zookeeper_previous_auth: r.zookeeper_previous_auth(&config.zookeeper),
        tls: r.tls(&config.tls, |id| match id {
            altair_core::authz::Identity::Monitor(m)
                if m.as_str() == config.monitor.id.as_str() =>
            {
                Ok(())
            }
            other => Err(format!(
                "the certificate names {other}; this monitor is monitor/{}",
                config.monitor.id
            )),
        }),
    };
    // ZooKeeper's TLS files, read now so a bad one stops the start with its key named.
    r.check(altair_zk::tls::tls_options(&config.zookeeper));
    if let Err(e) = altair_zk::check_role(
        &config.zookeeper,
        secrets.zookeeper_auth.as_ref().map(Secret::expose),
        altair_zk::Role::Monitor,
    ) {
        r.reject("zookeeper.auth_file", e);
    }
    // The credential being rotated out must not be the orchestrators': the session
    // would hold it too, with every right.
    if let (Some((orchestrator, _)), Some(previous)) = (
        config.zookeeper.role_ids(),
        secrets.zookeeper_previous_auth.as_ref(),
    ) && altair_zk::digest_id(previous.expose()) == orchestrator
    {
        r.reject(
            "zookeeper.previous_auth_file",
            "holds the orchestrators' credential (zookeeper.orchestrator_id): a monitor keeps only monitors' credentials; leave it unset when moving from a shared credential",
        );
    }
    r.finish(secrets)
}

pub async fn run(
    config: MonitorConfig,
    secrets: MonitorSecrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    metrics::init();
    secrets.tls.log_start();
    let m = &config.monitor;
    let listener = bind_listener(m.listen)
        .await
        .with_context(|| format!("bind monitor.listen {}", m.listen))?;
    let clock = Clock::new();
    let detector = DetectorConfig {
        unreachable_after_misses: m.unreachable_after_misses,
        grace_ms: m.miss_grace_ms,
    };
    let mut initial = State::new(m.id.to_string(), detector, m.heartbeat_interval_ms);
    // A stall of half the session timeout may have cost the session (the client pings
    // every third of it): another monitor may have owned the clusters meanwhile. Set
    // again from the timeout the server grants at every new session.
    initial.stall_ms = config.zookeeper.session_timeout_ms / 2;
    let state = Arc::new(Mutex::new(initial));
    let (pub_tx, pub_rx) = mpsc::unbounded_channel();
    let (zk_tx, zk_rx) = watch::channel(None::<Zk>);
    let register_zk = zk_rx.clone();
    tokio::spawn(publish::run(pub_rx, zk_rx, shutdown.clone()));
    tokio::spawn(judge_silence(
        state.clone(),
        clock,
        pub_tx.clone(),
        shutdown.clone(),
    ));

    tokio::spawn(readiness::export(
        state.clone(),
        Duration::from_millis(m.readiness_interval_ms),
        shutdown.clone(),
    ));

    let me = MonitorRecord {
        id: m.id.to_string(),
        address: m.advertised_address(),
    };
    let sessions = SessionLoop::new(
        &config.zookeeper,
        secrets.zookeeper_auth.as_ref().map(|s| s.expose()),
        shutdown.clone(),
    )
    .with_previous(secrets.zookeeper_previous_auth.as_ref().map(|s| s.expose()));
    let (id, session_state, cancel) = (m.id.clone(), state.clone(), shutdown.clone());
    tokio::spawn(sessions.run(move |zk| {
        let (me, id, state, zk_tx, cancel) = (
            me.clone(),
            id.clone(),
            session_state.clone(),
            zk_tx.clone(),
            cancel.clone(),
        );
        async move {
            // The server may have granted another timeout than the configured one (it
            // clamps to its tickTime's bounds): the stall rule follows what it granted.
            let granted = u64::try_from(zk.session_timeout().as_millis()).unwrap_or(u64::MAX);
            if granted > 0 {
                lock(&state).stall_ms = granted / 2;
            }
            if zk.creates_clusters() {
                zk.ensure_layout().await?;
            } else {
                register::wait_for_layout(&zk, &cancel).await?;
                if cancel.is_cancelled() {
                    return Ok(());
                }
            }
            zk.register_ephemeral(&zk.layout().monitor(&id), &to_json(&me))
                .await?;
            tracing::info!(monitor = %me.id, address = %me.address, "registered in ZooKeeper");
            zk_tx.send_replace(Some(zk.clone()));
            let result = tokio::select! {
                r = follow_and_reconcile(&zk, &state, clock, &cancel) => r,
                s = wait_session_end(&zk) => {
                    tracing::warn!(state = ?s, "ZooKeeper session ended");
                    Ok(())
                }
            };
            // Without a session this monitor owns nothing: others take its clusters.
            zk_tx.send_replace(None);
            let mut st = lock(&state);
            st.monitors.clear();
            st.clusters.clear();
            result
        }
    }));

    tracing::info!(monitor = %m.id, listen = %m.listen, "altair-monitor serving");
    let service = service::MonitorService {
        state,
        clock,
        publish: pub_tx,
        zk: register_zk,
        registrations: register::Throttle::default(),
    };
    serve_grpc(
        listener,
        &secrets.tls,
        altair_core::authz::Server::Monitor,
        |router| {
            router.add_service(altair_proto::v1::monitor_server::MonitorServer::new(
                service,
            ))
        },
        shutdown,
    )
    .await
    .context("serve gRPC")
}

async fn follow_and_reconcile(
    zk: &Zk,
    state: &Arc<Mutex<State>>,
    clock: Clock,
    cancel: &CancellationToken,
) -> Result<(), altair_zk::ZkError> {
    let (tx, mut rx) = watch::channel(Vec::new());
    let follow = follow_monitors(zk, &tx, cancel);
    tokio::pin!(follow);
    let mut every = tokio::time::interval(RECONCILE_EVERY);
    loop {
        tokio::select! {
            r = &mut follow => return r,
            r = rx.changed() => {
                if r.is_err() { return Ok(()); }
                let monitors = rx.borrow().clone();
                tracing::info!(monitors = ?monitors.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), "monitor membership changed");
                lock(state).monitors = monitors;
                reconcile(zk, state, &clock).await?;
            }
            _ = every.tick() => reconcile(zk, state, &clock).await?,
            () = cancel.cancelled() => return Ok(()),
        }
    }
}

async fn judge_silence(
    state: Arc<Mutex<State>>,
    clock: Clock,
    publish: mpsc::UnboundedSender<state::Published>,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(TICK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        let transitions = lock(&state).tick(clock.now_ms());
        for t in transitions {
            let _ = publish.send(t);
        }
    }
}
