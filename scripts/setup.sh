#!/usr/bin/env bash
# Installs everything the build, tests and demo need, from the package registries only.
# Idempotent: every step is skipped when its tool is already there at the right version.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Debian's chromium for the browser tests, driven by playwright-core (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  say "apt-get install chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# npm tools: binaryen (wasm-opt), miniflare (workerd), esbuild, playwright-core, hono, oauth4webapi, wrangler (demo test).
if [ ! -f node_modules/.qauth-installed ] || [ package-lock.json -nt node_modules/.qauth-installed ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.qauth-installed
fi
say "tools ready: $(rustc --version), wasm-opt $(node_modules/.bin/wasm-opt --version | awk '{print $3}'), $(/usr/bin/chromium --version)"
