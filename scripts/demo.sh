#!/usr/bin/env bash
# Builds everything, then starts the emulator + the demo worker in workerd and prints the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
cargo build --quiet -p qauth-emulator
[ -f pkg/qauth_bg.wasm ] && [ -e node_modules/qauth ] && [ -z "$(find src pkg-template -newer pkg/qauth_bg.wasm -type f ! -name '*.png' | head -1)" ] || scripts/build-pkg.sh
exec node www/serve.mjs "$@"
