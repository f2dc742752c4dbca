//! API keys: generation, hashing, a store that keeps only digests, and key files that reload.
//!
//! An [`ApiKeyStore`] never holds a plaintext key. Keys given in code (such as the one
//! `MCP_API_KEY`) are hashed when the store is built; keys in a key file are written there as
//! digests in the first place. [`ApiKeyStore::verify`] hashes the presented key and compares it
//! with every entry in constant time, so neither the answer's timing nor its shape reveals which
//! entry came close.
//!
//! # Digests
//!
//! - `sha256:<hex>` is the SHA-256 of the key. Generated keys carry 256 bits of randomness
//!   ([`generate_key`]), so a fast unsalted hash is enough: nobody can search that space.
//! - `hmac-sha256:<hex>` is HMAC-SHA256 of the key under a server-side *pepper*
//!   ([`ApiKeyStoreBuilder::pepper`]). A leaked key file is then useless without the pepper, even
//!   for weak hand-made keys. With a pepper set, keys given in code are stored this way too.
//!
//! [`hash_line`] produces the form a key file stores (`mcp-security keygen` and
//! `mcp-security hash-key` print it).
//!
//! # Key files
//!
//! A key file is TOML (extension `.toml`) or JSON (extension `.json`):
//!
//! ```toml
//! [[keys]]
//! name = "ci-bot"                        # the principal id; unique
//! hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! scopes = ["notes:read", "notes:write"] # optional, default none
//! expires_at = "2027-01-01T00:00:00Z"    # optional, RFC 3339 in UTC
//! enabled = true                         # optional, default true; false revokes the key
//!
//! [[keys]]
//! name = "ops"
//! hash = "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
//! scopes = ["*"]
//! ```
//!
//! ```json
//! {"keys": [
//!   {"name": "ci-bot", "hash": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
//!    "scopes": ["notes:read"], "expires_at": "2027-01-01T00:00:00Z", "enabled": true}
//! ]}
//! ```
//!
//! The `keys` list is required (an empty file is refused rather than read as "no keys"); an
//! explicit `keys = []` revokes every file key. Unknown fields are errors, so a typo such as
//! `scope = [..]` fails loudly instead of silently granting nothing. `expires_at` may also be a
//! bare TOML datetime; offsets other than `Z` / `+00:00` are refused. Every error names the setting
//! `api_keys_file`, the file, and the entry (`keys[1] ("ops")`), and never contains key material.
//!
//! # Reloading
//!
//! [`ApiKeyStore::reload`] re-reads the file and swaps the entries atomically when its content
//! changed; a file that does not parse keeps the previous entries (a bad edit neither locks
//! everybody out nor lets everybody in). [`ApiKeyStore::spawn_reloader`] does that on an interval
//! in a tokio task. Replace the file atomically (write a temporary file, then rename it over the
//! old one) so a reload never sees half a file.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use mcp_core::config::{ConfigError, Secret};
use mcp_core::{AuthFailure, Principal, PrincipalKind, Scopes};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The prefix [`generate_key`] is usually given: keys look like `mcp-sk-…`, which secret
/// scanners and humans recognise.
pub const DEFAULT_KEY_PREFIX: &str = "mcp-sk-";

/// The longest key [`ApiKeyStore::verify`] hashes, in bytes; longer ones are refused up front
/// as [`AuthFailure::UnknownKey`] so the cost of a guess is bounded.
pub const MAX_KEY_LEN: usize = 1024;

/// The longest prefix [`generate_key`] accepts, in bytes.
const MAX_PREFIX_LEN: usize = 64;

/// The largest key file read, in bytes.
const MAX_FILE_LEN: u64 = 4 << 20;

/// The longest key name accepted, in bytes.
const MAX_NAME_LEN: usize = 128;

/// The setting named by errors about the key file.
const FILE_SETTING: &str = "api_keys_file";

/// The setting named by errors about keys given in code.
const KEY_SETTING: &str = "api_key";

/// The setting named by errors about the pepper.
const PEPPER_SETTING: &str = "api_key_pepper";

type HmacSha256 = Hmac<Sha256>;

/// Generate a new API key: `prefix` followed by 32 bytes from the operating system's random
/// number generator, base64url-encoded without padding (43 characters).
///
/// ```
/// use mcp_auth::api_key::{generate_key, DEFAULT_KEY_PREFIX};
///
/// let key = generate_key(DEFAULT_KEY_PREFIX)?;
/// assert!(key.starts_with("mcp-sk-"));
/// assert_eq!(key.len(), "mcp-sk-".len() + 43);
/// assert!(generate_key("has space").is_err());
/// # Ok::<(), mcp_auth::mcp_core::config::ConfigError>(())
/// ```
///
/// # Errors
/// Names `key_prefix` when the prefix is empty, longer than 64 bytes, or has anything but
/// visible ASCII (no whitespace, no control characters); names `generate_key` when the
/// operating system cannot supply randomness.
pub fn generate_key(prefix: &str) -> Result<String, ConfigError> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !is_visible_ascii(prefix) {
        return Err(ConfigError::new(
            "key_prefix",
            format!("must be 1 to {MAX_PREFIX_LEN} visible ASCII characters without whitespace"),
        )
        .with_value(prefix));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ConfigError::new(
            "generate_key",
            format!("the operating system's random number generator failed: {e}"),
        )
    })?;
    let mut key = String::with_capacity(prefix.len() + 43);
    key.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut key);
    Ok(key)
}

/// How a key is turned into the digest a store keeps.
///
/// `Debug` never shows the pepper.
#[derive(Clone, Debug)]
pub enum KeyHasher {
    /// SHA-256 of the key.
    Sha256,
    /// HMAC-SHA256 of the key under the server's pepper.
    HmacSha256(Secret),
}

impl KeyHasher {
    /// The 32-byte digest of `key`.
    pub fn digest(&self, key: &str) -> [u8; 32] {
        match self {
            KeyHasher::Sha256 => sha256(key.as_bytes()),
            KeyHasher::HmacSha256(pepper) => {
                hmac_digest(&keyed_hmac(pepper.expose().as_bytes()), key)
            }
        }
    }

    /// The label used in key files: `sha256` or `hmac-sha256`.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }

    fn kind(&self) -> HashKind {
        match self {
            KeyHasher::Sha256 => HashKind::Sha256,
            KeyHasher::HmacSha256(_) => HashKind::HmacSha256,
        }
    }
}

/// The line a key file stores for `key`: `sha256:<lowercase hex>` or `hmac-sha256:<hex>`.
///
/// ```
/// use mcp_auth::api_key::{hash_line, KeyHasher};
///
/// assert_eq!(
///     hash_line(&KeyHasher::Sha256, "abc"),
///     "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
/// );
/// ```
pub fn hash_line(hasher: &KeyHasher, key: &str) -> String {
    format!("{}:{}", hasher.label(), hex(&hasher.digest(key)))
}

/// Which hasher produced a stored digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashKind {
    Sha256,
    HmacSha256,
}

impl HashKind {
    fn label(self) -> &'static str {
        match self {
            HashKind::Sha256 => "sha256",
            HashKind::HmacSha256 => "hmac-sha256",
        }
    }
}

