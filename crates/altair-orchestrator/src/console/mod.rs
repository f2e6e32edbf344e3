//! The read-only web console (`[console]`): the fleet, each cluster's topology, health,
//! readiness and failovers, served by every orchestrator from its own read of
//! ZooKeeper and the monitors (`collect`), with the same JSON as `/api/v1/...`
//! (`api`). Static assets are compiled in (`assets`). See docs/console.md.

mod api;
mod assets;
mod auth;
mod collect;
mod listener;
mod metrics;
mod recent;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_core::config::{ConsoleAuth, ConsoleConfig};
use altair_svc::Tls;
use altair_zk::Zk;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

/// How long one monitor may take to answer the collector.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `console.listen` now (a taken port fails the start, naming the key), then
/// serves and refreshes in the background until `shutdown`.
pub async fn start(
    cfg: &ConsoleConfig,
    tls: &Tls,
    session: Arc<Mutex<Option<Zk>>>,
    me: String,
    dns: altair_dns::DnsClient,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(listen) = cfg.listen else {
        return Ok(None);
    };
    let policy = Arc::new(auth::Policy::of(cfg)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("console.listen {listen}: cannot bind: {e}"))?;
    metrics::init();
    let refresh = Duration::from_millis(cfg.refresh_ms);
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(collect::Snapshot::default()));
    let demand = Arc::new(collect::Demand::default());
    let collector = collect::Collector {
        session: session.clone(),
        me,
        reader: altair_status::Reader::new(tls.clone(), MONITOR_TIMEOUT),
        refresh,
        demand: demand.clone(),
    };
    tokio::spawn(collector.run(tx, shutdown.clone()));
    let api = api::Api {
        snapshot: rx,
        session,
        dns,
        demand,
        recent: Arc::new(recent::Recent::new(refresh)),
    };
    let app = Router::new()
        .route("/", get(assets::index))
        .route("/console.js", get(assets::script))
        .route("/console.css", get(assets::style))
        .route("/api/v1/fleet", get(api::fleet))
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/clusters/{name}", get(api::cluster))
        .route("/api/v1/clusters/{name}/failovers/{id}", get(api::failover))
        .with_state(api)
        .layer(axum::middleware::from_fn_with_state(policy, auth::check))
        .layer(axum::middleware::map_response(harden));
    let scheme = match cfg.auth {
        ConsoleAuth::ClientCertificate => "https",
        ConsoleAuth::ProxyHeader => "http",
    };
    tracing::info!(listen = %listen, auth = ?cfg.auth, "serving the web console at {scheme}://{listen}/");
    let done = shutdown.clone();
    match cfg.auth {
        ConsoleAuth::ClientCertificate => {
            let l = listener::HttpsListener::new(listener, tls.clone(), shutdown.clone())?;
            let service = app.into_make_service_with_connect_info::<listener::Peer>();
            tokio::spawn(async move {
                let served = axum::serve(l, service)
                    .with_graceful_shutdown(async move { done.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "web console stopped");
                }
            });
        }
        ConsoleAuth::ProxyHeader => {
            let l = listener::HttpListener(listener);
            let service = app.into_make_service_with_connect_info::<listener::Peer>();
            tokio::spawn(async move {
                let served = axum::serve(l, service)
                    .with_graceful_shutdown(async move { done.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "web console stopped");
                }
            });
        }
    }
    Ok(Some(listen))
}

/// Headers every answer carries: nothing loads from elsewhere, nothing is framed or
/// cached (pages show live state).
async fn harden(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}
