//! RedisStore over TLS and with ACL credentials, against a real redis-server (started by each
//! test, certificates made by `openssl` at test time).
#![cfg(feature = "redis")]

mod redis_support;

use std::time::Duration;

use http::StatusCode;
use mcp_ratelimit::redis::{FailurePolicy, RedisBackend, RedisStore};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::RateLimitOutcome;
use mcp_security_core::config::Env;
use redis_support::*;

const USER: &str = "mcp-ratelimit";
const PASSWORD: &str = "Pw-7f3c1a9e-correct";

fn five_per_hour(store: RedisStore) -> RateLimitLayer<RedisBackend> {
    RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::new(5, Duration::from_secs(3600)),
            KeySelector::client_addr(),
        ))
        .redis(store)
        .build()
        .expect("layer")
}

/// Generous: the tests assert on counts and statuses, never on time.
fn store(url: &str) -> mcp_ratelimit::redis::RedisStoreBuilder {
    RedisStore::builder(url).timeout(Duration::from_secs(3))
}

/// The fail-closed answer: 503, `Retry-After: 1`, JSON body, `Unavailable` for the audit.
async fn assert_unavailable(svc: &mut Svc, ip: &str) {
    let res = send(svc, request_from(ip)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(!res.headers().contains_key("x-ratelimit-remaining"));
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Unavailable {
            retry_after_secs: 1
        })
    ));
    let body = body_json(res).await;
    assert_eq!(body["error"], "rate_limit_unavailable");
    assert_eq!(body["retry_after"], 1);
}

/// Alternates 12 requests of one client between two layers; returns the statuses.
async fn twelve_over_two(a: &mut Svc, b: &mut Svc) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..12 {
        let svc = if i % 2 == 0 { &mut *a } else { &mut *b };
        let res = send(svc, request_from("203.0.113.9")).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(res.headers()["x-ratelimit-limit"], "5");
            assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
            assert!(res.headers().contains_key("retry-after"));
            assert!(matches!(
                res.extensions().get::<RateLimitOutcome>(),
                Some(RateLimitOutcome::Limited { .. })
            ));
            assert_eq!(body_json(res).await["error"], "rate_limited");
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            assert!(matches!(
                res.extensions().get::<RateLimitOutcome>(),
                Some(RateLimitOutcome::Allowed { .. })
            ));
            statuses.push(res.status());
        }
    }
    statuses
}

#[tokio::test]
async fn tls_with_a_ca_file_two_limiters_share_exactly_five_of_twelve() {
    let pki = Pki::new();
    let server = RedisServer::start_with(Options {
        tls: Some(pki.server("server", false)),
        ..Options::default()
    });
    let url = server.tls_url();
    let build = || {
        store(&url)
            .prefix("tls1:")
            .ca_file(pki.path("ca.crt"))
            .build()
            .expect("store")
    };
    let (sa, sb) = (build(), build());
    assert_eq!(
        sa.display_url(),
        format!("rediss://127.0.0.1:{}/0", server.tls_port.unwrap())
    );
    sa.warm_up()
        .await
        .expect("a TLS connection with the CA file");
    let (mut a, mut b) = (service(five_per_hour(sa)), service(five_per_hour(sb)));
    let statuses = twelve_over_two(&mut a, &mut b).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 5, "{statuses:?}");
    assert_eq!(statuses[..5], [StatusCode::OK; 5]);
    // The decisions went through the TLS port to this server.
    assert!(server.script_calls() >= 6, "{}", server.script_calls());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_and_the_policy_answers() {
    let pki = Pki::new();
    let server = RedisServer::start_with(Options {
        tls: Some(pki.server("other-server", false)),
        ..Options::default()
    });
    let closed = store(&server.tls_url())
        .ca_file(pki.path("ca.crt"))
        .build()
        .unwrap();
    let err = closed.warm_up().await.unwrap_err().to_string();
    assert!(err.contains("TLS"), "{err}");
    assert!(err.contains(&server.tls_url()[..20]), "{err}");
    let mut svc = service(five_per_hour(closed.clone()));
    assert_unavailable(&mut svc, "198.51.100.20").await;
    assert_unavailable(&mut svc, "198.51.100.20").await;
    let stats = closed.stats();
    assert!(stats.degraded);
    assert!(stats.unavailable_rejections >= 2);

    // Without the CA file the bundled public roots do not know the test CA either.
    let no_ca = store(&server.tls_url()).build().unwrap();
    assert!(no_ca.warm_up().await.is_err());

    // Fail open: the local limiter decides, marked degraded.
    let open = store(&server.tls_url())
        .ca_file(pki.path("ca.crt"))
        .failure_policy(FailurePolicy::Open)
        .build()
        .unwrap();
    let mut svc = service(five_per_hour(open.clone()));
    let res = send(&mut svc, request_from("198.51.100.21")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-limit"], "5");
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Degraded { .. })
    ));
    assert!(open.stats().fallback_decisions >= 1);
    // Nothing reached Redis.
    assert_eq!(server.script_calls(), 0);
}

