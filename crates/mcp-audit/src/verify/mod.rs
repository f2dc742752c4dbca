//! The verifier: check a set of audit files against the key, and report OK or the first bad
//! record precisely.
//!
//! [`verify_files`] takes the files in any order (it sorts them by their first sequence number,
//! which is chain order), reads each once, front to back, and checks:
//!
//! | failure | meaning |
//! |---|---|
//! | [`Modified`](VerifyError::Modified) | a line does not match its MAC (any byte changed, the sequence number included) |
//! | [`Missing`](VerifyError::Missing) | sequence numbers jump: lines (or whole files) were deleted |
//! | [`Reordered`](VerifyError::Reordered) | a sequence number comes too early or twice: lines were swapped or replayed |
//! | [`TornTail`](VerifyError::TornTail) | a file ends in a partial line (a crash mid-write, or a cut) that no later `restart` record acknowledges |
//! | [`Truncated`](VerifyError::Truncated) | the chain ends without a `close` record and no checkpoint has been written for two checkpoint intervals before [`VerifyOptions::now`]: the end was cut off, or the writer died without closing |
//! | [`EndsAtRotation`](VerifyError::EndsAtRotation) | the last file given ends with a `rotate` record: the newer files are missing |
//! | [`BrokenLink`](VerifyError::BrokenLink) | a file does not begin with a `start`, `link` or `restart` record, or its link does not match the previous file |
//! | [`WrongKey`](VerifyError::WrongKey) | a `start` record names another key |
//! | [`Malformed`](VerifyError::Malformed) | a line has a valid MAC but is not a record (a writer bug), or cannot be checked |
//!
//! What passes, and is listed in [`VerifyReport::notices`]: a set that begins with a `link`
//! (older files removed by retention), a torn line acknowledged by the next file's `restart`
//! record, a new chain (`start`) in a later file, and an open end (the writer is running: records
//! after the last checkpoint, the last one recent enough).
//!
//! Limits: deleting the newest records of a live chain up to a moment less than two checkpoint
//! intervals ago, or deleting the whole end including files, cannot be seen from the files
//! alone. The checkpoints' `tracing` events (sequence and MAC) give an external copy to compare
//! [`VerifyReport::last_seq`] and [`VerifyReport::head`] with.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::chain::{
    AuditKey, GENESIS, MAX_LINE_BYTES, Mac, ParsedLine, RecordKind, hex, parse_line, rfc3339,
    split_line,
};

/// What the verifier expects beyond the chain itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    now: Option<SystemTime>,
    allow_rotated_end: bool,
}

impl VerifyOptions {
    /// The defaults: no time check, the last file must not end with a rotation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current time: a chain that is not closed must have a record (a checkpoint at least)
    /// less than two checkpoint intervals before it, else it was truncated or its writer died.
    #[must_use]
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Accept a set whose last file ends with a `rotate` record (checking archived files
    /// without the newer ones).
    #[must_use]
    pub fn allow_rotated_end(mut self, allow: bool) -> Self {
        self.allow_rotated_end = allow;
        self
    }
}

/// What a successful verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The files, in chain order.
    pub files: Vec<PathBuf>,
    /// Lines checked.
    pub lines: u64,
    /// `request` records.
    pub requests: u64,
    /// `security` records.
    pub security_events: u64,
    /// `checkpoint` records.
    pub checkpoints: u64,
    /// The first sequence number.
    pub first_seq: Option<u64>,
    /// The last sequence number.
    pub last_seq: Option<u64>,
    /// The last MAC (hex): the chain head, to compare with an external copy.
    pub head: Option<String>,
    /// The chain ends with a `close` record.
    pub closed: bool,
    /// Records after the last checkpoint or close.
    pub unsealed: u64,
    /// Things that passed but deserve a look.
    pub notices: Vec<String>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: {} file(s), {} lines ({} requests, {} security events, {} checkpoints)",
            self.files.len(),
            self.lines,
            self.requests,
            self.security_events,
            self.checkpoints
        )?;
        if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
            write!(f, ", seq {a}..={b}")?;
        }
        if self.closed {
            f.write_str(", closed")?;
        } else {
            write!(
                f,
                ", open ({} records after the last checkpoint)",
                self.unsealed
            )?;
        }
        if let Some(h) = &self.head {
            write!(f, ", head {h}")?;
        }
        Ok(())
    }
}

