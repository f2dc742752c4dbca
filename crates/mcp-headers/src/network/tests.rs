use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use mcp_security_core::client_addr::PeerAddr;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::matcher::{Lists, NetSet, Refusal};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn set(entries: &[&str]) -> NetSet {
    NetSet::new(entries.iter().map(|e| parse_network(e).unwrap()))
}

fn lists(allow: &[&str], deny: &[&str]) -> Lists {
    Lists {
        allow: set(allow),
        deny: set(deny),
    }
}

#[test]
fn ipv4_ipv6_and_mapped_addresses() {
    let l = lists(&["10.0.0.0/8", "fd00::/8", "192.0.2.7"], &[]);
    assert_eq!(l.decide(Some(ip("10.200.0.1"))), Ok(()));
    assert_eq!(l.decide(Some(ip("192.0.2.7"))), Ok(()));
    assert_eq!(l.decide(Some(ip("fd12::1"))), Ok(()));
    // An IPv4-mapped IPv6 client is its IPv4 address.
    assert_eq!(l.decide(Some(ip("::ffff:10.1.2.3"))), Ok(()));
    assert_eq!(
        l.decide(Some(ip("::ffff:11.1.2.3"))),
        Err(Refusal::NotAllowed { ip: ip("11.1.2.3") })
    );
    for refused in ["192.0.2.8", "11.0.0.1", "fe80::1", "2001:db8::1"] {
        assert_eq!(
            l.decide(Some(ip(refused))),
            Err(Refusal::NotAllowed { ip: ip(refused) }),
            "{refused}"
        );
    }
    // A mapped network entry is the IPv4 network; `::/0` does not cover IPv4 clients.
    let l = lists(&["::ffff:10.0.0.0/104"], &[]);
    assert_eq!(l.decide(Some(ip("10.9.9.9"))), Ok(()));
    assert_eq!(l.decide(Some(ip("::ffff:10.9.9.9"))), Ok(()));
    let l = lists(&["::/0"], &[]);
    assert_eq!(l.decide(Some(ip("2001:db8::1"))), Ok(()));
    assert!(l.decide(Some(ip("192.0.2.1"))).is_err());
}

#[test]
fn deny_wins_and_an_empty_allow_list_allows_any() {
    let l = lists(&["10.0.0.0/8"], &["10.66.0.0/16"]);
    assert_eq!(l.decide(Some(ip("10.1.0.1"))), Ok(()));
    assert_eq!(
        l.decide(Some(ip("10.66.3.4"))),
        Err(Refusal::Denied {
            ip: ip("10.66.3.4"),
            net: parse_network("10.66.0.0/16").unwrap()
        })
    );
    let l = lists(&[], &["203.0.113.0/24", "2001:db8:bad::/48"]);
    assert_eq!(l.decide(Some(ip("198.51.100.1"))), Ok(()));
    assert_eq!(l.decide(Some(ip("2001:db8:900d::1"))), Ok(()));
    assert!(matches!(
        l.decide(Some(ip("::ffff:203.0.113.5"))),
        Err(Refusal::Denied { .. })
    ));
    assert!(matches!(
        l.decide(Some(ip("2001:db8:bad::1"))),
        Err(Refusal::Denied { .. })
    ));
    // Fail closed: no address while any list applies.
    assert_eq!(l.decide(None), Err(Refusal::NoClientAddr));
    assert_eq!(
        lists(&["10.0.0.0/8"], &[]).decide(None),
        Err(Refusal::NoClientAddr)
    );
    assert_eq!(lists(&[], &[]).decide(None), Ok(()));
}

fn layer() -> NetworkPolicyLayer {
    NetworkPolicyLayer::builder()
        .allow(["192.0.2.0/24", "10.0.0.0/8"])
        .deny(["192.0.2.66"])
        .path(NetworkRule::new("/metrics").allow(["10.0.0.0/8"]))
        .path(NetworkRule::new("/metrics/public"))
        .path(NetworkRule::new("/admin").deny(["10.99.0.0/16"]))
        .build()
        .unwrap()
}

