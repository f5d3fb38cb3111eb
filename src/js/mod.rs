//! The bindings layer: the only code that knows JsValue, Promises and fetch.
//!
//! `host` wraps the host (fetch with timeouts, timers, JSON, options, events, store);
//! `flight` drives the core's `TokenCache` with one in-flight Promise per client (single-flight);
//! `qflow`, `qpien`, `pkce` are the exports.

#[cfg(feature = "server")]
mod flight;
// Without `server`, only what the sign-in redirect needs of it is used.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod host;
mod pkce;
#[cfg(feature = "server")]
mod qflow;
#[cfg(feature = "server")]
mod qpien;

pub use pkce::{begin_authorization, complete_authorization};
#[cfg(feature = "server")]
pub use qflow::QflowAuth;
#[cfg(feature = "server")]
pub use qpien::QpienAuth;
