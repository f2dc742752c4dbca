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
//! created_at = "2026-12-07T00:00:00Z"    # optional, RFC 3339 in UTC (`mcp-security keygen`)
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
//! bare TOML datetime; offsets other than `Z` / `+00:00` are refused. `created_at` (the same
//! forms; it must be before `expires_at`) is not used to accept or refuse a key: it dates the key
//! for rotation checks ([`KeyDates`], `mcp-security check`) and the credential-age gauge; entries
//! without it (files written before it existed) load as before. Every error names the setting
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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use mcp_security_core::config::{ConfigError, Secret};
use mcp_security_core::{AuthFailure, Principal, PrincipalKind, Scopes};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

mod dates;
mod digest;
mod file;

pub use dates::{KeyDates, format_key_time, parse_key_time, read_key_dates};
use digest::{HashKind, HmacSha256, hmac_digest, is_visible_ascii, keyed_hmac, sha256};
pub use digest::{KeyHasher, generate_key, hash_line};
use file::{check_name, combine, parse_key_file, read_key_file};

/// The prefix [`generate_key`] is usually given: keys look like `mcp-sk-…`, which secret
/// scanners and humans recognise.
pub const DEFAULT_KEY_PREFIX: &str = mcp_security_core::credential::KEY_PREFIX;

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

/// One key the store accepts. The principal is built once, so a successful verification only
/// clones an `Arc`; it is a single-credential principal (each key has its own entry, no two
/// entries share a digest), so it remembers the key's audit fingerprint once computed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: Principal,
    enabled: bool,
    /// `created_at` from the key file; `None` for keys given in code and older entries.
    created_at: Option<SystemTime>,
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
/// use mcp_auth::mcp_security_core::{AuthFailure, PrincipalKind, Scopes};
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
/// # Ok::<(), mcp_auth::mcp_security_core::config::ConfigError>(())
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
        let file_entries = parse_key_file(path, &bytes, self.inner.hmac.as_ref(), true)?;
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
                    .single_credential()
                    .build(),
                enabled: true,
                created_at: None,
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
                let file_entries = parse_key_file(path, &bytes, hmac.as_ref(), true)?;
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

#[cfg(test)]
mod tests;
