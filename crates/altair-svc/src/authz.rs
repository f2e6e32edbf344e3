//! The per-RPC authorization every gRPC server runs before a handler: the caller's
//! identity from its verified client certificate, checked against
//! `altair_core::authz::authorize`, then handed to the handler as a [`Caller`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use altair_core::authz::{Identity, Server, authorize};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::tls::identity_of_der;

/// Who made a request, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A verified client certificate naming this identity.
    Verified(Identity),
    /// `tls.insecure = true`: nobody is authenticated.
    Insecure,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified(id) => id.fmt(f),
            Self::Insecure => f.write_str("unauthenticated (tls.insecure)"),
        }
    }
}

/// The caller of a request that went through [`AuthzLayer`]; a request without one
/// (which cannot happen behind the layer) is refused.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("no caller identity"))
}

/// Applies the policy of `server`; `None` (insecure mode) lets everyone through.
#[derive(Debug, Clone)]
pub struct AuthzLayer {
    server: Option<Arc<Server>>,
}

impl AuthzLayer {
    pub fn new(server: Server, insecure: bool) -> Self {
        Self {
            server: (!insecure).then(|| Arc::new(server)),
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Authz<S> {
        Authz {
            inner,
            server: self.server.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authz<S> {
    inner: S,
    server: Option<Arc<Server>>,
}

/// The identity of the peer certificate of a request, or why there is none.
fn identity_of<B>(req: &http::Request<B>) -> Result<Identity, String> {
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .ok_or("no client certificate")?;
    let leaf = certs.first().ok_or("no client certificate")?;
    identity_of_der(leaf)
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Authz<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let caller = match &self.server {
            None => Ok(Caller::Insecure),
            Some(server) => match identity_of(&req) {
                Err(why) => Err(tonic::Status::unauthenticated(why)),
                Ok(id) => match authorize(server, req.uri().path(), &id) {
                    Ok(()) => Ok(Caller::Verified(id)),
                    Err(denied) => Err(tonic::Status::permission_denied(denied.to_string())),
                },
            },
        };
        match caller {
            Ok(c) => {
                req.extensions_mut().insert(c);
                // The service that was polled ready is the one called.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(req))
            }
            Err(status) => {
                tracing::warn!(path = req.uri().path(), code = ?status.code(), reason = status.message(), "gRPC call refused");
                crate::metrics::refused(req.uri().path(), status.code());
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
