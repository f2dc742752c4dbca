//! What the checker reads about the process and the machine, as opposed to the configuration:
//! the effective user, the working directory (for `.env` and `.gitignore`), file permissions,
//! and the time (for the age of keys and secrets).
//!
//! [`RuntimeEnvironment::current`] reads them from the running process;
//! tests build one by hand so results do not depend on who runs them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The process facts the checker reads. Cheap to build; see the [module docs](self).
///
/// ```
/// use mcp_prodcheck::RuntimeEnvironment;
///
/// let here = RuntimeEnvironment::current();
/// # let _ = here.is_root();
/// let test = RuntimeEnvironment::new().euid(Some(1000)).cwd(std::env::temp_dir());
/// assert!(!test.is_root());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeEnvironment {
    cwd: Option<PathBuf>,
    euid: Option<u32>,
    now: Option<SystemTime>,
}

impl RuntimeEnvironment {
    /// Nothing known: no working directory (no `.env` check), unknown user; the time is read
    /// from the system clock when a check needs it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The running process: its working directory and, on Linux, its effective user id from
    /// `/proc/self/status` (unknown elsewhere).
    pub fn current() -> Self {
        RuntimeEnvironment {
            cwd: std::env::current_dir().ok(),
            euid: current_euid(),
            now: Some(SystemTime::now()),
        }
    }

    /// Look for `.env` (and its `.gitignore` coverage) in this directory.
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The effective user id (`Some(0)` is root; `None` unknown).
    #[must_use]
    pub fn euid(mut self, euid: Option<u32>) -> Self {
        self.euid = euid;
        self
    }

    /// Check the age of keys and secrets as of `now` instead of the system clock (tests, or a
    /// check of what a configuration will look like on a given day).
    #[must_use]
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// The time the age checks use: the one given to [`now`](Self::now), else the system
    /// clock.
    pub fn current_time(&self) -> SystemTime {
        self.now.unwrap_or_else(SystemTime::now)
    }

    /// The working directory, when known.
    pub fn working_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The effective user id, when known.
    pub fn effective_uid(&self) -> Option<u32> {
        self.euid
    }

    /// Whether the process runs as root.
    pub fn is_root(&self) -> bool {
        self.euid == Some(0)
    }
}

/// The effective uid: the second field of the `Uid:` line of `/proc/self/status`.
fn current_euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_euid(&status)
}

fn parse_euid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|e| e.parse().ok())
}

/// The permission bits of `path` (following symlinks, as Kubernetes secret mounts need), or
/// `None` when it does not exist or on platforms without Unix modes.
pub fn file_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Whether a mode gives more than owner read/write and group read: anything beyond `0640`
/// (group write, or any access for others). `600`, `640`, `400` and `440` pass.
pub fn mode_too_open(mode: u32) -> bool {
    mode & 0o027 != 0
}

/// The git work tree `dir` is in: the nearest ancestor (or `dir` itself) holding `.git`.
pub fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Whether git would ignore the file `file` (a path inside `root`, the work tree).
///
/// Reads `root/.git/info/exclude` and every `.gitignore` from `root` down to the file's
/// directory, and applies the last matching pattern (a `!` pattern un-ignores). Supported: `#`
/// comments, `!` negation, `*`, `?` and `**`, patterns anchored by a `/`, directory patterns
/// (ending in `/`) matching any ancestor directory. Not read: `core.excludesFile`. `false` when
/// `file` is not under `root`.
pub fn is_git_ignored(root: &Path, file: &Path) -> bool {
    let Ok(rel) = file.strip_prefix(root) else {
        return false;
    };
    let rel: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if rel.is_empty() {
        return false;
    }
    // (directory of the ignore file relative to root, its text), lowest priority first.
    let mut sources: Vec<(usize, String)> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(root.join(".git/info/exclude")) {
        sources.push((0, text));
    }
    let mut dir = root.to_path_buf();
    for depth in 0..rel.len() {
        if let Ok(text) = std::fs::read_to_string(dir.join(".gitignore")) {
            sources.push((depth, text));
        }
        if let Some(part) = rel.get(depth) {
            dir.push(part);
        }
    }
    let mut ignored = false;
    for (depth, text) in &sources {
        let Some(sub) = rel.get(*depth..) else {
            continue;
        };
        for line in text.lines() {
            if let Some(negated) = pattern_matches(line, sub) {
                ignored = !negated;
            }
        }
    }
    ignored
}

