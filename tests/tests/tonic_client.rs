//! A tonic gRPC server (the standard health service) behind the whole `mcp-security` stack, on
//! 127.0.0.1 with an ephemeral port, called by a real tonic client: every refusal must arrive as
//! the right gRPC status code with the stack's public message, credentials travelling as gRPC
//! metadata (`authorization: Bearer …`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::Method;
use mcp_security::SecurityConfig;
use mcp_security::auth::JwtVerifier;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::auth::jwt::TokenRequest;
use mcp_security::core::Scopes;
use mcp_security::core::client_addr::peer_addr;
use mcp_security::core::config::{Environment, Secret};
use mcp_security::core::inspect::InspectBody;
use mcp_security::ratelimit::{KeySelector, Limit, Quota, RouteClass};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;

const HEALTH_PATH: &str = "/grpc.health.v1.Health";
const JWT_SECRET: &str = "b7c1e0d4f9a2385e6c0b1d7a4f3e9c2851a6d0b7e4c3f9a1d2e8b5c7a0f6d3e1";
const AUDIENCE: &str = "grpc://health.test";

/// The running server and the credentials it accepts.
struct Fixture {
    addr: SocketAddr,
    /// Scope `health:read`.
    monitor_key: String,
    /// No scope at all.
    no_scope_key: String,
    /// The peer address the stack saw on the last call that reached the service.
    last_peer: Arc<Mutex<Option<SocketAddr>>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Fixture {
    /// The health service behind the facade's stack, `per_minute` health calls allowed per
    /// caller.
    async fn start(per_minute: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let monitor_key = generate_key(DEFAULT_KEY_PREFIX).unwrap();
        let no_scope_key = generate_key(DEFAULT_KEY_PREFIX).unwrap();
        let caller = KeySelector::principal_or_client_addr;
        let config = SecurityConfig::builder()
            .environment(Environment::Development)
            .bind_addr(addr)
            .named_api_key(
                "monitor",
                Secret::new(&monitor_key),
                Scopes::new(["health:read"]),
            )
            .named_api_key("no-scope", Secret::new(&no_scope_key), Scopes::default())
            .jwt_secret(Secret::new(JWT_SECRET))
            .jwt_audience(AUDIENCE)
            .require_path(HEALTH_PATH, None::<&[Method]>, ["health:read"])
            .caller_route_class(RouteClass::new("health").any_method(HEALTH_PATH))
            .caller_limit(
                Limit::new("health", Quota::per_minute(per_minute), caller()).for_class("health"),
            )
            .build()
            .unwrap();
        let security = config.layer().unwrap();

        let (_reporter, health) = tonic_health::server::health_reporter();
        let last_peer = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&last_peer);
        let layer = ServiceBuilder::new().layer(security).map_request(
            move |req: http::Request<InspectBody<tonic::body::Body>>| {
                // What the stack's client-address resolver reads (tonic's TcpConnectInfo, with
                // mcp-security-core's `tonic` feature).
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = peer_addr(req.extensions());
                req.map(tonic::body::Body::new)
            },
        );
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Fixture {
            addr,
            monitor_key,
            no_scope_key,
            last_peer,
            stop: Some(stop),
            server: Some(server),
        }
    }

    async fn client(&self) -> HealthClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        HealthClient::new(channel)
    }

    /// `Check` with the overall service name, `credential` (if any) as `authorization: Bearer`.
    async fn check(&self, credential: Option<&str>) -> Result<HealthCheckResponse, tonic::Status> {
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        if let Some(c) = credential {
            let value = MetadataValue::try_from(format!("Bearer {c}")).unwrap();
            req.metadata_mut().insert("authorization", value);
        }
        self.client()
            .await
            .check(req)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

fn jwt(scopes: &[&str]) -> String {
    let verifier = JwtVerifier::builder()
        .secret(Secret::new(JWT_SECRET))
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let mut req = TokenRequest::new("alice", Duration::from_secs(300));
    req.audience = vec![AUDIENCE.to_owned()];
    req.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    verifier.sign(&req, SystemTime::now()).unwrap()
}

fn assert_status(result: Result<HealthCheckResponse, tonic::Status>, code: Code, message: &str) {
    match result {
        Ok(res) => panic!("expected {code:?}, got {res:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.message(), message, "{status:?}");
        }
    }
}

#[tokio::test]
async fn ok_with_a_valid_api_key_or_jwt() {
    let server = Fixture::start(100).await;
    let res = server.check(Some(&server.monitor_key)).await.unwrap();
    assert_eq!(res.status(), ServingStatus::Serving);
    let res = server.check(Some(&jwt(&["health:read"]))).await.unwrap();
    assert_eq!(res.status(), ServingStatus::Serving);
    // The stack knew the client: per-client limits and audit records key on it.
    let peer = server.last_peer.lock().unwrap().expect("a peer address");
    assert!(peer.ip().is_loopback(), "{peer}");
    server.stop().await;
}

#[tokio::test]
async fn unauthenticated_without_or_with_a_wrong_credential() {
    let server = Fixture::start(100).await;
    assert_status(
        server.check(None).await,
        Code::Unauthenticated,
        "Authentication required",
    );
    let wrong = generate_key(DEFAULT_KEY_PREFIX).unwrap();
    assert_status(
        server.check(Some(&wrong)).await,
        Code::Unauthenticated,
        "The credential is invalid, expired or revoked",
    );
    // A token signed with another secret is refused the same way, saying no more.
    let forged = JwtVerifier::builder()
        .secret(Secret::new(
            "0f6d3e1b7c1e0d4f9a2385e6c0b1d7a4f3e9c2851a6d0b7e4c3f9a1d2e8b5c7a",
        ))
        .audience(AUDIENCE)
        .build()
        .unwrap()
        .sign(
            &TokenRequest {
                audience: vec![AUDIENCE.to_owned()],
                scopes: vec!["health:read".to_owned()],
                ..TokenRequest::new("mallory", Duration::from_secs(300))
            },
            SystemTime::now(),
        )
        .unwrap();
    assert_status(
        server.check(Some(&forged)).await,
        Code::Unauthenticated,
        "The credential is invalid, expired or revoked",
    );
    server.stop().await;
}

#[tokio::test]
async fn permission_denied_without_the_scope() {
    let server = Fixture::start(100).await;
    assert_status(
        server.check(Some(&server.no_scope_key)).await,
        Code::PermissionDenied,
        "The credential lacks a scope this request needs",
    );
    assert_status(
        server.check(Some(&jwt(&["notes:read"]))).await,
        Code::PermissionDenied,
        "The credential lacks a scope this request needs",
    );
    server.stop().await;
}

#[tokio::test]
async fn resource_exhausted_after_the_rate_limit() {
    let server = Fixture::start(3).await;
    for _ in 0..3 {
        let res = server.check(Some(&server.monitor_key)).await.unwrap();
        assert_eq!(res.status(), ServingStatus::Serving);
    }
    let status = server
        .check(Some(&server.monitor_key))
        .await
        .expect_err("the fourth call in a minute is over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.message(),
        "Rate limit exceeded. Please try again later."
    );
    let retry_after: u64 = status
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in the metadata");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The limit is per caller: another principal still gets through.
    let res = server.check(Some(&jwt(&["health:read"]))).await.unwrap();
    assert_eq!(res.status(), ServingStatus::Serving);
    server.stop().await;
}
