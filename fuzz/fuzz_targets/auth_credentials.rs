//! Fuzz `AuthLayer`'s credential extraction and the JWT pre-parse behind it.
//!
//! Input: the first byte is a set of flags, the rest is split on `0x00` into (a) an
//! `Authorization` value, (b) an `X-API-Key` value and (c) a query string for `GET /api?…`.
//! Flags: bit 0/1/2 send (a)/(b)/(c) (a missing piece is empty), bit 3 sends `Authorization`
//! twice, bit 4 marks the request as gRPC. Header values `http` refuses, and URIs it cannot
//! parse, are skipped. The layer has URL auth on, `X-API-Key` as a second header, two known API
//! keys (one with the scope `/api` needs, one without) and a JWT verifier with a fixed clock.
//!
//! Invariants:
//! - nothing panics, and the response future and body are ready on the first poll;
//! - the status is 200, 400, 401 or 403 (gRPC: always 200 with `grpc-status` 16, 7 or 3 on a
//!   refusal), every 400/401 carries a `WWW-Authenticate: Bearer…` challenge, and the outcome
//!   matches the status;
//! - no credential → 401 `MissingCredential`; more than one → 400 `MultipleCredentials`;
//! - the inner service runs only for an authenticated principal, and it never sees the
//!   credential (no `Authorization`, no `X-API-Key`, no `token`/`access_token` parameter);
//! - a principal is only ever the known key's (which was then presented) or a JWT's (a `.` was
//!   presented);
//! - neither the body nor the challenge reflects a presented credential longer than 8 bytes;
//! - `parse_bearer` returns a non-empty token68 taken from the value; `preparse` accepting a
//!   token implies `looks_like_jwt`; a lone bearer JWT that `preparse` refuses is refused by the
//!   layer for the same reason.
#![no_main]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use mcp_auth::api_key::ApiKeyStore;
use mcp_auth::jwt::{self, JwtVerifier, MAX_TOKEN_BYTES};
use mcp_auth::layer::{Auth, AuthLayer, parse_bearer};
use mcp_auth::policy::AuthPolicy;
use mcp_security_core::clock::ManualClock;
use mcp_security_core::config::Secret;
use mcp_security_core::{AuthFailure, AuthOutcome, GuardBody, Principal, PrincipalKind, Scopes};
use tower_layer::Layer;
use tower_service::Service;

/// The key that is accepted with the scope `/api` needs.
const KNOWN_KEY: &str = "mcp-sk-fuzzKnownKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const KNOWN_NAME: &str = "fuzz-key";
/// A key that is accepted but lacks that scope (403).
const LIMITED_KEY: &str = "mcp-sk-fuzzLimitedKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const LIMITED_NAME: &str = "fuzz-limited";
const SECRET: &str = "fuzz-secret-0123456789abcdef0123456789abcdef";
const AUDIENCE: &str = "https://mcp.example.com/mcp";
/// The fixed clock (2027-01-15); the JWT seed is valid for an hour from here.
const NOW: u64 = 1_800_000_000;
const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
const SCOPE: &str = "notes:read";
/// What the inner service answers, so a pass-through is recognisable.
const INNER_BODY: &str = "inner service reached";
const QUERY_TOKEN_PARAMS: [&str; 2] = ["token", "access_token"];

/// The inner service: `ready(Ok(200))`, after checking what the layer let through.
#[derive(Clone, Copy)]
struct Inner;

impl Service<Request<Full<Bytes>>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        assert!(
            req.extensions().get::<Principal>().is_some(),
            "the inner service ran without a principal"
        );
        assert!(
            req.headers().get(AUTHORIZATION).is_none(),
            "Authorization reached the inner service"
        );
        assert!(
            req.headers().get(API_KEY_HEADER).is_none(),
            "X-API-Key reached the inner service"
        );
        assert_eq!(
            query_token_count(req.uri().query()),
            0,
            "a query token reached the inner service: {}",
            req.uri()
        );
        ready(Ok(Response::new(Full::new(Bytes::from_static(
            INNER_BODY.as_bytes(),
        )))))
    }
}

