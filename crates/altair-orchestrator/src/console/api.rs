//! `GET /api/v1/...`: the console's JSON API (the page uses nothing else). Shapes are
//! documented in the README ("The web console"); fields are only ever added.

use std::sync::Arc;

use altair_core::ClusterName;
use altair_status::{ClusterStatus, ClusterSummary, FailoverView};
use altair_zk::Zk;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::watch;

use super::auth::Viewer;
use super::collect::{Demand, Snapshot};
use super::recent::Recent;

/// Failovers a cluster page shows.
const HISTORY_SHOWN: usize = 10;

#[derive(Clone)]
pub struct Api {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub session: Arc<std::sync::Mutex<Option<Zk>>>,
    pub dns: altair_dns::DnsClient,
    pub demand: Arc<Demand>,
    /// A cluster page's DNS answers and failovers, shared for a refresh.
    pub recent: Arc<Recent<Live>>,
}

/// What a cluster page reads beyond the fleet's picture.
pub struct Live {
    dns: Vec<DnsRecord>,
    failovers: Vec<FailoverView>,
}

/// An error as JSON: `{"error": "..."}` with its status.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
    }
}

impl Api {
    fn zk(&self) -> Result<Zk, ApiError> {
        self.session
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| {
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this orchestrator has no ZooKeeper session".into(),
                )
            })
    }

    fn cluster(&self, name: &str) -> Result<(ClusterName, ClusterStatus, u64), ApiError> {
        let c = ClusterName::new(name.to_owned())
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("cluster: {e}")))?;
        let snap = self.snapshot.borrow().clone();
        let found = snap
            .status
            .as_ref()
            .and_then(|s| s.clusters.iter().find(|x| x.name == c.as_str()).cloned());
        match found {
            Some(status) => Ok((c, status, snap.collected_at_ms)),
            None => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no cluster {c} (the fleet page lists them)"),
            )),
        }
    }
}

pub async fn fleet(State(api): State<Api>) -> Response {
    api.demand.touch();
    let body = api.snapshot.borrow().fleet_json.clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Serialize)]
pub struct WhoAmI {
    user: String,
}

pub async fn whoami(axum::Extension(Viewer(user)): axum::Extension<Viewer>) -> Json<WhoAmI> {
    Json(WhoAmI { user })
}

/// One DNS name the orchestrator publishes and what the server answers now.
#[derive(Clone, Serialize)]
pub struct DnsRecord {
    name: String,
    addresses: Vec<String>,
    /// The server did not answer, or the name does not exist.
    error: Option<String>,
}

/// The body of `GET /api/v1/clusters/{name}`.
#[derive(Serialize)]
pub struct ClusterBody {
    collected_at_unix_ms: u64,
    summary: ClusterSummary,
    cluster: ClusterStatus,
    dns: Vec<DnsRecord>,
    /// The failover in progress first, then the last ones, newest first.
    failovers: Vec<FailoverView>,
}

pub async fn cluster(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<ClusterBody>, ApiError> {
    api.demand.touch();
    let (c, status, collected_at_ms) = api.cluster(&name)?;
    let live = match api.recent.get(c.as_str()) {
        Some(live) => live,
        None => {
            let live = Arc::new(read_live(&api, &c).await?);
            api.recent.put(c.as_str(), live.clone());
            live
        }
    };
    Ok(Json(ClusterBody {
        collected_at_unix_ms: collected_at_ms,
        summary: ClusterSummary::of(&status),
        cluster: status,
        dns: live.dns.clone(),
        failovers: live.failovers.clone(),
    }))
}

/// The cluster's DNS records as the server answers them now, and its last failovers.
async fn read_live(api: &Api, c: &ClusterName) -> Result<Live, ApiError> {
    let zk = api.zk()?;
    let lookup = |label: String| {
        let dns = api.dns.clone();
        async move {
            let name = dns
                .fqdn(&label)
                .map(|n| n.to_string())
                .unwrap_or(label.clone());
            match dns.query_a(&label).await {
                Ok(a) => DnsRecord {
                    name,
                    addresses: a.iter().map(ToString::to_string).collect(),
                    error: None,
                },
                Err(e) => DnsRecord {
                    name,
                    addresses: Vec::new(),
                    error: Some(e.to_string()),
                },
            }
        }
    };
    let (primary, replicas, failovers) = tokio::join!(
        lookup(format!("primary.{c}")),
        lookup(format!("replicas.{c}")),
        altair_status::history(&zk, c, HISTORY_SHOWN),
    );
    let failovers = failovers
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("ZooKeeper: {e}")))?;
    Ok(Live {
        dns: vec![primary, replicas],
        failovers,
    })
}

pub async fn failover(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<FailoverView>, ApiError> {
    api.demand.touch();
    let (c, _, _) = api.cluster(&name)?;
    let ok_id = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok_id {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a failover id"),
        ));
    }
    let zk = api.zk()?;
    match altair_status::failover(&zk, &c, &id).await {
        Ok(Some(f)) => Ok(Json(f)),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("cluster {c} has no failover {id}"),
        )),
        Err(e) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ZooKeeper: {e}"),
        )),
    }
}
