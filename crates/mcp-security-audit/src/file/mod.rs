//! [`FileSink`]: a tamper-evident JSON-lines audit file, written off the request path.
//!
//! # Off the request path
//!
//! The request path only puts an `Arc` of the event into a bounded channel. A dedicated writer
//! thread (`mcp-audit-writer`) serializes, MACs and writes the lines, checkpoints and rotates.
//! When the channel is full, the [`OverflowPolicy`] decides:
//!
//! - [`OverflowPolicy::Block`] (the default): nothing is lost; the response waits until the
//!   writer has room (backpressure), so a stuck disk slows the server down instead of silently
//!   dropping its audit trail.
//! - [`OverflowPolicy::Drop`]: the record is dropped and counted ([`FileSink::dropped`], the
//!   `mcp_audit_records_dropped_total` metric, and the `dropped` member of every checkpoint and
//!   of the `close` record, so the gap is itself in the signed trail).
//! - [`OverflowPolicy::Refuse`]: as `drop`, and [`AuditLayer::gate`](crate::AuditLayer::gate)
//!   answers 503 to new requests while the queue is full.
//!
//! The same setting decides what a write error does; see [Disk faults](#disk-faults).
//!
//! # The chain
//!
//! Every line carries a sequence number and an HMAC-SHA256 over the previous line's MAC and its
//! own bytes; see [`crate::chain`] for the format and [`crate::verify`] for the checks. A signed
//! `checkpoint` (sequence, head MAC, time, records since the last one, records dropped) is
//! written every [`checkpoint_interval`](FileSinkBuilder::checkpoint_interval) (default 60 s),
//! also when no request came in, and emitted as a `tracing` event (target `mcp_security_audit`) so the
//! head also lives outside the file.
//!
//! # Batches, flush and fsync
//!
//! The writer takes whatever is queued (up to 1024 events) and writes it with one `write(2)`.
//! Submitting a record does not wake the writer: after a batch, the writer lets the next records
//! gather for the [`batch_delay`](FileSinkBuilder::batch_delay) (default 2 ms) and then takes
//! them all, so a burst of requests costs the writer one wake-up instead of one per record, and
//! the request path no system call. The wait ends early when the queue reaches its high-water
//! mark (half the channel capacity, at most one batch) and for [`flush`](FileSink::flush),
//! [`checkpoint`](FileSink::checkpoint) and [`close`](FileSink::close). When a wait finds the
//! queue empty the writer sleeps until the next record arrives, which it writes at once.
//!
//! **Worst-case delay.** A record sits in memory at most one `batch_delay` plus the time the
//! writer takes for the batch ahead of it before its line reaches the operating system (with a
//! full queue under the `block` policy, also the time the submitter waited for room). A
//! `batch_delay` of zero wakes the writer for every record.
//!
//! With [`SyncPolicy::Checkpoint`] (the default) the file is `fdatasync`ed at every
//! checkpoint, rotation and close, so a power loss loses at most one checkpoint interval; with
//! [`SyncPolicy::EveryBatch`] after every batch as well. A crash of the process loses what was
//! queued but not yet written (about one `batch_delay` of traffic), and leaves at most one torn
//! last line, which the verifier reports and the next start acknowledges (below). Every record
//! accepted before [`close`](FileSink::close), or before the last clone is dropped, is written.
//!
//! # Rotation
//!
//! When the file reaches [`max_file_bytes`](FileSinkBuilder::max_file_bytes) (default 64 MiB),
//! the writer appends a `rotate` record naming the file's new name, syncs, renames it to
//! `<stem>-<first seq, 20 digits><ext>` (`audit.jsonl` → `audit-00000000000000000000.jsonl`)
//! and starts a new file at the configured path whose first line, a `link` record, carries the
//! previous file's name, last sequence number and last MAC: the chain goes on across files, and
//! `ls` order is chain order (`-` sorts before `.`), with the live file last.
//!
//! # Restarts
//!
//! On start the sink reads the tail of the live file (or of the newest rotated file when the live
//! one is missing or empty, as after a crash in the middle of a rotation) and checks the last
//! complete record's MAC with the configured key:
//!
//! | the tail | what the sink does |
//! |---|---|
//! | no file yet | a new chain: a `start` record |
//! | verifies, ends with a newline | appends a `resume` record and continues the chain in the same file |
//! | verifies, but the last line is torn (a crash mid-write) | leaves the file untouched, rotates it away, and opens the new file with a `restart` record that links to the last complete record and names the torn line's byte offset, which the verifier accepts as acknowledged |
//! | the live file is missing or empty, the newest rotated file verifies | opens the live file with a `restart` record linking to it, whose `reason` says the live file was missing (a crash between a rotation's rename and the new file looks the same as a deleted live file; the verifier lists it as a notice) |
//! | does not verify (another key, or tampering) or cannot be read | rotates the file away and starts a new chain: a `start` record whose `reason` says why, numbering on from the last sequence number it could read |
//!
//! # The head file
//!
//! After every batch it writes, and at close, the writer replaces a small *head file* (by
//! default `<log file>.head` next to the log; [`head_file`](FileSinkBuilder::head_file),
//! `AUDIT_HEAD_FILE`) holding the sequence number and MAC of the last record written,
//! authenticated with a key derived from the chain key. On start, before anything else, the
//! sink compares the log's last record with it, and the first record it writes (`resume`,
//! `restart` or `start`) says what it found in its `previous` member:
//!
//! | `previous` | the log | the verifier |
//! |---|---|---|
//! | `clean_close` | ends with the `close` record the head names | passes |
//! | `unclean_stop` | holds the head (or more) but no `close`: a crash, SIGKILL | passes, lists it |
//! | `missing_tail` | ends before the head: `lost_first..=lost_last` were written and are gone | **fails**, naming them |
//! | `head_mismatch` | holds another record at the head's sequence number | **fails** |
//! | `head_missing`, `head_invalid` | no head file, or one that does not verify | passes, lists it |
//!
//! A lost tail is also a `security` record (`detector: "audit_tail_missing"`) right after the
//! opening one, an error log (target `mcp_security_audit`), and
//! `mcp_security_violations_total{reason="audit_tail_missing"}`; every start on an existing
//! log counts in `mcp_audit_resumes_total{previous}`. The head is synced with the log (at
//! checkpoints, or every batch with [`SyncPolicy::EveryBatch`]), so after a power loss the
//! records the disk had not kept are reported as a missing tail: they are lost. The head cannot
//! be forged without the key, but it can be rolled back to an older copy together with the log;
//! only a copy of the head kept elsewhere (the checkpoints' `tracing` events) shows that.
//!
//! # Disk faults
//!
//! When a write fails (a full disk, an I/O error) the writer stops writing, logs an error,
//! counts `mcp_audit_write_errors_total`, and every second tries to reopen the file by the
//! rules above (the opening record then says `previous: "write_error"`). Nothing panics and
//! nothing half-written is continued: the chain goes on from the last record that verifies
//! (records whose lines a short write left whole are written: never again, never counted as
//! dropped). What happens to the records meanwhile is the [`OverflowPolicy`]:
//!
//! | policy | while the file cannot be written | when it can again |
//! |---|---|---|
//! | `block` (default) | the writer keeps the records it took and takes no more: the queue fills and responses wait (backpressure); a [`close`](FileSink::close) stops waiting and counts them as dropped | writes the records it kept, in order: nothing is lost |
//! | `drop` | records are dropped and counted ([`FileSink::dropped`], `mcp_audit_records_dropped_total`) | writes a gap record: `security`, `detector: "audit_records_dropped"`, `count` |
//! | `refuse` | as `drop`, and [`AuditLayer::gate`](crate::AuditLayer::gate) answers 503 (`Retry-After: 1`) to new requests ([`FileSink::accepting`]) | as `drop`; requests are served again |
//!
//! # Environment
//!
//! [`AuditSettings::from_env`](crate::AuditSettings::from_env) reads these when
//! `AUDIT_LOG_FILE` is set (with the prefix, `MCP_` in the facade):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUDIT_OVERFLOW` | `block`, `drop` or `refuse`, for a full queue and for write errors ([Disk faults](#disk-faults)) | `block` |
//! | `AUDIT_CHANNEL_CAPACITY` | events queued for the file writer | `8192` |
//! | `AUDIT_MAX_FILE_BYTES` | rotate at this size (`0`: never) | `67108864` |
//! | `AUDIT_CHECKPOINT_INTERVAL` | checkpoint period | `60s` |
//! | `AUDIT_FSYNC` | `checkpoint` or `batch` | `checkpoint` |
//! | `AUDIT_BATCH_DELAY` | how long the file writer lets records gather before writing them (at most `1s`; `0`: wake it per record) | `2ms` |
//! | `AUDIT_HEAD_FILE` | the [head file](#the-head-file) | `<log file>.head` |
//! | `AUDIT_ANCHOR_FILE` | an append-only file (another volume) that gets a copy of every checkpoint ([`crate::anchor`]) | — |
//! | `AUDIT_SIGNING_KEY_FILE` | an Ed25519 private key (PKCS#8 PEM) that signs checkpoints, rotations and closes ([`crate::signing`]) | — (unsigned) |

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mcp_security_core::clock::{Clock, SystemClock};
use mcp_security_core::config::ConfigError;
use tokio::sync::{mpsc, oneshot};

