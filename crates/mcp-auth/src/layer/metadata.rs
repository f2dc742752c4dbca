//! The protected resource: its URL (fixed, or derived from an allowed `Host`), the
//! `WWW-Authenticate` challenge that points at it, and the RFC 9728 metadata document (with
//! `dpop_signing_alg_values_supported` when DPoP is on, and `dpop_bound_access_tokens_required`
//! when it is required).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use mcp_security_core::config::ConfigError;
use mcp_security_core::rejection::{BearerChallenge, BearerError, ResponseFormat};
use mcp_security_core::url::{is_authority_byte, split_host_port};
use mcp_security_core::{AuthOutcome, GuardBody, Rejection};

use super::{METADATA_PATH, Shared};

/// An absolute resource URL split into origin and path.
#[derive(Debug, Clone)]
pub(super) struct ResourceUrl {
    pub(super) url: String,
    pub(super) origin: String,
    pub(super) path: String,
}

impl ResourceUrl {
    /// With [`mcp_security_core::url::ResourceUrl`]'s rules, the one parser `mcp-security check` uses
    /// too.
    pub(super) fn parse(url: &str) -> Result<Self, ConfigError> {
        let parsed = mcp_security_core::url::ResourceUrl::parse(url)
            .map_err(|e| ConfigError::new("resource", e.reason()).with_value(url))?;
        Ok(ResourceUrl {
            url: url.to_owned(),
            origin: parsed.origin().to_owned(),
            path: parsed.path().trim_end_matches('/').to_owned(),
        })
    }

    pub(super) fn metadata_url(&self) -> String {
        format!("{}{METADATA_PATH}{}", self.origin, self.path)
    }
}

/// The `Host` names a loopback-bound server answers to, the default of
/// [`AuthLayerBuilder::allowed_hosts`](super::AuthLayerBuilder::allowed_hosts).
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// One allowed `Host`: a lower-case name or address (IPv6 in brackets), and a port or any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostRule {
    pub(super) host: String,
    pub(super) port: Option<u16>,
}

impl HostRule {
    /// `name`, `name:port`, an IPv4 address, or an IPv6 address with or without brackets (the
    /// forms mcp-headers' Origin guard accepts, and its normalised `allowed_hosts()`).
    pub(super) fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if let Ok(ip) = entry.parse::<std::net::Ipv6Addr>() {
            return Some(HostRule {
                host: format!("[{ip}]"),
                port: None,
            });
        }
        let (host, port) = split_host_port(entry)?;
        if host.is_empty() || port == Some(0) || !host.bytes().all(is_authority_byte) {
            return None;
        }
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(literal) => format!("[{}]", literal.parse::<std::net::Ipv6Addr>().ok()?),
            None if host.contains([':', '[', ']']) => return None,
            None => host.to_ascii_lowercase(),
        };
        Some(HostRule { host, port })
    }

    pub(super) fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// Where a request's resource URL comes from.
#[derive(Debug)]
pub(super) enum Resolved<'a> {
    /// Configured (or the JWT audience): the same for every request.
    Fixed(&'a ResourceUrl),
    /// Derived from an allowed `Host`.
    Derived(ResourceUrl),
    /// None; `host_dependent` when another `Host` could have named one.
    Unknown { host_dependent: bool },
}

impl Resolved<'_> {
    pub(super) fn url(&self) -> Option<&ResourceUrl> {
        match self {
            Resolved::Fixed(r) => Some(r),
            Resolved::Derived(r) => Some(r),
            Resolved::Unknown { .. } => None,
        }
    }

    /// Whether the answer depends on `Host` (and so carries `Vary: Host`).
    pub(super) fn varies(&self) -> bool {
        matches!(
            self,
            Resolved::Derived(_)
                | Resolved::Unknown {
                    host_dependent: true
                }
        )
    }
}

