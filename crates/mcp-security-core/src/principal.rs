//! Who is calling: the [`Principal`] that authentication inserts into request extensions.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::credential::{Fingerprint, Fingerprinter};

/// How a [`Principal`] proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// A static API key (the principal id is the key's name, never the key).
    ApiKey,
    /// A verified JSON Web Token (the principal id is its `sub`).
    Jwt,
    /// Authentication skipped by the development bypass (only ever on loopback in development).
    DevBypass,
}

impl PrincipalKind {
    /// A short lowercase label for logs and audit records: `api_key`, `jwt`, `dev_bypass`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Jwt => "jwt",
            PrincipalKind::DevBypass => "dev_bypass",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes granted to a principal, with a simple hierarchy.
///
/// A granted scope covers a required one when they are equal, when the granted scope is a
/// `:`-separated prefix of the required one (`notes` covers `notes:read` and `notes:read:own`,
/// but not `notesx:read`), when the granted scope ends in `:*` and the rest is such a prefix
/// (`notes:*` covers `notes:read`), or when the granted scope is `*` (an administrator).
///
/// ```
/// use mcp_security_core::Scopes;
///
/// let scopes = Scopes::new(["notes", "search:read"]);
/// assert!(scopes.allows("notes:write"));
/// assert!(scopes.allows("search:read"));
/// assert!(!scopes.allows("search:write"));
/// assert!(!scopes.allows("admin"));
/// assert!(Scopes::new(["*"]).allows("anything:at:all"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Box<[Box<str>]>);

impl Scopes {
    /// Scopes from any list of strings; empty entries are dropped.
    pub fn new<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Scopes(
            scopes
                .into_iter()
                .filter(|s| !s.as_ref().trim().is_empty())
                .map(|s| s.as_ref().trim().into())
                .collect(),
        )
    }

    /// Scopes from an OAuth `scope` string: space-separated (RFC 6749 §3.3).
    pub fn from_space_separated(scope: &str) -> Self {
        Scopes::new(scope.split(' '))
    }

    /// Whether any granted scope covers `required` (see the type's docs for the hierarchy).
    pub fn allows(&self, required: &str) -> bool {
        self.0.iter().any(|granted| scope_covers(granted, required))
    }

    /// Whether every one of `required` is covered.
    pub fn allows_all<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> bool {
        required.into_iter().all(|r| self.allows(r))
    }

    /// The granted scopes as written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }

    /// Whether no scope is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of granted scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn scope_covers(granted: &str, required: &str) -> bool {
    if granted == "*" || granted == required {
        return true;
    }
    let prefix = granted.strip_suffix(":*").unwrap_or(granted);
    if prefix.is_empty() {
        return false;
    }
    required == prefix
        || required
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(':'))
}

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    id: Box<str>,
    kind: PrincipalKind,
    scopes: Scopes,
    audience: Box<[Box<str>]>,
    expires_at: Option<SystemTime>,
    /// The RFC 7638 thumbprint of the key the credential is bound to (a JWT's `cnf.jkt`).
    confirmation_jkt: Option<Box<str>>,
    /// `Some` for a principal one credential alone authenticates.
    fingerprint: Option<RememberedFingerprint>,
}

/// The fingerprint of a single-credential principal's credential, once computed: the id of the
/// fingerprinter's key, and the fingerprint. A cache, so not part of the principal's identity.
#[derive(Debug, Default)]
struct RememberedFingerprint(OnceLock<(u64, Fingerprint)>);

impl PartialEq for RememberedFingerprint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RememberedFingerprint {}

/// Who is calling: inserted into request extensions by authentication and read by every layer and
/// handler after it. Cloning is cheap (one `Arc`).
///
/// ```
/// use mcp_security_core::{Principal, PrincipalKind};
///
/// let p = Principal::builder("ci-bot", PrincipalKind::ApiKey)
///     .scopes(["notes:read"])
///     .build();
/// assert_eq!(p.id(), "ci-bot");
/// assert!(p.has_scope("notes:read"));
/// assert!(!p.has_scope("notes:write"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(Arc<Inner>);

