//! # mcp-prodcheck
//!
//! Production-readiness checks for an MCP server's security configuration, in the manner of
//! Django's `check --deploy`: [`check`] reads a [`CheckInput`] (a snapshot of the settings, with
//! facts about each secret instead of the secret) and a [`RuntimeEnvironment`] (effective user,
//! working directory, file permissions) and returns a [`Report`] of [`Finding`]s, each with a
//! stable id, a severity, a message naming the deployment's variables, and a fix.
//!
//! The `mcp-security` facade runs it when it builds the stack and refuses to start on any error
//! in production (in development errors are printed as warnings); `mcp-security check` runs it
//! in CI and prints the report as text, JSON or SARIF 2.1.0 ([`Report::to_sarif`]) for GitHub
//! code scanning.
//!
//! ```
//! use mcp_prodcheck::{CheckInput, RuntimeEnvironment, SecretInput, Severity, check};
//!
//! let mut input = CheckInput::default(); // production, auth required, no credential yet
//! input.prefix = "IQ".into();
//! input.api_key = Some(SecretInput::value("IQ_API_KEY", "iqmcp-sk-your-secure-key-here"));
//! input.cors_origins = Some(vec!["https://app.example.com".into()]);
//! input.resource_url = Some("https://iq.example.com/mcp".into());
//!
//! let report = check(&input, &RuntimeEnvironment::new());
//! assert_eq!(report.ids(), ["MCP-KEY-003", "MCP-KEY-001", "MCP-AUDIT-002"]);
//! assert_eq!(report.findings()[0].severity(), Severity::Error);
//! assert!(report.findings()[0].message().starts_with("IQ_API_KEY: "));
//! ```
//!
//! # Findings
//!
//! Severity in production / in development (`—`: not checked there). Variables are shown with
//! the default prefix `MCP_`.
//!
//! | id | production | development | finds | fix |
//! |---|---|---|---|---|
//! | `MCP-CONFIG-001` | error | error | a setting cannot be parsed or is refused (only the CLI reports this; a server fails to build) | correct the named setting |
//! | `MCP-AUTH-001` | error | warning | `MCP_REQUIRE_AUTH=false` | `MCP_REQUIRE_AUTH=true` and a credential source |
//! | `MCP-AUTH-002` | error | error | authentication required but no `MCP_API_KEY(_FILE)`, `MCP_API_KEYS_FILE`, `MCP_JWT_SECRET(_FILE)`, `MCP_JWT_ISSUER`, `MCP_JWKS_URL` | set one (`mcp-security keygen`, `openssl rand -base64 32`) |
//! | `MCP-AUTH-003` | error | — | `MCP_DEV_BYPASS` on | remove it outside development |
//! | `MCP-AUTH-004` | warning | warning | `MCP_URL_AUTH=true` (`?token=`) | send `Authorization: Bearer` |
//! | `MCP-AUTH-005` | error | warning | authentication on, but neither `MCP_RESOURCE_URL` nor an http(s) `MCP_JWT_AUDIENCE` (with JWTs) names the protected resource: the OAuth metadata would come from `Host`, or not be served | `MCP_RESOURCE_URL=https://mcp.example.com/mcp` |
//! | `MCP-GUARD-001` | info | — | `MCP_RESULT_GUARD=off` (the default): tool results reach clients unscanned for credentials | `MCP_RESULT_GUARD=redact` |
//! | `MCP-TOKEN-001` | error | warning | the token endpoint (`MCP_TOKEN_ENDPOINT`) is on, bound beyond loopback, with neither an https `MCP_RESOURCE_URL` nor `MCP_TRUSTED_PROXIES` (TLS terminated in front): API keys and tokens would cross the network in clear | terminate TLS in front and say so with an https resource URL, or bind 127.0.0.1 |
//! | `MCP-TOKEN-002` | error | error | `MCP_TOKEN_TTL` over one hour: issued tokens cannot be revoked before they expire | `15m` (the default) |
//! | `MCP-KEY-001` | error | warning | API key shorter than 32 bytes | `mcp-security keygen` |
//! | `MCP-KEY-002` | error | warning | API key with low entropy (see [`input`]) | `mcp-security keygen` |
//! | `MCP-KEY-003` | error | warning | API key is a placeholder (`your-…-here`, `changeme`, `secret`, …) or a key printed in widely copied MCP security guides or our docs | `mcp-security keygen` |
//! | `MCP-KEY-004` | warning | — | an enabled API key of `MCP_API_KEYS_FILE` whose `created_at` is older than `MCP_KEY_MAX_AGE` (default 90 days) | `mcp-security keygen --name <name>`, then retire the old entry |
//! | `MCP-KEY-005` | warning | warning | an enabled API key of `MCP_API_KEYS_FILE` expires within 7 days | `mcp-security keygen --name <name>` now |
//! | `MCP-JWT-001` | error | warning | an HS256 secret under 256 bits | `openssl rand -base64 32` |
//! | `MCP-JWT-002` | error | warning | an HS256 secret that is a placeholder, published, or low entropy | `openssl rand -base64 32` |
//! | `MCP-JWT-003` | warning | — | JWTs without `MCP_JWT_AUDIENCE` | one audience per server |
//! | `MCP-JWT-004` | error | error | `MCP_JWT_ISSUER` or `MCP_JWKS_URL` over plain http beyond loopback | an https:// URL |
//! | `MCP-JWT-005` | error | warning | an issuer's JWKS without `MCP_JWT_AUDIENCE` | this server's resource URL as audience |
//! | `MCP-JWT-006` | warning | — | `MCP_JWT_MAX_LIFETIME` off or above 24 h while HS256 secrets are set | 24 h or less (the default) |
//! | `MCP-JWT-007` | warning | — | the HS256 secret is older than `MCP_JWT_SECRET_MAX_AGE` (default 30 days), dated by `MCP_JWT_SECRET_CREATED_AT` or else its `MCP_JWT_SECRET_FILE`'s modification time | a new secret first in the list (`openssl rand -base64 32` or `mcp-security keygen`) |
//! | `MCP-SECRET-001` | error | warning | API key pepper, audit HMAC or fingerprint key weak | `openssl rand -hex 32` |
//! | `MCP-DEBUG-001` | error | — | `MCP_DEBUG=true` | `MCP_DEBUG=false` |
//! | `MCP-CORS-001` | error | warning | `MCP_CORS_ORIGINS=*` | list the origins |
//! | `MCP-CORS-002` | error | error | CORS credentials with a wildcard origin | list the origins or drop credentials |
//! | `MCP-CORS-003` | warning | — | no `MCP_CORS_ORIGINS` (no explicit Origin allowlist) | list the web apps' origins |
//! | `MCP-NET-001` | error | warning | bound to a non-loopback address without authentication | a credential source, or bind 127.0.0.1 |
//! | `MCP-NET-002` | warning | warning | `MCP_ALLOWED_HOSTS=*` (Host check off) | list the host names |
//! | `MCP-NET-003` | warning | warning | a `[[network]]` path rule's `allow` contains `0.0.0.0/0` or `::/0`: it allows every address (of that family) while looking restrictive | the VPN or cluster CIDR; no lists at all to open the path |
//! | `MCP-PROXY-001` | error | error | `MCP_TRUSTED_PROXIES` contains `0.0.0.0/0` or `::/0` | list only your proxies |
//! | `MCP-RATE-001` | warning | — | `MCP_RATE_LIMIT_ENABLED=false` | turn it on |
//! | `MCP-RATE-002` | error | — | `MCP_RATE_LIMIT_REDIS_URL` is `redis://` (plain text) to a non-loopback host: limit state and the password cross the network in clear | `rediss://` (`MCP_RATE_LIMIT_REDIS_CA_FILE` for a private CA) with an ACL user, or Redis on loopback |
//! | `MCP-RATE-003` | info | — | `MCP_RATE_LIMIT_REDIS_FAILURE=open` | set `MCP_RATE_LIMIT_REPLICAS`, or `closed` |
//! | `MCP-AUDIT-001` | warning | — | `MCP_AUDIT_ENABLED=false` | turn it on |
//! | `MCP-AUDIT-002` | warning | — | audit without a log file and HMAC key (not tamper-evident) | `MCP_AUDIT_LOG_FILE` + `MCP_AUDIT_HMAC_KEY_FILE` |
//! | `MCP-FILE-001` | warning | warning | a secret file (the Redis password, URL and client-key files too; or `.env`) with a mode beyond `640` | `chmod 600` |
//! | `MCP-FILE-002` | warning | warning | the audit log or a `MCP_DATA_FILES` file with a mode beyond `640` | `chmod 600` (640 where a group must read it) |
//! | `MCP-FILE-003` | warning | warning | `.env` in the working directory, inside a git work tree, not git-ignored | add it to `.gitignore` |
//! | `MCP-FILE-004` | info | info | a `*_FILE` secret cannot be read here (an offline CI check), so it was not checked | check where it is mounted; the server checks at start |
//! | `MCP-PROC-001` | warning | warning | running as root | run as an unprivileged user |
//! | `MCP-HDR-001` | info | info | `X-XSS-Protection` other than `0` | send `0` (OWASP) |
//! | `MCP-ONLINE-001` | info | info | (`check --online`) no `MCP_JWT_ISSUER`/`MCP_JWKS_URL`, or an issuer used only as the HS256 `iss`: nothing fetched | — |
//! | `MCP-ONLINE-002` | error | error | (`check --online`) the issuer's metadata (RFC 8414 / OpenID Connect) not served over https | serve it |
//! | `MCP-ONLINE-003` | error | error | (`check --online`) the metadata's `issuer` is not `MCP_JWT_ISSUER` (RFC 8414 §3.3) | set it exactly |
//! | `MCP-ONLINE-004` | error | error | (`check --online`) `jwks_uri` / `MCP_JWKS_URL` missing, unreachable or not a JWK Set | serve it |
//! | `MCP-ONLINE-005` | error | error | (`check --online`) no key usable with the allowed algorithms | publish RSA ≥ 2048 / P-256 / P-384 / Ed25519, or allow its algorithm |
//! | `MCP-ONLINE-006` | error | warning | (`check --online`) an RSA key under 2048 bits in the JWK Set | rotate the key |
//! | `MCP-ONLINE-007` | warning | warning | (`check --online`) `MCP_RESOURCE_URL` not among `MCP_JWT_AUDIENCE` | add it |
//! | `MCP-ONLINE-008` | warning | warning | (`check --online`) the protected-resource metadata does not list the issuer as an authorization server | list `MCP_JWT_ISSUER` |
//! | `MCP-ONLINE-009` | warning | warning | (`check --online`) the issuer's `scopes_supported` lacks scopes the policy requires | define them at the identity provider |
//! | `MCP-ONLINE-010` | warning | warning | (`check --online`) the issuer advertises only algorithms not in `MCP_JWT_ALGORITHMS` | allow one |
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod checks;
pub mod input;
pub mod report;
pub mod rules;
pub mod runtime;

