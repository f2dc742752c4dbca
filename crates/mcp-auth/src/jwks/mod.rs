//! [`JwksKeySource`]: the public keys of an OAuth 2.1 / OpenID Connect authorization server,
//! for verifying its asymmetric JWTs (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA).
//! Behind the `jwks` cargo feature.
//!
//! The MCP authorization specification makes a protected MCP server an OAuth resource server:
//! its access tokens come from an authorization server (Auth0, Keycloak, Okta, Entra ID,
//! authentik…) that signs them with keys it publishes as a JWK Set (RFC 7517). Give a
//! [`JwksKeySource`] to [`JwtVerifierBuilder::jwks`](crate::jwt::JwtVerifierBuilder::jwks); the
//! verifier then routes each token by its header's `alg`: `HS256` to the configured secrets (if
//! any), an allowed asymmetric algorithm to this source.
//!
//! # Where the keys come from
//!
//! - [`discover`](JwksKeySourceBuilder::discover)`(issuer)`: the issuer's metadata at
//!   `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery), else at
//!   `/.well-known/oauth-authorization-server{path}` (RFC 8414). The metadata's `issuer` must
//!   equal the configured one exactly; its `jwks_uri` is then fetched.
//! - [`jwks_url`](JwksKeySourceBuilder::jwks_url): the JWK Set URL directly.
//! - [`file`](JwksKeySourceBuilder::file) or [`json`](JwksKeySourceBuilder::json): a fixed set,
//!   read once at build (air-gapped deployments, tests).
//!
//! Remote URLs must be `https://`, except on loopback (`127.0.0.0/8`, `::1`, `localhost`), where
//! `http://` is allowed for development and tests; redirects are followed only under the same
//! rule. Responses are bounded ([`DEFAULT_MAX_RESPONSE_BYTES`]) and time out
//! ([`DEFAULT_REQUEST_TIMEOUT`]). TLS is rustls with the `ring` provider and both the bundled
//! Mozilla roots and the system's: it builds with a C compiler alone (no cmake, no OpenSSL).
//!
//! # Refresh
//!
//! A remote set is fetched by one background tokio task per source, started by
//! [`build`](JwksKeySourceBuilder::build) (or by the first token, if no runtime was running at
//! build). **The first fetch is not awaited at build**: a server whose issuer is unreachable at
//! start-up starts anyway, logs a warning, and answers `401` to asymmetric JWTs until the keys
//! arrive (API keys and HS256 tokens keep working). Crash-looping every replica during an
//! identity-provider outage would take down more than it protects; a deployment that wants to gate
//! readiness on the keys can await [`JwksKeySource::wait_loaded`].
//!
//! - The set is cached for the response's `Cache-Control: max-age`, clamped to
//!   [[`DEFAULT_MIN_TTL`], [`DEFAULT_MAX_TTL`]] (1 min … 24 h), or [`DEFAULT_TTL`] (5 min) without
//!   one, and refreshed in the background at 90 % of that, before it goes stale.
//! - A token whose `kid` is not in the set answers `401` at once and asks the task for an early
//!   refresh, at most once per [minimum gap](JwksKeySourceBuilder::min_refresh_gap)
//!   ([`DEFAULT_MIN_REFRESH_GAP`], 10 s, as jwt-authorizer does), measured on an injectable
//!   monotonic clock: a flood of random `kid`s causes at most one fetch per gap, and concurrent
//!   unknown-`kid` requests share it. The request itself never waits on the network (the layer
//!   needs no `S: Clone` and cannot be made to hang); identity providers publish a new key before
//!   they sign with it, so the background refresh normally has it already.
//! - A failed fetch (network, status, size, JSON, no usable key) keeps the last good set and is
//!   retried after the gap, doubling up to [`DEFAULT_TTL`]; each failure is logged at `warn`.
//! - Verification reads the current set through an `Arc` snapshot: a fetch in progress never
//!   blocks a request whose `kid` is known, and no lock is held across an `.await`.
//! - A refresh that changes the set (a key dropped, added, replaced or reordered) bumps the
//!   source's [`key_generation`](JwksKeySource::key_generation); the verifier's cache of verified
//!   tokens is flushed when it moves, so no token is admitted on a key the issuer withdrew.
//!
//! # Confusion defences
//!
//! - The key is chosen by `kid` alone, and only among the fetched set. The `jku`, `x5u`, `jwk`
//!   and `x5c` header parameters are never followed: a token carrying any of them is refused as
//!   malformed (no mainstream issuer puts them in access tokens).
//! - Each key verifies only the algorithms its type allows, intersected with the configured
//!   allow-list and the key's own `alg` when it has one: RSA (at least 2048 bits) `RS*`/`PS*`,
//!   EC P-256 `ES256`, EC P-384 `ES384`, OKP Ed25519 `EdDSA`. Symmetric (`oct`) keys are ignored:
//!   `HS*` is never accepted from a JWKS, so an `HS256` token "signed" with a public key cannot
//!   verify (the classic RS/HS confusion). Keys whose `use` is not `sig`, or whose `key_ops` lack
//!   `verify`, are ignored.
//! - A token without `kid` is accepted only when exactly one key of the set fits its `alg`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use mcp_security_core::AuthFailure;
use mcp_security_core::clock::{MonotonicClock, SystemMonotonicClock};
use mcp_security_core::config::ConfigError;
use tokio::sync::{Notify, watch};

