//! Recovery: what an existing file's tail says (its last record verifies, or not), the rotated
//! files beside it, and [`Writer::open`], which continues the chain or starts a new one by the
//! rules of the module docs' table.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::chain::{AuditKey, GENESIS, MAX_LINE_BYTES, Mac, RecordKind, parse_line};
use crate::sink::TRACING_TARGET;

use super::head::{self, HeadRead, Previous};
use super::writer::{Opening, Writer, private};

/// How far back from the end [`mac_at`] looks for the head's record: the head is saved after
/// every batch, so only one batch (at most 1024 records, 256 KiB) can follow it.
const HEAD_WINDOW: u64 = 4 * 1024 * 1024;

/// What the end of an existing file says.
#[derive(Debug)]
pub(super) enum Tail {
    /// The last complete record verifies.
    Good {
        seq: u64,
        mac: Mac,
        kind: RecordKind,
        first_seq: Option<u64>,
        torn_offset: Option<u64>,
    },
    /// It does not, or cannot be read.
    Unverifiable {
        last_seq: Option<u64>,
        first_seq: Option<u64>,
        torn_offset: Option<u64>,
        reason: &'static str,
    },
}

/// Read the first line's sequence number and the last complete records of a non-empty file.
pub(super) fn read_tail(path: &Path, key: &AuditKey) -> io::Result<Tail> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // First line.
    let mut head = Vec::new();
    (&mut file)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_to_end(&mut head)?;
    let first_seq = head
        .split(|b| *b == b'\n')
        .next()
        .filter(|_| head.contains(&b'\n'))
        .and_then(|l| parse_line(l).ok())
        .map(|l| l.seq);
    // Last lines.
    let window = (2 * MAX_LINE_BYTES as u64 + 2).min(len);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
    file.read_to_end(&mut tail)?;
    let base = len - window;
    let complete_end = tail.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
    let torn_offset = match complete_end {
        Some(end) if end == tail.len() => None,
        Some(end) => Some(base + end as u64),
        None if base == 0 => Some(0),
        None => Some(base),
    };
    let complete = complete_end.and_then(|end| tail.get(..end)).unwrap_or(&[]);
    let mut lines = complete
        .strip_suffix(b"\n")
        .unwrap_or(complete)
        .rsplit(|b| *b == b'\n');
    let last = lines.next().filter(|l| !l.is_empty());
    let Some(last) = last else {
        return Ok(Tail::Unverifiable {
            last_seq: None,
            first_seq,
            torn_offset,
            reason: "no complete record at the end of the file",
        });
    };
    let Ok(parsed) = parse_line(last) else {
        return Ok(Tail::Unverifiable {
            last_seq: None,
            first_seq,
            torn_offset,
            reason: "the last complete line is not a record",
        });
    };
    let prev = match parsed.kind {
        RecordKind::Start => Some(GENESIS),
        RecordKind::Link | RecordKind::Restart => parsed.prev_mac,
        _ => lines.next().and_then(|l| parse_line(l).ok()).map(|p| p.mac),
    };
    let key_ok =
        parsed.kind != RecordKind::Start || parsed.key_id.as_deref() == Some(key.id().as_str());
    match prev {
        Some(prev) if key_ok && key.mac(&prev, parsed.body) == parsed.mac => Ok(Tail::Good {
            seq: parsed.seq,
            mac: parsed.mac,
            kind: parsed.kind,
            first_seq,
            torn_offset,
        }),
        _ => Ok(Tail::Unverifiable {
            last_seq: Some(parsed.seq),
            first_seq,
            torn_offset,
            reason: "the last record does not verify with this key",
        }),
    }
}

/// The MAC of the record with sequence number `seq` among the last [`HEAD_WINDOW`] bytes of a
/// file.
pub(super) fn mac_at(path: &Path, seq: u64) -> Option<Mac> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub(HEAD_WINDOW);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n')
        .skip(usize::from(from > 0))
        .filter_map(|l| parse_line(l).ok())
        .find(|p| p.seq == seq)
        .map(|p| p.mac)
}

/// What the previous run left, judged against the head file: see [`Previous::judge`].
fn judge(head: &HeadRead, path: &Path, tail: &Tail) -> Option<Previous> {
    match tail {
        Tail::Good { seq, mac, kind, .. } => Some(Previous::judge(head, *seq, *mac, *kind, |s| {
            mac_at(path, s)
        })),
        Tail::Unverifiable { last_seq, .. } => match head {
            HeadRead::Found(h) if last_seq.is_none_or(|s| s < h.seq) => {
                Some(Previous::MissingTail {
                    first: last_seq.map_or(0, |s| s + 1),
                    last: h.seq,
                })
            }
            _ => None,
        },
    }
}

