//! The Redis rate-limit store's warm-up when the stack is built: connect, authenticate and load
//! the decision script (on every node of a cluster) in the background, so a wrong password, an
//! unreachable Redis or a certificate that does not verify is one `error` line at start-up that
//! names the settings to check and shows the URL with its password masked — not a surprise at
//! the first request.
//!
//! The server starts either way. Refusing to start would take a whole fleet down whenever Redis
//! blips during a deploy, and the failure policy (`RATE_LIMIT_REDIS_FAILURE`) already answers
//! every request sanely meanwhile: `closed` refuses with `503` and `Retry-After: 1`, `open`
//! limits locally. When Redis answers later, decisions are shared again without a restart.

use mcp_ratelimit::redis::{FailurePolicy, StoreUnavailable};

use super::Settings;

impl Settings {
    /// Warm the Redis store up on the current Tokio runtime, if there is a store and a runtime
    /// (without a runtime, a `debug` line: the first request connects instead).
    pub(crate) fn warm_up_redis(&self) {
        let Some(store) = self.rate_limit_redis.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                target: "mcp_security",
                redis = %store.display_url(),
                "no Tokio runtime while building the stack: the Redis rate-limit store connects \
                 at the first request"
            );
            return;
        };
        let hints = Hints::new(self);
        runtime.spawn(async move {
            match store.warm_up().await {
                Ok(()) => tracing::info!(
                    target: "mcp_security",
                    redis = %store.display_url(),
                    "rate-limit store: Redis answered at start-up and the decision script is loaded"
                ),
                Err(e) => {
                    let (setting, check) = hints.for_failure(&e);
                    tracing::error!(
                        target: "mcp_security",
                        redis = %store.display_url(),
                        setting = %setting,
                        failure_policy = store.failure_policy().as_str(),
                        "{e}; check {check}. The server started anyway: until Redis answers, {}",
                        hints.meanwhile(store.failure_policy())
                    );
                }
            }
        });
    }
}

/// The variable names a start-up failure points at, with the configuration's prefix.
struct Hints {
    url: String,
    username: String,
    password: String,
    ca_file: String,
    client_cert: String,
    client_key: String,
    failure: String,
    replicas: String,
}

impl Hints {
    fn new(s: &Settings) -> Self {
        Hints {
            url: s.var("RATE_LIMIT_REDIS_URL"),
            username: s.var("RATE_LIMIT_REDIS_USERNAME"),
            password: s.var("RATE_LIMIT_REDIS_PASSWORD"),
            ca_file: s.var("RATE_LIMIT_REDIS_CA_FILE"),
            client_cert: s.var("RATE_LIMIT_REDIS_CLIENT_CERT_FILE"),
            client_key: s.var("RATE_LIMIT_REDIS_CLIENT_KEY_FILE"),
            failure: s.var("RATE_LIMIT_REDIS_FAILURE"),
            replicas: s.var("RATE_LIMIT_REPLICAS"),
        }
    }

    /// The setting most likely wrong, and what to check, from the failure's words.
    fn for_failure(&self, e: &StoreUnavailable) -> (&str, String) {
        let text = e.to_string();
        if text.contains("refused the credentials") {
            (
                &self.password,
                format!(
                    "{} and {} (or {}_FILE), or the user and password in {}",
                    self.username, self.password, self.password, self.url
                ),
            )
        } else if text.contains("TLS connection failed") {
            (
                &self.ca_file,
                format!(
                    "{} (the CA the server's certificate chains to), {} / {} for mutual TLS, \
                     and that the host in {} is a name the certificate is for",
                    self.ca_file, self.client_cert, self.client_key, self.url
                ),
            )
        } else {
            (
                &self.url,
                format!(
                    "{}: is Redis running and reachable from here, on that host and port \
                     (rediss:// for TLS)?",
                    self.url
                ),
            )
        }
    }

    /// What requests get while Redis does not answer.
    fn meanwhile(&self, policy: FailurePolicy) -> String {
        match policy {
            FailurePolicy::Open => format!(
                "requests are limited in this replica alone, each limit divided by {} ({}=open)",
                self.replicas, self.failure
            ),
            _ => format!(
                "requests the shared limits apply to are refused with 503 and Retry-After: 1 \
                 ({}=closed)",
                self.failure
            ),
        }
    }
}
