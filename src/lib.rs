//! qauth: OAuth access tokens and auth headers for the Qflow and Qpien APIs, compiled to wasm.
//!
//! Module map. A sans-IO core decides what to send and what an answer means; only `js` talks to
//! the host (fetch, Promises, JsValue).
//!
//! | module   | idea |
//! |----------|------|
//! | `error`  | `AuthError`: stable `code`, `retryable`, `hint` |
//! | `secret` | `Secret` newtype (redacted `Debug`) and the one `redact` for server text |
//! | `http`   | request/response values, form + URL helpers |
//! | `json`   | a small JSON reader (nesting-limited, no float tables) and string writer |
//! | `config` | option validation shared by providers |
//! | `event`  | `Event`: what `onEvent` is told (one enum, converted to JS in one place) |
//! | `token`  | token endpoint answers: parsing, expiry |
//! | `broker` | the token broker's lease request/answer and its stored access-token record |
//! | `cache`  | token cache state machine: fresh / start / join (single-flight), proactive refresh |
//! | `retry`  | bounded backoff for token requests |
//! | `qflow`  | Qflow grants, rotating refresh session, API headers and 403 gates |
//! | `qpien`  | Qpien `generateOAuthToken` mint and GraphQL error verdicts |
//! | `pkce`   | PKCE + `state` for the authorization-code redirect |
//! | `js`     | wasm-bindgen exports: `QflowAuth`, `QpienAuth`, `beginAuthorization`, … |
//!
//! Adding a provider: one module beside `qflow`/`qpien` using `cache`, `token`, `retry`; one
//! export in `js`.

pub mod broker;
pub mod cache;
pub mod config;
pub mod error;
pub mod event;
pub mod http;
pub mod json;
pub mod pkce;
pub mod qflow;
pub mod qpien;
pub mod retry;
pub mod secret;
pub mod token;

#[cfg(target_arch = "wasm32")]
pub mod js;