use crate::chain::{AuditKey, GENESIS};
use crate::metrics as m;
use crate::record::AuditEvent;
use crate::sink::{AuditSink, Submit};

mod fault;
mod head;
mod recover;
mod writer;

use writer::Writer;

/// The default channel capacity, in events.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 8192;
/// The default size at which a file is rotated: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The default checkpoint interval: 60 s.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// The default time the writer lets records gather after a batch: 2 ms.
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(2);

/// The most events written per batch.
const MAX_BATCH: usize = 1024;
/// How often the writer wakes without events, to checkpoint on time and retry after errors.
const TICK: Duration = Duration::from_secs(1);

/// What the file sink does when its channel is full; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Wait for room: nothing is lost, responses are held (the default).
    #[default]
    Block,
    /// Drop the record and count it.
    Drop,
    /// Drop the record and count it, and refuse new requests (503, through
    /// [`AuditLayer::gate`](crate::AuditLayer::gate)) while the queue is full or the file
    /// cannot be written.
    Refuse,
}

impl OverflowPolicy {
    /// `block`, `drop` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::Block => "block",
            OverflowPolicy::Drop => "drop",
            OverflowPolicy::Refuse => "refuse",
        }
    }

    /// Parse `block`, `drop` or `refuse` (any case), naming `setting` in the error.
    ///
    /// # Errors
    /// Any other value.
    pub fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "block" => Ok(OverflowPolicy::Block),
            "drop" => Ok(OverflowPolicy::Drop),
            "refuse" => Ok(OverflowPolicy::Refuse),
            _ => Err(ConfigError::new(setting, "expected block, drop or refuse").with_value(value)),
        }
    }
}

