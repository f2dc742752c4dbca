//! [`verify_anchor`]: compare a log with the anchor file that kept a copy of its checkpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chain::{MAX_LINE_BYTES, Mac, hex, parse_line, unhex_mac};

use super::{VerifyError, first_seq, io_error};

/// What a successful anchor check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorReport {
    /// Anchored records read from the anchor file.
    pub anchored: u64,
    /// Anchored records found in the log with the same MAC.
    pub matched: u64,
    /// The highest anchored sequence number.
    pub last_anchored: Option<u64>,
    /// Things that passed but deserve a look.
    pub notices: Vec<String>,
}

impl fmt::Display for AnchorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: the log holds {} of {} anchored checkpoints",
            self.matched, self.anchored
        )?;
        if let Some(seq) = self.last_anchored {
            write!(f, ", the last at seq {seq}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawAnchor<'a> {
    seq: u64,
    #[serde(borrow)]
    mac: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
}

struct Entry {
    mac: Mac,
    line: u64,
    timestamp: String,
    found: bool,
}

/// Check that the log files (any order) hold every record the anchor file recorded, with the
/// same MAC: a log rewritten before an anchored checkpoint (even with the chain key), or cut
/// or rolled back to before one (even together with its head file), fails, naming the record.
/// Anchored records older than the files given (removed by retention) pass with a notice. The
/// chain itself is checked by [`verify_files`](super::verify_files) or
/// [`verify_public`](super::verify_public); see [`crate::anchor`] for an example.
///
/// # Errors
/// [`VerifyError::Anchor`] naming the log line (or the end of the log) that does not match,
/// [`VerifyError::Malformed`] for an anchor line that is not one, [`VerifyError::Io`].
pub fn verify_anchor<P: AsRef<Path>>(
    paths: &[P],
    anchor: &Path,
) -> Result<AnchorReport, VerifyError> {
    let mut report = AnchorReport::default();
    let mut entries = read_anchor(anchor, &mut report)?;
    if entries.is_empty() {
        return Err(VerifyError::Malformed {
            file: anchor.to_path_buf(),
            line: 0,
            reason: "the anchor file holds no checkpoint".into(),
        });
    }
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for p in paths {
        let p = p.as_ref().to_path_buf();
        if files.iter().any(|(_, f)| *f == p) {
            continue;
        }
        let seq = first_seq(&p).map_err(|e| io_error(&p, &e))?;
        files.push((seq.unwrap_or(u64::MAX), p));
    }
    if files.is_empty() {
        return Err(VerifyError::NoFiles);
    }
    files.sort_by_key(|(seq, _)| *seq);
    let mut first: Option<u64> = None;
    let mut last: Option<(u64, PathBuf, u64)> = None;
    for (_, file) in &files {
        let reader = std::fs::File::open(file).map_err(|e| io_error(file, &e))?;
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut buf)
                .map_err(|e| io_error(file, &e))?;
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            line_no += 1;
            let Ok(p) = parse_line(buf.get(..buf.len() - 1).unwrap_or(&[])) else {
                continue;
            };
            first.get_or_insert(p.seq);
            last = Some((p.seq, file.clone(), line_no));
            if let Some(entry) = entries.get_mut(&p.seq) {
                if entry.mac != p.mac {
                    return Err(VerifyError::Anchor {
                        file: file.clone(),
                        line: line_no,
                        reason: format!(
                            "seq {} has MAC {} here, but {}:{} recorded {} at {}: the log was rewritten",
                            p.seq,
                            hex(&p.mac),
                            anchor.display(),
                            entry.line,
                            hex(&entry.mac),
                            entry.timestamp
                        ),
                    });
                }
                entry.found = true;
                report.matched += 1;
            }
        }
    }
    let (first, (last_seq, last_file, last_line)) = match (first, last) {
        (Some(f), Some(l)) => (f, l),
        _ => {
            return Err(VerifyError::Malformed {
                file: files.last().map(|(_, f)| f.clone()).unwrap_or_default(),
                line: 0,
                reason: "no record in the files given".into(),
            });
        }
    };
    let mut older = 0u64;
    for (seq, entry) in entries.iter().filter(|(_, e)| !e.found) {
        if *seq < first {
            older += 1;
            continue;
        }
        let reason = if *seq > last_seq {
            format!(
                "the log ends at seq {last_seq}, but seq {seq} was anchored at {} ({}:{}): records {}..={seq} were cut from the end, or the log was rolled back",
                entry.timestamp,
                anchor.display(),
                entry.line,
                last_seq + 1
            )
        } else {
            format!(
                "seq {seq} was anchored at {} ({}:{}) but is not in the files given",
                entry.timestamp,
                anchor.display(),
                entry.line
            )
        };
        return Err(VerifyError::Anchor {
            file: last_file,
            line: last_line,
            reason,
        });
    }
    if older > 0 {
        report.notices.push(format!(
            "{older} anchored checkpoint(s) before seq {first} are in files not given"
        ));
    }
    Ok(report)
}

/// The anchored records, by sequence number (a later line for the same number wins).
fn read_anchor(
    anchor: &Path,
    report: &mut AnchorReport,
) -> Result<BTreeMap<u64, Entry>, VerifyError> {
    let text = std::fs::read(anchor).map_err(|e| io_error(anchor, &e))?;
    let mut entries = BTreeMap::new();
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        report.notices.push(format!(
            "{}: the last line is incomplete and was skipped",
            anchor.display()
        ));
    }
    for (i, line) in text
        .get(..complete)
        .unwrap_or(&[])
        .split(|b| *b == b'\n')
        .enumerate()
    {
        if line.is_empty() {
            continue;
        }
        let line_no = i as u64 + 1;
        let bad = |reason: &str| VerifyError::Malformed {
            file: anchor.to_path_buf(),
            line: line_no,
            reason: reason.to_owned(),
        };
        let raw: RawAnchor<'_> =
            serde_json::from_slice(line).map_err(|_| bad("not an anchored checkpoint"))?;
        let mac =
            unhex_mac(raw.mac.as_bytes()).ok_or_else(|| bad("member \"mac\" is malformed"))?;
        report.anchored += 1;
        report.last_anchored = Some(report.last_anchored.map_or(raw.seq, |s| s.max(raw.seq)));
        entries.insert(
            raw.seq,
            Entry {
                mac,
                line: line_no,
                timestamp: raw.timestamp.map(|t| t.into_owned()).unwrap_or_default(),
                found: false,
            },
        );
    }
    Ok(entries)
}

#[cfg(test)]
#[path = "anchor_tests.rs"]
mod tests;
