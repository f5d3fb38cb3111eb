#!/usr/bin/env bash
# Builds both wasm builds (cargo + wasm-opt, no wasm-bindgen: see src/js/mod.rs) and assembles the
# npm package in pkg/ from them + pkg-template/. Usage: scripts/build-pkg.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"   # wasm-opt from npm binaryen first
flags=$(sed -n 's/^wasm-opt = \[\(.*\)\]$/\1/p' Cargo.toml | head -1 | tr -d '",')
profile=release
cargo_flags=(--release)
if [ "${1:-}" = "--dev" ]; then profile=debug; cargo_flags=(); fi
# Assembled beside pkg/ and swapped in at the end: tests running meanwhile (the demo test builds
# the package too) never see a half-built pkg/.
stage=target/pkg-stage
rm -rf "$stage" && mkdir -p "$stage"
# The server build: the secret-holding clients, as ops for pkg-template/client.js.
cargo build --quiet "${cargo_flags[@]}" --target wasm32-unknown-unknown
# The browser's build: the sign-in redirect only, no secret-holding client (Cargo feature
# `server` off, a bump allocator).
cargo build --quiet "${cargo_flags[@]}" --target wasm32-unknown-unknown --no-default-features --target-dir target/browser
if [ "$profile" = release ]; then
  # shellcheck disable=SC2086
  wasm-opt $flags target/wasm32-unknown-unknown/release/qauth.wasm -o "$stage/qauth_bg.wasm"
  # shellcheck disable=SC2086
  wasm-opt $flags target/browser/wasm32-unknown-unknown/release/qauth.wasm -o "$stage/qauth_browser.wasm"
else
  cp target/wasm32-unknown-unknown/debug/qauth.wasm "$stage/qauth_bg.wasm"
  cp target/browser/wasm32-unknown-unknown/debug/qauth.wasm "$stage/qauth_browser.wasm"
fi
cp pkg-template/{package.json,qauth.d.ts,hono.d.ts,README.md,LICENSE} "$stage/"
# The shipped modules: error.js (the one AuthError class, shared by every entry and qauth/hono),
# client.js (the driver, with wire.js inside), broker.js, hono.js, and each entry with what only
# entries use (load.js) inside; browser.js takes wire.js and load.js in too. Node's loader costs
# each module file at a cold start (5 modules → 3 for the node entry: 1.0 ms less to import,
# measured), and a page fetches 2 scripts instead of 4. Release JS ships minified; the public
# classes name themselves (`static name`), so `QflowAuth.name` holds without `--keep-names`
# (which names every function: +285 B gzip, measured); pkg-template/ is the source.
min=(); if [ "$profile" = release ]; then min=(--minify); fi
for f in error.js client.js broker.js hono.js workerd.js edge-light.js node.js server.js browser.js; do
  esbuild "pkg-template/$f" --bundle --format=esm "${min[@]}" --log-level=warning --outfile="$stage/$f" \
    --external:./error.js --external:./client.js --external:./broker.js --external:'./qauth_bg.wasm*' --external:cloudflare:workers
done
rm -rf pkg && mv "$stage" pkg
# Make `import "qauth"` resolve to pkg/ for the tests, as npm does for a linked package.
mkdir -p node_modules && ln -sfn ../pkg node_modules/qauth
echo "pkg/ assembled ($profile): $(du -sk pkg | cut -f1) KB on disk"
