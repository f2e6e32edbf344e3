//! Prometheus metrics: one registry per process, served as text on `GET /metrics` at
//! `[metrics] listen`. Each service registers its own metrics at start-up.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};
use tokio_util::sync::CancellationToken;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Label sets are plain name/value pairs.
pub type Labels = Vec<(&'static str, String)>;

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Registry::with_prefix("altair")))
}

/// Registers `metric` as `altair_<name>` (counters get `_total` appended).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    if let Ok(mut r) = registry().lock() {
        r.register(name, help, metric);
    }
}

/// The registry in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    if let Ok(r) = registry().lock() {
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
    }
    out
}

/// Counts a gRPC call the authorization layer refused (by method and code).
pub fn refused(path: &str, code: tonic::Code) {
    static REFUSED: OnceLock<Family<Labels, Counter>> = OnceLock::new();
    let family = REFUSED.get_or_init(|| {
        let f = Family::<Labels, Counter>::default();
        register(
            "grpc_refused",
            "gRPC calls refused before their handler: no or bad client certificate (Unauthenticated; method tls_handshake: a certificate the CA did not sign) or a caller the policy does not allow (PermissionDenied)",
            f.clone(),
        );
        f
    });
    // The method path is bounded by the policy table for allowed calls, but a refused
    // caller may send anything: keep only the known service prefix.
    let method = match path.rsplit_once('/') {
        Some((svc, m)) if svc.starts_with("/altair.v1.") && m.len() <= 40 => path.to_owned(),
        _ if path == "tls_handshake" => path.to_owned(),
        _ => "other".to_owned(),
    };
    family
        .get_or_create(&vec![("method", method), ("code", format!("{code:?}"))])
        .inc();
}

/// Buckets for durations in seconds: 1 ms to about 65 s.
pub fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
}

/// A histogram family of durations in seconds.
pub fn duration_family() -> Family<Labels, Histogram> {
    Family::new_with_constructor(|| Histogram::new(duration_buckets()))
}

/// Binds `addr` now (a taken port is a start-up error naming it) and serves until
/// `cancel`.
pub async fn serve_metrics(addr: SocketAddr, cancel: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen {addr}: cannot bind: {e}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                render(),
            )
        }),
    );
    tracing::info!(listen = %addr, "serving Prometheus metrics on /metrics");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(())
}
