use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mcp_security_core::client_addr::{ClientAddrResolver, PeerAddr};
use mcp_security_core::clock::{ManualClock, ManualMonotonicClock};
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::{PrincipalKind, RateLimitOutcome};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use http::StatusCode;
use http::header::HeaderValue;
use mcp_security_core::{Principal, Rejection};
use std::time::UNIX_EPOCH;

const EPOCH: u64 = 1_700_000_000;
const MSG: &str = "Rate limit exceeded. Please try again later.";

type Res = Response<GuardBody<Full<Bytes>>>;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(EPOCH)))
}

fn with_clock(builder: RateLimitLayerBuilder, clock: &Arc<ManualClock>) -> RateLimitLayer {
    builder
        .clock(clock.clone())
        .wall_clock(clock.clone())
        .build()
        .unwrap()
}

fn per_ip(quota: Quota) -> RateLimitLayerBuilder {
    RateLimitLayer::builder().limit(Limit::new("ip", quota, KeySelector::client_addr()))
}

async fn ok(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn get(path: &str, peer: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get(path).body(Full::default()).unwrap();
    req.extensions_mut().insert(PeerAddr(sock(peer)));
    req
}

fn mcp(body: &str, peer: &str) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    req.extensions_mut().insert(PeerAddr(sock(peer)));
    req.extensions_mut()
        .insert(parse_envelope(body.as_bytes()).unwrap());
    req
}

fn tool_call(id: u64, tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
}

async fn send(layer: &RateLimitLayer, req: Request<Full<Bytes>>) -> Res {
    layer
        .layer(tower::service_fn(ok))
        .oneshot(req)
        .await
        .unwrap()
}

async fn json_body(res: Res) -> Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn header<'a>(res: &'a Res, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

fn outcome(res: &Res) -> RateLimitOutcome {
    res.extensions().get::<RateLimitOutcome>().unwrap().clone()
}

#[tokio::test]
async fn allowed_responses_carry_both_header_sets() {
    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_minute(60).with_burst(10)), &clock);
    let res = send(&layer, get("/api", "198.51.100.4:1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-ratelimit-limit"), "10");
    assert_eq!(header(&res, "x-ratelimit-remaining"), "9");
    // one request used: full again in 1 s
    assert_eq!(header(&res, "x-ratelimit-reset"), (EPOCH + 1).to_string());
    assert_eq!(header(&res, "ratelimit"), r#""ip";r=9;t=1"#);
    assert_eq!(header(&res, "ratelimit-policy"), r#""ip";q=60;w=60"#);
    assert!(res.headers().get("retry-after").is_none());
    assert_eq!(
        outcome(&res),
        RateLimitOutcome::Allowed {
            policy: "ip".into(),
            remaining: 8 + 1,
            overflow: false
        }
    );
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");

    for _ in 0..8 {
        send(&layer, get("/api", "198.51.100.4:1")).await;
    }
    let res = send(&layer, get("/api", "198.51.100.4:1")).await;
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&res, "x-ratelimit-reset"), (EPOCH + 10).to_string());
    assert_eq!(header(&res, "ratelimit"), r#""ip";r=0;t=10"#);
}

