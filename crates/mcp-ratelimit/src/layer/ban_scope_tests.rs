//! The ban scope at the layer: which requests count as carrying a credential, which answers
//! keep their credential, and the check after authentication by a per-caller layer that
//! limits nothing.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use mcp_security_core::client_addr::PeerAddr;
use mcp_security_core::{AuthFailure, AuthOutcome, Principal, PrincipalKind, RateLimitOutcome};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

const PEER: &str = "198.51.100.7:4000";

/// A per-client layer with `198.51.100.7` banned for 120 s.
fn per_client(scope: BanScope) -> RateLimitLayer {
    let bans = BanList::new();
    bans.ban(
        "198.51.100.7".parse().unwrap(),
        SystemTime::now() + Duration::from_secs(120),
    );
    RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::per_minute(100),
            KeySelector::client_addr(),
        ))
        .ban_list(bans)
        .ban_scope(scope)
        .credential_header("x-api-key")
        .build()
        .unwrap()
}

fn request(uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Full::default()).unwrap();
    req.extensions_mut().insert(PeerAddr(PEER.parse().unwrap()));
    req
}

/// An auth stand-in behind the layer: `authorization: good` authenticates (principal in the
/// request, outcome on the response), `authorization: nonce` is refused for a DPoP nonce, any
/// other credential is refused as an unknown key. Counts the requests that reached it.
fn auth_stand_in(
    reached: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        reached.fetch_add(1, Ordering::Relaxed);
        let outcome = match req.headers().get("authorization").map(|v| v.as_bytes()) {
            Some(b"good") => AuthOutcome::Authenticated {
                principal: Principal::builder("alice", PrincipalKind::ApiKey).build(),
            },
            Some(b"nonce") => AuthOutcome::Rejected {
                failure: AuthFailure::DpopNonceRequired,
                principal: None,
                fingerprint: None,
            },
            _ => AuthOutcome::Rejected {
                failure: AuthFailure::UnknownKey,
                principal: None,
                fingerprint: None,
            },
        };
        let status = match outcome {
            AuthOutcome::Authenticated { .. } => StatusCode::OK,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut res = Response::new(Full::new(Bytes::from_static(b"inner")));
        *res.status_mut() = status;
        res.extensions_mut().insert(outcome);
        async move { Ok::<_, Infallible>(res) }
    })
}

async fn body<B>(res: Response<B>) -> (StatusCode, HeaderMap, Value)
where
    B: BodyExt<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, json)
}

fn assert_ban((status, headers, json): &(StatusCode, HeaderMap, Value)) {
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((119..=120).contains(&retry), "{retry}");
    assert!(headers.get("x-ratelimit-remaining").is_none());
    assert_eq!(
        *json,
        json!({"error": "rate_limited",
            "message": "Rate limit exceeded. Please try again later.",
            "detail": "Rate limit exceeded. Please try again later.", "retry_after": retry})
    );
}

#[tokio::test]
async fn without_a_credential_the_ban_answers_before_the_inner_service() {
    let reached = Arc::new(AtomicUsize::new(0));
    let svc = per_client(BanScope::Failed).layer(auth_stand_in(reached.clone()));
    for req in [
        request("/api", &[]),
        request("/api?tokens=x", &[]),
        request("/api", &[("dpop", "proof-only")]),
    ] {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert!(matches!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(RateLimitOutcome::Banned { .. })
        ));
        assert_ban(&body(res).await);
    }
    assert_eq!(reached.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_valid_credential_is_served_and_a_failing_one_gets_the_ban() {
    let reached = Arc::new(AtomicUsize::new(0));
    let svc = per_client(BanScope::Failed).layer(auth_stand_in(reached.clone()));
    // Authorization, the API-key header and a query credential all count as a credential.
    let (status, headers, json) = body(
        svc.clone()
            .oneshot(request("/api", &[("authorization", "good")]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, json), (StatusCode::OK, Value::from("inner")));
    assert_eq!(headers["x-ratelimit-remaining"], "99", "counted as usual");
    for req in [
        request("/api", &[("authorization", "bad")]),
        request("/api", &[("x-api-key", "bad")]),
        request("/api?a=1&access_token=bad", &[]),
        request("/api?token", &[]),
    ] {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert!(
            res.extensions().get::<AuthOutcome>().is_none(),
            "the ban's own answer"
        );
        assert_ban(&body(res).await);
    }
    assert_eq!(reached.load(Ordering::Relaxed), 5);
    // A DPoP nonce challenge is not a failed credential: kept, so the client can retry.
    let (status, _, json) = body(
        svc.clone()
            .oneshot(request("/api", &[("authorization", "nonce")]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, json),
        (StatusCode::UNAUTHORIZED, Value::from("inner"))
    );

    // Scope `all`: the valid credential is refused too, before the inner service.
    let reached = Arc::new(AtomicUsize::new(0));
    let svc = per_client(BanScope::All).layer(auth_stand_in(reached.clone()));
    let res = svc
        .oneshot(request("/api", &[("authorization", "good")]))
        .await
        .unwrap();
    assert_ban(&body(res).await);
    assert_eq!(reached.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_per_caller_layer_that_limits_nothing_refuses_a_held_request_without_a_principal() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let handler = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"handler")))) }
    });
    // per client → "auth" (an exempt path: no principal, no outcome) → per caller → handler.
    let svc = per_client(BanScope::Failed).layer(RateLimitLayer::disabled().layer(handler));
    let res = svc
        .clone()
        .oneshot(request("/health", &[("authorization", "anything")]))
        .await
        .unwrap();
    assert_ban(&body(res).await);
    assert_eq!(served.load(Ordering::Relaxed), 0, "the handler never ran");

    // With a principal (authenticated), the same request is served.
    let authenticated = tower::service_fn(move |mut req: Request<Full<Bytes>>| {
        let principal = Principal::builder("alice", PrincipalKind::ApiKey).build();
        req.extensions_mut().insert(principal.clone());
        let inner = RateLimitLayer::disabled().layer(tower::service_fn(
            |_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"handler"))))
            },
        ));
        async move {
            let mut res = inner.oneshot(req).await?;
            res.extensions_mut()
                .insert(AuthOutcome::Authenticated { principal });
            Ok::<_, Infallible>(res)
        }
    });
    let svc = per_client(BanScope::Failed).layer(authenticated);
    let (status, _, json) = body(
        svc.oneshot(request("/api", &[("authorization", "good")]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, json), (StatusCode::OK, Value::from("handler")));
}

#[test]
fn an_invalid_credential_header_names_the_setting() {
    let err = RateLimitLayer::builder()
        .ban_list(BanList::new())
        .credential_header("bad header")
        .build()
        .unwrap_err();
    assert_eq!(
        (err.setting(), err.value()),
        ("credential_header", Some("bad header"))
    );
}
