use super::*;
use http::HeaderValue;
use http::Request;
use std::convert::Infallible;
use tower::ServiceExt;
use tower_layer::Layer;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn resolver(trusted: &[&str], header: ForwardedHeader) -> ClientAddrResolver {
    ClientAddrResolver::builder()
        .trusted_proxies(trusted)
        .forwarded_header(header)
        .build()
        .unwrap()
}

fn xff_resolver() -> ClientAddrResolver {
    resolver(&["10.0.0.0/8", "fd00::/8"], ForwardedHeader::XForwardedFor)
}

fn fwd_resolver() -> ClientAddrResolver {
    resolver(&["10.0.0.0/8", "fd00::/8"], ForwardedHeader::Forwarded)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn resolve(r: &ClientAddrResolver, peer: &str, pairs: &[(&str, &str)]) -> ClientAddr {
    let mut ext = http::Extensions::new();
    ext.insert(PeerAddr(sock(peer)));
    r.resolve(&headers(pairs), &ext).unwrap()
}

#[test]
fn untrusted_peer_ignores_spoofed_x_forwarded_for() {
    let c = resolve(
        &xff_resolver(),
        "198.51.100.4:5000",
        &[("x-forwarded-for", "6.6.6.6")],
    );
    assert_eq!(c.ip(), ip("198.51.100.4"));
    assert_eq!(c.peer(), sock("198.51.100.4:5000"));
    assert!(!c.via_proxy());
    assert_eq!(c.rate_limit_key(), ip("198.51.100.4"));
}

#[test]
fn untrusted_peer_ignores_spoofed_forwarded() {
    let c = resolve(
        &fwd_resolver(),
        "198.51.100.4:5000",
        &[("forwarded", "for=6.6.6.6")],
    );
    assert_eq!(c.ip(), ip("198.51.100.4"));
    assert!(!c.via_proxy());
}

#[test]
fn default_resolver_trusts_nobody() {
    let c = resolve(
        &ClientAddrResolver::default(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "203.0.113.9")],
    );
    assert_eq!(c.ip(), ip("10.0.0.1"));
    assert!(!c.via_proxy());
}

#[test]
fn trusted_peer_takes_rightmost_untrusted_hop_not_spoofed_leftmost() {
    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.9")],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));
    assert_eq!(c.peer(), sock("10.0.0.1:5000"));
    assert!(c.via_proxy());
}

#[test]
fn trusted_chain_of_two_proxies_is_skipped() {
    // client 203.0.113.9 -> proxy 10.0.0.2 -> proxy 10.0.0.1 -> us; 6.6.6.6 is spoofed.
    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));
    assert!(c.via_proxy());
}

#[test]
fn all_hops_trusted_returns_leftmost() {
    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "10.9.9.9, 10.0.0.3,10.0.0.2")],
    );
    assert_eq!(c.ip(), ip("10.9.9.9"));
    assert!(c.via_proxy());
}

#[test]
fn header_absent_uses_peer() {
    let c = resolve(&xff_resolver(), "10.0.0.1:5000", &[]);
    assert_eq!(c.ip(), ip("10.0.0.1"));
    assert!(!c.via_proxy());
}

#[test]
fn multiple_x_forwarded_for_instances_are_one_list_in_order() {
    let r = xff_resolver();
    let c = resolve(
        &r,
        "10.0.0.1:5000",
        &[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2"),
        ],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));

    let c = resolve(
        &r,
        "10.0.0.1:5000",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.7"),
        ],
    );
    assert_eq!(c.ip(), ip("198.51.100.7"));
}

