//! The checks themselves: [`check`] walks a [`CheckInput`] and the [`RuntimeEnvironment`].

use std::net::Ipv6Addr;
use std::path::Path;

use ipnet::IpNet;
use mcp_security_core::config::Environment;

use crate::input::{CheckInput, MIN_SECRET_BYTES, SecretFacts, SecretInput};
use crate::report::{Finding, Report};
use crate::rules::{self, Rule};
use crate::runtime::{RuntimeEnvironment, file_mode, git_root, is_git_ignored, mode_too_open};

mod key_age;
mod network;
mod token;

/// Check a configuration snapshot against every rule; see the [crate docs](crate) for the list.
///
/// Rules that do not apply in the input's environment are skipped; the others get their
/// severity there ([`Rule::severity_in`]).
pub fn check(input: &CheckInput, runtime: &RuntimeEnvironment) -> Report {
    let mut c = Checker {
        input,
        environment: input.environment,
        findings: Vec::new(),
    };
    c.authentication();
    c.api_key();
    c.jwt();
    c.jwks();
    c.other_secrets();
    c.debug();
    c.cors();
    c.network();
    c.network_rules();
    c.token_endpoint();
    c.jwt_lifetime();
    c.key_age(runtime);
    c.result_guard();
    c.rate_limit_and_audit();
    c.files(runtime);
    c.process(runtime);
    c.headers();
    Report::new(input.environment, c.findings)
}

