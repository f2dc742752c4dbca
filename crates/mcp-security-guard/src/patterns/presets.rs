//! The presets' expressions: each a label (named in the audit detail, never sent to the
//! client) and a regular expression, matched against the decoded JSON string.

/// A path separator: `/` or `\`, raw, percent-encoded, double-encoded, or as the overlong UTF-8
/// forms old decoders accepted.
macro_rules! sep {
    () => {
        r"(?:/|\\|%2f|%5c|%252f|%255c|%c0%af|%c1%9c|%e0%80%af)"
    };
}

/// A dot: raw, percent-encoded, double-encoded, overlong UTF-8, or `%u002e`.
macro_rules! dot {
    () => {
        r"(?:\.|%2e|%252e|%c0%ae|%e0%80%ae|%u002e)"
    };
}

/// `path_traversal`.
pub(super) const PATH_TRAVERSAL: &[(&str, &str)] = &[
    (
        // `..` as a whole path segment: `../`, `..\`, `a/..`, `..`, in any encoding above.
        "dot-dot segment",
        concat!(
            "(?i)(?:^|",
            sep!(),
            ")(?:",
            dot!(),
            "){2}(?:",
            sep!(),
            "|$)"
        ),
    ),
    (
        // An absolute path into a system root (`/etc/passwd`, `file:///proc/self/environ`,
        // `//etc`, `%2fetc%2fshadow`, `C:\Windows\…`).
        "sensitive absolute path",
        concat!(
            r"(?i)^\s*(?:file:)?",
            sep!(),
            "+",
            r"(?:etc|proc|sys|dev|root|boot|run|var/run|var/log|private/etc)(?:",
            sep!(),
            "|$)",
            r"|^\s*(?:file:/*)?[a-z]:(?:/|\\|%2f|%5c)+windows(?:/|\\|%2f|%5c|$)",
        ),
    ),
    (
        // A credential directory anywhere in the path: `.ssh`, `.aws`, `.gnupg`, `.kube`.
        "credential directory",
        concat!(
            "(?i)(?:^|",
            sep!(),
            r")\.(?:ssh|aws|gnupg|kube)(?:",
            sep!(),
            "|$)"
        ),
    ),
    (
        // A home directory: `~`, `~/…`, `~root/…`.
        "home directory",
        r"(?i)^\s*(?:~|%7e)",
    ),
    (
        // A Windows UNC path (`\\host\share`): an SMB connection that can leak credentials.
        "UNC path",
        r"(?i)^\s*(?:\\\\|%5c%5c)",
    ),
    (
        // A NUL byte: raw (JSON `\u0000`), percent-encoded or double-encoded; truncates paths in
        // C-based file APIs.
        "NUL byte",
        r"(?i)\x00|%00|%2500",
    ),
];

/// `shell_metacharacters`.
pub(super) const SHELL_METACHARACTERS: &[(&str, &str)] = &[
    (
        // `;`, `&`, `&&`, `|`, `||`, and line breaks: a second command.
        "command separator",
        r"[;&|\n\r]",
    ),
    (
        // `` `…` ``, `$(…)`, `${…}`, `$VAR`: substitution and expansion.
        "substitution",
        r"[`$]",
    ),
    ("redirection", r"[<>]"),
    ("NUL byte", r"\x00"),
];