/// A 429 in each of the three formats with the headers they share, then a 200 in each.
#[tokio::test]
async fn answers_in_all_three_formats() {
    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_minute(2)), &clock);
    let peer = "198.51.100.4:1";
    for _ in 0..2 {
        assert_eq!(send(&layer, get("/api", peer)).await.status(), 200);
    }
    let check_headers = |res: &Res| {
        assert_eq!(header(res, "retry-after"), "30");
        assert_eq!(header(res, "x-ratelimit-limit"), "2");
        assert_eq!(header(res, "x-ratelimit-remaining"), "0");
        assert_eq!(header(res, "x-ratelimit-reset"), (EPOCH + 60).to_string());
        assert_eq!(header(res, "ratelimit"), r#""ip";r=0;t=30"#);
        assert_eq!(header(res, "ratelimit-policy"), r#""ip";q=2;w=60"#);
        assert_eq!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(&RateLimitOutcome::Limited {
                policy: "ip".into(),
                retry_after_secs: 30,
                overflow: false
            })
        );
        let rejection = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.code(), "rate_limited");
        assert_eq!(rejection.internal_detail(), Some("limit ip exceeded"));
    };

    // plain HTTP: the common `detail`/`retry_after` body (plus the house's error/message)
    let res = send(&layer, get("/api", peer)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "content-type"), "application/json");
    check_headers(&res);
    assert_eq!(
        json_body(res).await,
        json!({"error":"rate_limited","message":MSG,"detail":MSG,"retry_after":30})
    );

    // MCP: a JSON-RPC error answering the request's id
    let res = send(&layer, mcp(&tool_call(7, "echo"), peer)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    check_headers(&res);
    assert_eq!(
        json_body(res).await,
        json!({"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":MSG,
            "data":{"status":429,"code":"rate_limited","retry_after":30}}})
    );

    // MCP POST not inspected yet (the per-IP layer runs before McpInspectLayer): id null
    let mut req = Request::post("/mcp").body(Full::default()).unwrap();
    req.extensions_mut().insert(PeerAddr(sock(peer)));
    let res = send(&layer, req).await;
    check_headers(&res);
    let body = json_body(res).await;
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["data"]["retry_after"], 30);

    // gRPC: trailers-only, grpc-status 8, same headers
    let mut req = Request::post("/notes.Notes/Get")
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap();
    req.extensions_mut().insert(PeerAddr(sock(peer)));
    let res = send(&layer, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "grpc-status"), "8");
    assert_eq!(
        header(&res, "grpc-message"),
        "Rate limit exceeded. Please try again later."
    );
    check_headers(&res);
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    // 200s in the other formats carry the headers too, and the inner body untouched
    clock.advance(Duration::from_secs(30));
    let res = send(&layer, mcp(&tool_call(8, "echo"), peer)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "ratelimit"), r#""ip";r=0;t=60"#);
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    clock.advance(Duration::from_secs(30));
    let mut req = Request::post("/notes.Notes/Get")
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap();
    req.extensions_mut().insert(PeerAddr(sock(peer)));
    let res = send(&layer, req).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("grpc-status").is_none());
    assert_eq!(header(&res, "ratelimit"), r#""ip";r=0;t=60"#);
    assert_eq!(header(&res, "ratelimit-policy"), r#""ip";q=2;w=60"#);
    assert_eq!(header(&res, "x-ratelimit-limit"), "2");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
}

/// `Retry-After` is the wait rounded up to whole seconds, never 0, and exact: after waiting it,
/// the request passes; a nanosecond earlier it does not.
#[tokio::test]
async fn retry_after_is_rounded_up_never_zero_and_exact() {
    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_second(10).with_burst(1)), &clock);
    let peer = "198.51.100.4:1";
    assert_eq!(send(&layer, get("/", peer)).await.status(), 200);
    let res = send(&layer, get("/", peer)).await;
    // 100 ms wait → 1 s
    assert_eq!(header(&res, "retry-after"), "1");

    let layer = with_clock(per_ip(Quota::per_minute(1)), &clock);
    assert_eq!(send(&layer, get("/", peer)).await.status(), 200);
    for (advance_ms, expected) in [(0, "60"), (500, "60"), (59_000, "1"), (499, "1")] {
        clock.advance(Duration::from_millis(advance_ms));
        let res = send(&layer, get("/", peer)).await;
        assert_eq!(res.status(), 429);
        assert_eq!(
            header(&res, "retry-after"),
            expected,
            "after +{advance_ms} ms"
        );
    }
    clock.advance(Duration::from_millis(1));
    assert_eq!(send(&layer, get("/", peer)).await.status(), 200);

    // Over many offsets: never 0, and waiting exactly Retry-After seconds always suffices.
    let layer = with_clock(
        per_ip(Quota::new(7, Duration::from_secs(3)).with_burst(2)),
        &clock,
    );
    for step in 0..300u64 {
        clock.advance(Duration::from_nanos(step * 7_919_113));
        let res = send(&layer, get("/", peer)).await;
        if res.status() == 429 {
            let secs: u64 = header(&res, "retry-after").parse().unwrap();
            assert!(secs >= 1);
            let waiting = clock.clone();
            let probe = layer.clone();
            waiting.advance(Duration::from_secs(secs));
            assert_eq!(send(&probe, get("/", peer)).await.status(), 200);
        }
    }
}

