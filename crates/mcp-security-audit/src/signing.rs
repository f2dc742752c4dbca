//! Publicly verifiable checkpoints: an Ed25519 [`SigningKey`] signs every checkpoint, rotation
//! and close record, and anyone holding the [`PublicKey`] checks the trail with
//! [`verify_public`](crate::verify::verify_public), without the chain's HMAC key.
//!
//! # What is signed
//!
//! The records between two signed records form a *segment*. The writer hashes every line of a
//! segment, as written (newline included), with SHA-256: a hash anyone can recompute. A signed
//! record (`checkpoint`, `rotate`, `close`) carries
//!
//! | member | value |
//! |---|---|
//! | `seg_from` | the sequence number of the segment's first record (its own when the segment is empty) |
//! | `seg_hash` | SHA-256 over the segment's lines (64 hex digits) |
//! | `sig` | Ed25519 (base64) over `"mcp-security-audit signed checkpoint v1\n"` followed by the record's own bytes up to `,"sig":"` |
//!
//! so the signature covers the record itself (sequence number, kind, time, head MAC, counts)
//! and, through `seg_hash`, every record of the segment before it. The next segment begins
//! after the signed record. A `start`, `resume` or `restart` record (a new run of the writer)
//! begins a segment too, and names the key in `sign_key` ([`PublicKey::id`]); records a writer
//! never got to sign (it was killed before its next checkpoint) are reported as not covered.
//!
//! ```
//! use mcp_security_audit::signing::{PublicKey, SigningKey};
//!
//! let key = SigningKey::generate()?;
//! let pem = key.to_pkcs8_pem()?;
//! assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
//! let public = PublicKey::from_base64(&key.public_key().to_base64())?;
//! assert_eq!(public.id(), SigningKey::from_pkcs8_pem(&pem)?.public_key().id());
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::{Signer as _, pkcs8::spki::der::pem::LineEnding};
use mcp_security_core::config::ConfigError;
use sha2::{Digest as _, Sha256};

use crate::chain::hex;

/// What a signature is made over: this, then the record's bytes up to `,"sig":"`.
pub(crate) const SIGNATURE_DOMAIN: &[u8] = b"mcp-security-audit signed checkpoint v1\n";

/// What separates a signed record's signed bytes from its signature.
pub(crate) const SIG_MEMBER: &[u8] = b",\"sig\":\"";

/// An Ed25519 key that signs the checkpoints; see the [module docs](self).
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key().id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key (from the operating system's generator).
    ///
    /// # Errors
    /// `signing_key` when the generator fails.
    pub fn generate() -> Result<Self, ConfigError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            ConfigError::new(
                "signing_key",
                format!("no random numbers from the system: {e}"),
            )
        })?;
        Ok(SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// A key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `mcp-security keygen --ed25519`
    /// and `openssl genpkey -algorithm ed25519` write it).
    ///
    /// # Errors
    /// `signing_key` when the text is not an Ed25519 private key in PKCS#8 PEM.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, ConfigError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map(|inner| SigningKey { inner })
            .map_err(|_| {
                ConfigError::new(
                    "signing_key",
                    "is not an Ed25519 private key in PKCS#8 PEM; generate one with `mcp-security keygen --ed25519 --out FILE`",
                )
            })
    }

    /// A key read from a PKCS#8 PEM file.
    ///
    /// # Errors
    /// `signing_key_file` when the file cannot be read or holds no such key (the error never
    /// contains the key).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("signing_key_file", format!("cannot read the key file: {e}"))
                .with_value(&shown)
        })?;
        Self::from_pkcs8_pem(&text)
            .map_err(|e| ConfigError::new("signing_key_file", e.reason()).with_value(&shown))
    }

    /// The key as PKCS#8 PEM, to store (mode 0600).
    ///
    /// # Errors
    /// `signing_key` when it cannot be encoded (not expected).
    pub fn to_pkcs8_pem(&self) -> Result<String, ConfigError> {
        self.inner
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.as_str().to_owned())
            .map_err(|e| ConfigError::new("signing_key", format!("cannot encode the key: {e}")))
    }

    /// The public key, to hand to auditors.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// The signature of a signed record's bytes up to `,"sig":"`, base64.
    pub(crate) fn sign_record(&self, signed: &[u8]) -> String {
        let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + signed.len());
        message.extend_from_slice(SIGNATURE_DOMAIN);
        message.extend_from_slice(signed);
        STANDARD.encode(self.inner.sign(&message).to_bytes())
    }
}

/// The public half of a [`SigningKey`]: 32 bytes, written as one line of base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_base64()).finish()
    }
}

impl PublicKey {
    /// A key from its base64 (standard alphabet) form; surrounding whitespace is ignored.
    ///
    /// # Errors
    /// `public_key` when the text is not 32 bytes of base64 or not a valid Ed25519 point.
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError::new(
                "public_key",
                "expected the base64 Ed25519 public key `mcp-security keygen --ed25519` printed",
            )
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(|inner| PublicKey { inner })
            .map_err(|_| bad())
    }

    /// A key read from a file holding its base64 line.
    ///
    /// # Errors
    /// `public_key_file` when the file cannot be read or holds no such key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("public_key_file", format!("cannot read the key file: {e}"))
                .with_value(&shown)
        })?;
        Self::from_base64(&text)
            .map_err(|e| ConfigError::new("public_key_file", e.reason()).with_value(&shown))
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.inner.as_bytes())
    }

    /// The key's identifier, written in `sign_key`: the first 8 bytes of its SHA-256, hex.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.inner.as_bytes());
        hex(digest.get(..8).unwrap_or(&[]))
    }

    /// Whether `sig` (base64) is this key's signature of a signed record's bytes.
    pub(crate) fn verify_record(&self, signed: &[u8], sig: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(sig) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + signed.len());
        message.extend_from_slice(SIGNATURE_DOMAIN);
        message.extend_from_slice(signed);
        self.inner
            .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let sig = key.sign_record(b"{\"seq\":3");
        assert!(key.public_key().verify_record(b"{\"seq\":3", &sig));
        assert!(!key.public_key().verify_record(b"{\"seq\":4", &sig));
        let other = SigningKey::generate().unwrap();
        assert!(!other.public_key().verify_record(b"{\"seq\":3", &sig));
        assert!(!key.public_key().verify_record(b"{\"seq\":3", "not base64!"));
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn bad_keys_name_the_setting() {
        assert_eq!(
            SigningKey::from_pkcs8_pem("nope").unwrap_err().setting(),
            "signing_key"
        );
        let e = PublicKey::from_base64("AAAA").unwrap_err();
        assert_eq!(e.setting(), "public_key");
        let e = SigningKey::from_file(Path::new("/nonexistent/key.pem")).unwrap_err();
        assert_eq!(e.setting(), "signing_key_file");
        assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
    }
}