#[test]
fn longest_prefix_replaces_the_server_wide_lists() {
    let rules = &layer().config.rules;
    let decide = |path: &str, client: &str| rules.decide(path, Some(ip(client))).map_err(|e| e.1);
    // Server-wide: allow 192.0.2.0/24 and 10/8, deny one host.
    assert_eq!(decide("/api", "192.0.2.1"), Ok(()));
    assert_eq!(decide("/api", "192.0.2.66"), Err(None));
    assert_eq!(decide("/api", "198.51.100.1"), Err(None));
    // /metrics: only 10/8; the server-wide lists do not apply there.
    assert_eq!(decide("/metrics", "10.1.1.1"), Ok(()));
    assert_eq!(decide("/metrics/x", "192.0.2.1"), Err(Some("/metrics")));
    // Segment boundary: /metricsx is not under /metrics.
    assert_eq!(decide("/metricsx", "192.0.2.1"), Ok(()));
    // The longer prefix wins, and its empty lists open it.
    assert_eq!(decide("/metrics/public", "198.51.100.1"), Ok(()));
    assert_eq!(decide("/metrics/public/a", "198.51.100.1"), Ok(()));
    // /admin: a deny list only, so any other address passes, even one outside the server-wide
    // allow list (the rule replaces those lists).
    assert_eq!(decide("/admin", "198.51.100.1"), Ok(()));
    assert_eq!(decide("/admin/x", "10.99.1.1"), Err(Some("/admin")));
    // Spellings that normalise onto /metrics must pass its rule too.
    for path in [
        "/%6Detrics",
        "//metrics",
        "/x/../metrics",
        "/./metrics/",
        "/api/..%2Fmetrics",
    ] {
        assert_eq!(decide(path, "192.0.2.1"), Err(Some("/metrics")), "{path}");
        assert_eq!(decide(path, "10.1.1.1"), Ok(()), "{path}");
    }
    // And the other way round: /metrics/../api is under /metrics as a raw prefix.
    assert_eq!(
        decide("/metrics/../api", "192.0.2.1"),
        Err(Some("/metrics"))
    );
}

/// Echoes the path.
fn inner()
-> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
            req.uri().path().to_owned(),
        ))))
    })
}

async fn send(
    layer: &NetworkPolicyLayer,
    req: Request<Full<Bytes>>,
) -> (StatusCode, Vec<(String, String)>, String, Option<Rejection>) {
    let res = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner())
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let rejection = res.extensions().get::<Rejection>().cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8(body.to_vec()).unwrap(),
        rejection,
    )
}

