//! The credential contract: what authentication and the audit trail must agree on, defined once.
//!
//! - [`KEY_PREFIX`]: the prefix generated API keys carry (`mcp-sk-`), so the audit layer masks
//!   them wherever they appear.
//! - [`QUERY_CREDENTIAL_PARAMS`]: the query parameters accepted as credentials when URL auth is
//!   on, so the audit layer fingerprints the same value authentication verified.
//! - [`Fingerprinter`]: the keyed credential fingerprint, the first 8 bytes of
//!   HMAC-SHA256(fingerprint key, credential) shown as 16 hex digits. Authentication puts it into
//!   `AuthOutcome::Rejected`, the audit layer into its records; with the same key on both, one
//!   credential's requests correlate across successes and failures without the credential ever
//!   being stored. A principal that one credential alone authenticates (an API key) remembers
//!   its fingerprint ([`Principal::credential_fingerprint`](crate::Principal::credential_fingerprint)),
//!   so the HMAC runs once per key and fingerprinter, not once per request.
//!
//! ```
//! use mcp_core::credential::{Fingerprinter, KEY_PREFIX, QUERY_CREDENTIAL_PARAMS};
//!
//! let fingerprinter = Fingerprinter::new(b"a key shared by auth and audit");
//! let fp = fingerprinter.fingerprint(b"mcp-sk-secret").to_string();
//! assert_eq!(fp.len(), 16);
//! assert_eq!(fp, fingerprinter.fingerprint(b"mcp-sk-secret").to_string());
//! assert!("mcp-sk-secret".starts_with(KEY_PREFIX));
//! assert!(QUERY_CREDENTIAL_PARAMS.contains(&"access_token"));
//! ```

use std::fmt;

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;

/// The prefix of generated API keys.
pub const KEY_PREFIX: &str = "mcp-sk-";

/// The query parameters accepted as credentials when URL auth is on.
pub const QUERY_CREDENTIAL_PARAMS: [&str; 2] = ["token", "access_token"];

/// Computes credential fingerprints: the first 8 bytes of HMAC-SHA256(key, credential).
///
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct Fingerprinter {
    /// HMAC-SHA256 after the key block: cloned per fingerprint, never keyed again.
    keyed: Hmac<Sha256>,
    /// Tells fingerprints of this key from another key's where they are remembered.
    id: u64,
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprinter(<keyed>)")
    }
}

impl Fingerprinter {
    /// A fingerprinter with this key (any length; use at least 32 random bytes).
    pub fn new(key: &[u8]) -> Self {
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        let mut f = Fingerprinter { keyed, id: 0 };
        // A keyed label, not the key: two fingerprinters share an id only when they share a key
        // (or, with odds of 2^-64, by chance).
        f.id = u64::from_be_bytes(f.fingerprint(b"\0mcp-security fingerprinter id").0);
        f
    }

    /// An identifier of the key (a keyed hash of a fixed label; it reveals nothing of the key):
    /// equal for fingerprinters with the same key.
    pub fn key_id(&self) -> u64 {
        self.id
    }

    /// A fingerprinter with a random key: fingerprints correlate within this process only.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // No randomness: fall back to a key nobody else knows either (the address space
            // layout and time), which still never reveals the credential.
            let seed = format!(
                "{:?}{:p}",
                std::time::SystemTime::now(),
                &key as *const [u8; 32]
            );
            return Fingerprinter::new(seed.as_bytes());
        }
        Fingerprinter::new(&key)
    }

    /// The fingerprint of a credential.
    pub fn fingerprint(&self, credential: &[u8]) -> Fingerprint {
        let mut m = self.keyed.clone();
        m.update(credential);
        let digest = m.finalize().into_bytes();
        let mut out = [0u8; 8];
        for (o, d) in out.iter_mut().zip(digest.iter()) {
            *o = *d;
        }
        Fingerprint(out)
    }
}

/// A credential fingerprint: 8 bytes, shown as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_the_first_eight_bytes_of_hmac_sha256_in_hex() {
        // HMAC-SHA256("fingerprint-key", "mcp-sk-secret"), first 8 bytes: a fixed vector, so a
        // change of construction breaks every deployment's correlation and this test alike.
        let f = Fingerprinter::new(b"fingerprint-key");
        assert_eq!(f.fingerprint(b"mcp-sk-secret").to_string(), VECTOR);
        assert_ne!(
            Fingerprinter::new(b"another-key")
                .fingerprint(b"mcp-sk-secret")
                .to_string(),
            VECTOR
        );
    }

    const VECTOR: &str = "26f2bccaba374771";

    #[test]
    fn the_key_id_tells_keys_apart() {
        let f = Fingerprinter::new(b"fingerprint-key");
        assert_eq!(f.key_id(), Fingerprinter::new(b"fingerprint-key").key_id());
        assert_ne!(f.key_id(), Fingerprinter::new(b"another-key").key_id());
        // Not a fingerprint of any plausible credential: the label starts with a NUL byte.
        assert_ne!(f.key_id().to_be_bytes(), f.fingerprint(b"").0);
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(
            format!("{:?}", Fingerprinter::new(b"k")),
            "Fingerprinter(<keyed>)"
        );
    }
}
