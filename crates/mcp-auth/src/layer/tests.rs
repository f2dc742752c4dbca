use super::*;
use bytes::Bytes;
use http::header;
use http::{Method, Request, Response, StatusCode};
use mcp_security_core::Scopes;
use mcp_security_core::config::Env;
use tower_layer::Layer;

fn jwt_env(pairs: &[(&str, &str)]) -> Result<Option<JwtVerifier>, ConfigError> {
    AuthLayer::jwt_from_env(&Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v))))
}

#[test]
fn no_jwt_variables_no_verifier() {
    assert!(jwt_env(&[]).unwrap().is_none());
    assert!(
        jwt_env(&[("MCP_JWT_AUDIENCE", "https://mcp.example.com/mcp")])
            .unwrap()
            .is_none()
    );
}

#[test]
fn hs256_from_env_keeps_working() {
    let v = jwt_env(&[
        (
            "MCP_JWT_SECRET",
            "env-secret-0123456789abcdef0123456789abcdef",
        ),
        ("MCP_JWT_ISSUER", "https://mcp.example.com"),
        ("MCP_JWT_ALGORITHMS", "HS256"),
    ])
    .unwrap()
    .unwrap();
    assert!(v.has_secrets() && !v.has_jwks());
    assert_eq!(v.issuer(), Some("https://mcp.example.com"));
    let e = jwt_env(&[("MCP_JWT_SECRET", "short")]).unwrap_err();
    assert_eq!(e.setting(), "MCP_JWT_SECRET");
}

#[cfg(not(feature = "jwks"))]
#[test]
fn jwks_without_the_feature_is_an_error_naming_variable_and_feature() {
    let e = jwt_env(&[("MCP_JWKS_URL", "https://id.example.com/jwks")]).unwrap_err();
    assert_eq!(e.setting(), "MCP_JWKS_URL");
    assert!(e.reason().contains("`jwks` cargo feature"), "{e}");
    let e = jwt_env(&[("MCP_JWT_ISSUER", "https://id.example.com")]).unwrap_err();
    assert_eq!(e.setting(), "MCP_JWT_ISSUER");
    assert!(e.reason().contains("`jwks` cargo feature"), "{e}");
    // With a secret, the issuer is only the required `iss`, as before.
    assert!(
        jwt_env(&[
            (
                "MCP_JWT_SECRET",
                "env-secret-0123456789abcdef0123456789abcdef"
            ),
            ("MCP_JWT_ISSUER", "https://id.example.com"),
        ])
        .is_ok()
    );
}

mod resource_url {
    use super::*;
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
    const SECRET: &str = "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=";

    struct Answer {
        status: StatusCode,
        headers: http::HeaderMap,
        body: Bytes,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }

