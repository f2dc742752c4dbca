//! Anchors: a copy of every checkpoint kept outside the log, so that a log rewritten or cut
//! before an anchored checkpoint — even by someone holding the chain key, or together with the
//! head file — is found by [`verify_anchor`](crate::verify::verify_anchor)
//! (`mcp-security audit verify FILE... --anchor ANCHOR`).
//!
//! The file sink hands every `checkpoint`, `rotate` and `close` record, once written and synced,
//! to its [`AnchorSink`]s. Built in: the `tracing` event (target `mcp_security_audit`, message
//! `audit checkpoint`) the sink always emits, and [`FileAnchor`], an append-only JSON-lines
//! file on another path (`AUDIT_ANCHOR_FILE`) — put it on another volume, or ship it (a log
//! shipper tailing it, `aws s3 cp` from a timer) to a store the server cannot rewrite.
//!
//! One line per anchored record:
//!
//! ```text
//! {"seq":41,"kind":"checkpoint","timestamp":"2026-05-01T12:00:00.123Z","mac":"9f2c…","file":"audit.jsonl","key_id":"…"}
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use mcp_security_audit::anchor::FileAnchor;
//! use mcp_security_audit::chain::AuditKey;
//! use mcp_security_audit::file::FileSink;
//! use mcp_security_audit::verify::verify_anchor;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("mcp-audit-anchor-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let key = AuditKey::from_bytes(b"a key of at least thirty-two bytes!")?;
//! let log = dir.join("audit.jsonl");
//! let anchor = dir.join("anchor.jsonl"); // in practice: another volume, shipped elsewhere
//! let sink = FileSink::builder(&log, key)
//!     .anchor(Arc::new(FileAnchor::open(&anchor)?))
//!     .build()?;
//! sink.checkpoint().await?;
//! sink.close().await?;
//! let report = verify_anchor(&[&log], &anchor)?;
//! assert_eq!(report.matched, 2);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use mcp_security_core::config::ConfigError;

use crate::chain::{Mac, RecordKind, hex, rfc3339};

/// A record handed to the anchors: what identifies it in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Anchored {
    /// Its sequence number.
    pub seq: u64,
    /// Its kind (`checkpoint`, `rotate` or `close`).
    pub kind: RecordKind,
    /// When it was written.
    pub timestamp: SystemTime,
    /// Its MAC: the chain head after it.
    pub mac: Mac,
    /// The name of the log file it is in (at the time it was written).
    pub file: String,
    /// The chain key's identifier.
    pub key_id: String,
}

impl Anchored {
    /// The JSON line [`FileAnchor`] writes (without its newline).
    pub fn to_json_line(&self) -> String {
        format!(
            "{{\"seq\":{},\"kind\":\"{}\",\"timestamp\":\"{}\",\"mac\":\"{}\",\"file\":{},\"key_id\":{}}}",
            self.seq,
            self.kind,
            rfc3339(self.timestamp),
            hex(&self.mac),
            serde_json::Value::from(self.file.as_str()),
            serde_json::Value::from(self.key_id.as_str()),
        )
    }
}

/// Where the file sink copies its checkpoints; see the [module docs](self). Called on the
/// writer's thread, after the record is written and synced; an error is logged and counted
/// (`mcp_audit_write_errors_total`), the log goes on.
pub trait AnchorSink: Send + Sync + 'static {
    /// Keep a copy of this record's identity.
    ///
    /// # Errors
    /// When the copy cannot be kept.
    fn anchor(&self, record: &Anchored) -> io::Result<()>;
}

/// An append-only JSON-lines file of anchored checkpoints, synced after every line.
pub struct FileAnchor {
    path: PathBuf,
    file: Mutex<File>,
}

impl fmt::Debug for FileAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileAnchor")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileAnchor {
    /// Open (or create, mode 0600) the anchor file for appending.
    ///
    /// # Errors
    /// `anchor_file` when it cannot be opened.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|e| {
            ConfigError::new("anchor_file", e.to_string()).with_value(path.display().to_string())
        })?;
        Ok(FileAnchor {
            path,
            file: Mutex::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AnchorSink for FileAnchor {
    fn anchor(&self, record: &Anchored) -> io::Result<()> {
        let mut line = record.to_json_line();
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }
}
