//! The time checks of a verified token: `exp`, `nbf`, `iat` and the lifetime limit. They are the
//! only checks whose verdict changes while a token sits in the cache, so a cache hit runs them
//! again.

use std::time::Duration;

use mcp_security_core::AuthFailure;

/// A verified token's time claims (since the Unix epoch) and the lifetime limit its kind of
/// token is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TokenTimes {
    pub(super) exp: Duration,
    pub(super) nbf: Option<Duration>,
    pub(super) iat: Option<Duration>,
    /// The longest `exp - iat` (or `exp - now` without `iat`) accepted.
    pub(super) max_lifetime: Option<Duration>,
}

impl TokenTimes {
    /// The checks at `now` with `leeway`, in order: [`AuthFailure::Expired`] when
    /// `now >= exp + leeway`, [`AuthFailure::NotYetValid`] when `now + leeway < nbf`,
    /// [`AuthFailure::IssuedInFuture`] when `iat > now + leeway`, and
    /// [`AuthFailure::InvalidClaims`] when the token lives longer than the maximum (from `iat`,
    /// or from `now` plus the leeway without one).
    pub(super) fn check(&self, now: Duration, leeway: Duration) -> Result<(), AuthFailure> {
        let now_plus_leeway = now.saturating_add(leeway);
        if now >= self.exp.saturating_add(leeway) {
            return Err(AuthFailure::Expired);
        }
        if let Some(nbf) = self.nbf
            && now_plus_leeway < nbf
        {
            return Err(AuthFailure::NotYetValid);
        }
        if let Some(iat) = self.iat
            && iat > now_plus_leeway
        {
            return Err(AuthFailure::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            let (lifetime, allowed, from) = match self.iat {
                Some(iat) => (self.exp.saturating_sub(iat), max, "iat"),
                None => (
                    self.exp.saturating_sub(now),
                    max.saturating_add(leeway),
                    "now",
                ),
            };
            if lifetime > allowed {
                tracing::debug!(
                    lifetime_secs = lifetime.as_secs(),
                    max_lifetime_secs = max.as_secs(),
                    from,
                    "JWT refused: it is valid for {}s from {from}, longer than the maximum \
                     lifetime of {}s",
                    lifetime.as_secs(),
                    max.as_secs(),
                );
                return Err(AuthFailure::InvalidClaims);
            }
        }
        Ok(())
    }
}
