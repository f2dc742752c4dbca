//! The HTTP client of the online checks: the server's (reqwest on rustls), with short timeouts,
//! bounded bodies, and `https://` only — plain `http://` just for a loopback host in
//! development.

use std::net::IpAddr;
use std::time::Duration;

use mcp_security::core::config::Environment;
use serde_json::Value;

/// The timeout of one request (connect included).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest body read; the server's own bound on discovery and JWKS responses.
pub(crate) const MAX_BODY_BYTES: usize = mcp_security::auth::jwks::DEFAULT_MAX_RESPONSE_BYTES;
/// Redirects followed, each under the same transport rule (as the server does).
const MAX_REDIRECTS: usize = 3;

/// Why a URL is not fetched, or `None` when it may be: `https://`, or `http://` to a loopback
/// host (`localhost`, `127.0.0.0/8`, `::1`) in development.
pub(crate) fn refused(url: &str, environment: Environment) -> Option<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Some("not an absolute URL".to_owned());
    };
    match parsed.scheme() {
        "https" => None,
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            match (loopback, environment) {
                (true, Environment::Development) => None,
                (true, Environment::Production) => Some(
                    "not fetched: plain http is fetched only from a loopback host in development \
                     (ENV=development); use https://"
                        .to_owned(),
                ),
                (false, _) => Some(
                    "not fetched: plain http is refused (tokens' keys could be swapped in \
                     transit); use https://, or a loopback host in development"
                        .to_owned(),
                ),
            }
        }
        other => Some(format!("not fetched: the scheme {other}: is not https")),
    }
}

/// The client: [`TIMEOUT`], at most three redirects, each allowed by [`refused`].
pub(crate) fn client(environment: Environment) -> Result<reqwest::Client, String> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if let Some(why) = refused(attempt.url().as_str(), environment) {
            let to = attempt.url().to_string();
            attempt.error(format!("redirected to {to}: {why}"))
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(policy)
        .user_agent(concat!("mcp-security-check/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// GET `url` and read its body as one JSON value, at most [`MAX_BODY_BYTES`]. The error says
/// why in a phrase (`answered 404 Not Found`, `request failed: …`, `not JSON: …`).
pub(crate) async fn get_json(
    client: &reqwest::Client,
    url: &str,
    environment: Environment,
) -> Result<Value, String> {
    if let Some(why) = refused(url, environment) {
        return Err(why);
    }
    let mut res = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await
        .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    let too_large = || format!("the response is larger than {MAX_BODY_BYTES} bytes");
    if res
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed: {}", error_chain(&e)))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// An error and its sources, `: `-separated (reqwest's own message says little: "error sending
/// request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_always_http_only_on_loopback_in_development() {
        let dev = Environment::Development;
        let prod = Environment::Production;
        assert_eq!(refused("https://id.example.com", prod), None);
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
        ] {
            assert_eq!(refused(url, dev), None, "{url}");
            let why = refused(url, prod).unwrap();
            assert!(
                why.contains("only from a loopback host in development"),
                "{why}"
            );
        }
        let why = refused("http://id.example.com", dev).unwrap();
        assert!(why.contains("plain http is refused"), "{why}");
        assert!(
            refused("ftp://id.example.com", dev)
                .unwrap()
                .contains("ftp")
        );
        assert_eq!(
            refused("id.example.com", dev).unwrap(),
            "not an absolute URL"
        );
    }
}