#[tokio::test]
async fn ban_list_wins_and_does_not_touch_the_limiter() {
    let clock = clock();
    let bans = BanList::new();
    let layer = with_clock(per_ip(Quota::per_minute(1)).ban_list(bans.clone()), &clock);
    let now = Clock::now(&*clock);
    bans.ban(
        "198.51.100.4".parse().unwrap(),
        now + Duration::from_millis(90_500),
    );
    let res = send(&layer, get("/api", "198.51.100.4:1")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), "91");
    assert!(res.headers().get("x-ratelimit-remaining").is_none());
    assert_eq!(
        outcome(&res),
        RateLimitOutcome::Banned {
            until: now + Duration::from_millis(90_500),
            retry_after_secs: 91
        }
    );
    assert_eq!(
        res.extensions()
            .get::<Rejection>()
            .unwrap()
            .internal_detail(),
        Some("client is on the ban list")
    );
    // The public answer is a plain rate-limit answer.
    assert_eq!(
        json_body(res).await,
        json!({"error":"rate_limited","message":MSG,"detail":MSG,"retry_after":91})
    );
    assert_eq!(layer.tracked_keys(), 0, "the limiter was not touched");

    // A banned IPv6 prefix covers its addresses.
    bans.ban(
        "2001:db8:1:100::".parse().unwrap(),
        now + Duration::from_secs(5),
    );
    let res = send(&layer, get("/api", "[2001:db8:1:1ab::7]:1")).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), "5");

    // After the ban: the limiter is whole.
    clock.advance(Duration::from_secs(91));
    let res = send(&layer, get("/api", "198.51.100.4:1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_minute(2)), &clock);
    let spoof = |xff: &str| {
        let mut req = get("/api", "198.51.100.4:1");
        req.headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        req.headers_mut().insert(
            "forwarded",
            HeaderValue::from_str(&format!("for={xff}")).unwrap(),
        );
        req
    };
    assert_eq!(send(&layer, spoof("203.0.113.1")).await.status(), 200);
    assert_eq!(send(&layer, spoof("203.0.113.2")).await.status(), 200);
    assert_eq!(send(&layer, spoof("203.0.113.3")).await.status(), 429);
    assert_eq!(
        send(&layer, get("/api", "198.51.100.4:2")).await.status(),
        429
    );
    assert_eq!(layer.tracked_keys(), 1);

    // Behind a trusted proxy the forwarded client is the key.
    let resolver = ClientAddrResolver::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .unwrap();
    let layer = with_clock(
        per_ip(Quota::per_minute(1)).client_addr_resolver(resolver),
        &clock,
    );
    let via_proxy = |xff: &str| {
        let mut req = get("/api", "10.0.0.1:1");
        req.headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        req
    };
    assert_eq!(
        send(&layer, via_proxy("6.6.6.6, 203.0.113.1"))
            .await
            .status(),
        200
    );
    assert_eq!(send(&layer, via_proxy("203.0.113.2")).await.status(), 200);
    // a spoofed leftmost entry does not make a new client
    assert_eq!(
        send(&layer, via_proxy("7.7.7.7, 203.0.113.1"))
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn a_client_addr_extension_is_used_as_is() {
    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_minute(1)), &clock);
    let client =
        ClientAddrResolver::default().resolve_from_peer(sock("203.0.113.9:1"), &HeaderMap::new());
    let req = |peer: &str| {
        let mut req = get("/", peer);
        req.extensions_mut().insert(client);
        req
    };
    assert_eq!(send(&layer, req("198.51.100.1:1")).await.status(), 200);
    assert_eq!(send(&layer, req("198.51.100.2:1")).await.status(), 429);
}

#[tokio::test]
async fn requests_without_a_peer_share_the_overflow_bucket() {
    let clock = clock();
    let layer = with_clock(
        per_ip(Quota::per_minute(100)).limit(
            Limit::new("strict", Quota::per_minute(100), KeySelector::client_addr())
                .overflow_quota(Quota::per_minute(2)),
        ),
        &clock,
    );
    let anonymous = || Request::get("/").body(Full::default()).unwrap();
    let res = send(&layer, anonymous()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        outcome(&res),
        RateLimitOutcome::Allowed {
            policy: "strict".into(),
            remaining: 1,
            overflow: true
        }
    );
    assert_eq!(send(&layer, anonymous()).await.status(), 200);
    let res = send(&layer, anonymous()).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        outcome(&res),
        RateLimitOutcome::Limited {
            policy: "strict".into(),
            retry_after_secs: 30,
            overflow: true
        }
    );
    assert_eq!(layer.tracked_keys(), 0);
}

fn who_layer(clock: &Arc<ManualClock>) -> RateLimitLayer {
    with_clock(
        RateLimitLayer::builder()
            .route_class(
                RouteClass::new("delete")
                    .mcp("tools/call:delete_note")
                    .rule("DELETE /api/notes"),
            )
            .limit(Limit::new(
                "principal",
                Quota::per_minute(100),
                KeySelector::principal(),
            ))
            .limit(
                Limit::new(
                    "delete",
                    Quota::per_minute(10).with_burst(2),
                    KeySelector::principal(),
                )
                .for_class("delete"),
            )
            .limit(
                Limit::new(
                    "echo",
                    Quota::per_second(1).with_burst(3),
                    KeySelector::principal_or_client_addr(),
                )
                .for_tool("echo"),
            ),
        clock,
    )
}

fn as_user(mut req: Request<Full<Bytes>>, id: &str) -> Request<Full<Bytes>> {
    req.extensions_mut()
        .insert(Principal::builder(id, PrincipalKind::ApiKey).build());
    req
}