mod fetch;
mod keyset;

pub use fetch::metadata_urls;

use fetch::refresh_task;
pub(crate) use keyset::JwkKey;
use keyset::KeySet;

/// The default shortest time between two fetches of the set: 10 seconds.
pub const DEFAULT_MIN_REFRESH_GAP: Duration = Duration::from_secs(10);
/// How long a fetched set is fresh when the response has no usable `Cache-Control`: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The shortest freshness honoured from `Cache-Control: max-age`: 1 minute.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(60);
/// The longest freshness honoured from `Cache-Control: max-age`: 24 hours.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The default timeout of one HTTP request (discovery or JWKS): 10 seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on a response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The most keys kept from one set; the rest are ignored.
pub const MAX_KEYS: usize = 100;
/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Every asymmetric algorithm a source can accept (and its default allow-list). The RSA ones
/// come first.
pub const ASYMMETRIC_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The algorithms an RSA key can verify: the first six of [`ASYMMETRIC_ALGORITHMS`] (RS*, PS*).
const RSA_ALGORITHMS: &[Algorithm] = ASYMMETRIC_ALGORITHMS.split_at(6).0;

const NEVER: u64 = u64::MAX;

/// Parse an algorithm name as it appears in a JOSE header or a configuration list (exact case).
/// `None` for anything this crate does not verify.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    crate::jwt::algorithm_by_name(name)
}

/// Where a source's keys come from.
#[derive(Debug, Clone)]
enum Location {
    Url(String),
    Issuer(String),
    File(PathBuf),
    Json(String),
}

/// The public keys of an authorization server, fetched, cached and refreshed; see the
/// [module docs](self). Cheap to clone (an `Arc`); the background refresh task ends when the
/// last clone is dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use mcp_auth::jwks::JwksKeySource;
/// use mcp_auth::jwt::JwtVerifier;
/// use mcp_auth::layer::AuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Keycloak, Auth0, Okta, Entra ID… publish their keys under the issuer's metadata.
/// let issuer = "https://id.example.com/realms/mcp";
/// let keys = JwksKeySource::builder()
///     .discover(issuer)
///     .algorithms(["RS256", "ES256"])
///     .build()?;
/// let verifier = JwtVerifier::builder()
///     .jwks(keys.clone())
///     .issuer(issuer)
///     .audience("https://mcp.example.com/mcp")
///     .build()?;
/// // The protected-resource metadata's `authorization_servers` is filled from the issuer.
/// let auth = AuthLayer::builder()
///     .jwt(verifier)
///     .resource("https://mcp.example.com/mcp")
///     .build()?;
///
/// // Optional: hold readiness until the first key set has arrived.
/// if !keys.wait_loaded(Duration::from_secs(5)).await {
///     eprintln!("the issuer's keys are not loaded yet; tokens get 401 until they are");
/// }
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JwksKeySource {
    shared: Arc<Shared>,
}

