//! The secret detectors shared by audit masking and the result guard; documented in
//! [`credential`](super).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use super::KEY_PREFIX;

/// What replaces a secret: `[redacted]`.
pub const REDACTED: &str = "[redacted]";

/// The longest value an assignment detector reads (a secret is shorter; longer text is prose).
const MAX_ASSIGNMENT_VALUE: usize = 512;

/// The kind of a detected secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SecretKind {
    /// A PEM private key block.
    PrivateKey,
    /// An AWS access key id.
    AwsAccessKeyId,
    /// A GitHub token (classic or fine-grained).
    GitHubToken,
    /// A GitLab token.
    GitLabToken,
    /// A Slack token or incoming-webhook URL.
    SlackToken,
    /// A JSON Web Token.
    Jwt,
    /// An API key with a configured prefix (this project's `mcp-sk-…` by default).
    ApiKey,
    /// A random-looking value assigned to a secret name (`password=…`).
    SecretAssignment,
}

impl SecretKind {
    /// A stable snake_case label for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::PrivateKey => "private_key",
            SecretKind::AwsAccessKeyId => "aws_access_key_id",
            SecretKind::GitHubToken => "github_token",
            SecretKind::GitLabToken => "gitlab_token",
            SecretKind::SlackToken => "slack_token",
            SecretKind::Jwt => "jwt",
            SecretKind::ApiKey => "api_key",
            SecretKind::SecretAssignment => "secret_assignment",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detected secret: its kind and its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    /// What it looks like.
    pub kind: SecretKind,
    /// Where it is (byte offsets, on character boundaries).
    pub range: Range<usize>,
}

/// Finds secrets in text; see [`credential`](super) for the formats. Cloning copies the
/// prefixes.
#[derive(Debug, Clone)]
pub struct SecretScanner {
    /// Lower-cased, non-empty.
    prefixes: Vec<Box<str>>,
    /// What a byte can start: 0 nothing, 1 a detector anywhere (`-`, `=`, `:`, a key prefix's
    /// first byte), 2 a detector only at a word's start (`A`, `g`, `x`, `h`, `e`).
    starts: [u8; 256],
}

/// The bytes the fixed-shape detectors start with, and both cases of each prefix's first byte.
fn start_bytes(prefixes: &[Box<str>]) -> [u8; 256] {
    let mut t = [0u8; 256];
    for c in [b'A', b'g', b'x', b'h', b'e'] {
        t[usize::from(c)] = 2;
    }
    for c in [b'-', b'=', b':'] {
        t[usize::from(c)] = 1;
    }
    for p in prefixes {
        if let Some(&c) = p.as_bytes().first() {
            t[usize::from(c.to_ascii_lowercase())] = 1;
            t[usize::from(c.to_ascii_uppercase())] = 1;
        }
    }
    t
}

impl Default for SecretScanner {
    /// Detects every well-known format and keys with [`KEY_PREFIX`].
    fn default() -> Self {
        let prefixes: Vec<Box<str>> = vec![KEY_PREFIX.into()];
        SecretScanner {
            starts: start_bytes(&prefixes),
            prefixes,
        }
    }
}

impl SecretScanner {
    /// A scanner for API keys with these prefixes (compared case-insensitively; empty entries
    /// are ignored) and every well-known format.
    pub fn with_key_prefixes<I>(prefixes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut prefixes: Vec<Box<str>> = prefixes
            .into_iter()
            .map(|p| p.as_ref().trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .map(String::into_boxed_str)
            .collect();
        prefixes.sort();
        prefixes.dedup();
        SecretScanner {
            starts: start_bytes(&prefixes),
            prefixes,
        }
    }

    /// The API-key prefixes it looks for (lower case).
    pub fn key_prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(|p| &**p)
    }

    /// Every secret in `text`, in order, never overlapping.
    pub fn find(&self, text: &str) -> Vec<SecretMatch> {
        let mut out = Vec::new();
        self.scan(text, |m| out.push(m));
        out
    }

    /// Whether `text` holds a secret.
    pub fn contains(&self, text: &str) -> bool {
        let mut found = false;
        self.scan(text, |_| found = true);
        found
    }