/// One key the store accepts. The principal is built once, so a successful verification only
/// clones an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: Principal,
    enabled: bool,
    kind: HashKind,
    digest: [u8; 32],
}

/// The entries a store answers from, and the fingerprint of the key file they came from.
#[derive(Debug)]
struct KeySet {
    entries: Vec<Entry>,
    file_fingerprint: Option<[u8; 32]>,
}

struct Inner {
    /// The pepper's HMAC state after the key block, cloned for each digest.
    hmac: Option<HmacSha256>,
    /// Keys given in code; kept across reloads.
    fixed: Vec<Entry>,
    file: Option<PathBuf>,
    current: RwLock<Arc<KeySet>>,
    generation: AtomicU64,
    /// Serialises reloads, so two of them cannot install contents out of order.
    reload_lock: Mutex<()>,
}

/// The API keys a server accepts, as digests only, with their names, scopes, expiry and
/// enabled flag. Cloning is cheap (one `Arc`); clones share the entries and see each reload.
///
/// ```
/// use std::time::SystemTime;
/// use mcp_auth::api_key::{generate_key, ApiKeyStore, DEFAULT_KEY_PREFIX};
/// use mcp_auth::mcp_core::{AuthFailure, PrincipalKind, Scopes};
///
/// let key = generate_key(DEFAULT_KEY_PREFIX)?;
/// let store = ApiKeyStore::builder()
///     .key("ci-bot", &key, Scopes::new(["notes:read"]))
///     .build()?;
///
/// let now = SystemTime::now();
/// let principal = store.verify(&key, now).expect("the key was added");
/// assert_eq!(principal.id(), "ci-bot");
/// assert_eq!(principal.kind(), PrincipalKind::ApiKey);
/// assert!(principal.has_scope("notes:read"));
/// assert!(!principal.has_scope("notes:write"));
///
/// assert_eq!(store.verify("mcp-sk-not-a-key", now), Err(AuthFailure::UnknownKey));
/// # Ok::<(), mcp_auth::mcp_core::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiKeyStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for ApiKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyStore")
            .field("keys", &self.len())
            .field("file", &self.inner.file)
            .field("pepper", &self.inner.hmac.is_some())
            .field("generation", &self.generation())
            .finish()
    }
}

impl ApiKeyStore {
    /// Start building a store.
    pub fn builder() -> ApiKeyStoreBuilder {
        ApiKeyStoreBuilder::default()
    }

    /// Check a presented key at time `now`.
    ///
    /// The presented key's digests are compared with every entry's in constant time and without
    /// stopping at a match. Keys longer than [`MAX_KEY_LEN`] bytes, and empty ones, are refused
    /// before hashing.
    ///
    /// # Errors
    /// [`AuthFailure::UnknownKey`] when nothing matches, [`AuthFailure::DisabledKey`] when the
    /// matching entry is disabled, [`AuthFailure::ExpiredKey`] when its `expires_at <= now`.
    pub fn verify(&self, presented: &str, now: SystemTime) -> Result<Principal, AuthFailure> {
        if presented.is_empty() || presented.len() > MAX_KEY_LEN {
            return Err(AuthFailure::UnknownKey);
        }
        let sha = sha256(presented.as_bytes());
        let hmac = self
            .inner
            .hmac
            .as_ref()
            .map(|mac| hmac_digest(mac, presented));
        let set = self.snapshot();

        let unusable = [0u8; 32];
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in set.entries.iter().enumerate() {
            let (candidate, usable) = match (entry.kind, &hmac) {
                (HashKind::Sha256, _) => (&sha, Choice::from(1)),
                (HashKind::HmacSha256, Some(hmac)) => (hmac, Choice::from(1)),
                // Unreachable by construction (the builder refuses hmac entries without a
                // pepper), and never a match if it were reached.
                (HashKind::HmacSha256, None) => (&unusable, Choice::from(0)),
            };
            let hit = candidate.ct_eq(&entry.digest) & usable;
            // Remember the first match only, without branching on it.
            index.conditional_assign(&(i as u64), hit & !found);
            found |= hit;
        }
        if !bool::from(found) {
            return Err(AuthFailure::UnknownKey);
        }
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| set.entries.get(i))
            .ok_or(AuthFailure::UnknownKey)?;
        if !entry.enabled {
            return Err(AuthFailure::DisabledKey);
        }
        if entry.principal.expires_at().is_some_and(|at| at <= now) {
            return Err(AuthFailure::ExpiredKey);
        }
        Ok(entry.principal.clone())
    }

    /// Re-read the key file, if the store has one, and swap in its entries (keeping the keys
    /// given in code) when they changed. Returns whether the accepted keys changed; when they
    /// did, [`generation`](Self::generation) goes up by one.
    ///
    /// Changes are detected by the file's content, not its modification time. A file whose
    /// bytes changed but whose entries did not (a new comment) returns `false`.
    ///
    /// # Errors
    /// When the file cannot be read or is invalid (see the [module docs](self)). The previous
    /// entries stay in force.
    pub fn reload(&self) -> Result<bool, ConfigError> {
        let Some(path) = &self.inner.file else {
            return Ok(false);
        };
        let _serialised = self
            .inner
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let bytes = read_key_file(path)?;
        let fingerprint = sha256(&bytes);
        let current = self.snapshot();
        if current.file_fingerprint == Some(fingerprint) {
            return Ok(false);
        }
        let file_entries = parse_key_file(path, &bytes, self.inner.hmac.as_ref())?;
        let entries = combine(&self.inner.fixed, file_entries, path)?;
        let changed = entries != current.entries;
        let next = Arc::new(KeySet {
            entries,
            file_fingerprint: Some(fingerprint),
        });
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = next;
        if changed {
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(changed)
    }

    /// Reload the key file every `interval` (at least 1 ms) in a task on the current tokio
    /// runtime, which must have its timer enabled. The file is read on the blocking pool.
    /// Failures are logged with `tracing::warn` (once per distinct error) and changes with
    /// `tracing::info`, never with key material.
    ///
    /// Returns `None` when the store has no file or no tokio runtime is current. The task ends
    /// when every clone of the store has been dropped, or when the handle is aborted.
    pub fn spawn_reloader(&self, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.inner.file.clone()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let store: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = interval.max(Duration::from_millis(1));
        Some(runtime.spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick completes at once; the store was just loaded.
            ticker.tick().await;
            let mut last_error: Option<String> = None;
            loop {
                ticker.tick().await;
                let Some(inner) = store.upgrade() else { break };
                let store = ApiKeyStore { inner };
                let result = tokio::task::spawn_blocking(move || {
                    let result = store.reload();
                    (result, store.len(), store.generation())
                })
                .await;
                match result {
                    Ok((Ok(changed), keys, generation)) => {
                        last_error = None;
                        if changed {
                            tracing::info!(
                                path = %path.display(),
                                keys,
                                generation,
                                "API key file reloaded"
                            );
                        }
                    }
                    Ok((Err(error), _, _)) => {
                        let error = error.to_string();
                        if last_error.as_deref() != Some(error.as_str()) {
                            tracing::warn!(
                                %error,
                                "API key file reload failed; the previous keys stay in force"
                            );
                            last_error = Some(error);
                        }
                    }
                    Err(join) => {
                        tracing::warn!(
                            error = %join,
                            "API key file reload task failed; the previous keys stay in force"
                        );
                    }
                }
            }
        }))
    }

    /// How many times a reload changed the accepted keys; 0 after building.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The number of entries, disabled and expired ones included.
    pub fn len(&self) -> usize {
        self.snapshot().entries.len()
    }

    /// Whether the store has no entries (possible only after a reload of `keys = []`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key file this store reloads from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }

    fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .inner
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// A key given in code, still in plaintext until [`ApiKeyStoreBuilder::build`] hashes it.
#[derive(Debug)]
struct CodeKey {
    name: String,
    key: Secret,
    scopes: Scopes,
}

