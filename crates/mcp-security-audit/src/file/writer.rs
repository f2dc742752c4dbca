//! [`Writer`]: the task that owns the file — appends sealed records in batches, syncs,
//! checkpoints, rotates, and after a write error stops and retries.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use mcp_security_core::clock::Clock;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::anchor::{AnchorSink, Anchored};
use crate::chain::{AuditKey, FORMAT_VERSION, Mac, RecordKind, hex, seal_line};
use crate::metrics as m;
use crate::record::{AuditEvent, JsonObject};
use crate::signing::{SIG_MEMBER, SigningKey};
use crate::sink::TRACING_TARGET;

use super::head::{self, Head, HeadRead, Previous};
use super::{MAX_BATCH, Msg, OverflowPolicy, Shared, SyncPolicy, TICK};

pub(super) struct Writer {
    pub(super) key: AuditKey,
    pub(super) dir: PathBuf,
    pub(super) path: PathBuf,
    pub(super) stem: String,
    pub(super) ext: String,
    pub(super) file: Option<File>,
    pub(super) size: u64,
    pub(super) file_first_seq: u64,
    pub(super) next_seq: u64,
    pub(super) head: Mac,
    pub(super) batch: Vec<u8>,
    pub(super) last_checkpoint: SystemTime,
    pub(super) since_checkpoint: u64,
    pub(super) interval: Duration,
    pub(super) batch_delay: Duration,
    pub(super) max_file_bytes: u64,
    pub(super) sync: SyncPolicy,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) shared: Arc<Shared>,
    pub(super) failed: bool,
    pub(super) last_retry: Option<SystemTime>,
    /// Where the head (last written sequence number and MAC) is kept.
    pub(super) head_path: PathBuf,
    /// How the previous run ended, found by the last `open`.
    pub(super) previous: Option<Previous>,
    /// The head file could not be written (logged once until it can again).
    pub(super) head_failing: bool,
    /// Signs checkpoint, rotate and close records (see [`crate::signing`]).
    pub(super) signer: Option<SigningKey>,
    /// The first sequence number of the current segment.
    pub(super) seg_from: u64,
    /// SHA-256 over the current segment's lines.
    pub(super) seg_hash: Sha256,
    /// Where checkpoint, rotate and close records are copied (see [`crate::anchor`]).
    pub(super) anchors: Vec<Arc<dyn AnchorSink>>,
    /// Events taken since the last successful write, each with the sequence number of its line
    /// in the current batch (`None` once that batch is gone): written again after a write error
    /// under the `block` policy, counted as dropped under the others. A failed write takes out
    /// the events whose lines it did write whole (see [`Writer::forget_written`]).
    pub(super) unwritten: Vec<(Option<u64>, Arc<AuditEvent>)>,
    /// `shared.dropped` when the current write failure began.
    pub(super) dropped_at_failure: Option<u64>,
    /// `open` is called to recover from a write error.
    pub(super) recovering: bool,
}