    /// `text` with each secret replaced by `replacement`.
    pub fn redact<'a>(&self, text: &'a str, replacement: &str) -> Cow<'a, str> {
        let found = self.find(text);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for m in found {
            out.push_str(text.get(copied..m.range.start).unwrap_or(""));
            out.push_str(replacement);
            copied = m.range.end;
        }
        out.push_str(text.get(copied..).unwrap_or(""));
        Cow::Owned(out)
    }

    fn scan(&self, text: &str, mut found: impl FnMut(SecretMatch)) {
        let b = text.as_bytes();
        let mut i = 0;
        // JWT starts before this position are known to fail.
        let mut jwt_skip = 0;
        // Matches never overlap.
        let mut last_end = 0;
        while let Some(&c) = b.get(i) {
            // Most bytes start nothing: one table lookup.
            let start = self.starts[usize::from(c)];
            if start == 0 {
                i += 1;
                continue;
            }
            let word_start = i == 0 || !b.get(i - 1).is_some_and(u8::is_ascii_alphanumeric);
            if start == 2 && !word_start {
                i += 1;
                continue;
            }
            match self.match_at(text, i, last_end, word_start, &mut jwt_skip) {
                Some(mut m) if m.range.end > i && text.is_char_boundary(m.range.end) => {
                    m.range.start = m.range.start.max(last_end);
                    if !text.is_char_boundary(m.range.start) {
                        m.range.start = i;
                    }
                    i = m.range.end;
                    last_end = m.range.end;
                    found(m);
                }
                _ => i += 1,
            }
        }
    }

    fn match_at(
        &self,
        text: &str,
        i: usize,
        last_end: usize,
        word_start: bool,
        jwt_skip: &mut usize,
    ) -> Option<SecretMatch> {
        let b = text.as_bytes();
        let rest = b.get(i..)?;
        let first = *rest.first()?;
        let hit = |kind, end: usize| {
            Some(SecretMatch {
                kind,
                range: i..end,
            })
        };
        match first {
            b'=' | b':' => {
                return assignment(text, i).map(|range| SecretMatch {
                    kind: SecretKind::SecretAssignment,
                    range,
                });
            }
            b'-' => {
                if let Some(end) = pem_private_key(text, i) {
                    return hit(SecretKind::PrivateKey, end);
                }
            }
            b'A' if word_start => {
                if let Some(end) = aws_key_id(b, i) {
                    return hit(SecretKind::AwsAccessKeyId, end);
                }
            }
            b'g' if word_start => {
                if let Some((kind, end)) = forge_token(b, i) {
                    return hit(kind, end);
                }
            }
            b'x' if word_start => {
                if let Some(end) = slack_token(b, i) {
                    return hit(SecretKind::SlackToken, end);
                }
            }
            b'h' if word_start => {
                const HOOK: &[u8] = b"hooks.slack.com/services/";
                if rest.starts_with(HOOK) {
                    let n = count(b, i + HOOK.len(), |c| {
                        c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'-')
                    });
                    if n >= 20 {
                        return hit(SecretKind::SlackToken, i + HOOK.len() + n);
                    }
                }
            }
            b'e' if word_start && i >= *jwt_skip && rest.starts_with(b"eyJ") => {
                match jwt_end(b, i) {
                    Ok(end) => return hit(SecretKind::Jwt, end),
                    Err(skip) => *jwt_skip = skip,
                }
            }
            _ => {}
        }
        for prefix in &self.prefixes {
            let p = prefix.as_bytes();
            if p.first().is_some_and(|c| c.eq_ignore_ascii_case(&first))
                && rest.len() >= p.len()
                && rest
                    .get(..p.len())
                    .is_some_and(|r| r.eq_ignore_ascii_case(p))
            {
                let n = count(b, i + p.len(), is_key_byte);
                if n >= 4 {
                    // The key with the word it ends, back to the last match at most.
                    let back = b.get(last_end.min(i)..i).map_or(0, |r| {
                        r.iter().rev().take_while(|c| is_key_byte(**c)).count()
                    });
                    return Some(SecretMatch {
                        kind: SecretKind::ApiKey,
                        range: i - back..i + p.len() + n,
                    });
                }
            }
        }
        None
    }
}

/// Whether a key or variable name names a secret: after lower-casing and dropping `_`, `-`
/// and `.`, it ends with `password`, `passwd`, `pwd`, `secret`, `token`, `apikey`,
/// `accesskey`, `secretkey`, `privatekey` or `credential(s)`, and is not a paging token
/// (`nextPageToken`, `continuation_token`).
pub fn is_secret_name(name: &str) -> bool {
    const ENDINGS: [&str; 11] = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "credential",
        "credentials",
    ];
    const NOT: [&str; 3] = ["pagetoken", "nexttoken", "continuationtoken"];
    if name.len() > 64 {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    for c in name.bytes().filter(|c| !matches!(c, b'_' | b'-' | b'.')) {
        if let Some(slot) = buf.get_mut(n) {
            *slot = c.to_ascii_lowercase();
            n += 1;
        }
    }
    let norm = buf.get(..n).unwrap_or(&[]);
    ENDINGS.iter().any(|e| norm.ends_with(e.as_bytes()))
        && !NOT.iter().any(|e| norm.ends_with(e.as_bytes()))
}