impl Principal {
    /// Start building a principal with its id (JWT `sub` or API key name) and kind.
    pub fn builder(id: impl Into<String>, kind: PrincipalKind) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: Inner {
                id: id.into().into_boxed_str(),
                kind,
                scopes: Scopes::default(),
                audience: Box::default(),
                expires_at: None,
                confirmation_jkt: None,
                fingerprint: None,
            },
        }
    }

    /// The principal's id: a JWT's `sub` or an API key's name.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// How the principal authenticated.
    pub fn kind(&self) -> PrincipalKind {
        self.0.kind
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// Whether the granted scopes cover `required`.
    pub fn has_scope(&self, required: &str) -> bool {
        self.0.scopes.allows(required)
    }

    /// The audiences the credential was issued for (a JWT's `aud`); empty for API keys.
    pub fn audience(&self) -> impl Iterator<Item = &str> {
        self.0.audience.iter().map(|s| &**s)
    }

    /// When the credential expires, if it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// The SHA-256 JWK thumbprint (RFC 7638) of the key the credential is bound to: a JWT's
    /// `cnf.jkt` (RFC 7800, RFC 9449). A bound credential is only good together with a proof of
    /// possession of that key (a DPoP proof), checked on every request; `None` for a bearer
    /// credential.
    ///
    /// ```
    /// use mcp_security_core::{Principal, PrincipalKind};
    ///
    /// let p = Principal::builder("agent", PrincipalKind::Jwt)
    ///     .confirmation_jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    ///     .build();
    /// assert_eq!(p.confirmation_jkt(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
    /// assert_eq!(Principal::builder("bot", PrincipalKind::ApiKey).build().confirmation_jkt(), None);
    /// ```
    pub fn confirmation_jkt(&self) -> Option<&str> {
        self.0.confirmation_jkt.as_deref()
    }

    /// Whether one credential alone authenticates this principal (an API key; see
    /// [`PrincipalBuilder::single_credential`]).
    pub fn is_single_credential(&self) -> bool {
        self.0.fingerprint.is_some()
    }

    /// The keyed fingerprint of the credential that authenticated this principal: `compute`'s
    /// result, remembered on a [single-credential](PrincipalBuilder::single_credential)
    /// principal for the first fingerprinter that asks, so later requests of the same API key
    /// skip the HMAC. `compute` must fingerprint, with `fingerprinter`, the credential that
    /// authenticated this principal on this request; the value is the same either way.
    ///
    /// ```
    /// use mcp_security_core::credential::Fingerprinter;
    /// use mcp_security_core::{Principal, PrincipalKind};
    ///
    /// let key = Principal::builder("ci-bot", PrincipalKind::ApiKey).single_credential().build();
    /// let f = Fingerprinter::new(b"a key shared by auth and audit");
    /// let first = key.credential_fingerprint(&f, || f.fingerprint(b"mcp-sk-secret"));
    /// // Remembered: the second request does not compute it.
    /// let again = key.clone().credential_fingerprint(&f, || unreachable!());
    /// assert_eq!(first, again);
    /// ```
    pub fn credential_fingerprint(
        &self,
        fingerprinter: &Fingerprinter,
        compute: impl FnOnce() -> Fingerprint,
    ) -> Fingerprint {
        let Some(remembered) = &self.0.fingerprint else {
            return compute();
        };
        let key = fingerprinter.key_id();
        match remembered.0.get() {
            Some((id, fingerprint)) if *id == key => *fingerprint,
            // Another key's fingerprint is remembered: compute this one each time.
            Some(_) => compute(),
            None => remembered.0.get_or_init(|| (key, compute())).1,
        }
    }
}

/// Builds a [`Principal`]; see [`Principal::builder`].
#[derive(Debug)]
#[must_use]
pub struct PrincipalBuilder {
    inner: Inner,
}