struct State {
    svc: Auth<Inner>,
    /// Every fixed text the layer answers with (bodies, challenges, gRPC messages): a
    /// "credential" that is part of one of these is not a reflection.
    benign: String,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let keys = ApiKeyStore::builder()
            .key(KNOWN_NAME, KNOWN_KEY, Scopes::new([SCOPE]))
            .key(LIMITED_NAME, LIMITED_KEY, Scopes::new(["notes:other"]))
            .build()
            .expect("key store");
        let verifier = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .audience(AUDIENCE)
            .build()
            .expect("verifier");
        let layer = AuthLayer::builder()
            .api_keys(keys)
            .jwt(verifier)
            .api_key_header(API_KEY_HEADER.as_str())
            .url_auth(true)
            .policy(
                AuthPolicy::builder()
                    .require_path("/api", None, [SCOPE])
                    .build()
                    .expect("policy"),
            )
            .resource(AUDIENCE)
            .clock(Arc::new(ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(NOW),
            )))
            .fingerprint_key(Secret::new("fuzz-fingerprint-key"))
            .build()
            .expect("layer");
        let svc = layer.layer(Inner);

        let mut benign = String::new();
        let baselines: [(&[(&str, &str)], &str); 5] = [
            (&[], "/api"),
            (&[("authorization", "Basic eHl6")], "/api"),
            (&[("authorization", "Bearer nope")], "/api"),
            (&[("authorization", "Bearer a"), ("x-api-key", "b")], "/api"),
            (&[("x-api-key", LIMITED_KEY)], "/api"),
        ];
        for grpc in [false, true] {
            for (headers, uri) in baselines {
                let mut req = Request::get(uri);
                for (name, value) in headers {
                    req = req.header(*name, *value);
                }
                if grpc {
                    req = req.header(CONTENT_TYPE, "application/grpc");
                }
                let res = call(&svc, req.body(Full::default()).expect("baseline"));
                for name in [WWW_AUTHENTICATE, HeaderName::from_static("grpc-message")] {
                    if let Some(v) = res.headers().get(name) {
                        benign.push_str(&String::from_utf8_lossy(v.as_bytes()));
                        benign.push('\n');
                    }
                }
                benign.push_str(&String::from_utf8_lossy(&body(res)));
                benign.push('\n');
            }
        }
        benign.push_str(INNER_BODY);
        State { svc, benign }
    })
}

/// One call, polled once with a no-op waker: everything in this stack is immediately ready.
fn call(svc: &Auth<Inner>, req: Request<Full<Bytes>>) -> Response<GuardBody<Full<Bytes>>> {
    let mut svc = svc.clone();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        Poll::Pending => panic!("the response future was not ready at once"),
    }
}

fn body(res: Response<GuardBody<Full<Bytes>>>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(res.into_body().collect()).poll(&mut cx) {
        Poll::Ready(Ok(collected)) => collected.to_bytes(),
        Poll::Pending => panic!("the response body was not ready at once"),
    }
}

/// How many `token` / `access_token` parameters a query has (as `AuthLayer` counts them).
fn query_token_count(query: Option<&str>) -> usize {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| QUERY_TOKEN_PARAMS.contains(&pair.split_once('=').map_or(*pair, |p| p.0)))
        .count()
}

/// Percent-decode (lossily; `+` is a space), as the layer does.
fn percent_decode(value: &str) -> String {
    String::from_utf8_lossy(&mcp_security_core::percent::decode(value, mcp_security_core::percent::Plus::Space))
        .into_owned()
}

