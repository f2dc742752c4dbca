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
//! - [`SecretScanner`] and the shapes it is built from ([`has_jwt_shape`],
//!   [`has_prefixed_key`], [`is_secret_name`], [`looks_random`]): the secret detectors audit
//!   masking and the result guard share (PEM private keys, AWS access key ids, GitHub, GitLab and
//!   Slack tokens, JWTs, prefixed API keys, `password=`-style assignments); see
//!   [below](#secret-detectors).
//!
//! ```
//! use mcp_security_core::credential::{Fingerprinter, KEY_PREFIX, QUERY_CREDENTIAL_PARAMS};
//!
//! let fingerprinter = Fingerprinter::new(b"a key shared by auth and audit");
//! let fp = fingerprinter.fingerprint(b"mcp-sk-secret").to_string();
//! assert_eq!(fp.len(), 16);
//! assert_eq!(fp, fingerprinter.fingerprint(b"mcp-sk-secret").to_string());
//! assert!("mcp-sk-secret".starts_with(KEY_PREFIX));
//! assert!(QUERY_CREDENTIAL_PARAMS.contains(&"access_token"));
//! ```
//!
//! # Secret detectors
//!
//! [`SecretScanner::find`] reports every credential-shaped span of a text, by [`SecretKind`]:
//!
//! | kind | shape |
//! |---|---|
//! | `private_key` | a PEM block whose label holds `PRIVATE KEY` (`-----BEGIN RSA PRIVATE KEY-----` … `-----END …-----`; to the end of the text when the end line is missing) |
//! | `aws_access_key_id` | `AKIA`, `ASIA`, `ABIA` or `ACCA` and 16 more upper-case letters or digits, a word on its own |
//! | `github_token` | `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 30+ letters or digits; `github_pat_` and 22+ |
//! | `gitlab_token` | `glpat-`, `gldt-`, `glrt-`, `glptt-`, `glcbt-`, `gloas-`, `glsoat-` and 20+ |
//! | `slack_token` | `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`, `xapp-` and 10+; `hooks.slack.com/services/…` |
//! | `jwt` | `eyJ…` and base64url segments joined by two dots (a JWS compact serialization) |
//! | `api_key` | a configured key prefix (default [`KEY_PREFIX`], `mcp-sk-`, case-insensitive) and 4+ of `A-Z a-z 0-9 - . _ ~ +`, with the word it ends |
//! | `secret_assignment` | `password=`, `secret:`, `api_key = "…"`, … (a [secret name](is_secret_name)) followed by a value that [looks random](looks_random); only the value is the match |
//!
//! Every detector is linear in the text (a failed attempt never reads further than its shape's
//! minimum length, or a fixed bound), and nothing panics on any input.
//!
//! ```
//! use mcp_security_core::credential::{SecretKind, SecretScanner, REDACTED};
//!
//! let scanner = SecretScanner::default();
//! let text = "key AKIAIOSFODNN7EXAMPLE and password=Tr0ub4dor3xQ";
//! let kinds: Vec<SecretKind> = scanner.find(text).iter().map(|m| m.kind).collect();
//! assert_eq!(kinds, [SecretKind::AwsAccessKeyId, SecretKind::SecretAssignment]);
//! assert_eq!(scanner.redact(text, REDACTED), "key [redacted] and password=[redacted]");
//! assert!(scanner.find("id 550e8400-e29b-41d4-a716-446655440000, all fine").is_empty());
//! ```

use std::fmt;

mod detect;
pub use detect::{
    REDACTED, SecretKind, SecretMatch, SecretScanner, has_jwt_shape, has_prefixed_key,
    is_secret_name, looks_random,
};

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
