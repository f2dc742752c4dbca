//! Write errors (a full disk, an I/O error): the writer stops writing, applies the overflow
//! policy to what it cannot write, retries every tick, and on recovery writes what it held
//! back (`block`) or a gap record counting what it lost (`drop`, `refuse`).

use std::io;
use std::sync::atomic::Ordering;

use crate::chain::RecordKind;
use crate::metrics as m;
use crate::sink::TRACING_TARGET;

use super::head::Previous;
use super::writer::Writer;
use super::{OverflowPolicy, TICK};

impl Writer {
    /// A write failed: stop writing until the file can be reopened.
    pub(super) fn fail(&mut self, e: &io::Error) {
        if !self.failed {
            tracing::error!(
                target: TRACING_TARGET,
                file = %self.path.display(),
                error = %e,
                policy = self.shared.policy.as_str(),
                "cannot write the audit file; retrying every second"
            );
            // Kept when a recovery's gap record did not reach the file (see `retry`).
            let dropped = self.shared.dropped.load(Ordering::Relaxed);
            self.dropped_at_failure.get_or_insert(dropped);
        }
        m::record_write_error();
        self.failed = true;
        self.shared.failing.store(true, Ordering::Relaxed);
        self.file = None;
        self.batch.clear();
        // The events of the failed batch that are not in the file: not written after all.
        for (seq, _) in &mut self.unwritten {
            if seq.take().is_some() {
                self.shared.written.fetch_sub(1, Ordering::Relaxed);
                self.since_checkpoint = self.since_checkpoint.saturating_sub(1);
            }
        }
        if self.shared.policy != OverflowPolicy::Block || self.closing() {
            for _ in self.unwritten.drain(..) {
                self.shared.count_drop();
            }
        }
        self.last_retry = Some(self.clock.now());
    }

    /// A write of the batch failed after the file took its first `done` bytes: the records
    /// whose lines are whole among them are in the file, and recovery continues the chain after
    /// the last of them, so their events are written and leave the unwritten ones (neither
    /// written again under `block` nor counted as lost under `drop`).
    pub(super) fn forget_written(&mut self, done: usize) {
        let taken = self.batch.get(..done).unwrap_or(&self.batch);
        let whole = newlines(taken);
        if whole == 0 {
            return;
        }
        // Every record of the batch is one line, sealed with the sequence numbers just below
        // `next_seq`.
        let first = self.next_seq.saturating_sub(newlines(&self.batch));
        let written = first..first.saturating_add(whole);
        self.unwritten
            .retain(|(seq, _)| !seq.is_some_and(|s| written.contains(&s)));
    }

    /// Whether a close was asked for.
    pub(super) fn closing(&self) -> bool {
        self.shared.closing.load(Ordering::Relaxed)
    }

    /// `block` after a write error, no close asked for: the writer takes nothing off the
    /// channel, so submitters wait for room.
    pub(super) fn holding_back(&self) -> bool {
        self.failed && self.shared.policy == OverflowPolicy::Block && !self.closing()
    }

    /// Try to reopen after a failure, at most once per tick of the clock; on success write the
    /// records held back, or a gap record counting the ones lost.
    pub(super) fn retry(&mut self) {
        let now = self.clock.now();
        let due = self
            .last_retry
            .and_then(|t| now.duration_since(t).ok())
            .is_none_or(|d| d >= TICK);
        if !due {
            return;
        }
        self.last_retry = Some(now);
        // `open` writes (and so forgets what was unwritten): keep the held records aside.
        let held = std::mem::take(&mut self.unwritten);
        self.recovering = true;
        let opened = self.open();
        self.recovering = false;
        if let Err(e) = opened {
            self.unwritten = held;
            self.fail(&e);
            return;
        }
        self.shared.failing.store(false, Ordering::Relaxed);
        let since = self.dropped_at_failure.take();
        let lost = self
            .shared
            .dropped
            .load(Ordering::Relaxed)
            .saturating_sub(since.unwrap_or(u64::MAX));
        // The end of the gap record in the batch (it comes first: `open` wrote its own).
        let mut gap_end = 0;
        if lost > 0 {
            let now = self.clock.now();
            self.append(RecordKind::Security, now, |o| {
                o.str("detector", Some("audit_records_dropped"));
                o.str("action", Some("alert"));
                o.u64("count", Some(lost));
            });
            gap_end = self.batch.len();
        }
        for (_, event) in &held {
            self.append_unwritten(event);
        }
        tracing::warn!(
            target: TRACING_TARGET,
            file = %self.path.display(),
            written_again = held.len(),
            lost,
            "the audit file can be written again"
        );
        if let Err((taken, e)) = self.write_batch_counted() {
            if taken < gap_end {
                // The gap record is not in the file: the next one counts from the same point.
                self.dropped_at_failure = since;
            }
            self.fail(&e);
        }
    }

    /// How the previous run ended, as `open` judged it, when `open` recovers from a write error
    /// in this process: not an unclean stop of the process.
    pub(super) fn recovered(&self, previous: Option<Previous>) -> Option<Previous> {
        match previous {
            Some(Previous::UncleanStop) if self.recovering => Some(Previous::WriteError),
            other => other,
        }
    }
}

/// The number of line ends in `bytes`.
fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}
