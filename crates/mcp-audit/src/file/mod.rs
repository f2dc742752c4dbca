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
//!
//! # The chain
//!
//! Every line carries a sequence number and an HMAC-SHA256 over the previous line's MAC and its
//! own bytes; see [`crate::chain`] for the format and [`crate::verify`] for the checks. A signed
//! `checkpoint` (sequence, head MAC, time, records since the last one, records dropped) is
//! written every [`checkpoint_interval`](FileSinkBuilder::checkpoint_interval) (default 60 s),
//! also when no request came in, and emitted as a `tracing` event (target `mcp_audit`) so the
//! head also lives outside the file.
//!
//! # Flush and fsync
//!
//! The writer takes whatever is queued (up to 1024 events), writes it with one `write(2)`, and
//! then goes back to waiting: a line reaches the operating system within one batch of being
//! queued. With [`SyncPolicy::Checkpoint`] (the default) the file is `fdatasync`ed at every
//! checkpoint, rotation and close, so a power loss loses at most one checkpoint interval; with
//! [`SyncPolicy::EveryBatch`] after every batch as well. A crash of the process loses what was
//! queued but not yet written, and leaves at most one torn last line, which the verifier reports
//! and the next start acknowledges (below).
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
//! A write error (disk full) is handled the same way: the writer stops writing, counts the
//! records it cannot write as dropped, and every second tries to reopen by the rules above.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use mcp_core::clock::{Clock, SystemClock};
use mcp_core::config::ConfigError;
use tokio::sync::{mpsc, oneshot};

use crate::chain::{
    AuditKey, FORMAT_VERSION, GENESIS, MAX_LINE_BYTES, Mac, RecordKind, hex, parse_line, seal_line,
};
use crate::metrics as m;
use crate::record::{AuditEvent, JsonObject};
use crate::sink::{AuditSink, Submit, TRACING_TARGET};

/// The default channel capacity, in events.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 8192;
/// The default size at which a file is rotated: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The default checkpoint interval: 60 s.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// The most events written per batch.
const MAX_BATCH: usize = 1024;
/// How often the writer wakes without events, to checkpoint on time and retry after errors.
const TICK: Duration = Duration::from_secs(1);

/// What the file sink does when its channel is full; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OverflowPolicy {
    /// Wait for room: nothing is lost, responses are held (the default).
    #[default]
    Block,
    /// Drop the record and count it.
    Drop,
}

impl OverflowPolicy {
    /// `block` or `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::Block => "block",
            OverflowPolicy::Drop => "drop",
        }
    }

    /// Parse `block` or `drop` (any case), naming `setting` in the error.
    ///
    /// # Errors
    /// Any other value.
    pub fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "block" => Ok(OverflowPolicy::Block),
            "drop" => Ok(OverflowPolicy::Drop),
            _ => Err(ConfigError::new(setting, "expected block or drop").with_value(value)),
        }
    }
}

/// When the file sink calls `fdatasync`; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
    /// Signalled by the writer after it took a batch off the channel: blocked submitters retry
    /// then, once per batch rather than once per freed slot.
    room: tokio::sync::Notify,
}

impl Shared {
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
/// use mcp_audit::chain::AuditKey;
/// use mcp_audit::file::FileSink;
/// use mcp_audit::verify::{verify_files, VerifyOptions};
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
            sync: SyncPolicy::Checkpoint,
            clock: Arc::new(SystemClock),
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

    async fn request(&self, make: fn(oneshot::Sender<io::Result<()>>) -> Msg) -> io::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| io::Error::other("the audit writer has stopped"))?;
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
        self.request(Msg::Close).await
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
        let shared = Arc::new(Shared {
            path: PathBuf::from("detached"),
            policy,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            key_id: String::new(),
            room: tokio::sync::Notify::new(),
        });
        (FileSink { tx, shared }, rx)
    }
}

