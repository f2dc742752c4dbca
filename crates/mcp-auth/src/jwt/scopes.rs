//! Which claims carry a token's scopes, and reading them: the issuers' shapes differ.
//!
//! | issuer | scopes in |
//! |---|---|
//! | RFC 9068, Auth0, Keycloak | `scope`: a space-separated string |
//! | Entra ID | `scp`: a space-separated string; app roles in `roles` (an array) |
//! | Okta | `scp`: an array of strings |
//! | Auth0 RBAC | `permissions`: an array of strings |
//! | Auth0 actions | a namespaced claim such as `https://example.com/roles` |
//! | Keycloak realm roles | `realm_access.roles`, reached by the JSON pointer `/realm_access/roles` |
//!
//! By default [`DEFAULT_SCOPE_CLAIMS`] are read. A configured list replaces it; each entry is a
//! top-level claim name, or an RFC 6901 JSON pointer when it starts with `/` (`~1` stands for
//! `/` and `~0` for `~` inside a name). Each value may be a space-separated string or an array of
//! strings; any other value of a configured claim refuses the token as
//! [`AuthFailure::InvalidClaims`]. An absent (or `null`) claim grants nothing.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_security_core::AuthFailure;
use mcp_security_core::config::ConfigError;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::claims::ClaimSet;

/// The most distinct scopes a token may grant (more is `invalid_claims`): every scope is kept on
/// the principal and in the verified-token cache, so this bounds what one cached token costs.
pub const MAX_TOKEN_SCOPES: usize = 256;

/// The claims scopes are read from unless configured otherwise: `scope` (RFC 9068, Auth0,
/// Keycloak), `scp` (Entra ID, Okta), and the `scopes` and `permissions` arrays (Auth0 RBAC and
/// others). `roles` is not among them: roles are not scopes unless a deployment says so.
pub const DEFAULT_SCOPE_CLAIMS: [&str; 4] = ["scope", "scp", "scopes", "permissions"];

pub(super) const SETTING_SCOPE_CLAIMS: &str = "jwt_scope_claims";

/// A claim the strict claims struct reads in the same pass as the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Scope,
    Scp,
    Scopes,
    Permissions,
}

impl Builtin {
    fn by_name(name: &str) -> Option<Builtin> {
        match name {
            "scope" => Some(Builtin::Scope),
            "scp" => Some(Builtin::Scp),
            "scopes" => Some(Builtin::Scopes),
            "permissions" => Some(Builtin::Permissions),
            _ => None,
        }
    }
}

/// Where one configured claim is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Builtin(Builtin),
    /// A top-level member, then the path below it (object members or array indexes).
    Path(String, Vec<String>),
}

/// The configured scope claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScopeClaims {
    sources: Vec<Source>,
    /// As configured, for `Debug` and accessors.
    names: Vec<String>,
}

impl Default for ScopeClaims {
    fn default() -> Self {
        ScopeClaims {
            sources: DEFAULT_SCOPE_CLAIMS
                .iter()
                .filter_map(|n| Builtin::by_name(n).map(Source::Builtin))
                .collect(),
            names: DEFAULT_SCOPE_CLAIMS.iter().map(|&n| n.to_owned()).collect(),
        }
    }
}

impl ScopeClaims {
    /// Parse configured names and pointers.
    ///
    /// # Errors
    /// `jwt_scope_claims`: an empty list, an empty name, or a pointer with a `~` not followed by
    /// `0` or `1`.
    pub(super) fn parse(names: &[String]) -> Result<ScopeClaims, ConfigError> {
        if names.is_empty() {
            return Err(ConfigError::new(
                SETTING_SCOPE_CLAIMS,
                "the list is empty: name at least one claim (default: scope, scp, scopes, \
                 permissions)",
            ));
        }
        let mut sources = Vec::with_capacity(names.len());
        for name in names {
            if name.is_empty() {
                return Err(ConfigError::new(
                    SETTING_SCOPE_CLAIMS,
                    "a claim name is empty",
                ));
            }
            let mut path = if let Some(pointer) = name.strip_prefix('/') {
                pointer
                    .split('/')
                    .map(unescape)
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| {
                        ConfigError::new(
                            SETTING_SCOPE_CLAIMS,
                            "not a valid JSON pointer (RFC 6901): `~` must be followed by `0` \
                             or `1`",
                        )
                        .with_value(name.as_str())
                    })?
            } else {
                vec![name.clone()]
            };
            let top = path.remove(0);
            let source = match Builtin::by_name(&top) {
                Some(builtin) if path.is_empty() => Source::Builtin(builtin),
                _ => Source::Path(top, path),
            };
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        Ok(ScopeClaims {
            sources,
            names: names.to_vec(),
        })
    }