struct Shared {
    location: Location,
    algorithms: Vec<Algorithm>,
    validations: Vec<(Algorithm, Validation)>,
    keys: RwLock<Arc<KeySet>>,
    /// Bumped after each load that changes the key set (not on an identical refresh).
    key_generation: AtomicU64,
    remote: Option<Remote>,
}

/// What only a fetched (URL or discovery) source has.
struct Remote {
    client: reqwest::Client,
    clock: Arc<dyn MonotonicClock>,
    min_gap_nanos: u64,
    min_gap: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    max_bytes: usize,
    /// When the last fetch started, or an early refresh was asked for (monotonic nanos).
    last_fetch: AtomicU64,
    /// An early refresh was asked for and not yet started.
    wanted: AtomicBool,
    notify: Arc<Notify>,
    /// The refresh task, once started; restarted if its runtime has gone away.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    fetches: AtomicU64,
    /// Bumped after each successful load.
    generation: watch::Sender<u64>,
    /// The discovered `jwks_uri`, kept until a fetch from it fails.
    jwks_uri: Mutex<Option<String>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Wake the refresh task so it sees the source is gone and ends.
        if let Some(remote) = &self.remote {
            remote.notify.notify_one();
        }
    }
}

impl fmt::Debug for JwksKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("JwksKeySource")
            .field("location", &s.location)
            .field("algorithms", &s.algorithms)
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwksKeySource`]; see [`JwksKeySource::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksKeySourceBuilder {
    location: Option<Location>,
    extra_locations: usize,
    algorithms: Option<Vec<String>>,
    min_refresh_gap: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    request_timeout: Duration,
    max_response_bytes: usize,
    clock: Option<Arc<dyn MonotonicClock>>,
}

impl JwksKeySourceBuilder {
    fn set_location(mut self, location: Location) -> Self {
        if self.location.is_some() {
            self.extra_locations += 1;
        }
        self.location = Some(location);
        self
    }

    /// Fetch the JWK Set from this URL (`https://`, or `http://` on loopback).
    pub fn jwks_url(self, url: impl Into<String>) -> Self {
        self.set_location(Location::Url(url.into()))
    }

    /// Find the JWK Set through the issuer's metadata (OpenID Connect Discovery, then RFC 8414);
    /// the metadata's `issuer` must equal `issuer` exactly. The source then reports `issuer` as
    /// its [`issuer`](JwksKeySource::issuer), for the protected-resource metadata.
    pub fn discover(self, issuer: impl Into<String>) -> Self {
        self.set_location(Location::Issuer(issuer.into()))
    }

    /// Read a fixed JWK Set from this file, once, at build.
    pub fn file(self, path: impl Into<PathBuf>) -> Self {
        self.set_location(Location::File(path.into()))
    }

    /// A fixed JWK Set given inline as JSON.
    pub fn json(self, jwks: impl Into<String>) -> Self {
        self.set_location(Location::Json(jwks.into()))
    }

