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
# The browser's build: the sign-in redirect only, without the secret-holding clients (Cargo feature `server`).
wasm-pack --log-level info build --no-pack $profile --target web --out-dir "$out-browser" --out-name qauth_browser -- --no-default-features

rm -rf pkg && mkdir -p pkg
cp "$out/qauth.js" "$out/qauth_bg.wasm" "$out-browser/qauth_browser.js" "$out-browser/qauth_browser_bg.wasm" pkg/
cp -r "$out/snippets" pkg/
# Both builds must import the same glue module, so both throw the one exported AuthError class.
if [ "$(cd "$out/snippets" && ls)" != "$(cd "$out-browser/snippets" && ls)" ]; then
  echo "the two builds' snippet folders differ: AuthError would be two classes" >&2; exit 1
fi
cp pkg-template/{package.json,qauth.d.ts,load.js,workerd.js,edge-light.js,node.js,browser.js,server.js,fast.js,broker.js,hono.js,hono.d.ts,README.md,LICENSE} pkg/
# AuthError lives in a wasm-bindgen snippet whose folder name carries a hash: re-export it.
glue=$(cd pkg && ls snippets/*/src/js/glue.js)
printf 'export { AuthError } from "./%s";\n' "$glue" > pkg/errors.js
# Make `import "qauth"` resolve to pkg/ for the tests, as npm does for a linked package.
mkdir -p node_modules && ln -sfn ../pkg node_modules/qauth
echo "pkg/ assembled ($profile): $(du -sk pkg | cut -f1) KB on disk"