/// The first failure found; see the [module docs](self). Lines are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// No file was given.
    NoFiles,
    /// A file could not be read.
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        error: String,
    },
    /// A line has a valid MAC but is not a record, or cannot be checked.
    Malformed {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// Why.
        reason: String,
    },
    /// A `start` record names another key.
    WrongKey {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// The key id in the record.
        found: String,
        /// The key id of the key given.
        expected: String,
    },
    /// A line does not match its MAC.
    Modified {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// The sequence number it should have, when known.
        seq: Option<u64>,
    },
    /// Sequence numbers jump: records `expected..found` are missing before this line.
    Missing {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// The sequence number expected.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// A sequence number comes too early, twice, or before the expected one.
    Reordered {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// The sequence number expected.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// A file ends in a partial line that no later `restart` record acknowledges.
    TornTail {
        /// The file.
        file: PathBuf,
        /// The partial line.
        line: u64,
        /// Its byte offset.
        offset: u64,
    },
    /// The chain ends without a `close`, and no record has been written for too long.
    Truncated {
        /// The last file.
        file: PathBuf,
        /// Its last line.
        line: u64,
        /// The last sequence number.
        seq: u64,
        /// When the last record was written.
        last: SystemTime,
        /// When the next checkpoint was due.
        due: SystemTime,
    },
    /// The last file given ends with a rotation to a file that was not given.
    EndsAtRotation {
        /// The file.
        file: PathBuf,
        /// Its last line.
        line: u64,
        /// The name the `rotate` record gives.
        next: String,
    },
    /// A file does not begin with a chain opener, or its link does not match.
    BrokenLink {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// Why.
        reason: String,
    },
}

impl VerifyError {
    /// A short stable label: `no_files`, `io`, `malformed`, `wrong_key`, `modified`, `missing`,
    /// `reordered`, `torn_tail`, `truncated`, `ends_at_rotation`, `broken_link`.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::NoFiles => "no_files",
            VerifyError::Io { .. } => "io",
            VerifyError::Malformed { .. } => "malformed",
            VerifyError::WrongKey { .. } => "wrong_key",
            VerifyError::Modified { .. } => "modified",
            VerifyError::Missing { .. } => "missing",
            VerifyError::Reordered { .. } => "reordered",
            VerifyError::TornTail { .. } => "torn_tail",
            VerifyError::Truncated { .. } => "truncated",
            VerifyError::EndsAtRotation { .. } => "ends_at_rotation",
            VerifyError::BrokenLink { .. } => "broken_link",
        }
    }

    /// The line the failure is at, when there is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            VerifyError::NoFiles | VerifyError::Io { .. } => None,
            VerifyError::Malformed { line, .. }
            | VerifyError::WrongKey { line, .. }
            | VerifyError::Modified { line, .. }
            | VerifyError::Missing { line, .. }
            | VerifyError::Reordered { line, .. }
            | VerifyError::TornTail { line, .. }
            | VerifyError::Truncated { line, .. }
            | VerifyError::EndsAtRotation { line, .. }
            | VerifyError::BrokenLink { line, .. } => Some(*line),
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::NoFiles => f.write_str("no audit file given"),
            VerifyError::Io { file, error } => write!(f, "{}: {error}", file.display()),
            VerifyError::Malformed { file, line, reason } => {
                write!(f, "{}:{line}: malformed: {reason}", file.display())
            }
            VerifyError::WrongKey {
                file,
                line,
                found,
                expected,
            } => write!(
                f,
                "{}:{line}: wrong key: the chain was written with key id {found}, the key given has id {expected}",
                file.display()
            ),
            VerifyError::Modified { file, line, seq } => {
                write!(f, "{}:{line}: modified: ", file.display())?;
                match seq {
                    Some(s) => write!(f, "record seq {s} does not match its MAC"),
                    None => f.write_str("the line does not match its MAC"),
                }
            }
            VerifyError::Missing {
                file,
                line,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{}:{line}: missing: expected seq {expected}, found {found}: ",
                    file.display()
                )?;
                if found - expected == 1 {
                    write!(f, "record {expected} was removed")
                } else {
                    write!(f, "records {expected}..={} were removed", found - 1)
                }
            }
            VerifyError::Reordered {
                file,
                line,
                expected,
                found,
            } => write!(
                f,
                "{}:{line}: reordered: expected seq {expected}, found {found}: records were moved, swapped or replayed",
                file.display()
            ),
            VerifyError::TornTail { file, line, offset } => write!(
                f,
                "{}:{line}: torn tail: the file ends in a partial line at byte {offset} (a crash mid-write, or the file was cut)",
                file.display()
            ),
            VerifyError::Truncated {
                file,
                line,
                seq,
                last,
                due,
            } => write!(
                f,
                "{}:{line}: truncated: the chain ends at seq {seq} ({}) without a close record, and the next checkpoint was due by {}: records after this line were cut off, or the writer stopped without closing",
                file.display(),
                rfc3339(*last),
                rfc3339(*due)
            ),
            VerifyError::EndsAtRotation { file, line, next } => write!(
                f,
                "{}:{line}: truncated: the file was rotated to {next:?}; the files after it are missing",
                file.display()
            ),
            VerifyError::BrokenLink { file, line, reason } => {
                write!(f, "{}:{line}: broken link: {reason}", file.display())
            }
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verify audit files, given in any order; see the [module docs](self).
///
/// # Errors
/// The first failure, as a [`VerifyError`].
pub fn verify_files<P: AsRef<Path>>(
    paths: &[P],
    key: &AuditKey,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        let p = p.as_ref().to_path_buf();
        if !files.contains(&p) {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(VerifyError::NoFiles);
    }
    let mut keyed = Vec::with_capacity(files.len());
    for file in files {
        let seq = first_seq(&file).map_err(|e| io_error(&file, &e))?;
        keyed.push((seq.unwrap_or(u64::MAX), file));
    }
    keyed.sort_by_key(|(seq, _)| *seq);
    let mut state = State::new(key, options);
    let count = keyed.len();
    for (i, (_, file)) in keyed.into_iter().enumerate() {
        let reader = std::fs::File::open(&file).map_err(|e| io_error(&file, &e))?;
        state.file(&file, BufReader::new(reader), i + 1 == count)?;
    }
    state.finish()
}

