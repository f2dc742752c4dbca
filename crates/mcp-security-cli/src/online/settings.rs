//! What the online checks need from the configuration: the same variables the server reads
//! (`JWT_ISSUER`, `JWKS_URL`, `JWT_SECRET`, `JWT_ALGORITHMS`, `JWT_AUDIENCE`, `RESOURCE_URL`,
//! `AUTHORIZATION_SERVERS`, `ENV`) and the scopes the policy of the TOML file requires.
//!
//! A value that cannot be read is left out: the offline checks already report it as
//! `MCP-CONFIG-001`.

use std::path::Path;

use mcp_security::auth::jwks::{ASYMMETRIC_ALGORITHMS, parse_algorithm};
use mcp_security::core::config::{Env, Environment};
use mcp_security::core::toml::{Value, parse, read_file, strings, table};

/// The settings the online checks read.
#[derive(Debug, Clone)]
pub(crate) struct OnlineSettings {
    /// Names variables with the deployment's prefix.
    pub(crate) env_prefix: String,
    pub(crate) environment: Environment,
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_url: Option<String>,
    /// `JWT_SECRET` (or its file) is set: an issuer alone is then only the required `iss`.
    pub(crate) has_jwt_secret: bool,
    /// The asymmetric algorithms a JWKS key may verify (the allow-list without `HS256` and
    /// unknown names), by name: `RS256`, `ES256`, `EdDSA`.
    pub(crate) algorithms: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) resource_url: Option<String>,
    pub(crate) authorization_servers: Option<Vec<String>>,
    /// Every scope the policy's rules name (`auth.mcp_scopes`, `auth.path_scopes`).
    pub(crate) required_scopes: Vec<String>,
}

impl OnlineSettings {
    /// Read `env`, and `config_file` (else `<PREFIX>_CONFIG_FILE`) for the policy's scopes.
    pub(crate) fn read(env: &Env, prefix: &str, config_file: Option<&Path>) -> Self {
        let string = |name: &str| env.string(name).ok().flatten();
        let list = |name: &str| env.list(name).ok().flatten();
        let has_jwt_secret = string("JWT_SECRET").is_some() || string("JWT_SECRET_FILE").is_some();
        let algorithms = match list("JWT_ALGORITHMS") {
            Some(names) => names
                .into_iter()
                .filter(|n| parse_algorithm(n).is_some_and(|a| ASYMMETRIC_ALGORITHMS.contains(&a)))
                .collect(),
            None => ASYMMETRIC_ALGORITHMS
                .iter()
                .map(|a| format!("{a:?}"))
                .collect(),
        };
        let config_file = config_file
            .map(Path::to_path_buf)
            .or_else(|| string("CONFIG_FILE").map(Into::into));
        OnlineSettings {
            env_prefix: prefix.to_owned(),
            environment: env.environment("ENV").unwrap_or(Environment::Production),
            issuer: string("JWT_ISSUER"),
            jwks_url: string("JWKS_URL"),
            has_jwt_secret,
            algorithms,
            audiences: list("JWT_AUDIENCE").unwrap_or_default(),
            resource_url: string("RESOURCE_URL"),
            authorization_servers: list("AUTHORIZATION_SERVERS"),
            required_scopes: config_file
                .map(|path| policy_scopes(&path))
                .unwrap_or_default(),
        }
    }

    /// The deployment's name for `name`: `IQ_JWT_ISSUER`.
    pub(crate) fn var(&self, name: &str) -> String {
        if self.env_prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.env_prefix)
        }
    }

    /// Whether the server verifies tokens with keys it fetches: `JWKS_URL`, or `JWT_ISSUER`
    /// without a secret (discovery).
    pub(crate) fn fetches_keys(&self) -> bool {
        self.jwks_url.is_some() || (self.issuer.is_some() && !self.has_jwt_secret)
    }

    /// The algorithm names, for messages.
    pub(crate) fn algorithm_names(&self) -> String {
        if self.algorithms.is_empty() {
            return "none".to_owned();
        }
        self.algorithms.join(", ")
    }
}

/// Every scope named by `[auth.mcp_scopes]` and `[[auth.path_scopes]]` in the TOML file at
/// `path`, deduplicated in file order, without `*`. Nothing when the file cannot be read.
fn policy_scopes(path: &Path) -> Vec<String> {
    let Ok(text) = read_file(path, "config") else {
        return Vec::new();
    };
    let Ok(doc) = parse(&text, "config") else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |scopes: Vec<String>| {
        for s in scopes {
            if s != "*" && !out.contains(&s) {
                out.push(s);
            }
        }
    };
    let Some(auth) = doc.get("auth").and_then(|v| table(v, "auth").ok()) else {
        return Vec::new();
    };
    if let Some(Ok(rules)) = auth.get("mcp_scopes").map(|v| table(v, "auth.mcp_scopes")) {
        for value in rules.values() {
            push(strings(value, "auth.mcp_scopes").unwrap_or_default());
        }
    }
    if let Some(Value::Array(rules)) = auth.get("path_scopes") {
        for rule in rules {
            if let Some(scopes) = rule.get("scopes") {
                push(strings(scopes, "auth.path_scopes").unwrap_or_default());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_server_variables_and_the_policy_scopes() {
        let dir = std::env::temp_dir().join(format!("mcp-online-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mcp.toml");
        std::fs::write(
            &file,
            "[auth.mcp_scopes]\n\"tools/call:delete\" = [\"notes:delete\", \"*\"]\n\"tools/list\" = [\"notes:read\"]\n\
             [[auth.path_scopes]]\nprefix = \"/admin\"\nscopes = [\"admin\", \"notes:read\"]\n",
        )
        .unwrap();
        let env = Env::from_pairs(
            "IQ",
            [
                ("IQ_ENV", "development"),
                ("IQ_JWT_ISSUER", "https://id.example.com"),
                ("IQ_JWT_ALGORITHMS", "RS256,HS256,nope"),
                ("IQ_JWT_AUDIENCE", "https://a.example/mcp, api://x"),
                ("IQ_CONFIG_FILE", file.to_str().unwrap()),
            ],
        );
        let s = OnlineSettings::read(&env, "IQ", None);
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.issuer.as_deref(), Some("https://id.example.com"));
        assert!(s.fetches_keys());
        assert_eq!(s.algorithms, ["RS256"]);
        assert_eq!(s.audiences, ["https://a.example/mcp", "api://x"]);
        assert_eq!(s.required_scopes, ["notes:delete", "notes:read", "admin"]);
        assert_eq!(s.var("JWKS_URL"), "IQ_JWKS_URL");

        // A secret makes the issuer only the required `iss`; defaults allow every asymmetric
        // algorithm; an unreadable file names no scope.
        let env = Env::from_pairs(
            "MCP",
            [
                ("MCP_JWT_ISSUER", "https://id.example.com"),
                ("MCP_JWT_SECRET_FILE", "/run/secrets/jwt"),
            ],
        );
        let s = OnlineSettings::read(&env, "MCP", Some(&dir.join("missing.toml")));
        assert!(!s.fetches_keys());
        assert_eq!(s.environment, Environment::Production);
        assert_eq!(
            s.algorithms,
            [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"
            ]
        );
        assert!(s.required_scopes.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