        fn vary(&self) -> Vec<&str> {
            self.headers
                .get_all(header::VARY)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        }
    }

    fn builder() -> AuthLayerBuilder {
        AuthLayer::builder().api_keys(
            ApiKeyStore::builder()
                .key("k", KEY, Scopes::new(["*"]))
                .build()
                .unwrap(),
        )
    }

    async fn send(layer: &AuthLayer, method: Method, path: &str, hosts: &[&str]) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for h in hosts {
            req = req.header("host", *h);
        }
        let svc = layer.layer(tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        }));
        let res = svc
            .oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn metadata(layer: &AuthLayer, hosts: &[&str]) -> Answer {
        send(
            layer,
            Method::GET,
            "/.well-known/oauth-protected-resource/mcp",
            hosts,
        )
        .await
    }

    async fn challenge(layer: &AuthLayer, hosts: &[&str]) -> Answer {
        let a = send(layer, Method::POST, "/mcp", hosts).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.json(),
            json!({"error": "invalid_token", "error_description": "Authentication required"})
        );
        a
    }

    fn assert_not_found(a: &Answer, vary: bool) {
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.headers["cache-control"], "no-store");
        assert_eq!(a.headers["access-control-allow-origin"], "*");
        assert_eq!(a.vary(), if vary { vec!["host"] } else { vec![] });
        assert_eq!(
            a.json(),
            json!({"error": "not_found",
                    "message": "No protected-resource metadata is served for this host"})
        );
        assert!(!String::from_utf8_lossy(&a.body).contains("evil"));
    }

    #[tokio::test]
    async fn a_hostile_host_is_never_echoed() {
        // Nothing configured: the resource may come only from a loopback Host.
        let layer = builder().build().unwrap();
        assert_eq!(layer.resource(), None);
        assert_eq!(
            layer.resource_hosts().unwrap(),
            ["localhost", "127.0.0.1", "[::1]"]
        );
        let a = metadata(&layer, &["evil.example"]).await;
        assert_not_found(&a, true);
        let a = challenge(&layer, &["evil.example"]).await;
        assert_eq!(a.headers["www-authenticate"], "Bearer");
        assert_eq!(a.vary(), ["host"]);
        // Two Host headers, a Host with a path, a port-less lookalike: the same.
        for hosts in [
            &["localhost", "evil.example"][..],
            &["localhost.evil.example"],
            &["localhost/x"],
            &["localhost:"],
            &[],
        ] {
            assert_not_found(&metadata(&layer, hosts).await, true);
            let a = challenge(&layer, hosts).await;
            assert_eq!(a.headers["www-authenticate"], "Bearer", "{hosts:?}");
        }
        // HEAD: the same head, no body.
        let a = send(
            &layer,
            Method::HEAD,
            "/.well-known/oauth-protected-resource",
            &["evil.example"],
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.vary(), ["host"]);
        assert!(a.body.is_empty());

        // An allowed Host names the resource; the answer varies with Host.
        let a = metadata(&layer, &["localhost:8080"]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.headers["cache-control"], "public, max-age=3600");
        assert_eq!(a.vary(), ["host"]);
        assert_eq!(a.json()["resource"], "http://localhost:8080/mcp");
        let a = challenge(&layer, &["[::1]:9000"]).await;
        assert_eq!(
            a.headers["www-authenticate"],
            "Bearer resource_metadata=\"http://[::1]:9000/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(a.vary(), ["host"]);
    }

    #[tokio::test]
    async fn a_configured_resource_ignores_host_and_stays_cacheable() {
        let layer = builder()
            .resource("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        assert_eq!(layer.resource(), Some("https://mcp.example.com/mcp"));
        for hosts in [&["evil.example"][..], &["localhost"], &[]] {
            let a = metadata(&layer, hosts).await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.headers["cache-control"], "public, max-age=3600");
            assert!(a.vary().is_empty(), "{:?}", a.vary());
            assert_eq!(a.json()["resource"], "https://mcp.example.com/mcp");
            let a = challenge(&layer, hosts).await;
            assert_eq!(
                a.headers["www-authenticate"],
                "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            );
            assert!(a.vary().is_empty());
        }
    }

    #[tokio::test]
    async fn the_jwt_audience_names_the_resource_when_none_is_configured() {
        let jwt = |aud: &[&str]| {
            let mut b = JwtVerifier::builder().secret(Secret::new(SECRET));
            for a in aud {
                b = b.audience(*a);
            }
            b.build().unwrap()
        };
        let layer = builder()
            .jwt(jwt(&["mcp-server", "https://mcp.example.com/mcp"]))
            .build()
            .unwrap();
        assert_eq!(layer.resource(), Some("https://mcp.example.com/mcp"));
        let a = metadata(&layer, &["evil.example"]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json()["resource"], "https://mcp.example.com/mcp");
        assert!(a.vary().is_empty());
        assert_eq!(a.headers["cache-control"], "public, max-age=3600");
        // An audience that is not a URL does not name a resource.
        let layer = builder().jwt(jwt(&["mcp-server"])).build().unwrap();
        assert_eq!(layer.resource(), None);
        assert_not_found(&metadata(&layer, &["evil.example"]).await, true);
    }

    #[tokio::test]
    async fn any_host_means_no_derived_resource() {
        let layer = builder().any_host().build().unwrap();
        assert_eq!(layer.resource_hosts(), None);
        for hosts in [&["evil.example"][..], &["localhost"]] {
            // The 404 does not depend on Host: no Vary.
            assert_not_found(&metadata(&layer, hosts).await, false);
            let a = challenge(&layer, hosts).await;
            assert_eq!(a.headers["www-authenticate"], "Bearer");
            assert!(a.vary().is_empty());
        }
    }

    #[tokio::test]
    async fn an_allowlist_from_the_origin_guard() {
        let layer = builder()
            .allowed_hosts(["MCP.example.com:8443", "::1", "10.0.0.5"])
            .build()
            .unwrap();
        assert_eq!(
            layer.resource_hosts().unwrap(),
            ["mcp.example.com:8443", "[::1]", "10.0.0.5"]
        );
        let a = metadata(&layer, &["mcp.example.com:8443"]).await;
        assert_eq!(a.json()["resource"], "http://mcp.example.com:8443/mcp");
        let a = metadata(&layer, &["10.0.0.5:80"]).await;
        assert_eq!(a.json()["resource"], "http://10.0.0.5:80/mcp");
        for no in [
            "mcp.example.com",
            "mcp.example.com:443",
            "localhost",
            "evil.example",
        ] {
            assert_not_found(&metadata(&layer, &[no]).await, true);
        }
    }

    #[test]
    fn allowlist_errors_name_the_setting() {
        let e = builder()
            .allowed_hosts(Vec::<String>::new())
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "allowed_hosts");
        for bad in ["https://x", "x/y", "a b", "x:0", "[::g]", "x:abc", ""] {
            let e = builder().allowed_hosts([bad]).build().unwrap_err();
            assert_eq!(e.setting(), "allowed_hosts", "{bad}");
        }
    }
}

#[tokio::test]
async fn a_disabled_layer_passes_requests_through_untouched() {
    use http_body_util::{BodyExt, Full};
    use mcp_security_core::{AuthOutcome, Principal};
    use tower::ServiceExt;

    let layer = AuthLayer::disabled();
    assert!(!layer.is_enabled());
    assert_eq!(layer.summary(), "off");
    assert_eq!(layer.resource(), None);
    assert_eq!(layer.resource_hosts(), None);
    let svc = layer.layer(tower::service_fn(|req: Request<Full<Bytes>>| async move {
        assert!(req.extensions().get::<Principal>().is_none());
        let auth = req.headers().get(header::AUTHORIZATION).cloned();
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
            auth.map(|v| v.as_bytes().to_vec()).unwrap_or_default(),
        ))))
    }));
    let res = svc
        .oneshot(
            Request::post("/.well-known/oauth-protected-resource/mcp")
                .header(header::AUTHORIZATION, "Bearer anything")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<AuthOutcome>().is_none());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Bearer anything");
}
