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
//! | [`TailLost`](VerifyError::TailLost) | a `resume`, `restart` or `start` record says the writer found the log ending before the head it had last written (its head file): the records it names were cut |
//! | [`BrokenLink`](VerifyError::BrokenLink) | a file does not begin with a `start`, `link` or `restart` record, or its link does not match the previous file |
//! | [`WrongKey`](VerifyError::WrongKey) | a `start` record names another key |
//! | [`Malformed`](VerifyError::Malformed) | a line has a valid MAC but is not a record (a writer bug), or cannot be checked |
//!
//! What passes, and is listed in [`VerifyReport::notices`]: a set that begins with a `link`
//! (older files removed by retention), a torn line acknowledged by the next file's `restart`
//! record, a new chain (`start`) in a later file, and an open end (the writer is running: records
//! after the last checkpoint, the last one recent enough).
//!
//! [`verify_public`] checks the same files with the Ed25519 public key of the key that signed
//! their checkpoints instead of the chain key: order, completeness and signatures, naming the
//! first record a signature no longer proves.
//!
//! [`verify_anchor`] compares the files with the anchor file that kept a copy of their
//! checkpoints ([`crate::anchor`]): what was rewritten, cut or rolled back before an anchored
//! checkpoint is found even by someone who holds the chain key or restored the head file.
//!
//! Every restart that did not follow a clean close (an unclean stop, a missing or invalid head
//! file) passes and is listed in [`VerifyReport::unclean_resumes`].
//!
//! Limits: deleting the newest records of a live chain up to a moment less than two checkpoint
//! intervals ago, or deleting the whole end including files, cannot be seen from the files
//! alone. The checkpoints' `tracing` events (sequence and MAC) give an external copy to compare
//! [`VerifyReport::last_seq`] and [`VerifyReport::head`] with.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::chain::{AuditKey, MAX_LINE_BYTES, Mac, RecordKind, parse_line, split_line};

mod anchor;
mod end;
mod error;
mod links;
mod public;
mod records;

pub use anchor::{AnchorReport, verify_anchor};
pub use error::VerifyError;
pub use public::{PublicReport, verify_public};

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
    /// Every restart of the writer that did not follow a clean close: an unclean stop (a crash,
    /// SIGKILL), or a head file that was missing or did not verify.
    pub unclean_resumes: Vec<String>,
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
}

#[cfg(test)]
mod tests;
