#!/usr/bin/env bash
# Prints the shipped size of qauth_bg.wasm + JS glue in pkg/, raw and gzip -9.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f pkg/qauth_bg.wasm ] || { echo "pkg/ not built: run scripts/build-pkg.sh" >&2; exit 1; }
gz() { gzip -9 -c "$@" | wc -c; }
glue=(pkg/qauth.js pkg/errors.js pkg/workerd.js pkg/snippets/*/src/js/glue.js)
w_raw=$(wc -c < pkg/qauth_bg.wasm); w_gz=$(gz pkg/qauth_bg.wasm)
j_raw=$(cat "${glue[@]}" | wc -c); j_gz=$(cat "${glue[@]}" | gzip -9 | wc -c)
printf '%-28s %9s %12s\n' "file" "raw B" "gzip -9 B"
printf '%-28s %9d %12d\n' "qauth_bg.wasm" "$w_raw" "$w_gz"
printf '%-28s %9d %12d\n' "JS glue (workerd entry)" "$j_raw" "$j_gz"
printf '%-28s %9d %12d  (%.1f KB gzip; target <= 30 KB)\n' "total" $((w_raw + j_raw)) $((w_gz + j_gz)) "$(echo "($w_gz + $j_gz)/1024" | bc -l)"