/// Whether a value looks like a generated secret rather than a word or a placeholder: 8 to 512
/// bytes, letters and at least one digit or symbol, Shannon entropy of at least 3 bits per
/// byte, and not a placeholder (`${VAR}`, `<value>`, `{{x}}`, `[redacted]`).
pub fn looks_random(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() < 8 || b.len() > MAX_ASSIGNMENT_VALUE || value == REDACTED {
        return false;
    }
    if ["${", "$(", "%(", "{{", "<", "***"]
        .iter()
        .any(|p| value.starts_with(p))
    {
        return false;
    }
    let letters = b.iter().any(u8::is_ascii_alphabetic);
    let other = b.iter().any(|c| !c.is_ascii_alphabetic());
    if !letters || !other {
        return false;
    }
    let mut counts = [0u32; 256];
    for &c in b {
        if let Some(n) = counts.get_mut(usize::from(c)) {
            *n += 1;
        }
    }
    let len = b.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / len;
            -p * p.log2()
        })
        .sum();
    entropy >= 3.0
}

/// Whether `run` contains a JWT-shaped token: `eyJ…` followed by base64url segments joined by
/// two dots, the first two non-empty (the shape of a JWS compact serialization).
pub fn has_jwt_shape(run: &str) -> bool {
    let b = run.as_bytes();
    let mut from = 0;
    while let Some(pos) = run.get(from..).and_then(|r| r.find("eyJ")) {
        let start = from + pos;
        if jwt_end(b, start).is_ok() {
            return true;
        }
        from = start + 3;
    }
    false
}

/// Whether `run` holds `prefix` (case-insensitive) followed by at least 4 more bytes: an API
/// key with that prefix somewhere in a run of token characters.
pub fn has_prefixed_key(run: &str, prefix: &str) -> bool {
    let p = prefix.as_bytes();
    !p.is_empty()
        && run
            .as_bytes()
            .windows(p.len())
            .enumerate()
            .any(|(i, w)| w.eq_ignore_ascii_case(p) && run.len() >= i + p.len() + 4)
}

/// Bytes of an API key and the word it sits in.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+')
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// How many bytes from `from` satisfy `pred`.
fn count(b: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    b.get(from..)
        .map_or(0, |r| r.iter().take_while(|c| pred(**c)).count())
}

/// The end of a JWT starting at `start` (at `eyJ`), or the position before which no other
/// start can succeed.
fn jwt_end(b: &[u8], start: usize) -> Result<usize, usize> {
    let mut segments = [0usize; 3];
    let mut seg = 0;
    let mut i = start;
    let mut second_dot = None;
    while let Some(&c) = b.get(i) {
        if is_b64url(c) {
            if let Some(s) = segments.get_mut(seg) {
                *s += 1;
            }
        } else if c == b'.' && seg < 2 {
            seg += 1;
            if seg == 2 {
                second_dot = Some(i);
            }
        } else {
            break;
        }
        i += 1;
    }
    if seg == 2 && segments[0] >= 4 && segments[1] >= 2 {
        Ok(i)
    } else {
        // A later start inside the first two segments meets the same dots: it fails too.
        Err(second_dot.unwrap_or(i))
    }
}

/// `-----BEGIN …PRIVATE KEY…-----` at `i`: the end of its `-----END …-----` line, or of the
/// text when there is none.
fn pem_private_key(text: &str, i: usize) -> Option<usize> {
    const BEGIN: &str = "-----BEGIN ";
    let rest = text.get(i..)?;
    let label = rest.strip_prefix(BEGIN)?;
    let close = label.get(..label.len().min(64))?.find("-----")?;
    if !label.get(..close)?.contains("PRIVATE KEY") {
        return None;
    }
    let body_from = i + BEGIN.len() + close + 5;
    let Some(end_at) = text.get(body_from..).and_then(|r| r.find("-----END ")) else {
        return Some(text.len());
    };
    let end_label = body_from + end_at + "-----END ".len();
    match text
        .get(end_label..)
        .and_then(|r| r.get(..r.len().min(64)))
        .and_then(|r| r.find("-----"))
    {
        Some(close) => Some(end_label + close + 5),
        None => Some(text.len()),
    }
}

