//! The end of the chain: closed, or open but recently checkpointed; not truncated and not
//! ending at a rotation.

use crate::chain::{RecordKind, hex};

use super::{State, VerifyError, VerifyReport};

impl State<'_> {
    pub(super) fn finish(mut self) -> Result<VerifyReport, VerifyError> {
        if let Some((file, line, offset)) = self.torn.take() {
            return Err(VerifyError::TornTail { file, line, offset });
        }
        self.report.head = self.prev.map(|m| hex(&m));
        match self.last_kind {
            None => {
                return Err(VerifyError::Malformed {
                    file: self.report.files.last().cloned().unwrap_or_default(),
                    line: 0,
                    reason: "no record in the files given".into(),
                });
            }
            Some(RecordKind::Close) => self.report.closed = true,
            Some(RecordKind::Rotate) => {
                let next = self.rotated_to.clone().unwrap_or_default();
                if !self.options.allow_rotated_end {
                    return Err(VerifyError::EndsAtRotation {
                        file: self.last_file,
                        line: self.last_line,
                        next,
                    });
                }
                self.report.notices.push(format!(
                    "{}:{}: rotated to {next:?}, which was not given",
                    self.last_file.display(),
                    self.last_line
                ));
            }
            Some(_) => {
                if let (Some(now), Some(interval), Some(last)) =
                    (self.options.now, self.interval, self.last_time)
                    && now > last + interval * 2
                {
                    return Err(VerifyError::Truncated {
                        file: self.last_file,
                        line: self.last_line,
                        seq: self.report.last_seq.unwrap_or(0),
                        last,
                        due: last + interval,
                    });
                }
                self.report.notices.push(format!(
                    "the chain is open at {}:{} (its writer is running, or stopped without closing): {} record(s) after the last checkpoint",
                    self.last_file.display(),
                    self.last_line,
                    self.report.unsealed
                ));
            }
        }
        Ok(self.report)
    }
}
