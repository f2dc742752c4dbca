//! Every record after a file's first: its MAC over the previous one, and its sequence number
//! (nothing missing, nothing reordered or replayed).

use std::path::Path;
use std::time::Duration;

use crate::chain::{ParsedLine, RecordKind, parse_line};

use super::{Next, State, VerifyError};

impl State<'_> {
    /// A line after the first of a file.
    pub(super) fn record(
        &mut self,
        file: &Path,
        line_no: u64,
        line: &[u8],
    ) -> Result<Next, VerifyError> {
        let f = || file.to_path_buf();
        let p = parse_line(line).map_err(|e| self.unparsed(file, line_no, line, e.to_string()))?;
        let (Some(prev), Some(expected)) = (self.prev, self.next_seq) else {
            return Err(VerifyError::BrokenLink {
                file: f(),
                line: line_no,
                reason: "no chain opened before this line".into(),
            });
        };
        if p.seq != expected {
            if self.key.mac(&prev, &with_seq(p.body, expected)) == p.mac {
                return Err(VerifyError::Modified {
                    file: f(),
                    line: line_no,
                    seq: Some(expected),
                });
            }
            if p.seq < expected {
                return Err(VerifyError::Reordered {
                    file: f(),
                    line: line_no,
                    expected,
                    found: p.seq,
                });
            }
            return Ok(Next::LookFor {
                expected,
                found: p.seq,
            });
        }
        if self.key.mac(&prev, p.body) != p.mac {
            return Err(VerifyError::Modified {
                file: f(),
                line: line_no,
                seq: Some(p.seq),
            });
        }
        if p.kind.opens_file() {
            return Err(VerifyError::Malformed {
                file: f(),
                line: line_no,
                reason: format!("a {} record inside a file", p.kind),
            });
        }
        if matches!(p.kind, RecordKind::Checkpoint | RecordKind::Close) && p.head != Some(prev) {
            return Err(VerifyError::Malformed {
                file: f(),
                line: line_no,
                reason: format!("the {} record's head is not the chain head", p.kind),
            });
        }
        if self.last_kind == Some(RecordKind::Rotate) {
            return Err(VerifyError::Malformed {
                file: f(),
                line: line_no,
                reason: "a record after the rotate record".into(),
            });
        }
        self.rotated_to = p.file.clone().filter(|_| p.kind == RecordKind::Rotate);
        self.previous_run(file, line_no, &p)?;
        self.accept(file, line_no, &p);
        Ok(Next::Continue)
    }

    /// An opening record's `previous`: a lost tail fails, an unclean restart is listed.
    pub(super) fn previous_run(
        &mut self,
        file: &Path,
        line_no: u64,
        p: &ParsedLine<'_>,
    ) -> Result<(), VerifyError> {
        if let Some(unclean) = judge_previous(file, line_no, p)? {
            self.report.unclean_resumes.push(unclean);
        }
        Ok(())
    }

    pub(super) fn accept(&mut self, file: &Path, line_no: u64, p: &ParsedLine<'_>) {
        self.prev = Some(p.mac);
        self.next_seq = p.seq.checked_add(1);
        if let Some(secs) = p.checkpoint_interval_secs {
            self.interval = Some(Duration::from_secs(secs));
        }
        let r = &mut self.report;
        r.lines += 1;
        r.first_seq.get_or_insert(p.seq);
        r.last_seq = Some(p.seq);
        match p.kind {
            RecordKind::Request => r.requests += 1,
            RecordKind::Security => r.security_events += 1,
            RecordKind::Checkpoint => r.checkpoints += 1,
            _ => {}
        }
        if matches!(p.kind, RecordKind::Checkpoint | RecordKind::Close) {
            r.unsealed = 0;
        } else if matches!(
            p.kind,
            RecordKind::Request | RecordKind::Security | RecordKind::Completion
        ) {
            r.unsealed += 1;
        }
        self.last_kind = Some(p.kind);
        self.last_time = Some(p.timestamp);
        self.last_line = line_no;
        self.last_file = file.to_path_buf();
    }
}

/// `body` with its leading `{"seq":N` replaced by `seq`.
pub(super) fn with_seq(body: &[u8], seq: u64) -> Vec<u8> {
    const PREFIX: &[u8] = b"{\"seq\":";
    let rest = body.get(PREFIX.len()..).unwrap_or(&[]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(rest.get(digits..).unwrap_or(&[]));
    out
}

/// An opening record's `previous` member: a lost tail is an error, an unclean restart a line
/// for [`VerifyReport::unclean_resumes`](super::VerifyReport::unclean_resumes).
pub(super) fn judge_previous(
    file: &Path,
    line_no: u64,
    p: &ParsedLine<'_>,
) -> Result<Option<String>, VerifyError> {
    let Some(previous) = p.previous.as_deref() else {
        return Ok(None);
    };
    let what = match previous {
        "clean_close" => return Ok(None),
        "missing_tail" | "head_mismatch" => {
            let (first, last) = p.lost.unwrap_or((p.seq, p.seq));
            return Err(VerifyError::TailLost {
                file: file.to_path_buf(),
                line: line_no,
                first,
                last,
            });
        }
        "unclean_stop" => "after an unclean stop (no close record; nothing missing)",
        "write_error" => {
            "after a write error (what it could not write is counted in the records after it)"
        }
        "head_missing" => "without its head file: a cut tail could not be checked",
        "head_invalid" => "with a head file that does not verify: a cut tail could not be checked",
        other => {
            return Err(VerifyError::Malformed {
                file: file.to_path_buf(),
                line: line_no,
                reason: format!(
                    "unknown previous {:?}",
                    other.chars().take(32).collect::<String>()
                ),
            });
        }
    };
    let verb = match p.kind {
        RecordKind::Resume => "resumed",
        RecordKind::Restart => "restarted",
        _ => "started a new chain",
    };
    Ok(Some(format!(
        "{}:{line_no} (seq {}): the writer {verb} {what}",
        file.display(),
        p.seq
    )))
}
