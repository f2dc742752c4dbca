//! Tokens and what tools return: the built-in token endpoint (TLS in front of it beyond
//! loopback, a short TTL), the longest HS256 token lifetime accepted, and the result guard.

use std::time::Duration;

use super::Checker;
use crate::rules;

/// The longest token lifetime accepted (one hour), as the endpoint itself enforces.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

impl Checker<'_> {
    pub(super) fn token_endpoint(&mut self) {
        let i = self.input;
        if !i.token_endpoint {
            return;
        }
        let https_resource = i
            .resource()
            .and_then(|url| url.get(..8))
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if let Some(addr) = i.bind_addr
            && !addr.ip().is_loopback()
            && !https_resource
            && i.trusted_proxies.is_empty()
        {
            self.add(
                &rules::TOKEN_ENDPOINT_PLAINTEXT,
                format!(
                    "the token endpoint ({}) is on and the server is bound to {addr} ({}), \
                     reachable beyond this machine, with no https {} and no {}: API keys \
                     (client secrets) and the tokens they buy would cross the network in clear",
                    self.var("TOKEN_ENDPOINT"),
                    self.var("BIND"),
                    self.var("RESOURCE_URL"),
                    self.var("TRUSTED_PROXIES"),
                ),
                format!(
                    "terminate TLS in a proxy in front of the server and set {} to its https:// \
                     URL (and {} to the proxy's address), or bind to 127.0.0.1 ({}=127.0.0.1:8080)",
                    self.var("RESOURCE_URL"),
                    self.var("TRUSTED_PROXIES"),
                    self.var("BIND"),
                ),
                Some(self.var("TOKEN_ENDPOINT")),
            );
        }
        if let Some(ttl) = i.token_ttl
            && ttl > MAX_TOKEN_TTL
        {
            self.add(
                &rules::TOKEN_TTL_LONG,
                format!(
                    "{} is {}s: the endpoint's tokens cannot be revoked before they expire, so \
                     a leaked one works that long after its key is disabled",
                    self.var("TOKEN_TTL"),
                    ttl.as_secs(),
                ),
                format!("set {} to 1h or less (default 15m)", self.var("TOKEN_TTL")),
                Some(self.var("TOKEN_TTL")),
            );
        }
    }
}

impl Checker<'_> {
    pub(super) fn jwt_lifetime(&mut self) {
        let i = self.input;
        let Some(max) = i.jwt_max_lifetime else {
            return;
        };
        if i.jwt_secret.is_none() || max.is_some_and(|d| d <= DAY) {
            return;
        }
        let what = match max {
            Some(d) => format!("is {}s", d.as_secs()),
            None => "is off".to_owned(),
        };
        self.add(
            &rules::JWT_LONG_LIFETIME,
            format!(
                "{} {what} while HS256 secrets ({}) are set: tokens signed with them may live \
                 longer than a day, and none can be revoked before it expires",
                self.var("JWT_MAX_LIFETIME"),
                self.var("JWT_SECRET"),
            ),
            format!(
                "set {} to 24h or less, or unset it (24 h is the HS256 default)",
                self.var("JWT_MAX_LIFETIME")
            ),
            Some(self.var("JWT_MAX_LIFETIME")),
        );
    }
}

impl Checker<'_> {
    pub(super) fn result_guard(&mut self) {
        if self.input.result_guard.as_deref() != Some("off") {
            return;
        }
        self.add(
            &rules::RESULT_GUARD_OFF,
            format!(
                "{} is off: a credential a tool returns (a cloud key, a private key, a token in a \
                 file it read) reaches the agent as it is",
                self.var("RESULT_GUARD")
            ),
            format!(
                "set {}=redact (each credential replaced by [redacted]) or block (the answer \
                 withheld)",
                self.var("RESULT_GUARD")
            ),
            Some(self.var("RESULT_GUARD")),
        );
    }
}