/// Verify one file (or stream) on its own.
///
/// # Errors
/// The first failure, as a [`VerifyError`]; `name` stands for the file in messages.
pub fn verify_reader(
    name: &Path,
    reader: impl BufRead,
    key: &AuditKey,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let mut state = State::new(key, options);
    state.file(name, reader, true)?;
    state.finish()
}

fn io_error(file: &Path, e: &io::Error) -> VerifyError {
    VerifyError::Io {
        file: file.to_path_buf(),
        error: e.to_string(),
    }
}

/// The sequence number of a file's first complete line, if it parses.
fn first_seq(path: &Path) -> io::Result<Option<u64>> {
    let file = std::fs::File::open(path)?;
    let mut line = Vec::new();
    BufReader::new(file.take(MAX_LINE_BYTES as u64 + 1)).read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(parse_line(&line).ok().map(|p| p.seq))
}

struct State<'a> {
    key: &'a AuditKey,
    options: &'a VerifyOptions,
    prev: Option<Mac>,
    next_seq: Option<u64>,
    interval: Option<Duration>,
    last_kind: Option<RecordKind>,
    last_time: Option<SystemTime>,
    last_line: u64,
    last_file: PathBuf,
    rotated_to: Option<String>,
    torn: Option<(PathBuf, u64, u64)>,
    report: VerifyReport,
}

/// What one line asks of the file loop.
enum Next {
    Continue,
    /// Sequence numbers jumped: look ahead in this file for `expected` to tell reordering from
    /// deletion.
    LookFor {
        expected: u64,
        found: u64,
    },
}