impl AuditSink for FileSink {
    fn submit(&self, event: &Arc<AuditEvent>) -> Submit {
        match self.tx.try_send(Msg::Event(Arc::clone(event))) {
            Ok(()) => Submit::Done,
            Err(mpsc::error::TrySendError::Full(msg)) => match self.shared.policy {
                OverflowPolicy::Block => {
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
                OverflowPolicy::Drop => {
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
    sync: SyncPolicy,
    clock: Arc<dyn Clock>,
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
            .field("sync", &self.sync)
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

    /// When to `fdatasync` (default [`SyncPolicy::Checkpoint`]).
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
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
    /// `checkpoint_interval` when below 1 s, `log_file` when the file cannot be opened, read or
    /// written, or the writer thread cannot start.
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
        let shared = Arc::new(Shared {
            path: self.path.clone(),
            policy: self.overflow,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            key_id: self.key.id(),
            room: tokio::sync::Notify::new(),
        });
        let now = self.clock.now();
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
            max_file_bytes: self.max_file_bytes,
            sync: self.sync,
            clock: self.clock,
            shared: Arc::clone(&shared),
            failed: false,
            last_retry: None,
        };
        writer.open().map_err(log_err)?;
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

/// What the end of an existing file says.
#[derive(Debug)]
enum Tail {
    /// The last complete record verifies.
    Good {
        seq: u64,
        mac: Mac,
        first_seq: Option<u64>,
        torn_offset: Option<u64>,
    },
    /// It does not, or cannot be read.
    Unverifiable {
        last_seq: Option<u64>,
        first_seq: Option<u64>,
        torn_offset: Option<u64>,
        reason: &'static str,
    },
}

/// Read the first line's sequence number and the last complete records of a non-empty file.
fn read_tail(path: &Path, key: &AuditKey) -> io::Result<Tail> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // First line.
    let mut head = Vec::new();
    (&mut file)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_to_end(&mut head)?;
    let first_seq = head
        .split(|b| *b == b'\n')
        .next()
        .filter(|_| head.contains(&b'\n'))
        .and_then(|l| parse_line(l).ok())
        .map(|l| l.seq);
    // Last lines.
    let window = (2 * MAX_LINE_BYTES as u64 + 2).min(len);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
    file.read_to_end(&mut tail)?;
    let base = len - window;
    let complete_end = tail.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
    let torn_offset = match complete_end {
        Some(end) if end == tail.len() => None,
        Some(end) => Some(base + end as u64),
        None if base == 0 => Some(0),
        None => Some(base),
    };
    let complete = complete_end.and_then(|end| tail.get(..end)).unwrap_or(&[]);
    let mut lines = complete
        .strip_suffix(b"\n")
        .unwrap_or(complete)
        .rsplit(|b| *b == b'\n');
    let last = lines.next().filter(|l| !l.is_empty());
    let Some(last) = last else {
        return Ok(Tail::Unverifiable {
            last_seq: None,
            first_seq,
            torn_offset,
            reason: "no complete record at the end of the file",
        });
    };
    let Ok(parsed) = parse_line(last) else {
        return Ok(Tail::Unverifiable {
            last_seq: None,
            first_seq,
            torn_offset,
            reason: "the last complete line is not a record",
        });
    };
    let prev = match parsed.kind {
        RecordKind::Start => Some(GENESIS),
        RecordKind::Link | RecordKind::Restart => parsed.prev_mac,
        _ => lines.next().and_then(|l| parse_line(l).ok()).map(|p| p.mac),
    };
    let key_ok =
        parsed.kind != RecordKind::Start || parsed.key_id.as_deref() == Some(key.id().as_str());
    match prev {
        Some(prev) if key_ok && key.mac(&prev, parsed.body) == parsed.mac => Ok(Tail::Good {
            seq: parsed.seq,
            mac: parsed.mac,
            first_seq,
            torn_offset,
        }),
        _ => Ok(Tail::Unverifiable {
            last_seq: Some(parsed.seq),
            first_seq,
            torn_offset,
            reason: "the last record does not verify with this key",
        }),
    }
}

/// The rotated files next to the live one, newest (highest first sequence number) last.
fn rotated_files(dir: &Path, stem: &str, ext: &str) -> Vec<(u64, u32, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, u32, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| {
            let middle = name
                .strip_prefix(stem)?
                .strip_prefix('-')?
                .strip_suffix(ext)?;
            let (digits, n) = match middle.split_once('-') {
                Some((d, n)) => (d, n.parse::<u32>().ok()?),
                None => (middle, 0),
            };
            if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, n, name))
        })
        .collect();
    found.sort();
    found
}

struct Writer {
    key: AuditKey,
    dir: PathBuf,
    path: PathBuf,
    stem: String,
    ext: String,
    file: Option<File>,
    size: u64,
    file_first_seq: u64,
    next_seq: u64,
    head: Mac,
    batch: Vec<u8>,
    last_checkpoint: SystemTime,
    since_checkpoint: u64,
    interval: Duration,
    max_file_bytes: u64,
    sync: SyncPolicy,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    failed: bool,
    last_retry: Option<SystemTime>,
}

/// The first record of what `open` writes.
enum Opening {
    Start {
        reason: Option<&'static str>,
        prev_file: Option<String>,
        torn_offset: Option<u64>,
    },
    Resume,
    Link {
        prev_file: String,
        prev_seq: u64,
        prev_mac: Mac,
    },
    Restart {
        prev_file: String,
        prev_seq: u64,
        prev_mac: Mac,
        torn_offset: Option<u64>,
        reason: Option<&'static str>,
    },
}

impl Writer {
    /// A name for the live file when it is rotated away.
    fn rotated_name(&self, first_seq: Option<u64>) -> String {
        let base = match first_seq {
            Some(seq) => format!("{}-{seq:020}", self.stem),
            None => {
                let ms = self
                    .clock
                    .now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("{}-unverified-{ms}", self.stem)
            }
        };
        let mut name = format!("{base}{}", self.ext);
        let mut n = 1u32;
        while self.dir.join(&name).exists() {
            name = format!("{base}-{n}{}", self.ext);
            n += 1;
        }
        name
    }