/// Builds an [`ApiKeyStore`]; see [`ApiKeyStore::builder`]. `Debug` never shows keys or the
/// pepper.
#[derive(Debug, Default)]
#[must_use]
pub struct ApiKeyStoreBuilder {
    pepper: Option<Secret>,
    keys: Vec<CodeKey>,
    file: Option<PathBuf>,
}

impl ApiKeyStoreBuilder {
    /// The server's pepper: enables `hmac-sha256` entries, and stores keys given in code as
    /// HMAC-SHA256 digests instead of SHA-256. Use 32 random bytes or more.
    pub fn pepper(mut self, pepper: Secret) -> Self {
        self.pepper = Some(pepper);
        self
    }

    /// Accept `key` as the principal `name` with `scopes` (for the one key from the
    /// environment, pass `Scopes::new(["*"])`). Only its digest is kept.
    pub fn key(mut self, name: impl Into<String>, plaintext_key: &str, scopes: Scopes) -> Self {
        self.keys.push(CodeKey {
            name: name.into(),
            key: Secret::new(plaintext_key),
            scopes,
        });
        self
    }

    /// Read keys from a TOML (`.toml`) or JSON (`.json`) key file, which
    /// [`ApiKeyStore::reload`] re-reads. A second call replaces the first.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Validate everything, hash the keys given in code, and read the key file.
    ///
    /// # Errors
    /// Names `api_key_pepper` for an empty pepper; `api_key` for a key given in code that is
    /// empty, longer than [`MAX_KEY_LEN`], not visible ASCII, a duplicate, or with a bad name;
    /// `api_keys_file` for a file that cannot be read or is invalid (with the entry);
    /// `api_keys` when there are no keys at all. Errors never contain a key.
    pub fn build(self) -> Result<ApiKeyStore, ConfigError> {
        let hmac = match &self.pepper {
            Some(pepper) if pepper.expose().is_empty() => {
                return Err(ConfigError::new(PEPPER_SETTING, "is empty"));
            }
            Some(pepper) => Some(keyed_hmac(pepper.expose().as_bytes())),
            None => None,
        };

        let mut fixed: Vec<Entry> = Vec::with_capacity(self.keys.len());
        for code_key in &self.keys {
            let name = &code_key.name;
            let refuse =
                |reason: String| ConfigError::new(KEY_SETTING, format!("key {name:?}: {reason}"));
            check_name(name).map_err(refuse)?;
            let key = code_key.key.expose();
            if key.is_empty() {
                return Err(refuse("the key is empty".into()));
            }
            if key.len() > MAX_KEY_LEN {
                return Err(refuse(format!(
                    "the key is longer than {MAX_KEY_LEN} bytes and could never be presented"
                )));
            }
            if !is_visible_ascii(key) {
                return Err(refuse(
                    "the key has whitespace, control or non-ASCII characters (a stray newline?)"
                        .into(),
                ));
            }
            let (kind, digest) = match &hmac {
                Some(mac) => (HashKind::HmacSha256, hmac_digest(mac, key)),
                None => (HashKind::Sha256, sha256(key.as_bytes())),
            };
            if let Some(other) = fixed.iter().find(|e| e.principal.id() == name) {
                return Err(refuse(format!(
                    "duplicate name (also used by another key: {:?})",
                    other.principal.id()
                )));
            }
            if let Some(other) = fixed.iter().find(|e| e.kind == kind && e.digest == digest) {
                return Err(refuse(format!(
                    "the same key is also given as {:?}",
                    other.principal.id()
                )));
            }
            fixed.push(Entry {
                principal: Principal::builder(name.as_str(), PrincipalKind::ApiKey)
                    .scope_set(code_key.scopes.clone())
                    .build(),
                enabled: true,
                kind,
                digest,
            });
        }

        let set = match &self.file {
            None => KeySet {
                entries: fixed.clone(),
                file_fingerprint: None,
            },
            Some(path) => {
                let bytes = read_key_file(path)?;
                let file_entries = parse_key_file(path, &bytes, hmac.as_ref())?;
                KeySet {
                    entries: combine(&fixed, file_entries, path)?,
                    file_fingerprint: Some(sha256(&bytes)),
                }
            }
        };
        if set.entries.is_empty() {
            return Err(ConfigError::new(
                "api_keys",
                "no API keys: add a key, or a key file with at least one entry",
            ));
        }

        Ok(ApiKeyStore {
            inner: Arc::new(Inner {
                hmac,
                fixed,
                file: self.file,
                current: RwLock::new(Arc::new(set)),
                generation: AtomicU64::new(0),
                reload_lock: Mutex::new(()),
            }),
        })
    }
}

/// The key file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<FileEntry>,
}

/// One `[[keys]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    hash: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// A string in either format, or a bare TOML datetime.
    #[serde(default)]
    expires_at: Option<toml::Value>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

fn file_error(path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(FILE_SETTING, reason).with_value(path.display().to_string())
}