pub use checks::check;
pub use input::{ApiKeyDates, CheckInput, SecretFacts, SecretInput};
pub use report::{Finding, Report, SarifLocation};
pub use rules::{RULES, Rule, Severity};
pub use runtime::RuntimeEnvironment;

/// The [`mcp_security_core`] crate these checks build on, re-exported for convenience.
pub use mcp_security_core;

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_security_core::config::Environment;

    const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
    const JWT: &str = "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=";

    fn clean() -> CheckInput {
        CheckInput {
            bind_addr: Some("0.0.0.0:8080".parse().unwrap()),
            api_key: Some(SecretInput::value("MCP_API_KEY", KEY)),
            jwt_secret: Some(SecretInput::list("MCP_JWT_SECRET", JWT)),
            jwt_audiences: vec!["https://mcp.example.com/mcp".into()],
            cors_origins: Some(vec!["https://app.example.com".into()]),
            audit_log_file: Some("/var/log/mcp/audit.jsonl".into()),
            audit_hmac_key: Some(SecretInput::value(
                "MCP_AUDIT_HMAC_KEY",
                "4f9a1c7e2b8d3f60a5e9c1b7d2f84a36e0c9b5a17d3f8e2c6b0a4d9f1e7c3b52",
            )),
            response_headers: vec![("x-xss-protection".into(), "0".into())],
            ..CheckInput::default()
        }
    }

    fn run(input: &CheckInput) -> Report {
        check(input, &RuntimeEnvironment::new().euid(Some(1000)))
    }

    #[test]
    fn a_clean_production_configuration_has_no_findings() {
        let r = run(&clean());
        assert!(r.findings().is_empty(), "{r}");
    }

    /// One case per rule the input alone can trigger (files, `.env` and root are tested in the
    /// facade's table test and below).
    #[test]
    fn each_rule_from_the_input() {
        type Edit = fn(&mut CheckInput);
        let cases: &[(&str, Edit)] = &[
            ("MCP-AUTH-001", |i| i.require_auth = false),
            ("MCP-AUTH-002", |i| {
                i.api_key = None;
                i.jwt_secret = None;
            }),
            ("MCP-AUTH-003", |i| i.dev_bypass = true),
            ("MCP-AUTH-004", |i| i.url_auth = true),
            ("MCP-AUTH-005", |i| i.jwt_audiences.clear()),
            ("MCP-AUTH-005", |i| {
                i.jwt_audiences = vec!["filesystem".into()]
            }),
            ("MCP-AUTH-005", |i| i.jwt_secret = None),
            ("MCP-KEY-001", |i| {
                i.api_key = Some(SecretInput::value("MCP_API_KEY", "mcp-sk-Q2w9Zr4"))
            }),
            ("MCP-KEY-002", |i| {
                i.api_key = Some(SecretInput::value("MCP_API_KEY", &"k3y!".repeat(10)))
            }),
            ("MCP-KEY-003", |i| {
                i.api_key = Some(SecretInput::value(
                    "MCP_API_KEY",
                    "mcp_-tn1XqqtdGub5NAzzn_qSoLrvJv9gmMwB0y-kfLDsak",
                ))
            }),
            ("MCP-JWT-001", |i| {
                i.jwt_secret = Some(SecretInput::list("MCP_JWT_SECRET", &format!("{JWT},short")))
            }),
            ("MCP-JWT-002", |i| {
                i.jwt_secret = Some(SecretInput::list(
                    "MCP_JWT_SECRET",
                    "your-super-secret-key-change-this",
                ))
            }),
            ("MCP-JWT-003", |i| i.jwt_audiences.clear()),
            ("MCP-JWT-004", |i| {
                i.jwks_url = Some("http://idp.example.com/jwks.json".into())
            }),
            ("MCP-JWT-004", |i| {
                i.jwt_issuer = Some("HTTP://[2001:db8::1]:8443/realms/mcp".into())
            }),
            ("MCP-JWT-005", |i| {
                i.jwt_secret = None;
                i.jwt_issuer = Some("https://idp.example.com".into());
                i.jwt_audiences.clear();
            }),
            ("MCP-RATE-002", |i| {
                i.rate_limit_redis_url = Some("redis://redis.internal:6379/0".into())
            }),
            ("MCP-RATE-003", |i| {
                i.rate_limit_redis_url = Some("rediss://redis.internal:6380".into());
                i.rate_limit_redis_fail_open = true;
            }),
            ("MCP-SECRET-001", |i| {
                i.other_secrets = vec![SecretInput::value("MCP_API_KEY_PEPPER", "changeme")]
            }),
            ("MCP-DEBUG-001", |i| i.debug = true),
            ("MCP-CORS-001", |i| i.cors_origins = Some(vec!["*".into()])),
            ("MCP-CORS-003", |i| i.cors_origins = None),
            ("MCP-NET-001", |i| i.dev_bypass = true),
            ("MCP-NET-002", |i| i.host_check = false),
            ("MCP-PROXY-001", |i| {
                i.trusted_proxies = vec!["::ffff:0.0.0.0/96".parse().unwrap()]
            }),
            ("MCP-RATE-001", |i| i.rate_limit_enabled = false),
            ("MCP-AUDIT-001", |i| i.audit_enabled = false),
            ("MCP-AUDIT-002", |i| i.audit_hmac_key = None),
            ("MCP-FILE-004", |i| {
                i.api_key = Some(SecretInput::file(
                    "MCP_API_KEY_FILE",
                    "/run/secrets/api_key",
                    Err("No such file or directory".into()),
                    false,
                ))
            }),
            ("MCP-HDR-001", |i| {
                i.response_headers = vec![("X-XSS-Protection".into(), "1; mode=block".into())]
            }),
        ];
        for (id, edit) in cases {
            let mut input = clean();
            edit(&mut input);
            let r = run(&input);
            assert!(r.ids().contains(id), "{id}: got {:?}", r.ids());
        }
        let mut both = clean();
        both.cors_origins = Some(vec!["*".into()]);
        both.cors_allow_credentials = true;
        assert_eq!(run(&both).ids(), ["MCP-CORS-001", "MCP-CORS-002"]);
        let mut root = clean();
        root.prefix = "IQ".into();
        let r = check(&root, &RuntimeEnvironment::new().euid(Some(0)));
        assert_eq!(r.ids(), ["MCP-PROC-001"]);
    }

    #[test]
    fn no_credential_names_every_variable_with_the_prefix() {
        let mut i = clean();
        i.prefix = "IQ".into();
        i.api_key = None;
        i.jwt_secret = None;
        let r = run(&i);
        assert_eq!(r.ids(), ["MCP-AUTH-002"]);
        let f = &r.findings()[0];
        for var in [
            "IQ_API_KEY",
            "IQ_API_KEY_FILE",
            "IQ_API_KEYS_FILE",
            "IQ_JWT_SECRET",
            "IQ_JWT_SECRET_FILE",
            "IQ_REQUIRE_AUTH",
        ] {
            assert!(f.message().contains(var), "{var} in {}", f.message());
        }
        assert!(!f.message().contains("MCP_"));
        assert!(f.fix().contains("mcp-security keygen"));
    }

    #[test]
    fn jwks_and_redis_settings_that_pass() {
        let mut i = clean();
        i.api_key = None;
        i.jwt_secret = None;
        i.jwt_issuer = Some("https://idp.example.com/realms/mcp".into());
        i.jwks_url = Some("http://127.0.0.1:9000/jwks.json".into());
        i.rate_limit_redis_url = Some("redis://[::1]:6379".into());
        let r = run(&i);
        assert!(
            r.findings().is_empty(),
            "an issuer is a credential source: {r}"
        );
        i.rate_limit_redis_url = Some("redis://localhost".into());
        i.jwks_url = Some("http://user@localhost:9000/jwks".into());
        assert!(run(&i).findings().is_empty(), "{}", run(&i));
        i.jwks_url = Some("http://127.0.0.1.evil.example/jwks".into());
        let r = run(&i);
        assert_eq!(r.ids(), ["MCP-JWT-004"]);
        let f = &r.findings()[0];
        assert!(f.message().contains("MCP_JWKS_URL"), "{}", f.message());
    }

    #[test]
    fn development_downgrades_and_skips() {
        let mut i = clean();
        i.environment = Environment::Development;
        i.debug = true;
        i.cors_origins = None;
        i.api_key = Some(SecretInput::value("MCP_API_KEY", "changeme"));
        i.require_auth = false;
        let r = run(&i);
        assert!(!r.has_errors(), "{r}");
        assert_eq!(r.ids(), ["MCP-AUTH-001", "MCP-KEY-003", "MCP-KEY-001"]);
        assert!(
            r.findings()
                .iter()
                .all(|f| f.severity() == Severity::Warning)
        );
        // The dev bypass is a credential source in development.
        let mut dev = clean();
        dev.environment = Environment::Development;
        dev.api_key = None;
        dev.jwt_secret = None;
        dev.dev_bypass = true;
        dev.bind_addr = Some("127.0.0.1:8080".parse().unwrap());
        // Without JWTs the audience names nothing: the resource URL must be set.
        assert_eq!(run(&dev).ids(), ["MCP-AUTH-005"]);
        dev.resource_url = Some("http://127.0.0.1:8080/mcp".into());
        assert!(run(&dev).findings().is_empty(), "{}", run(&dev));
        dev.dev_bypass = false;
        assert_eq!(run(&dev).ids(), ["MCP-AUTH-002"]);
        assert!(
            run(&dev).has_errors(),
            "REQUIRE_AUTH refuses in development too"
        );
    }

    #[test]
    fn the_resource_url_from_the_setting_or_a_url_audience() {
        let mut i = clean();
        assert_eq!(i.resource(), Some("https://mcp.example.com/mcp"));
        i.jwt_audiences = vec!["filesystem".into()];
        assert_eq!(i.resource(), None);
        let r = run(&i);
        assert_eq!(r.ids(), ["MCP-AUTH-005"]);
        let f = &r.findings()[0];
        assert_eq!(f.severity(), Severity::Error);
        assert_eq!(f.setting(), Some("MCP_RESOURCE_URL"));
        assert!(
            f.message()
                .contains("MCP_JWT_AUDIENCE names no http(s) URL"),
            "{}",
            f.message()
        );
        assert!(f.message().contains("MCP_ALLOWED_HOSTS"), "{}", f.message());
        assert!(
            f.fix().starts_with("set MCP_RESOURCE_URL to"),
            "{}",
            f.fix()
        );
        // With the Host check off, nothing can name it.
        i.host_check = false;
        let r = run(&i);
        let f = r
            .findings()
            .iter()
            .find(|f| f.id() == "MCP-AUTH-005")
            .unwrap();
        assert!(f.message().contains("answers 404"), "{}", f.message());
        // A warning in development.
        i.environment = Environment::Development;
        let r = run(&i);
        let f = r
            .findings()
            .iter()
            .find(|f| f.id() == "MCP-AUTH-005")
            .unwrap();
        assert_eq!(f.severity(), Severity::Warning);
        // The setting clears it; so does a URL audience.
        i.resource_url = Some("https://mcp.example.com/mcp".into());
        assert!(!run(&i).ids().contains(&"MCP-AUTH-005"));
        i.resource_url = None;
        i.jwt_audiences = vec!["api".into(), "https://mcp.example.com".into()];
        assert_eq!(i.resource(), Some("https://mcp.example.com"));
        // Without authentication there is no metadata to name it in.
        let mut open = clean();
        open.jwt_audiences.clear();
        open.api_key = None;
        open.jwt_secret = None;
        open.require_auth = false;
        assert!(!run(&open).ids().contains(&"MCP-AUTH-005"));
    }

    #[test]
    fn secrets_never_reach_the_report() {
        let mut i = clean();
        let weak = "your-very-own-api-key-but-weak";
        i.api_key = Some(SecretInput::value("MCP_API_KEY", weak));
        i.jwt_secret = Some(SecretInput::list("MCP_JWT_SECRET", "changeme-now"));
        let r = run(&i);
        let all = format!(
            "{r}{}{}{:?}",
            r.to_json(),
            r.to_sarif(None),
            check(&i, &RuntimeEnvironment::new())
        );
        assert!(!all.contains(weak) && !all.contains("changeme-now"));
        assert!(!format!("{i:?}").contains(weak));
    }

    #[cfg(unix)]
    #[test]
    fn files_dotenv_and_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcp-prodcheck-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        let write = |name: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, KEY).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let key = write("api_key", 0o644);
        let audit = write("audit.jsonl", 0o604);
        let memory = write("memory.jsonl", 0o640);
        write(".env", 0o600);
        let mut i = clean();
        i.api_key = Some(SecretInput::file("MCP_API_KEY_FILE", &key, Ok(KEY), false));
        i.audit_log_file = Some(audit);
        i.data_files = vec![memory];
        let here = RuntimeEnvironment::new().euid(Some(1000)).cwd(&dir);
        let r = check(&i, &here);
        assert_eq!(
            r.ids(),
            ["MCP-FILE-001", "MCP-FILE-002", "MCP-FILE-003"],
            "{r}"
        );
        assert!(r.findings()[0].message().contains("mode 644"));
        std::fs::write(dir.join(".gitignore"), ".env\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(
            dir.join("audit.jsonl"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let r = check(&i, &here);
        assert!(r.findings().is_empty(), "{r}");
        std::fs::set_permissions(dir.join(".env"), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(check(&i, &here).ids(), ["MCP-FILE-001"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
