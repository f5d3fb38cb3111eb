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
cp -r "$out/snippets" pkg/
cp pkg-template/{package.json,qauth.d.ts,workerd.js,node.js,browser.js,fast.js,broker.js,README.md,demo-signed-in.png,LICENSE} pkg/
# AuthError lives in a wasm-bindgen snippet whose folder name carries a hash: re-export it.
glue=$(cd pkg && ls snippets/*/src/js/glue.js)
printf 'export { AuthError } from "./%s";\n' "$glue" > pkg/errors.js
# Make `import "qauth"` resolve to pkg/ for the tests, as npm does for a linked package.
mkdir -p node_modules && ln -sfn ../pkg node_modules/qauth
echo "pkg/ assembled ($profile): $(du -sk pkg | cut -f1) KB on disk"
