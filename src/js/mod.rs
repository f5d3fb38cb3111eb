//! The bindings layer: the only code that knows JsValue, Promises, fetch and wasm memory.
//!
//! Server build (`server` feature, wasm-bindgen): `host` wraps the host (fetch with timeouts,
//! timers, options, events, store); `flight` keeps one in-flight acquisition per client around
//! the core's `TokenCache` and `drive`s the core's flows (the actions they ask for, performed);
//! `qflow`, `qpien`, `pkce` are the exports.
//! Browser build (no `server`): `browser`, the sign-in redirect as plain exports over bytes.

#[cfg(feature = "server")]
mod flight;
#[cfg(feature = "server")]
mod host;
#[cfg(feature = "server")]
mod pkce;
#[cfg(feature = "server")]
mod qflow;
#[cfg(feature = "server")]
mod qpien;

#[cfg(feature = "server")]
pub use pkce::{begin_authorization, complete_authorization};
#[cfg(feature = "server")]
pub use qflow::QflowAuth;
#[cfg(feature = "server")]
pub use qpien::QpienAuth;

#[cfg(not(feature = "server"))]
mod browser;