/// The HS256 default maximum token lifetime.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mcp_security_core::config::Environment;

    use crate::{CheckInput, RuntimeEnvironment, Severity, check};

    fn ids(input: &CheckInput) -> Vec<(&'static str, Severity)> {
        check(input, &RuntimeEnvironment::new())
            .findings()
            .iter()
            .filter(|f| f.id().starts_with("MCP-TOKEN-"))
            .map(|f| (f.id(), f.severity()))
            .collect()
    }

    fn endpoint_on() -> CheckInput {
        CheckInput {
            token_endpoint: true,
            token_ttl: Some(Duration::from_secs(900)),
            bind_addr: Some("0.0.0.0:8080".parse().unwrap()),
            ..CheckInput::default()
        }
    }

    #[test]
    fn plaintext_endpoint_beyond_loopback_is_an_error_in_production() {
        let input = endpoint_on();
        assert_eq!(ids(&input), [("MCP-TOKEN-001", Severity::Error)]);
        let report = check(&input, &RuntimeEnvironment::new());
        let finding = report
            .findings()
            .iter()
            .find(|f| f.id() == "MCP-TOKEN-001")
            .unwrap();
        assert_eq!(finding.setting(), Some("MCP_TOKEN_ENDPOINT"));
        assert!(
            finding.message().contains("0.0.0.0:8080"),
            "{}",
            finding.message()
        );
        assert!(
            finding.fix().contains("MCP_RESOURCE_URL"),
            "{}",
            finding.fix()
        );

        let dev = CheckInput {
            environment: Environment::Development,
            ..endpoint_on()
        };
        assert_eq!(ids(&dev), [("MCP-TOKEN-001", Severity::Warning)]);
    }

    #[test]
    fn tls_in_front_loopback_or_endpoint_off_is_fine() {
        let https = CheckInput {
            resource_url: Some("https://mcp.example.com/mcp".to_owned()),
            ..endpoint_on()
        };
        assert_eq!(ids(&https), []);
        let proxied = CheckInput {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..endpoint_on()
        };
        assert_eq!(ids(&proxied), []);
        let loopback = CheckInput {
            bind_addr: Some("127.0.0.1:8080".parse().unwrap()),
            ..endpoint_on()
        };
        assert_eq!(ids(&loopback), []);
        let plain_url = CheckInput {
            resource_url: Some("http://mcp.example.com/mcp".to_owned()),
            ..endpoint_on()
        };
        assert_eq!(ids(&plain_url), [("MCP-TOKEN-001", Severity::Error)]);
        let off = CheckInput {
            token_endpoint: false,
            ..endpoint_on()
        };
        assert_eq!(ids(&off), []);
    }

    #[test]
    fn a_ttl_over_an_hour_is_an_error_everywhere() {
        for environment in [Environment::Production, Environment::Development] {
            let input = CheckInput {
                environment,
                bind_addr: Some("127.0.0.1:8080".parse().unwrap()),
                token_ttl: Some(Duration::from_secs(2 * 60 * 60)),
                ..endpoint_on()
            };
            assert_eq!(ids(&input), [("MCP-TOKEN-002", Severity::Error)]);
            let report = check(&input, &RuntimeEnvironment::new());
            let finding = report
                .findings()
                .iter()
                .find(|f| f.id() == "MCP-TOKEN-002")
                .unwrap();
            assert!(finding.message().contains("7200s"), "{}", finding.message());
        }
        let hour = CheckInput {
            bind_addr: Some("127.0.0.1:8080".parse().unwrap()),
            token_ttl: Some(Duration::from_secs(60 * 60)),
            ..endpoint_on()
        };
        assert_eq!(ids(&hour), []);
    }

    #[test]
    fn an_unbounded_hs256_lifetime_is_a_production_warning() {
        let with_secret = |max| CheckInput {
            jwt_secret: Some(crate::SecretInput::value(
                "MCP_JWT_SECRET",
                "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=",
            )),
            jwt_max_lifetime: max,
            ..CheckInput::default()
        };
        let lifetime = |input: &CheckInput| -> Vec<(&'static str, Severity)> {
            check(input, &RuntimeEnvironment::new())
                .findings()
                .iter()
                .filter(|f| f.id() == "MCP-JWT-006")
                .map(|f| (f.id(), f.severity()))
                .collect()
        };
        assert_eq!(
            lifetime(&with_secret(Some(None))),
            [("MCP-JWT-006", Severity::Warning)]
        );
        assert_eq!(
            lifetime(&with_secret(Some(Some(Duration::from_secs(48 * 3600))))),
            [("MCP-JWT-006", Severity::Warning)]
        );
        assert_eq!(
            lifetime(&with_secret(Some(Some(Duration::from_secs(3600))))),
            []
        );
        assert_eq!(lifetime(&with_secret(None)), []);
        let dev = CheckInput {
            environment: Environment::Development,
            ..with_secret(Some(None))
        };
        assert_eq!(lifetime(&dev), []);
        let no_secret = CheckInput {
            jwt_max_lifetime: Some(None),
            ..CheckInput::default()
        };
        assert_eq!(lifetime(&no_secret), []);
    }

    #[test]
    fn the_result_guard_off_is_production_info() {
        let with = |mode: Option<&str>, environment| CheckInput {
            environment,
            result_guard: mode.map(str::to_owned),
            ..CheckInput::default()
        };
        let guard = |input: &CheckInput| -> Vec<(&'static str, Severity)> {
            check(input, &RuntimeEnvironment::new())
                .findings()
                .iter()
                .filter(|f| f.id() == "MCP-GUARD-001")
                .map(|f| (f.id(), f.severity()))
                .collect()
        };
        assert_eq!(
            guard(&with(Some("off"), Environment::Production)),
            [("MCP-GUARD-001", Severity::Info)]
        );
        assert_eq!(guard(&with(Some("redact"), Environment::Production)), []);
        assert_eq!(guard(&with(Some("block"), Environment::Production)), []);
        assert_eq!(guard(&with(None, Environment::Production)), []);
        assert_eq!(guard(&with(Some("off"), Environment::Development)), []);
    }
}
