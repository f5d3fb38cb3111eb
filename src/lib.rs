//! qauth: OAuth access tokens and auth headers for the Qflow and Qpien APIs, compiled to wasm.
//!
//! Module map. A sans-IO core decides what to send and what an answer means; `js` turns its
//! decisions into bytes for the package's JS driver (`pkg-template/client.js`), which alone
//! talks to the host (fetch, Promises, the caller's store, broker and callbacks).
//!
//! | module   | idea |
//! |----------|------|
//! | `error`  | `AuthError`: stable `code`, `retryable`, `hint` |
//! | `secret` | `Secret` newtype (redacted `Debug`) and the one `redact` for server text |
//! | `http`   | request/response values, form + URL helpers |
//! | `json`   | a small JSON reader (nesting-limited, no float tables) and string writer |
//! | `config` | option validation shared by providers |
//! | `endpoints` | Qflow identity-server facts shared by `qflow` and `pkce` |
//! | `event`  | `Event`: what `onEvent` is told (one enum, converted to JS in one place) |
//! | `token`  | token endpoint answers: parsing, expiry |
//! | `broker` | the token broker's lease request/answer, its stored access-token record, and an isolate's `Generations` (which token to report stale) |
//! | `cache`  | token cache state machine: fresh / start / join (single-flight), proactive refresh |
//! | `flow`   | `Action` / `Input`: what a provider's flow asks the driver to do |
//! | `acquisition` | one Qflow token acquisition as a state machine: store, grant choice, retries, save before install |
//! | `retry`  | bounded backoff for token requests |
//! | `qflow`  | Qflow grants, rotating refresh session, API headers and 403 gates |
//! | `qpien`  | Qpien `generateOAuthToken` mint (a `Mint` flow) and GraphQL error verdicts |
//! | `pkce`   | PKCE + `state` for the authorization-code redirect: `begin`, `parse_callback` |
//! | `sha256` | SHA-256 for the S256 challenge (no WebCrypto round trip, no Promise) |
//! | `js`     | the bindings: three plain exports (`qauth_alloc`, `qauth_call`, `qauth_free`); `js::wire` the byte format, `js::server` the clients' ops, `js::pkce` the sign-in ops, `js::heap` / `js::browser` each build's allocator |
//!
//! Adding a provider: one module beside `qflow`/`qpien` using `cache`, `token`, `retry`; its
//! ops in `js::server` and its class in `pkg-template/client.js`.

// On wasm32 the crate is `no_std`: no std panic machinery or formatting in it, its own
// allocator and panic handler (`js`). Modules take `String`/`Vec` from `alloc`, which is the same
// type as std's in the native build (tests).
#![cfg_attr(target_arch = "wasm32", no_std)]
#![warn(unreachable_pub)]

extern crate alloc;

#[cfg(feature = "server")]
pub mod acquisition;
#[cfg(feature = "server")]
pub mod broker;
#[cfg(feature = "server")]
pub mod cache;
pub mod config;
pub mod endpoints;
pub mod error;
#[cfg(feature = "server")]
pub mod event;
#[cfg(feature = "server")]
pub mod flow;
pub mod http;
pub mod json;
pub mod pkce;
#[cfg(feature = "server")]
pub mod qflow;
#[cfg(feature = "server")]
pub mod qpien;
#[cfg(feature = "server")]
pub mod retry;
pub mod secret;
pub mod sha256;
pub mod token;

// Also built natively: its ops are tested there like the rest of the core (`cargo test`).
pub mod js;
