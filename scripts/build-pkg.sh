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
cp pkg-template/{package.json,qauth.d.ts,error.js,wire.js,client.js,load.js,workerd.js,edge-light.js,node.js,browser.js,server.js,broker.js,hono.js,hono.d.ts,README.md,LICENSE} "$stage/"
# The JS ships minified (names kept: `QflowAuth.name`, stack traces); pkg-template/ is the source.
if [ "$profile" = release ]; then
  for f in "$stage"/*.js; do esbuild "$f" --minify --keep-names --log-level=warning --outfile="$f" --allow-overwrite; done
fi
rm -rf pkg && mv "$stage" pkg
# Make `import "qauth"` resolve to pkg/ for the tests, as npm does for a linked package.
mkdir -p node_modules && ln -sfn ../pkg node_modules/qauth
echo "pkg/ assembled ($profile): $(du -sk pkg | cut -f1) KB on disk"