    /// Open (or continue) the chain; see the module docs' table.
    fn open(&mut self) -> io::Result<()> {
        self.file = None;
        self.batch.clear();
        let live_len = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (opening, next_seq, head, append) = if live_len.is_some_and(|l| l > 0) {
            match read_tail(&self.path, &self.key)? {
                Tail::Good {
                    seq,
                    mac,
                    first_seq,
                    torn_offset: None,
                } => {
                    self.file_first_seq = first_seq.unwrap_or(seq);
                    (Opening::Resume, seq + 1, mac, true)
                }
                Tail::Good {
                    seq,
                    mac,
                    first_seq,
                    torn_offset: Some(torn_offset),
                } => {
                    let name = self.rotated_name(first_seq);
                    std::fs::rename(&self.path, self.dir.join(&name))?;
                    let opening = Opening::Restart {
                        prev_file: name,
                        prev_seq: seq,
                        prev_mac: mac,
                        torn_offset: Some(torn_offset),
                        reason: Some("the last line was torn"),
                    };
                    (opening, seq + 1, mac, false)
                }
                Tail::Unverifiable {
                    last_seq,
                    first_seq,
                    torn_offset,
                    reason,
                } => {
                    let name = self.rotated_name(first_seq);
                    std::fs::rename(&self.path, self.dir.join(&name))?;
                    tracing::warn!(
                        target: TRACING_TARGET,
                        file = %self.path.display(),
                        moved_to = %name,
                        "audit chain cannot be continued ({reason}); starting a new chain"
                    );
                    let opening = Opening::Start {
                        reason: Some(reason),
                        prev_file: Some(name),
                        torn_offset,
                    };
                    (opening, last_seq.map_or(0, |s| s + 1), GENESIS, false)
                }
            }
        } else if let Some((_, _, name)) = rotated_files(&self.dir, &self.stem, &self.ext).pop() {
            // The live file is missing or empty: continue from the newest rotated file.
            match read_tail(&self.dir.join(&name), &self.key)? {
                Tail::Good {
                    seq,
                    mac,
                    torn_offset: None,
                    ..
                } => (
                    // A crash between a rotation's rename and the new file, or a deleted live
                    // file: the two cannot be told apart, so say so in the chain.
                    Opening::Restart {
                        prev_file: name,
                        prev_seq: seq,
                        prev_mac: mac,
                        torn_offset: None,
                        reason: Some("the live file was missing or empty"),
                    },
                    seq + 1,
                    mac,
                    false,
                ),
                Tail::Good {
                    seq,
                    mac,
                    torn_offset: Some(torn_offset),
                    ..
                } => (
                    Opening::Restart {
                        prev_file: name,
                        prev_seq: seq,
                        prev_mac: mac,
                        torn_offset: Some(torn_offset),
                        reason: Some("the live file was missing or empty; the last file ends torn"),
                    },
                    seq + 1,
                    mac,
                    false,
                ),
                Tail::Unverifiable {
                    last_seq,
                    torn_offset,
                    reason,
                    ..
                } => (
                    Opening::Start {
                        reason: Some(reason),
                        prev_file: Some(name),
                        torn_offset,
                    },
                    last_seq.map_or(0, |s| s + 1),
                    GENESIS,
                    false,
                ),
            }
        } else {
            (
                Opening::Start {
                    reason: None,
                    prev_file: None,
                    torn_offset: None,
                },
                0,
                GENESIS,
                false,
            )
        };
        let file = if append {
            OpenOptions::new().append(true).open(&self.path)?
        } else {
            private(OpenOptions::new().create(true).write(true).truncate(true)).open(&self.path)?
        };
        self.size = if append { file.metadata()?.len() } else { 0 };
        if !append {
            self.file_first_seq = next_seq;
        }
        self.file = Some(file);
        self.next_seq = next_seq;
        self.head = head;
        self.write_opening(opening);
        self.write_batch()?;
        self.sync_file()?;
        self.sync_dir();
        self.failed = false;
        Ok(())
    }