#[test]
fn x_forwarded_for_entries_with_ports_and_brackets() {
    let r = xff_resolver();
    for (value, expected) in [
        ("192.0.2.1:8080", "192.0.2.1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("\t192.0.2.1 ", "192.0.2.1"),
    ] {
        let c = resolve(&r, "10.0.0.1:5000", &[("x-forwarded-for", value)]);
        assert_eq!(c.ip(), ip(expected), "{value}");
        assert!(c.via_proxy(), "{value}");
    }
}

#[test]
fn forwarded_quoted_ipv6_with_port() {
    let c = resolve(
        &fwd_resolver(),
        "10.0.0.1:5000",
        &[("forwarded", r#"for="[2001:db8:cafe::17]:4711""#)],
    );
    assert_eq!(c.ip(), ip("2001:db8:cafe::17"));
    assert!(c.via_proxy());
}

#[test]
fn forwarded_multiple_elements_and_other_params() {
    let c = resolve(
        &fwd_resolver(),
        "10.0.0.1:5000",
        &[(
            "forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="198.51.100.17:8080";by="[fd00::1]";proto=https, proto=https; FOR=10.0.0.3 ;by=_proxy"#,
        )],
    );
    assert_eq!(c.ip(), ip("198.51.100.17"));
    assert!(c.via_proxy());
}

#[test]
fn forwarded_multiple_instances_and_quoted_commas() {
    let c = resolve(
        &fwd_resolver(),
        "10.0.0.1:5000",
        &[
            ("forwarded", r#"for=6.6.6.6;ext="a, for=10.0.0.9; b""#),
            ("forwarded", "for=203.0.113.9;ext=\"x\\\"y, z\""),
            ("forwarded", "for=10.0.0.2"),
        ],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));
}

#[test]
fn forwarded_header_ignored_when_x_forwarded_for_configured() {
    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));

    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[("forwarded", "for=6.6.6.6")],
    );
    assert_eq!(c.ip(), ip("10.0.0.1"));
    assert!(!c.via_proxy());
}

#[test]
fn x_forwarded_for_ignored_when_forwarded_configured() {
    let c = resolve(
        &fwd_resolver(),
        "10.0.0.1:5000",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=203.0.113.9"),
        ],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));

    let c = resolve(
        &fwd_resolver(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "6.6.6.6")],
    );
    assert_eq!(c.ip(), ip("10.0.0.1"));
    assert!(!c.via_proxy());
}

#[test]
fn malformed_x_forwarded_for_falls_back_to_peer() {
    let r = xff_resolver();
    for value in [
        "garbage",
        "unknown",
        "_hidden",
        "",
        "   ",
        "203.0.113.9,",
        "203.0.113.9, unknown",
        "203.0.113.9,,10.0.0.2",
        "example.com",
        "203.0.113.9:99999",
        "203.0.113.9:",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "fe80::1%eth0",
        "\"203.0.113.9\"",
    ] {
        let c = resolve(&r, "10.0.0.1:5000", &[("x-forwarded-for", value)]);
        assert_eq!(c.ip(), ip("10.0.0.1"), "{value:?}");
        assert!(!c.via_proxy(), "{value:?}");
    }
}

#[test]
fn malformed_forwarded_falls_back_to_peer() {
    let r = fwd_resolver();
    for value in [
        "garbage",
        "for=unknown",
        "for=_hidden",
        "for=",
        "for=\"\"",
        "",
        "proto=https",
        "for=203.0.113.9;for=198.51.100.1",
        "for=203.0.113.9,",
        r#"for="[2001:db8::1]"#,
        r#"for="203.0.113.9"x"#,
        r#"for="203\.0.113.9""#,
        "for=203.0.113.9;proto",
        "for=203.0.113.9;=https",
        "for=203.0.113.9;pro to=https",
        "for=2001:db8::1:99999x",
        "for=203.0.113.9 ; by=\"unterminated",
    ] {
        let c = resolve(&r, "10.0.0.1:5000", &[("forwarded", value)]);
        assert_eq!(c.ip(), ip("10.0.0.1"), "{value:?}");
        assert!(!c.via_proxy(), "{value:?}");
    }
}

#[test]
fn non_ascii_header_bytes_fall_back_to_peer() {
    for (r, name) in [
        (xff_resolver(), "x-forwarded-for"),
        (fwd_resolver(), "forwarded"),
    ] {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(b"for=203.0.113.9\xff\xfe").unwrap(),
        );
        let c = r.resolve_from_peer(sock("10.0.0.1:5000"), &map);
        assert_eq!(c.ip(), ip("10.0.0.1"), "{name}");
        assert!(!c.via_proxy());
    }
}

#[test]
fn unparseable_hop_beyond_the_client_is_never_reached() {
    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "garbage, unknown, 203.0.113.9")],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));

    let mut map = HeaderMap::new();
    map.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xff\xfe, 6.6.6.6").unwrap(),
    );
    map.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
    let c = xff_resolver().resolve_from_peer(sock("10.0.0.1:5000"), &map);
    assert_eq!(c.ip(), ip("203.0.113.9"));

    let c = resolve(
        &fwd_resolver(),
        "10.0.0.1:5000",
        &[("forwarded", "for=unknown, garbage;x=\"y, for=203.0.113.9")],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));
}

