//! [`verify_public`]: check a trail with the Ed25519 public key only, without the chain's HMAC
//! key — what an outside auditor can do.
//!
//! It checks, for the files given in any order (sorted into chain order):
//!
//! - **order and completeness**: sequence numbers go up by one across lines and files, every
//!   file begins with a `start`, `link` or `restart` record that follows on from the previous
//!   file (a missing, inserted or swapped line is named exactly);
//! - **signatures**: every `checkpoint`, `rotate` and `close` record of a run that names a
//!   signing key carries a signature by the key given, over its own bytes and a SHA-256 of the
//!   records since the previous one (see [`crate::signing`]); a record modified in between is
//!   found at the next signed record, which names the first record it no longer proves;
//! - the head-file verdicts of restarts, as [`verify_files`](super::verify_files) does: a lost
//!   tail fails.
//!
//! Records no signature covers — after the last signed record (the writer is running, or was
//! killed before its next checkpoint), or before a restart that followed such a kill — pass and
//! are listed in [`PublicReport::unproven`]: only the HMAC chain protects them.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::chain::{MAX_LINE_BYTES, ParsedLine, RecordKind, parse_line};
use crate::signing::{PublicKey, SIG_MEMBER};

use super::records::judge_previous;
use super::{VerifyError, VerifyOptions, first_seq, io_error};

/// What a successful public verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicReport {
    /// The files, in chain order.
    pub files: Vec<PathBuf>,
    /// Lines checked.
    pub lines: u64,
    /// Lines covered by a valid signature.
    pub proven: u64,
    /// Valid signatures.
    pub signatures: u64,
    /// The first sequence number.
    pub first_seq: Option<u64>,
    /// The last sequence number.
    pub last_seq: Option<u64>,
    /// The chain ends with a signed `close` record.
    pub closed: bool,
    /// The identifier of the public key ([`PublicKey::id`]).
    pub key_id: String,
    /// Ranges of records no signature covers, and why.
    pub unproven: Vec<String>,
    /// Restarts that did not follow a clean close.
    pub unclean_resumes: Vec<String>,
    /// Things that passed but deserve a look.
    pub notices: Vec<String>,
}

impl fmt::Display for PublicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: {} file(s), {} lines, {} signatures by key {}: {} of {} lines proven",
            self.files.len(),
            self.lines,
            self.signatures,
            self.key_id,
            self.proven,
            self.lines
        )?;
        if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
            write!(f, ", seq {a}..={b}")?;
        }
        f.write_str(if self.closed { ", closed" } else { ", open" })
    }
}

/// Verify audit files with the public key of the key that signed their checkpoints, without
/// the chain key: sequence numbers go up by one across lines and files (a missing, inserted or
/// swapped line is named exactly); every `checkpoint`, `rotate` and `close` record of a run that
/// names a signing key carries a valid signature over its own bytes and a SHA-256 of the records
/// since the previous one (see [`crate::signing`]), so a record modified in between is found at
/// the next signed record, which names the first record it no longer proves; a restart that
/// found a cut tail fails, as with [`verify_files`](super::verify_files). Records no signature
/// covers yet (after the last signed record, or before a restart that followed a kill) pass and
/// are listed in [`PublicReport::unproven`].
///
/// ```
/// use mcp_security_audit::chain::AuditKey;
/// use mcp_security_audit::file::FileSink;
/// use mcp_security_audit::signing::SigningKey;
/// use mcp_security_audit::verify::{verify_public, VerifyOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("mcp-audit-pub-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let signer = SigningKey::generate()?;
/// let public = signer.public_key(); // hand `public.to_base64()` to the auditor
/// let path = dir.join("audit.jsonl");
/// let key = AuditKey::from_bytes(b"a key of at least thirty-two bytes!")?;
/// let sink = FileSink::builder(&path, key).signing_key(signer).build()?;
/// sink.close().await?;
/// let report = verify_public(&[&path], &public, &VerifyOptions::default())?;
/// assert!(report.closed && report.proven == report.lines);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The first failure, as a [`VerifyError`]: the record-level ones of
/// [`verify_files`](super::verify_files) that need no key, and
/// [`BadSignature`](VerifyError::BadSignature) and [`Unsigned`](VerifyError::Unsigned).
pub fn verify_public<P: AsRef<Path>>(
    paths: &[P],
    key: &PublicKey,
    options: &VerifyOptions,
) -> Result<PublicReport, VerifyError> {
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
    let mut state = Public::new(key, options);
    let count = keyed.len();
    for (i, (_, file)) in keyed.into_iter().enumerate() {
        let reader = std::fs::File::open(&file).map_err(|e| io_error(&file, &e))?;
        state.file(&file, BufReader::new(reader), i + 1 == count)?;
    }
    state.finish()
}

/// Records since the last signed one.
struct Segment {
    from: u64,
    file: PathBuf,
    line: u64,
    lines: u64,
    hash: Sha256,
}