    /// The accepted algorithms (names as in a JOSE header: `RS256`, `PS256`, `ES256`, `ES384`,
    /// `EdDSA`…); default every one of [`ASYMMETRIC_ALGORITHMS`]. `HS*` and `none` are refused.
    pub fn algorithms<I, S>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.algorithms = Some(
            algorithms
                .into_iter()
                .map(|a| a.as_ref().trim().to_owned())
                .collect(),
        );
        self
    }

    /// The shortest time between two fetches caused by unknown `kid`s (default 10 s).
    pub fn min_refresh_gap(mut self, gap: Duration) -> Self {
        self.min_refresh_gap = gap;
        self
    }

    /// How long a set is fresh when the response says nothing (default 5 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The bounds `Cache-Control: max-age` is clamped to (default 1 min … 24 h).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// The timeout of each HTTP request (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The largest response body accepted (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The monotonic clock measuring the minimum refresh gap (default the system's); tests
    /// inject a manual one.
    pub fn clock(mut self, clock: Arc<dyn MonotonicClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validate the settings, read a file or inline set, and (for a URL or an issuer) start the
    /// background fetch on the current tokio runtime, if any. The first fetch is not awaited.
    ///
    /// # Errors
    /// Names the setting: `jwks_url` (no or more than one location, not an absolute URL, or
    /// `http://` to a host that is not loopback), `jwt_issuer` (the same for the issuer),
    /// `jwks_file` / `jwks_json` (unreadable, not a JWK Set, or no usable key),
    /// `jwt_algorithms` (an unknown, symmetric or empty list), `jwks_refresh` (zero or
    /// inconsistent durations or size), `jwks_client` (the HTTP client could not be built).
    pub fn build(self) -> Result<JwksKeySource, ConfigError> {
        let location = self.location.clone().ok_or_else(|| {
            ConfigError::new(
                "jwks_url",
                "no key source: give a JWKS URL, an issuer to discover, a file or inline JSON",
            )
        })?;
        if self.extra_locations > 0 {
            return Err(ConfigError::new(
                "jwks_url",
                "more than one key location configured (JWKS URL, issuer, file, JSON): give one",
            ));
        }
        let algorithms = self.parse_algorithms()?;
        let validations = algorithms
            .iter()
            .map(|&alg| (alg, validation_for(alg)))
            .collect();
        if self.min_refresh_gap.is_zero()
            || self.default_ttl.is_zero()
            || self.min_ttl.is_zero()
            || self.min_ttl > self.max_ttl
            || self.request_timeout.is_zero()
            || self.max_response_bytes == 0
        {
            return Err(ConfigError::new(
                "jwks_refresh",
                "durations and the response size must be more than zero, and the TTL bounds \
                 ordered",
            ));
        }

        let (keys, remote) = match &location {
            Location::Url(url) => {
                check_transport(url)
                    .map_err(|why| ConfigError::new("jwks_url", why).with_value(url.as_str()))?;
                (KeySet::default(), Some(self.remote()?))
            }
            Location::Issuer(issuer) => {
                check_transport(issuer).map_err(|why| {
                    ConfigError::new("jwt_issuer", why).with_value(issuer.as_str())
                })?;
                (KeySet::default(), Some(self.remote()?))
            }
            Location::File(path) => {
                let shown = path.display().to_string();
                let bytes = std::fs::read(path).map_err(|e| {
                    ConfigError::new("jwks_file", format!("cannot read it: {e}"))
                        .with_value(shown.as_str())
                })?;
                let set = KeySet::parse(&bytes, &algorithms)
                    .map_err(|why| ConfigError::new("jwks_file", why).with_value(shown))?;
                (set, None)
            }
            Location::Json(json) => {
                let set = KeySet::parse(json.as_bytes(), &algorithms)
                    .map_err(|why| ConfigError::new("jwks_json", why))?;
                (set, None)
            }
        };
        let source = JwksKeySource {
            shared: Arc::new(Shared {
                location,
                algorithms,
                validations,
                keys: RwLock::new(Arc::new(keys)),
                key_generation: AtomicU64::new(0),
                remote,
            }),
        };
        source.ensure_started();
        Ok(source)
    }

    fn parse_algorithms(&self) -> Result<Vec<Algorithm>, ConfigError> {
        let Some(names) = &self.algorithms else {
            return Ok(ASYMMETRIC_ALGORITHMS.to_vec());
        };
        let mut out = Vec::new();
        for name in names.iter().filter(|n| !n.is_empty()) {
            match parse_algorithm(name) {
                Some(alg) if ASYMMETRIC_ALGORITHMS.contains(&alg) => {
                    if !out.contains(&alg) {
                        out.push(alg);
                    }
                }
                Some(_) => {
                    return Err(ConfigError::new(
                        "jwt_algorithms",
                        "symmetric algorithms are never accepted from a JWKS",
                    )
                    .with_value(name.as_str()));
                }
                None => {
                    return Err(ConfigError::new(
                        "jwt_algorithms",
                        "unknown algorithm; expected RS256, RS384, RS512, PS256, PS384, PS512, \
                         ES256, ES384 or EdDSA (exact case)",
                    )
                    .with_value(name.as_str()));
                }
            }
        }
        if out.is_empty() {
            return Err(ConfigError::new("jwt_algorithms", "names no algorithm"));
        }
        Ok(out)
    }

    fn remote(&self) -> Result<Remote, ConfigError> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 3 {
                attempt.error("too many redirects")
            } else if check_transport(attempt.url().as_str()).is_ok() {
                attempt.follow()
            } else {
                attempt.error("redirect to plain http outside loopback")
            }
        });
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .connect_timeout(self.request_timeout)
            .redirect(policy)
            .user_agent(concat!("mcp-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::new("jwks_client", format!("cannot build it: {e}")))?;
        let (generation, _) = watch::channel(0);
        Ok(Remote {
            client,
            clock: self
                .clock
                .clone()
                .unwrap_or_else(|| Arc::new(SystemMonotonicClock::new())),
            min_gap_nanos: u64::try_from(self.min_refresh_gap.as_nanos()).unwrap_or(u64::MAX),
            min_gap: self.min_refresh_gap,
            default_ttl: self.default_ttl,
            min_ttl: self.min_ttl,
            max_ttl: self.max_ttl,
            max_bytes: self.max_response_bytes,
            last_fetch: AtomicU64::new(NEVER),
            wanted: AtomicBool::new(false),
            notify: Arc::new(Notify::new()),
            task: Mutex::new(None),
            fetches: AtomicU64::new(0),
            generation,
            jwks_uri: Mutex::new(None),
        })
    }
}