#[tokio::test]
async fn per_principal_class_and_tool_limits() {
    let clock = clock();
    let layer = who_layer(&clock);
    let peer = "198.51.100.4:1";

    // anonymous and not a tool call: no limit applies
    let res = send(&layer, get("/health", peer)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(outcome(&res), RateLimitOutcome::NotLimited);
    assert!(res.headers().get("x-ratelimit-limit").is_none());

    // delete class: burst 2 per principal, by MCP tool or by HTTP route
    let alice = |req| as_user(req, "alice");
    let res = send(&layer, alice(mcp(&tool_call(1, "delete_note"), peer))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "ratelimit"), r#""delete";r=1;t=6"#);
    let mut del = Request::delete("/api/notes/9")
        .body(Full::default())
        .unwrap();
    del.extensions_mut().insert(PeerAddr(sock(peer)));
    assert_eq!(send(&layer, alice(del)).await.status(), 200);
    let res = send(&layer, alice(mcp(&tool_call(2, "delete_note"), peer))).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "ratelimit-policy"), r#""delete";q=10;w=60"#);
    assert_eq!(json_body(res).await["id"], 2);
    // another principal has its own bucket; other tools are not in the class
    let res = send(
        &layer,
        as_user(mcp(&tool_call(3, "delete_note"), peer), "bob"),
    )
    .await;
    assert_eq!(res.status(), 200);
    // alice: two deletes and this call (the refused delete was refunded)
    let res = send(&layer, alice(mcp(&tool_call(4, "read_note"), peer))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        outcome(&res),
        RateLimitOutcome::Allowed {
            policy: "principal".into(),
            remaining: 97,
            overflow: false
        }
    );

    // per-tool limit keyed on the client when anonymous
    for _ in 0..3 {
        assert_eq!(
            send(&layer, mcp(&tool_call(5, "echo"), peer))
                .await
                .status(),
            200
        );
    }
    let res = send(&layer, mcp(&tool_call(6, "echo"), peer)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), "1");
}

#[tokio::test]
async fn batches_are_counted_per_message() {
    let clock = clock();
    let layer = who_layer(&clock);
    let peer = "198.51.100.4:1";
    let batch = |n: u64, tool: &str| {
        let calls: Vec<String> = (0..n).map(|i| tool_call(i, tool)).collect();
        format!("[{}]", calls.join(","))
    };
    // three deletes in one batch exceed the burst of 2: refused, nothing charged
    let res = send(
        &layer,
        as_user(mcp(&batch(3, "delete_note"), peer), "alice"),
    )
    .await;
    assert_eq!(res.status(), 429);
    let body = json_body(res).await;
    assert_eq!(body.as_array().unwrap().len(), 3, "one error per request");
    // two fit exactly
    let res = send(
        &layer,
        as_user(mcp(&batch(2, "delete_note"), peer), "alice"),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
    // the per-principal limit counts each HTTP request once (not per message), and the refused
    // batch was refunded: 2 used
    let res = send(&layer, as_user(get("/", peer), "alice")).await;
    assert_eq!(
        outcome(&res),
        RateLimitOutcome::Allowed {
            policy: "principal".into(),
            remaining: 98,
            overflow: false
        }
    );
}

#[tokio::test]
async fn all_limits_must_pass_and_the_tightest_is_reported() {
    let clock = clock();
    let layer = with_clock(
        RateLimitLayer::builder()
            .limit(Limit::new(
                "ip",
                Quota::per_minute(10),
                KeySelector::client_addr(),
            ))
            .limit(Limit::new(
                "global",
                Quota::per_minute(3),
                KeySelector::global(),
            )),
        &clock,
    );
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    // the tightest: global has 2 left, ip 9
    assert_eq!(header(&res, "ratelimit"), r#""global";r=2;t=20"#);
    send(&layer, get("/", "198.51.100.2:1")).await;
    send(&layer, get("/", "198.51.100.3:1")).await;
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "ratelimit-policy"), r#""global";q=3;w=60"#);
    clock.advance(Duration::from_secs(20));
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "ratelimit"), r#""global";r=0;t=60"#);
    // longest wait wins when several refuse
    let layer = with_clock(
        RateLimitLayer::builder()
            .limit(Limit::new(
                "short",
                Quota::per_second(1).with_burst(1),
                KeySelector::global(),
            ))
            .limit(Limit::new(
                "long",
                Quota::per_minute(1),
                KeySelector::client_addr(),
            )),
        &clock,
    );
    send(&layer, get("/", "198.51.100.1:1")).await;
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    assert_eq!(header(&res, "retry-after"), "60");
    assert_eq!(header(&res, "ratelimit-policy"), r#""long";q=1;w=60"#);
}

#[tokio::test]
async fn refunds_are_visible_in_the_next_report() {
    let clock = clock();
    let layer = with_clock(
        RateLimitLayer::builder()
            .limit(Limit::new(
                "ip",
                Quota::per_minute(10),
                KeySelector::client_addr(),
            ))
            .limit(Limit::new(
                "tool",
                Quota::per_minute(1),
                KeySelector::mcp_tool(),
            )),
        &clock,
    );
    let peer = "198.51.100.1:1";
    assert_eq!(
        send(&layer, mcp(&tool_call(1, "x"), peer)).await.status(),
        200
    );
    for _ in 0..5 {
        assert_eq!(
            send(&layer, mcp(&tool_call(1, "x"), peer)).await.status(),
            429
        );
    }
    // ip: 1 used (the five refusals were refunded) → 8 left after this one
    let res = send(&layer, get("/", peer)).await;
    assert_eq!(header(&res, "ratelimit"), r#""ip";r=8;t=12"#);
}

#[tokio::test]
async fn an_outer_layer_keeps_the_inner_layers_tighter_report() {
    let clock = clock();
    let outer = with_clock(per_ip(Quota::per_minute(100)), &clock);
    let inner = with_clock(
        RateLimitLayer::builder().limit(Limit::new(
            "principal",
            Quota::per_minute(2),
            KeySelector::principal(),
        )),
        &clock,
    );
    let svc = tower::ServiceBuilder::new()
        .layer(outer)
        .layer(inner)
        .service_fn(ok);
    let req = || as_user(get("/", "198.51.100.1:1"), "alice");
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(header_of(&res, "ratelimit"), r#""principal";r=1;t=30"#);
    assert_eq!(header_of(&res, "x-ratelimit-remaining"), "1");
    svc.clone().oneshot(req()).await.unwrap();
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        header_of(&res, "ratelimit-policy"),
        r#""principal";q=2;w=60"#
    );
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Limited { .. })
    ));
    // anonymous: the inner layer does not apply, the outer reports
    let res = svc.oneshot(get("/", "198.51.100.1:1")).await.unwrap();
    assert_eq!(header_of(&res, "ratelimit"), r#""ip";r=96;t=3"#);
}

