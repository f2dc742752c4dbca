//! Server-provided DPoP nonces (RFC 9449 §8), stateless: a nonce names a time slot and carries
//! a MAC of it under a key of this process (or a configured shared key, so replicas agree). A
//! nonce is accepted in its own slot and the next one, so a client that just got one never
//! races the slot boundary.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of MAC a nonce carries.
const TAG_BYTES: usize = 16;

pub(super) struct NonceSource {
    /// Keyed once; cloned per use.
    mac: Hmac<Sha256>,
    slot_secs: u64,
}

impl NonceSource {
    pub(super) fn new(key: &[u8], slot_secs: u64) -> Self {
        Self {
            // HMAC takes keys of any length; the fallback is unreachable.
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default())),
            slot_secs: slot_secs.max(1),
        }
    }

    fn tag(&self, slot: u64) -> [u8; TAG_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(b"mcp-security dpop nonce v1");
        mac.update(&slot.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The nonce clients should use from `now_secs` (Unix seconds) on.
    pub(super) fn issue(&self, now_secs: u64) -> String {
        let slot = now_secs / self.slot_secs;
        let mut raw = [0u8; 8 + TAG_BYTES];
        raw[..8].copy_from_slice(&slot.to_be_bytes());
        raw[8..].copy_from_slice(&self.tag(slot));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` was issued by this source in the current slot or the one before.
    pub(super) fn accepts(&self, nonce: &str, now_secs: u64) -> bool {
        let mut raw = [0u8; 8 + TAG_BYTES];
        if nonce.len() != 32 || URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) != Ok(raw.len()) {
            return false;
        }
        let mut slot_bytes = [0u8; 8];
        slot_bytes.copy_from_slice(&raw[..8]);
        let slot = u64::from_be_bytes(slot_bytes);
        let current = now_secs / self.slot_secs;
        if slot != current && slot.checked_add(1) != Some(current) {
            return false;
        }
        bool::from(self.tag(slot).ct_eq(&raw[8..]))
    }
}