/// Read the key file, refusing files over [`MAX_FILE_LEN`] bytes.
fn read_key_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let file = std::fs::File::open(path)
        .map_err(|e| file_error(path, format!("cannot open the key file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, format!("cannot read the key file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(file_error(
            path,
            format!("the key file is larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    Ok(bytes)
}

enum Format {
    Toml,
    Json,
}

/// Parse and validate a key file's entries (not yet checked against the keys given in code).
fn parse_key_file(
    path: &Path,
    bytes: &[u8],
    hmac: Option<&HmacSha256>,
) -> Result<Vec<Entry>, ConfigError> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        _ => {
            return Err(file_error(
                path,
                "expected a .toml or .json key file (by its extension)",
            ));
        }
    };
    let parsed: KeyFile = match format {
        Format::Toml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| file_error(path, "the key file is not valid UTF-8"))?;
            // The error's `Display` quotes the offending line, which may hold a key: use only
            // the message and the position.
            toml::from_str(text).map_err(|e| {
                let at = e
                    .span()
                    .map(|span| position(bytes, span.start))
                    .map(|(line, column)| format!(" at line {line}, column {column}"))
                    .unwrap_or_default();
                file_error(
                    path,
                    format!("invalid TOML{at}: {}", redact_quoted(e.message().trim())),
                )
            })?
        }
        Format::Json => serde_json::from_slice(bytes).map_err(|e| {
            file_error(
                path,
                format!("invalid JSON: {}", redact_quoted(&e.to_string())),
            )
        })?,
    };

    let mut entries: Vec<Entry> = Vec::with_capacity(parsed.keys.len());
    for (i, raw) in parsed.keys.into_iter().enumerate() {
        let refuse =
            |reason: &str| file_error(path, format!("keys[{i}] ({:?}): {reason}", raw.name));
        check_name(&raw.name).map_err(|reason| refuse(&reason))?;
        let (kind, digest) = parse_hash(&raw.hash).ok_or_else(|| {
            refuse(
                "hash must be \"sha256:<64 hex digits>\" or \"hmac-sha256:<64 hex digits>\" \
                 (from `mcp-security hash-key`), never the key itself",
            )
        })?;
        if kind == HashKind::HmacSha256 && hmac.is_none() {
            return Err(refuse(
                "an hmac-sha256 hash needs the server's pepper, and none is configured",
            ));
        }
        if raw
            .scopes
            .iter()
            .any(|s| s.is_empty() || !is_visible_ascii(s))
        {
            return Err(refuse(
                "scopes must be non-empty and without whitespace or control characters",
            ));
        }
        let expires_at = match &raw.expires_at {
            None => None,
            Some(value) => Some(parse_expiry(value).ok_or_else(|| {
                refuse(
                    "expires_at must be an RFC 3339 timestamp in UTC, such as \
                     \"2027-01-01T00:00:00Z\"",
                )
            })?),
        };
        if let Some(j) = entries.iter().position(|e| e.principal.id() == raw.name) {
            return Err(refuse(&format!("duplicate name (also keys[{j}])")));
        }
        if let Some(j) = entries
            .iter()
            .position(|e| e.kind == kind && e.digest == digest)
        {
            return Err(refuse(&format!("the same hash as keys[{j}]")));
        }
        let mut principal = Principal::builder(raw.name.as_str(), PrincipalKind::ApiKey)
            .scope_set(Scopes::new(&raw.scopes));
        if let Some(at) = expires_at {
            principal = principal.expires_at(at);
        }
        entries.push(Entry {
            principal: principal.build(),
            enabled: raw.enabled,
            kind,
            digest,
        });
    }
    Ok(entries)
}

/// The keys given in code followed by the file's, refusing names or keys given in both.
fn combine(fixed: &[Entry], file: Vec<Entry>, path: &Path) -> Result<Vec<Entry>, ConfigError> {
    for (i, entry) in file.iter().enumerate() {
        let name = entry.principal.id();
        if fixed.iter().any(|f| f.principal.id() == name) {
            return Err(file_error(
                path,
                format!("keys[{i}] ({name:?}): duplicate name (also a key given in code)"),
            ));
        }
        if let Some(f) = fixed
            .iter()
            .find(|f| f.kind == entry.kind && f.digest == entry.digest)
        {
            return Err(file_error(
                path,
                format!(
                    "keys[{i}] ({name:?}): the same key as {:?}, given in code",
                    f.principal.id()
                ),
            ));
        }
    }
    let mut entries = Vec::with_capacity(fixed.len() + file.len());
    entries.extend_from_slice(fixed);
    entries.extend(file);
    Ok(entries)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("the name must be 1 to {MAX_NAME_LEN} bytes"));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err("the name has surrounding whitespace or control characters".into());
    }
    Ok(())
}

/// `sha256:<hex>` or `hmac-sha256:<hex>`, 64 hex digits in either case.
fn parse_hash(line: &str) -> Option<(HashKind, [u8; 32])> {
    let (label, digits) = line.trim().split_once(':')?;
    let kind = match label {
        "sha256" => HashKind::Sha256,
        "hmac-sha256" => HashKind::HmacSha256,
        _ => return None,
    };
    let digits = digits.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
            _ => return None,
        };
        *byte = (hi << 4) | lo;
    }
    Some((kind, digest))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// An expiry written as an RFC 3339 string or a bare TOML datetime, in UTC.
fn parse_expiry(value: &toml::Value) -> Option<SystemTime> {
    let text = match value {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Datetime(dt) => dt.to_string(),
        _ => return None,
    };
    // `parse_rfc3339_weak` ignores some offsets and trailing text; accept only
    // `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|+00:00]`.
    let tail = text.get(19..)?;
    let tail = match tail.strip_prefix('.') {
        Some(rest) => rest.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => tail,
    };
    if !matches!(tail, "" | "Z" | "z" | "+00:00") {
        return None;
    }
    let normalised = text.replacen('z', "Z", 1);
    humantime::parse_rfc3339_weak(&normalised).ok()
}

/// 1-based line and column of byte `offset`.
fn position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// Replace the contents of every double-quoted string in a parser message with `…`: serde
/// quotes refused values that way, and a refused value may be a key pasted in the wrong place.
/// Backtick spans (field names, expected tokens such as `` `"` ``) are kept.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    let mut ticked = false;
    let mut escaped = false;
    for c in message.chars() {
        if !quoted {
            out.push(c);
            if c == '`' {
                ticked = !ticked;
            } else if c == '"' && !ticked {
                quoted = true;
            }
        } else if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            out.push_str("…\"");
            quoted = false;
        }
    }
    if quoted {
        out.push('…');
    }
    out
}

