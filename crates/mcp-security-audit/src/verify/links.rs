//! The first record of each file: a `start` with the right key, or a `link` / `restart` that
//! matches the end of the previous file.

use std::path::Path;

use crate::chain::{GENESIS, RecordKind, hex, parse_line};

use super::{Next, State, VerifyError};

impl State<'_> {
    /// The first line of a file: `start`, `link` or `restart`.
    pub(super) fn opening(&mut self, file: &Path, line: &[u8]) -> Result<Next, VerifyError> {
        let f = || file.to_path_buf();
        let p = parse_line(line).map_err(|e| self.unparsed(file, 1, line, e.to_string()))?;
        let first_file = self.prev.is_none();
        let torn = self.torn.take();
        let acknowledged = match (&torn, p.torn_offset) {
            (Some((tf, tl, off)), Some(claimed)) if *off == claimed => {
                self.report.notices.push(format!(
                    "{}:{tl}: torn line at byte {off}, acknowledged by {}:1 ({} record)",
                    tf.display(),
                    file.display(),
                    p.kind
                ));
                true
            }
            _ => false,
        };
        if let (Some((tf, tl, off)), false) = (&torn, acknowledged) {
            return Err(VerifyError::TornTail {
                file: tf.clone(),
                line: *tl,
                offset: *off,
            });
        }
        match p.kind {
            RecordKind::Start => {
                let expected = self.key.id();
                if p.key_id.as_deref() != Some(expected.as_str()) {
                    return Err(VerifyError::WrongKey {
                        file: f(),
                        line: 1,
                        found: p.key_id.clone().unwrap_or_default(),
                        expected,
                    });
                }
                if self.key.mac(&GENESIS, p.body) != p.mac {
                    return Err(VerifyError::Modified {
                        file: f(),
                        line: 1,
                        seq: Some(p.seq),
                    });
                }
                if !first_file {
                    self.report.notices.push(format!(
                        "{}:1: a new chain starts at seq {}{}",
                        file.display(),
                        p.seq,
                        p.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ));
                } else if p.torn_offset.is_some() || p.prev_file.is_some() {
                    self.report.notices.push(format!(
                        "{}:1: the chain starts anew after {} ({})",
                        file.display(),
                        p.prev_file.as_deref().unwrap_or("an earlier file"),
                        p.reason.as_deref().unwrap_or("no reason given")
                    ));
                }
            }
            RecordKind::Link | RecordKind::Restart => {
                let (Some(prev_mac), Some(prev_seq)) = (p.prev_mac, p.prev_seq) else {
                    return Err(VerifyError::Malformed {
                        file: f(),
                        line: 1,
                        reason: format!("a {} record without prev_mac and prev_seq", p.kind),
                    });
                };
                if self.key.mac(&prev_mac, p.body) != p.mac {
                    return Err(VerifyError::Modified {
                        file: f(),
                        line: 1,
                        seq: Some(p.seq),
                    });
                }
                if prev_seq.checked_add(1) != Some(p.seq) {
                    return Err(VerifyError::Malformed {
                        file: f(),
                        line: 1,
                        reason: format!("links to seq {prev_seq} but has seq {}", p.seq),
                    });
                }
                if p.kind == RecordKind::Restart
                    && let Some(reason) = &p.reason
                {
                    self.report.notices.push(format!(
                        "{}:1: the writer restarted after {}: {reason}",
                        file.display(),
                        p.prev_file.as_deref().unwrap_or("an earlier file")
                    ));
                }
                if p.kind == RecordKind::Restart
                    && p.torn_offset.is_some()
                    && !acknowledged
                    && !first_file
                {
                    return Err(VerifyError::BrokenLink {
                        file: f(),
                        line: 1,
                        reason: format!(
                            "the restart record reports a torn line at byte {} of {}, but that file ends cleanly",
                            p.torn_offset.unwrap_or(0),
                            p.prev_file.as_deref().unwrap_or("the previous file")
                        ),
                    });
                }
                match (self.prev, self.next_seq) {
                    (Some(prev), Some(expected)) => {
                        if p.seq > expected {
                            return Err(VerifyError::Missing {
                                file: f(),
                                line: 1,
                                expected,
                                found: p.seq,
                            });
                        }
                        if p.seq < expected {
                            return Err(VerifyError::Reordered {
                                file: f(),
                                line: 1,
                                expected,
                                found: p.seq,
                            });
                        }
                        if prev != prev_mac {
                            return Err(VerifyError::BrokenLink {
                                file: f(),
                                line: 1,
                                reason: format!(
                                    "links to head {} but the previous file ends with {}",
                                    hex(&prev_mac),
                                    hex(&prev)
                                ),
                            });
                        }
                        let prev_name = self.last_file.file_name().and_then(|n| n.to_str());
                        if let Some(claimed) = p.prev_file.as_deref()
                            && prev_name != Some(claimed)
                        {
                            self.report.notices.push(format!(
                                "{}:1: links to a file named {claimed:?}, verified against {}",
                                file.display(),
                                self.last_file.display()
                            ));
                        }
                    }
                    _ => {
                        self.report.notices.push(format!(
                            "{}:1: the chain is verified from seq {} on; it links to {} (seq {prev_seq}), which was not given",
                            file.display(),
                            p.seq,
                            p.prev_file.as_deref().unwrap_or("an earlier file")
                        ));
                    }
                }
            }
            other => {
                return Err(VerifyError::BrokenLink {
                    file: f(),
                    line: 1,
                    reason: format!(
                        "the file begins with a {other} record, not start, link or restart: its beginning was cut"
                    ),
                });
            }
        }
        self.rotated_to = None;
        self.previous_run(file, 1, &p)?;
        self.accept(file, 1, &p);
        Ok(Next::Continue)
    }
}
