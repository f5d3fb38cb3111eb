#!/usr/bin/env bash
# Every test, in layers: native unit tests, a short fuzz run, then the assembled npm package (both wasm
# builds and their JS driver) in Node, in workerd (Miniflare) and in headless Chromium, then the packed
# tarball in consumer projects, all against the local emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "native: cargo fmt --check, clippy (native and wasm32), cargo test (sans-IO core, .d.ts check, emulator, fuzz harness)"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The shipped code as it is built for wasm32 (no_std, plain exports), server and browser builds.
cargo clippy --target wasm32-unknown-unknown --lib --quiet -- -D warnings
cargo clippy --target wasm32-unknown-unknown --no-default-features --lib --quiet -- -D warnings
cargo test --workspace --quiet
cargo build --quiet -p qauth-emulator

step "fuzz: a short run of every target (make fuzz runs 10 million each)"
cargo run -q --release -p qauth-fuzz -- --execs 20000

step "package: build pkg/ (release) and its size"
scripts/build-pkg.sh
scripts/size.sh

step "JS: node --test on the assembled package (Node + workerd via Miniflare)"
node --test --test-concurrency=2 tests/js/

step "consumers: the packed tarball in TypeScript, wrangler, Vite, webpack, esbuild, Next.js edge, Hono (workerd + Node)"
node --test --test-concurrency=1 tests/consumers/