impl PrincipalBuilder {
    /// The granted scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.inner.scopes = Scopes::new(scopes);
        self
    }

    /// The granted scopes, already parsed.
    pub fn scope_set(mut self, scopes: Scopes) -> Self {
        self.inner.scopes = scopes;
        self
    }

    /// The audiences the credential was issued for.
    pub fn audience<I, S>(mut self, audience: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.inner.audience = audience.into_iter().map(|s| s.as_ref().into()).collect();
        self
    }

    /// When the credential expires.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.inner.expires_at = Some(at);
        self
    }

    /// The thumbprint of the key the credential is bound to (a JWT's `cnf.jkt`); see
    /// [`Principal::confirmation_jkt`].
    pub fn confirmation_jkt(mut self, jkt: impl Into<String>) -> Self {
        self.inner.confirmation_jkt = Some(jkt.into().into_boxed_str());
        self
    }

    /// One credential alone authenticates this principal, as an API key does: the principal
    /// may then remember the credential's fingerprint
    /// ([`Principal::credential_fingerprint`]). Never set it on a principal that several
    /// credentials map to (a shared service account, a JWT `sub`): the first credential's
    /// fingerprint would be reported for the others.
    pub fn single_credential(mut self) -> Self {
        self.inner.fingerprint = Some(RememberedFingerprint::default());
        self
    }

    /// Finish.
    pub fn build(self) -> Principal {
        Principal(Arc::new(self.inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_hierarchical_scopes() {
        let s = Scopes::new(["notes", "search:read"]);
        assert!(s.allows("notes"));
        assert!(s.allows("notes:read"));
        assert!(s.allows("notes:read:own"));
        assert!(s.allows("search:read"));
        assert!(
            !s.allows("search"),
            "a narrower grant never covers its parent"
        );
        assert!(!s.allows("search:write"));
        assert!(
            !s.allows("notesx:read"),
            "prefix must end at a ':' boundary"
        );
        assert!(!s.allows("note"));
        assert!(!s.allows(""));
    }

    #[test]
    fn wildcards() {
        assert!(Scopes::new(["*"]).allows("admin:delete"));
        let s = Scopes::new(["notes:*"]);
        assert!(s.allows("notes:read"));
        assert!(s.allows("notes"));
        assert!(!s.allows("notesy:read"));
        // A bare ":*" is not an admin grant.
        assert!(!Scopes::new([":*"]).allows("notes"));
    }

    #[test]
    fn space_separated_and_empty_entries() {
        let s = Scopes::from_space_separated("notes:read  notes:write ");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["notes:read", "notes:write"]);
        assert!(s.allows_all(["notes:read", "notes:write"]));
        assert!(!s.allows_all(["notes:read", "notes:delete"]));
        assert!(Scopes::from_space_separated("").is_empty());
    }

    #[test]
    fn a_single_credential_principal_remembers_one_fingerprint_per_key() {
        use std::cell::Cell;
        let f = Fingerprinter::new(b"fingerprint-key");
        let g = Fingerprinter::new(b"another-key");
        let computed = Cell::new(0);
        let compute = |fp: &Fingerprinter| {
            computed.set(computed.get() + 1);
            fp.fingerprint(b"mcp-sk-secret")
        };
        let key = Principal::builder("ci-bot", PrincipalKind::ApiKey)
            .single_credential()
            .build();
        assert!(key.is_single_credential());
        let first = key.credential_fingerprint(&f, || compute(&f));
        assert_eq!(first.to_string(), "26f2bccaba374771");
        assert_eq!(
            key.clone().credential_fingerprint(&f, || compute(&f)),
            first
        );
        assert_eq!(computed.get(), 1);
        // Another key: its own fingerprint, every time.
        let other = key.credential_fingerprint(&g, || compute(&g));
        assert_ne!(other, first);
        key.credential_fingerprint(&g, || compute(&g));
        assert_eq!(computed.get(), 3);
        // Not part of the principal's identity.
        let fresh = Principal::builder("ci-bot", PrincipalKind::ApiKey)
            .single_credential()
            .build();
        assert_eq!(fresh, key);
        // Any other principal computes every time.
        let jwt = Principal::builder("alice", PrincipalKind::Jwt).build();
        assert!(!jwt.is_single_credential());
        jwt.credential_fingerprint(&f, || compute(&f));
        jwt.credential_fingerprint(&f, || compute(&f));
        assert_eq!(computed.get(), 5);
    }

    #[test]
    fn principal_clone_is_shared() {
        let p = Principal::builder("alice", PrincipalKind::Jwt)
            .scopes(["notes:read"])
            .audience(["https://mcp.example.com"])
            .build();
        let q = p.clone();
        assert!(Arc::ptr_eq(&p.0, &q.0));
        assert_eq!(q.kind().as_str(), "jwt");
        assert_eq!(
            q.audience().collect::<Vec<_>>(),
            ["https://mcp.example.com"]
        );
        assert_eq!(q.expires_at(), None);
    }
}
