#!/usr/bin/env bash
# Builds the wasm with wasm-pack (--target web) and assembles the npm package in pkg/ from its
# output + pkg-template/. Usage: scripts/build-pkg.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"   # wasm-opt from npm binaryen first
profile=--release
[ "${1:-}" = "--dev" ] && profile=--dev
out=target/wasm-pack
wasm-pack --log-level info build --no-pack $profile --target web --out-dir "$out" --out-name qauth
rm -rf pkg && mkdir -p pkg
cp "$out/qauth.js" "$out/qauth_bg.wasm" pkg/
# wasm-bindgen's snippets (src/js/*.js) live in a folder named with a hash: ship them as glue/ and
# point the generated module's imports there (the import-object keys are names the wasm carries,
# not paths, and stay as they are).
mkdir -p pkg/glue && cp "$out"/snippets/qauth-*/src/js/*.js pkg/glue/
sed -i -E '/^import /s#\./snippets/qauth-[0-9a-f]+/src/js/#./glue/#' pkg/qauth.js
if grep -E '^import .*snippets/' pkg/qauth.js; then echo "a snippet import was not rewritten" >&2; exit 1; fi
# The browser's build: the sign-in redirect only, no secret-holding client and no wasm-bindgen
# (Cargo feature `server` off: `no_std`, plain exports, see src/js/browser.rs), same wasm-opt flags.
cargo build --quiet --release --target wasm32-unknown-unknown --no-default-features --target-dir target/browser
flags=$(sed -n 's/^wasm-opt = \[\(.*\)\]$/\1/p' Cargo.toml | head -1 | tr -d '",')
# shellcheck disable=SC2086
wasm-opt $flags target/browser/wasm32-unknown-unknown/release/qauth.wasm -o pkg/qauth_browser.wasm
cp pkg-template/{package.json,qauth.d.ts,load.js,workerd.js,edge-light.js,node.js,browser.js,server.js,fast.js,broker.js,hono.js,hono.d.ts,README.md,LICENSE} pkg/
# Make `import "qauth"` resolve to pkg/ for the tests, as npm does for a linked package.
mkdir -p node_modules && ln -sfn ../pkg node_modules/qauth
echo "pkg/ assembled ($profile): $(du -sk pkg | cut -f1) KB on disk"
