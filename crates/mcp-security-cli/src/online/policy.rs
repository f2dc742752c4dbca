//! What the fetched documents mean for this server's settings: the protected-resource metadata
//! it serves (`resource`, `authorization_servers`) against its audiences and issuer, the
//! policy's scopes against the issuer's `scopes_supported`, and the allowed algorithms against
//! those the issuer advertises.

use mcp_security::core::url::ResourceUrl;
use mcp_security::prodcheck::rules;

use super::issuer::Metadata;
use super::keys::KeySetReport;
use super::{OnlineReport, OnlineSettings, Status};

/// The resource URL and authorization servers of the protected-resource metadata (RFC 9728)
/// the server serves, checked against the audiences it accepts and the issuer it trusts.
pub(crate) fn resource(s: &OnlineSettings, report: &mut OnlineReport) {
    let (resource_var, audience_var) = (s.var("RESOURCE_URL"), s.var("JWT_AUDIENCE"));
    // The server's rule: RESOURCE_URL, else the first http(s) audience.
    let resource = s.resource_url.clone().or_else(|| {
        s.audiences
            .iter()
            .find(|a| ResourceUrl::is_valid(a))
            .cloned()
    });
    match &resource {
        None => report.check(
            &rules::ONLINE_RESOURCE_NOT_AUDIENCE,
            Status::Skipped,
            format!(
                "no resource URL: neither {resource_var} nor an http(s) {audience_var} names it"
            ),
        ),
        Some(url) if s.audiences.is_empty() => report.check(
            &rules::ONLINE_RESOURCE_NOT_AUDIENCE,
            Status::Skipped,
            format!("resource {url}; {audience_var} is not set (see MCP-JWT-003 / MCP-JWT-005)"),
        ),
        Some(url) if s.audiences.iter().any(|a| a == url) => report.check(
            &rules::ONLINE_RESOURCE_NOT_AUDIENCE,
            Status::Ok,
            format!("resource {url} is an accepted audience"),
        ),
        Some(url) => report.fail(
            s,
            &rules::ONLINE_RESOURCE_NOT_AUDIENCE,
            format!(
                "the protected-resource metadata names {url} ({resource_var}), which is not \
                 among {audience_var} ({}): tokens an authorization server mints for that \
                 resource (RFC 8707) are refused",
                s.audiences.join(", ")
            ),
            Some(audience_var),
        ),
    }

    let servers_var = s.var("AUTHORIZATION_SERVERS");
    // The server's rule: AUTHORIZATION_SERVERS, else the issuer when keys are fetched.
    let listed: Vec<String> = match (&s.authorization_servers, &s.issuer) {
        (Some(list), _) => list.clone(),
        (None, Some(issuer)) if s.fetches_keys() => vec![issuer.clone()],
        _ => Vec::new(),
    };
    match &s.issuer {
        _ if listed.is_empty() => report.fail(
            s,
            &rules::ONLINE_ISSUER_NOT_LISTED,
            format!(
                "the protected-resource metadata lists no authorization server ({} and {servers_var} \
                 are not set): MCP clients cannot find where to get a token",
                s.var("JWT_ISSUER")
            ),
            Some(servers_var),
        ),
        Some(issuer) if !listed.contains(issuer) => report.fail(
            s,
            &rules::ONLINE_ISSUER_NOT_LISTED,
            format!(
                "{servers_var} lists {} but not {} {issuer:?}: tokens from the listed servers \
                 carry another iss and are refused",
                listed.join(", "),
                s.var("JWT_ISSUER")
            ),
            Some(servers_var),
        ),
        _ => report.check(
            &rules::ONLINE_ISSUER_NOT_LISTED,
            Status::Ok,
            format!("authorization_servers: {}", listed.join(", ")),
        ),
    }
}

/// The policy's scopes against the issuer's `scopes_supported`.
pub(crate) fn scopes(s: &OnlineSettings, meta: Option<&Metadata>, report: &mut OnlineReport) {
    let rule = &rules::ONLINE_SCOPES_NOT_SUPPORTED;
    if s.required_scopes.is_empty() {
        report.check(
            rule,
            Status::Skipped,
            "the policy requires no scope (no auth.mcp_scopes / auth.path_scopes)",
        );
        return;
    }
    let Some(supported) = meta.and_then(|m| m.scopes_supported.as_ref()) else {
        report.check(
            rule,
            Status::Skipped,
            "the issuer publishes no scopes_supported",
        );
        return;
    };
    let missing: Vec<&str> = s
        .required_scopes
        .iter()
        .filter(|scope| !supported.contains(scope))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        report.check(
            rule,
            Status::Ok,
            format!(
                "scopes_supported covers the policy's scopes ({})",
                s.required_scopes.join(", ")
            ),
        );
    } else {
        report.fail(
            s,
            rule,
            format!(
                "the policy requires {} but the issuer's scopes_supported lists only {}",
                missing.join(", "),
                if supported.is_empty() {
                    "none".to_owned()
                } else {
                    supported.join(", ")
                }
            ),
            None,
        );
    }
}

/// The allowed algorithms against those the issuer advertises (its metadata's
/// `id_token_signing_alg_values_supported` and its keys' `alg`).
pub(crate) fn algorithms(
    s: &OnlineSettings,
    meta: Option<&Metadata>,
    keys: Option<&KeySetReport>,
    report: &mut OnlineReport,
) {
    let rule = &rules::ONLINE_ALGORITHMS_NOT_ALLOWED;
    let mut advertised: Vec<&str> = Vec::new();
    let from_meta = meta.map(|m| m.signing_algorithms.as_slice()).unwrap_or(&[]);
    let from_keys = keys
        .map(|k| k.declared_algorithms.as_slice())
        .unwrap_or(&[]);
    for alg in from_meta.iter().chain(from_keys) {
        if !advertised.contains(&alg.as_str()) {
            advertised.push(alg);
        }
    }
    if advertised.is_empty() {
        report.check(
            rule,
            Status::Skipped,
            "the issuer advertises no signing algorithm",
        );
    } else if advertised
        .iter()
        .any(|a| s.algorithms.iter().any(|x| x == a))
    {
        report.check(
            rule,
            Status::Ok,
            format!(
                "the issuer advertises {}; allowed: {}",
                advertised.join(", "),
                s.algorithm_names()
            ),
        );
    } else {
        let var = s.var("JWT_ALGORITHMS");
        report.fail(
            s,
            rule,
            format!(
                "the issuer advertises only {} (id_token_signing_alg_values_supported, keys' alg), \
                 and the server allows {} ({var})",
                advertised.join(", "),
                s.algorithm_names()
            ),
            Some(var),
        );
    }
}
