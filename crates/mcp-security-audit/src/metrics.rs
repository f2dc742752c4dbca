//! Security metrics through the [`metrics`] facade: install any recorder (the Prometheus
//! exporter, StatsD, …) and these appear; without one they cost next to nothing.
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `mcp_requests_total` | counter | `status_class` (`1xx` … `5xx`, `error`: no response), `decision` (`allowed`, `rejected`, `error`, `cancelled`: the audit record's `decision`) | every request the audit layer saw, once it ended |
//! | `mcp_auth_failures_total` | counter | `reason` (`missing_credential`, `bad_signature`, `insufficient_scope`, …) | requests refused by authentication or authorization |
//! | `mcp_rate_limit_exceeded_total` | counter | `policy` (the limit's name, or `ban`) | requests refused by a rate limit or the ban list |
//! | `mcp_security_violations_total` | counter | `reason` | other refusals (the rejection code: `origin_not_allowed`, `payload_too_large`, `parse_error`, …) and detector firings (`auth_failure_burst`, `global_auth_failure_burst`, `request_flood`) |
//! | `mcp_request_duration_seconds` | histogram | `status` (`2xx`, `3xx`, `4xx`, `5xx`, `error`) | time from the request to the response head |
//! | `mcp_concurrent_requests` | gauge | — | requests inside the stack (until their response head) |
//! | `mcp_token_expiring_soon_total` | counter | — | distinct tokens seen that expire within the warning time |
//! | `mcp_audit_records_dropped_total` | counter | — | audit records the file sink dropped |
//! | `mcp_audit_write_errors_total` | counter | — | failed writes of the audit file |
//! | `mcp_audit_resumes_total` | counter | `previous` (`clean_close`, `unclean_stop`, `missing_tail`, `head_mismatch`, `head_missing`, `head_invalid`) | starts of the file sink on an existing log, by how the previous run ended (a lost tail also counts in `mcp_security_violations_total{reason="audit_tail_missing"}`) |
//! | `mcp_audit_bans_total` | counter | `detector` | clients a detector added to the ban list |
//! | `mcp_rate_limit_store_degraded_total` | counter | `outcome` (`unavailable`: refused with `503`, fail-closed; `allowed_degraded` / `limited_degraded`: decided by the local fallback limiter, fail-open) | requests the shared rate-limit store (Redis) did not answer in time for |
//!
//! Every label value comes from a fixed set: no path, principal, client address or tool name is
//! ever a label (those are in the audit records).
//!
//! With the Prometheus exporter, give the histogram buckets (it renders a summary otherwise),
//! and, when you install the recorder yourself (`install_recorder`, `build_recorder`), call
//! `PrometheusHandle::run_upkeep` every few seconds: the exporter keeps every histogram sample
//! until it is drained, so a server that is not scraped grows with each request.
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//!
//! let recorder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(
//!         Matcher::Full(mcp_security_audit::metrics::REQUEST_DURATION_SECONDS.to_owned()),
//!         mcp_security_audit::metrics::DURATION_BUCKETS,
//!     )?
//!     .build_recorder();
//! let handle = recorder.handle();
//! metrics::with_local_recorder(&recorder, mcp_security_audit::metrics::describe);
//! assert!(handle.render().is_empty() || handle.render().contains("mcp_"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use mcp_security_core::RateLimitOutcome;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::record::AuditRecord;

/// `mcp_requests_total`.
pub const REQUESTS_TOTAL: &str = "mcp_requests_total";
/// `mcp_auth_failures_total`.
pub const AUTH_FAILURES_TOTAL: &str = "mcp_auth_failures_total";
/// `mcp_rate_limit_exceeded_total`.
pub const RATE_LIMIT_EXCEEDED_TOTAL: &str = "mcp_rate_limit_exceeded_total";
/// `mcp_security_violations_total`.
pub const SECURITY_VIOLATIONS_TOTAL: &str = "mcp_security_violations_total";
/// `mcp_request_duration_seconds`.
pub const REQUEST_DURATION_SECONDS: &str = "mcp_request_duration_seconds";
/// `mcp_concurrent_requests`.
pub const CONCURRENT_REQUESTS: &str = "mcp_concurrent_requests";
/// `mcp_token_expiring_soon_total`.
pub const TOKEN_EXPIRING_SOON_TOTAL: &str = "mcp_token_expiring_soon_total";
/// `mcp_audit_records_dropped_total`.
pub const AUDIT_RECORDS_DROPPED_TOTAL: &str = "mcp_audit_records_dropped_total";
/// `mcp_audit_write_errors_total`.
pub const AUDIT_WRITE_ERRORS_TOTAL: &str = "mcp_audit_write_errors_total";
/// `mcp_audit_resumes_total`.
pub const AUDIT_RESUMES_TOTAL: &str = "mcp_audit_resumes_total";
/// `mcp_audit_bans_total`.
pub const AUDIT_BANS_TOTAL: &str = "mcp_audit_bans_total";
/// `mcp_rate_limit_store_degraded_total`.
pub const RATE_LIMIT_STORE_DEGRADED_TOTAL: &str = "mcp_rate_limit_store_degraded_total";

/// Histogram buckets for [`REQUEST_DURATION_SECONDS`], from 1 ms to 30 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Register help texts and units with the installed recorder. Call once after installing it.
pub fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Requests the audit layer saw, by status class and decision"
    );
    describe_counter!(
        AUTH_FAILURES_TOTAL,
        "Requests refused by authentication or authorization, by reason"
    );
    describe_counter!(
        RATE_LIMIT_EXCEEDED_TOTAL,
        "Requests refused by a rate limit or the ban list, by policy"
    );
    describe_counter!(
        SECURITY_VIOLATIONS_TOTAL,
        "Other refused requests and detector firings, by reason"
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from the request to the response head"
    );
    describe_gauge!(
        CONCURRENT_REQUESTS,
        "Requests inside the middleware stack, until their response head"
    );
    describe_counter!(
        TOKEN_EXPIRING_SOON_TOTAL,
        "Distinct tokens seen that expire within the warning time"
    );
    describe_counter!(
        AUDIT_RECORDS_DROPPED_TOTAL,
        "Audit records the file sink dropped"
    );
    describe_counter!(AUDIT_WRITE_ERRORS_TOTAL, "Failed writes of the audit file");
    describe_counter!(
        AUDIT_RESUMES_TOTAL,
        "Starts of the audit file sink on an existing log, by how the previous run ended"
    );
    describe_counter!(
        AUDIT_BANS_TOTAL,
        "Clients a detector added to the ban list, by detector"
    );
    describe_counter!(
        RATE_LIMIT_STORE_DEGRADED_TOTAL,
        "Requests decided without the shared rate-limit store (Redis), by outcome"
    );
}