#[test]
fn unparseable_trusted_hop_falls_back_even_with_a_client_to_its_left() {
    let c = resolve(
        &xff_resolver(),
        "10.0.0.1:5000",
        &[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.2")],
    );
    assert_eq!(c.ip(), ip("10.0.0.1"));
    assert!(!c.via_proxy());
}

#[test]
fn ipv6_rate_limit_keys_default_to_slash_56() {
    let r = ClientAddrResolver::default();
    let key = |s: &str| {
        r.resolve_from_peer(sock(s), &HeaderMap::new())
            .rate_limit_key()
    };
    let a = key("[2001:db8:1:100::1]:1000");
    let b = key("[2001:db8:1:1ff:ffff::2]:1000");
    let other = key("[2001:db8:1:200::1]:1000");
    assert_eq!(a, ip("2001:db8:1:100::"));
    assert_eq!(b, ip("2001:db8:1:100::"));
    assert_eq!(other, ip("2001:db8:1:200::"));
    assert_ne!(a, other);
}

#[test]
fn ipv6_rate_limit_keys_with_custom_slash_64() {
    let r = ClientAddrResolver::builder()
        .ipv6_prefix(64)
        .build()
        .unwrap();
    let key = |s: &str| {
        r.resolve_from_peer(sock(s), &HeaderMap::new())
            .rate_limit_key()
    };
    assert_eq!(key("[2001:db8:1:100::1]:1"), ip("2001:db8:1:100::"));
    assert_eq!(key("[2001:db8:1:100:abcd::9]:1"), ip("2001:db8:1:100::"));
    assert_eq!(key("[2001:db8:1:101::1]:1"), ip("2001:db8:1:101::"));
    assert_eq!(r.ipv6_prefix(), 64);
}

#[test]
fn ipv4_rate_limit_keys() {
    let r = ClientAddrResolver::default();
    let c = r.resolve_from_peer(sock("198.51.100.77:1"), &HeaderMap::new());
    assert_eq!(c.rate_limit_key(), ip("198.51.100.77"));

    let r = ClientAddrResolver::builder()
        .ipv4_prefix(24)
        .build()
        .unwrap();
    let c = r.resolve_from_peer(sock("198.51.100.77:1"), &HeaderMap::new());
    assert_eq!(c.rate_limit_key(), ip("198.51.100.0"));
    assert_eq!(c.ip(), ip("198.51.100.77"));
}

#[test]
fn rate_limit_key_is_of_the_forwarded_client() {
    let r = ClientAddrResolver::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .unwrap();
    let c = resolve(
        &r,
        "10.0.0.1:5000",
        &[("x-forwarded-for", "[2001:db8:1:1ab::5]:443")],
    );
    assert_eq!(c.ip(), ip("2001:db8:1:1ab::5"));
    assert_eq!(c.rate_limit_key(), ip("2001:db8:1:100::"));
}

#[test]
fn ipv4_mapped_addresses_are_canonicalized() {
    let r = xff_resolver();
    // mapped peer is matched against the IPv4 trusted list; mapped hop becomes IPv4
    let c = resolve(
        &r,
        "[::ffff:10.0.0.1]:5000",
        &[(
            "x-forwarded-for",
            "::ffff:203.0.113.9, [::ffff:10.0.0.2]:80",
        )],
    );
    assert_eq!(c.peer(), sock("10.0.0.1:5000"));
    assert_eq!(c.ip(), ip("203.0.113.9"));
    assert_eq!(c.rate_limit_key(), ip("203.0.113.9"));
    assert!(c.via_proxy());

    // untrusted mapped peer
    let c = resolve(&r, "[::ffff:198.51.100.4]:5000", &[]);
    assert_eq!(c.ip(), ip("198.51.100.4"));
    assert_eq!(c.peer(), sock("198.51.100.4:5000"));

    // a mapped trusted-proxy entry is stored and matched as IPv4
    let r = ClientAddrResolver::builder()
        .trusted_proxies(["::ffff:10.0.0.0/104", "::ffff:192.0.2.10"])
        .forwarded_header(ForwardedHeader::Forwarded)
        .build()
        .unwrap();
    assert_eq!(
        r.trusted_proxies().collect::<Vec<_>>(),
        vec![
            "10.0.0.0/8".parse::<IpNet>().unwrap(),
            "192.0.2.10/32".parse().unwrap()
        ]
    );
    assert!(r.is_trusted_proxy(ip("::ffff:10.1.2.3")));
    let c = resolve(
        &r,
        "192.0.2.10:5000",
        &[("forwarded", r#"for="[::ffff:203.0.113.9]""#)],
    );
    assert_eq!(c.ip(), ip("203.0.113.9"));
}

#[test]
fn no_peer_address_resolves_to_none() {
    let r = xff_resolver();
    let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(r.resolve(&map, &http::Extensions::new()), None);
}

#[cfg(feature = "axum")]
#[test]
fn peer_from_axum_connect_info() {
    let mut ext = http::Extensions::new();
    ext.insert(axum::extract::ConnectInfo(sock("10.0.0.1:5000")));
    let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let c = xff_resolver().resolve(&map, &ext).unwrap();
    assert_eq!(c.peer(), sock("10.0.0.1:5000"));
    assert_eq!(c.ip(), ip("203.0.113.9"));

    // our PeerAddr wins over ConnectInfo
    ext.insert(PeerAddr(sock("198.51.100.4:1")));
    let c = xff_resolver().resolve(&map, &ext).unwrap();
    assert_eq!(c.ip(), ip("198.51.100.4"));
}

#[cfg(feature = "tonic")]
#[test]
fn peer_from_tonic_tcp_connect_info() {
    let mut ext = http::Extensions::new();
    ext.insert(tonic::transport::server::TcpConnectInfo {
        local_addr: Some(sock("127.0.0.1:50051")),
        remote_addr: Some(sock("198.51.100.4:6000")),
    });
    let c = xff_resolver().resolve(&HeaderMap::new(), &ext).unwrap();
    assert_eq!(c.peer(), sock("198.51.100.4:6000"));
    assert_eq!(c.ip(), ip("198.51.100.4"));

    let mut ext = http::Extensions::new();
    ext.insert(tonic::transport::server::TcpConnectInfo {
        local_addr: None,
        remote_addr: None,
    });
    assert_eq!(xff_resolver().resolve(&HeaderMap::new(), &ext), None);
}

#[test]
fn builder_errors_name_the_setting_and_value() {
    let err = |b: ClientAddrResolverBuilder| b.build().unwrap_err();

    for bad in ["10.0.0.0/33", "not-an-ip", "", "10.0.0.0/8,192.168.0.0/16"] {
        let e = err(ClientAddrResolver::builder().trusted_proxies([bad]));
        assert_eq!(e.setting(), "trusted_proxies", "{bad:?}");
        assert_eq!(e.value(), Some(bad));
    }

    let e = err(ClientAddrResolver::builder().trusted_proxies(["10.0.0.0/8", "10.0.0.1/8"]));
    assert_eq!(e.setting(), "trusted_proxies");
    assert_eq!(e.value(), Some("10.0.0.1/8"));
    assert!(e.reason().contains("10.0.0.0/8"), "{e}");

    for bad in ["0.0.0.0/0", "::/0", "::ffff:0.0.0.0/96"] {
        let e = err(ClientAddrResolver::builder().trusted_proxies([bad]));
        assert_eq!(e.setting(), "trusted_proxies");
        assert_eq!(e.value(), Some(bad));
        assert!(e.reason().contains("every address"), "{e}");
    }

    let e =
        err(ClientAddrResolver::builder()
            .trusted_proxy_nets(["0.0.0.0/0".parse::<IpNet>().unwrap()]));
    assert_eq!(e.setting(), "trusted_proxy_nets");
    assert_eq!(e.value(), Some("0.0.0.0/0"));

    for bad in [0, 129] {
        let e = err(ClientAddrResolver::builder().ipv6_prefix(bad));
        assert_eq!(e.setting(), "ipv6_prefix");
        assert_eq!(e.value(), Some(bad.to_string().as_str()));
    }
    for bad in [0, 33] {
        let e = err(ClientAddrResolver::builder().ipv4_prefix(bad));
        assert_eq!(e.setting(), "ipv4_prefix");
        assert_eq!(e.value(), Some(bad.to_string().as_str()));
    }
}

#[test]
fn builder_accepts_cidrs_bare_addresses_and_nets() {
    let r = ClientAddrResolver::builder()
        .trusted_proxies([" 10.0.0.0/8 ", "2001:db8::/32", "192.0.2.10", "fd00::1"])
        .trusted_proxy_nets(["172.16.0.0/12".parse::<IpNet>().unwrap()])
        .ipv4_prefix(32)
        .ipv6_prefix(128)
        .build()
        .unwrap();
    let nets: Vec<String> = r.trusted_proxies().map(|n| n.to_string()).collect();
    assert_eq!(
        nets,
        [
            "10.0.0.0/8",
            "192.0.2.10/32",
            "172.16.0.0/12",
            "2001:db8::/32",
            "fd00::1/128"
        ]
    );
    assert!(r.is_trusted_proxy(ip("192.0.2.10")));
    assert!(!r.is_trusted_proxy(ip("192.0.2.11")));
    assert!(r.is_trusted_proxy(ip("172.31.255.255")));
    assert_eq!(r.forwarded_header(), ForwardedHeader::XForwardedFor);
}

#[test]
fn forwarded_header_parses_and_displays() {
    assert_eq!(
        "X-Forwarded-For".parse::<ForwardedHeader>().unwrap(),
        ForwardedHeader::XForwardedFor
    );
    assert_eq!(
        " forwarded ".parse::<ForwardedHeader>().unwrap(),
        ForwardedHeader::Forwarded
    );
    let e = "x-real-ip".parse::<ForwardedHeader>().unwrap_err();
    assert_eq!(e.setting(), "forwarded_header");
    assert_eq!(e.value(), Some("x-real-ip"));
    assert_eq!(ForwardedHeader::default(), ForwardedHeader::XForwardedFor);
    assert_eq!(ForwardedHeader::Forwarded.to_string(), "forwarded");
    assert_eq!(
        ForwardedHeader::XForwardedFor.header_name(),
        "x-forwarded-for"
    );
}

#[test]
fn public_parsers() {
    assert_eq!(
        parse_x_forwarded_for_hop(" [::ffff:192.0.2.1]:80 "),
        Some(ip("192.0.2.1"))
    );
    assert_eq!(parse_x_forwarded_for_hop("unknown"), None);
    assert_eq!(
        parse_x_forwarded_for_hops("203.0.113.9, nope,10.0.0.1").collect::<Vec<_>>(),
        [Some(ip("10.0.0.1")), None, Some(ip("203.0.113.9"))]
    );
    assert_eq!(
        parse_forwarded_for_hops(
            r#"for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https, for=unknown, by=10.0.0.1"#
        )
        .collect::<Vec<_>>(),
        [
            None,
            None,
            Some(ip("2001:db8:cafe::17")),
            Some(ip("192.0.2.43"))
        ]
    );
    // unbalanced quote: that element is None and the iteration ends
    assert_eq!(
        parse_forwarded_for_hops(r#"for=192.0.2.43, x="a, for=198.51.100.1"#).collect::<Vec<_>>(),
        [Some(ip("198.51.100.1")), None]
    );
    assert_eq!(
        parse_forwarded_for_hops(r#"for=192.0.2.43, x="a\"", for=198.51.100.1"#)
            .collect::<Vec<_>>(),
        [Some(ip("198.51.100.1")), None, Some(ip("192.0.2.43"))]
    );
}

async fn echo_client(req: Request<()>) -> Result<Option<ClientAddr>, Infallible> {
    Ok(req.extensions().get::<ClientAddr>().copied())
}

#[tokio::test]
async fn layer_inserts_client_addr() {
    let svc = ClientAddrLayer::new(xff_resolver()).layer(tower::service_fn(echo_client));
    let mut req = Request::new(());
    req.extensions_mut().insert(PeerAddr(sock("10.0.0.1:5000")));
    req.headers_mut().insert(
        "x-forwarded-for",
        HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
    );
    let client = svc.oneshot(req).await.unwrap().unwrap();
    assert_eq!(client.ip(), ip("203.0.113.9"));
    assert_eq!(client.peer(), sock("10.0.0.1:5000"));
    assert!(client.via_proxy());
}

#[tokio::test]
async fn layer_keeps_an_existing_client_addr_and_skips_unknown_peers() {
    let svc = ClientAddrLayer::new(xff_resolver()).layer(tower::service_fn(echo_client));
    let existing =
        ClientAddrResolver::default().resolve_from_peer(sock("192.0.2.1:1"), &HeaderMap::new());
    let mut req = Request::new(());
    req.extensions_mut().insert(PeerAddr(sock("10.0.0.1:5000")));
    req.extensions_mut().insert(existing);
    assert_eq!(svc.clone().oneshot(req).await.unwrap(), Some(existing));

    let req = Request::new(());
    assert_eq!(svc.oneshot(req).await.unwrap(), None);
}
