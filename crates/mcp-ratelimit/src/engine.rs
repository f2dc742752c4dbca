//! The decision engine: which limits apply to a request and what each charges (keys, weights,
//! the ban list), and what to answer once a backend decided (the tightest-limit report, the
//! `429` in the caller's format). It knows no backend: [`crate::layer`] hands the charges to
//! one ([`crate::backend`]) and the decision back here.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Response, StatusCode};

use mcp_security_core::ban::BanScope;
use mcp_security_core::client_addr::{ClientAddr, ClientAddrResolver};
use mcp_security_core::clock::MonotonicClock;
use mcp_security_core::credential::QUERY_CREDENTIAL_PARAMS;
use mcp_security_core::jsonrpc::JsonRpcMessage;
use mcp_security_core::rejection::ResponseFormat;
use mcp_security_core::{
    AuthFailure, AuthOutcome, BanList, BudgetOutcome, GuardBody, McpCall, Principal,
    RateLimitOutcome, Rejection,
};

use crate::budget::{BudgetHeaders, BudgetReport, Budgets, Charged};

use crate::class::{Classifier, path_has_prefix};
use crate::decision::{Charge, Charges, Decision, Report, merge};
use crate::headers::{RATE_LIMITED_MESSAGE, Stamp, WallSecs};
use crate::key::{KeyHasher, KeyParts, KeySelector, NetPrefix, Selected};
use crate::quota::{Quota, ceil_secs};

/// The public message of the fail-closed `503` (the shared store is unavailable).
#[cfg(feature = "redis")]
pub const UNAVAILABLE_MESSAGE: &str = "Service temporarily unavailable. Please try again later.";

#[derive(Debug)]
pub(crate) enum ScopeRt {
    Any,
    Class(u16),
    Tool(Box<str>),
}

#[derive(Debug)]
pub(crate) struct LimitRt {
    pub(crate) name: Cow<'static, str>,
    pub(crate) quota: Quota,
    pub(crate) overflow_quota: Quota,
    pub(crate) key: KeySelector,
    pub(crate) scope: ScopeRt,
    pub(crate) per_message: bool,
    pub(crate) needs_class: bool,
    /// `RateLimit-Policy` is the same on every response of this limit: built once.
    pub(crate) policy_header: &'static HeaderValue,
    /// `X-RateLimit-Limit` of the limit's own and shared buckets: built once.
    pub(crate) burst_header: &'static HeaderValue,
    pub(crate) overflow_burst_header: &'static HeaderValue,
}

impl LimitRt {
    fn applies(&self, class: Option<u16>, message: Option<&JsonRpcMessage>) -> bool {
        match &self.scope {
            ScopeRt::Any => true,
            ScopeRt::Class(c) => class == Some(*c),
            ScopeRt::Tool(t) => message.and_then(JsonRpcMessage::tool) == Some(&**t),
        }
    }
}

/// The configuration every decision reads: the limits, how requests are keyed and classified,
/// the ban list, the clocks and which headers to send.
pub(crate) struct Engine {
    pub(crate) enabled: bool,
    pub(crate) limits: Box<[LimitRt]>,
    pub(crate) classifier: Classifier,
    pub(crate) hasher: KeyHasher,
    pub(crate) bans: Option<BanList>,
    /// Which requests of a banned client are refused.
    pub(crate) ban_scope: BanScope,
    /// A header that carries a credential besides `Authorization` (an API-key header).
    pub(crate) credential_header: Option<HeaderName>,
    /// Per-principal budgets, charged once the limits admitted a request.
    pub(crate) budgets: Option<Box<Budgets>>,
    pub(crate) resolver: ClientAddrResolver,
    pub(crate) mcp_path: Box<str>,
    pub(crate) clock: Arc<dyn MonotonicClock>,
    pub(crate) wall: WallSecs,
    pub(crate) legacy_headers: bool,
    pub(crate) ietf_headers: bool,
    pub(crate) needs_client: bool,
    /// Keys stable across replicas (a shared store), rather than keyed per process.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) stable_keys: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("enabled", &self.enabled)
            .field(
                "limits",
                &self.limits.iter().map(|l| &*l.name).collect::<Vec<_>>(),
            )
            .field("ban_list", &self.bans.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`Engine::prepare`] made of a request.
pub(crate) enum Prepared {
    Done(Decision),
    Charges(Charges),
}

/// A banned client's request let through because it carries a credential (ban scope
/// [`BanScope::Failed`]): put into the request's extensions by the per-client layer, it is
/// refused right after authentication unless a principal authenticated (any rate-limit layer
/// of this crate after the auth layer checks it), and the per-client layer turns any answer
/// whose credential failed into the ban's `429` on the way out. Private to this crate: no other
/// code can forge or lift it.
#[derive(Debug, Clone)]
pub(crate) struct BanHold {
    until: SystemTime,
    retry_after: u64,
    /// The format of the refusal, as the per-client layer saw the request (today's ban answer).
    format: ResponseFormat,
}

impl BanHold {
    /// The ban's `429`, exactly as a refusal by the per-client layer.
    pub(crate) fn response<B>(&self) -> Response<GuardBody<B>> {
        banned(&self.format, self.until, self.retry_after)
    }

