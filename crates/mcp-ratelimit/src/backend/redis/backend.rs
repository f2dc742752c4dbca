//! [`RedisBackend`]: a layer's limits decided in Redis, the failure policy when it cannot answer.

use super::*;

/// The Redis backend of a [`RateLimitLayer`](crate::RateLimitLayer): limits counted in Redis
/// when a [`RedisStore`] is configured, in memory otherwise; see the [module docs](super). Chosen
/// with [`RateLimitLayerBuilder::redis`](crate::RateLimitLayerBuilder::redis) or
/// [`maybe_redis`](crate::RateLimitLayerBuilder::maybe_redis).
pub struct RedisBackend {
    /// Decisions when no store is configured (and for requests no limit applies to).
    local: Memory,
    remote: Option<Remote>,
    /// Re-keys stable (Redis) keys for the local deny cache and the fallback store.
    hasher: KeyHasher,
}

/// A layer's Redis state: the store, each limit's GCRA in microseconds, the fail-open fallback.
struct Remote {
    store: RedisStore,
    params: Box<[Params]>,
    fallback: Option<Memory>,
}

impl Remote {
    fn new(store: RedisStore, spec: &Spec<'_>) -> Result<Self, ConfigError> {
        let mut params = Vec::with_capacity(spec.limits.len());
        let mut buckets = Vec::with_capacity(spec.limits.len());
        let replicas = store.inner.replicas.max(1);
        for limit in spec.limits {
            let setting = format!("limit.{}", limit.name);
            params.push(Params {
                main: MicroGcra::new(&limit.gcra),
                overflow: MicroGcra::new(&limit.overflow_gcra),
            });
            let share = |q: crate::Quota| {
                crate::Quota::new((q.requests() / replicas).max(1), q.window())
                    .with_burst((q.burst() / replicas).max(1))
            };
            let fb = share(limit.quota).gcra(&format!("{setting}.fallback"))?;
            let fb_overflow = share(limit.overflow_quota).gcra(&format!("{setting}.fallback"))?;
            buckets.push(Bucket::new(fb, fb_overflow));
        }
        let fallback = (store.inner.failure == FailurePolicy::Open)
            .then(|| Memory::new(buckets, spec.max_keys, spec.max_prefixes));
        Ok(Remote {
            store,
            params: params.into_boxed_slice(),
            fallback,
        })
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("store", &self.store())
            .finish_non_exhaustive()
    }
}

impl crate::backend::Backend for RedisBackend {}

impl Sealed for RedisBackend {
    fn build(spec: Spec<'_>) -> Result<Self, ConfigError> {
        let local = Memory::from_spec(&spec);
        let remote = match spec.redis.clone() {
            Some(store) => Some(Remote::new(store, &spec)?),
            None => None,
        };
        Ok(RedisBackend {
            local,
            remote,
            hasher: KeyHasher::default(),
        })
    }

    fn disabled() -> Self {
        RedisBackend {
            local: Memory::new(Vec::new(), 1, 0),
            remote: None,
            hasher: KeyHasher::default(),
        }
    }

    fn local(&self) -> &Memory {
        &self.local
    }

    fn stable_keys(&self) -> bool {
        self.remote.is_some()
    }

    fn describe(&self) -> Option<String> {
        let store = self.store()?;
        Some(format!(
            "shared in Redis at {}, prefix {}, failure policy {}, budget {:?}",
            store.display_url(),
            store.prefix(),
            store.failure_policy().as_str(),
            store.timeout()
        ))
    }
}

impl RedisBackend {
    /// The Redis store, when one is configured.
    pub fn store(&self) -> Option<&RedisStore> {
        self.remote.as_ref().map(|r| &r.store)
    }

    /// A refusal the deny cache can give without a round trip.
    pub(crate) fn cached_denial(&self, charges: &[Charge], now: u64) -> Option<Decision> {
        let backend = self.remote.as_ref()?;
        let deny = &backend.store.inner.deny;
        if deny.cap == 0 {
            return None;
        }
        let mut worst: Option<(u64, Report)> = None;
        for charge in charges {
            let Some(key) = charge.key else { continue };
            let Some((until, full)) = deny.get(self.hasher.rekey(key), now) else {
                continue;
            };
            let wait = until - now;
            if worst.as_ref().is_none_or(|(w, _)| wait > *w) {
                let burst = backend
                    .params
                    .get(usize::from(charge.limit))
                    .map_or(1, |p| {
                        if charge.overflow {
                            p.overflow.burst
                        } else {
                            p.main.burst
                        }
                    });
                worst = Some((
                    wait,
                    Report {
                        limit: charge.limit,
                        remaining: 0,
                        reset: full.saturating_sub(now),
                        overflow: charge.overflow,
                        prefix: false,
                        burst,
                        degraded: false,
                        at: now,
                    },
                ));
            }
        }
        let (wait, report) = worst?;
        bump(&backend.store.inner.stats.local_denials);
        Some(Decision::Limited {
            report,
            retry_after: ceil_secs(wait).max(1),
        })
    }