/// An AWS access key id at `i`.
fn aws_key_id(b: &[u8], i: usize) -> Option<usize> {
    const PREFIXES: [&[u8]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
    let head = b.get(i..i + 4)?;
    if !PREFIXES.contains(&head) {
        return None;
    }
    let n = count(b, i + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let after = b.get(i + 4 + n).copied();
    (n == 16 && !after.is_some_and(|c| c.is_ascii_alphanumeric())).then_some(i + 20)
}

/// A GitHub or GitLab token at `i`.
fn forge_token(b: &[u8], i: usize) -> Option<(SecretKind, usize)> {
    let rest = b.get(i..)?;
    for p in [b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"] {
        if rest.starts_with(p) {
            let n = count(b, i + p.len(), |c| c.is_ascii_alphanumeric());
            return (n >= 30).then_some((SecretKind::GitHubToken, i + p.len() + n));
        }
    }
    const PAT: &[u8] = b"github_pat_";
    if rest.starts_with(PAT) {
        let n = count(b, i + PAT.len(), |c| c.is_ascii_alphanumeric() || c == b'_');
        return (n >= 22).then_some((SecretKind::GitHubToken, i + PAT.len() + n));
    }
    const GITLAB: [&[u8]; 7] = [
        b"glpat-", b"gldt-", b"glrt-", b"glptt-", b"glcbt-", b"gloas-", b"glsoat-",
    ];
    for p in GITLAB {
        if rest.starts_with(p) {
            let n = count(b, i + p.len(), |c| {
                c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
            });
            return (n >= 20).then_some((SecretKind::GitLabToken, i + p.len() + n));
        }
    }
    None
}

/// A Slack token at `i`.
fn slack_token(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i..)?;
    let slack = rest.starts_with(b"xapp-")
        || (rest.starts_with(b"xox")
            && rest.get(3).is_some_and(|c| b"abposre".contains(c))
            && rest.get(4) == Some(&b'-'));
    if !slack {
        return None;
    }
    let prefix_len = 5;
    let n = count(b, i + prefix_len, |c| {
        c.is_ascii_alphanumeric() || c == b'-'
    });
    (n >= 10).then_some(i + prefix_len + n)
}

/// `name = value` / `name: "value"` with the `=` or `:` at `d`: the value's range when the
/// name is a secret name and the value looks random.
fn assignment(text: &str, d: usize) -> Option<Range<usize>> {
    let b = text.as_bytes();
    // Back over `"` and blanks to the name, and over the name (at most 64 bytes).
    let mut k = d;
    while k > 0 && b.get(k - 1).is_some_and(|c| *c == b' ' || *c == b'\t') {
        k -= 1;
    }
    if k > 0 && b.get(k - 1).is_some_and(|c| matches!(c, b'"' | b'\'')) {
        k -= 1;
    }
    let name_end = k;
    while k > 0 && name_end - k <= 64 && b.get(k - 1).is_some_and(|c| is_ident_byte(*c)) {
        k -= 1;
    }
    if k == name_end || name_end - k > 64 || !is_secret_name(text.get(k..name_end)?) {
        return None;
    }
    let mut j = d + 1;
    if b.get(d) == Some(&b':') && b.get(j) == Some(&b'=') {
        j += 1;
    }
    let skip_quote = |j: &mut usize| {
        if b.get(*j).is_some_and(|c| matches!(c, b'"' | b'\'')) {
            *j += 1;
        }
    };
    let skip_space = |j: &mut usize| {
        while b.get(*j).is_some_and(|c| *c == b' ' || *c == b'\t') {
            *j += 1;
        }
    };
    skip_space(&mut j);
    skip_quote(&mut j);
    let n = b.get(j..).map_or(0, |r| {
        r.iter()
            .take(MAX_ASSIGNMENT_VALUE + 1)
            .take_while(|c| {
                !c.is_ascii_whitespace()
                    && !matches!(
                        c,
                        b'"' | b'\''
                            | b'`'
                            | b','
                            | b';'
                            | b'&'
                            | b'<'
                            | b'>'
                            | b'('
                            | b')'
                            | b'{'
                            | b'}'
                            | b'['
                            | b']'
                    )
            })
            .count()
    });
    let value = text.get(j..j + n)?;
    looks_random(value).then_some(j..j + n)
}

#[cfg(test)]
mod tests;