    /// Whether `response` is the answer to a valid credential (authenticated, or refused for
    /// what a valid credential may still lack: a scope, a fresh DPoP nonce — what the
    /// auth-failure detector does not count either), so it is kept rather than replaced.
    pub(crate) fn credential_held<B>(response: &Response<B>) -> bool {
        matches!(
            response.extensions().get::<AuthOutcome>(),
            Some(
                AuthOutcome::Authenticated { .. }
                    | AuthOutcome::Rejected {
                        failure: AuthFailure::InsufficientScope | AuthFailure::DpopNonceRequired,
                        ..
                    }
            )
        )
    }
}

/// The ban's `429`: `Retry-After` = the seconds left, no rate-limit headers.
fn banned<B>(
    format: &ResponseFormat,
    until: SystemTime,
    retry_after: u64,
) -> Response<GuardBody<B>> {
    too_many(
        format,
        retry_after,
        None,
        RateLimitOutcome::Banned {
            until,
            retry_after_secs: retry_after,
        },
        "client is on the ban list".to_owned(),
    )
}

static WARNED_NO_CLIENT: AtomicBool = AtomicBool::new(false);

impl Engine {
    /// The local monotonic time.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// The ban list, then the charges a request makes. With ban scope [`BanScope::Failed`], a
    /// banned client's request that carries a credential is charged as usual and comes back
    /// with a [`BanHold`] for the request's extensions; one held by an outer layer and not
    /// authenticated by now is refused.
    #[inline]
    pub(crate) fn prepare(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> (Prepared, Option<BanHold>) {
        if let Some(hold) = ext.get::<BanHold>()
            && ext.get::<Principal>().is_none()
        {
            return (Prepared::Done(Decision::Held(Box::new(hold.clone()))), None);
        }
        if !self.enabled {
            return (Prepared::Done(Decision::Pass), None);
        }
        let client: Option<ClientAddr> = if self.needs_client {
            ext.get::<ClientAddr>()
                .copied()
                .or_else(|| self.resolver.resolve(headers, ext))
        } else {
            None
        };
        let mut hold = None;
        if let (Some(bans), Some(client)) = (&self.bans, &client)
            && !bans.is_empty()
        {
            let now = self.wall.now();
            if let Some(until) = bans.check_client(client, now) {
                let left = until.duration_since(now).unwrap_or_default();
                let nanos = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
                let retry_after = ceil_secs(nanos).max(1);
                if self.ban_scope == BanScope::All || !self.carries_credential(headers, query) {
                    return (
                        Prepared::Done(Decision::Banned { until, retry_after }),
                        None,
                    );
                }
                hold = Some(BanHold {
                    until,
                    retry_after,
                    format: self.format(method, path, headers, ext),
                });
            }
        }
        let charges = self.charges(method, path, client, ext);
        if charges.as_slice().is_empty() {
            return (Prepared::Done(Decision::NotLimited), hold);
        }
        (Prepared::Charges(charges), hold)
    }

    /// Whether the request carries a credential to verify: an `Authorization` header, the
    /// configured API-key header, or a query credential (`token`, `access_token`).
    fn carries_credential(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        headers.contains_key(AUTHORIZATION)
            || self
                .credential_header
                .as_ref()
                .is_some_and(|h| headers.contains_key(h))
            || query.is_some_and(|q| {
                q.split('&').any(|pair| {
                    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                    QUERY_CREDENTIAL_PARAMS.contains(&name)
                })
            })
    }

    /// The key of `parts` for limit `index`: per-process keyed in memory, stable across
    /// replicas with a shared store.
    #[inline]
    fn select(&self, index: u16, limit: &LimitRt, parts: &KeyParts<'_>) -> Selected {
        #[cfg(feature = "redis")]
        if self.stable_keys {
            return KeyHasher::select_stable(&limit.name, limit.key, parts);
        }
        self.hasher.select(index, limit.key, parts)
    }

    fn charges(
        &self,
        method: &Method,
        path: &str,
        client: Option<ClientAddr>,
        ext: &http::Extensions,
    ) -> Charges {
        let principal = ext.get::<Principal>();
        let messages = ext.get::<McpCall>().map_or(&[][..], McpCall::messages);
        let with_methods = || messages.iter().filter(|m| m.method().is_some());
        let method_count = with_methods().count();
        let single = match messages {
            [one] => Some(one),
            _ => None,
        };
        let base = KeyParts {
            client: client.map(|c| c.rate_limit_key()),
            principal,
            ..KeyParts::default()
        };
        let mut request_class: Option<Option<u16>> = None;
        let mut charges = Charges::new();
        let mut batched = false;
        for (index, limit) in self.limits.iter().enumerate() {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let charge = |parts: &KeyParts<'_>, charges: &mut Charges| {
                #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
                let mut overflow = false;
                let key = match self.select(index, limit, parts) {
                    Selected::Key(k) => Some(k),
                    Selected::NoClient => {
                        if !WARNED_NO_CLIENT.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                limit = %limit.name,
                                "no client address for a request (the server inserts neither \
                                 PeerAddr nor ConnectInfo; an axum server needs mcp-security's \
                                 `axum` feature and into_make_service_with_connect_info, a \
                                 tonic server its `tonic` feature): such requests share the \
                                 limit's overflow bucket"
                            );
                        }
                        #[cfg(feature = "redis")]
                        if self.stable_keys {
                            overflow = true;
                            Some(KeyHasher::overflow_stable(&limit.name))
                        } else {
                            None
                        }
                        #[cfg(not(feature = "redis"))]
                        None
                    }
                    Selected::Skip => return,
                };
                charges.push(Charge {
                    limit: index,
                    key,
                    weight: 1,
                    overflow,
                    prefix: NetPrefix::of(limit.key, parts),
                });
            };
            if limit.per_message && method_count > 0 {
                batched |= method_count > 1;
                for message in with_methods() {
                    let class = if limit.needs_class {
                        self.classifier.classify(method, path, Some(message))
                    } else {
                        None
                    };
                    if !limit.applies(class, Some(message)) {
                        continue;
                    }
                    let parts = KeyParts {
                        class,
                        method: message.method(),
                        tool: message.tool(),
                        ..base
                    };
                    charge(&parts, &mut charges);
                }
            } else {
                let class = if limit.needs_class {
                    *request_class
                        .get_or_insert_with(|| self.classifier.classify(method, path, single))
                } else {
                    None
                };
                if !limit.applies(class, single) {
                    continue;
                }
                let parts = KeyParts {
                    class,
                    method: single.and_then(JsonRpcMessage::method),
                    tool: single.and_then(JsonRpcMessage::tool),
                    ..base
                };
                charge(&parts, &mut charges);
            }
        }
        if batched {
            merge(&mut charges);
        }
        charges
    }

    fn is_mcp_post(&self, method: &Method, path: &str) -> bool {
        method == Method::POST && path_has_prefix(path, &self.mcp_path)
    }

    fn format(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> ResponseFormat {
        match ResponseFormat::for_request(headers, ext) {
            ResponseFormat::Json if self.is_mcp_post(method, path) => ResponseFormat::JsonRpc(None),
            format => format,
        }
    }

    /// The header numbers for a report (`retry_after` for a refusal).
    #[inline]
    fn stamp(&self, report: &Report, retry_after: Option<u64>) -> Option<Stamp> {
        let limit = self.limits.get(usize::from(report.limit))?;
        if !self.legacy_headers && !self.ietf_headers {
            return None;
        }
        let reset_secs = ceil_secs(report.reset);
        Some(Stamp {
            // Prebuilt unless a backend reports another burst (the fail-open fallback's share).
            burst: report.burst,
            burst_value: if report.burst == limit.quota.burst() {
                Some(limit.burst_header)
            } else if report.burst == limit.overflow_quota.burst() {
                Some(limit.overflow_burst_header)
            } else {
                None
            },
            policy: limit.policy_header,
            remaining: report.remaining,
            t: retry_after.unwrap_or(reset_secs),
            reset_at: if self.legacy_headers {
                self.wall.epoch_secs(report.at).saturating_add(reset_secs)
            } else {
                0
            },
            legacy: self.legacy_headers,
            ietf: self.ietf_headers,
        })
    }

    fn limit_name(&self, limit: u16) -> Cow<'static, str> {
        self.limits
            .get(usize::from(limit))
            .map_or(Cow::Borrowed(""), |l| l.name.clone())
    }
}

