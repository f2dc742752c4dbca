//! Where the limits are counted: the [`Backend`] a [`RateLimitLayer`](crate::RateLimitLayer)
//! runs on, the shape governor gives its state stores.
//!
//! The engine ([`crate::layer`]'s request path) decides which limits apply and what each
//! request charges (keys, weights), and turns a decision into headers and answers; a backend
//! holds the GCRA state and applies one request's charges all-or-nothing:
//!
//! | backend | state | decision | inner-service bounds |
//! |---|---|---|---|
//! | [`Memory`] (the default, [`memory`]) | a bounded sharded store in this process, prefix buckets and an overflow bucket once full | synchronous, in `call` | none |
//! | `RedisBackend` (`redis` feature, module `redis`) | Redis, shared by every replica (in memory while no store is configured) | one Lua script per decision, asynchronous | `Clone + Send + 'static` |
//!
//! The backend is a type parameter, `RateLimitLayer<B = Memory>` / `RateLimit<S, B = Memory>`,
//! so the bounds a backend needs sit on that backend's `Service` impl: enabling the `redis`
//! feature changes nothing for a layer that does not use Redis.
//!
//! The trait is sealed: its methods speak this crate's internal types.

use std::fmt;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub use memory::Memory;

/// A store for a [`RateLimitLayer`](crate::RateLimitLayer)'s counts; implemented by [`Memory`]
/// and (with the `redis` feature) `redis::RedisBackend`. Sealed.
pub trait Backend: sealed::Sealed + fmt::Debug {}

impl Backend for Memory {}

pub(crate) mod sealed {
    use mcp_security_core::config::ConfigError;

    use crate::backend::memory::Memory;
    use crate::quota::{Gcra, Quota};

    /// One limit, as a backend sees it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub struct LimitSpec<'a> {
        pub(crate) name: &'a str,
        pub(crate) quota: Quota,
        pub(crate) overflow_quota: Quota,
        pub(crate) gcra: Gcra,
        pub(crate) overflow_gcra: Gcra,
    }

    /// What a backend is built from.
    pub struct Spec<'a> {
        pub(crate) limits: &'a [LimitSpec<'a>],
        pub(crate) max_keys: usize,
        pub(crate) max_prefixes: usize,
        #[cfg(feature = "redis")]
        pub(crate) redis: Option<crate::backend::redis::RedisStore>,
    }

    pub trait Sealed: Sized + Send + Sync + 'static {
        /// A backend for the validated limits of `spec`.
        fn build(spec: Spec<'_>) -> Result<Self, ConfigError>;

        /// The backend of a disabled layer (no limits).
        fn disabled() -> Self;

        /// The in-memory store requests are decided in when they need no shared store.
        fn local(&self) -> &Memory;

        /// Whether keys must be the same on every replica (a shared store).
        fn stable_keys(&self) -> bool {
            false
        }

        /// A description for the start-up summary, replacing `max N keys`.
        fn describe(&self) -> Option<String> {
            None
        }
    }

    impl Sealed for Memory {
        fn build(spec: Spec<'_>) -> Result<Self, ConfigError> {
            Ok(Memory::from_spec(&spec))
        }

        fn disabled() -> Self {
            Memory::new(Vec::new(), 1, 0)
        }

        fn local(&self) -> &Memory {
            self
        }
    }
}
