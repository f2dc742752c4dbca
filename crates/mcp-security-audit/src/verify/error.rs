//! [`VerifyError`]: the first failure the verifier found, with the file and line it is in.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::chain::rfc3339;

/// The first failure found; see the [module docs](super). Lines are numbered from 1.
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
    /// When the writer restarted, the log ended before the head it had written (its head file
    /// says so): records `first..=last` were cut from the end.
    TailLost {
        /// The file.
        file: PathBuf,
        /// The line of the record that reports it (`resume`, `restart` or `start`).
        line: u64,
        /// The first sequence number lost.
        first: u64,
        /// The last sequence number lost.
        last: u64,
    },
    /// Public verification: a signature does not verify, or the records it signs do not hash to
    /// the value it signed. Records `first_seq..=seq` are not proven.
    BadSignature {
        /// The file of the signed record.
        file: PathBuf,
        /// Its line.
        line: u64,
        /// Its sequence number.
        seq: u64,
        /// The file of the first record not proven.
        first_file: PathBuf,
        /// Its line.
        first_line: u64,
        /// Its sequence number.
        first_seq: u64,
        /// What did not match.
        reason: String,
    },
    /// Public verification: a record that must carry a signature does not, or the trail is
    /// signed with another key, or not at all.
    Unsigned {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// Why.
        reason: String,
    },
    /// The log does not hold a checkpoint its anchor recorded (rewritten, cut or rolled back).
    Anchor {
        /// The log file (or the anchor file, for a malformed anchor).
        file: PathBuf,
        /// The line.
        line: u64,
        /// What does not match.
        reason: String,
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
    /// `reordered`, `torn_tail`, `truncated`, `ends_at_rotation`, `tail_lost`, `broken_link`,
    /// `bad_signature`, `unsigned`, `anchor`.
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
            VerifyError::TailLost { .. } => "tail_lost",
            VerifyError::BrokenLink { .. } => "broken_link",
            VerifyError::BadSignature { .. } => "bad_signature",
            VerifyError::Unsigned { .. } => "unsigned",
            VerifyError::Anchor { .. } => "anchor",
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
            | VerifyError::TailLost { line, .. }
            | VerifyError::BrokenLink { line, .. }
            | VerifyError::BadSignature { line, .. }
            | VerifyError::Unsigned { line, .. }
            | VerifyError::Anchor { line, .. } => Some(*line),
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
            VerifyError::TailLost {
                file,
                line,
                first,
                last,
            } => {
                write!(
                    f,
                    "{}:{line}: tail lost: when the writer restarted, the log ended before the head it had last written: ",
                    file.display()
                )?;
                if first == last {
                    write!(f, "record {first} was cut from the end")
                } else {
                    write!(f, "records {first}..={last} were cut from the end")
                }
            }
            VerifyError::BrokenLink { file, line, reason } => {
                write!(f, "{}:{line}: broken link: {reason}", file.display())
            }
            VerifyError::BadSignature {
                file,
                line,
                seq,
                first_file,
                first_line,
                first_seq,
                reason,
            } => write!(
                f,
                "{}:{line}: bad signature: {reason}; first bad record: seq {first_seq} at {}:{first_line} (records {first_seq}..={seq} are not proven: one was modified, removed or inserted)",
                file.display(),
                first_file.display()
            ),
            VerifyError::Anchor { file, line, reason } => {
                write!(f, "{}:{line}: anchor: {reason}", file.display())
            }
            VerifyError::Unsigned { file, line, reason } => {
                write!(f, "{}:{line}: unsigned: {reason}", file.display())
            }
        }
    }
}

impl std::error::Error for VerifyError {}