fn header_of<B>(res: &Response<B>, name: &str) -> String {
    res.headers()[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn disabled_and_header_switches() {
    let res = send(&RateLimitLayer::disabled(), get("/", "198.51.100.1:1")).await;
    assert_eq!(res.status(), 200);
    assert!(res.extensions().get::<RateLimitOutcome>().is_none());
    assert!(res.headers().get("ratelimit").is_none());

    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_minute(1)).legacy_headers(false), &clock);
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    assert!(res.headers().get("x-ratelimit-limit").is_none());
    assert!(res.headers().get("ratelimit").is_some());
    let layer = with_clock(per_ip(Quota::per_minute(1)).ietf_headers(false), &clock);
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    assert!(res.headers().get("ratelimit").is_none());
    assert!(res.headers().get("ratelimit-policy").is_none());
    assert!(res.headers().get("x-ratelimit-limit").is_some());
    let res = send(&layer, get("/", "198.51.100.1:1")).await;
    assert_eq!(header(&res, "retry-after"), "60");
    assert!(
        RateLimitLayer::builder()
            .enabled(false)
            .build()
            .is_ok_and(|l| !l.is_enabled())
    );
}

#[test]
fn builder_errors_name_the_setting() {
    let err = |b: RateLimitLayerBuilder| b.build().unwrap_err();
    let q = Quota::per_minute(1);
    let k = KeySelector::client_addr();
    assert_eq!(err(RateLimitLayer::builder()).setting(), "limit");
    let e = err(RateLimitLayer::builder().limit(Limit::new("bad name", q, k)));
    assert_eq!((e.setting(), e.value()), ("limit", Some("bad name")));
    let e = err(RateLimitLayer::builder()
        .limit(Limit::new("ip", q, k))
        .limit(Limit::new("ip", q, k)));
    assert_eq!((e.setting(), e.reason()), ("limit", "is declared twice"));
    let e = err(RateLimitLayer::builder().limit(Limit::new("ip", Quota::per_minute(0), k)));
    assert_eq!(e.setting(), "limit.ip.requests");
    let e = err(
        RateLimitLayer::builder().limit(Limit::new("ip", q, k).overflow_quota(q.with_burst(0)))
    );
    assert_eq!(e.setting(), "limit.ip.overflow_quota.burst");
    let e = err(RateLimitLayer::builder().limit(Limit::new("ip", q, k).for_class("write")));
    assert_eq!((e.setting(), e.value()), ("limit.ip.class", Some("write")));
    let e = err(RateLimitLayer::builder().limit(Limit::new("ip", q, k).for_tool("a b")));
    assert_eq!(e.setting(), "limit.ip.tool");
    let e = err(RateLimitLayer::builder()
        .limit(Limit::new("ip", q, k))
        .max_keys(0));
    assert_eq!(e.setting(), "max_keys");
    let e = err(RateLimitLayer::builder()
        .limit(Limit::new("ip", q, k))
        .mcp_path("/mcp/"));
    assert_eq!(e.setting(), "mcp_path");
    let e = err(RateLimitLayer::builder()
        .limit(Limit::new("ip", q, k))
        .route_class(RouteClass::new("w")));
    assert_eq!(e.setting(), "route_class.w");
    // a ban list alone is a valid layer
    assert!(
        RateLimitLayer::builder()
            .ban_list(BanList::new())
            .build()
            .is_ok()
    );
}