    /// Decide `charges` in Redis; on failure, apply the failure policy. `sent` is the local
    /// monotonic time the decision started at.
    pub(crate) async fn decide(
        &self,
        charges: Charges,
        sent: u64,
        clock: &dyn MonotonicClock,
    ) -> Decision {
        let Some(backend) = self.remote.as_ref() else {
            return Decision::Pass;
        };
        let store = &backend.store;
        let stats = &store.inner.stats;
        let charges = charges.as_slice();
        let reply = match store.eval(charges, &backend.params).await {
            Ok(reply) => reply,
            Err(failure) => {
                let reason = match failure {
                    Failure::Timeout => {
                        bump(&stats.timeouts);
                        format!("no answer within the budget of {:?}", store.inner.timeout)
                    }
                    Failure::Error(reason) => {
                        bump(&stats.errors);
                        reason
                    }
                };
                if !stats.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        policy = store.inner.failure.as_str(),
                        redis = %store.inner.display_url,
                        reason = %reason,
                        "rate-limit store: Redis unavailable or slower than its budget; applying the failure policy"
                    );
                }
                return match &backend.fallback {
                    Some(fallback) => {
                        bump(&stats.fallback_decisions);
                        let local = self.rekeyed(charges);
                        fallback.apply(local.as_slice(), clock.now_nanos(), true)
                    }
                    None => {
                        bump(&stats.unavailable_rejections);
                        Decision::Unavailable { retry_after: 1 }
                    }
                };
            }
        };
        if stats.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate-limit store: Redis answers again; limits are shared");
        }
        let admitted = reply.first().copied() == Some(1);
        let mut worst: Option<(u64, Report)> = None;
        let mut tightest: Option<Report> = None;
        let mut n = 0usize;
        for charge in charges {
            let (Some(key), Some(p)) = (charge.key, backend.params.get(usize::from(charge.limit)))
            else {
                continue;
            };
            let g = if charge.overflow {
                &p.overflow
            } else {
                &p.main
            };
            let wait_us = reply
                .get(1 + 2 * n)
                .map_or(0, |w| u64::try_from(*w).unwrap_or(0));
            let tat_us = reply
                .get(2 + 2 * n)
                .map_or(0, |t| u64::try_from(*t).unwrap_or(0));
            n += 1;
            let reset = tat_us.saturating_mul(1_000);
            if admitted {
                let report = Report {
                    limit: charge.limit,
                    remaining: g.remaining(tat_us),
                    reset,
                    overflow: charge.overflow,
                    prefix: false,
                    burst: g.burst,
                    degraded: false,
                    at: sent,
                };
                if report.tighter(tightest.as_ref()) {
                    tightest = Some(report);
                }
                continue;
            }
            // When a single request (weight 1) on this refusing key conforms again. Only
            // refusing keys are remembered: the others' TATs in a refused call are what they
            // would have become, and nothing was written.
            let conform_us = tat_us.saturating_sub(g.tolerance_us);
            if wait_us > 0 && conform_us > 0 {
                store.inner.deny.insert(
                    self.hasher.rekey(key),
                    sent.saturating_add(conform_us.saturating_mul(1_000)),
                    sent.saturating_add(reset),
                    clock.now_nanos(),
                );
            }
            if wait_us > 0 && worst.as_ref().is_none_or(|(w, _)| wait_us > *w) {
                worst = Some((
                    wait_us,
                    Report {
                        limit: charge.limit,
                        remaining: 0,
                        reset,
                        overflow: charge.overflow,
                        prefix: false,
                        burst: g.burst,
                        degraded: false,
                        at: sent,
                    },
                ));
            }
        }
        if admitted {
            return match tightest {
                Some(report) => Decision::Allowed(report),
                None => Decision::NotLimited,
            };
        }
        bump(&stats.remote_denials);
        match worst {
            Some((wait_us, report)) => Decision::Limited {
                report,
                retry_after: ceil_secs(wait_us.saturating_mul(1_000)).max(1),
            },
            // A malformed reply: refuse rather than admit.
            None => Decision::Unavailable { retry_after: 1 },
        }
    }

    /// The charges with process-keyed local keys, for the fallback store.
    fn rekeyed(&self, charges: &[Charge]) -> Charges {
        let mut out = Charges::new();
        for c in charges {
            out.push(Charge {
                key: c.key.map(|k| self.hasher.rekey(k)),
                ..*c
            });
        }
        out
    }
}
