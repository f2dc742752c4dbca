//! `mcp-security check --online`: after the offline checks, fetch what the server would fetch
//! from the identity provider and report what would go wrong, as findings with rule ids
//! (`MCP-ONLINE-001` … `MCP-ONLINE-010`, defined with the other rules in `mcp-prodcheck`).
//!
//! 1. The issuer's metadata (RFC 8414, OpenID Connect Discovery) is served, over https, and
//!    names the configured issuer exactly (RFC 8414 §3.3).
//! 2. The JWK Set (`JWKS_URL`, else the metadata's `jwks_uri`) is served and holds a key the
//!    server can use with the allowed algorithms; RSA keys under 2048 bits are reported.
//! 3. The protected-resource metadata the server serves names a resource that is an accepted
//!    audience, and the issuer as authorization server.
//! 4. The issuer's `scopes_supported` (when published) covers the scopes the policy requires.
//! 5. The issuer advertises at least one allowed signing algorithm.
//!
//! Requests time out after 5 s, bodies are bounded (1 MiB), and plain `http://` is fetched only
//! from a loopback host in development.

mod http;
mod issuer;
mod keys;
mod policy;
mod settings;

pub(crate) use settings::OnlineSettings;

use mcp_security::prodcheck::{Finding, Rule, rules};
use serde_json::{Value, json};

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Failed,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One check that ran (or could not): its rule, how it ended, and what was seen.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    rule: &'static Rule,
    status: Status,
    detail: String,
}

/// The outcome of the online checks: findings for the report, and every check with its status.
#[derive(Debug, Default)]
pub(crate) struct OnlineReport {
    pub(crate) findings: Vec<Finding>,
    pub(crate) checks: Vec<Checked>,
}

impl OnlineReport {
    /// Record a check that found nothing wrong, or was skipped.
    fn check(&mut self, rule: &'static Rule, status: Status, detail: impl Into<String>) {
        self.checks.push(Checked {
            rule,
            status,
            detail: detail.into(),
        });
    }

    /// Record a failed check and its finding (at the rule's severity in the environment; its
    /// fix names the deployment's variables).
    fn fail(
        &mut self,
        s: &OnlineSettings,
        rule: &'static Rule,
        message: String,
        setting: Option<String>,
    ) {
        self.report(s, rule, Status::Failed, message, setting);
    }

    /// Record a check and a finding about it.
    fn report(
        &mut self,
        s: &OnlineSettings,
        rule: &'static Rule,
        status: Status,
        message: String,
        setting: Option<String>,
    ) {
        self.check(rule, status, message.clone());
        if let Some(severity) = rule.severity_in(s.environment) {
            let fix = if s.env_prefix == "MCP" {
                rule.help.to_owned()
            } else {
                rule.help.replace("MCP_", &s.var(""))
            };
            self.findings
                .push(Finding::new(rule, severity, message, fix, setting));
        }
    }

    /// The checks as text, one line each: `ok      MCP-ONLINE-002  metadata: …`.
    pub(crate) fn human(&self) -> String {
        let mut text = String::from("online checks:\n");
        for c in &self.checks {
            text.push_str(&format!(
                "  {:<8}{}  {}\n",
                c.status.as_str(),
                c.rule.id,
                c.detail
            ));
        }
        text
    }