fn client_ext(ip: std::net::IpAddr) -> http::Extensions {
    let mut ext = http::Extensions::new();
    ext.insert(
        ClientAddrResolver::default().resolve_from_peer(SocketAddr::new(ip, 1), &HeaderMap::new()),
    );
    ext
}

fn admitted(decision: &Decision) -> bool {
    matches!(decision, Decision::Allowed(_))
}

/// A flood of 1 M distinct client addresses: the store never tracks more than `max_keys`, new
/// keys beyond it are still limited (each /24 by its prefix bucket, and what the prefix table
/// cannot hold by the overflow bucket), and clients tracked before the flood keep their own
/// buckets.
#[test]
fn the_key_bound_holds_under_a_million_key_flood() {
    let clock = clock();
    let layer = with_clock(per_ip(Quota::per_minute(100)), &clock);
    let shared = &*layer.shared;
    let headers = HeaderMap::new();
    let early = client_ext("192.0.2.1".parse().unwrap());
    assert!(admitted(&shared.decide(
        &Method::GET,
        "/",
        &headers,
        &early
    )));

    let mut ext = http::Extensions::new();
    let mut per_prefix = std::collections::HashMap::<u32, u32>::new();
    let mut overflow_admitted = 0;
    for i in 0..1_000_000u32 {
        let ip = std::net::Ipv4Addr::from_bits(0x0A00_0000 + i);
        ext.insert(
            ClientAddrResolver::default()
                .resolve_from_peer(SocketAddr::new(ip.into(), 1), &headers),
        );
        if let Decision::Allowed(report) = shared.decide(&Method::GET, "/", &headers, &ext) {
            if report.prefix {
                *per_prefix.entry(ip.to_bits() >> 8).or_default() += 1;
            } else if report.overflow {
                overflow_admitted += 1;
            }
        }
        if i % 100_000 == 0 {
            assert!(layer.tracked_keys() <= DEFAULT_MAX_KEYS);
            assert!(layer.tracked_prefixes() <= DEFAULT_MAX_PREFIXES);
        }
    }
    assert_eq!(layer.tracked_keys(), DEFAULT_MAX_KEYS);
    assert!(layer.tracked_prefixes() <= DEFAULT_MAX_PREFIXES);
    // untracked keys: each /24 shared one bucket of burst 100 (the clock never moved), and the
    // /24s the prefix table could not hold shared the overflow bucket of burst 100
    assert!(per_prefix.values().all(|&n| n <= 100), "{per_prefix:?}");
    assert!(per_prefix.len() > 3_000, "{}", per_prefix.len());
    assert!(overflow_admitted <= 100);
    // the early client still has its own bucket: 98 more
    let mut own = 0;
    while admitted(&shared.decide(&Method::GET, "/", &headers, &early)) {
        own += 1;
    }
    assert_eq!(own, 99);

    // a minute later every bucket is idle: new clients displace them, the bound still holds
    clock.advance(Duration::from_secs(61));
    for i in 0..10_000u32 {
        let ip = std::net::Ipv4Addr::from_bits(0x0B00_0000 + i);
        ext.insert(
            ClientAddrResolver::default()
                .resolve_from_peer(SocketAddr::new(ip.into(), 1), &headers),
        );
        match shared.decide(&Method::GET, "/", &headers, &ext) {
            Decision::Allowed(report) => assert!(!report.overflow),
            _ => panic!("a fresh client was refused"),
        }
    }
    // each insert also swept idle entries: the store shrank while taking the newcomers
    let tracked = layer.tracked_keys();
    assert!((10_000..DEFAULT_MAX_KEYS).contains(&tracked), "{tracked}");
}

/// With the prefix table off, every untracked key shares the one overflow bucket (the
/// behaviour before prefix buckets, and what a flood over more prefixes than the table holds
/// gets).
#[test]
fn without_a_prefix_table_untracked_keys_share_the_overflow_bucket() {
    let clock = clock();
    let layer = with_clock(
        per_ip(Quota::per_minute(10)).max_keys(100).max_prefixes(0),
        &clock,
    );
    let headers = HeaderMap::new();
    let mut shared_admitted = 0;
    for i in 0..5_000u32 {
        let ext = client_ext(std::net::Ipv4Addr::from_bits(0x0A00_0000 + i * 256).into());
        if let Decision::Allowed(report) = layer.shared.decide(&Method::GET, "/", &headers, &ext) {
            assert!(!report.prefix);
            shared_admitted += u32::from(report.overflow);
        }
    }
    assert_eq!(layer.tracked_keys(), 100);
    assert_eq!(layer.tracked_prefixes(), 0);
    assert_eq!(shared_admitted, 10);
}

