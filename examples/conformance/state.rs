//! State: what every session shares, and the per-session server value.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
};

use rmcp::{
    RoleServer,
    model::{
        LoggingLevel, LoggingMessageNotificationParam, RequestStateCodec, ServerNotification, Tool,
    },
    service::{RequestContext, SubscriptionSink},
    task_manager::TaskManager,
};
use serde_json::json;

use crate::tools::tools;
/// State shared by every session of the process.
pub(crate) struct Shared {
    /// What `tools/list` shows (and rmcp validates calls against), built once.
    pub(crate) tools: Vec<Tool>,
    /// Resource URIs with a live `resources/subscribe`.
    pub(crate) subscriptions: Mutex<HashSet<String>>,
    /// Tasks (SEP-2663) outlive the request that created them: one manager per process.
    pub(crate) tasks: TaskManager,
    /// Seals the `requestState` of multi-round (SEP-2322) calls; the client echoes it back and
    /// must not be able to forge it.
    pub(crate) request_state: RequestStateCodec,
    /// Open `subscriptions/listen` streams, by a local number.
    pub(crate) listeners: Mutex<HashMap<u64, SubscriptionSink>>,
    /// The next listener number.
    pub(crate) next_listener: AtomicU64,
}

/// At most this many `subscriptions/listen` streams are tracked (a fixture, but bounded).
pub(crate) const MAX_LISTENERS: usize = 1024;

impl Shared {
    /// Sends `notification` to every listen stream that accepted it (the others refuse it).
    pub(crate) async fn broadcast(&self, notification: ServerNotification) -> usize {
        let sinks: Vec<SubscriptionSink> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut delivered = 0;
        for sink in sinks {
            if sink.send(notification.clone()).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }
}

impl Shared {
    /// Tools, an empty task manager, and a request-state key made for this process.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let key = mcp_security::auth::api_key::generate_key("rs")?;
        Ok(Self {
            tools: tools(),
            subscriptions: Mutex::default(),
            tasks: TaskManager::new(),
            request_state: RequestStateCodec::try_new(key.into_bytes())
                .map_err(|e| anyhow::anyhow!("request-state key: {e}"))?,
            listeners: Mutex::default(),
            next_listener: AtomicU64::new(0),
        })
    }
}

/// The conformance server: one value per session, sharing [`Shared`].
#[derive(Clone)]
pub(crate) struct ConformanceServer {
    pub(crate) shared: Arc<Shared>,
    /// The lowest level `logging/setLevel` asked for in this session (`None`: everything).
    pub(crate) log_level: Arc<Mutex<Option<LoggingLevel>>>,
}

impl ConformanceServer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            log_level: Arc::default(),
        }
    }

    /// Sends `message` as a log notification unless the session's level filters it out.
    pub(crate) async fn log(
        &self,
        cx: &RequestContext<RoleServer>,
        level: LoggingLevel,
        message: &str,
    ) {
        let threshold = *self
            .log_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if threshold.is_some_and(|min| severity(level) < severity(min)) {
            return;
        }
        let sent = cx
            .peer
            .notify_logging_message(
                LoggingMessageNotificationParam::new(level, json!(message))
                    .with_logger("conformance-server"),
            )
            .await;
        if let Err(e) = sent {
            tracing::debug!("log notification not sent: {e}");
        }
    }
}

/// A log level's rank: higher is more severe.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}
