//! The connection of a [`RedisStore`](super::RedisStore): one server (a
//! [`ConnectionManager`]), a Redis Cluster (the `redis` crate's cluster client, which follows
//! `MOVED`/`ASK` and slot changes), or the primary a Sentinel names (looked up again after a
//! failure, so a promoted replica is followed).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::SentinelClient;
use ::redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

use super::connect::{load_script, reason, refused_credentials};

/// Where a store's Redis is.
pub(super) enum Target {
    /// One server (or a primary behind a proxy).
    Single(Client),
    /// A Redis Cluster, from its seed nodes.
    Cluster(ClusterClient),
    /// The primary the sentinels name for a master name; the lock serialises lookups.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Target {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Target::Single(_) => "single",
            Target::Cluster(_) => "cluster",
            Target::Sentinel(_) => "sentinel",
        }
    }
}

/// A connection to one server or to a whole cluster; cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The connection of a store: created on first use; a [`ConnectionManager`] reconnects by itself
/// after I/O errors (a restart), a cluster connection follows redirections and reconnects by
/// itself. Replaced here when that is not enough: Redis refused the credentials (fixed on the
/// server since; at most once per [`REPLACE_AFTER`]), or, with Sentinel, any failure (the primary
/// may have moved: the next request asks the sentinels again; at most once per
/// [`RELOOKUP_AFTER`]).
pub(super) struct Link {
    target: Target,
    state: Mutex<LinkState>,
}

struct LinkState {
    conn: Option<Conn>,
    /// When the current connection was made.
    made: Option<Instant>,
    /// Whether the first contact was logged (only the first connection's is).
    logged: bool,
}

/// The shortest life of a connection before refused credentials replace it.
const REPLACE_AFTER: Duration = Duration::from_secs(1);
/// The shortest life of a Sentinel-found primary's connection before a failure looks the primary
/// up again.
const RELOOKUP_AFTER: Duration = Duration::from_millis(200);
/// The shortest life of a cluster connection before connection failures replace it (a fresh one
/// reads the topology from the seed nodes again).
const RECLUSTER_AFTER: Duration = Duration::from_secs(1);

/// Time limits of the connections a store makes.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) connect: Duration,
    pub(super) response: Duration,
}

impl Link {
    pub(super) fn new(target: Target) -> Self {
        Link {
            target,
            state: Mutex::new(LinkState {
                conn: None,
                made: None,
                logged: false,
            }),
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        self.target.kind()
    }

    fn current(&self) -> Option<Conn> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conn
            .clone()
    }

    /// The connection, made when there is none. One server and a cluster connect lazily
    /// (nothing is sent here); with Sentinel the sentinels are asked for the primary first.
    pub(super) async fn conn(
        &self,
        timeouts: Timeouts,
        script: &::redis::Script,
        url: &str,
    ) -> Result<Conn, RedisError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let manager_config = || {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeouts.connect))
                .set_response_timeout(Some(timeouts.response))
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(500))
                .set_number_of_retries(3)
        };
        let conn = match &self.target {
            Target::Single(client) => Conn::Single(ConnectionManager::new_lazy_with_config(
                client.clone(),
                manager_config(),
            )?),
            Target::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeouts.connect)
                    .set_response_timeout(timeouts.response);
                Conn::Cluster(client.get_pending_async_connection_with_config(config))
            }
            Target::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                // Another request may have looked it up while this one waited.
                if let Some(conn) = self.current() {
                    return Ok(conn);
                }
                let primary = sentinel.async_get_client().await?;
                tracing::debug!(redis = %url, primary = %primary.get_connection_info().addr(), "rate-limit store: Sentinel named the primary");
                Conn::Single(ConnectionManager::new_lazy_with_config(
                    primary,
                    manager_config(),
                )?)
            }
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = &state.conn {
            return Ok(conn.clone());
        }
        if !state.logged {
            state.logged = true;
            spawn_first_contact_log(conn.clone(), script.clone(), url.to_owned());
        }
        state.conn = Some(conn.clone());
        state.made = Some(Instant::now());
        Ok(conn)
    }

    /// After a failed call (`None`: the budget ran out): forget the connection when it may
    /// not recover by itself, so a later request connects afresh. Whether it was forgotten.
    pub(super) fn after_failure(&self, e: Option<&RedisError>) -> bool {
        let replace_after = match (&self.target, e) {
            (_, Some(e)) if refused_credentials(e) => REPLACE_AFTER,
            (Target::Sentinel(_), _) => RELOOKUP_AFTER,
            (Target::Cluster(_), Some(e)) if connection_lost(e) => RECLUSTER_AFTER,
            _ => return false,
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.made.is_some_and(|t| t.elapsed() >= replace_after) {
            state.conn = None;
            state.made = None;
            return true;
        }
        false
    }

    /// Whether a new connection asks the sentinels for the primary again.
    pub(super) fn relooks(&self) -> bool {
        matches!(self.target, Target::Sentinel(_))
    }
}

fn connection_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(::redis::ServerErrorKind::ClusterDown)
        )
}

/// The time the first contact gets before it is logged as failed.
const FIRST_CONTACT: Duration = Duration::from_secs(5);

/// Log, once per store, whether Redis answers: `info` when it does, `error` with the reason in
/// words when it does not (refused credentials, a certificate that does not verify), so a
/// misconfiguration is one clear line even when every decision only sees its short budget run
/// out. Runs in the background when a Tokio runtime is current, else not at all.
fn spawn_first_contact_log(conn: Conn, script: ::redis::Script, url: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        match load_script(conn, &script, FIRST_CONTACT).await {
            Ok(()) => tracing::info!(redis = %url, "rate-limit store: connected to Redis"),
            Err(e) => tracing::error!(
                redis = %url,
                reason = %reason(e.as_ref(), FIRST_CONTACT),
                "rate-limit store: cannot use Redis; the failure policy applies until it answers"
            ),
        }
    });
}
