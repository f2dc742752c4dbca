//! What the inner layers decided, reported through response extensions for the audit layer.
//!
//! Policy crates put these into the response's extensions; `mcp-security-audit` reads them without
//! depending on the policy crates.

use std::fmt;

use crate::Principal;

/// Why authentication or authorization refused a request. Goes to the audit record only: the
/// client sees a generic message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No credential was sent.
    MissingCredential,
    /// More than one credential was sent (RFC 6750 §2 allows one method per request).
    MultipleCredentials,
    /// The credential could not be parsed (bad scheme, not a token, bad encoding).
    MalformedCredential,
    /// No API key matches.
    UnknownKey,
    /// The API key exists but is disabled (revoked).
    DisabledKey,
    /// The API key is past its expiry.
    ExpiredKey,
    /// The token is larger than the configured limit.
    TokenTooLarge,
    /// The token's `alg` is not accepted (including `none` in any case).
    UnsupportedAlgorithm,
    /// The token carries a `crit` header.
    CriticalHeader,
    /// No configured secret verifies the signature.
    BadSignature,
    /// The token is past `exp` (beyond the leeway).
    Expired,
    /// The token's `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// The token's `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// The token's `aud` does not name this resource.
    WrongAudience,
    /// The token's `iss` is not the configured issuer.
    WrongIssuer,
    /// A claim is missing, malformed, of the wrong type, or duplicated.
    InvalidClaims,
    /// The principal lacks a scope the request needs.
    InsufficientScope,
    /// The path is deny-listed.
    DeniedPath,
    /// The DPoP proof (RFC 9449) is missing, malformed, signed badly, or names another request,
    /// time or token (`htm`, `htu`, `iat`, `ath`), or was already used.
    InvalidDpopProof,
    /// Server nonces are on and the DPoP proof carries none, or a stale one: the client is sent
    /// a fresh one to retry with (`use_dpop_nonce`).
    DpopNonceRequired,
    /// The DPoP proof is not signed with the key the token is bound to (`cnf.jkt`), or a token
    /// that is not bound to any key was sent as `Authorization: DPoP`.
    DpopBindingMismatch,
    /// A token bound to a key (`cnf.jkt`) was sent as a bearer token, without a proof
    /// (RFC 9449 §7.1).
    BoundTokenAsBearer,
    /// DPoP is required and the token was sent as a bearer token, or is not bound to a key.
    DpopRequired,
}

impl AuthFailure {
    /// A stable snake_case label for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::MissingCredential => "missing_credential",
            AuthFailure::MultipleCredentials => "multiple_credentials",
            AuthFailure::MalformedCredential => "malformed_credential",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::DisabledKey => "disabled_key",
            AuthFailure::ExpiredKey => "expired_key",
            AuthFailure::TokenTooLarge => "token_too_large",
            AuthFailure::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthFailure::CriticalHeader => "critical_header",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::Expired => "expired",
            AuthFailure::NotYetValid => "not_yet_valid",
            AuthFailure::IssuedInFuture => "issued_in_future",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::InvalidClaims => "invalid_claims",
            AuthFailure::InsufficientScope => "insufficient_scope",
            AuthFailure::DeniedPath => "denied_path",
            AuthFailure::InvalidDpopProof => "invalid_dpop_proof",
            AuthFailure::DpopNonceRequired => "dpop_nonce_required",
            AuthFailure::DpopBindingMismatch => "dpop_binding_mismatch",
            AuthFailure::BoundTokenAsBearer => "bound_token_as_bearer",
            AuthFailure::DpopRequired => "dpop_required",
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What authentication decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthOutcome {
    /// A valid credential with the scopes the request needs.
    Authenticated {
        /// Who called.
        principal: Principal,
    },
    /// The path is exempt from authentication (e.g. `/health`, protected-resource metadata).
    Exempt,
    /// Refused.
    Rejected {
        /// Why.
        failure: AuthFailure,
        /// Who, when the credential was valid but not sufficient.
        principal: Option<Principal>,
        /// A short keyed fingerprint of the presented credential, so the audit trail can correlate
        /// one credential's requests without storing it.
        fingerprint: Option<String>,
    },
}

/// What a principal's budgets (`mcp-ratelimit`'s `Budget`: weighted units over an hour, a day,
/// 30 days) decided for one request, for the audit layer. Put into the response's extensions
/// by the per-caller rate limiter when the request had a principal and a cost; a refusal is
/// also reported as [`RateLimitOutcome::Limited`] with the budget's name as the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetOutcome {
    /// Every budget admitted the request's cost, now spent; `policy` is the budget with the
    /// fewest units left.
    Allowed {
        /// The budget's name.
        policy: std::borrow::Cow<'static, str>,
        /// The units the request cost in that budget.
        cost: u64,
        /// The units left in it right now.
        remaining: u64,
    },
    /// A budget refused the request; nothing was spent.
    Exhausted {
        /// The budget's name.
        policy: std::borrow::Cow<'static, str>,
        /// The units the request would have cost.
        cost: u64,
        /// The `Retry-After` sent, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
}

impl BudgetOutcome {
    /// `allowed` or `exhausted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BudgetOutcome::Allowed { .. } => "allowed",
            BudgetOutcome::Exhausted { .. } => "exhausted",
        }
    }

    /// The budget's name.
    pub fn policy(&self) -> &str {
        match self {
            BudgetOutcome::Allowed { policy, .. } | BudgetOutcome::Exhausted { policy, .. } => {
                policy
            }
        }
    }

    /// The units the request cost (or would have).
    pub fn cost(&self) -> u64 {
        match self {
            BudgetOutcome::Allowed { cost, .. } | BudgetOutcome::Exhausted { cost, .. } => *cost,
        }
    }
}

