//! SSE framing for [`RewriteBody`](super::RewriteBody): where events end, their lines and
//! fields, and events rebuilt around new JSON.

use bytes::Bytes;

/// Finds the blank lines that end SSE events; lines end with `\r\n`, `\n` or `\r`.
#[derive(Debug, Default)]
pub(super) struct Scanner {
    /// Bytes in the current line so far.
    line_len: usize,
    /// The previous byte was `\r` (a following `\n` belongs to it).
    prev_cr: bool,
}

impl Scanner {
    /// Advance over `data`; the offset just past an event's blank line, if one ends in `data`
    /// (the scanner stops there).
    pub(super) fn scan(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            if self.prev_cr && b == b'\n' {
                self.prev_cr = false;
                continue;
            }
            if b == b'\n' || b == b'\r' {
                self.prev_cr = b == b'\r';
                if self.line_len == 0 {
                    return Some(i + 1);
                }
                self.line_len = 0;
            } else {
                self.prev_cr = false;
                self.line_len += 1;
            }
        }
        None
    }
}

/// An SSE event carrying one JSON text as its data.
pub(super) fn event_bytes(json: &str) -> Bytes {
    let mut out = String::with_capacity(json.len() + 16);
    out.push_str("event: message\ndata: ");
    out.push_str(json);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The lines of an event (`\n`, `\r\n` or `\r` line ends), empty ones included. `\n` is
/// found with the standard library's byte search; `\r` is looked for only in lines that have
/// one.
pub(super) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').flat_map(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (first, rest) = match line.find('\r') {
            Some(i) => (line.get(..i).unwrap_or(""), line.get(i + 1..)),
            None => (line, None),
        };
        std::iter::once(first).chain(rest.into_iter().flat_map(|r| r.split('\r')))
    })
}

/// The value of an SSE field line `name: value` (one optional space after the colon).
pub(super) fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?;
    if rest.is_empty() {
        return Some("");
    }
    let value = rest.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

/// The event with its data lines replaced by one `data:` line carrying `json` (which, being
/// serialized JSON, has no raw line breaks).
pub(super) fn rebuild_event(text: &str, json: &str) -> Bytes {
    let mut out = String::with_capacity(json.len() + 64);
    let mut wrote = false;
    for line in lines(text) {
        if line.is_empty() {
            continue;
        }
        if field_value(line, "data").is_some() {
            if !wrote {
                out.push_str("data: ");
                out.push_str(json);
                out.push('\n');
                wrote = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    Bytes::from(out)
}
