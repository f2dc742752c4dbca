//! The issuer's metadata: RFC 8414 (`/.well-known/oauth-authorization-server`, inserted before
//! the issuer's path) and OpenID Connect Discovery (`/.well-known/openid-configuration`,
//! appended), the two documents the server's key discovery and MCP clients read. Both are
//! fetched; each one served must name the configured issuer exactly (RFC 8414 §3.3).

use mcp_security::prodcheck::rules;
use serde_json::Value;

use super::{OnlineReport, OnlineSettings, Status, http};

/// What the served metadata documents say, merged.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    /// `jwks_uri`, in the server's order (OpenID Connect's document first, then RFC 8414's).
    pub(crate) jwks_uri: Option<String>,
    /// `scopes_supported` of every document, or `None` when none publishes it.
    pub(crate) scopes_supported: Option<Vec<String>>,
    /// `id_token_signing_alg_values_supported` of every document.
    pub(crate) signing_algorithms: Vec<String>,
}

/// The metadata documents of `issuer`, RFC 8414's first (as MCP clients try them), each with
/// the name of its specification. The server's discovery reads the same two.
pub(crate) fn metadata_urls(issuer: &str) -> Result<[(String, &'static str); 2], &'static str> {
    let parsed = reqwest::Url::parse(issuer).map_err(|_| "not an absolute URL")?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("an issuer identifier has no query or fragment (RFC 8414 section 2)");
    }
    // The server's own list (OpenID Connect first), in the order MCP clients try them.
    let [oidc, rfc8414] = <[String; 2]>::try_from(mcp_security::auth::jwks::metadata_urls(issuer))
        .map_err(|_| "not an absolute URL")?;
    Ok([(rfc8414, "RFC 8414"), (oidc, "OpenID Connect Discovery")])
}

/// Fetch and check the metadata of the configured issuer; `None` when no document was served.
pub(crate) async fn check(
    client: &reqwest::Client,
    s: &OnlineSettings,
    issuer: &str,
    report: &mut OnlineReport,
) -> Option<Metadata> {
    let var = s.var("JWT_ISSUER");
    let urls = match metadata_urls(issuer) {
        Ok(urls) => urls,
        Err(why) => {
            report.fail(
                s,
                &rules::ONLINE_METADATA_UNREACHABLE,
                format!("{var} {issuer:?}: {why}; no metadata can be fetched"),
                Some(var),
            );
            return None;
        }
    };
    let [(rfc8414, _), (oidc, _)] = &urls;
    let (a, b) = tokio::join!(
        http::get_json(client, rfc8414, s.environment),
        http::get_json(client, oidc, s.environment),
    );
    let mut served = Vec::new();
    let mut failed = Vec::new();
    for ((url, spec), result) in urls.iter().zip([a, b]) {
        match result {
            Ok(doc) if doc.is_object() => served.push((url.as_str(), *spec, doc)),
            Ok(_) => failed.push(format!("{url}: not a JSON object")),
            Err(why) => failed.push(format!("{url}: {why}")),
        }
    }
    if served.is_empty() {
        report.fail(
            s,
            &rules::ONLINE_METADATA_UNREACHABLE,
            format!(
                "{var} {issuer:?}: no authorization-server metadata: {}",
                failed.join("; ")
            ),
            Some(var),
        );
        return None;
    }
    let mut detail: Vec<String> = served
        .iter()
        .map(|(url, spec, _)| format!("{url} ({spec})"))
        .collect();
    if !failed.is_empty() {
        detail.push(format!("not served: {}", failed.join("; ")));
    }
    report.check(
        &rules::ONLINE_METADATA_UNREACHABLE,
        Status::Ok,
        format!("metadata: {}", detail.join(", ")),
    );

    let mismatched: Vec<String> = served
        .iter()
        .filter_map(|(url, _, doc)| match doc.get("issuer") {
            Some(Value::String(got)) if got == issuer => None,
            Some(Value::String(got)) => Some(format!("{url} says issuer {got:?}")),
            Some(_) => Some(format!("{url} has an issuer that is not a string")),
            None => Some(format!("{url} has no issuer")),
        })
        .collect();
    if mismatched.is_empty() {
        report.check(
            &rules::ONLINE_ISSUER_MISMATCH,
            Status::Ok,
            format!("the metadata's issuer is {var} ({issuer})"),
        );
    } else {
        report.fail(
            s,
            &rules::ONLINE_ISSUER_MISMATCH,
            format!(
                "{}, but {var} is {issuer:?}: the server's key discovery refuses such metadata, \
                 and tokens would carry the other value as iss",
                mismatched.join("; ")
            ),
            Some(var),
        );
    }

    let mut meta = Metadata::default();
    // The server reads jwks_uri from the OpenID Connect document first.
    for (_, _, doc) in served.iter().rev() {
        if meta.jwks_uri.is_none() {
            meta.jwks_uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
    }
    for (_, _, doc) in &served {
        if let Some(scopes) = strings(doc, "scopes_supported") {
            let all = meta.scopes_supported.get_or_insert_with(Vec::new);
            for scope in scopes {
                if !all.contains(&scope) {
                    all.push(scope);
                }
            }
        }
        for alg in strings(doc, "id_token_signing_alg_values_supported").unwrap_or_default() {
            if !meta.signing_algorithms.contains(&alg) {
                meta.signing_algorithms.push(alg);
            }
        }
    }
    Some(meta)
}

/// A member that is an array, with its string elements.
fn strings(doc: &Value, member: &str) -> Option<Vec<String>> {
    doc.get(member).and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::metadata_urls;

    #[test]
    fn well_known_urls_of_an_issuer() {
        let [(a, _), (b, _)] = metadata_urls("https://id.example.com").unwrap();
        assert_eq!(
            a,
            "https://id.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(b, "https://id.example.com/.well-known/openid-configuration");
        // RFC 8414 section 3.1 inserts the well-known segment before the issuer's path;
        // OpenID Connect Discovery appends it.
        let [(a, _), (b, _)] = metadata_urls("https://id.example.com:8443/realms/mcp/").unwrap();
        assert_eq!(
            a,
            "https://id.example.com:8443/.well-known/oauth-authorization-server/realms/mcp"
        );
        assert_eq!(
            b,
            "https://id.example.com:8443/realms/mcp/.well-known/openid-configuration"
        );
        assert!(metadata_urls("id.example.com").is_err());
        assert!(metadata_urls("https://id.example.com/?tenant=1").is_err());
    }
}