#[tokio::test]
async fn acl_user_and_password_over_tls_from_the_environment() {
    let pki = Pki::new();
    let server = RedisServer::start_with(Options {
        tls: Some(pki.server("server", false)),
        acl_user: Some((USER.to_owned(), PASSWORD.to_owned())),
        ..Options::default()
    });
    let port = server.tls_port.unwrap();
    let ca = pki.path("ca.crt");
    let password_file = pki.path("redis-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    // The URL's user and password are wrong; the variables win.
    let url = format!("rediss://someone:url-password@127.0.0.1:{port}/0");
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_RATE_LIMIT_REDIS_URL", url.as_str()),
            ("MCP_RATE_LIMIT_REDIS_USERNAME", USER),
            (
                "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE",
                password_file.to_str().unwrap(),
            ),
            ("MCP_RATE_LIMIT_REDIS_CA_FILE", ca.to_str().unwrap()),
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "3s"),
            ("MCP_RATE_LIMIT_REDIS_PREFIX", "acl:"),
        ],
    );
    let good = RedisStore::from_env(&env).unwrap().unwrap();
    assert_eq!(
        good.display_url(),
        format!("rediss://{USER}:***@127.0.0.1:{port}/0")
    );
    let shown = format!("{good:?}");
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("url-password"),
        "{shown}"
    );
    good.warm_up().await.expect("the ACL user authenticates");
    let (sa, sb) = (good.clone(), RedisStore::from_env(&env).unwrap().unwrap());
    let (mut a, mut b) = (service(five_per_hour(sa)), service(five_per_hour(sb)));
    let statuses = twelve_over_two(&mut a, &mut b).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );

    // The URL's credentials alone are wrong: the failure policy, a clear reason, no password.
    let wrong = store(&url).ca_file(&ca).prefix("acl:").build().unwrap();
    let err = wrong.warm_up().await.unwrap_err().to_string();
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !err.contains("url-password") && !err.contains(PASSWORD),
        "{err}"
    );
    let mut svc = service(five_per_hour(wrong.clone()));
    assert_unavailable(&mut svc, "198.51.100.30").await;
    assert!(wrong.stats().errors + wrong.stats().timeouts >= 1);

    // The right user with a wrong password from the builder.
    let wrong = store(&server.tls_url())
        .ca_file(&ca)
        .username(USER)
        .password("not-the-password")
        .failure_policy(FailurePolicy::Open)
        .build()
        .unwrap();
    let err = wrong.warm_up().await.unwrap_err().to_string();
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    let mut svc = service(five_per_hour(wrong));
    let res = send(&mut svc, request_from("198.51.100.31")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Degraded { .. })
    ));
}

