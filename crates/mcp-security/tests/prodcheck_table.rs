//! The production checks, table-driven: one case per finding (environment variables in, finding
//! id out), a clean production configuration with no finding, and the refuse-to-start guard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mcp_security::auth::api_key::format_key_time;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::{RULES, Report, RuntimeEnvironment, Severity};
use mcp_security::{SecurityConfig, SecurityError};

const API_KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const JWT_SECRET: &str = "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=";
const HMAC_KEY: &str = "4f9a1c7e2b8d3f60a5e9c1b7d2f84a36e0c9b5a17d3f8e2c6b0a4d9f1e7c3b52";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-security-table-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: &str, mode: u32) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        set_mode(&path, mode);
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

/// A production deployment with nothing to report: bound beyond loopback behind a Host
/// allowlist, an API key and a JWT secret, an audience, origins, a signed audit file.
fn clean(dir: &Scratch) -> BTreeMap<String, String> {
    [
        ("MCP_ENV", "production"),
        ("MCP_BIND", "0.0.0.0:8080"),
        ("MCP_ALLOWED_HOSTS", "mcp.example.com"),
        ("MCP_API_KEY", API_KEY),
        ("MCP_JWT_SECRET", JWT_SECRET),
        ("MCP_JWT_AUDIENCE", "https://mcp.example.com/mcp"),
        ("MCP_CORS_ORIGINS", "https://app.example.com"),
        ("MCP_AUDIT_HMAC_KEY", HMAC_KEY),
        ("MCP_RESULT_GUARD", "redact"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([(
        "MCP_AUDIT_LOG_FILE".to_owned(),
        dir.0.join("audit.jsonl").display().to_string(),
    )])
    .collect()
}

fn unprivileged(dir: &Scratch) -> RuntimeEnvironment {
    RuntimeEnvironment::new().euid(Some(1000)).cwd(&dir.0)
}

fn report(vars: &BTreeMap<String, String>, runtime: &RuntimeEnvironment) -> Report {
    let env = Env::from_pairs("MCP", vars.clone());
    SecurityConfig::check_env(&env, None, runtime)
}

/// How one case changes the clean deployment: variables to set (`None` removes one), and the
/// process it runs in.
struct Case {
    id: &'static str,
    vars: Vec<(&'static str, Option<String>)>,
    runtime: fn(&Scratch) -> RuntimeEnvironment,
}

fn set(id: &'static str, vars: &[(&'static str, Option<&str>)]) -> Case {
    Case {
        id,
        vars: vars
            .iter()
            .map(|(k, v)| (*k, v.map(str::to_owned)))
            .collect(),
        runtime: unprivileged,
    }
}

#[test]
fn one_case_per_finding() {
    let dir = Scratch::new("cases");
    let open_key = dir.file("api_key", API_KEY, 0o644);
    let memory = dir.file("memory.jsonl", "{}\n", 0o644);
    let credentials = dir.file("cors.toml", "[cors]\nallow_credentials = true\n", 0o644);
    let xss = dir.file(
        "headers.toml",
        "[headers.set]\nx-xss-protection = \"1; mode=block\"\n",
        0o644,
    );
    let open_metrics = dir.file(
        "network.toml",
        "[[network]]\npath = \"/metrics\"\nallow = [\"10.0.0.0/8\", \"0.0.0.0/0\"]\n",
        0o644,
    );
    let no_key: [(&str, Option<&str>); 2] = [("MCP_API_KEY", None), ("MCP_JWT_SECRET", None)];
    let key_entry = |dates: &str| {
        format!(
            "[[keys]]\nname = \"ci-bot\"\n\
             hash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\
             {dates}\n"
        )
    };
    let old_keys = dir.file(
        "old_keys.toml",
        &key_entry("created_at = \"2020-01-01T00:00:00Z\""),
        0o600,
    );
    let in_three_days = SystemTime::now() + Duration::from_secs(3 * 86_400);
    let expiring_keys = dir.file(
        "expiring_keys.toml",
        &key_entry(&format!(
            "expires_at = \"{}\"",
            format_key_time(in_three_days)
        )),
        0o600,
    );
    let mut cases = vec![
        set("MCP-CONFIG-001", &[("MCP_RATE_LIMIT_REQUESTS", Some("0"))]),
        set("MCP-AUTH-001", &[("MCP_REQUIRE_AUTH", Some("false"))]),
        set("MCP-AUTH-002", &no_key),
        set("MCP-AUTH-003", &[("MCP_DEV_BYPASS", Some("true"))]),
        set("MCP-AUTH-004", &[("MCP_URL_AUTH", Some("true"))]),
        set("MCP-AUTH-005", &[("MCP_JWT_AUDIENCE", Some("filesystem"))]),
        set("MCP-JWT-006", &[("MCP_JWT_MAX_LIFETIME", Some("off"))]),
        set(
            "MCP-JWT-007",
            &[("MCP_JWT_SECRET_CREATED_AT", Some("2020-01-01T00:00:00Z"))],
        ),
        set("MCP-KEY-004", &[("MCP_API_KEYS_FILE", Some(&old_keys))]),
        set(
            "MCP-KEY-005",
            &[("MCP_API_KEYS_FILE", Some(&expiring_keys))],
        ),
        set("MCP-GUARD-001", &[("MCP_RESULT_GUARD", Some("off"))]),
        set(
            "MCP-TOKEN-001",
            &[
                ("MCP_TOKEN_ENDPOINT", Some("true")),
                ("MCP_JWT_AUDIENCE", Some("http://mcp.example.com/mcp")),
            ],
        ),
        set(
            "MCP-TOKEN-002",
            &[
                ("MCP_TOKEN_ENDPOINT", Some("true")),
                ("MCP_TOKEN_TTL", Some("2h")),
            ],
        ),
        set("MCP-KEY-001", &[("MCP_API_KEY", Some("mcp-sk-Q2w9Zr4"))]),
        set("MCP-KEY-002", &[("MCP_API_KEY", Some(&"k3y!".repeat(10)))]),
        set(
            "MCP-KEY-003",
            &[("MCP_API_KEY", Some("iqmcp-sk-your-secure-key-here"))],
        ),
        set(
            "MCP-JWT-001",
            &[("MCP_JWT_SECRET", Some("too-short-to-sign"))],
        ),
        set(
            "MCP-JWT-002",
            &[("MCP_JWT_SECRET", Some("your-super-secret-key-change-this"))],
        ),
        set("MCP-JWT-003", &[("MCP_JWT_AUDIENCE", None)]),
        set(
            "MCP-JWT-004",
            &[("MCP_JWKS_URL", Some("http://idp.example.com/jwks.json"))],
        ),
        set(
            "MCP-JWT-005",
            &[
                ("MCP_JWKS_URL", Some("https://idp.example.com/jwks.json")),
                ("MCP_JWT_AUDIENCE", None),
            ],
        ),
        set(
            "MCP-SECRET-001",
            &[("MCP_API_KEY_PEPPER", Some("changeme"))],
        ),
        set("MCP-DEBUG-001", &[("MCP_DEBUG", Some("true"))]),
        set("MCP-CORS-001", &[("MCP_CORS_ORIGINS", Some("*"))]),
        set(
            "MCP-CORS-002",
            &[
                ("MCP_CORS_ORIGINS", Some("*")),
                ("MCP_CONFIG_FILE", Some(&credentials)),
            ],
        ),
        set("MCP-CORS-003", &[("MCP_CORS_ORIGINS", None)]),
        set(
            "MCP-NET-001",
            &[
                ("MCP_REQUIRE_AUTH", Some("false")),
                ("MCP_API_KEY", None),
                ("MCP_JWT_SECRET", None),
            ],
        ),
        set("MCP-NET-002", &[("MCP_ALLOWED_HOSTS", Some("*"))]),
        set("MCP-NET-003", &[("MCP_CONFIG_FILE", Some(&open_metrics))]),
        set(
            "MCP-PROXY-001",
            &[("MCP_TRUSTED_PROXIES", Some("0.0.0.0/0"))],
        ),
        set("MCP-RATE-001", &[("MCP_RATE_LIMIT_ENABLED", Some("false"))]),
        set(
            "MCP-RATE-002",
            &[(
                "MCP_RATE_LIMIT_REDIS_URL",
                Some("redis://:pw@redis.internal:6379"),
            )],
        ),
        set(
            "MCP-RATE-003",
            &[
                ("MCP_RATE_LIMIT_REDIS_URL", Some("redis://127.0.0.1:6379")),
                ("MCP_RATE_LIMIT_REDIS_FAILURE", Some("open")),
            ],
        ),
        set("MCP-AUDIT-001", &[("MCP_AUDIT_ENABLED", Some("false"))]),
        set(
            "MCP-AUDIT-002",
            &[("MCP_AUDIT_LOG_FILE", None), ("MCP_AUDIT_HMAC_KEY", None)],
        ),
        set(
            "MCP-FILE-001",
            &[("MCP_API_KEY", None), ("MCP_API_KEY_FILE", Some(&open_key))],
        ),
        set("MCP-FILE-002", &[("MCP_DATA_FILES", Some(&memory))]),
        Case {
            runtime: |dir| {
                let repo = dir.0.join("repo");
                std::fs::create_dir_all(repo.join(".git")).unwrap();
                std::fs::write(repo.join(".env"), "MCP_API_KEY=x\n").unwrap();
                set_mode(&repo.join(".env"), 0o600);
                RuntimeEnvironment::new().euid(Some(1000)).cwd(repo)
            },
            ..set("MCP-FILE-003", &[])
        },
        set(
            "MCP-FILE-004",
            &[
                ("MCP_API_KEY", None),
                ("MCP_API_KEY_FILE", Some("/run/secrets/mcp_api_key")),
            ],
        ),
        Case {
            runtime: |dir| unprivileged(dir).euid(Some(0)),
            ..set("MCP-PROC-001", &[])
        },
        set("MCP-HDR-001", &[("MCP_CONFIG_FILE", Some(&xss))]),
    ];
    // Every rule has a case; `MCP-ONLINE-*` findings come from `mcp-security check --online`
    // (fetching the identity provider), tested in mcp-security-cli's tests/check_online.rs.
    for rule in RULES.iter().filter(|r| !r.id.starts_with("MCP-ONLINE-")) {
        assert!(
            cases.iter().any(|c| c.id == rule.id),
            "no case for {}",
            rule.id
        );
    }
    for case in cases.drain(..) {
        let mut vars = clean(&dir);
        for (k, v) in case.vars {
            match v {
                Some(v) => vars.insert(k.to_owned(), v),
                None => vars.remove(k),
            };
        }
        let r = report(&vars, &(case.runtime)(&dir));
        assert!(
            r.ids().contains(&case.id),
            "{}: got {:?}\n{r}",
            case.id,
            r.ids()
        );
        let f = r.findings().iter().find(|f| f.id() == case.id).unwrap();
        assert!(!f.message().is_empty() && !f.fix().is_empty());
        let expected = RULES.iter().find(|r| r.id == case.id).unwrap().severity;
        assert_eq!(f.severity(), expected, "{}", case.id);
    }
}

#[test]
fn a_clean_production_configuration_has_no_error_and_builds() {
    let dir = Scratch::new("clean");
    let vars = clean(&dir);
    let r = report(&vars, &unprivileged(&dir));
    assert!(r.findings().is_empty(), "{r}");
    let env = Env::from_pairs("MCP", vars);
    let config = SecurityConfig::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap();
    let stack = config.layer_with(&unprivileged(&dir)).unwrap();
    assert!(stack.authenticates());
    assert!(stack.report().findings().is_empty());
    assert!(
        stack.summary().contains("incl. file"),
        "{}",
        stack.summary()
    );
    assert!(!stack.summary().contains(API_KEY));
}

#[test]
fn production_without_a_key_refuses_to_start_naming_the_variables() {
    let dir = Scratch::new("refuse");
    for prefix in ["MCP", "IQ"] {
        let env = Env::from_pairs(
            prefix,
            [
                (format!("{prefix}_ENV"), "production"),
                (format!("{prefix}_REQUIRE_AUTH"), "true"),
            ],
        );
        let config = SecurityConfig::builder_from_env(&env)
            .unwrap()
            .build()
            .unwrap();
        let err = config.layer_with(&unprivileged(&dir)).unwrap_err();
        let SecurityError::Refused(report) = &err else {
            panic!("expected a refusal, got {err}");
        };
        assert!(report.ids().contains(&"MCP-AUTH-002"));
        let text = err.to_string();
        assert!(text.starts_with("refusing to start (production)"), "{text}");
        for var in [
            "API_KEY",
            "API_KEY_FILE",
            "API_KEYS_FILE",
            "JWT_SECRET",
            "JWT_SECRET_FILE",
        ] {
            assert!(text.contains(&format!("{prefix}_{var}")), "{var}: {text}");
        }
        assert!(text.contains("fix: "), "{text}");
    }
}

#[test]
fn every_production_error_is_listed_with_its_fix() {
    let dir = Scratch::new("all-errors");
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_API_KEY", "changeme-Tail-42"),
            ("MCP_DEBUG", "true"),
            ("MCP_CORS_ORIGINS", "*"),
            ("MCP_TRUSTED_PROXIES", "::/0"),
        ],
    );
    let err = SecurityConfig::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap()
        .layer_with(&unprivileged(&dir))
        .unwrap_err();
    let text = err.to_string();
    for id in [
        "MCP-AUTH-005",
        "MCP-KEY-003",
        "MCP-KEY-001",
        "MCP-DEBUG-001",
        "MCP-CORS-001",
        "MCP-PROXY-001",
    ] {
        assert!(text.contains(id), "{id}: {text}");
    }
    assert_eq!(text.matches("\n    fix: ").count(), 6, "{text}");
    assert!(!text.contains("Tail-42"), "no secret in the message");
}

#[test]
fn development_downgrades_to_warnings_and_builds() {
    let dir = Scratch::new("dev");
    // Development, no credential and REQUIRE_AUTH=false: auth off, with warnings.
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development"),
            ("MCP_REQUIRE_AUTH", "false"),
            ("MCP_DEBUG", "true"),
            ("MCP_CORS_ORIGINS", "*"),
        ],
    );
    let config = SecurityConfig::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap();
    let stack = config.layer_with(&unprivileged(&dir)).unwrap();
    assert!(!stack.authenticates());
    let r = stack.report();
    assert_eq!(r.ids(), ["MCP-AUTH-001", "MCP-CORS-001"]);
    assert!(
        r.findings()
            .iter()
            .all(|f| f.severity() == Severity::Warning)
    );
    // REQUIRE_AUTH=true without a credential still refuses in development.
    let env = Env::from_pairs("MCP", [("MCP_ENV", "development")]);
    let err = SecurityConfig::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap()
        .layer_with(&unprivileged(&dir))
        .unwrap_err();
    assert!(err.to_string().contains("MCP-AUTH-002"), "{err}");
    assert!(
        err.to_string()
            .starts_with("refusing to start (development)")
    );
}