    fn write_opening(&mut self, opening: Opening) {
        let now = self.clock.now();
        let interval = self.interval.as_secs();
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        match opening {
            Opening::Start {
                reason,
                prev_file,
                torn_offset,
            } => {
                let mut chain = [0u8; 8];
                let _ = getrandom::fill(&mut chain);
                let key_id = self.key.id();
                self.append(RecordKind::Start, now, |o| {
                    o.u64("version", Some(FORMAT_VERSION));
                    o.str("chain", Some(&hex(&chain)));
                    o.str("key_id", Some(&key_id));
                    o.u64("checkpoint_interval_secs", Some(interval));
                    o.str("reason", reason);
                    o.str("prev_file", prev_file.as_deref());
                    o.u64("torn_offset", torn_offset);
                });
            }
            Opening::Resume => {
                self.append(RecordKind::Resume, now, |o| {
                    o.u64("checkpoint_interval_secs", Some(interval));
                    o.u64("dropped", Some(dropped));
                });
            }
            Opening::Link {
                prev_file,
                prev_seq,
                prev_mac,
            } => {
                self.append(RecordKind::Link, now, |o| {
                    o.u64("checkpoint_interval_secs", Some(interval));
                    o.str("prev_file", Some(&prev_file));
                    o.u64("prev_seq", Some(prev_seq));
                    o.mac("prev_mac", Some(&prev_mac));
                });
            }
            Opening::Restart {
                prev_file,
                prev_seq,
                prev_mac,
                torn_offset,
                reason,
            } => {
                self.append(RecordKind::Restart, now, |o| {
                    o.u64("checkpoint_interval_secs", Some(interval));
                    o.str("prev_file", Some(&prev_file));
                    o.u64("prev_seq", Some(prev_seq));
                    o.mac("prev_mac", Some(&prev_mac));
                    o.u64("torn_offset", torn_offset);
                    o.str("reason", reason);
                    o.u64("dropped", Some(dropped));
                });
            }
        }
    }

    /// Serialize and MAC one record into the batch.
    fn append(
        &mut self,
        kind: RecordKind,
        time: SystemTime,
        fields: impl FnOnce(&mut JsonObject<'_>),
    ) {
        let start = self.batch.len();
        {
            let mut o = JsonObject::begin(&mut self.batch, self.next_seq, kind, time);
            fields(&mut o);
        }
        self.seal(start);
    }

    fn append_event(&mut self, event: &AuditEvent) {
        let start = self.batch.len();
        event.write_body(&mut self.batch, self.next_seq);
        self.seal(start);
        self.since_checkpoint += 1;
        self.shared.written.fetch_add(1, Ordering::Relaxed);
    }

    fn seal(&mut self, start: usize) {
        self.head = seal_line(&self.key, &self.head, &mut self.batch, start);
        self.next_seq += 1;
        self.size += (self.batch.len() - start) as u64;
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("no audit file open"));
        };
        let result = file.write_all(&self.batch);
        self.batch.clear();
        result
    }

    fn sync_file(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn sync_dir(&self) {
        // Makes renames and creations durable on Linux; not possible everywhere.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let name = self.rotated_name(Some(self.file_first_seq));
        let now = self.clock.now();
        self.append(RecordKind::Rotate, now, |o| o.str("file", Some(&name)));
        self.write_batch()?;
        self.sync_file()?;
        self.file = None;
        std::fs::rename(&self.path, self.dir.join(&name))?;
        let file = private(OpenOptions::new().create_new(true).write(true)).open(&self.path)?;
        self.file = Some(file);
        self.size = 0;
        self.file_first_seq = self.next_seq;
        let prev_seq = self.next_seq - 1;
        let prev_mac = self.head;
        self.write_opening(Opening::Link {
            prev_file: name,
            prev_seq,
            prev_mac,
        });
        self.write_batch()?;
        self.sync_file()?;
        self.sync_dir();
        Ok(())
    }

    fn checkpoint(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        let head = self.head;
        let records = self.since_checkpoint;
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        let seq = self.next_seq;
        self.append(RecordKind::Checkpoint, now, |o| {
            o.mac("head", Some(&head));
            o.u64("records", Some(records));
            o.u64("dropped", Some(dropped));
        });
        self.write_batch()?;
        self.sync_file()?;
        self.since_checkpoint = 0;
        self.last_checkpoint = now;
        tracing::info!(
            target: TRACING_TARGET,
            kind = "checkpoint",
            file = %self.path.display(),
            seq,
            mac = %hex(&self.head),
            records,
            dropped,
            "audit checkpoint"
        );
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the audit file could not be written"));
        }
        let now = self.clock.now();
        let head = self.head;
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        self.append(RecordKind::Close, now, |o| {
            o.mac("head", Some(&head));
            o.u64("dropped", Some(dropped));
        });
        self.write_batch()?;
        self.sync_file()?;
        self.file = None;
        Ok(())
    }