/// A `429` in the caller's format, with the outcome for the audit layer.
pub(crate) fn too_many<B>(
    format: &ResponseFormat,
    retry_after: u64,
    stamp: Option<Stamp>,
    outcome: RateLimitOutcome,
    detail: String,
) -> Response<GuardBody<B>> {
    let mut rejection = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        .message(RATE_LIMITED_MESSAGE)
        .header(RETRY_AFTER, HeaderValue::from(retry_after))
        .detail(detail);
    if *format == ResponseFormat::Json {
        rejection = rejection.field("detail", RATE_LIMITED_MESSAGE);
    }
    rejection = rejection.field("retry_after", retry_after);
    let mut response = rejection.into_response(format);
    if let (Some(stamp), RateLimitOutcome::Limited { policy, .. }) = (stamp, &outcome) {
        stamp.apply(policy, response.headers_mut());
    }
    response.extensions_mut().insert(outcome);
    response
}

/// What to add to an admitted response.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The tightest limit's name; `None` when no limit applied.
    policy: Option<Cow<'static, str>>,
    remaining: u64,
    overflow: bool,
    /// Admitted by the fail-open fallback limiter.
    degraded: bool,
    stamp: Option<Stamp>,
    /// What the principal's budgets have left.
    budget: Option<BudgetReport>,
    /// The IETF headers are on (the budgets' items go there).
    ietf: bool,
}

