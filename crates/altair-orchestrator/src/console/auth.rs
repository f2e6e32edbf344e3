//! Who may read the console: a client certificate naming an operator (any role), or the
//! user an authenticating proxy names in its header, believed only from the proxy's
//! addresses. The console changes nothing: only GET and HEAD are served.

use std::net::IpAddr;
use std::sync::Arc;

use altair_core::authz::Identity;
use altair_core::config::{ConsoleAuth, ConsoleConfig};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::listener::Peer;

/// The reader a request was allowed for (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Viewer(pub String);

#[derive(Debug)]
pub enum Policy {
    ClientCertificate,
    ProxyHeader {
        header: HeaderName,
        trusted: Vec<IpAddr>,
    },
}

impl Policy {
    pub fn of(cfg: &ConsoleConfig) -> anyhow::Result<Self> {
        Ok(match cfg.auth {
            ConsoleAuth::ClientCertificate => Self::ClientCertificate,
            ConsoleAuth::ProxyHeader => Self::ProxyHeader {
                header: HeaderName::from_bytes(cfg.proxy_header.as_bytes()).map_err(|e| {
                    anyhow::anyhow!("console.proxy_header {:?}: {e}", cfg.proxy_header)
                })?,
                trusted: cfg.trusted_proxies.clone(),
            },
        })
    }

    /// The viewer, or the refusal: 401 when no credentials came, 403 when they do not
    /// allow reading.
    pub fn admit(&self, peer: &Peer, headers: &axum::http::HeaderMap) -> Result<String, Refusal> {
        match self {
            Self::ClientCertificate => match &peer.certificate {
                None => Err(Refusal::unauthenticated(
                    "present a client certificate naming an operator (altair://operator/<name>) signed by the fleet's CA",
                )),
                Some(Err(e)) => Err(Refusal::forbidden(format!("client certificate: {e}"))),
                Some(Ok(id @ Identity::Operator { .. })) => Ok(id.to_string()),
                Some(Ok(other)) => Err(Refusal::forbidden(format!(
                    "{other} may not read the console: it needs an operator certificate (viewer or operator)"
                ))),
            },
            Self::ProxyHeader { header, trusted } => {
                if !trusted.contains(&peer.addr.ip()) {
                    return Err(Refusal::forbidden(format!(
                        "{} is not a trusted proxy (console.trusted_proxies)",
                        peer.addr.ip()
                    )));
                }
                let user = headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|u| !u.is_empty() && u.len() <= 128);
                match user {
                    Some(u) if u.chars().all(|c| !c.is_control()) => Ok(format!("proxy/{u}")),
                    _ => Err(Refusal::unauthenticated(format!(
                        "the proxy sent no user in {header}"
                    ))),
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct Refusal {
    pub code: StatusCode,
    pub why: String,
}

impl Refusal {
    fn unauthenticated(why: impl Into<String>) -> Self {
        Self {
            code: StatusCode::UNAUTHORIZED,
            why: why.into(),
        }
    }
    fn forbidden(why: impl Into<String>) -> Self {
        Self {
            code: StatusCode::FORBIDDEN,
            why: why.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}: {}\n", self.code, self.why),
        )
            .into_response()
    }
}

/// The middleware in front of every route.
pub async fn check(
    State(policy): State<Arc<Policy>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = super::metrics::route(request.uri().path());
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        super::metrics::request(route, StatusCode::METHOD_NOT_ALLOWED);
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "405 Method Not Allowed: the console is read-only; act with altairctl\n",
        )
            .into_response();
    }
    match policy.admit(&peer, request.headers()) {
        Ok(viewer) => {
            request.extensions_mut().insert(Viewer(viewer));
            let response = next.run(request).await;
            super::metrics::request(route, response.status());
            response
        }
        Err(refusal) => {
            tracing::info!(peer = %peer.addr, code = refusal.code.as_u16(), why = %refusal.why, "console request refused");
            super::metrics::request(route, refusal.code);
            refusal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use altair_core::authz::OperatorRole;
    use axum::http::HeaderMap;

    fn peer(ip: &str, certificate: Option<Result<Identity, String>>) -> Peer {
        Peer {
            addr: format!("{ip}:5000").parse().expect("addr"),
            certificate,
        }
    }

    #[test]
    fn certificates_admit_operators_of_any_role_only() {
        let p = Policy::ClientCertificate;
        let none = HeaderMap::new();
        let e = p
            .admit(&peer("10.0.0.9", None), &none)
            .expect_err("no cert");
        assert_eq!(e.code, StatusCode::UNAUTHORIZED);
        let viewer = Identity::Operator {
            name: "alice".into(),
            role: OperatorRole::Viewer,
        };
        assert!(p.admit(&peer("10.0.0.9", Some(Ok(viewer))), &none).is_ok());
        let agent = Identity::parse_uri("altair://agent/c1/db1").expect("uri");
        let e = p
            .admit(&peer("10.0.0.9", Some(Ok(agent))), &none)
            .expect_err("agent");
        assert_eq!(e.code, StatusCode::FORBIDDEN);
        assert!(e.why.contains("agent/c1/db1"), "{}", e.why);
    }

    #[test]
    fn the_proxy_header_counts_only_from_a_trusted_proxy() {
        let p = Policy::ProxyHeader {
            header: HeaderName::from_static("x-remote-user"),
            trusted: vec!["127.0.0.1".parse().expect("ip")],
        };
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", "bob".parse().expect("value"));
        assert_eq!(
            p.admit(&peer("127.0.0.1", None), &h).expect("trusted"),
            "proxy/bob"
        );
        let e = p.admit(&peer("10.1.1.1", None), &h).expect_err("untrusted");
        assert_eq!(e.code, StatusCode::FORBIDDEN);
        let e = p
            .admit(&peer("127.0.0.1", None), &HeaderMap::new())
            .expect_err("no header");
        assert_eq!(e.code, StatusCode::UNAUTHORIZED);
    }
}