/// When the file sink calls `fdatasync`; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// At every checkpoint, rotation and close (the default).
    #[default]
    Checkpoint,
    /// After every batch too.
    EveryBatch,
}

impl SyncPolicy {
    /// Parse `checkpoint` or `batch` (any case), naming `setting` in the error.
    ///
    /// # Errors
    /// Any other value.
    pub fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "checkpoint" => Ok(SyncPolicy::Checkpoint),
            "batch" | "every_batch" => Ok(SyncPolicy::EveryBatch),
            _ => Err(ConfigError::new(setting, "expected checkpoint or batch").with_value(value)),
        }
    }
}

pub(crate) enum Msg {
    Event(Arc<AuditEvent>),
    Flush(oneshot::Sender<io::Result<()>>),
    Checkpoint(oneshot::Sender<io::Result<()>>),
    Close(oneshot::Sender<io::Result<()>>),
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    policy: OverflowPolicy,
    dropped: AtomicU64,
    written: AtomicU64,
    key_id: String,
    /// The chain key, for the layer's tool-call digests.
    key: AuditKey,
    /// Signalled by the writer after it took a batch off the channel: blocked submitters retry
    /// then, once per batch rather than once per freed slot.
    room: tokio::sync::Notify,
    /// Ends the writer's batch delay early: the queue reached `high_water`, a submitter found
    /// it full, or a flush, checkpoint or close was asked for.
    wake: tokio::sync::Notify,
    /// Queued events from which a submission wakes the writer.
    high_water: usize,
    /// Batches the writer took off the channel (a wake-up each).
    batches: AtomicU64,
    /// The writer cannot write the file (set at a write error, cleared when it reopens it).
    failing: AtomicBool,
    /// A close was asked for: a writer holding back under the `block` policy after a write
    /// error stops waiting for the disk.
    closing: AtomicBool,
    /// Tests: make every write fail while set.
    #[cfg(test)]
    fail_writes: AtomicBool,
    /// Tests: after this many writes, the next one takes this many bytes of its batch, then
    /// fails.
    #[cfg(test)]
    short_write: std::sync::Mutex<Option<(usize, usize)>>,
    /// Tests: the writer takes nothing off the channel while set.
    #[cfg(test)]
    paused: AtomicBool,
    /// Tests: the writer saw `paused` (it takes nothing until it is cleared).
    #[cfg(test)]
    pause_seen: AtomicBool,
}