impl Admitted {
    /// Add the headers and outcome unless an inner rate-limit layer already reported something
    /// tighter.
    #[inline]
    pub(crate) fn apply<B>(mut self, response: &mut Response<B>) {
        let fresh = match self.budget.take() {
            Some(report) => {
                report.insert(response, self.ietf);
                true
            }
            None => false,
        };
        let stamped = self.apply_limits(response);
        // A stamp replaces the `RateLimit` fields: the budgets' items go back on.
        if fresh || stamped {
            BudgetHeaders::append(response);
        }
    }

    /// The limits' headers and outcome; whether the headers were (re)written.
    #[inline]
    fn apply_limits<B>(self, response: &mut Response<B>) -> bool {
        let keep = match response.extensions().get::<RateLimitOutcome>() {
            None | Some(RateLimitOutcome::NotLimited) => false,
            Some(RateLimitOutcome::Allowed { remaining, .. }) => {
                self.policy.is_none() || *remaining <= self.remaining
            }
            Some(_) => true,
        };
        if keep {
            return false;
        }
        let mut stamped = false;
        let outcome = match self.policy {
            Some(policy) => {
                if let Some(stamp) = self.stamp {
                    stamp.apply(&policy, response.headers_mut());
                    stamped = true;
                }
                if self.degraded {
                    RateLimitOutcome::Degraded {
                        policy,
                        admitted: true,
                        remaining: self.remaining,
                        retry_after_secs: 0,
                    }
                } else {
                    RateLimitOutcome::Allowed {
                        policy,
                        remaining: self.remaining,
                        overflow: self.overflow,
                    }
                }
            }
            None => RateLimitOutcome::NotLimited,
        };
        response.extensions_mut().insert(outcome);
        stamped
    }
}