    /// The configured names and pointers, as given.
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    /// The scopes `claims` grant (and `payload`, the token's base64url payload, for claims the
    /// claims struct does not read), deduplicated, first seen first.
    ///
    /// # Errors
    /// [`AuthFailure::InvalidClaims`] when a configured claim is neither a string nor an array
    /// of strings, a top-level member it names is duplicated, or the token grants more than
    /// [`MAX_TOKEN_SCOPES`] distinct scopes.
    pub(super) fn collect(
        &self,
        claims: &ClaimSet,
        payload: &str,
    ) -> Result<Vec<String>, AuthFailure> {
        let mut granted = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |values: &[String]| {
            for value in values {
                let value = value.trim();
                if !value.is_empty() && seen.insert(value.to_owned()) {
                    granted.push(value.to_owned());
                }
            }
        };
        let mut members: Option<Vec<(String, Value)>> = None;
        for source in &self.sources {
            match source {
                Source::Builtin(builtin) => {
                    let value = match builtin {
                        Builtin::Scope => &claims.scope,
                        Builtin::Scp => &claims.scp,
                        Builtin::Scopes => &claims.scopes,
                        Builtin::Permissions => &claims.permissions,
                    };
                    match value {
                        None => {}
                        Some(ScopeValue::Valid(values)) => add(values),
                        Some(ScopeValue::Invalid) => return Err(AuthFailure::InvalidClaims),
                    }
                }
                Source::Path(top, rest) => {
                    if members.is_none() {
                        members = Some(self.members(payload)?);
                    }
                    let found = members
                        .as_ref()
                        .and_then(|m| m.iter().find(|(name, _)| name == top))
                        .and_then(|(_, value)| walk(value, rest));
                    match found {
                        None | Some(Value::Null) => {}
                        Some(value) => add(&scope_values(value)?),
                    }
                }
            }
        }
        // Each scope is kept on the principal (and in the verified-token cache): a token that
        // grants more than any real issuer does is refused, so a cached entry stays small.
        if granted.len() > MAX_TOKEN_SCOPES {
            return Err(AuthFailure::InvalidClaims);
        }
        Ok(granted)
    }

    /// The top-level members the configured paths start at, read from the payload again (the
    /// claims struct keeps only the members it knows).
    fn members(&self, payload: &str) -> Result<Vec<(String, Value)>, AuthFailure> {
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthFailure::InvalidClaims)?;
        let wanted: Vec<&str> = self
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Path(top, _) => Some(top.as_str()),
                Source::Builtin(_) => None,
            })
            .collect();
        let mut de = serde_json::Deserializer::from_slice(&json);
        Members(&wanted)
            .deserialize(&mut de)
            .map_err(|_| AuthFailure::InvalidClaims)
    }
}

/// One RFC 6901 reference token, unescaped (`~1` → `/`, then `~0` → `~`); `None` when a `~` is
/// followed by anything else.
fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Follow `path` below `value`: object members by name, array elements by an RFC 6901 index
/// (digits, no leading zero).
fn walk<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |at, token| match at {
        Value::Object(map) => map.get(token),
        Value::Array(items) => {
            let index_ok = !token.is_empty()
                && token.bytes().all(|b| b.is_ascii_digit())
                && (token == "0" || !token.starts_with('0'));
            if !index_ok {
                return None;
            }
            token.parse::<usize>().ok().and_then(|i| items.get(i))
        }
        _ => None,
    })
}

/// A configured claim's value: a space-separated string or an array of strings.
fn scope_values(value: &Value) -> Result<Vec<String>, AuthFailure> {
    match value {
        Value::String(s) => Ok(s.split(' ').map(str::to_owned).collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(AuthFailure::InvalidClaims),
            })
            .collect(),
        _ => Err(AuthFailure::InvalidClaims),
    }
}

/// A claim that may carry scopes, as the claims struct reads it: never a decoding error, so a
/// malformed claim refuses the token only when it is configured.
pub(super) enum ScopeValue {
    /// A space-separated string (split) or an array of strings.
    Valid(Vec<String>),
    /// Anything else.
    Invalid,
}

impl<'de> Deserialize<'de> for ScopeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScopeValueVisitor)
    }
}

struct ScopeValueVisitor;

impl<'de> Visitor<'de> for ScopeValueVisitor {
    type Value = ScopeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a space-separated string or an array of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ScopeValue::Valid(v.split(' ').map(str::to_owned).collect()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        let mut valid = true;
        while let Some(item) = seq.next_element::<Item>()? {
            match item {
                Item::Str(s) => values.push(s),
                Item::Other => valid = false,
            }
        }
        Ok(if valid {
            ScopeValue::Valid(values)
        } else {
            ScopeValue::Invalid
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ScopeValue::Invalid)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ScopeValue::Invalid)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ScopeValue::Invalid)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ScopeValue::Invalid)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ScopeValue::Invalid)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ScopeValue::Invalid)
    }
}

/// An array element: a string, or anything else (consumed).
enum Item {
    Str(String),
    Other,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Item::Str(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Item::Str(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item::Other)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Item::Other)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Item::Other)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Item::Other)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Item::Other)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Item::Other)
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}

/// Reads the named top-level members of a claims object as JSON values (a duplicated one is an
/// error), skipping the others.
struct Members<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = Vec<(String, Value)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Vec<(String, Value)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if self.0.contains(&name.as_str()) {
                if found.iter().any(|(n, _)| *n == name) {
                    return Err(de::Error::custom("duplicate claim"));
                }
                let value = map.next_value::<Value>()?;
                found.push((name, value));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
