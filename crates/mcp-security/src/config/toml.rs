//! The TOML file (`CONFIG_FILE`): what variables cannot say well.

use mcp_security_core::toml::{boolean, string, strings, table, unknown_key};

use super::*;

pub(super) fn apply_toml(s: &mut Settings, doc: &Table) -> Result<(), ConfigError> {
    for (key, value) in doc {
        match key.as_str() {
            "auth" => toml_auth(s, table(value, "auth")?)?,
            "cors" => {
                for (k, v) in table(value, "cors")? {
                    match k.as_str() {
                        "allow_credentials" => {
                            s.cors_allow_credentials = boolean(v, "cors.allow_credentials")?;
                        }
                        _ => return Err(unknown(&format!("cors.{k}"))),
                    }
                }
            }
            "headers" => toml_headers(s, table(value, "headers")?)?,
            "network" => toml_network(s, value)?,
            "blocked_pattern" => toml_blocked_patterns(s, value)?,
            "rate_limit" | "budget" => {}
            _ => return Err(unknown(key)),
        }
    }
    Ok(())
}

fn toml_auth(s: &mut Settings, auth: &Table) -> Result<(), ConfigError> {
    for (key, value) in auth {
        let path = format!("auth.{key}");
        match key.as_str() {
            "exempt_paths" => s.exempt_paths = Some(strings(value, &path)?),
            "deny_prefixes" => s.deny_prefixes.extend(strings(value, &path)?),
            "mcp_scopes" => {
                for (k, v) in table(value, &path)? {
                    s.mcp_scopes
                        .push((k.clone(), strings(v, &format!("{path}.{k}"))?));
                }
            }
            "path_scopes" => {
                let Value::Array(rules) = value else {
                    return Err(ConfigError::new(&path, "must be an array of tables"));
                };
                for (i, rule) in rules.iter().enumerate() {
                    let path = format!("{path}[{i}]");
                    let rule = table(rule, &path)?;
                    let mut prefix = None;
                    let mut methods = None;
                    let mut scopes = Vec::new();
                    for (k, v) in rule {
                        let path = format!("{path}.{k}");
                        match k.as_str() {
                            "prefix" => prefix = Some(string(v, &path)?),
                            "scopes" => scopes = strings(v, &path)?,
                            "methods" => {
                                let parsed = strings(v, &path)?
                                    .into_iter()
                                    .map(|m| {
                                        Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                                            .map_err(|_| {
                                                ConfigError::new(&path, "not an HTTP method")
                                                    .with_value(m)
                                            })
                                    })
                                    .collect::<Result<Vec<_>, _>>()?;
                                methods = Some(parsed);
                            }
                            _ => return Err(unknown(&path)),
                        }
                    }
                    let prefix = prefix
                        .ok_or_else(|| ConfigError::new(format!("{path}.prefix"), "is required"))?;
                    s.path_scopes.push((prefix, methods, scopes));
                }
            }
            _ => return Err(unknown(&path)),
        }
    }
    Ok(())
}

fn toml_headers(s: &mut Settings, headers: &Table) -> Result<(), ConfigError> {
    if let Some(preset) = headers.get("preset") {
        let preset = match string(preset, "headers.preset")?.as_str() {
            "api" => Preset::Api,
            "web" => Preset::Web,
            other => {
                return Err(
                    ConfigError::new("headers.preset", "expected \"api\" or \"web\"")
                        .with_value(other),
                );
            }
        };
        s.headers = s.headers.clone().preset(preset);
    }
    for (key, value) in headers {
        let path = format!("headers.{key}");
        match key.as_str() {
            "preset" => {}
            "omit" => {
                for name in strings(value, &path)? {
                    s.headers = s.headers.clone().omit(&name);
                }
            }
            "set" => {
                for (name, v) in table(value, &path)? {
                    let v = string(v, &format!("{path}.{name}"))?;
                    s.headers = s.headers.clone().header(name, &v);
                }
            }
            _ => return Err(unknown(&path)),
        }
    }
    Ok(())
}

