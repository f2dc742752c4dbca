//! Macros the middleware crates share.

/// Implements `get_ref`, `get_mut` and `into_inner` — the inner-service accessors tower-http's
/// middleware have — for a middleware service whose inner service is in the field `$field`.
///
/// `impl_inner_service!(Foo, inner)` covers a `Foo<S>`; services with more type parameters
/// name them: `impl_inner_service!(impl<S, B> Foo<S, B>, inner)` (the inner service is always
/// `S`).
///
/// ```
/// pub struct Logged<S> {
///     inner: S,
///     label: &'static str,
/// }
/// mcp_security_core::impl_inner_service!(Logged, inner);
///
/// let mut svc = Logged { inner: 41u32, label: "x" };
/// *svc.get_mut() += 1;
/// assert_eq!(*svc.get_ref(), 42);
/// assert_eq!(svc.into_inner(), 42);
/// ```
#[macro_export]
macro_rules! impl_inner_service {
    ($service:ident, $field:ident) => {
        $crate::impl_inner_service!(impl<S> $service<S>, $field);
    };
    (impl<$($param:ident),+> $service:ty, $field:ident) => {
        impl<$($param),+> $service {
            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.$field
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.$field
            }

            /// Unwraps the inner service.
            pub fn into_inner(self) -> S {
                self.$field
            }
        }
    };
}