/// Principals of a full store are counted per principal kind: a flood of API keys does not
/// throttle a new JWT subject.
#[test]
fn principals_of_a_full_store_share_a_bucket_per_kind() {
    let clock = clock();
    let layer = with_clock(
        RateLimitLayer::builder()
            .limit(Limit::new(
                "who",
                Quota::per_minute(5),
                KeySelector::principal(),
            ))
            .max_keys(10),
        &clock,
    );
    let headers = HeaderMap::new();
    let as_principal = |id: &str, kind| {
        let mut ext = http::Extensions::new();
        ext.insert(Principal::builder(id, kind).build());
        ext
    };
    let mut api_key_admitted = 0;
    for i in 0..1_000 {
        let ext = as_principal(&format!("key-{i}"), PrincipalKind::ApiKey);
        api_key_admitted += u32::from(admitted(&layer.shared.decide(
            &Method::GET,
            "/",
            &headers,
            &ext,
        )));
    }
    // 10 tracked with their own buckets, then 5 in the api_key bucket
    assert_eq!(api_key_admitted, 15);
    assert_eq!(layer.tracked_prefixes(), 1);
    let jwt = as_principal("alice", PrincipalKind::Jwt);
    match layer.shared.decide(&Method::GET, "/", &headers, &jwt) {
        Decision::Allowed(report) => assert!(report.prefix),
        _ => panic!("a JWT subject was throttled by a flood of API keys"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A flood of distinct addresses from one network prefix (IPv4 /24 or IPv6 /48), big
    /// enough to fill the store and exhaust that prefix's bucket, does not throttle a new
    /// client from another prefix while the prefix table has room; the flood itself stays
    /// limited (at most the store's keys and one burst more were admitted), and the bounds on
    /// keys and prefixes hold.
    #[test]
    fn a_flood_from_one_prefix_does_not_throttle_another(
        max_keys in 1usize..64,
        burst in 1u64..8,
        flood in 50u32..255,
        flood_net in any::<u16>(),
        other_net in any::<u16>(),
        v6 in any::<bool>(),
        other_clients in 1u64..8,
    ) {
        prop_assume!(flood_net != other_net);
        let clock = clock();
        let layer = with_clock(
            per_ip(Quota::per_hour(burst).with_burst(burst))
                .max_keys(max_keys)
                .max_prefixes(16),
            &clock,
        );
        let headers = HeaderMap::new();
        // Distinct keys (host < 256) inside one /24 (v4) or one /48 (v6; the resolver keys
        // IPv6 clients by /56, so hosts differ in bits 48..56) of `net`.
        let addr = |net: u16, host: u32| -> std::net::IpAddr {
            if v6 {
                let bits = (0x2001_0db8_u128 << 96)
                    | (u128::from(net) << 80)
                    | (u128::from(host & 0xFF) << 72)
                    | 1;
                std::net::Ipv6Addr::from_bits(bits).into()
            } else {
                std::net::Ipv4Addr::from_bits(0x0A00_0000 | (u32::from(net) << 8) | (host & 0xFF))
                    .into()
            }
        };
        let mut flood_admitted = 0u64;
        for host in 0..flood {
            let ext = client_ext(addr(flood_net, host));
            flood_admitted += u64::from(admitted(&layer.shared.decide(
                &Method::GET,
                "/",
                &headers,
                &ext,
            )));
        }
        prop_assert!(layer.tracked_keys() <= max_keys);
        prop_assert!(layer.tracked_prefixes() <= 16);
        // each tracked key at most its burst, the prefix bucket one burst
        prop_assert!(flood_admitted <= (max_keys as u64 + 1) * burst);
        if flood as usize > max_keys + burst as usize {
            // the flood's prefix bucket is exhausted: its next new client is refused
            let next = client_ext(addr(flood_net, 255));
            let refused = matches!(
                layer.shared.decide(&Method::GET, "/", &headers, &next),
                Decision::Limited { .. }
            );
            prop_assert!(refused);
        }
        // new clients of another prefix get their own prefix bucket (burst `burst`)
        for host in 0..other_clients.min(burst) {
            let ext = client_ext(addr(other_net, u32::try_from(host).unwrap()));
            let d = layer.shared.decide(&Method::GET, "/", &headers, &ext);
            prop_assert!(admitted(&d), "a client of another prefix was throttled");
        }
    }
}

/// Two threads, one key, 1 M checks in phases; between phases the clock moves by irregular
/// steps. Every phase saturates the bucket, so GCRA admits exactly
/// `burst + ⌊elapsed / T⌋` — the bound, reached and not exceeded.
#[test]
fn two_threads_a_million_checks_on_one_key_admit_exactly_the_bound() {
    const THREADS: usize = 2;
    const PHASES: u64 = 100;
    const CHECKS_PER_PHASE: usize = 5_000;
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let burst = 50;
    // 1000 per second: T = 1 ms
    let layer = RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::per_second(1000).with_burst(burst),
            KeySelector::client_addr(),
        ))
        .clock(clock.clone())
        .build()
        .unwrap();
    let barrier = Barrier::new(THREADS + 1);
    let mut elapsed = 0u64;
    let admitted_total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (layer, barrier) = (&layer, &barrier);
                s.spawn(move || {
                    let ext = client_ext("192.0.2.7".parse().unwrap());
                    let headers = HeaderMap::new();
                    let mut admitted_here = 0u64;
                    for _ in 0..PHASES {
                        barrier.wait();
                        for _ in 0..CHECKS_PER_PHASE {
                            let d = layer.shared.decide(&Method::GET, "/", &headers, &ext);
                            admitted_here += u64::from(admitted(&d));
                        }
                        barrier.wait();
                    }
                    admitted_here
                })
            })
            .collect();
        for phase in 0..PHASES {
            barrier.wait();
            barrier.wait();
            if phase + 1 < PHASES {
                // 0.3 ms to 13.3 ms, not a multiple of T
                let step = 300_001 + (phase * 7_919_000) % 13_000_000;
                clock.advance(Duration::from_nanos(step));
                elapsed += step;
            }
        }
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let checks = THREADS as u64 * PHASES * CHECKS_PER_PHASE as u64;
    assert!(checks >= 1_000_000);
    assert_eq!(admitted_total, burst + elapsed / 1_000_000);
    assert_eq!(layer.tracked_keys(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Through the layer (keys, store, headers' arithmetic), with a fake clock: for random
    /// quotas and arrival schedules, every window of the schedule holds at most
    /// `burst + ⌊W × requests / window⌋` admissions, and every refusal's Retry-After is ≥ 1 s.
    #[test]
    fn layer_respects_the_gcra_bound(
        requests in 1u64..20,
        window_ms in 100u64..10_000,
        burst in 1u64..10,
        gaps in proptest::collection::vec(
            prop_oneof![2 => Just(0u64), 3 => 0u64..20_000_000, 1 => 0u64..2_000_000_000],
            1..150,
        ),
    ) {
        let clock = Arc::new(ManualMonotonicClock::new(0));
        let layer = RateLimitLayer::builder()
            .limit(Limit::new(
                "ip",
                Quota::new(requests, Duration::from_millis(window_ms)).with_burst(burst),
                KeySelector::client_addr(),
            ))
            .clock(clock.clone())
            .build()
            .unwrap();
        let ext = client_ext("192.0.2.9".parse().unwrap());
        let headers = HeaderMap::new();
        let mut now = 0u64;
        let mut times = Vec::new();
        for gap in gaps {
            clock.advance(Duration::from_nanos(gap));
            now += gap;
            match layer.shared.decide(&Method::GET, "/", &headers, &ext) {
                Decision::Allowed(report) => {
                    prop_assert!(report.remaining < burst);
                    times.push(now);
                }
                Decision::Limited { retry_after, .. } => prop_assert!(retry_after >= 1),
                _ => prop_assert!(false, "unexpected decision"),
            }
        }
        let window = u128::from(window_ms) * 1_000_000;
        for i in 0..times.len() {
            for j in i..times.len() {
                let span = u128::from(times[j] - times[i]);
                let bound = u128::from(burst) + span * u128::from(requests) / window;
                prop_assert!((j - i + 1) as u128 <= bound);
            }
        }
    }
}

/// The in-memory layer is a `Service` around any inner service — neither `Clone` nor `Send` —
/// with or without the `redis` feature (which is additive: only `RateLimit<S, RedisBackend>`
/// asks more of `S`).
#[test]
fn the_default_layer_asks_nothing_of_the_inner_service() {
    use futures_util::FutureExt;

    struct NotCloneNotSend(std::marker::PhantomData<std::rc::Rc<()>>);
    impl Service<Request<()>> for NotCloneNotSend {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<()>, Infallible>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _req: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(())))
        }
    }
    let layer: RateLimitLayer = per_ip(Quota::per_second(1)).build().unwrap();
    let mut svc: RateLimit<NotCloneNotSend> =
        layer.layer(NotCloneNotSend(std::marker::PhantomData));
    let request = || {
        let mut req = Request::new(());
        req.extensions_mut().insert(PeerAddr(sock("192.0.2.3:1")));
        req
    };
    let first = svc.call(request()).now_or_never().unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = svc.call(request()).now_or_never().unwrap().unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
}