impl Engine {
    /// What to do with a request once decided: call the inner service (with what to add to its
    /// response), or answer now.
    #[inline]
    pub(crate) fn conclude<ResBody>(
        &self,
        decision: Decision,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Concluded<ResBody> {
        self.conclude_charged(decision, None, method, path, headers, ext)
    }

    /// [`conclude`](Self::conclude), with the budgets' charge already made (`Some`: by a shared
    /// store, asynchronously) or to make here (`None`).
    #[inline]
    pub(crate) fn conclude_charged<ResBody>(
        &self,
        decision: Decision,
        charged: Option<Option<Charged>>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Concluded<ResBody> {
        match decision {
            Decision::Pass => Concluded::Call(None),
            Decision::NotLimited | Decision::Allowed(_) => {
                let charged = match charged {
                    Some(charged) => charged,
                    None => self
                        .budgets
                        .as_deref()
                        .and_then(|b| b.spend(ext, self.now())),
                };
                let budget = match charged {
                    None => None,
                    Some(Charged::Allowed(report)) => Some(report),
                    Some(Charged::Refused { budget, cost, wait }) => {
                        return Concluded::Answer(
                            self.budget_refusal(budget, cost, wait, method, path, headers, ext),
                        );
                    }
                    #[cfg(feature = "redis")]
                    Some(Charged::Unavailable) => {
                        return self.conclude_charged(
                            Decision::Unavailable { retry_after: 1 },
                            None,
                            method,
                            path,
                            headers,
                            ext,
                        );
                    }
                };
                let mut admitted = match decision {
                    Decision::Allowed(report) => Admitted {
                        policy: Some(self.limit_name(report.limit)),
                        remaining: report.remaining,
                        overflow: report.overflow,
                        degraded: report.degraded,
                        stamp: self.stamp(&report, None),
                        budget: None,
                        ietf: self.ietf_headers,
                    },
                    _ => Admitted {
                        policy: None,
                        remaining: u64::MAX,
                        overflow: false,
                        degraded: false,
                        stamp: None,
                        budget: None,
                        ietf: self.ietf_headers,
                    },
                };
                admitted.budget = budget;
                Concluded::Call(Some(admitted))
            }
            Decision::Limited {
                report,
                retry_after,
            } => {
                let format = self.format(method, path, headers, ext);
                let name = self.limit_name(report.limit);
                let detail = format!(
                    "limit {name} exceeded{}{}",
                    if report.prefix {
                        " (network-prefix bucket: the key store is full)"
                    } else if report.overflow {
                        " (shared overflow bucket)"
                    } else {
                        ""
                    },
                    if report.degraded {
                        " (local fallback limiter: the shared store is unavailable)"
                    } else {
                        ""
                    }
                );
                let outcome = if report.degraded {
                    RateLimitOutcome::Degraded {
                        policy: name,
                        admitted: false,
                        remaining: 0,
                        retry_after_secs: retry_after,
                    }
                } else {
                    RateLimitOutcome::Limited {
                        policy: name,
                        retry_after_secs: retry_after,
                        overflow: report.overflow,
                    }
                };
                let stamp = self.stamp(&report, Some(retry_after));
                Concluded::Answer(too_many(&format, retry_after, stamp, outcome, detail))
            }
            Decision::Banned { until, retry_after } => {
                let format = self.format(method, path, headers, ext);
                Concluded::Answer(banned(&format, until, retry_after))
            }
            Decision::Held(hold) => Concluded::Answer(hold.response()),
            #[cfg(feature = "redis")]
            Decision::Unavailable { retry_after } => {
                let format = self.format(method, path, headers, ext);
                let mut rejection =
                    Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "rate_limit_unavailable")
                        .message(UNAVAILABLE_MESSAGE)
                        .header(RETRY_AFTER, HeaderValue::from(retry_after))
                        .detail(
                            "the shared rate-limit store did not answer within its budget \
                             (failure policy: closed)",
                        );
                rejection = rejection.field("retry_after", retry_after);
                let mut response = rejection.into_response(&format);
                response
                    .extensions_mut()
                    .insert(RateLimitOutcome::Unavailable {
                        retry_after_secs: retry_after,
                    });
                Concluded::Answer(response)
            }
        }
    }
}

impl Engine {
    /// The `429` of a budget that cannot take the request's cost: `Retry-After` = the seconds
    /// until it fits, `RateLimit` / `RateLimit-Policy` naming the budget.
    #[allow(clippy::too_many_arguments)]
    fn budget_refusal<B>(
        &self,
        budget: u16,
        cost: u64,
        wait: u64,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Response<GuardBody<B>> {
        let format = self.format(method, path, headers, ext);
        let retry_after = ceil_secs(wait).max(1);
        let budgets = self.budgets.as_deref();
        let name = budgets.map_or(Cow::Borrowed(""), |b| b.name(budget));
        let stamp = budgets
            .and_then(|b| b.list.get(usize::from(budget)))
            .map(|b| Stamp {
                burst: b.quota.requests(),
                burst_value: Some(b.units_header),
                policy: b.policy_header,
                remaining: 0,
                t: retry_after,
                reset_at: 0,
                legacy: false,
                ietf: self.ietf_headers,
            });
        let detail = format!("budget {name} exhausted: the call costs {cost} units");
        let outcome = RateLimitOutcome::Limited {
            policy: name.clone(),
            retry_after_secs: retry_after,
            overflow: false,
        };
        let mut response = too_many(&format, retry_after, stamp, outcome, detail);
        response.extensions_mut().insert(BudgetOutcome::Exhausted {
            policy: name,
            cost,
            retry_after_secs: retry_after,
        });
        response
    }
}

/// What [`Engine::conclude`] decided: call the inner service, or answer now.
pub(crate) enum Concluded<B> {
    Call(Option<Admitted>),
    Answer(Response<GuardBody<B>>),
}