impl<'a> State<'a> {
    fn new(key: &'a AuditKey, options: &'a VerifyOptions) -> Self {
        State {
            key,
            options,
            prev: None,
            next_seq: None,
            interval: None,
            last_kind: None,
            last_time: None,
            last_line: 0,
            last_file: PathBuf::new(),
            rotated_to: None,
            torn: None,
            report: VerifyReport::default(),
        }
    }

    fn file(
        &mut self,
        file: &Path,
        mut reader: impl BufRead,
        is_last: bool,
    ) -> Result<(), VerifyError> {
        self.report.files.push(file.to_path_buf());
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        let mut offset = 0u64;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut buf)
                .map_err(|e| io_error(file, &e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let start = offset;
            offset += n as u64;
            if buf.last() != Some(&b'\n') {
                if buf.len() > MAX_LINE_BYTES {
                    return Err(VerifyError::Malformed {
                        file: file.to_path_buf(),
                        line: line_no,
                        reason: format!("longer than {MAX_LINE_BYTES} bytes"),
                    });
                }
                if is_last {
                    return Err(VerifyError::TornTail {
                        file: file.to_path_buf(),
                        line: line_no,
                        offset: start,
                    });
                }
                self.torn = Some((file.to_path_buf(), line_no, start));
                break;
            }
            let line = buf.get(..buf.len() - 1).unwrap_or(&[]);
            let next = if line_no == 1 {
                self.opening(file, line)?
            } else {
                self.record(file, line_no, line)?
            };
            if let Next::LookFor { expected, found } = next {
                return Err(self.look_ahead(file, line_no, &mut reader, expected, found));
            }
        }
        if line_no == 0 {
            self.report
                .notices
                .push(format!("{} is empty", file.display()));
        }
        Ok(())
    }

    fn look_ahead(
        &self,
        file: &Path,
        line: u64,
        reader: &mut impl BufRead,
        expected: u64,
        found: u64,
    ) -> VerifyError {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut *reader)
                .take(MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut buf)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let l = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    if parse_line(l).is_ok_and(|p| p.seq == expected) {
                        return VerifyError::Reordered {
                            file: file.to_path_buf(),
                            line,
                            expected,
                            found,
                        };
                    }
                }
            }
        }
        VerifyError::Missing {
            file: file.to_path_buf(),
            line,
            expected,
            found,
        }
    }

    /// A line that does not parse: modified if its MAC does not verify, else malformed.
    fn unparsed(&self, file: &Path, line_no: u64, line: &[u8], reason: String) -> VerifyError {
        if let (Ok((body, mac)), Some(prev)) = (split_line(line), self.prev)
            && self.key.mac(&prev, body) != mac
        {
            return VerifyError::Modified {
                file: file.to_path_buf(),
                line: line_no,
                seq: self.next_seq,
            };
        }
        VerifyError::Malformed {
            file: file.to_path_buf(),
            line: line_no,
            reason,
        }
    }

    /// The first line of a file: `start`, `link` or `restart`.
    fn opening(&mut self, file: &Path, line: &[u8]) -> Result<Next, VerifyError> {
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
        self.accept(file, 1, &p);
        Ok(Next::Continue)
    }

    /// A line after the first of a file.
    fn record(&mut self, file: &Path, line_no: u64, line: &[u8]) -> Result<Next, VerifyError> {
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
        self.accept(file, line_no, &p);
        Ok(Next::Continue)
    }

    fn accept(&mut self, file: &Path, line_no: u64, p: &ParsedLine<'_>) {
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

    fn finish(mut self) -> Result<VerifyReport, VerifyError> {
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

/// `body` with its leading `{"seq":N` replaced by `seq`.
fn with_seq(body: &[u8], seq: u64) -> Vec<u8> {
    const PREFIX: &[u8] = b"{\"seq\":";
    let rest = body.get(PREFIX.len()..).unwrap_or(&[]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(rest.get(digits..).unwrap_or(&[]));
    out
}

#[cfg(test)]
mod tests;