#[tokio::test]
async fn after_the_tls_server_restarts_decisions_resume_without_a_new_store() {
    let pki = Pki::new();
    let mut server = RedisServer::start_with(Options {
        tls: Some(pki.server("server", false)),
        acl_user: Some((USER.to_owned(), PASSWORD.to_owned())),
        ..Options::default()
    });
    let store = store(&server.tls_url())
        .ca_file(pki.path("ca.crt"))
        .username(USER)
        .password(PASSWORD)
        .timeout(Duration::from_millis(500))
        .prefix("restart:")
        .build()
        .unwrap();
    let mut svc = service(five_per_hour(store.clone()));
    let res = send(&mut svc, request_from("198.51.100.50")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "4");

    server.stop();
    assert_unavailable(&mut svc, "198.51.100.50").await;
    assert!(store.stats().degraded);

    // The same process, the same store: the connection comes back over TLS with the ACL user.
    // (The restarted server lost its keys: `--save ""`.)
    server.restart();
    let mut resumed = None;
    for _ in 0..400 {
        let res = send(&mut svc, request_from("198.51.100.51")).await;
        if res.status() != StatusCode::SERVICE_UNAVAILABLE {
            resumed = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let res = resumed.expect("decisions never resumed after the restart");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "4");
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Allowed { .. })
    ));
    assert!(!store.stats().degraded);
    assert!(server.script_calls() >= 1);
}

/// Everything logged while it is the default subscriber (this thread).
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_log_line_never_printed_and_recoverable() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = RedisServer::start_with(Options {
        acl_user: Some((USER.to_owned(), PASSWORD.to_owned())),
        ..Options::default()
    });
    let wrong = "Wrong-pw-5e1d0c";
    let url = format!("redis://{USER}:{wrong}@127.0.0.1:{}/", server.port);
    // The default 20 ms budget: the first decisions may only see it run out.
    let store = RedisStore::builder(url).build().unwrap();
    let mut svc = service(five_per_hour(store.clone()));
    assert_unavailable(&mut svc, "198.51.100.60").await;
    let mut logged = false;
    for _ in 0..400 {
        if logs.text().contains("cannot use Redis") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let text = logs.text();
    assert!(logged, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("cannot use Redis"))
        .unwrap();
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("refused the credentials"), "{line}");
    assert!(
        line.contains(&format!("redis://{USER}:***@127.0.0.1:{}/0", server.port)),
        "{line}"
    );
    assert_unavailable(&mut svc, "198.51.100.60").await;
    assert!(text.contains("applying the failure policy"), "{text}");
    assert!(!logs.text().contains(wrong), "{}", logs.text());
    assert_eq!(server.script_calls(), 0);

    // Once the server accepts that password too, decisions resume with the same store (the
    // refused connection is replaced; it would never retry by itself).
    let set = server.cli(&["ACL", "SETUSER", USER, &format!(">{wrong}")]);
    assert_eq!(set.trim(), "OK");
    let mut resumed = None;
    for _ in 0..400 {
        let res = send(&mut svc, request_from("198.51.100.61")).await;
        if res.status() != StatusCode::SERVICE_UNAVAILABLE {
            resumed = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let res = resumed.expect("decisions never resumed after the password was accepted");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "4");
    assert!(!store.stats().degraded);
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let server = RedisServer::start_with(Options {
        tls: Some(pki.server("server", true)),
        ..Options::default()
    });
    // Without a client certificate the server refuses the handshake.
    let anonymous = store(&server.tls_url())
        .ca_file(pki.path("ca.crt"))
        .build()
        .unwrap();
    assert!(anonymous.warm_up().await.is_err());
    let mut svc = service(five_per_hour(anonymous));
    assert_unavailable(&mut svc, "198.51.100.40").await;

    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_RATE_LIMIT_REDIS_URL", server.tls_url()),
            (
                "MCP_RATE_LIMIT_REDIS_CA_FILE",
                pki.path("ca.crt").display().to_string(),
            ),
            (
                "MCP_RATE_LIMIT_REDIS_CLIENT_CERT_FILE",
                pki.path("client.crt").display().to_string(),
            ),
            (
                "MCP_RATE_LIMIT_REDIS_CLIENT_KEY_FILE",
                pki.path("client.key").display().to_string(),
            ),
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "3s".to_owned()),
        ],
    );
    let mutual = RedisStore::from_env(&env).unwrap().unwrap();
    mutual.warm_up().await.expect("mutual TLS");
    let mut svc = service(five_per_hour(mutual));
    let res = send(&mut svc, request_from("198.51.100.41")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "4");
    assert!(server.script_calls() >= 1);
}

