//! The layer over a shared (Redis) store: the builder's `redis(..)` and the service.

use super::*;
use crate::backend::redis::{RedisBackend, RedisStats, RedisStore};

impl RateLimitLayerBuilder {
    /// Count every limit of this layer in Redis, shared by every replica (the `redis`
    /// feature); see [`crate::redis`]. Requests are then decided asynchronously (one round
    /// trip, or none when the local deny cache refuses), inside a Tokio runtime, and the
    /// inner service must be `Clone + Send + 'static`.
    pub fn redis(self, store: RedisStore) -> RateLimitLayerBuilder<RedisBackend> {
        self.maybe_redis(Some(store))
    }

    /// The Redis backend, counting in Redis when `store` is `Some` and in memory otherwise
    /// (for a stack that decides at run time; the service has the Redis backend's bounds
    /// either way).
    pub fn maybe_redis(self, store: Option<RedisStore>) -> RateLimitLayerBuilder<RedisBackend> {
        let mut builder = self.into_backend::<RedisBackend>();
        builder.redis = store;
        builder
    }
}

impl RateLimitLayerBuilder<RedisBackend> {
    /// Replace the Redis store (`None`: count in memory).
    pub fn redis_store(mut self, store: Option<RedisStore>) -> Self {
        self.redis = store;
        self
    }
}

impl From<RateLimitLayerBuilder> for RateLimitLayerBuilder<RedisBackend> {
    fn from(builder: RateLimitLayerBuilder) -> Self {
        builder.into_backend()
    }
}

impl RateLimitLayer<RedisBackend> {
    /// The Redis store's counters, when the layer counts in Redis.
    pub fn redis_stats(&self) -> Option<RedisStats> {
        self.shared.backend.store().map(RedisStore::stats)
    }
}

impl<S> RateLimit<S, RedisBackend> {
    /// Decide through the shared store: one round trip unless the local deny cache
    /// answers. The inner service is called (the ready one, swapped for a clone) once
    /// admitted.
    fn call_remote<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let (prepared, hold) = shared.engine.prepare(
            req.method(),
            req.uri().path(),
            req.uri().query(),
            req.headers(),
            req.extensions(),
        );
        // Budgets in Redis are charged there too, after the limits admitted the request.
        let remote_budgets = shared
            .engine
            .budgets
            .as_deref()
            .is_some_and(crate::budget::Budgets::is_remote);
        let now = shared.engine.now();
        let charges = match prepared {
            Prepared::Done(decision @ (Decision::NotLimited | Decision::Allowed(_)))
                if remote_budgets =>
            {
                Err(decision)
            }
            Prepared::Done(decision) => return self.call_local(req, Some((decision, hold))),
            Prepared::Charges(charges) => {
                if let Some(decision) = shared.backend.cached_denial(charges.as_slice(), now) {
                    return self.call_local(req, Some((decision, None)));
                }
                Ok(charges)
            }
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let held = hold.clone().map(Box::new);
        ResponseFuture::remote(Box::pin(async move {
            let decision = match charges {
                Ok(charges) => {
                    shared
                        .backend
                        .decide(charges, now, &*shared.engine.clock)
                        .await
                }
                Err(decided) => decided,
            };
            // The limits just found Redis failing and the policy open (`degraded`): the
            // in-memory budgets decide too, without waiting for Redis a second time.
            let on_redis = match &decision {
                Decision::NotLimited => true,
                Decision::Allowed(report) => !report.degraded,
                _ => false,
            };
            let charged = match shared.engine.budgets.as_deref() {
                Some(budgets) if on_redis && budgets.is_remote() => {
                    Some(budgets.spend_remote(req.extensions(), now).await)
                }
                _ => None,
            };
            let (method, path) = (req.method(), req.uri().path());
            match shared.engine.conclude_charged(
                decision,
                charged,
                method,
                path,
                req.headers(),
                req.extensions(),
            ) {
                Concluded::Call(admitted) => {
                    if let Some(hold) = hold {
                        req.extensions_mut().insert(hold);
                    }
                    Ok((inner.call(req), admitted))
                }
                Concluded::Answer(response) => Err(response),
            }
        }))
        .held(held)
    }
}

/// The inner service must be `Clone + Send + 'static` (with `Send` futures and bodies): a
/// request decided by Redis is handed to the inner service after the round trip, from
/// inside this layer's response future.
impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, RedisBackend>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.shared.backend.store().is_some() {
            return self.call_remote(req);
        }
        self.call_local(req, None)
    }
}
