//! The JWKS issuer failing under a running verifier: down (its port closed), slower than the
//! fetch timeout, hung while requests arrive, and flapping between answers and failures. The
//! issuer is a small HTTP/1.1 server of the test's own on 127.0.0.1 (every answer
//! `Connection: close`, so no pooled connection hides an outage); tokens go through the real
//! `AuthLayer`.
//!
//! What must hold in every case: tokens signed with cached keys keep verifying, the cached set is
//! never emptied by a failed fetch, no request waits on a fetch, and once the issuer answers again
//! the background refresh picks up its new set without a restart.
#![cfg(feature = "jwks")]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_auth::jwks::JwksKeySource;
use mcp_auth::jwt::JwtVerifier;
use mcp_auth::layer::AuthLayer;
use mcp_security_core::clock::ManualClock;
use mcp_security_core::{AuthFailure, AuthOutcome};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod support;

use support::{Answer, call};

const RESOURCE: &str = "https://mcp.example.com/mcp";
/// Generous bounds on waiting for an event (never a measurement).
const POLLS: usize = 3_000;
const POLL: Duration = Duration::from_millis(10);
const HANG_GUARD: Duration = Duration::from_secs(30);

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Keys (EC and Ed25519: fast to make in a debug build)
// ---------------------------------------------------------------------------------------------

struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn ec_key(kid: &str) -> TestKey {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let point = private.verifying_key().to_encoded_point(false);
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(private.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        }),
    }
}

fn ed_key(kid: &str) -> TestKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let private = ed25519_dalek::SigningKey::from_bytes(&seed);
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(private.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": b64(&private.verifying_key().to_bytes()),
        }),
    }
}

struct Keys {
    ec: TestKey,
    ed: TestKey,
    /// Published only once the issuer is back: proves the refresh resumed.
    next: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ec: ec_key("ec-1"),
        ed: ed_key("ed-1"),
        next: ec_key("ec-2"),
    })
}

fn jwks_of(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn sign(key: &TestKey, issuer: &str) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let claims = json!({
        "sub": "alice",
        "iss": issuer,
        "aud": RESOURCE,
        "iat": now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
        "exp": now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600,
        "scope": "notes:read",
    });
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The issuer: a switchable HTTP/1.1 server on 127.0.0.1
// ---------------------------------------------------------------------------------------------

/// How the issuer answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `200` with the current set.
    Up,
    /// `503` with an empty body.
    Failing,
    /// Read the request, then answer nothing until [`Issuer::release`] (then as `Up`).
    Hang,
    /// Close the connection without an answer.
    Reset,
    /// `200` with a body that is not a JWK Set.
    Garbage,
    /// Each request takes the next mode of [`FLAPS`], in turn.
    Flapping,
}

/// What a flapping issuer does, request after request.
const FLAPS: [Mode; 6] = [
    Mode::Failing,
    Mode::Up,
    Mode::Hang,
    Mode::Reset,
    Mode::Garbage,
    Mode::Up,
];

struct IssuerState {
    mode: Mutex<Mode>,
    jwks: Mutex<String>,
    /// Requests read (each fetch is one: every answer closes its connection).
    arrivals: AtomicU64,
    /// `200`s with a JWK Set.
    served: AtomicU64,
    /// Requests held by [`Mode::Hang`] right now.
    held: AtomicU64,
    flap: AtomicUsize,
    release: watch::Sender<u64>,
}