struct Checker<'a> {
    input: &'a CheckInput,
    environment: Environment,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn add(&mut self, rule: &'static Rule, message: String, fix: String, setting: Option<String>) {
        if let Some(severity) = rule.severity_in(self.environment) {
            self.findings
                .push(Finding::new(rule, severity, message, fix, setting));
        }
    }

    fn var(&self, name: &str) -> String {
        self.input.var(name)
    }

    fn credential_vars(&self) -> String {
        [
            "API_KEY",
            "API_KEY_FILE",
            "API_KEYS_FILE",
            "JWT_SECRET",
            "JWT_SECRET_FILE",
            "JWT_ISSUER",
            "JWKS_URL",
        ]
        .map(|n| self.var(n))
        .join(", ")
    }

    fn credential_fix(&self) -> String {
        format!(
            "set {} (or {}) to a key from `mcp-security keygen`, {} to a hashed key file, {} \
             (or {}) to `openssl rand -base64 32`, or {} (or {}) for tokens from an \
             authorization server",
            self.var("API_KEY_FILE"),
            self.var("API_KEY"),
            self.var("API_KEYS_FILE"),
            self.var("JWT_SECRET_FILE"),
            self.var("JWT_SECRET"),
            self.var("JWT_ISSUER"),
            self.var("JWKS_URL"),
        )
    }

    fn authentication(&mut self) {
        let i = self.input;
        if !i.require_auth {
            let consequence = if i.has_credential_source() {
                ": a missing credential source would not stop the server from starting"
            } else {
                " and no credential source is set: every request is served without \
                 authentication"
            };
            self.add(
                &rules::AUTH_NOT_REQUIRED,
                format!("{}=false{consequence}", self.var("REQUIRE_AUTH")),
                format!(
                    "set {}=true (the default) and {}",
                    self.var("REQUIRE_AUTH"),
                    self.credential_fix()
                ),
                Some(self.var("REQUIRE_AUTH")),
            );
        }
        let bypass_counts = i.dev_bypass && self.environment == Environment::Development;
        if i.require_auth && !i.has_credential_source() && !bypass_counts {
            self.add(
                &rules::NO_CREDENTIAL_SOURCE,
                format!(
                    "authentication is required ({}=true) but no credential source is set: none \
                     of {}",
                    self.var("REQUIRE_AUTH"),
                    self.credential_vars()
                ),
                format!(
                    "{}; or, in development only, set {}=false",
                    self.credential_fix(),
                    self.var("REQUIRE_AUTH")
                ),
                Some(self.var("API_KEY")),
            );
        }
        if i.dev_bypass {
            self.add(
                &rules::DEV_BYPASS,
                format!(
                    "{} is on: requests without a credential are served as a development \
                     principal with every scope",
                    self.var("DEV_BYPASS")
                ),
                format!(
                    "remove {} (or set it to false); it is for development on loopback only",
                    self.var("DEV_BYPASS")
                ),
                Some(self.var("DEV_BYPASS")),
            );
        }
        if i.authenticates() && i.resource().is_none() {
            let audience = if i.jwt_audiences.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} names no http(s) URL{})",
                    self.var("JWT_AUDIENCE"),
                    if i.jwt_secret.is_none() && !i.uses_jwks() {
                        ", and no JWT is verified"
                    } else {
                        ""
                    }
                )
            };
            let without = if i.host_check {
                format!(
                    "is derived from the request's Host (one on {}), so what clients are told \
                     depends on the name they used",
                    self.var("ALLOWED_HOSTS")
                )
            } else {
                format!(
                    "cannot be derived from Host ({}=*): the metadata answers 404 and 401s carry \
                     no resource_metadata, so OAuth clients cannot discover the authorization \
                     server",
                    self.var("ALLOWED_HOSTS")
                )
            };
            self.add(
                &rules::NO_RESOURCE_URL,
                format!(
                    "neither {} nor a URL in {} is set{audience}: the protected resource's URL \
                     in the OAuth metadata and the 401 challenge {without}",
                    self.var("RESOURCE_URL"),
                    self.var("JWT_AUDIENCE"),
                ),
                format!(
                    "set {} to the URL clients use for the MCP endpoint, such as \
                     https://mcp.example.com/mcp (and mint tokens for it as {})",
                    self.var("RESOURCE_URL"),
                    self.var("JWT_AUDIENCE"),
                ),
                Some(self.var("RESOURCE_URL")),
            );
        }
        if i.url_auth {
            self.add(
                &rules::URL_AUTH,
                format!(
                    "{}=true: credentials in `?token=` reach access logs, proxies and browser \
                     history",
                    self.var("URL_AUTH")
                ),
                format!(
                    "set {}=false and send `Authorization: Bearer`; keep it on only for a web UI \
                     that cannot send headers",
                    self.var("URL_AUTH")
                ),
                Some(self.var("URL_AUTH")),
            );
        }
    }

    fn api_key(&mut self) {
        let Some(key) = &self.input.api_key else {
            return;
        };
        let Some(facts) = key.values.as_ref().and_then(|v| v.first()) else {
            return;
        };
        let setting = key.setting.clone();
        let keygen = "generate one with `mcp-security keygen` (or `openssl rand -base64 32`)";
        if let Some(why) = known_value(facts) {
            self.add(
                &rules::API_KEY_PLACEHOLDER,
                format!("{setting}: the API key {why}"),
                format!("replace it: {keygen}"),
                Some(setting.clone()),
            );
        }
        if facts.is_too_short() {
            self.add(
                &rules::API_KEY_SHORT,
                format!(
                    "{setting}: the API key is {} bytes; at least {MIN_SECRET_BYTES} are needed",
                    facts.bytes()
                ),
                format!("use a longer key: {keygen}"),
                Some(setting.clone()),
            );
        } else if facts.placeholder().is_none() && facts.is_low_entropy() {
            self.add(
                &rules::API_KEY_LOW_ENTROPY,
                format!("{setting}: the API key {}", entropy_text(facts)),
                format!("use a random key: {keygen}"),
                Some(setting),
            );
        }
    }

    fn jwks(&mut self) {
        let i = self.input;
        if !i.uses_jwks() {
            return;
        }
        for (name, url) in [("JWT_ISSUER", &i.jwt_issuer), ("JWKS_URL", &i.jwks_url)] {
            let Some(url) = url else { continue };
            if plain_http_beyond_loopback(url) {
                self.add(
                    &rules::JWKS_INSECURE_URL,
                    format!(
                        "{} is {url}: whoever sits on the path can swap the signing keys and \
                         mint tokens",
                        self.var(name)
                    ),
                    format!("use the issuer's https:// URL in {}", self.var(name)),
                    Some(self.var(name)),
                );
            }
        }
        if i.jwt_audiences.is_empty() {
            self.add(
                &rules::JWKS_NO_AUDIENCE,
                format!(
                    "{} is not set: a token the issuer minted for any other API is accepted \
                     here",
                    self.var("JWT_AUDIENCE")
                ),
                format!(
                    "set {} to this server's resource URL (the `resource` of its protected \
                     resource metadata) and have the authorization server put it in `aud`",
                    self.var("JWT_AUDIENCE")
                ),
                Some(self.var("JWT_AUDIENCE")),
            );
        }
    }

    fn jwt(&mut self) {
        let Some(secret) = &self.input.jwt_secret else {
            return;
        };
        let setting = secret.setting.clone();
        let values = secret.values.as_deref().unwrap_or_default();
        let count = values.len();
        let which = |index: usize| {
            if count == 1 {
                "the HS256 secret".to_owned()
            } else {
                format!("HS256 secret {} of {count}", index + 1)
            }
        };
        let fix = "generate one with `openssl rand -base64 32`; while rotating, list the new \
                   secret first and keep the old one until its tokens expire";
        for (index, facts) in values.iter().enumerate() {
            if facts.is_too_short() {
                self.add(
                    &rules::JWT_SECRET_SHORT,
                    format!(
                        "{setting}: {} is {} bits; HS256 needs at least 256 (RFC 7518 section 3.2)",
                        which(index),
                        facts.bytes() * 8
                    ),
                    fix.to_owned(),
                    Some(setting.clone()),
                );
            }
            let weakness = known_value(facts).or_else(|| {
                (!facts.is_too_short() && facts.is_low_entropy()).then(|| entropy_text(facts))
            });
            if let Some(why) = weakness {
                self.add(
                    &rules::JWT_SECRET_WEAK,
                    format!(
                        "{setting}: {} {why}; anyone who knows it can mint tokens",
                        which(index)
                    ),
                    fix.to_owned(),
                    Some(setting.clone()),
                );
            }
        }
        if self.input.jwt_audiences.is_empty() {
            self.add(
                &rules::JWT_NO_AUDIENCE,
                format!(
                    "{} is not set: a token minted for any server sharing the secret is accepted",
                    self.var("JWT_AUDIENCE")
                ),
                format!(
                    "set {} to this server's resource URL (one audience per server), and mint \
                     tokens with `mcp-security token --aud <that URL>`",
                    self.var("JWT_AUDIENCE")
                ),
                Some(self.var("JWT_AUDIENCE")),
            );
        }
    }

    fn other_secrets(&mut self) {
        let secrets = self
            .input
            .audit_hmac_key
            .iter()
            .chain(&self.input.other_secrets);
        let mut found = Vec::new();
        for secret in secrets {
            for facts in secret.values.as_deref().unwrap_or_default() {
                let why = known_value(facts)
                    .or_else(|| {
                        facts
                            .is_too_short()
                            .then(|| format!("is {} bytes (at least 32 are needed)", facts.bytes()))
                    })
                    .or_else(|| facts.is_low_entropy().then(|| entropy_text(facts)));
                if let Some(why) = why {
                    found.push((secret.setting.clone(), why));
                }
            }
        }
        for (setting, why) in found {
            self.add(
                &rules::SECRET_WEAK,
                format!("{setting}: the secret {why}"),
                "replace it with `openssl rand -hex 32`".to_owned(),
                Some(setting),
            );
        }
    }

    fn debug(&mut self) {
        if self.input.debug {
            self.add(
                &rules::DEBUG,
                format!(
                    "{}=true: errors may show internals to callers",
                    self.var("DEBUG")
                ),
                format!(
                    "set {}=false (the default) in production",
                    self.var("DEBUG")
                ),
                Some(self.var("DEBUG")),
            );
        }
    }

    fn cors(&mut self) {
        let var = self.var("CORS_ORIGINS");
        let any = self
            .input
            .cors_origins
            .as_deref()
            .is_some_and(|o| o.iter().any(|o| o.trim() == "*"));
        if any {
            self.add(
                &rules::CORS_ANY,
                format!("{var}=*: every website can call this server from its visitors' browsers"),
                format!("list the allowed origins in {var}, e.g. https://app.example.com"),
                Some(var.clone()),
            );
            if self.input.cors_allow_credentials {
                self.add(
                    &rules::CORS_CREDENTIALS_ANY,
                    format!(
                        "CORS allows credentials with {var}=*: any website could make \
                         credentialed requests (browsers refuse the combination, tower-http \
                         panics on it)"
                    ),
                    format!(
                        "list the origins in {var}, or turn CORS credentials off (bearer tokens \
                         do not need them)"
                    ),
                    Some(var.clone()),
                );
            }
        }
        if self.input.cors_origins.is_none() {
            self.add(
                &rules::NO_ORIGIN_ALLOWLIST,
                format!(
                    "{var} is not set: every browser Origin is refused (403); a web UI would \
                     not work, and the choice is not written down"
                ),
                format!(
                    "set {var} to the origins of the web apps that call this server (the \
                     Docker MCP Stack guide: \"CORS must be explicitly configured\")"
                ),
                Some(var),
            );
        }
    }

    fn network(&mut self) {
        let i = self.input;
        // Open for real: the bypass is on, or nothing is required and nothing configured. (With
        // authentication required and no credential source, MCP-AUTH-002 refuses the start.)
        let open = i.dev_bypass || (!i.require_auth && !i.has_credential_source());
        if let Some(addr) = i.bind_addr
            && !addr.ip().is_loopback()
            && open
        {
            let why = if i.dev_bypass {
                format!("the development bypass ({}) is on", self.var("DEV_BYPASS"))
            } else {
                "no credential source is configured".to_owned()
            };
            self.add(
                &rules::OPEN_NON_LOOPBACK,
                format!(
                    "bound to {addr} ({}), reachable beyond this machine, and {why}: anyone who \
                     can reach it can call every tool",
                    self.var("BIND")
                ),
                format!(
                    "{}, or bind to 127.0.0.1 ({}=127.0.0.1:8080)",
                    self.credential_fix(),
                    self.var("BIND")
                ),
                Some(self.var("BIND")),
            );
        }
        if !i.host_check {
            self.add(
                &rules::HOST_CHECK_OFF,
                format!(
                    "{}=*: the Host header is not checked, so DNS rebinding is stopped only by \
                     the Origin check",
                    self.var("ALLOWED_HOSTS")
                ),
                format!(
                    "set {} to the names clients use (mcp.example.com), unless a proxy in front \
                     checks Host",
                    self.var("ALLOWED_HOSTS")
                ),
                Some(self.var("ALLOWED_HOSTS")),
            );
        }
        let everyone: Vec<String> = i
            .trusted_proxies
            .iter()
            .filter(|n| trusts_everyone(n))
            .map(ToString::to_string)
            .collect();
        if !everyone.is_empty() {
            let var = self.var("TRUSTED_PROXIES");
            self.add(
                &rules::TRUST_ALL_PROXIES,
                format!(
                    "{var} contains {}: every client may set X-Forwarded-For, so rate limits, \
                     bans and audit records can be dodged with a forged address",
                    everyone.join(", ")
                ),
                format!("list only your proxies in {var} (e.g. 10.0.0.0/8 or the proxy's address)"),
                Some(var),
            );
        }
    }

    fn rate_limit_and_audit(&mut self) {
        let i = self.input;
        if !i.rate_limit_enabled {
            self.add(
                &rules::RATE_LIMIT_OFF,
                format!(
                    "{}=false: nothing slows down brute force or floods",
                    self.var("RATE_LIMIT_ENABLED")
                ),
                format!(
                    "set {}=true (the default); the quota is {} per {}",
                    self.var("RATE_LIMIT_ENABLED"),
                    self.var("RATE_LIMIT_REQUESTS"),
                    self.var("RATE_LIMIT_WINDOW")
                ),
                Some(self.var("RATE_LIMIT_ENABLED")),
            );
        }
        if let Some(url) = &i.rate_limit_redis_url {
            if url.starts_with("redis://") && !host_is_loopback(url) {
                self.add(
                    &rules::REDIS_PLAINTEXT,
                    format!(
                        "{} is {url}: limit state and the Redis password cross the network in \
                         clear text",
                        self.var("RATE_LIMIT_REDIS_URL")
                    ),
                    format!(
                        "use rediss:// (TLS; {} for a private CA) with an ACL user ({}, {}), \
                         or keep Redis on loopback",
                        self.var("RATE_LIMIT_REDIS_CA_FILE"),
                        self.var("RATE_LIMIT_REDIS_USERNAME"),
                        self.var("RATE_LIMIT_REDIS_PASSWORD_FILE")
                    ),
                    Some(self.var("RATE_LIMIT_REDIS_URL")),
                );
            }
            if i.rate_limit_redis_fail_open {
                self.add(
                    &rules::REDIS_FAIL_OPEN,
                    format!(
                        "{}=open: while Redis is unreachable each replica limits on its own \
                         (at the limit divided by {})",
                        self.var("RATE_LIMIT_REDIS_FAILURE"),
                        self.var("RATE_LIMIT_REPLICAS")
                    ),
                    format!(
                        "set {} to the replica count, or {}=closed",
                        self.var("RATE_LIMIT_REPLICAS"),
                        self.var("RATE_LIMIT_REDIS_FAILURE")
                    ),
                    Some(self.var("RATE_LIMIT_REDIS_FAILURE")),
                );
            }
        }
        if !i.audit_enabled {
            self.add(
                &rules::AUDIT_OFF,
                format!(
                    "{}=false: requests, refusals and auth failures are not recorded",
                    self.var("AUDIT_ENABLED")
                ),
                format!("set {}=true (the default)", self.var("AUDIT_ENABLED")),
                Some(self.var("AUDIT_ENABLED")),
            );
        } else if i.audit_log_file.is_none() || i.audit_hmac_key.is_none() {
            self.add(
                &rules::AUDIT_NO_HMAC,
                format!(
                    "the audit trail goes to tracing only ({} and {} unset): records can be \
                     changed or dropped without trace",
                    self.var("AUDIT_LOG_FILE"),
                    self.var("AUDIT_HMAC_KEY_FILE")
                ),
                format!(
                    "set {} to a file and {} to a key from `openssl rand -hex 32`; check it \
                     with `mcp-security audit verify`",
                    self.var("AUDIT_LOG_FILE"),
                    self.var("AUDIT_HMAC_KEY_FILE")
                ),
                Some(self.var("AUDIT_HMAC_KEY")),
            );
        }
    }

    fn files(&mut self, runtime: &RuntimeEnvironment) {
        let i = self.input;
        // Secrets: not readable here (offline checks), and permissions.
        let secret_inputs: Vec<&SecretInput> = i
            .api_key
            .iter()
            .chain(&i.jwt_secret)
            .chain(&i.audit_hmac_key)
            .chain(&i.other_secrets)
            .collect();
        let mut secret_files: Vec<(String, &Path)> = Vec::new();
        for s in &secret_inputs {
            if let Some(file) = &s.file {
                secret_files.push((s.setting.clone(), file));
                if s.values.is_none() {
                    self.add(
                        &rules::SECRET_FILE_UNREADABLE,
                        format!(
                            "{}: {} cannot be read here ({}), so its strength was not checked",
                            s.setting,
                            file.display(),
                            s.unreadable.as_deref().unwrap_or("unknown reason")
                        ),
                        "run the check where the secret is mounted; the server checks it again \
                         when it starts"
                            .to_owned(),
                        Some(s.setting.clone()),
                    );
                }
            }
        }
        if let Some(file) = &i.api_keys_file {
            secret_files.push((self.var("API_KEYS_FILE"), file));
        }
        // Permissions only: their content is not a secret this checker can judge.
        for (setting, file) in &i.secret_files {
            secret_files.push((setting.clone(), file));
        }
        let dotenv = runtime.working_dir().map(|d| d.join(".env"));
        if let Some(env_file) = dotenv.as_deref().filter(|p| p.is_file()) {
            secret_files.push((".env".to_owned(), env_file));
        }
        for (setting, file) in secret_files {
            if let Some(mode) = file_mode(file).filter(|m| mode_too_open(*m)) {
                self.add(
                    &rules::SECRET_FILE_MODE,
                    format!(
                        "{setting}: {} has mode {mode:03o}: other users can read or change a \
                         secret",
                        file.display()
                    ),
                    format!(
                        "chmod 600 {} (or 640 for the server's group)",
                        file.display()
                    ),
                    Some(setting),
                );
            }
        }
        let mut data_files: Vec<(String, &Path)> = Vec::new();
        if let Some(f) = &i.audit_log_file {
            data_files.push((self.var("AUDIT_LOG_FILE"), f));
        }
        for f in &i.data_files {
            data_files.push((self.var("DATA_FILES"), f));
        }
        for (setting, file) in data_files {
            if let Some(mode) = file_mode(file).filter(|m| mode_too_open(*m)) {
                self.add(
                    &rules::DATA_FILE_MODE,
                    format!(
                        "{setting}: {} has mode {mode:03o}: other users can read or change it",
                        file.display()
                    ),
                    format!("chmod 600 {} (or 640)", file.display()),
                    Some(setting),
                );
            }
        }
        if let Some(env_file) = dotenv.as_deref().filter(|p| p.is_file())
            && let Some(root) = runtime.working_dir().and_then(git_root)
            && !is_git_ignored(&root, env_file)
        {
            self.add(
                &rules::DOTENV_NOT_IGNORED,
                format!(
                    "{} is in a git work tree and not git-ignored: its secrets are one `git add \
                     .` from being committed",
                    env_file.display()
                ),
                format!(
                    "add `.env` to {}; commit only a .env.example with placeholders",
                    root.join(".gitignore").display()
                ),
                Some(".env".to_owned()),
            );
        }
    }

    fn process(&mut self, runtime: &RuntimeEnvironment) {
        if runtime.is_root() {
            self.add(
                &rules::RUNNING_AS_ROOT,
                "the server runs as root (effective uid 0): a flaw in any tool runs with every \
                 privilege"
                    .to_owned(),
                "run as an unprivileged user (Dockerfile `USER 1000`, systemd `User=`)".to_owned(),
                None,
            );
        }
    }

    fn headers(&mut self) {
        let xss = self
            .input
            .response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-xss-protection"))
            .map(|(_, v)| v.trim())
            .filter(|v| *v != "0");
        if let Some(value) = xss {
            self.add(
                &rules::XSS_PROTECTION,
                format!(
                    "X-XSS-Protection is {value:?}: the filter it enables is itself exploitable \
                     and gone from current browsers"
                ),
                "send `X-XSS-Protection: 0` (the default) and rely on Content-Security-Policy"
                    .to_owned(),
                Some("x-xss-protection".to_owned()),
            );
        }
    }
}