    /// The checks as JSON: `[{"id", "status", "detail"}]`.
    pub(crate) fn json(&self) -> Value {
        json!({
            "checks": self.checks.iter().map(|c| json!({
                "id": c.rule.id,
                "status": c.status.as_str(),
                "detail": c.detail,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Run the online checks for `s`.
pub(crate) async fn run(s: &OnlineSettings) -> OnlineReport {
    let mut report = OnlineReport::default();
    let nothing = &rules::ONLINE_NOTHING_TO_CHECK;
    if s.issuer.is_none() && s.jwks_url.is_none() {
        report.report(
            s,
            nothing,
            Status::Skipped,
            format!(
                "neither {} nor {} is set: there is no identity provider to fetch from",
                s.var("JWT_ISSUER"),
                s.var("JWKS_URL")
            ),
            None,
        );
        return report;
    }
    if !s.fetches_keys() {
        report.report(
            s,
            nothing,
            Status::Skipped,
            format!(
                "{} is only the required iss of HS256 tokens ({} is set, {} is not): the server \
                 fetches no keys, so nothing was fetched",
                s.var("JWT_ISSUER"),
                s.var("JWT_SECRET"),
                s.var("JWKS_URL")
            ),
            Some(s.var("JWT_ISSUER")),
        );
        return report;
    }
    let client = match http::client(s.environment) {
        Ok(client) => client,
        Err(why) => {
            report.fail(s, &rules::ONLINE_METADATA_UNREACHABLE, why, None);
            return report;
        }
    };

    let meta = match &s.issuer {
        Some(issuer) => issuer::check(&client, s, issuer, &mut report).await,
        None => {
            report.check(
                &rules::ONLINE_METADATA_UNREACHABLE,
                Status::Skipped,
                format!("{} is not set: no metadata to fetch", s.var("JWT_ISSUER")),
            );
            None
        }
    };
    let keys = jwks(&client, s, meta.as_ref(), &mut report).await;
    policy::resource(s, &mut report);
    policy::scopes(s, meta.as_ref(), &mut report);
    policy::algorithms(s, meta.as_ref(), keys.as_ref(), &mut report);
    report
}

/// Fetch the JWK Set the server would use and examine its keys.
async fn jwks(
    client: &reqwest::Client,
    s: &OnlineSettings,
    meta: Option<&issuer::Metadata>,
    report: &mut OnlineReport,
) -> Option<keys::KeySetReport> {
    let unreachable = &rules::ONLINE_JWKS_UNREACHABLE;
    let (url, setting) = match (&s.jwks_url, meta) {
        (Some(url), _) => (url.clone(), s.var("JWKS_URL")),
        (None, Some(meta)) => match &meta.jwks_uri {
            Some(uri) => (uri.clone(), s.var("JWT_ISSUER")),
            None => {
                report.fail(
                    s,
                    unreachable,
                    format!(
                        "the metadata of {} has no jwks_uri: the server cannot discover the \
                         issuer's keys",
                        s.var("JWT_ISSUER")
                    ),
                    Some(s.var("JWT_ISSUER")),
                );
                return None;
            }
        },
        (None, None) => {
            report.check(
                unreachable,
                Status::Skipped,
                "no metadata was fetched, so there is no jwks_uri to fetch",
            );
            return None;
        }
    };
    let examined = match http::get_json(client, &url, s.environment).await {
        Ok(doc) => keys::examine(&doc, &s.algorithms),
        Err(why) => Err(why),
    };
    let found = match examined {
        Ok(found) => found,
        Err(why) => {
            report.fail(
                s,
                unreachable,
                format!("JWK Set {url}: {why}"),
                Some(setting),
            );
            return None;
        }
    };
    report.check(
        unreachable,
        Status::Ok,
        format!("JWK Set {url}: {} key(s)", found.total),
    );
    let described = if found.keys.is_empty() {
        "it has no key".to_owned()
    } else {
        found.keys.join("; ")
    };
    if found.usable == 0 {
        report.fail(
            s,
            &rules::ONLINE_NO_USABLE_KEY,
            format!(
                "JWK Set {url}: no key is usable with the allowed algorithms ({}): {described}",
                s.algorithm_names()
            ),
            Some(setting.clone()),
        );
    } else {
        report.check(
            &rules::ONLINE_NO_USABLE_KEY,
            Status::Ok,
            format!("{} usable key(s): {described}", found.usable),
        );
    }
    if found.weak.is_empty() {
        report.check(
            &rules::ONLINE_WEAK_KEY,
            Status::Ok,
            "no RSA key under 2048 bits",
        );
    } else {
        report.fail(
            s,
            &rules::ONLINE_WEAK_KEY,
            format!(
                "JWK Set {url} publishes RSA keys under 2048 bits: {}",
                found.weak.join(", ")
            ),
            Some(setting),
        );
    }
    Some(found)
}
