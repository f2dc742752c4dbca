//! [`JsonObject`]: writes the members of a chain line's body.

use super::*;

/// Writes the members of a chain line's body.
pub(crate) struct JsonObject<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> JsonObject<'a> {
    /// `{"seq":N,"kind":"…","timestamp":"…"`.
    pub(crate) fn begin(
        buf: &'a mut Vec<u8>,
        seq: u64,
        kind: RecordKind,
        time: SystemTime,
    ) -> Self {
        use std::io::Write as _;
        let _ = write!(
            buf,
            "{{\"seq\":{seq},\"kind\":\"{kind}\",\"timestamp\":\"{}\"",
            rfc3339(time)
        );
        JsonObject { buf }
    }

    fn key(&mut self, name: &str) {
        self.buf.extend_from_slice(b",\"");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    pub(crate) fn str(&mut self, name: &str, value: Option<&str>) {
        self.key(name);
        match value {
            Some(v) => {
                if serde_json::to_writer(&mut *self.buf, v).is_err() {
                    self.buf.extend_from_slice(b"null");
                }
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    /// A value whose text needs no JSON escaping (addresses, times, hex).
    pub(crate) fn display(&mut self, name: &str, value: Option<impl std::fmt::Display>) {
        use std::io::Write as _;
        self.key(name);
        match value {
            Some(v) => {
                let _ = write!(self.buf, "\"{v}\"");
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    pub(crate) fn u64(&mut self, name: &str, value: Option<u64>) {
        use std::io::Write as _;
        self.key(name);
        match value {
            Some(v) => {
                let _ = write!(self.buf, "{v}");
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    pub(crate) fn bool(&mut self, name: &str, value: Option<bool>) {
        self.key(name);
        self.buf.extend_from_slice(match value {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        });
    }

    pub(crate) fn f64(&mut self, name: &str, value: Option<f64>) {
        use std::io::Write as _;
        self.key(name);
        match value.filter(|v| v.is_finite()) {
            Some(v) => {
                let _ = write!(self.buf, "{v:.6}");
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    pub(crate) fn mac(&mut self, name: &str, value: Option<&Mac>) {
        self.display(name, value.map(|m| hex(m)));
    }

    pub(crate) fn time(&mut self, name: &str, value: Option<SystemTime>) {
        self.display(name, value.map(rfc3339));
    }
}