fn req(
    method: Method,
    path: &str,
    peer: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if let Some(peer) = peer {
        b = b.extension(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
    }
    b.body(Full::default()).unwrap()
}

fn json_header() -> Vec<(String, String)> {
    vec![("content-type".to_owned(), "application/json".to_owned())]
}

#[tokio::test]
async fn refusals_in_the_callers_format_with_the_rejection_for_the_audit() {
    let layer = layer();
    // Plain HTTP.
    let (status, headers, body, rejection) = send(
        &layer,
        req(Method::GET, "/metrics", Some("192.0.2.1:5000"), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers, json_header());
    assert_eq!(
        body,
        r#"{"error":"network_not_allowed","message":"Network not allowed"}"#
    );
    let rejection = rejection.unwrap();
    assert_eq!(rejection.code(), "network_not_allowed");
    assert_eq!(
        rejection.internal_detail(),
        Some("client 192.0.2.1 is in no allowed network (the path rule /metrics)")
    );
    // A POST to the MCP endpoint: JSON-RPC, id null (the body is not read).
    let (status, headers, body, rejection) = send(
        &layer,
        req(
            Method::POST,
            "/mcp",
            Some("192.0.2.66:5000"),
            &[("content-type", "application/json")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers, json_header());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
            "message": "Network not allowed",
            "data": {"status": 403, "code": "network_not_allowed"}}})
    );
    assert_eq!(
        rejection.unwrap().internal_detail(),
        Some("client 192.0.2.66 is in the denied network 192.0.2.66/32 (the server-wide lists)")
    );
    // gRPC: trailers-only, permission denied.
    let (status, headers, body, _) = send(
        &layer,
        req(
            Method::POST,
            "/pkg.Svc/Call",
            Some("[2001:db8::1]:5000"),
            &[("content-type", "application/grpc")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers,
        [
            ("content-type", "application/grpc"),
            ("grpc-message", "Network not allowed"),
            ("grpc-status", "7"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(body, "");
    // Allowed: the inner service answers, nothing added.
    let (status, headers, body, rejection) = send(
        &layer,
        req(Method::GET, "/metrics", Some("[::ffff:10.0.0.5]:5000"), &[]),
    )
    .await;
    assert_eq!(
        (status, headers, body.as_str()),
        (StatusCode::OK, vec![], "/metrics")
    );
    assert!(rejection.is_none());
}

#[tokio::test]
async fn no_peer_address_fails_closed_only_where_a_list_applies() {
    let layer = NetworkPolicyLayer::builder()
        .path(NetworkRule::new("/metrics").allow(["10.0.0.0/8"]))
        .build()
        .unwrap();
    let (status, _, body, rejection) = send(&layer, req(Method::GET, "/metrics", None, &[])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        r#"{"error":"network_not_allowed","message":"Network not allowed"}"#
    );
    assert_eq!(
        rejection.unwrap().internal_detail(),
        Some(
            "no client address (the server passes no peer address) and the path rule /metrics apply: refused"
        )
    );
    let (status, _, body, _) = send(&layer, req(Method::GET, "/api", None, &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "/api"));
}

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let resolver = ClientAddrResolver::builder()
        .trusted_proxies(["172.16.0.1"])
        .build()
        .unwrap();
    let layer = NetworkPolicyLayer::builder()
        .allow(["10.0.0.0/8"])
        .client_addr_resolver(resolver)
        .build()
        .unwrap();
    let xff = [("x-forwarded-for", "10.1.2.3")];
    // An untrusted peer claiming an allowed address: ignored.
    let (status, _, _, rejection) =
        send(&layer, req(Method::GET, "/", Some("198.51.100.4:1"), &xff)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        rejection.unwrap().internal_detail(),
        Some("client 198.51.100.4 is in no allowed network (the server-wide lists)")
    );
    // The trusted proxy's header is believed, and its own address is not the client.
    let (status, _, _, _) = send(&layer, req(Method::GET, "/", Some("172.16.0.1:1"), &xff)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _, _) = send(&layer, req(Method::GET, "/", Some("172.16.0.1:1"), &[])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A ClientAddr already resolved by an outer layer is used as it is.
    let mut r = req(Method::GET, "/", None, &[]);
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static("10.7.7.7"));
    let trusting = ClientAddrResolver::builder()
        .trusted_proxies(["127.0.0.1"])
        .build()
        .unwrap();
    r.extensions_mut()
        .insert(trusting.resolve_from_peer("127.0.0.1:1".parse().unwrap(), &headers));
    let (status, _, _, _) = send(&layer, r).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn parse_and_builder_errors_name_the_setting() {
    assert_eq!(
        parse_network("10.0.0.0/33").unwrap_err(),
        "expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address"
    );
    assert_eq!(
        parse_network("fd00::1/8").unwrap_err(),
        "has host bits set; write the network (fd00::/8) or the single address (fd00::1)"
    );
    let cases = [
        (
            NetworkPolicyLayer::builder().allow(["10.0.0.0/8", "ten"]),
            "allow_networks: expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address (got \"ten\")",
        ),
        (
            NetworkPolicyLayer::builder().deny(["10.0.0.1/8"]),
            "deny_networks: has host bits set; write the network (10.0.0.0/8) or the single address (10.0.0.1) (got \"10.0.0.1/8\")",
        ),
        (
            NetworkPolicyLayer::builder().path(NetworkRule::new("metrics")),
            "network_rules: a path prefix must start with '/' and not end with '/' (got \"metrics\")",
        ),
        (
            NetworkPolicyLayer::builder()
                .path(NetworkRule::new("/m"))
                .path(NetworkRule::new("/m")),
            "network_rules: two rules for the same path prefix; merge their lists (got \"/m\")",
        ),
        (
            NetworkPolicyLayer::builder().path(NetworkRule::new("/m").deny(["x"])),
            "network_rules[/m].deny: expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address (got \"x\")",
        ),
        (
            NetworkPolicyLayer::builder().mcp_path("/mcp/"),
            "mcp_path: must start with '/' and not end with '/' (got \"/mcp/\")",
        ),
    ];
    for (builder, message) in cases {
        assert_eq!(builder.build().unwrap_err().to_string(), message);
    }
}

#[test]
fn accessors_and_summary() {
    let off = NetworkPolicyLayer::builder().build().unwrap();
    assert!(!off.is_enabled());
    assert_eq!(off.summary(), "network lists off");
    assert!(!NetworkPolicyLayer::default().is_enabled());
    let l = layer();
    assert!(l.is_enabled());
    assert_eq!(
        l.allow_networks()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["192.0.2.0/24", "10.0.0.0/8"]
    );
    assert_eq!(l.deny_networks()[0].to_string(), "192.0.2.66/32");
    assert_eq!(l.path_prefixes(), ["/metrics/public", "/metrics", "/admin"]);
    assert_eq!(
        l.summary(),
        "network lists: allow [192.0.2.0/24, 10.0.0.0/8] deny [192.0.2.66/32]; \
         /metrics/public: open; /metrics: allow [10.0.0.0/8]; /admin: deny [10.99.0.0/16]"
    );
}