impl Shared {
    /// The request's resource URL; see the [module docs](self#the-resource-url).
    pub(super) fn resource_url<B>(&self, req: &Request<B>) -> Resolved<'_> {
        if let Some(r) = &self.resource {
            return Resolved::Fixed(r);
        }
        let Some(rules) = &self.resource_hosts else {
            return Resolved::Unknown {
                host_dependent: false,
            };
        };
        let unknown = Resolved::Unknown {
            host_dependent: true,
        };
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(h), None) => h.to_str().ok(),
            (None, _) => req.uri().authority().map(|a| a.as_str()),
            (Some(_), Some(_)) => None,
        };
        let Some(host) = host.map(str::trim) else {
            return unknown;
        };
        if host.is_empty() || !host.bytes().all(is_authority_byte) {
            return unknown;
        }
        let Some((name, port)) = split_host_port(host) else {
            return unknown;
        };
        if !rules.iter().any(|r| r.allows(name, port)) {
            return unknown;
        }
        match ResourceUrl::parse(&format!("http://{host}{}", self.mcp_path)) {
            Ok(r) => Resolved::Derived(r),
            Err(_) => unknown,
        }
    }

    pub(super) fn is_metadata_path(&self, path: &str) -> bool {
        match path.strip_prefix(METADATA_PATH) {
            Some("") => true,
            Some(rest) => match &self.resource {
                Some(r) => rest == r.path,
                None => rest == self.mcp_path,
            },
            None => false,
        }
    }

    /// `rejection` with its `WWW-Authenticate: Bearer` challenge (and `Vary: Host` when the
    /// challenge's `resource_metadata` depends on `Host`).
    pub(super) fn challenge<B>(
        &self,
        req: &Request<B>,
        rejection: Rejection,
        error: Option<BearerError>,
        description: Option<&'static str>,
        scopes: &[&str],
    ) -> Rejection {
        let mut c = BearerChallenge::new();
        if let Some(realm) = &self.realm {
            c = c.realm(realm.clone());
        }
        if let Some(e) = error {
            c = c.error(e);
        }
        if let Some(d) = description {
            c = c.error_description(d);
        }
        let resolved = self.resource_url(req);
        if let Some(r) = resolved.url() {
            c = c.resource_metadata(r.metadata_url());
        }
        if !scopes.is_empty() {
            c = c.scope(scopes.join(" "));
        }
        let rejection = rejection.challenge(c);
        if resolved.varies() {
            rejection.header(header::VARY, HeaderValue::from_static("host"))
        } else {
            rejection
        }
    }

    pub(super) fn metadata_response<B, ResBody>(
        &self,
        req: &Request<B>,
    ) -> Response<GuardBody<ResBody>> {
        let cors = |res: &mut Response<GuardBody<ResBody>>| {
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("mcp-protocol-version, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        };
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => {
                let mut res = Response::new(GuardBody::rejection(Bytes::new()));
                *res.status_mut() = StatusCode::NO_CONTENT;
                cors(&mut res);
                return res;
            }
            _ => {
                let mut res = Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                    .header(
                        header::ALLOW,
                        HeaderValue::from_static("GET, HEAD, OPTIONS"),
                    )
                    .into_response(&ResponseFormat::Json);
                cors(&mut res);
                return res;
            }
        }
        let resolved = self.resource_url(req);
        let vary = resolved.varies();
        let Some(resource) = resolved.url() else {
            // No configured resource, and no Host trusted to name one: say nothing rather than
            // echo the request's Host.
            let mut rejection = Rejection::new(StatusCode::NOT_FOUND, "not_found")
                .message("No protected-resource metadata is served for this host")
                .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
                .detail("no resource URL is configured and the Host is not on the allowlist");
            if vary {
                rejection = rejection.header(header::VARY, HeaderValue::from_static("host"));
            }
            let mut res = rejection.into_response(&ResponseFormat::Json);
            if req.method() == Method::HEAD {
                *res.body_mut() = GuardBody::rejection(Bytes::new());
            }
            cors(&mut res);
            res.extensions_mut().insert(AuthOutcome::Exempt);
            return res;
        };
        let mut doc = serde_json::Map::new();
        doc.insert("resource".into(), resource.url.clone().into());
        if !self.authorization_servers.is_empty() {
            doc.insert(
                "authorization_servers".into(),
                json!(self.authorization_servers),
            );
        }
        if !self.scopes_supported.is_empty() {
            doc.insert("scopes_supported".into(), json!(self.scopes_supported));
        }
        let mut methods = vec!["header"];
        if self.url_auth {
            methods.push("query");
        }
        doc.insert("bearer_methods_supported".into(), json!(methods));
        if let Some(dpop) = &self.dpop {
            doc.insert(
                "dpop_signing_alg_values_supported".into(),
                json!(dpop.verifier.algorithms().collect::<Vec<_>>()),
            );
            if dpop.mode == crate::dpop::DpopMode::Required {
                doc.insert("dpop_bound_access_tokens_required".into(), true.into());
            }
        }
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(serde_json::Value::Object(doc).to_string())
        };
        let mut res = Response::new(GuardBody::rejection(body));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        if vary {
            res.headers_mut()
                .append(header::VARY, HeaderValue::from_static("host"));
        }
        cors(&mut res);
        res.extensions_mut().insert(AuthOutcome::Exempt);
        res
    }
}

#[cfg(test)]
mod resource_url_tests {
    use super::*;

    #[test]
    fn resource_urls_follow_the_shared_parser() {
        for (url, reason) in [
            (
                "HTTPS://mcp.example.com/mcp",
                "must be an absolute http(s) URL (scheme in lower case)",
            ),
            (
                "https://mcp.example.com/mcp?v=1",
                "must not contain a query",
            ),
            (
                "https://svc@mcp.example.com/mcp",
                "must not contain user information",
            ),
            ("https://mcp.example.com:99999/mcp", "has no valid host"),
        ] {
            let e = ResourceUrl::parse(url).unwrap_err();
            assert_eq!(e.setting(), "resource", "{url}");
            assert!(e.to_string().contains(reason), "{url}: {e}");
            assert!(!mcp_security_core::url::ResourceUrl::is_valid(url));
        }
        let r = ResourceUrl::parse("https://mcp.example.com:8443/mcp/").unwrap();
        assert_eq!(r.origin, "https://mcp.example.com:8443");
        assert_eq!(r.path, "/mcp");
        assert_eq!(
            r.metadata_url(),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp"
        );
    }
}