impl Shared {
    fn new(path: PathBuf, policy: OverflowPolicy, key: AuditKey, capacity: usize) -> Self {
        Shared {
            path,
            policy,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            key_id: key.id(),
            key,
            room: tokio::sync::Notify::new(),
            wake: tokio::sync::Notify::new(),
            high_water: (capacity / 2).clamp(1, MAX_BATCH),
            batches: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            #[cfg(test)]
            fail_writes: AtomicBool::new(false),
            #[cfg(test)]
            short_write: std::sync::Mutex::new(None),
            #[cfg(test)]
            paused: AtomicBool::new(false),
            #[cfg(test)]
            pause_seen: AtomicBool::new(false),
        }
    }

    /// Tests: at a write, the bytes it may take when it is the short write asked for.
    #[cfg(test)]
    fn take_short_write(&self) -> Option<usize> {
        let mut asked = self.short_write.lock().ok()?;
        match *asked {
            Some((0, bytes)) => {
                *asked = None;
                Some(bytes)
            }
            Some((after, bytes)) => {
                *asked = Some((after - 1, bytes));
                None
            }
            None => None,
        }
    }

    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        m::record_dropped();
    }
}

/// The tamper-evident JSON-lines sink; see the [module docs](self). Cloning is cheap; clones
/// feed the same writer, which writes a `close` record and stops when [`close`](Self::close) is
/// called or the last clone is dropped.
///
/// ```
/// use mcp_security_audit::chain::AuditKey;
/// use mcp_security_audit::file::FileSink;
/// use mcp_security_audit::verify::{verify_files, VerifyOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("mcp-audit-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let key = AuditKey::from_bytes(b"a key of at least thirty-two bytes!")?;
/// let path = dir.join("audit.jsonl");
/// let sink = FileSink::builder(&path, key.clone()).build()?;
/// sink.checkpoint().await?;
/// sink.close().await?;
/// let report = verify_files(&[&path], &key, &VerifyOptions::default())?;
/// assert!(report.closed);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileSink {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl FileSink {
    /// A builder for a sink writing to `path` with `key`.
    pub fn builder(path: impl Into<PathBuf>, key: AuditKey) -> FileSinkBuilder {
        FileSinkBuilder {
            path: path.into(),
            key,
            capacity: DEFAULT_CHANNEL_CAPACITY,
            overflow: OverflowPolicy::Block,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            batch_delay: DEFAULT_BATCH_DELAY,
            sync: SyncPolicy::Checkpoint,
            clock: Arc::new(SystemClock),
            head_file: None,
            signing_key: None,
            anchors: Vec::new(),
        }
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The overflow policy.
    pub fn overflow_policy(&self) -> OverflowPolicy {
        self.shared.policy
    }

    /// Records dropped so far: by the `drop` policy, after [`close`](Self::close), or while the
    /// file could not be written.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Request and security records written so far (by this process).
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// The identifier of the chain key (see [`AuditKey::id`]).
    pub fn key_id(&self) -> &str {
        &self.shared.key_id
    }

    /// The chain key (the audit layer keys its tool-call digests with it).
    pub(crate) fn key(&self) -> &AuditKey {
        &self.shared.key
    }

    async fn request(&self, make: fn(oneshot::Sender<io::Result<()>>) -> Msg) -> io::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| io::Error::other("the audit writer has stopped"))?;
        // The writer may be letting records gather: the request ends its wait.
        self.shared.wake.notify_one();
        answer
            .await
            .map_err(|_| io::Error::other("the audit writer has stopped"))?
    }

    /// Wait until every event submitted before this call is written (and checkpoint if one is
    /// due by the sink's clock).
    ///
    /// # Errors
    /// When the writer cannot write the file or has stopped.
    pub async fn flush(&self) -> io::Result<()> {
        self.request(Msg::Flush).await
    }

    /// Write everything queued, then a checkpoint now, and sync.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn checkpoint(&self) -> io::Result<()> {
        self.request(Msg::Checkpoint).await
    }

    /// Write everything queued and a `close` record, sync, and stop the writer. Later events are
    /// dropped (and counted). Call it on shutdown, after the server has stopped serving.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn close(&self) -> io::Result<()> {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        self.request(Msg::Close).await
    }

    /// Whether the file cannot be written at the moment (a write error the writer has not
    /// recovered from yet; see [Disk faults](self#disk-faults)).
    pub fn is_failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    /// Whether the sink takes new requests: always, unless the policy is
    /// [`OverflowPolicy::Refuse`] and the queue is full or the file cannot be written.
    pub fn accepting(&self) -> bool {
        self.shared.policy != OverflowPolicy::Refuse
            || !(self.is_failing() || self.tx.capacity() == 0)
    }

    /// Tests: make every write of the file fail (`true`) or work again (`false`).
    #[cfg(test)]
    pub(crate) fn inject_write_errors(&self, fail: bool) {
        self.shared.fail_writes.store(fail, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Tests: after `after` more writes of the file, the next one stops after `bytes` bytes of
    /// its batch and fails, as at a full disk (the kernel takes part of a write, then refuses
    /// the rest).
    #[cfg(test)]
    pub(crate) fn inject_short_write(&self, after: usize, bytes: usize) {
        if let Ok(mut n) = self.shared.short_write.lock() {
            *n = Some((after, bytes));
        }
    }

    /// Tests: the writer takes nothing off the channel (`true`; in effect once
    /// [`writer_paused`](Self::writer_paused)), so what is submitted meanwhile is taken in one
    /// batch after `false`.
    #[cfg(test)]
    pub(crate) fn pause_writer(&self, paused: bool) {
        self.shared.pause_seen.store(false, Ordering::Relaxed);
        self.shared.paused.store(paused, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Tests: the writer saw the pause and takes nothing.
    #[cfg(test)]
    pub(crate) fn writer_paused(&self) -> bool {
        self.shared.pause_seen.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
impl FileSink {
    /// A sink whose writer never runs: submissions fill the channel and then overflow.
    pub(crate) fn detached(
        capacity: usize,
        policy: OverflowPolicy,
    ) -> (FileSink, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Shared::new(
            PathBuf::from("detached"),
            policy,
            crate::test_support::key(),
            capacity,
        ));
        (FileSink { tx, shared }, rx)
    }
}

impl AuditSink for FileSink {
    fn accepting(&self) -> bool {
        FileSink::accepting(self)
    }

    fn submit(&self, event: &Arc<AuditEvent>) -> Submit {
        match self.tx.try_send(Msg::Event(Arc::clone(event))) {
            Ok(()) => {
                // Below the high-water mark the writer picks the record up after its batch
                // delay; no wake-up (no system call) on the request path.
                let queued = self.tx.max_capacity() - self.tx.capacity();
                if queued >= self.shared.high_water {
                    self.shared.wake.notify_one();
                }
                Submit::Done
            }
            Err(mpsc::error::TrySendError::Full(msg)) => match self.shared.policy {
                OverflowPolicy::Block => {
                    self.shared.wake.notify_one();
                    let tx = self.tx.clone();
                    let shared = Arc::clone(&self.shared);
                    Submit::Wait(Box::pin(async move {
                        let mut msg = msg;
                        loop {
                            let room = shared.room.notified();
                            let mut room = std::pin::pin!(room);
                            // Registered before the retry, so a batch taken in between wakes it.
                            room.as_mut().enable();
                            match tx.try_send(msg) {
                                Ok(()) => return,
                                Err(mpsc::error::TrySendError::Full(m)) => msg = m,
                                Err(mpsc::error::TrySendError::Closed(_)) => {
                                    shared.count_drop();
                                    return;
                                }
                            }
                            room.await;
                        }
                    }))
                }
                OverflowPolicy::Drop | OverflowPolicy::Refuse => {
                    self.shared.wake.notify_one();
                    self.shared.count_drop();
                    Submit::Done
                }
            },
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.count_drop();
                Submit::Done
            }
        }
    }
}

/// Builds a [`FileSink`]; see [`FileSink::builder`].
#[must_use]
pub struct FileSinkBuilder {
    path: PathBuf,
    key: AuditKey,
    capacity: usize,
    overflow: OverflowPolicy,
    max_file_bytes: u64,
    checkpoint_interval: Duration,
    batch_delay: Duration,
    sync: SyncPolicy,
    clock: Arc<dyn Clock>,
    head_file: Option<PathBuf>,
    signing_key: Option<crate::signing::SigningKey>,
    anchors: Vec<Arc<dyn crate::anchor::AnchorSink>>,
}

impl std::fmt::Debug for FileSinkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSinkBuilder")
            .field("path", &self.path)
            .field("key", &self.key)
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("batch_delay", &self.batch_delay)
            .field("sync", &self.sync)
            .field("head_file", &self.head_file)
            .field("signing_key", &self.signing_key)
            .field("anchors", &self.anchors.len())
            .finish_non_exhaustive()
    }
}

impl FileSinkBuilder {
    /// Events queued between the request path and the writer (default 8192).
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// What happens when the queue is full (default [`OverflowPolicy::Block`]).
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Rotate the file when it reaches this size (default 64 MiB; 0 never rotates).
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// How often a checkpoint is written, also when idle (default 60 s; at least 1 s).
    pub fn checkpoint_interval(mut self, every: Duration) -> Self {
        self.checkpoint_interval = every;
        self
    }

    /// How long the writer lets records gather after a batch before it takes the next one
    /// (default 2 ms; at most 1 s). This bounds how long a record sits in memory; see the
    /// [module docs](self#batches-flush-and-fsync). Zero wakes the writer for every record.
    pub fn batch_delay(mut self, delay: Duration) -> Self {
        self.batch_delay = delay;
        self
    }

    /// When to `fdatasync` (default [`SyncPolicy::Checkpoint`]).
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Where the head file is kept (default `<log file>.head` next to the log); see the
    /// [module docs](self#restarts). Put it where the log's writers cannot reach it to make a
    /// cut tail harder to hide.
    pub fn head_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.head_file = Some(path.into());
        self
    }

    /// Sign every checkpoint, rotation and close with this Ed25519 key, so that anyone holding
    /// its public key can verify the trail without the chain key; see [`crate::signing`].
    pub fn signing_key(mut self, key: crate::signing::SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// Also hand every checkpoint, rotate and close record, once written and synced, to this
    /// anchor (see [`crate::anchor`]); may be called more than once.
    pub fn anchor(mut self, anchor: Arc<dyn crate::anchor::AnchorSink>) -> Self {
        self.anchors.push(anchor);
        self
    }

    /// The clock for timestamps and the checkpoint schedule (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validate, open (or continue) the file, and start the writer thread. This does blocking
    /// file I/O: call it at start-up.
    ///
    /// # Errors
    /// `channel_capacity` when 0, `max_file_bytes` when below 4 KiB (and not 0),
    /// `checkpoint_interval` when below 1 s, `batch_delay` when above 1 s, `log_file` when the
    /// file cannot be opened, read or written, or the writer thread cannot start, `head_file`
    /// when the head file cannot be written.
    pub fn build(self) -> Result<FileSink, ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::new("channel_capacity", "must be at least 1").with_value("0"));
        }
        if self.max_file_bytes != 0 && self.max_file_bytes < 4096 {
            return Err(ConfigError::new(
                "max_file_bytes",
                "must be at least 4096 (or 0 to never rotate)",
            )
            .with_value(self.max_file_bytes.to_string()));
        }
        if self.checkpoint_interval < Duration::from_secs(1) {
            return Err(
                ConfigError::new("checkpoint_interval", "must be at least 1 s")
                    .with_value(format!("{:?}", self.checkpoint_interval)),
            );
        }
        if self.batch_delay > TICK {
            return Err(ConfigError::new("batch_delay", "must be at most 1 s")
                .with_value(format!("{:?}", self.batch_delay)));
        }
        let shown = self.path.display().to_string();
        let log_err =
            |e: io::Error| ConfigError::new("log_file", e.to_string()).with_value(shown.clone());
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                ConfigError::new("log_file", "must name a file (UTF-8)").with_value(&shown)
            })?
            .to_owned();
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(log_err)?;
        let (stem, ext) = split_name(&name);
        let shared = Arc::new(Shared::new(
            self.path.clone(),
            self.overflow,
            self.key.clone(),
            self.capacity,
        ));
        let now = self.clock.now();
        let head_path = self
            .head_file
            .unwrap_or_else(|| head::default_path(&self.path));
        let mut writer = Writer {
            key: self.key,
            dir,
            path: self.path,
            stem,
            ext,
            file: None,
            size: 0,
            file_first_seq: 0,
            next_seq: 0,
            head: GENESIS,
            batch: Vec::with_capacity(64 * 1024),
            last_checkpoint: now,
            since_checkpoint: 0,
            interval: self.checkpoint_interval,
            batch_delay: self.batch_delay,
            max_file_bytes: self.max_file_bytes,
            sync: self.sync,
            clock: self.clock,
            shared: Arc::clone(&shared),
            failed: false,
            last_retry: None,
            head_path,
            previous: None,
            head_failing: false,
            signer: self.signing_key,
            seg_from: 0,
            seg_hash: sha2::Sha256::default(),
            unwritten: Vec::new(),
            anchors: self.anchors,
            dropped_at_failure: None,
            recovering: false,
        };
        writer.open().map_err(log_err)?;
        if writer.head_failing {
            return Err(ConfigError::new(
                "head_file",
                "cannot write the head file (is its directory there and writable?)",
            )
            .with_value(writer.head_path.display().to_string()));
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(log_err)?;
        std::thread::Builder::new()
            .name("mcp-audit-writer".into())
            .spawn(move || runtime.block_on(writer.run(rx)))
            .map_err(log_err)?;
        Ok(FileSink { tx, shared })
    }
}

/// `audit.jsonl` → (`audit`, `.jsonl`); `audit` → (`audit`, ``).
fn split_name(name: &str) -> (String, String) {
    match name.rfind('.') {
        Some(i) if i > 0 => (
            name.get(..i).unwrap_or(name).to_owned(),
            name.get(i..).unwrap_or("").to_owned(),
        ),
        _ => (name.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod resume_tests;

#[cfg(test)]
mod fault_tests;