#[test]
fn tls_settings_are_checked_when_built_naming_the_setting() {
    let pki = Pki::new();
    let ca = pki.path("ca.crt");
    let err = |b: mcp_ratelimit::redis::RedisStoreBuilder| b.build().unwrap_err();

    let e = err(RedisStore::builder(
        "rediss://:pw@redis.example.com:6380/#insecure",
    ));
    assert_eq!(e.setting(), "redis.url");
    assert!(e.reason().contains("insecure"), "{e}");
    assert!(!e.to_string().contains("pw@"), "{e}");

    let e = err(RedisStore::builder("redis://redis.example.com/").ca_file(&ca));
    assert_eq!(e.setting(), "redis.ca_file");
    assert!(e.reason().contains("rediss://"), "{e}");

    let e = err(RedisStore::builder("rediss://redis.example.com/").ca_file(pki.path("nope.pem")));
    assert_eq!(e.setting(), "redis.ca_file");
    // A key is not a certificate; the error never shows the key's contents.
    let e = err(RedisStore::builder("rediss://redis.example.com/").ca_file(pki.path("ca.key")));
    assert_eq!(e.setting(), "redis.ca_file");
    let key = std::fs::read_to_string(pki.path("client.key")).unwrap();
    let e = err(RedisStore::builder("rediss://redis.example.com/")
        .client_cert_files(pki.path("client.key"), pki.path("client.key")));
    assert_eq!(e.setting(), "redis.client_cert_file");
    let e = err(RedisStore::builder("rediss://redis.example.com/")
        .client_cert_files(pki.path("client.crt"), pki.path("client.crt")));
    assert_eq!(e.setting(), "redis.client_key_file");
    assert!(!e.to_string().contains(&key[30..60]), "{e}");

    let e = err(RedisStore::builder("rediss://redis.example.com/").password(""));
    assert_eq!(e.setting(), "redis.password");
    let e = err(RedisStore::builder("rediss://redis.example.com/").username("a b"));
    assert_eq!(e.setting(), "redis.username");

    // The environment names its variables.
    let env = |pairs: &[(&str, &str)]| {
        RedisStore::from_env(&Env::from_pairs("MCP", pairs.iter().copied())).unwrap_err()
    };
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "rediss://redis.example.com/"),
        (
            "MCP_RATE_LIMIT_REDIS_CLIENT_CERT_FILE",
            "/nonexistent/client.crt",
        ),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_CLIENT_KEY_FILE");
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "rediss://redis.example.com/"),
        ("MCP_RATE_LIMIT_REDIS_CA_FILE", "/nonexistent/ca.crt"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_CA_FILE");
    assert_eq!(e.value(), Some("/nonexistent/ca.crt"));
    let e = env(&[(
        "MCP_RATE_LIMIT_REDIS_URL",
        "rediss://u:secret-pw@redis.example.com/#insecure",
    )]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_URL");
    assert!(!e.to_string().contains("secret-pw"), "{e}");

    // The URL's password alone: masked too.
    let s = RedisStore::builder("rediss://:secret-pw@[::1]:6380/2")
        .build()
        .unwrap();
    assert_eq!(s.display_url(), "rediss://:***@[::1]:6380/2");
    assert!(!format!("{s:?}").contains("secret-pw"));
}
