//! Fuzz `RateLimitLayer`'s key selection over arbitrary headers, peers and MCP bodies.
//!
//! Input: byte 0 picks the peer (trusted proxy or not, IPv4 or IPv6) and whether a principal
//! and gRPC content type are present; the rest up to the first `\0` is header lines
//! (`name: value`, split on `\n`; lines `http` refuses are skipped); after the `\0` comes a body
//! for the JSON-RPC envelope parser (inserted as `McpCall` when it parses).
//!
//! Each input gets a fresh layer (so no state leaks between inputs) with a per-client limit of
//! one request per hour, a per-principal+tool limit, a per-class+method limit and a global
//! limit (the last three with room for any batch). Invariants:
//! - nothing panics, and every answer is well formed (status, `Retry-After` ≥ 1, structured
//!   `RateLimit` headers);
//! - the first request is admitted;
//! - the per-client key is exactly the resolver's client for that peer and those headers: a
//!   second request from that resolved client (no headers at all) is refused by the `ip` limit,
//!   one from another client is admitted — so headers from an untrusted peer never move a
//!   client to another bucket, and behind the trusted proxy only the rightmost untrusted hop
//!   counts.
#![no_main]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use mcp_security_core::client_addr::{ClientAddrResolver, PeerAddr};
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::{GuardBody, Principal, PrincipalKind, RateLimitOutcome};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer, RouteClass};
use tower_layer::Layer;
use tower_service::Service;

const PEERS: [&str; 4] = [
    "10.0.0.1:443",        // trusted proxy
    "198.51.100.4:443",    // untrusted
    "[fd00::1]:443",       // trusted proxy
    "[2001:db8:9::7]:443", // untrusted
];
const OTHER_CLIENT: &str = "192.0.2.200:1";

static RESOLVER: LazyLock<ClientAddrResolver> = LazyLock::new(|| {
    ClientAddrResolver::builder()
        .trusted_proxies(["10.0.0.0/8", "fd00::/8"])
        .build()
        .expect("resolver")
});

#[derive(Clone)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

fn layer() -> RateLimitLayer {
    let roomy = Quota::per_second(1_000_000).with_burst(1_000_000);
    RateLimitLayer::builder()
        .route_class(
            RouteClass::new("write")
                .rule("POST /api/")
                .mcp("tools/call:write_note")
                .mcp("resources/read"),
        )
        .route_class(RouteClass::new("admin").any_method("/admin"))
        .limit(Limit::new(
            "ip",
            Quota::per_hour(1),
            KeySelector::client_addr(),
        ))
        .limit(Limit::new(
            "who_tool",
            roomy,
            KeySelector::principal_or_client_addr().and(KeySelector::mcp_tool()),
        ))
        .limit(Limit::new(
            "class_method",
            roomy,
            KeySelector::route_class().and(KeySelector::mcp_method()),
        ))
        .limit(Limit::new("global", roomy, KeySelector::global()))
        .client_addr_resolver(RESOLVER.clone())
        .max_keys(4096)
        .build()
        .expect("layer")
}

fn drive(
    svc: &mut impl Service<Request<()>, Response = Response<GuardBody<()>>, Error = Infallible>,
    req: Request<()>,
) -> Response<GuardBody<()>> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => panic!("the layer's future must be ready at once here"),
    }
}

fn is_sf_item(value: &str, params: [&str; 2]) -> bool {
    let Some(rest) = value.strip_prefix('"') else {
        return false;
    };
    let Some((name, rest)) = rest.split_once('"') else {
        return false;
    };
    if name.is_empty() || name.bytes().any(|b| b == b'\\' || !b.is_ascii_graphic()) {
        return false;
    }
    let mut parts = rest.split(';').skip(1);
    params.iter().all(|p| {
        parts.next().is_some_and(|kv| {
            kv.strip_prefix(p)
                .and_then(|v| v.strip_prefix('='))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }) && parts.next().is_none()
}

fn check_answer(res: &Response<GuardBody<()>>) {
    let outcome = res
        .extensions()
        .get::<RateLimitOutcome>()
        .expect("an outcome");
    let h = res.headers();
    if outcome.is_refused() {
        let grpc = h.get("grpc-status").is_some();
        assert_eq!(
            res.status(),
            if grpc {
                StatusCode::OK
            } else {
                StatusCode::TOO_MANY_REQUESTS
            }
        );
        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1);
    } else {
        assert_eq!(res.status(), StatusCode::OK);
    }
    if let Some(v) = h.get("ratelimit") {
        assert!(is_sf_item(v.to_str().unwrap(), ["r", "t"]), "{v:?}");
        let p = &h["ratelimit-policy"];
        assert!(is_sf_item(p.to_str().unwrap(), ["q", "w"]), "{p:?}");
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            h[name].to_str().unwrap().parse::<u64>().unwrap();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (header_bytes, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let peer: SocketAddr = PEERS[usize::from(flags & 3)].parse().unwrap();

    let mut headers = HeaderMap::new();
    for line in header_bytes.split(|&b| b == b'\n').take(16) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    if flags & 8 != 0 {
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    }
    let envelope = body.and_then(|b| parse_envelope(b).ok());

    let make = |peer_or_client: Result<SocketAddr, mcp_security_core::client_addr::ClientAddr>,
                headers: HeaderMap| {
        let method = if flags & 16 != 0 { "POST" } else { "GET" };
        let path = ["/mcp", "/api/notes", "/admin/x", "/"][usize::from((flags >> 5) & 3)];
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        *req.headers_mut() = headers;
        match peer_or_client {
            Ok(peer) => {
                req.extensions_mut().insert(PeerAddr(peer));
            }
            Err(client) => {
                req.extensions_mut().insert(client);
            }
        }
        if flags & 4 != 0 {
            req.extensions_mut()
                .insert(Principal::builder("fuzz", PrincipalKind::ApiKey).build());
        }
        if let Some(envelope) = &envelope {
            req.extensions_mut().insert(envelope.clone());
        }
        req
    };

    let layer = layer();
    let mut svc = layer.layer(Ok200);

    // 1. the fuzzed request: admitted (fresh layer, roomy limits)
    let res = drive(&mut svc, make(Ok(peer), headers.clone()));
    check_answer(&res);
    assert!(
        matches!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(RateLimitOutcome::Allowed { .. })
        ),
        "first request refused: {:?}",
        res.extensions().get::<RateLimitOutcome>()
    );

    // 2. the resolved client again, with no headers at all: the same `ip` bucket, now empty
    let expected = RESOLVER.resolve_from_peer(peer, &headers);
    if !RESOLVER.is_trusted_proxy(peer.ip()) {
        assert_eq!(expected.ip(), peer.ip(), "an untrusted peer is the client");
    }
    let res = drive(&mut svc, make(Err(expected), HeaderMap::new()));
    check_answer(&res);
    match res.extensions().get::<RateLimitOutcome>() {
        Some(RateLimitOutcome::Limited { policy, .. }) => assert_eq!(policy, "ip"),
        other => panic!("the same client was not limited: {other:?}"),
    }

    // 3. another client: its own bucket
    let other = RESOLVER.resolve_from_peer(OTHER_CLIENT.parse().unwrap(), &HeaderMap::new());
    if other.rate_limit_key() != expected.rate_limit_key() {
        let res = drive(&mut svc, make(Err(other), HeaderMap::new()));
        check_answer(&res);
        assert!(
            !res.extensions()
                .get::<RateLimitOutcome>()
                .unwrap()
                .is_refused()
        );
    }
    assert!(layer.tracked_keys() <= layer.max_keys());
});