struct Public<'a> {
    key: &'a PublicKey,
    options: &'a VerifyOptions,
    next_seq: Option<u64>,
    /// `None` before the first signed record when the files begin in the middle of a segment.
    seg: Option<Segment>,
    /// Lines before the first signed record when `seg` is `None`: first seq, file, line, count.
    orphans: Option<(u64, PathBuf, u64, u64)>,
    /// The current run names a signing key.
    signing: bool,
    interval: Option<Duration>,
    last_kind: Option<RecordKind>,
    last_time: Option<SystemTime>,
    last_file: PathBuf,
    last_line: u64,
    rotated_to: Option<String>,
    torn: Option<(PathBuf, u64, u64)>,
    report: PublicReport,
}

impl<'a> Public<'a> {
    fn new(key: &'a PublicKey, options: &'a VerifyOptions) -> Self {
        Public {
            key,
            options,
            next_seq: None,
            seg: None,
            orphans: None,
            signing: false,
            interval: None,
            last_kind: None,
            last_time: None,
            last_file: PathBuf::new(),
            last_line: 0,
            rotated_to: None,
            torn: None,
            report: PublicReport {
                key_id: key.id(),
                ..PublicReport::default()
            },
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
                if buf.len() > MAX_LINE_BYTES || is_last {
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
            let p = parse_line(line).map_err(|e| VerifyError::Malformed {
                file: file.to_path_buf(),
                line: line_no,
                reason: format!("not a record: {e}"),
            })?;
            self.order(file, line_no, &p)?;
            if let Some(unclean) = judge_previous(file, line_no, &p)? {
                self.report.unclean_resumes.push(unclean);
            }
            self.segment(file, line_no, &p, &buf)?;
            self.accept(file, line_no, &p);
        }
        if line_no == 0 {
            self.report
                .notices
                .push(format!("{} is empty", file.display()));
        }
        Ok(())
    }

    /// Sequence numbers, file openers, torn lines.
    fn order(&mut self, file: &Path, line_no: u64, p: &ParsedLine<'_>) -> Result<(), VerifyError> {
        let f = || file.to_path_buf();
        if line_no == 1 {
            if !p.kind.opens_file() {
                return Err(VerifyError::BrokenLink {
                    file: f(),
                    line: 1,
                    reason: format!(
                        "the file begins with a {} record, not start, link or restart: its beginning was cut",
                        p.kind
                    ),
                });
            }
            if let Some((tf, tl, off)) = self.torn.take() {
                if p.kind != RecordKind::Restart || p.torn_offset != Some(off) {
                    return Err(VerifyError::TornTail {
                        file: tf,
                        line: tl,
                        offset: off,
                    });
                }
                self.report.notices.push(format!(
                    "{}:{tl}: torn line at byte {off}, acknowledged by {}:1",
                    tf.display(),
                    file.display()
                ));
            }
            if matches!(p.kind, RecordKind::Link | RecordKind::Restart)
                && p.prev_seq.and_then(|s| s.checked_add(1)) != Some(p.seq)
            {
                return Err(VerifyError::BrokenLink {
                    file: f(),
                    line: 1,
                    reason: format!("a {} record that does not follow on from prev_seq", p.kind),
                });
            }
        } else if p.kind.opens_file() {
            return Err(VerifyError::Malformed {
                file: f(),
                line: line_no,
                reason: format!("a {} record inside a file", p.kind),
            });
        }
        if let Some(expected) = self.next_seq
            && p.seq != expected
        {
            if p.kind == RecordKind::Start && p.seq > expected {
                self.report.notices.push(format!(
                    "{}:{line_no}: a new chain starts at seq {}",
                    file.display(),
                    p.seq
                ));
            } else if p.seq > expected {
                return Err(VerifyError::Missing {
                    file: f(),
                    line: line_no,
                    expected,
                    found: p.seq,
                });
            } else {
                return Err(VerifyError::Reordered {
                    file: f(),
                    line: line_no,
                    expected,
                    found: p.seq,
                });
            }
        }
        Ok(())
    }

    /// Hash the line into its segment, or check the signature of a signed record.
    fn segment(
        &mut self,
        file: &Path,
        line_no: u64,
        p: &ParsedLine<'_>,
        full: &[u8],
    ) -> Result<(), VerifyError> {
        let f = || file.to_path_buf();
        if matches!(
            p.kind,
            RecordKind::Start | RecordKind::Resume | RecordKind::Restart
        ) {
            self.unproven("the writer stopped before signing them");
            match p.sign_key.as_deref() {
                Some(id) if id != self.report.key_id => {
                    return Err(VerifyError::Unsigned {
                        file: f(),
                        line: line_no,
                        reason: format!(
                            "this run signs with key {id}, not with the key given ({})",
                            self.report.key_id
                        ),
                    });
                }
                Some(_) => self.signing = true,
                None => {
                    self.signing = false;
                    self.report.notices.push(format!(
                        "{}:{line_no}: the writer ran without a signing key from seq {}",
                        file.display(),
                        p.seq
                    ));
                }
            }
            self.seg = Some(Segment {
                from: p.seq,
                file: f(),
                line: line_no,
                lines: 0,
                hash: Sha256::new(),
            });
        }
        let signed_kind = matches!(
            p.kind,
            RecordKind::Checkpoint | RecordKind::Rotate | RecordKind::Close
        );
        let Some(sig) = p.sig.as_deref().filter(|_| signed_kind) else {
            if signed_kind && self.signing {
                return Err(VerifyError::Unsigned {
                    file: f(),
                    line: line_no,
                    reason: format!(
                        "the {} record carries no signature, but its run signs",
                        p.kind
                    ),
                });
            }
            match (&mut self.seg, &mut self.orphans) {
                (Some(seg), _) => {
                    seg.hash.update(full);
                    seg.lines += 1;
                }
                (None, Some(o)) => o.3 += 1,
                (None, None) => self.orphans = Some((p.seq, f(), line_no, 1)),
            }
            return Ok(());
        };
        let bad = |first_file: PathBuf, first_line: u64, first_seq: u64, reason: &str| {
            VerifyError::BadSignature {
                file: file.to_path_buf(),
                line: line_no,
                seq: p.seq,
                first_file,
                first_line,
                first_seq,
                reason: reason.to_owned(),
            }
        };
        let signed = rfind(p.body, SIG_MEMBER).and_then(|at| p.body.get(..at));
        if !signed.is_some_and(|signed| self.key.verify_record(signed, sig)) {
            return Err(bad(
                f(),
                line_no,
                p.seq,
                "the signature does not verify with the key given",
            ));
        }
        match self.seg.take() {
            Some(seg) => {
                let digest: [u8; 32] = seg.hash.finalize().into();
                if p.seg_from != Some(seg.from) || p.seg_hash != Some(digest) {
                    return Err(bad(
                        seg.file,
                        seg.line,
                        seg.from,
                        "the records it signs are not the records in the file",
                    ));
                }
                self.report.proven += seg.lines;
            }
            None => {
                self.unproven("they belong to a segment that begins in a file not given");
            }
        }
        self.report.proven += 1;
        self.report.signatures += 1;
        self.signing = true;
        self.seg = Some(Segment {
            from: p.seq + 1,
            file: f(),
            line: line_no + 1,
            lines: 0,
            hash: Sha256::new(),
        });
        Ok(())
    }

    /// The records of the current segment (or before the first signature) are not proven.
    fn unproven(&mut self, why: &str) {
        let range = match (self.seg.take(), self.orphans.take()) {
            (Some(seg), _) if seg.lines > 0 => Some((seg.from, seg.file, seg.line, seg.lines)),
            (_, Some(o)) => Some(o),
            _ => None,
        };
        if let Some((from, file, line, count)) = range {
            self.report.unproven.push(format!(
                "records {from}..={} from {}:{line} are not covered by a signature: {why}",
                from + count - 1,
                file.display()
            ));
        }
    }

    fn accept(&mut self, file: &Path, line_no: u64, p: &ParsedLine<'_>) {
        self.next_seq = p.seq.checked_add(1);
        if let Some(secs) = p.checkpoint_interval_secs {
            self.interval = Some(Duration::from_secs(secs));
        }
        let r = &mut self.report;
        r.lines += 1;
        r.first_seq.get_or_insert(p.seq);
        r.last_seq = Some(p.seq);
        self.rotated_to = p.file.clone().filter(|_| p.kind == RecordKind::Rotate);
        self.last_kind = Some(p.kind);
        self.last_time = Some(p.timestamp);
        self.last_file = file.to_path_buf();
        self.last_line = line_no;
    }

    fn finish(mut self) -> Result<PublicReport, VerifyError> {
        if let Some((file, line, offset)) = self.torn.take() {
            return Err(VerifyError::TornTail { file, line, offset });
        }
        let file = self.last_file.clone();
        let line = self.last_line;
        if self.report.signatures == 0 && !self.signing {
            return Err(VerifyError::Unsigned {
                file,
                line,
                reason: "the trail carries no signature: it was written without a signing key (AUDIT_SIGNING_KEY_FILE)".into(),
            });
        }
        match self.last_kind {
            None => {
                return Err(VerifyError::Malformed {
                    file,
                    line: 0,
                    reason: "no record in the files given".into(),
                });
            }
            Some(RecordKind::Close) if self.seg.as_ref().is_some_and(|s| s.lines == 0) => {
                self.report.closed = true;
            }
            Some(RecordKind::Rotate) if !self.options.allow_rotated_end => {
                return Err(VerifyError::EndsAtRotation {
                    file,
                    line,
                    next: self.rotated_to.clone().unwrap_or_default(),
                });
            }
            Some(_) => {
                if let (Some(now), Some(interval), Some(last)) =
                    (self.options.now, self.interval, self.last_time)
                    && now > last + interval * 2
                {
                    return Err(VerifyError::Truncated {
                        file,
                        line,
                        seq: self.report.last_seq.unwrap_or(0),
                        last,
                        due: last + interval,
                    });
                }
            }
        }
        self.unproven(
            "they follow the last signed record (the writer is running, or stopped before its next checkpoint)",
        );
        Ok(self.report)
    }
}

/// The position of the last occurrence of `needle` in `haystack`.
fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
#[path = "public_tests.rs"]
mod tests;
