//! [`ClientAddrLayer`] and [`ClientAddrService`]: resolve each request's [`ClientAddr`] and
//! insert it into the request's extensions.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::{ClientAddr, ClientAddrResolver};

/// Resolves each request's [`ClientAddr`] and inserts it into the request extensions.
///
/// Requests that already carry a `ClientAddr` keep it; requests without a known peer address
/// (see the [module docs](super)) get none. Place it outermost, before anything that reads the
/// client address (audit, rate limiting).
///
/// ```
/// use std::convert::Infallible;
/// use mcp_security_core::client_addr::{ClientAddr, ClientAddrLayer, ClientAddrResolver, PeerAddr};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let resolver = ClientAddrResolver::builder()
///     .trusted_proxies(["10.0.0.0/8"])
///     .build()?;
///
/// let service = ServiceBuilder::new()
///     .layer(ClientAddrLayer::new(resolver))
///     .service_fn(|req: http::Request<()>| async move {
///         let client = req.extensions().get::<ClientAddr>().copied();
///         Ok::<_, Infallible>(client.map(|c| c.ip().to_string()))
///     });
///
/// // A plain hyper server inserts the connection's peer address; axum and tonic record it
/// // themselves (features `axum` and `tonic`).
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(PeerAddr("10.0.0.7:50000".parse()?));
/// request
///     .headers_mut()
///     .insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse()?);
///
/// let ip = service.oneshot(request).await?;
/// assert_eq!(ip.as_deref(), Some("203.0.113.9"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientAddrLayer {
    resolver: ClientAddrResolver,
}

impl ClientAddrLayer {
    /// A layer resolving clients with `resolver`.
    pub fn new(resolver: ClientAddrResolver) -> Self {
        Self { resolver }
    }

    /// The resolver this layer uses.
    pub fn resolver(&self) -> &ClientAddrResolver {
        &self.resolver
    }
}

impl<S> Layer<S> for ClientAddrLayer {
    type Service = ClientAddrService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAddrService::new(inner, self.resolver.clone())
    }
}

/// The service made by [`ClientAddrLayer`]: inserts the request's [`ClientAddr`], then calls the
/// inner service. Its future is the inner service's future.
#[derive(Debug, Clone)]
pub struct ClientAddrService<S> {
    inner: S,
    resolver: ClientAddrResolver,
}

impl<S> ClientAddrService<S> {
    /// Wraps `inner`, resolving clients with `resolver`.
    pub fn new(inner: S, resolver: ClientAddrResolver) -> Self {
        Self { inner, resolver }
    }

    /// A [`ClientAddrLayer`] producing this service.
    pub fn layer(resolver: ClientAddrResolver) -> ClientAddrLayer {
        ClientAddrLayer::new(resolver)
    }

    /// The resolver this service uses.
    pub fn resolver(&self) -> &ClientAddrResolver {
        &self.resolver
    }
}

crate::impl_inner_service!(ClientAddrService, inner);

impl<S, B> Service<Request<B>> for ClientAddrService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.extensions().get::<ClientAddr>().is_none()
            && let Some(client) = self.resolver.resolve(req.headers(), req.extensions())
        {
            req.extensions_mut().insert(client);
        }
        self.inner.call(req)
    }
}
