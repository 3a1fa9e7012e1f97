//! The one boxed-future type of the crate's trait objects (a kind's [`Source`],
//! [`SessionApi`] and `Processlist`), in a leaf module every layer may import.
//!
//! [`Source`]: crate::source::Source
//! [`SessionApi`]: crate::api::SessionApi

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing for `'a`, so an async trait method can be
/// called through `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