struct Issuer {
    addr: SocketAddr,
    base: String,
    state: Arc<IssuerState>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Issuer {
    async fn start(jwks: String) -> Issuer {
        let (release, _) = watch::channel(0);
        let state = Arc::new(IssuerState {
            mode: Mutex::new(Mode::Up),
            jwks: Mutex::new(jwks),
            arrivals: AtomicU64::new(0),
            served: AtomicU64::new(0),
            held: AtomicU64::new(0),
            flap: AtomicUsize::new(0),
            release,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let issuer = Issuer {
            addr,
            base: format!("http://{addr}"),
            state,
            accept: Mutex::new(None),
        };
        issuer.up().await;
        issuer
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn publish(&self, jwks: String) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    fn arrivals(&self) -> u64 {
        self.state.arrivals.load(Ordering::SeqCst)
    }

    fn served(&self) -> u64 {
        self.state.served.load(Ordering::SeqCst)
    }

    fn held(&self) -> u64 {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Answer every held request (as `Up`, or as the current mode when it is not `Hang`).
    fn release(&self) {
        self.state.release.send_modify(|n| *n += 1);
    }

    /// Close the port: connections are refused until [`up`](Self::up).
    async fn down(&self) {
        let handle = self.accept.lock().unwrap().take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Listen again on the same port.
    async fn up(&self) {
        self.down().await;
        let mut bound = None;
        for _ in 0..POLLS {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            if socket.bind(self.addr).is_ok() {
                bound = Some(socket.listen(64).unwrap());
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let listener = bound.expect("the issuer's port could not be bound again");
        let state = Arc::clone(&self.state);
        *self.accept.lock().unwrap() = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(Arc::clone(&state), stream));
            }
        }));
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(handle) = self.accept.lock().unwrap().take() {
            handle.abort();
        }
        self.release();
    }
}

async fn answer(state: Arc<IssuerState>, mut stream: TcpStream) {
    // The request head, bounded.
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    state.arrivals.fetch_add(1, Ordering::SeqCst);
    let mut mode = *state.mode.lock().unwrap();
    if mode == Mode::Flapping {
        mode = FLAPS[state.flap.fetch_add(1, Ordering::SeqCst) % FLAPS.len()];
    }
    if mode == Mode::Hang {
        let mut released = state.release.subscribe();
        state.held.fetch_add(1, Ordering::SeqCst);
        let _ = released.changed().await;
        state.held.fetch_sub(1, Ordering::SeqCst);
        mode = match *state.mode.lock().unwrap() {
            Mode::Hang | Mode::Flapping => Mode::Up,
            other => other,
        };
    }
    let (status, body) = match mode {
        Mode::Up => {
            state.served.fetch_add(1, Ordering::SeqCst);
            ("200 OK", state.jwks.lock().unwrap().clone())
        }
        Mode::Failing => ("503 Service Unavailable", String::new()),
        Mode::Garbage => ("200 OK", "<html>maintenance</html>".to_owned()),
        Mode::Reset | Mode::Hang | Mode::Flapping => return,
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/jwk-set+json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The verifier
// ---------------------------------------------------------------------------------------------

struct Setup {
    issuer: Issuer,
    source: JwksKeySource,
    layer: AuthLayer,
}

/// A source refreshing every ~0.2 s (no `Cache-Control` from the issuer: the default TTL),
/// retrying failures after 50 ms doubling up to that TTL, each fetch bounded by `timeout`.
async fn setup(timeout: Duration) -> Setup {
    let k = keys();
    let issuer = Issuer::start(jwks_of(&[&k.ec, &k.ed])).await;
    let source = JwksKeySource::builder()
        .jwks_url(issuer.jwks_url())
        .min_refresh_gap(Duration::from_millis(50))
        .default_ttl(Duration::from_millis(200))
        .ttl_bounds(Duration::from_millis(100), Duration::from_secs(1))
        .request_timeout(timeout)
        .build()
        .unwrap();
    assert!(
        source.wait_loaded(HANG_GUARD).await,
        "the JWKS never loaded"
    );
    let verifier = JwtVerifier::builder()
        .jwks(source.clone())
        .issuer(issuer.base.clone())
        .audience(RESOURCE)
        .build()
        .unwrap();
    let layer = AuthLayer::builder()
        .jwt(verifier)
        .resource(RESOURCE)
        .clock(Arc::new(ManualClock::new(now())))
        .build()
        .unwrap();
    Setup {
        issuer,
        source,
        layer,
    }
}

/// Poll `done` until it holds; panics after a generous bound. Waits for an event, never measures.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..POLLS {
        if done() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{what}: never happened");
}

/// `fut`, or a panic naming `what` if it hangs (the code under test must never make it).
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer (a request waited on the issuer)"))
}

fn assert_admitted(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{what}: {:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({"sub": "alice", "scopes": ["notes:read"]}),
        "{what}"
    );
    assert!(
        matches!(answer.outcome, Some(AuthOutcome::Authenticated { .. })),
        "{what}"
    );
}

fn assert_unknown_key(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        "Bearer error=\"invalid_token\", error_description=\"The credential is invalid, expired \
         or revoked\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
    );
    assert_eq!(
        answer.body,
        json!({"error":"invalid_token","error_description":"The credential is invalid, expired or revoked"})
    );
    assert_eq!(answer.failure(), Some(AuthFailure::UnknownKey));
}

/// Every cached key still verifies, and the set is whole.
async fn cached_keys_work(s: &Setup, what: &str) {
    let k = keys();
    assert_eq!(
        s.source.key_count(),
        2,
        "{what}: the cached set was dropped"
    );
    for key in [&k.ec, &k.ed] {
        let answer = bounded(what, call(&s.layer, &sign(key, &s.issuer.base))).await;
        assert_admitted(&answer, what);
    }
}

/// The issuer publishes a set with a new key: the refresh picks it up (tokens signed with it
/// pass) without a restart; the dropped key then gets `401`.
async fn refresh_resumes(s: &Setup) {
    let k = keys();
    let token = sign(&k.next, &s.issuer.base);
    let mut answer = bounded("new key", call(&s.layer, &token)).await;
    for _ in 0..POLLS {
        if answer.status == StatusCode::OK {
            break;
        }
        assert_unknown_key(&answer);
        tokio::time::sleep(POLL).await;
        answer = bounded("new key", call(&s.layer, &token)).await;
    }
    assert_admitted(&answer, "a key published after the outage");
    let dropped = bounded("dropped key", call(&s.layer, &sign(&k.ed, &s.issuer.base))).await;
    assert_unknown_key(&dropped);
    assert_eq!(s.source.key_count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_cached_keys_keep_working_and_refresh_resumes() {
    let s = setup(Duration::from_secs(2)).await;
    let k = keys();
    s.issuer.down().await;
    let fetches = s.source.fetch_count();
    let mut arrivals = 0;
    // Three refused fetches in a row (the periodic refresh, then the retries with back-off),
    // with requests in between.
    for round in 1..=3 {
        eventually("a fetch while the issuer is down", || {
            s.source.fetch_count() >= fetches + round
        })
        .await;
        if round == 1 {
            // (A fetch already connected when the port closed has been answered by now.)
            arrivals = s.issuer.arrivals();
        }
        cached_keys_work(&s, "issuer down").await;
    }
    // The port was closed: the later fetches never reached the issuer.
    assert_eq!(s.issuer.arrivals(), arrivals);

    s.issuer.publish(jwks_of(&[&k.ec, &k.next]));
    s.issuer.up().await;
    refresh_resumes(&s).await;
    assert!(s.issuer.served() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_slower_than_the_fetch_timeout_cached_keys_keep_working_and_refresh_resumes() {
    // Each fetch gives up after 250 ms; the issuer holds every request until released.
    let s = setup(Duration::from_millis(250)).await;
    let k = keys();
    s.issuer.set_mode(Mode::Hang);
    eventually("a fetch held by the slow issuer", || s.issuer.held() >= 1).await;
    let (arrivals, served) = (s.issuer.arrivals(), s.issuer.served());
    // Three more fetches reach the issuer and are held: each started only after the one before
    // had timed out (one fetch at a time), so at least three timed out.
    for round in 1..=3 {
        eventually("a fetch reaching the slow issuer", || {
            s.issuer.arrivals() >= arrivals + round
        })
        .await;
        cached_keys_work(&s, "issuer slower than the timeout").await;
    }
    assert!(s.issuer.held() >= 4);
    assert_eq!(s.issuer.served(), served, "no held request was answered");

    s.issuer.publish(jwks_of(&[&k.ec, &k.next]));
    s.issuer.set_mode(Mode::Up);
    s.issuer.release();
    refresh_resumes(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_waits_on_a_fetch_in_progress() {
    // A fetch timeout longer than the test: the held fetch stays in progress until released.
    let s = setup(Duration::from_secs(600)).await;
    let k = keys();
    s.issuer.set_mode(Mode::Hang);
    eventually("the periodic refresh held by the issuer", || {
        s.issuer.held() == 1
    })
    .await;
    let (fetches, served) = (s.source.fetch_count(), s.issuer.served());
    let unknown = {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("not-published".to_owned());
        let claims = json!({"sub": "alice", "iss": s.issuer.base, "aud": RESOURCE});
        jsonwebtoken::encode(&header, &claims, &k.ec.encoding).unwrap()
    };
    // Known keys verify and unknown ones are refused at once, concurrently, while the fetch hangs.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (layer, base) = (s.layer.clone(), s.issuer.base.clone());
        let token = match i % 3 {
            0 => sign(&k.ec, &base),
            1 => sign(&k.ed, &base),
            _ => unknown.clone(),
        };
        calls.spawn(async move { (i % 3, call(&layer, &token).await) });
    }
    let answers = bounded("60 requests during a hung fetch", calls.join_all()).await;
    for (kind, answer) in &answers {
        if *kind == 2 {
            assert_unknown_key(answer);
        } else {
            assert_admitted(answer, "a cached key during a hung fetch");
        }
    }
    // Every answer came while the fetch was still in progress: it is still held, no other fetch
    // started (the unknown kids' refresh requests wait for the task), nothing was served.
    assert_eq!(s.issuer.held(), 1);
    assert_eq!(s.source.fetch_count(), fetches);
    assert_eq!(s.issuer.served(), served);

    s.issuer.publish(jwks_of(&[&k.ec, &k.next]));
    s.issuer.set_mode(Mode::Up);
    s.issuer.release();
    refresh_resumes(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_issuer_never_empties_the_cache_and_refresh_resumes() {
    let s = setup(Duration::from_millis(250)).await;
    let k = keys();
    // The issuer cycles 503, OK, hang, reset, garbage, OK, ...; its port also goes down and up.
    s.issuer.set_mode(Mode::Flapping);
    let arrivals = s.issuer.arrivals();
    for cycle in 1..=2u64 {
        eventually("a full cycle of flaps", || {
            s.issuer.arrivals() >= arrivals + cycle * FLAPS.len() as u64
        })
        .await;
        cached_keys_work(&s, "issuer flapping").await;
        s.issuer.down().await;
        let fetches = s.source.fetch_count();
        eventually("a refused fetch", || s.source.fetch_count() > fetches).await;
        cached_keys_work(&s, "issuer flapping (port closed)").await;
        s.issuer.up().await;
    }
    assert!(s.issuer.served() >= 3, "the Up flaps were served");

    s.issuer.publish(jwks_of(&[&k.ec, &k.next]));
    s.issuer.set_mode(Mode::Up);
    s.issuer.release();
    refresh_resumes(&s).await;
}