/// What a rate limiter decided for one request, for the audit layer.
///
/// When two rate-limit layers see the same request (per client before authentication, per
/// principal and tool after it), the response carries the tighter of their outcomes: a refusal
/// over an admission, and of two admissions the one with fewer requests remaining.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitOutcome {
    /// Every limit that applies admitted the request; `policy` is the tightest of them.
    Allowed {
        /// The name of the limit with the fewest requests remaining.
        policy: std::borrow::Cow<'static, str>,
        /// Requests that limit would still admit right now.
        remaining: u64,
        /// The request was counted in a limit's shared overflow bucket, because the key store
        /// was full or the client address unknown.
        overflow: bool,
    },
    /// No configured limit applies to this request (for example a per-principal limit on an
    /// anonymous request), and the client is not banned.
    NotLimited,
    /// A limit refused the request.
    Limited {
        /// The name of the limit that refused it (the one with the longest wait).
        policy: std::borrow::Cow<'static, str>,
        /// The `Retry-After` sent, in whole seconds (at least 1).
        retry_after_secs: u64,
        /// The refusal came from a limit's shared overflow bucket.
        overflow: bool,
    },
    /// The client is on the ban list; no limit was consulted.
    Banned {
        /// When the ban ends.
        until: std::time::SystemTime,
        /// The `Retry-After` sent, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
    /// The shared limit store (Redis) did not answer within its time budget and the failure
    /// policy is fail-closed: refused with `503` without consulting any limit.
    Unavailable {
        /// The `Retry-After` sent, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
    /// The shared limit store (Redis) did not answer within its time budget and the failure
    /// policy is fail-open: the request was decided by the replica's local fallback limiter
    /// (each limit divided by the replica count).
    Degraded {
        /// The name of the tightest (or refusing) limit.
        policy: std::borrow::Cow<'static, str>,
        /// Whether the fallback limiter admitted the request.
        admitted: bool,
        /// Requests that limit would still admit right now (0 when refused).
        remaining: u64,
        /// The `Retry-After` sent when refused, in whole seconds; 0 when admitted.
        retry_after_secs: u64,
    },
}

impl RateLimitOutcome {
    /// A stable snake_case label for audit records and metrics: `allowed`, `not_limited`,
    /// `limited`, `banned`, `unavailable`, `allowed_degraded`, `limited_degraded`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RateLimitOutcome::Allowed { .. } => "allowed",
            RateLimitOutcome::NotLimited => "not_limited",
            RateLimitOutcome::Limited { .. } => "limited",
            RateLimitOutcome::Banned { .. } => "banned",
            RateLimitOutcome::Unavailable { .. } => "unavailable",
            RateLimitOutcome::Degraded { admitted: true, .. } => "allowed_degraded",
            RateLimitOutcome::Degraded { .. } => "limited_degraded",
        }
    }

    /// Whether the request was refused (limited, banned, refused by the fallback limiter, or
    /// refused because the shared store was unavailable).
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            RateLimitOutcome::Limited { .. }
                | RateLimitOutcome::Banned { .. }
                | RateLimitOutcome::Unavailable { .. }
                | RateLimitOutcome::Degraded {
                    admitted: false,
                    ..
                }
        )
    }
}