/// `https://`, or `http://` to a loopback host.
fn check_transport(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not an absolute URL")?;
    if parsed.fragment().is_some() {
        return Err("must not contain a fragment");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must be https:// (plain http is allowed for loopback hosts only)")
            }
        }
        _ => Err("must be an https:// URL"),
    }
}

fn validation_for(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

impl JwksKeySource {
    /// Start configuring a source: exactly one of [`jwks_url`](JwksKeySourceBuilder::jwks_url),
    /// [`discover`](JwksKeySourceBuilder::discover), [`file`](JwksKeySourceBuilder::file) or
    /// [`json`](JwksKeySourceBuilder::json) is required.
    pub fn builder() -> JwksKeySourceBuilder {
        JwksKeySourceBuilder {
            location: None,
            extra_locations: 0,
            algorithms: None,
            min_refresh_gap: DEFAULT_MIN_REFRESH_GAP,
            default_ttl: DEFAULT_TTL,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            clock: None,
        }
    }

    /// The issuer whose metadata is discovered, when the source was built with
    /// [`discover`](JwksKeySourceBuilder::discover).
    pub fn issuer(&self) -> Option<&str> {
        match &self.shared.location {
            Location::Issuer(issuer) => Some(issuer),
            _ => None,
        }
    }

    /// The accepted algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.shared.algorithms
    }

    /// Whether `alg` is accepted by this source.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.shared.algorithms.contains(&alg)
    }

    /// How many usable keys the current set holds (0 before the first successful fetch).
    pub fn key_count(&self) -> usize {
        self.snapshot().len
    }

    /// A counter that moves whenever a refresh changes the key set (a key dropped, added,
    /// replaced or reordered), and only then; a file or inline set keeps 0. Anything derived
    /// from the keys (the verifier's cache of verified tokens) is stale once it moves.
    pub fn key_generation(&self) -> u64 {
        self.shared.key_generation.load(Ordering::Acquire)
    }

    /// Whether a key set is loaded (always true for a file or inline set).
    pub fn is_loaded(&self) -> bool {
        self.key_count() > 0
    }

    /// How many fetches of the JWK Set have been started (0 for a file or inline set).
    pub fn fetch_count(&self) -> u64 {
        self.shared
            .remote
            .as_ref()
            .map_or(0, |r| r.fetches.load(Ordering::Relaxed))
    }

    /// Wait until a key set is loaded or `timeout` passes; `true` when one is. For readiness
    /// checks at start-up; the server works (answering 401 to asymmetric JWTs) without it.
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let Some(remote) = &self.shared.remote else {
            return self.is_loaded();
        };
        self.ensure_started();
        let mut rx = remote.generation.subscribe();
        let loaded = async {
            loop {
                if self.is_loaded() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, loaded).await;
        self.is_loaded()
    }

    /// Wait until the key set has been replaced by a fetch after this call, or `timeout` passes;
    /// `true` when it has. Asks for an early refresh (subject to the minimum gap). For tests and
    /// operators.
    pub async fn wait_next_load(&self, timeout: Duration) -> bool {
        let Some(remote) = &self.shared.remote else {
            return false;
        };
        let mut rx = remote.generation.subscribe();
        rx.mark_unchanged();
        self.request_refresh();
        tokio::time::timeout(timeout, rx.changed())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .shared
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The key and validation for a token with this `alg` and `kid`.
    pub(crate) fn key_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<(Arc<JwkKey>, &Validation), AuthFailure> {
        let validation = self
            .shared
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
            .ok_or(AuthFailure::UnsupportedAlgorithm)?;
        let set = self.snapshot();
        let found = match kid {
            Some(kid) => set.by_kid.get(kid).map(|keys| {
                keys.iter()
                    .find(|k| k.algorithms.contains(&alg))
                    .cloned()
                    .ok_or(AuthFailure::UnsupportedAlgorithm)
            }),
            None => {
                let mut fitting = set.all.iter().filter(|k| k.algorithms.contains(&alg));
                match (fitting.next(), fitting.next()) {
                    (Some(one), None) => Some(Ok(Arc::clone(one))),
                    _ => None,
                }
            }
        };
        match found {
            Some(result) => result.map(|key| (key, validation)),
            None => {
                self.request_refresh();
                Err(AuthFailure::UnknownKey)
            }
        }
    }

    /// Ask the background task for an early refresh, at most once per minimum gap.
    fn request_refresh(&self) {
        let Some(remote) = &self.shared.remote else {
            return;
        };
        self.ensure_started();
        let now = remote.clock.now_nanos();
        let last = remote.last_fetch.load(Ordering::Acquire);
        if last != NEVER && now.saturating_sub(last) < remote.min_gap_nanos {
            return;
        }
        if remote
            .last_fetch
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            remote.wanted.store(true, Ordering::Release);
            remote.notify.notify_one();
        }
    }

    /// Start the refresh task, if this is a remote source, a tokio runtime is running, and no
    /// task is alive (one started on a runtime that has since shut down is replaced). Called at
    /// build and on the unknown-`kid` path, never for a known key.
    fn ensure_started(&self) {
        let Some(remote) = &self.shared.remote else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut task = remote.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let notify = Arc::clone(&remote.notify);
        *task = Some(handle.spawn(refresh_task(weak, notify)));
    }
}

#[cfg(test)]
mod tests;