/// One ended request: `mcp_requests_total`, and `mcp_rate_limit_store_degraded_total` when the
/// shared rate-limit store did not answer for it.
pub(crate) fn request(record: &AuditRecord) {
    let status = status_class(record.status);
    let decision = record.decision().as_str();
    counter!(REQUESTS_TOTAL, "status_class" => status, "decision" => decision).increment(1);
    if let Some(
        outcome @ (RateLimitOutcome::Unavailable { .. } | RateLimitOutcome::Degraded { .. }),
    ) = &record.rate_limit
    {
        counter!(RATE_LIMIT_STORE_DEGRADED_TOTAL, "outcome" => outcome.as_str()).increment(1);
    }
}

pub(crate) fn auth_failure(reason: &'static str) {
    counter!(AUTH_FAILURES_TOTAL, "reason" => reason).increment(1);
}

pub(crate) fn rate_limited(policy: &str) {
    counter!(RATE_LIMIT_EXCEEDED_TOTAL, "policy" => policy.to_owned()).increment(1);
}

pub(crate) fn violation(reason: &'static str) {
    counter!(SECURITY_VIOLATIONS_TOTAL, "reason" => reason).increment(1);
}

pub(crate) fn duration(status: &'static str, seconds: f64) {
    histogram!(REQUEST_DURATION_SECONDS, "status" => status).record(seconds);
}

pub(crate) fn in_flight(delta: f64) {
    gauge!(CONCURRENT_REQUESTS).increment(delta);
}

pub(crate) fn token_expiring_soon() {
    counter!(TOKEN_EXPIRING_SOON_TOTAL).increment(1);
}

pub(crate) fn record_dropped() {
    counter!(AUDIT_RECORDS_DROPPED_TOTAL).increment(1);
}

pub(crate) fn record_write_error() {
    counter!(AUDIT_WRITE_ERRORS_TOTAL).increment(1);
}

pub(crate) fn resume(previous: &'static str) {
    counter!(AUDIT_RESUMES_TOTAL, "previous" => previous).increment(1);
}

pub(crate) fn ban(detector: &'static str) {
    counter!(AUDIT_BANS_TOTAL, "detector" => detector).increment(1);
}

/// The `status` label of a response status.
pub(crate) fn status_class(status: Option<http::StatusCode>) -> &'static str {
    match status.map(|s| s.as_u16()) {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(_) => "5xx",
        None => "error",
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