/// `[[network]]`: `path` (required), `allow` and `deny` lists of CIDRs per path prefix.
fn toml_network(s: &mut Settings, value: &Value) -> Result<(), ConfigError> {
    let Value::Array(rules) = value else {
        return Err(ConfigError::new(
            "network",
            "must be an array of tables ([[network]])",
        ));
    };
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("network[{i}]");
        let mut prefix = None;
        let mut allow = Vec::new();
        let mut deny = Vec::new();
        for (k, v) in table(rule, &path)? {
            let key = format!("{path}.{k}");
            match k.as_str() {
                "path" => {
                    let p = string(v, &key)?;
                    if !p.starts_with('/') || (p.len() > 1 && p.ends_with('/')) {
                        return Err(ConfigError::new(
                            &key,
                            "a path prefix must start with '/' and not end with '/'",
                        )
                        .with_value(p));
                    }
                    if s.network_rules.iter().any(|(q, _, _)| *q == p) {
                        return Err(ConfigError::new(
                            &key,
                            "another rule has the same path prefix; merge their lists",
                        )
                        .with_value(p));
                    }
                    prefix = Some(p);
                }
                "allow" | "deny" => {
                    let nets = strings(v, &key)?
                        .iter()
                        .map(|entry| {
                            mcp_headers::network::parse_network(entry)
                                .map_err(|why| ConfigError::new(&key, why).with_value(entry))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if k == "allow" {
                        allow = nets;
                    } else {
                        deny = nets;
                    }
                }
                _ => return Err(unknown(&key)),
            }
        }
        let prefix =
            prefix.ok_or_else(|| ConfigError::new(format!("{path}.path"), "is required"))?;
        s.network_rules.push((prefix, allow, deny));
    }
    Ok(())
}

/// `[[blocked_pattern]]`: `id` and `tool` (required), `pointer` (default `""`: every argument),
/// `patterns` and `preset` (a name or a list; at least one of the two). The expressions are
/// compiled by the build's validation, which names the rule.
fn toml_blocked_patterns(s: &mut Settings, value: &Value) -> Result<(), ConfigError> {
    use mcp_security_guard::{BlockedPattern, PatternPreset};
    let Value::Array(rules) = value else {
        return Err(ConfigError::new(
            "blocked_pattern",
            "must be an array of tables ([[blocked_pattern]])",
        ));
    };
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("blocked_pattern[{i}]");
        let (mut id, mut tool, mut pointer) = (None, None, String::new());
        let mut patterns = Vec::new();
        let mut presets = Vec::new();
        for (k, v) in table(rule, &path)? {
            let key = format!("{path}.{k}");
            match k.as_str() {
                "id" => id = Some(string(v, &key)?),
                "tool" => tool = Some(string(v, &key)?),
                "pointer" => pointer = string(v, &key)?,
                "patterns" => patterns = strings(v, &key)?,
                "preset" => {
                    let names = match v {
                        Value::String(name) => vec![name.clone()],
                        _ => strings(v, &key)?,
                    };
                    for name in names {
                        presets.push(PatternPreset::parse(&key, &name)?);
                    }
                }
                _ => return Err(unknown(&key)),
            }
        }
        let id = id.ok_or_else(|| ConfigError::new(format!("{path}.id"), "is required"))?;
        let tool = tool.ok_or_else(|| {
            ConfigError::new(format!("{path}.tool"), "is required (`*` for every tool)")
        })?;
        let mut rule = BlockedPattern::new(id, tool, pointer).patterns(patterns);
        for p in presets {
            rule = rule.preset(p);
        }
        s.blocked_patterns.push(rule);
    }
    Ok(())
}

fn unknown(path: &str) -> ConfigError {
    unknown_key(path, "see the mcp-security configuration docs")
}
