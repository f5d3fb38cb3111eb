#!/usr/bin/env bash
# Every test, in layers: native unit tests, a short fuzz run, wasm in Node, wasm in headless Chromium, then the
# assembled npm package in Node and in workerd (Miniflare), then the packed tarball in consumer projects,
# all against the local emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "native: cargo fmt --check, clippy (native and wasm32), cargo test (sans-IO core, .d.ts check, emulator, fuzz harness)"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# (the wasm tests read the emulator URL at compile time; any URL does for linting)
QAUTH_EMULATOR=http://127.0.0.1:1 cargo clippy --target wasm32-unknown-unknown --all-targets --quiet -- -D warnings
cargo clippy --target wasm32-unknown-unknown --no-default-features --lib --quiet -- -D warnings
cargo test --workspace --quiet
cargo build --quiet -p qauth-emulator

step "fuzz: a short run of every target (make fuzz runs 10 million each)"
cargo run -q --release -p qauth-fuzz -- --execs 20000

step "wasm: wasm-pack test --node and --headless --chrome, against the emulator"
out=$(mktemp)
target/debug/qauth-emulator --port 0 >"$out" &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
export QAUTH_EMULATOR=$(grep -o 'http://127.0.0.1:[0-9]*' "$out")
wasm-pack --log-level warn test --node -- --test wasm_node
wasm-pack --log-level warn test --headless --chrome -- --test wasm_browser
kill $emu_pid; trap - EXIT; rm -f "$out"

step "package: build pkg/ (release) and its size"
scripts/build-pkg.sh
scripts/size.sh

step "JS: node --test on the assembled package (Node + workerd via Miniflare)"
node --test --test-concurrency=2 tests/js/

step "consumers: the packed tarball in TypeScript, wrangler, Vite, webpack, esbuild, Next.js edge, Hono (workerd + Node)"
node --test --test-concurrency=1 tests/consumers/
