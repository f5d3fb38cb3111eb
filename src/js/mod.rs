//! The bindings layer: the only code that knows JsValue, Promises and fetch.
//!
//! `host` wraps the host (fetch with timeouts, timers, JSON, options, events, store);
//! `flight` drives the core's `TokenCache` with one in-flight Promise per client (single-flight);
//! `qflow`, `qpien`, `pkce` are the exports.

mod flight;
mod host;
mod pkce;
mod qflow;
mod qpien;

pub use pkce::{begin_authorization, complete_authorization};
pub use qflow::QflowAuth;
pub use qpien::QpienAuth;
