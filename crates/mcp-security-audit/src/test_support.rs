//! Helpers shared by the tests of this crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode, Uri, Version};

use crate::chain::AuditKey;
use crate::mask::Masker;
use crate::record::{AuditEvent, AuditRecord, Completion, McpInfo, RequestId};
use crate::sink::{AuditSink, Submit};

pub(crate) const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-test-key";

pub(crate) fn key() -> AuditKey {
    AuditKey::from_bytes(KEY).expect("key")
}

pub(crate) fn other_key() -> AuditKey {
    AuditKey::from_bytes(b"another key that is long enough for the chain").expect("key")
}

/// 2026-01-01T00:00:00Z.
pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-audit-test-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The files in the directory but the sink's head file, sorted by name.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_none_or(|e| e != "head"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plausible request record.
pub(crate) fn record(i: u64) -> Arc<AuditEvent> {
    Arc::new(AuditEvent::Request(AuditRecord {
        time: t0() + Duration::from_millis(i),
        request_id: RequestId::Generated {
            prefix: 7,
            counter: i,
        },
        method: Method::POST,
        uri: Uri::from_static("/mcp?page=2"),
        version: Version::HTTP_11,
        client: None,
        user_agent: None,
        request_bytes: Some(120),
        mcp: McpInfo::None,
        auth_type: None,
        fingerprint: None,
        status: Some(StatusCode::OK),
        duration: Duration::from_micros(250),
        response_bytes: Some(64),
        principal: None,
        auth: None,
        rate_limit: None,
        budget: None,
        rejection: None,
        completion: Completion::Responded,
        masker: Masker::default(),
    }))
}

/// Submit and wait out backpressure.
pub(crate) async fn submit(sink: &impl AuditSink, event: &Arc<AuditEvent>) {
    if let Submit::Wait(w) = sink.submit(event) {
        w.await;
    }
}

/// The lines of a file, without newlines.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `kind` of each line.
pub(crate) fn kinds(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["kind"].as_str().expect("kind").to_owned()
        })
        .collect()
}