fn check_token_functions(s: &str) {
    let preparsed = jwt::preparse(s);
    let shaped = jwt::looks_like_jwt(s);
    assert!(
        preparsed.is_err() || shaped,
        "preparse accepted {s:?} but looks_like_jwt did not"
    );
    if s.len() > MAX_TOKEN_BYTES {
        assert_eq!(preparsed, Err(AuthFailure::TokenTooLarge));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut pieces = rest.splitn(3, |&b| b == 0);
    let auth_raw = pieces.next().unwrap_or_default();
    let key_raw = pieces.next().unwrap_or_default();
    let query_raw = pieces.next().unwrap_or_default();
    let send_auth = flags & 1 != 0;
    let send_key = flags & 2 != 0;
    let send_query = flags & 4 != 0;
    let twice = flags & 8 != 0;
    let grpc = flags & 16 != 0;

    // The public parsing functions, on the raw values.
    for raw in [auth_raw, key_raw, query_raw] {
        if let Ok(s) = std::str::from_utf8(raw) {
            check_token_functions(s);
            check_token_functions(s.trim());
        }
    }
    let auth_value = HeaderValue::from_bytes(auth_raw).ok();
    let bearer = auth_value.as_ref().and_then(parse_bearer);
    if let (Some(value), Some(token)) = (&auth_value, bearer) {
        let text = value
            .to_str()
            .expect("parse_bearer accepted a non-ASCII value");
        assert!(!token.is_empty() && text.contains(token));
        let (scheme, _) = text.trim().split_once(' ').expect("no scheme");
        assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?}");
        assert!(
            token
                .trim_end_matches('=')
                .bytes()
                .all(|b| b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')),
            "not a token68: {token:?}"
        );
        check_token_functions(token);
    }

    // The request.
    let key_value = HeaderValue::from_bytes(key_raw).ok();
    let uri = if send_query {
        let mut s = b"/api?".to_vec();
        s.extend_from_slice(query_raw);
        match Uri::try_from(s) {
            Ok(uri) => uri,
            Err(_) => return,
        }
    } else {
        Uri::from_static("/api")
    };
    let mut req = Request::get(uri.clone());
    if send_auth {
        let Some(v) = &auth_value else { return };
        req = req.header(AUTHORIZATION, v.clone());
        if twice {
            req = req.header(AUTHORIZATION, v.clone());
        }
    }
    if send_key {
        let Some(v) = &key_value else { return };
        req = req.header(API_KEY_HEADER, v.clone());
    }
    if grpc {
        req = req.header(CONTENT_TYPE, "application/grpc");
    }
    let Ok(req) = req.body(Full::default()) else {
        return;
    };

    let state = state();
    let res = call(&state.svc, req);
    let status = res.status();
    let headers = res.headers().clone();
    let outcome = res
        .extensions()
        .get::<AuthOutcome>()
        .cloned()
        .expect("no AuthOutcome on the response");
    let body = body(res);
    let body_text = String::from_utf8_lossy(&body);

    // What was presented, as the layer could have read it.
    let query = uri.query().unwrap_or("");
    let query_values: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| QUERY_TOKEN_PARAMS.contains(k))
        .map(|(_, v)| v)
        .collect();
    let mut presented: Vec<String> = Vec::new();
    if send_auth {
        presented.push(String::from_utf8_lossy(auth_raw).into_owned());
    }
    if send_key {
        presented.push(String::from_utf8_lossy(key_raw).into_owned());
    }
    if send_query {
        presented.push(query.to_owned());
        presented.extend(query_values.iter().map(|v| percent_decode(v)));
    }
    let evidence = |needle: &str| presented.iter().any(|p| p.contains(needle));

    // Status and outcome agree.
    let expected_status = match &outcome {
        AuthOutcome::Authenticated { principal } => {
            assert_eq!(body, INNER_BODY.as_bytes(), "200 without the inner service");
            match (principal.kind(), principal.id()) {
                (PrincipalKind::ApiKey, KNOWN_NAME) => {
                    assert!(evidence(KNOWN_KEY), "known key accepted without being sent")
                }
                (PrincipalKind::Jwt, _) => assert!(evidence("."), "a JWT principal without a '.'"),
                other => panic!("unexpected principal {other:?}"),
            }
            StatusCode::OK
        }
        AuthOutcome::Rejected {
            failure,
            principal,
            fingerprint,
        } => {
            assert_ne!(
                body,
                INNER_BODY.as_bytes(),
                "a refusal reached the inner service"
            );
            if let Some(fp) = fingerprint {
                assert!(fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            match failure {
                AuthFailure::InsufficientScope => {
                    let p = principal.as_ref().expect("403 without a principal");
                    match (p.kind(), p.id()) {
                        (PrincipalKind::ApiKey, LIMITED_NAME) => assert!(evidence(LIMITED_KEY)),
                        (PrincipalKind::Jwt, _) => assert!(evidence(".")),
                        other => panic!("unexpected principal {other:?}"),
                    }
                    StatusCode::FORBIDDEN
                }
                AuthFailure::MultipleCredentials => StatusCode::BAD_REQUEST,
                AuthFailure::DeniedPath => panic!("/api is not deny-listed"),
                _ => {
                    assert!(principal.is_none());
                    StatusCode::UNAUTHORIZED
                }
            }
        }
        other => panic!("/api is not exempt: {other:?}"),
    };
    let refused = !matches!(outcome, AuthOutcome::Authenticated { .. });
    if grpc && refused {
        assert_eq!(
            status,
            StatusCode::OK,
            "gRPC refusals are trailers-only 200s"
        );
        let grpc_status = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .expect("a gRPC refusal without grpc-status");
        let want = match expected_status {
            StatusCode::UNAUTHORIZED => "16",
            StatusCode::FORBIDDEN => "7",
            _ => "3",
        };
        assert_eq!(grpc_status, want);
    } else {
        assert_eq!(status, expected_status, "outcome {outcome:?}");
    }
    if matches!(
        expected_status,
        StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST
    ) {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .expect("a 400/401 without WWW-Authenticate");
        assert!(challenge.as_bytes().starts_with(b"Bearer"), "{challenge:?}");
    }

    // Counting credentials.
    let count = usize::from(send_auth) * if twice { 2 } else { 1 }
        + usize::from(send_key)
        + if send_query {
            query_token_count(uri.query())
        } else {
            0
        };
    let failure = match &outcome {
        AuthOutcome::Rejected { failure, .. } => Some(*failure),
        _ => None,
    };
    match count {
        0 => assert_eq!(failure, Some(AuthFailure::MissingCredential)),
        1 => assert!(
            !matches!(
                failure,
                Some(AuthFailure::MissingCredential | AuthFailure::MultipleCredentials)
            ),
            "one credential, but {failure:?}"
        ),
        _ => assert_eq!(failure, Some(AuthFailure::MultipleCredentials)),
    }
    // A lone bearer credential: refused as the parsers say.
    if count == 1 && send_auth {
        match bearer {
            None => assert_eq!(failure, Some(AuthFailure::MalformedCredential)),
            Some(token) if jwt::looks_like_jwt(token) => {
                if let Err(e) = jwt::preparse(token) {
                    assert_eq!(failure, Some(e), "token {token:?}");
                }
            }
            Some(_) => {}
        }
    }

    // No reflection of a presented credential.
    let mut candidates: Vec<String> = presented.clone();
    if send_auth {
        candidates.extend(bearer.map(str::to_owned));
    }
    candidates.extend(presented.iter().map(|p| p.trim().to_owned()));
    candidates.extend(query_values.iter().map(|v| (*v).to_owned()));
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let grpc_message = headers
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    for c in candidates {
        if c.len() <= 8 || state.benign.contains(&c) {
            continue;
        }
        let escaped = serde_json::to_string(&c).expect("json string");
        let escaped = &escaped[1..escaped.len() - 1];
        for (place, text) in [
            ("body", &*body_text),
            ("challenge", &challenge),
            ("grpc-message", &grpc_message),
        ] {
            assert!(
                !text.contains(&c) && !text.contains(escaped),
                "the {place} reflects the credential {c:?}: {text}"
            );
        }
    }
});
