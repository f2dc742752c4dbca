//! The head file: the sequence number and MAC of the last record the writer wrote, kept outside
//! the log so that a restart can tell a clean close, an unclean stop and a cut tail apart.
//!
//! One line, replaced atomically (written to `<head>.tmp`, then renamed) after every batch the
//! writer flushes and at close:
//!
//! ```text
//! {"version":1,"key_id":"…","seq":41,"mac":"9f2c…","tag":"…(64 hex)"}
//! ```
//!
//! `tag` is an HMAC-SHA256, with a key derived from the chain key, over the bytes before
//! `,"tag":"`: without the chain key the head cannot be forged. It can be *rolled back* (an
//! older copy put in its place), which only an anchored checkpoint kept elsewhere can show.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chain::{AuditKey, Mac, RecordKind, hex, unhex_mac};

use super::writer::private;

/// What separates the head's body from its tag.
const TAG_MEMBER: &str = ",\"tag\":\"";

/// The record the writer last wrote, as the head file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) mac: Mac,
}

/// What reading the head file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeadRead {
    /// No head file.
    Missing,
    /// A head file that does not verify with the key, or cannot be read.
    Invalid(&'static str),
    /// A valid head.
    Found(Head),
}

#[derive(Deserialize)]
struct RawHead<'a> {
    version: u64,
    #[serde(borrow)]
    key_id: std::borrow::Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    mac: std::borrow::Cow<'a, str>,
}

fn tag(key: &AuditKey, body: &[u8]) -> Mac {
    key.mac(&key.derive(b"mcp-security-audit head file v1"), body)
}

/// The head file's default path: `<log file>.head` next to it.
pub(super) fn default_path(log: &Path) -> PathBuf {
    let mut name = log
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".head");
    log.with_file_name(name)
}

/// Read and check the head file.
pub(super) fn read(path: &Path, key: &AuditKey) -> HeadRead {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HeadRead::Missing,
        Err(_) => return HeadRead::Invalid("the head file cannot be read"),
    };
    let Ok(text) = std::str::from_utf8(&text) else {
        return HeadRead::Invalid("the head file is not text");
    };
    let line = text.trim_end_matches(['\n', '\r']);
    let Some((body, rest)) = line.rsplit_once(TAG_MEMBER) else {
        return HeadRead::Invalid("the head file has no tag");
    };
    let claimed = rest
        .strip_suffix("\"}")
        .and_then(|t| unhex_mac(t.as_bytes()));
    let Some(claimed) = claimed else {
        return HeadRead::Invalid("the head file has no tag");
    };
    let expected = tag(key, body.as_bytes());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &claimed[..])) {
        return HeadRead::Invalid("the head file does not verify with this key");
    }
    let json = format!("{body}}}");
    let Ok(raw) = serde_json::from_str::<RawHead<'_>>(&json) else {
        return HeadRead::Invalid("the head file is malformed");
    };
    let mac = unhex_mac(raw.mac.as_bytes());
    match mac {
        Some(mac) if raw.version == 1 && raw.key_id == key.id() => {
            HeadRead::Found(Head { seq: raw.seq, mac })
        }
        _ => HeadRead::Invalid("the head file is malformed"),
    }
}

/// Replace the head file atomically: `<head>.tmp`, then a rename. With `sync`, the temporary
/// file and the directory are synced too.
pub(super) fn write(path: &Path, key: &AuditKey, head: Head, sync: bool) -> io::Result<()> {
    let body = format!(
        "{{\"version\":1,\"key_id\":\"{}\",\"seq\":{},\"mac\":\"{}\"",
        key.id(),
        head.seq,
        hex(&head.mac)
    );
    let line = format!(
        "{body}{TAG_MEMBER}{}\"}}\n",
        hex(&tag(key, body.as_bytes()))
    );
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut file =
            private(OpenOptions::new().create(true).write(true).truncate(true)).open(&tmp)?;
        file.write_all(line.as_bytes())?;
        if sync {
            file.sync_data()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if sync
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// How the previous run of the writer ended, as found on start: written in the `previous`
/// member of the first record of the run (`resume`, `restart` or `start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Previous {
    /// The file ends with a `close` record, and it is the head.
    CleanClose,
    /// No `close`, but the file holds the head: the process stopped without closing (a crash,
    /// SIGKILL, power loss), nothing is missing.
    UncleanStop,
    /// The file ends before the head: records `first..=last` were written and are gone.
    MissingTail { first: u64, last: u64 },
    /// The file holds another record at the head's sequence number.
    HeadMismatch { seq: u64 },
    /// No head file beside an existing log.
    HeadMissing,
    /// A head file that does not verify.
    HeadInvalid,
    /// The same process reopens the log after a write error.
    WriteError,
}

impl Previous {
    /// The `previous` member's value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Previous::CleanClose => "clean_close",
            Previous::UncleanStop => "unclean_stop",
            Previous::MissingTail { .. } => "missing_tail",
            Previous::HeadMismatch { .. } => "head_mismatch",
            Previous::HeadMissing => "head_missing",
            Previous::HeadInvalid => "head_invalid",
            Previous::WriteError => "write_error",
        }
    }

    /// The sequence numbers lost, for a missing tail or a mismatched head.
    pub(super) fn lost(self) -> Option<(u64, u64)> {
        match self {
            Previous::MissingTail { first, last } => Some((first, last)),
            Previous::HeadMismatch { seq } => Some((seq, seq)),
            _ => None,
        }
    }

    /// Compare the file's last verified record (`seq`, `mac`, `kind`) with the head.
    /// `mac_at` finds the MAC of an earlier record of the file by its sequence number.
    pub(super) fn judge(
        head: &HeadRead,
        seq: u64,
        mac: Mac,
        kind: RecordKind,
        mac_at: impl FnOnce(u64) -> Option<Mac>,
    ) -> Previous {
        let head = match head {
            HeadRead::Missing => return Previous::HeadMissing,
            HeadRead::Invalid(_) => return Previous::HeadInvalid,
            HeadRead::Found(h) => *h,
        };
        if seq < head.seq {
            return Previous::MissingTail {
                first: seq + 1,
                last: head.seq,
            };
        }
        let matches = if seq == head.seq {
            mac == head.mac
        } else {
            // Records written after the head was last saved (a crash in between).
            mac_at(head.seq) == Some(head.mac)
        };
        match (matches, seq == head.seq && kind == RecordKind::Close) {
            (false, _) => Previous::HeadMismatch { seq: head.seq },
            (true, true) => Previous::CleanClose,
            (true, false) => Previous::UncleanStop,
        }
    }
}