/// Why a secret is a known value: a placeholder marker or a published example.
fn known_value(facts: &SecretFacts) -> Option<String> {
    if facts.is_published_example() {
        Some("is a key published in common MCP security guides or this project's docs".to_owned())
    } else {
        facts
            .placeholder()
            .map(|m| format!("looks like a placeholder (contains {m:?})"))
    }
}

fn entropy_text(facts: &SecretFacts) -> String {
    format!(
        "has low entropy (about {:.0} bits estimated, {:.1} bits per character; at least {:.0} \
         and {:.1} expected)",
        facts.estimated_bits(),
        facts.bits_per_char(),
        crate::input::MIN_ENTROPY_BITS,
        crate::input::MIN_BITS_PER_CHAR
    )
}

/// `0.0.0.0/0`, `::/0`, or an IPv6 net covering every IPv4-mapped address.
/// The host of `scheme://[userinfo@]host[:port][/…]`, without brackets for IPv6.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// Whether the URL's host is `localhost` or a loopback address.
fn host_is_loopback(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` is not https and points beyond loopback.
fn plain_http_beyond_loopback(url: &str) -> bool {
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    !https && !host_is_loopback(url)
}

fn trusts_everyone(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() == 0,
        IpNet::V6(n) => {
            let low = Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0, 0]);
            let high = Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff]);
            n.prefix_len() == 0 || (n.contains(&low) && n.contains(&high))
        }
    }
}