/// The first record of what `open` writes.
pub(super) enum Opening {
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
    pub(super) fn rotated_name(&self, first_seq: Option<u64>) -> String {
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

    pub(super) fn write_opening(&mut self, opening: Opening) {
        let previous = self.previous;
        let sign_key = self.signer.as_ref().map(|k| k.public_key().id());
        if !matches!(opening, Opening::Link { .. }) {
            // A new run of the writer: a new segment (a rotation's link continues it).
            self.seg_from = self.next_seq;
            self.seg_hash = Sha256::new();
        }
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
                    previous_members(o, previous);
                    sign_key_member(o, sign_key.as_deref());
                });
            }
            Opening::Resume => {
                self.append(RecordKind::Resume, now, |o| {
                    o.u64("checkpoint_interval_secs", Some(interval));
                    o.u64("dropped", Some(dropped));
                    previous_members(o, previous);
                    sign_key_member(o, sign_key.as_deref());
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
                    previous_members(o, previous);
                    sign_key_member(o, sign_key.as_deref());
                });
            }
        }
    }

    /// After an opening: a lost tail is a security record, an error and a metric; an unclean
    /// stop or a missing or invalid head file a warning.
    pub(super) fn report_previous(&mut self, head: &HeadRead) {
        let Some(previous) = self.previous else {
            return;
        };
        m::resume(previous.as_str());
        let file = self.path.display().to_string();
        if let Some((first, last)) = previous.lost() {
            m::violation("audit_tail_missing");
            tracing::error!(
                target: TRACING_TARGET,
                file = %file,
                previous = previous.as_str(),
                lost_first = first,
                lost_last = last,
                "the audit log ends before the head its writer last wrote: records {first}..={last} are missing"
            );
            let now = self.clock.now();
            self.append(RecordKind::Security, now, |o| {
                o.str("detector", Some("audit_tail_missing"));
                o.str("action", Some("alert"));
                o.u64("lost_first", Some(first));
                o.u64("lost_last", Some(last));
            });
        } else if previous != Previous::CleanClose {
            let why = match head {
                HeadRead::Invalid(why) => why,
                HeadRead::Missing => "the head file is missing",
                HeadRead::Found(_) => "the writer stopped without closing",
            };
            tracing::warn!(
                target: TRACING_TARGET,
                file = %file,
                previous = previous.as_str(),
                "the audit log is continued after an unclean stop: {why}"
            );
        }
    }

    /// Hand the record just written and synced (the chain head) to the anchors.
    fn anchor_last(&self, kind: RecordKind, timestamp: SystemTime) {
        let Some(seq) = self.next_seq.checked_sub(1) else {
            return;
        };
        if kind != RecordKind::Checkpoint {
            // The built-in anchor: checkpoints have their own event (with counts).
            tracing::info!(
                target: TRACING_TARGET,
                kind = kind.as_str(),
                file = %self.path.display(),
                seq,
                mac = %hex(&self.head),
                "audit checkpoint"
            );
        }
        if self.anchors.is_empty() {
            return;
        }
        let record = Anchored {
            seq,
            kind,
            timestamp,
            mac: self.head,
            file: self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            key_id: self.shared.key_id.clone(),
        };
        for anchor in &self.anchors {
            if let Err(e) = anchor.anchor(&record) {
                m::record_write_error();
                tracing::error!(target: TRACING_TARGET, seq, error = %e, "cannot anchor the audit checkpoint");
            }
        }
    }

    /// Save the head file after a write; a failure is logged (once) and counted, the log goes
    /// on.
    fn save_head(&mut self, sync: bool) {
        let Some(seq) = self.next_seq.checked_sub(1) else {
            return;
        };
        let head = Head {
            seq,
            mac: self.head,
        };
        match head::write(&self.head_path, &self.key, head, sync) {
            Ok(()) => self.head_failing = false,
            Err(e) => {
                m::record_write_error();
                if !self.head_failing {
                    tracing::error!(
                        target: TRACING_TARGET,
                        file = %self.head_path.display(),
                        error = %e,
                        "cannot write the audit head file"
                    );
                }
                self.head_failing = true;
            }
        }
    }

    /// Serialize and MAC one record into the batch.
    pub(super) fn append(
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

    pub(super) fn append_event(&mut self, event: &AuditEvent) {
        let start = self.batch.len();
        event.write_body(&mut self.batch, self.next_seq);
        self.seal(start);
        self.since_checkpoint += 1;
        self.shared.written.fetch_add(1, Ordering::Relaxed);
    }

    /// Append an event to the batch and keep it among the unwritten ones until the batch is
    /// written.
    pub(super) fn append_unwritten(&mut self, event: &Arc<AuditEvent>) {
        self.unwritten
            .push((Some(self.next_seq), Arc::clone(event)));
        self.append_event(event);
    }

    pub(super) fn seal(&mut self, start: usize) {
        self.head = seal_line(&self.key, &self.head, &mut self.batch, start);
        self.next_seq += 1;
        self.size += (self.batch.len() - start) as u64;
        if self.signer.is_some() {
            self.seg_hash.update(self.batch.get(start..).unwrap_or(&[]));
        }
    }

    /// Serialize a record that ends a segment (`checkpoint`, `rotate`, `close`): with a signing
    /// key, add `seg_from`, `seg_hash` and `sig` (see [`crate::signing`]) and begin the next
    /// segment after it.
    pub(super) fn append_signed(
        &mut self,
        kind: RecordKind,
        time: SystemTime,
        fields: impl FnOnce(&mut JsonObject<'_>),
    ) {
        let start = self.batch.len();
        {
            let mut o = JsonObject::begin(&mut self.batch, self.next_seq, kind, time);
            fields(&mut o);
            if self.signer.is_some() {
                let digest = std::mem::take(&mut self.seg_hash).finalize();
                o.u64("seg_from", Some(self.seg_from));
                o.display("seg_hash", Some(hex(&digest)));
            }
        }
        if let Some(signer) = &self.signer {
            let sig = signer.sign_record(self.batch.get(start..).unwrap_or(&[]));
            self.batch.extend_from_slice(SIG_MEMBER);
            self.batch.extend_from_slice(sig.as_bytes());
            self.batch.push(b'"');
        }
        self.head = seal_line(&self.key, &self.head, &mut self.batch, start);
        self.next_seq += 1;
        self.size += (self.batch.len() - start) as u64;
        self.seg_from = self.next_seq;
    }

    pub(super) fn write_batch(&mut self) -> io::Result<()> {
        self.write_batch_counted().map_err(|(_, e)| e)
    }

    /// [`write_batch`](Self::write_batch); an error comes with the bytes of the batch the file
    /// took before it.
    pub(super) fn write_batch_counted(&mut self) -> Result<(), (usize, io::Error)> {
        if self.batch.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        if self.shared.fail_writes.load(Ordering::Relaxed) {
            self.batch.clear();
            return Err((0, io::Error::other("injected write error")));
        }
        #[cfg(test)]
        let short = self.shared.take_short_write();
        let Some(file) = self.file.as_mut() else {
            self.batch.clear();
            return Err((0, io::Error::other("no audit file open")));
        };
        let buf: &[u8] = &self.batch;
        #[cfg(test)]
        let buf = short.map_or(buf, |n| buf.get(..n).unwrap_or(buf));
        let (done, result) = write_counted(file, buf);
        #[cfg(test)]
        let result = match (result, short) {
            (Ok(()), Some(_)) => Err(io::Error::other("injected short write")),
            (result, _) => result,
        };
        if let Err(e) = result {
            self.forget_written(done);
            self.batch.clear();
            return Err((done, e));
        }
        self.batch.clear();
        self.unwritten.clear();
        self.save_head(false);
        Ok(())
    }

    /// `fdatasync` the file, then save the head durably too.
    pub(super) fn sync_file(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.sync_data()?,
            None => return Ok(()),
        }
        self.save_head(true);
        Ok(())
    }

    pub(super) fn sync_dir(&self) {
        // Makes renames and creations durable on Linux; not possible everywhere.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    pub(super) fn rotate(&mut self) -> io::Result<()> {
        let name = self.rotated_name(Some(self.file_first_seq));
        let now = self.clock.now();
        self.append_signed(RecordKind::Rotate, now, |o| o.str("file", Some(&name)));
        self.write_batch()?;
        self.sync_file()?;
        self.anchor_last(RecordKind::Rotate, now);
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

    pub(super) fn checkpoint(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        let head = self.head;
        let records = self.since_checkpoint;
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        let seq = self.next_seq;
        self.append_signed(RecordKind::Checkpoint, now, |o| {
            o.mac("head", Some(&head));
            o.u64("records", Some(records));
            o.u64("dropped", Some(dropped));
        });
        self.write_batch()?;
        self.sync_file()?;
        self.anchor_last(RecordKind::Checkpoint, now);
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

    pub(super) fn close(&mut self) -> io::Result<()> {
        if self.failed {
            // One more try: the disk may have recovered since the last tick.
            self.last_retry = None;
            self.retry();
        }
        if self.failed {
            for _ in self.unwritten.drain(..) {
                self.shared.count_drop();
            }
            return Err(io::Error::other("the audit file could not be written"));
        }
        let now = self.clock.now();
        let head = self.head;
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        self.append_signed(RecordKind::Close, now, |o| {
            o.mac("head", Some(&head));
            o.u64("dropped", Some(dropped));
        });
        self.write_batch()?;
        self.sync_file()?;
        self.anchor_last(RecordKind::Close, now);
        self.file = None;
        Ok(())
    }

    pub(super) fn checkpoint_due(&self, now: SystemTime) -> bool {
        now.duration_since(self.last_checkpoint)
            .is_ok_and(|d| d >= self.interval)
    }

    pub(super) fn until_checkpoint(&self) -> Duration {
        let now = self.clock.now();
        match now.duration_since(self.last_checkpoint) {
            Ok(elapsed) => self.interval.saturating_sub(elapsed),
            // The clock went back: wait a full tick and look again.
            Err(_) => TICK,
        }
    }

    pub(super) fn handle_event(&mut self, event: &Arc<AuditEvent>) {
        if self.failed {
            self.retry();
        }
        if self.failed {
            if self.shared.policy == OverflowPolicy::Block && !self.closing() {
                // Held until the file can be written again (the writer takes no more).
                self.unwritten.push((None, Arc::clone(event)));
            } else {
                self.shared.count_drop();
            }
            return;
        }
        self.append_unwritten(event);
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
    pub(super) fn finish_batch(&mut self, force_checkpoint: bool) -> io::Result<()> {
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

    /// The next message: after a batch, once records had the batch delay to gather (or at once
    /// when the last batch was full); when idle, as soon as one arrives. `None` when the wait
    /// ended without one; the flag says whether every sender is gone.
    async fn next_message(
        &self,
        rx: &mut mpsc::Receiver<Msg>,
        after: Round,
    ) -> (Option<Msg>, bool) {
        let wait = self.until_checkpoint().min(TICK);
        match after {
            Round::Idle => match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(msg)) => (Some(msg), false),
                Ok(None) => (None, true),
                Err(_) => (None, false),
            },
            Round::Busy | Round::Full => {
                if after == Round::Busy {
                    // Submitters do not wake the writer below the high-water mark: a burst
                    // costs one wake-up here, not one per record.
                    let delay = self.batch_delay.min(wait);
                    let _ = tokio::time::timeout(delay, self.shared.wake.notified()).await;
                }
                match rx.try_recv() {
                    Ok(msg) => (Some(msg), false),
                    Err(mpsc::error::TryRecvError::Empty) => (None, false),
                    Err(mpsc::error::TryRecvError::Disconnected) => (None, true),
                }
            }
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut replies: Vec<(oneshot::Sender<io::Result<()>>, bool)> = Vec::new();
        let mut after = Round::Idle;
        loop {
            #[cfg(test)]
            if self.shared.paused.load(Ordering::Relaxed) {
                self.shared.pause_seen.store(true, Ordering::Relaxed);
                let _ = tokio::time::timeout(TICK, self.shared.wake.notified()).await;
                continue;
            }
            if self.holding_back() {
                // `block` after a write error: take nothing more, so submitters wait for room,
                // and retry the file every tick (a close ends the wait).
                let _ = tokio::time::timeout(TICK, self.shared.wake.notified()).await;
                self.retry();
                if self.holding_back() {
                    continue;
                }
                after = Round::Full;
            }
            let (first, disconnected) = self.next_message(&mut rx, after).await;
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
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                self.shared.room.notify_waiters();
            }
            after = if taken >= MAX_BATCH {
                Round::Full
            } else if taken > 0 && !self.batch_delay.is_zero() {
                Round::Busy
            } else {
                Round::Idle
            };
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

/// `write_all` that says how far it got: the bytes the file took before an error (a full disk
/// takes part of a write, then refuses the rest).
fn write_counted(file: &mut File, buf: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while let Some(rest) = buf.get(done..).filter(|r| !r.is_empty()) {
        match file.write(rest) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// The `previous`, `lost_first` and `lost_last` members of an opening record.
fn previous_members(o: &mut JsonObject<'_>, previous: Option<Previous>) {
    if let Some(p) = previous {
        o.str("previous", Some(p.as_str()));
        if let Some((first, last)) = p.lost() {
            o.u64("lost_first", Some(first));
            o.u64("lost_last", Some(last));
        }
    }
}

/// The `sign_key` member of a new run's opening record, when it signs.
fn sign_key_member(o: &mut JsonObject<'_>, sign_key: Option<&str>) {
    if let Some(id) = sign_key {
        o.str("sign_key", Some(id));
    }
}

/// What the writer's last round took, which decides how it waits for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Nothing (or the batch delay is zero): wait for the next message.
    Idle,
    /// A batch: let the next records gather for the batch delay.
    Busy,
    /// A full batch: more is probably queued; take it at once.
    Full,
}

/// New audit files are readable by their owner only (0600 on Unix): the trail names principals
/// and clients.
pub(super) fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