/// `Some(negated)` when the gitignore line matches the path (components relative to the
/// ignore file's directory; the last one is the file).
fn pattern_matches(line: &str, path: &[String]) -> Option<bool> {
    let line = line.trim_end();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (negated, pattern) = match line.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, line.strip_prefix('\\').unwrap_or(line)),
    };
    let (dir_only, pattern) = match pattern.strip_suffix('/') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    if pattern.is_empty() {
        return None;
    }
    let anchored = pattern.trim_start_matches('/').contains('/') || pattern.starts_with('/');
    let pattern = pattern.trim_start_matches('/');
    // Candidates: the file itself (unless the pattern names directories only) and every
    // ancestor directory (a matched directory ignores everything in it).
    let last = path.len();
    let ends: Vec<usize> = if dir_only {
        (1..last).collect()
    } else {
        (1..=last).collect()
    };
    let hit = ends.into_iter().any(|end| {
        let Some(prefix) = path.get(..end) else {
            return false;
        };
        if anchored {
            glob(pattern.as_bytes(), prefix.join("/").as_bytes())
        } else {
            prefix
                .last()
                .is_some_and(|name| glob(pattern.as_bytes(), name.as_bytes()))
        }
    });
    hit.then_some(negated)
}

/// Glob match: `*` (not across `/`), `**` (across `/`), `?` (one character but `/`).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            if let Some(after) = rest.strip_prefix(b"*") {
                match after.strip_prefix(b"/") {
                    // `**/x`: x at the start or right after any `/`.
                    Some(after) => (0..=text.len()).any(|i| {
                        (i == 0 || text.get(i - 1) == Some(&b'/'))
                            && text.get(i..).is_some_and(|t| glob(after, t))
                    }),
                    None => (0..=text.len()).any(|i| text.get(i..).is_some_and(|t| glob(after, t))),
                }
            } else {
                let limit = text.iter().position(|&c| c == b'/').unwrap_or(text.len());
                (0..=limit).any(|i| text.get(i..).is_some_and(|t| glob(rest, t)))
            }
        }
        Some((b'?', rest)) => match text.split_first() {
            Some((c, t)) if *c != b'/' => glob(rest, t),
            _ => false,
        },
        Some((p, rest)) => match text.split_first() {
            Some((c, t)) if c == p => glob(rest, t),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euid_from_proc_status() {
        let status = "Name:\tcat\nUid:\t1000\t0\t1000\t1000\nGid:\t100\n";
        assert_eq!(parse_euid(status), Some(0));
        assert_eq!(parse_euid("Name: x\n"), None);
        assert!(RuntimeEnvironment::new().euid(Some(0)).is_root());
        assert!(!RuntimeEnvironment::new().is_root());
    }

    #[test]
    fn modes() {
        for ok in [0o600, 0o640, 0o400, 0o440] {
            assert!(!mode_too_open(ok), "{ok:o}");
        }
        for open in [0o644, 0o660, 0o604, 0o666, 0o777] {
            assert!(mode_too_open(open), "{open:o}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob(b".env", b".env"));
        assert!(glob(b"*.env", b".env"));
        assert!(glob(b".env*", b".env"));
        assert!(glob(b".env*", b".env.local"));
        assert!(!glob(b".env.*", b".env"));
        assert!(glob(b"?env", b".env"));
        assert!(!glob(b"*", b"a/b"));
        assert!(glob(b"**/.env", b"a/b/.env"));
        assert!(glob(b"**/.env", b".env"));
        assert!(!glob(b"**/.env", b"a/x.env"));
        assert!(glob(b"a/**", b"a/b/c"));
    }

    #[test]
    fn gitignore_rules() {
        let root = std::env::temp_dir().join(format!("mcp-prodcheck-git-{}", std::process::id()));
        let sub = root.join("deploy");
        std::fs::create_dir_all(root.join(".git/info")).unwrap();
        std::fs::create_dir_all(&sub).unwrap();
        let env = sub.join(".env");
        let case = |root_ignore: &str, sub_ignore: Option<&str>, exclude: &str| {
            std::fs::write(root.join(".gitignore"), root_ignore).unwrap();
            match sub_ignore {
                Some(t) => std::fs::write(sub.join(".gitignore"), t).unwrap(),
                None => {
                    let _ = std::fs::remove_file(sub.join(".gitignore"));
                }
            }
            std::fs::write(root.join(".git/info/exclude"), exclude).unwrap();
            is_git_ignored(&root, &env)
        };
        assert!(!case("", None, ""));
        assert!(case(".env\n", None, ""));
        assert!(case("# secrets\n*.env\n", None, ""));
        assert!(case(".env*\n", None, ""));
        assert!(case("deploy/\n", None, ""));
        assert!(case("/deploy/.env\n", None, ""));
        assert!(!case("/.env\n", None, ""), "anchored at the root only");
        assert!(case("", Some(".env\n"), ""));
        assert!(!case(".env\n", Some("!.env\n"), ""), "negated deeper");
        assert!(case("", None, ".env\n"), "info/exclude");
        assert!(!case(".env.example\ntarget/\n", None, ""));
        assert_eq!(git_root(&sub), Some(root.clone()));
        assert!(!is_git_ignored(&root, Path::new("/elsewhere/.env")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn file_modes_are_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcp-prodcheck-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("key");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(file_mode(&f), Some(0o640));
        assert_eq!(file_mode(&dir.join("missing")), None);
        assert_eq!(file_mode(&dir), None, "directories are not files");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
