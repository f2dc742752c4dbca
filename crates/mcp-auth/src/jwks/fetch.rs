//! Fetching: the background refresh task, issuer discovery (OIDC / RFC 8414 metadata), and the
//! bounded HTTPS GET with its `Cache-Control: max-age`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;

use super::keyset::KeySet;
use super::{Location, Remote, Shared, check_transport};

/// Fetch, then sleep until the set is due for a refresh or an early refresh is asked for; end
/// when the source is dropped.
pub(super) async fn refresh_task(weak: Weak<Shared>, notify: Arc<Notify>) {
    let mut failures: u32 = 0;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let Some(remote) = &shared.remote else {
            return;
        };
        let wait = match fetch(&shared, remote).await {
            Ok((ttl, count)) => {
                if failures > 0 {
                    tracing::info!(keys = count, "JWKS loaded again after failures");
                }
                failures = 0;
                tracing::debug!(keys = count, ttl = ?ttl, "JWKS loaded");
                ttl.mul_f64(0.9)
            }
            Err(why) => {
                failures = failures.saturating_add(1);
                let keeping = shared
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len;
                tracing::warn!(
                    source = ?shared.location,
                    error = %why,
                    keeping_keys = keeping,
                    "JWKS fetch failed; tokens signed with unknown keys get 401 until it succeeds"
                );
                let factor = 1u32 << failures.saturating_sub(1).min(16);
                remote
                    .min_gap
                    .saturating_mul(factor)
                    .min(remote.default_ttl)
            }
        };
        drop(shared);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = notify.notified() => {
                    let Some(shared) = weak.upgrade() else { return };
                    let wanted = shared
                        .remote
                        .as_ref()
                        .is_some_and(|r| r.wanted.swap(false, Ordering::AcqRel));
                    if wanted {
                        break;
                    }
                }
            }
        }
    }
}

/// One fetch: discovery (if needed, cached) and the JWK Set. Returns the freshness and the key
/// count.
pub(super) async fn fetch(shared: &Shared, remote: &Remote) -> Result<(Duration, usize), String> {
    remote.wanted.store(false, Ordering::Release);
    remote
        .last_fetch
        .store(remote.clock.now_nanos(), Ordering::Release);
    remote.fetches.fetch_add(1, Ordering::Relaxed);

    let jwks_uri = match &shared.location {
        Location::Url(url) => url.clone(),
        Location::Issuer(issuer) => {
            let cached = remote
                .jwks_uri
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            match cached {
                Some(uri) => uri,
                None => {
                    let uri = discover(remote, issuer).await?;
                    *remote
                        .jwks_uri
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(uri.clone());
                    uri
                }
            }
        }
        Location::File(_) | Location::Json(_) => return Err("not a remote source".to_owned()),
    };
    let result = async {
        let (body, max_age) = get(remote, &jwks_uri).await?;
        let set = KeySet::parse(&body, &shared.algorithms)?;
        Ok::<_, String>((set, max_age))
    }
    .await;
    let (set, max_age) = match result {
        Ok(ok) => ok,
        Err(why) => {
            // Discover again next time: the issuer may have moved its keys.
            *remote
                .jwks_uri
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            return Err(format!("{jwks_uri}: {why}"));
        }
    };
    let count = set.len;
    let changed = {
        let mut keys = shared.keys.write().unwrap_or_else(PoisonError::into_inner);
        let changed = keys.identities != set.identities;
        *keys = Arc::new(set);
        changed
    };
    // After the swap: a verification that read the older generation is not cached.
    if changed {
        shared.key_generation.fetch_add(1, Ordering::AcqRel);
    }
    remote.generation.send_modify(|g| *g = g.wrapping_add(1));
    let ttl = max_age
        .map(|age| age.clamp(remote.min_ttl, remote.max_ttl))
        .unwrap_or(remote.default_ttl);
    Ok((ttl, count))
}

/// The metadata documents discovery tries for `issuer`, in its order: OpenID Connect Discovery
/// (`{issuer}/.well-known/openid-configuration`), then RFC 8414 (the well-known path inserted
/// before the issuer's path). Only the first when `issuer` is not an absolute URL.
///
/// ```
/// assert_eq!(
///     mcp_auth::jwks::metadata_urls("https://id.example.com/realms/mcp"),
///     [
///         "https://id.example.com/realms/mcp/.well-known/openid-configuration",
///         "https://id.example.com/.well-known/oauth-authorization-server/realms/mcp",
///     ]
/// );
/// ```
pub fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    if let Ok(parsed) = reqwest::Url::parse(trimmed) {
        let path = parsed.path().trim_end_matches('/');
        let mut origin = parsed.clone();
        origin.set_path("");
        let origin = origin.as_str().trim_end_matches('/').to_owned();
        urls.push(format!(
            "{origin}/.well-known/oauth-authorization-server{path}"
        ));
    }
    urls
}

#[derive(Deserialize)]
pub(super) struct Metadata {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

pub(super) async fn discover(remote: &Remote, issuer: &str) -> Result<String, String> {
    let mut errors = Vec::new();
    for url in metadata_urls(issuer) {
        let doc = match get(remote, &url).await {
            Ok((body, _)) => body,
            Err(why) => {
                errors.push(format!("{url}: {why}"));
                continue;
            }
        };
        let meta: Metadata = serde_json::from_slice(&doc)
            .map_err(|e| format!("{url}: not authorization-server metadata: {e}"))?;
        if meta.issuer.as_deref() != Some(issuer) {
            return Err(format!(
                "{url}: the metadata's issuer {:?} is not the configured {issuer:?}",
                meta.issuer.unwrap_or_default()
            ));
        }
        let jwks_uri = meta
            .jwks_uri
            .ok_or_else(|| format!("{url}: the metadata has no jwks_uri"))?;
        check_transport(&jwks_uri).map_err(|why| format!("{url}: jwks_uri {jwks_uri}: {why}"))?;
        return Ok(jwks_uri);
    }
    Err(format!("discovery failed: {}", errors.join("; ")))
}

/// GET `url`, bounded in size; the body and the response's `Cache-Control: max-age`.
pub(super) async fn get(remote: &Remote, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
    check_transport(url).map_err(str::to_owned)?;
    let mut res = remote
        .client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    if res
        .content_length()
        .is_some_and(|len| len > remote.max_bytes as u64)
    {
        return Err(format!("response larger than {} bytes", remote.max_bytes));
    }
    let max_age = res
        .headers()
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
    {
        if body.len().saturating_add(chunk.len()) > remote.max_bytes {
            return Err(format!("response larger than {} bytes", remote.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age=N` (or `no-cache` / `no-store`, read as zero) from a `Cache-Control` value.
pub(super) fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        if directive.eq_ignore_ascii_case("no-cache") || directive.eq_ignore_ascii_case("no-store")
        {
            return Some(Duration::ZERO);
        }
        let (name, seconds) = directive.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        seconds
            .trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}
