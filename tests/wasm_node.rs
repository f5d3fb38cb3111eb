//! wasm-bindgen-test suite run in Node (`wasm-pack test --node`).
#![cfg(target_arch = "wasm32")]
include!("wasm/common.rs");