fn is_visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HMAC-SHA256 keyed with `pepper`, as RFC 2104 derives the key block: keys longer than the
/// 64-byte block are hashed first, shorter ones are zero-padded. Doing it here keeps this
/// infallible.
fn keyed_hmac(pepper: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    let hashed;
    let key: &[u8] = if pepper.len() > block.len() {
        hashed = sha256(pepper);
        &hashed
    } else {
        pepper
    };
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

fn hmac_digest(keyed: &HmacSha256, key: &str) -> [u8; 32] {
    let mut mac = keyed.clone();
    Mac::update(&mut mac, key.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("mcp-auth-api-key-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, file: &str, content: &str) -> PathBuf {
            let path = self.0.join(file);
            // Write then rename, as operators are told to.
            let tmp = self.0.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sha_line(key: &str) -> String {
        hash_line(&KeyHasher::Sha256, key)
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn now() -> SystemTime {
        at("2026-06-01T00:00:00Z")
    }

    fn id(result: Result<Principal, AuthFailure>) -> Result<String, AuthFailure> {
        result.map(|p| p.id().to_owned())
    }

    #[test]
    fn generate_key_format_and_uniqueness() {
        let a = generate_key(DEFAULT_KEY_PREFIX).unwrap();
        let b = generate_key(DEFAULT_KEY_PREFIX).unwrap();
        assert_ne!(a, b);
        for key in [&a, &b] {
            let body = key.strip_prefix("mcp-sk-").unwrap();
            assert_eq!(body.len(), 43);
            assert!(
                body.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
                "{body}"
            );
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap();
            assert_eq!(raw.len(), 32);
        }
        let custom = generate_key("iqmcp-sk-").unwrap();
        assert!(custom.starts_with("iqmcp-sk-"));
        assert_eq!(custom.len(), "iqmcp-sk-".len() + 43);
    }

    #[test]
    fn generate_key_rejects_bad_prefixes() {
        let long = "p".repeat(65);
        for bad in ["", "has space", "tab\t", "new\nline", "é-", long.as_str()] {
            let err = generate_key(bad).unwrap_err();
            assert_eq!(err.setting(), "key_prefix", "{bad:?}");
            assert_eq!(err.value(), Some(bad));
        }
        assert!(generate_key(&"p".repeat(64)).is_ok());
    }

    #[test]
    fn hash_line_known_vectors() {
        assert_eq!(
            hash_line(&KeyHasher::Sha256, "abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2.
        let jefe = KeyHasher::HmacSha256(Secret::new("Jefe"));
        assert_eq!(
            hash_line(&jefe, "what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(KeyHasher::Sha256.label(), "sha256");
        assert_eq!(jefe.label(), "hmac-sha256");
        // RFC 4231 test case 6: a key longer than the block is hashed first.
        let long_key = [0xaa_u8; 131];
        assert_eq!(
            hex(&hmac_digest(
                &keyed_hmac(&long_key),
                "Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // RFC 4231 test case 1 (a 20-byte key, zero-padded).
        assert_eq!(
            hex(&hmac_digest(&keyed_hmac(&[0x0b; 20]), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(format!("{jefe:?}"), "HmacSha256(Secret(<redacted>))");
    }

    #[test]
    fn parse_hash_accepts_only_the_two_forms() {
        let line = sha_line("abc");
        assert_eq!(parse_hash(&line), Some((HashKind::Sha256, sha256(b"abc"))));
        assert_eq!(
            parse_hash(&line.to_uppercase().replace("SHA256", "sha256")),
            Some((HashKind::Sha256, sha256(b"abc")))
        );
        let hex64 = "0".repeat(64);
        assert_eq!(
            parse_hash(&format!("hmac-sha256:{hex64}")),
            Some((HashKind::HmacSha256, [0; 32]))
        );
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            &format!("sha512:{hex64}"),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:{}", "0".repeat(65)),
            &format!("sha256:{}é", "0".repeat(62)),
            "mcp-sk-abcdef",
        ] {
            assert_eq!(parse_hash(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shared_prefix_keys_map_to_their_own_principal() {
        let a = "mcp-sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1";
        let b = "mcp-sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2";
        let c = "mcp-sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3";
        assert_eq!(a[..20], b[..20]);
        let store = ApiKeyStore::builder()
            .key("alpha", a, Scopes::new(["notes:read"]))
            .key("beta", b, Scopes::new(["notes:write"]))
            .build()
            .unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(id(store.verify(a, now())), Ok("alpha".to_owned()));
        assert_eq!(id(store.verify(b, now())), Ok("beta".to_owned()));
        assert_eq!(store.verify(c, now()), Err(AuthFailure::UnknownKey));
        assert_eq!(store.verify(&a[..20], now()), Err(AuthFailure::UnknownKey));
        assert_eq!(
            store.verify(&format!("{a} "), now()),
            Err(AuthFailure::UnknownKey)
        );
    }

    #[test]
    fn scopes_and_kind_carried_into_the_principal() {
        let dir = TempDir::new("scopes");
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"reader\"\nhash = \"{}\"\nscopes = [\"notes:read\", \"search\"]\n\
                 expires_at = \"2030-01-01T00:00:00Z\"\n",
                sha_line("reader-key")
            ),
        );
        let store = ApiKeyStore::builder()
            .key("admin", "admin-key", Scopes::new(["*"]))
            .file(&path)
            .build()
            .unwrap();
        let admin = store.verify("admin-key", now()).unwrap();
        assert_eq!(admin.kind(), PrincipalKind::ApiKey);
        assert_eq!(admin.scopes().iter().collect::<Vec<_>>(), ["*"]);
        assert_eq!(admin.expires_at(), None);
        assert!(admin.has_scope("anything"));

        let reader = store.verify("reader-key", now()).unwrap();
        assert_eq!(reader.id(), "reader");
        assert_eq!(reader.kind(), PrincipalKind::ApiKey);
        assert_eq!(
            reader.scopes().iter().collect::<Vec<_>>(),
            ["notes:read", "search"]
        );
        assert_eq!(reader.expires_at(), Some(at("2030-01-01T00:00:00Z")));
        assert_eq!(reader.audience().count(), 0);
        assert!(reader.has_scope("search:query"));
        assert!(!reader.has_scope("notes:write"));
        assert_eq!(store.file(), Some(path.as_path()));
    }

    #[test]
    fn expired_key() {
        let dir = TempDir::new("expired");
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"temp\"\nhash = \"{}\"\nexpires_at = \"2027-01-01T00:00:00Z\"\n\n\
                 [[keys]]\nname = \"native\"\nhash = \"{}\"\nexpires_at = 2027-01-01T00:00:00Z\n",
                sha_line("temp-key"),
                sha_line("native-key"),
            ),
        );
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        let expiry = at("2027-01-01T00:00:00Z");
        for (key, name) in [("temp-key", "temp"), ("native-key", "native")] {
            assert_eq!(
                id(store.verify(key, expiry - Duration::from_secs(1))),
                Ok(name.to_owned())
            );
            assert_eq!(store.verify(key, expiry), Err(AuthFailure::ExpiredKey));
            assert_eq!(
                store.verify(key, expiry + Duration::from_secs(1)),
                Err(AuthFailure::ExpiredKey)
            );
        }
    }

    #[test]
    fn expiry_formats() {
        let s = |v: &str| toml::Value::String(v.to_owned());
        let expected = Some(at("2027-01-01T00:00:00Z"));
        for ok in [
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00z",
            "2027-01-01 00:00:00Z",
            "2027-01-01T00:00:00",
            "2027-01-01T00:00:00+00:00",
            " 2027-01-01T00:00:00Z ",
        ] {
            assert_eq!(parse_expiry(&s(ok)), expected, "{ok}");
        }
        assert_eq!(
            parse_expiry(&s("2027-01-01T00:00:00.5Z")),
            Some(at("2027-01-01T00:00:00.5Z"))
        );
        for bad in [
            "2027-01-01",
            "2027-01-01T00:00:00+02:00",
            "2027-01-01T00:00:00.5+02:00",
            "2027-01-01T00:00:00-05:00",
            "2027-01-01T00:00:00Zjunk",
            "2027-13-01T00:00:00Z",
            "next year",
            "",
            "2027-01-01T00:00:0é",
        ] {
            assert_eq!(parse_expiry(&s(bad)), None, "{bad}");
        }
        assert_eq!(parse_expiry(&toml::Value::Integer(1_800_000_000)), None);
    }

    #[test]
    fn disabled_key() {
        let dir = TempDir::new("disabled");
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"off\"\nhash = \"{}\"\nenabled = false\n\
                 expires_at = \"2020-01-01T00:00:00Z\"\n\n\
                 [[keys]]\nname = \"on\"\nhash = \"{}\"\nenabled = true\n",
                sha_line("off-key"),
                sha_line("on-key"),
            ),
        );
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        // Disabled wins over expired: the key was revoked.
        assert_eq!(
            store.verify("off-key", now()),
            Err(AuthFailure::DisabledKey)
        );
        assert_eq!(id(store.verify("on-key", now())), Ok("on".to_owned()));
        assert_eq!(store.len(), 2);
    }

    fn two_keys(first_enabled: bool) -> String {
        format!(
            "# rotated by ops\n[[keys]]\nname = \"ci-bot\"\nhash = \"{}\"\nscopes = [\"notes:read\"]\n\
             enabled = {first_enabled}\n\n[[keys]]\nname = \"deploy\"\nhash = \"{}\"\n",
            sha_line("ci-key"),
            sha_line("deploy-key"),
        )
    }

    #[test]
    fn revoked_key_via_file_reload() {
        let dir = TempDir::new("revoke");
        let path = dir.write("keys.toml", &two_keys(true));
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        let clone = store.clone();
        assert!(Arc::ptr_eq(&store.inner, &clone.inner));
        assert_eq!(store.generation(), 0);
        assert_eq!(id(store.verify("ci-key", now())), Ok("ci-bot".to_owned()));
        assert_eq!(
            id(store.verify("deploy-key", now())),
            Ok("deploy".to_owned())
        );

        // `deploy` removed, `ci-bot` disabled.
        dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ci-bot\"\nhash = \"{}\"\nscopes = [\"notes:read\"]\nenabled = false\n",
                sha_line("ci-key")
            ),
        );
        assert_eq!(store.reload(), Ok(true));
        assert_eq!(store.generation(), 1);
        assert_eq!(clone.generation(), 1);
        assert_eq!(clone.verify("ci-key", now()), Err(AuthFailure::DisabledKey));
        assert_eq!(
            clone.verify("deploy-key", now()),
            Err(AuthFailure::UnknownKey)
        );
        assert_eq!(store.len(), 1);

        // Unchanged content: nothing to do.
        assert_eq!(store.reload(), Ok(false));
        assert_eq!(store.generation(), 1);
    }

    #[test]
    fn reload_with_unchanged_entries_returns_false() {
        let dir = TempDir::new("unchanged");
        let path = dir.write("keys.toml", &two_keys(true));
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        assert_eq!(store.reload(), Ok(false));
        // New bytes (a comment, reordered fields) but the same entries.
        let mut same = two_keys(true);
        same.push_str("# trailing comment\n");
        dir.write("keys.toml", &same);
        assert_eq!(store.reload(), Ok(false));
        assert_eq!(store.generation(), 0);
        // And a real change after that is still seen.
        dir.write("keys.toml", &two_keys(false));
        assert_eq!(store.reload(), Ok(true));
        assert_eq!(store.generation(), 1);
        assert_eq!(store.verify("ci-key", now()), Err(AuthFailure::DisabledKey));
    }

    #[test]
    fn broken_file_on_reload_keeps_old_entries() {
        let dir = TempDir::new("broken");
        let path = dir.write("keys.toml", &two_keys(true));
        let store = ApiKeyStore::builder()
            .key("env", "env-key", Scopes::new(["*"]))
            .file(&path)
            .build()
            .unwrap();
        assert_eq!(store.len(), 3);

        let broken = [
            "[[keys]\nname = \"x\"".to_owned(),
            String::new(),
            "keys = 5".to_owned(),
            format!(
                "[[keys]]\nname = \"x\"\nhash = \"{}\"\nscope = [\"a\"]\n",
                sha_line("k")
            ),
            format!("[[keys]]\nname = \"env\"\nhash = \"{}\"\n", sha_line("k")),
        ];
        for content in &broken {
            dir.write("keys.toml", content);
            let err = store.reload().unwrap_err();
            assert_eq!(err.setting(), "api_keys_file", "{content}");
            assert_eq!(err.value(), Some(path.display().to_string().as_str()));
            assert_eq!(store.generation(), 0);
            assert_eq!(store.len(), 3);
            assert_eq!(id(store.verify("ci-key", now())), Ok("ci-bot".to_owned()));
            assert_eq!(id(store.verify("env-key", now())), Ok("env".to_owned()));
        }

        // The file disappearing is an error too, not "no keys".
        std::fs::remove_file(&path).unwrap();
        let err = store.reload().unwrap_err();
        assert!(
            err.reason().starts_with("cannot open the key file"),
            "{err}"
        );
        assert_eq!(
            id(store.verify("deploy-key", now())),
            Ok("deploy".to_owned())
        );

        // An explicit empty list revokes every file key; code keys stay.
        dir.write("keys.toml", "keys = []\n");
        assert_eq!(store.reload(), Ok(true));
        assert_eq!(store.len(), 1);
        assert_eq!(store.verify("ci-key", now()), Err(AuthFailure::UnknownKey));
        assert_eq!(id(store.verify("env-key", now())), Ok("env".to_owned()));
    }

    #[test]
    fn toml_errors_name_line_and_entry() {
        let dir = TempDir::new("toml-errors");
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ok\"\nhash = \"{}\"\n\n[[keys]]\nname = \"typo\"\nhash = \"{}\"\nscope = [\"notes:read\"]\n",
                sha_line("a"),
                sha_line("b")
            ),
        );
        let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert!(
            err.reason()
                .starts_with("invalid TOML at line 8, column 1: unknown field `scope`"),
            "{err}"
        );

        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ok\"\nhash = \"{}\"\n\n[[keys]]\nname = \"bad-date\"\nhash = \"{}\"\nexpires_at = \"soon\"\n",
                sha_line("a"),
                sha_line("b")
            ),
        );
        let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
        assert_eq!(
            err.reason(),
            "keys[1] (\"bad-date\"): expires_at must be an RFC 3339 timestamp in UTC, such as \
             \"2027-01-01T00:00:00Z\""
        );

        let err = ApiKeyStore::builder()
            .file(dir.write("keys.yaml", "keys: []"))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert_eq!(
            err.reason(),
            "expected a .toml or .json key file (by its extension)"
        );

        let err = ApiKeyStore::builder()
            .file(dir.0.join("missing.toml"))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert!(
            err.reason().starts_with("cannot open the key file"),
            "{err}"
        );

        let err = ApiKeyStore::builder()
            .file(dir.write(
                "bad-scope.toml",
                &format!(
                    "[[keys]]\nname = \"s\"\nhash = \"{}\"\nscopes = [\"notes read\"]\n",
                    sha_line("a")
                ),
            ))
            .build()
            .unwrap_err();
        assert_eq!(
            err.reason(),
            "keys[0] (\"s\"): scopes must be non-empty and without whitespace or control characters"
        );

        let err = ApiKeyStore::builder()
            .file(dir.write(
                "bad-name.toml",
                &format!("[[keys]]\nname = \"\"\nhash = \"{}\"\n", sha_line("a")),
            ))
            .build()
            .unwrap_err();
        assert_eq!(
            err.reason(),
            "keys[0] (\"\"): the name must be 1 to 128 bytes"
        );
    }

    #[test]
    fn unknown_field_is_error() {
        let dir = TempDir::new("unknown-field");
        for (file, content) in [
            (
                "a.toml",
                format!(
                    "[[keys]]\nname = \"x\"\nhash = \"{}\"\nscope = [\"a\"]\n",
                    sha_line("k")
                ),
            ),
            (
                "b.toml",
                format!("[[key]]\nname = \"x\"\nhash = \"{}\"\n", sha_line("k")),
            ),
            (
                "c.json",
                format!(
                    r#"{{"keys":[{{"name":"x","hash":"{}","enable":false}}]}}"#,
                    sha_line("k")
                ),
            ),
        ] {
            let err = ApiKeyStore::builder()
                .file(dir.write(file, &content))
                .build()
                .unwrap_err();
            assert_eq!(err.setting(), "api_keys_file");
            assert!(err.reason().contains("unknown field"), "{file}: {err}");
        }
    }

    #[test]
    fn json_file() {
        let dir = TempDir::new("json");
        let path = dir.write(
            "keys.json",
            &format!(
                r#"{{"keys": [
                    {{"name": "ci-bot", "hash": "{}", "scopes": ["notes:read"],
                      "expires_at": "2030-01-01T00:00:00Z", "enabled": true}},
                    {{"name": "old", "hash": "{}", "enabled": false}},
                    {{"name": "no-expiry", "hash": "{}", "expires_at": null}}
                ]}}"#,
                sha_line("ci-key"),
                sha_line("old-key"),
                sha_line("plain-key"),
            ),
        );
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        let p = store.verify("ci-key", now()).unwrap();
        assert_eq!(p.id(), "ci-bot");
        assert_eq!(p.scopes().iter().collect::<Vec<_>>(), ["notes:read"]);
        assert_eq!(p.expires_at(), Some(at("2030-01-01T00:00:00Z")));
        assert_eq!(
            store.verify("old-key", now()),
            Err(AuthFailure::DisabledKey)
        );
        assert_eq!(
            id(store.verify("plain-key", now())),
            Ok("no-expiry".to_owned())
        );

        let err = ApiKeyStore::builder()
            .file(dir.write("bad.json", r#"{"keys": [{"name": "x", "hash": 5}]}"#))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert!(
            err.reason()
                .starts_with("invalid JSON: invalid type: integer `5`, expected a string"),
            "{err}"
        );
    }

    #[test]
    fn pepper_and_hmac_entries() {
        let dir = TempDir::new("pepper");
        let pepper = Secret::new("server-pepper-0123456789abcdef");
        let hmac = KeyHasher::HmacSha256(pepper.clone());
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"peppered\"\nhash = \"{}\"\n\n[[keys]]\nname = \"plain\"\nhash = \"{}\"\n",
                hash_line(&hmac, "peppered-key"),
                sha_line("plain-key"),
            ),
        );
        let store = ApiKeyStore::builder()
            .pepper(pepper)
            .key("env", "env-key", Scopes::new(["*"]))
            .file(&path)
            .build()
            .unwrap();
        assert_eq!(
            id(store.verify("peppered-key", now())),
            Ok("peppered".to_owned())
        );
        assert_eq!(id(store.verify("plain-key", now())), Ok("plain".to_owned()));
        assert_eq!(id(store.verify("env-key", now())), Ok("env".to_owned()));
        assert_eq!(
            store.verify("other-key", now()),
            Err(AuthFailure::UnknownKey)
        );
        // With a pepper, code keys are stored as HMAC digests.
        let fixed = &store.inner.fixed;
        assert_eq!(fixed.len(), 1);
        assert_eq!(fixed[0].kind, HashKind::HmacSha256);
        assert_eq!(fixed[0].digest, hmac.digest("env-key"));
        assert!(!format!("{store:?}").contains("server-pepper"));

        // Another pepper does not verify the peppered entry.
        let other = ApiKeyStore::builder()
            .pepper(Secret::new("another-pepper"))
            .file(&path)
            .build()
            .unwrap();
        assert_eq!(
            other.verify("peppered-key", now()),
            Err(AuthFailure::UnknownKey)
        );
        assert_eq!(id(other.verify("plain-key", now())), Ok("plain".to_owned()));

        let err = ApiKeyStore::builder()
            .pepper(Secret::new(""))
            .key("env", "env-key", Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "api_key_pepper: is empty");
    }

    #[test]
    fn hmac_entry_without_pepper_is_a_build_error() {
        let dir = TempDir::new("no-pepper");
        let hmac = KeyHasher::HmacSha256(Secret::new("pepper"));
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"plain\"\nhash = \"{}\"\n\n[[keys]]\nname = \"peppered\"\nhash = \"{}\"\n",
                sha_line("plain-key"),
                hash_line(&hmac, "peppered-key"),
            ),
        );
        let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert_eq!(err.value(), Some(path.display().to_string().as_str()));
        assert_eq!(
            err.reason(),
            "keys[1] (\"peppered\"): an hmac-sha256 hash needs the server's pepper, and none is configured"
        );
    }

    #[test]
    fn duplicate_names_and_keys_are_errors() {
        let err = ApiKeyStore::builder()
            .key("a", "key-one", Scopes::default())
            .key("a", "key-two", Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "api_key: key \"a\": duplicate name (also used by another key: \"a\")"
        );

        let err = ApiKeyStore::builder()
            .key("a", "key-one", Scopes::default())
            .key("b", "key-one", Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "api_key: key \"b\": the same key is also given as \"a\""
        );

        let dir = TempDir::new("duplicates");
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"x\"\nhash = \"{}\"\n\n[[keys]]\nname = \"x\"\nhash = \"{}\"\n",
                sha_line("k1"),
                sha_line("k2")
            ),
        );
        let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
        assert_eq!(
            err.reason(),
            "keys[1] (\"x\"): duplicate name (also keys[0])"
        );

        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"x\"\nhash = \"{}\"\n\n[[keys]]\nname = \"y\"\nhash = \"{}\"\n",
                sha_line("k1"),
                sha_line("k1")
            ),
        );
        let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
        assert_eq!(err.reason(), "keys[1] (\"y\"): the same hash as keys[0]");

        let path = dir.write(
            "keys.toml",
            &format!("[[keys]]\nname = \"env\"\nhash = \"{}\"\n", sha_line("k1")),
        );
        let err = ApiKeyStore::builder()
            .key("env", "env-key", Scopes::new(["*"]))
            .file(&path)
            .build()
            .unwrap_err();
        assert_eq!(
            err.reason(),
            "keys[0] (\"env\"): duplicate name (also a key given in code)"
        );
        let err = ApiKeyStore::builder()
            .key("env", "k1", Scopes::new(["*"]))
            .file(dir.write(
                "same.toml",
                &format!("[[keys]]\nname = \"file\"\nhash = \"{}\"\n", sha_line("k1")),
            ))
            .build()
            .unwrap_err();
        assert_eq!(
            err.reason(),
            "keys[0] (\"file\"): the same key as \"env\", given in code"
        );
    }

    #[test]
    fn empty_store_and_bad_code_keys() {
        let err = ApiKeyStore::builder().build().unwrap_err();
        assert_eq!(err.setting(), "api_keys");
        assert!(err.reason().starts_with("no API keys"), "{err}");

        let dir = TempDir::new("empty");
        let err = ApiKeyStore::builder()
            .file(dir.write("keys.toml", "keys = []\n"))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no API keys"), "{err}");

        let err = ApiKeyStore::builder()
            .key("env", "", Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "api_key: key \"env\": the key is empty");

        let err = ApiKeyStore::builder()
            .key("env", &"k".repeat(MAX_KEY_LEN + 1), Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_key");
        assert!(
            ApiKeyStore::builder()
                .key("env", &"k".repeat(MAX_KEY_LEN), Scopes::default())
                .build()
                .is_ok()
        );

        let err = ApiKeyStore::builder()
            .key(" env", "env-key", Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "api_key: key \" env\": the name has surrounding whitespace or control characters"
        );
    }

    #[test]
    fn errors_never_contain_the_plaintext_key() {
        let key = "mcp-sk-Zq3vR8sK2mW9xT4yL6nB1cD5fG7hJ0pQ2rS4uV6wX8z";
        let dir = TempDir::new("no-leak");
        let cases = [
            // The key pasted where its hash belongs.
            format!("[[keys]]\nname = \"a\"\nhash = \"{key}\"\n"),
            format!("[[keys]]\nname = \"a\"\nhash = \"sha256:{key}\"\n"),
            // The key where a list belongs: serde quotes the refused value.
            format!(
                "[[keys]]\nname = \"a\"\nhash = \"{}\"\nscopes = \"{key}\"\n",
                sha_line(key)
            ),
            format!(
                "[[keys]]\nname = \"a\"\nhash = \"{}\"\nenabled = \"{key}\"\n",
                sha_line(key)
            ),
            format!(
                "[[keys]]\nname = \"a\"\nhash = \"{}\"\nexpires_at = \"{key}\"\n",
                sha_line(key)
            ),
            // A syntax error on the line holding the key (toml's Display would quote the line).
            format!("[[keys]]\nname = \"a\"\nhash = \"{key}\" oops\n"),
            format!("[[keys]]\nname = \"a\"\nhash = {key}\n"),
            format!("[[keys]]\nname = \"a\"\nhash = \"{key}\n"),
        ];
        for content in &cases {
            let err = ApiKeyStore::builder()
                .file(dir.write("keys.toml", content))
                .build()
                .unwrap_err();
            assert_eq!(err.setting(), "api_keys_file");
            assert!(!err.to_string().contains(key), "{err}");
            assert!(!format!("{err:?}").contains(key), "{err:?}");
        }
        let json_cases = [
            format!(
                r#"{{"keys":[{{"name":"a","hash":"{}","scopes":"{key}"}}]}}"#,
                sha_line(key)
            ),
            format!(r#"{{"keys":[{{"name":"a","hash":"{key}"}}]}}"#),
            format!(r#"{{"keys":[{{"name":"a","hash":{key}}}]}}"#),
        ];
        for content in &json_cases {
            let err = ApiKeyStore::builder()
                .file(dir.write("keys.json", content))
                .build()
                .unwrap_err();
            assert!(!err.to_string().contains(key), "{err}");
        }
        // Keys given in code.
        for (name, bad) in [("env", format!("{key}\n")), ("env", format!(" {key}"))] {
            let err = ApiKeyStore::builder()
                .key(name, &bad, Scopes::default())
                .build()
                .unwrap_err();
            assert_eq!(err.setting(), "api_key");
            assert!(!err.to_string().contains(key), "{err}");
        }
        let err = ApiKeyStore::builder()
            .key("a", key, Scopes::default())
            .key("b", key, Scopes::default())
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains(key), "{err}");
        let builder = ApiKeyStore::builder()
            .pepper(Secret::new("pepper-value"))
            .key("a", key, Scopes::default());
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains(key) && !debug.contains("pepper-value"),
            "{debug}"
        );
        let store = builder.build().unwrap();
        assert!(!format!("{store:?}").contains(key));
    }

    #[test]
    fn redaction_of_quoted_values() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "mcp-sk-abc", expected a sequence"#),
            "invalid type: string \"…\", expected a sequence"
        );
        assert_eq!(redact_quoted(r#"a "b\"c" d "e"#), "a \"…\" d \"…");
        assert_eq!(
            redact_quoted("unknown field `scope`"),
            "unknown field `scope`"
        );
        assert_eq!(
            redact_quoted("invalid basic string, expected `\"`"),
            "invalid basic string, expected `\"`"
        );
        assert_eq!(
            redact_quoted("expected `\"`, found string \"secret\""),
            "expected `\"`, found string \"…\""
        );
    }

    #[test]
    fn hostile_presented_keys_are_refused_without_panicking() {
        let store = ApiKeyStore::builder()
            .key("k", "mcp-sk-valid", Scopes::default())
            .build()
            .unwrap();
        let long = "a".repeat(MAX_KEY_LEN + 1);
        let long_match = format!("mcp-sk-valid{}", "a".repeat(MAX_KEY_LEN));
        for bad in [
            "",
            long.as_str(),
            long_match.as_str(),
            "\0",
            "mcp-sk-valid\0",
            "é🔑",
            "mcp-sk-vali",
            "MCP-SK-VALID",
        ] {
            assert_eq!(
                store.verify(bad, now()),
                Err(AuthFailure::UnknownKey),
                "{bad:?}"
            );
        }
        assert_eq!(
            store.verify(&"a".repeat(MAX_KEY_LEN), now()),
            Err(AuthFailure::UnknownKey)
        );
        assert_eq!(id(store.verify("mcp-sk-valid", now())), Ok("k".to_owned()));
        // Far past and far future clocks.
        assert_eq!(
            id(store.verify("mcp-sk-valid", SystemTime::UNIX_EPOCH)),
            Ok("k".to_owned())
        );
    }

    #[test]
    fn store_without_file() {
        let store = ApiKeyStore::builder()
            .key("env", "env-key", Scopes::new(["*"]))
            .build()
            .unwrap();
        assert_eq!(store.reload(), Ok(false));
        assert_eq!(store.generation(), 0);
        assert_eq!(store.len(), 1);
        assert!(!store.is_empty());
        assert_eq!(store.file(), None);
        assert!(store.spawn_reloader(Duration::from_millis(10)).is_none());
    }

    #[test]
    fn spawn_reloader_needs_a_runtime() {
        let dir = TempDir::new("no-runtime");
        let path = dir.write("keys.toml", &two_keys(true));
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        assert!(store.spawn_reloader(Duration::from_millis(10)).is_none());
    }

    #[tokio::test]
    async fn spawned_reloader_picks_up_a_change() {
        let dir = TempDir::new("reloader");
        let path = dir.write("keys.toml", &two_keys(true));
        let store = ApiKeyStore::builder().file(&path).build().unwrap();
        let task = store.spawn_reloader(Duration::from_millis(10)).unwrap();

        // A broken edit first: it is logged and ignored.
        dir.write("keys.toml", "[[keys]\n");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(store.generation(), 0);
        assert_eq!(id(store.verify("ci-key", now())), Ok("ci-bot".to_owned()));

        dir.write("keys.toml", &two_keys(false));
        let mut waited = 0;
        while store.generation() == 0 && waited < 500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(store.generation(), 1, "no reload within 5 s");
        assert_eq!(store.verify("ci-key", now()), Err(AuthFailure::DisabledKey));
        assert_eq!(
            id(store.verify("deploy-key", now())),
            Ok("deploy".to_owned())
        );

        // The task ends once the store is gone.
        drop(store);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the reloader stops when the store is dropped")
            .unwrap();
    }
}