    fn fail(&mut self, e: &io::Error) {
        if !self.failed {
            tracing::error!(
                target: TRACING_TARGET,
                file = %self.path.display(),
                error = %e,
                "cannot write the audit file; records are dropped until it can be reopened"
            );
        }
        m::record_write_error();
        self.failed = true;
        self.file = None;
        self.batch.clear();
        self.last_retry = Some(self.clock.now());
    }

    /// Try to reopen after a failure, at most once per tick of the clock.
    fn retry(&mut self) {
        let now = self.clock.now();
        let due = self
            .last_retry
            .and_then(|t| now.duration_since(t).ok())
            .is_none_or(|d| d >= TICK);
        if !due {
            return;
        }
        self.last_retry = Some(now);
        if let Err(e) = self.open() {
            self.fail(&e);
        }
    }

    fn checkpoint_due(&self, now: SystemTime) -> bool {
        now.duration_since(self.last_checkpoint)
            .is_ok_and(|d| d >= self.interval)
    }

    fn until_checkpoint(&self) -> Duration {
        let now = self.clock.now();
        match now.duration_since(self.last_checkpoint) {
            Ok(elapsed) => self.interval.saturating_sub(elapsed),
            // The clock went back: wait a full tick and look again.
            Err(_) => TICK,
        }
    }

    fn handle_event(&mut self, event: &AuditEvent) {
        if self.failed {
            self.retry();
        }
        if self.failed {
            self.shared.count_drop();
            return;
        }
        self.append_event(event);
        if self.max_file_bytes > 0 && self.size >= self.max_file_bytes {
            if let Err(e) = self.rotate() {
                self.fail(&e);
            }
        } else if self.batch.len() >= 256 * 1024
            && let Err(e) = self.write_batch()
        {
            self.fail(&e);
        }
    }

    /// Write the batch, sync if asked, checkpoint if due; the result of the batch.
    fn finish_batch(&mut self, force_checkpoint: bool) -> io::Result<()> {
        if self.failed {
            self.retry();
            if self.failed {
                return Err(io::Error::other("the audit file cannot be written"));
            }
        }
        let mut result = self.write_batch();
        if result.is_ok() && self.sync == SyncPolicy::EveryBatch {
            result = self.sync_file();
        }
        if result.is_ok() && (force_checkpoint || self.checkpoint_due(self.clock.now())) {
            result = self.checkpoint();
        }
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut replies: Vec<(oneshot::Sender<io::Result<()>>, bool)> = Vec::new();
        loop {
            let wait = self.until_checkpoint().min(TICK);
            let (first, disconnected) = match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(msg)) => (Some(msg), false),
                Ok(None) => (None, true),
                Err(_) => (None, false),
            };
            let mut closing: Option<oneshot::Sender<io::Result<()>>> = None;
            let mut force_checkpoint = false;
            let mut next = first;
            let mut taken = 0;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(event) => self.handle_event(&event),
                    Msg::Flush(reply) => replies.push((reply, false)),
                    Msg::Checkpoint(reply) => {
                        force_checkpoint = true;
                        replies.push((reply, true));
                    }
                    Msg::Close(reply) => {
                        closing = Some(reply);
                        break;
                    }
                }
                taken += 1;
                if taken < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if taken > 0 {
                self.shared.room.notify_waiters();
            }
            let result = self.finish_batch(force_checkpoint);
            for (reply, _) in replies.drain(..) {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
            if let Some(reply) = closing {
                rx.close();
                // Submitters waiting for room see the closed channel and count their record.
                self.shared.room.notify_waiters();
                // Anything still queued was submitted before the close: write it.
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Event(event) => self.handle_event(&event),
                        Msg::Flush(r) | Msg::Checkpoint(r) | Msg::Close(r) => {
                            let _ = r.send(Err(io::Error::other("the audit writer is closing")));
                        }
                    }
                }
                let _ = reply.send(self.close());
                return;
            }
            if disconnected {
                if let Err(e) = self.close() {
                    tracing::error!(target: TRACING_TARGET, error = %e, "cannot close the audit file");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// New audit files are readable by their owner only (0600 on Unix): the trail names principals
/// and clients.
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