/// The rotated files next to the live one, newest (highest first sequence number) last.
pub(super) fn rotated_files(dir: &Path, stem: &str, ext: &str) -> Vec<(u64, u32, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, u32, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| {
            let middle = name
                .strip_prefix(stem)?
                .strip_prefix('-')?
                .strip_suffix(ext)?;
            let (digits, n) = match middle.split_once('-') {
                Some((d, n)) => (d, n.parse::<u32>().ok()?),
                None => (middle, 0),
            };
            if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, n, name))
        })
        .collect();
    found.sort();
    found
}

impl Writer {
    /// Open (or continue) the chain; see the module docs' table.
    pub(super) fn open(&mut self) -> io::Result<()> {
        self.file = None;
        self.batch.clear();
        let saved = head::read(&self.head_path, &self.key);
        let live_len = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (opening, next_seq, head, append) = if live_len.is_some_and(|l| l > 0) {
            let tail = read_tail(&self.path, &self.key)?;
            self.previous = judge(&saved, &self.path, &tail);
            match tail {
                Tail::Good {
                    seq,
                    mac,
                    first_seq,
                    torn_offset: None,
                    ..
                } => {
                    self.file_first_seq = first_seq.unwrap_or(seq);
                    (Opening::Resume, seq + 1, mac, true)
                }
                Tail::Good {
                    seq,
                    mac,
                    first_seq,
                    torn_offset: Some(torn_offset),
                    ..
                } => {
                    let name = self.rotated_name(first_seq);
                    std::fs::rename(&self.path, self.dir.join(&name))?;
                    let opening = Opening::Restart {
                        prev_file: name,
                        prev_seq: seq,
                        prev_mac: mac,
                        torn_offset: Some(torn_offset),
                        reason: Some("the last line was torn"),
                    };
                    (opening, seq + 1, mac, false)
                }
                Tail::Unverifiable {
                    last_seq,
                    first_seq,
                    torn_offset,
                    reason,
                } => {
                    let name = self.rotated_name(first_seq);
                    std::fs::rename(&self.path, self.dir.join(&name))?;
                    tracing::warn!(
                        target: TRACING_TARGET,
                        file = %self.path.display(),
                        moved_to = %name,
                        "audit chain cannot be continued ({reason}); starting a new chain"
                    );
                    let opening = Opening::Start {
                        reason: Some(reason),
                        prev_file: Some(name),
                        torn_offset,
                    };
                    (opening, last_seq.map_or(0, |s| s + 1), GENESIS, false)
                }
            }
        } else if let Some((_, _, name)) = rotated_files(&self.dir, &self.stem, &self.ext).pop() {
            // The live file is missing or empty: continue from the newest rotated file.
            let rotated = self.dir.join(&name);
            let tail = read_tail(&rotated, &self.key)?;
            self.previous = judge(&saved, &rotated, &tail);
            match tail {
                Tail::Good {
                    seq,
                    mac,
                    torn_offset: None,
                    ..
                } => (
                    // A crash between a rotation's rename and the new file, or a deleted live
                    // file: the two cannot be told apart, so say so in the chain.
                    Opening::Restart {
                        prev_file: name,
                        prev_seq: seq,
                        prev_mac: mac,
                        torn_offset: None,
                        reason: Some("the live file was missing or empty"),
                    },
                    seq + 1,
                    mac,
                    false,
                ),
                Tail::Good {
                    seq,
                    mac,
                    torn_offset: Some(torn_offset),
                    ..
                } => (
                    Opening::Restart {
                        prev_file: name,
                        prev_seq: seq,
                        prev_mac: mac,
                        torn_offset: Some(torn_offset),
                        reason: Some("the live file was missing or empty; the last file ends torn"),
                    },
                    seq + 1,
                    mac,
                    false,
                ),
                Tail::Unverifiable {
                    last_seq,
                    torn_offset,
                    reason,
                    ..
                } => (
                    Opening::Start {
                        reason: Some(reason),
                        prev_file: Some(name),
                        torn_offset,
                    },
                    last_seq.map_or(0, |s| s + 1),
                    GENESIS,
                    false,
                ),
            }
        } else {
            // No log at all: a head says there was one.
            self.previous = match saved {
                HeadRead::Found(h) => Some(Previous::MissingTail {
                    first: 0,
                    last: h.seq,
                }),
                _ => None,
            };
            (
                Opening::Start {
                    reason: None,
                    prev_file: None,
                    torn_offset: None,
                },
                0,
                GENESIS,
                false,
            )
        };
        let file = if append {
            OpenOptions::new().append(true).open(&self.path)?
        } else {
            private(OpenOptions::new().create(true).write(true).truncate(true)).open(&self.path)?
        };
        self.size = if append { file.metadata()?.len() } else { 0 };
        if !append {
            self.file_first_seq = next_seq;
        }
        self.file = Some(file);
        self.next_seq = next_seq;
        self.head = head;
        self.previous = self.recovered(self.previous);
        self.write_opening(opening);
        self.report_previous(&saved);
        self.write_batch()?;
        self.sync_file()?;
        self.sync_dir();
        self.failed = false;
        Ok(())
    }
}
