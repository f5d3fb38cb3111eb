#!/usr/bin/env bash
# Benchmarks (not tests): release pkg/, the emulator, then bench/run.mjs prints the table and
# writes target/bench/results.json. Run after `make test` has installed the toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
if ! twiggy --version 2>/dev/null | grep -q " 0.8.0$"; then
  echo "[bench] cargo install twiggy 0.8.0 (size breakdown)"
  cargo install twiggy --version 0.8.0 --locked
fi
cargo build --quiet -p qauth-emulator
scripts/build-pkg.sh
exec node bench/run.mjs
