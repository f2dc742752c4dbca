//! Keys and digests: generating a key, and the SHA-256 / HMAC-SHA256 digests a store and a key
//! file keep instead of it.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use mcp_security_core::config::{ConfigError, Secret};
use sha2::{Digest, Sha256};

use super::MAX_PREFIX_LEN;

pub(super) type HmacSha256 = Hmac<Sha256>;

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
/// # Ok::<(), mcp_auth::mcp_security_core::config::ConfigError>(())
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

    pub(super) fn kind(&self) -> HashKind {
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
pub(super) enum HashKind {
    Sha256,
    HmacSha256,
}

impl HashKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            HashKind::Sha256 => "sha256",
            HashKind::HmacSha256 => "hmac-sha256",
        }
    }
}

/// `sha256:<hex>` or `hmac-sha256:<hex>`, 64 hex digits in either case.
pub(super) fn parse_hash(line: &str) -> Option<(HashKind, [u8; 32])> {
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

pub(super) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

pub(super) fn is_visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HMAC-SHA256 keyed with `pepper`, as RFC 2104 derives the key block: keys longer than the
/// 64-byte block are hashed first, shorter ones are zero-padded. Doing it here keeps this
/// infallible.
pub(super) fn keyed_hmac(pepper: &[u8]) -> HmacSha256 {
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

pub(super) fn hmac_digest(keyed: &HmacSha256, key: &str) -> [u8; 32] {
    let mut mac = keyed.clone();
    Mac::update(&mut mac, key.as_bytes());
    mac.finalize().into_bytes().into()
}
