//! # mcp-auth
//!
//! Authentication and authorization for MCP servers as tower middleware: nobody reaches a tool
//! without a valid credential, and each credential can do only what it was granted.
//!
//! - [`api_key`]: [`ApiKeyStore`] keeps only SHA-256 / HMAC-SHA256 digests
//!   of keys, compares them in constant time, and reloads its key file when it changes.
//! - [`jwt`]: [`JwtVerifier`] verifies HS256 JWTs (RFC 7519, RFC 8725) with
//!   rotation, required `exp`, `nbf`/`iat`, `aud`, `iss` and leeway.
//! - `jwks` (cargo feature `jwks`): `JwksKeySource`, an OAuth authorization server's public
//!   keys (RS256, PS256, ES256, EdDSA…) from its JWKS, discovered from the issuer, cached and
//!   refreshed, for [`JwtVerifier`].
//! - [`credential_age`]: [`CredentialAges`], the age of the oldest API key and HS256 secret as
//!   the gauge `mcp_credential_oldest_age_seconds`.
//! - [`policy`]: the scopes each path and each MCP method or tool needs, exempt and denied paths.
//! - [`list_filter`]: [`ListFilterLayer`] cuts `tools/list`, `prompts/list`, `resources/list` and
//!   `resources/templates/list` results to what the caller may use, under the same policy.
//! - [`layer`]: [`AuthLayer`] puts it together and answers as the MCP
//!   authorization specification and RFC 6750 ask, with RFC 9728 protected-resource metadata.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod api_key;
pub mod credential_age;
pub mod dpop;
#[cfg(feature = "jwks")]
pub mod jwks;
pub mod jwt;
pub mod layer;
pub mod list_filter;
pub mod policy;
pub mod session;
pub mod token_endpoint;

pub use api_key::{ApiKeyStore, ApiKeyStoreBuilder};
pub use credential_age::CredentialAges;
#[cfg(feature = "jwks")]
pub use jwks::{JwksKeySource, JwksKeySourceBuilder};
pub use jwt::{JwtVerifier, JwtVerifierBuilder};
pub use layer::{Auth, AuthLayer, AuthLayerBuilder};
pub use list_filter::{ListFilter, ListFilterLayer, ListFilterLayerBuilder};
pub use policy::{AuthPolicy, AuthPolicyBuilder};
pub use session::{SessionBinding, SessionBindingLayer, SessionBindingLayerBuilder};
pub use token_endpoint::{TokenEndpoint, TokenEndpointLayer, TokenEndpointLayerBuilder};

/// The [`mcp_security_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_security_core;
