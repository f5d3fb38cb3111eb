#!/usr/bin/env bash
# Prints the shipped size of qauth_bg.wasm + its JS in pkg/ (server build, workerd entry: the entry,
# the driver, the wire format, the error class, the broker), and of the browser build a page loads,
# raw and gzip -9.
# `--top N`: instead, the N largest items of the wasm (twiggy), measured on a release build that
# keeps its names section (the shipped one is stripped), so size work is aimed, not guessed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
if [ "${1:-}" = "--top" ]; then
  command -v twiggy >/dev/null || { echo "twiggy not installed (make bench installs it)" >&2; exit 1; }
  cargo build --quiet --release --target wasm32-unknown-unknown
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  flags=$(sed -n 's/^wasm-opt = \[\(.*\)\]$/\1/p' Cargo.toml | head -1 | tr -d '",' | sed 's/--strip-debug//; s/--strip-producers//')
  # shellcheck disable=SC2086
  wasm-opt $flags --debuginfo target/wasm32-unknown-unknown/release/qauth.wasm -o "$tmp/named.wasm"
  # The names section itself is not shipped: leave it out of the listing.
  twiggy top -n "$(( ${2:-20} + 1 ))" "$tmp/named.wasm" | grep -v '"function names" subsection'
  exit 0
fi
[ -f pkg/qauth_bg.wasm ] || { echo "pkg/ not built: run scripts/build-pkg.sh" >&2; exit 1; }
gz() { gzip -9 -c "$@" | wc -c; }
glue=(pkg/workerd.js pkg/client.js pkg/error.js pkg/broker.js)
w_raw=$(wc -c < pkg/qauth_bg.wasm); w_gz=$(gz pkg/qauth_bg.wasm)
j_raw=$(cat "${glue[@]}" | wc -c); j_gz=$(cat "${glue[@]}" | gzip -9 | wc -c)
printf '%-28s %9s %12s\n' "file" "raw B" "gzip -9 B"
printf '%-28s %9d %12d\n' "qauth_bg.wasm" "$w_raw" "$w_gz"
printf '%-28s %9d %12d\n' "JS (workerd entry)" "$j_raw" "$j_gz"
printf '%-28s %9d %12d  (%.1f KB gzip; target <= 30 KB)\n' "total" $((w_raw + j_raw)) $((w_gz + j_gz)) "$(echo "($w_gz + $j_gz)/1024" | bc -l)"
# The browser build, as a page loads it: each file gzipped on its own (what a server sends).
page=(pkg/qauth_browser.wasm pkg/browser.js pkg/error.js)
b_raw=0; b_gz=0
for f in "${page[@]}"; do b_raw=$((b_raw + $(wc -c < "$f"))); b_gz=$((b_gz + $(gz "$f"))); done
printf '%-28s %9d %12d\n' "qauth_browser.wasm" "$(wc -c < pkg/qauth_browser.wasm)" "$(gz pkg/qauth_browser.wasm)"
printf '%-28s %9d %12d  (%.1f KB gzip; target <= 10 KB)\n' "browser build, all files" "$b_raw" "$b_gz" "$(echo "$b_gz/1024" | bc -l)"
