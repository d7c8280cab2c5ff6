#!/usr/bin/env bash
# End-to-end ingest of a 1,000,000-user `file` IdP through the real CLI: a cold pull into an
# empty store, then a second pull with no changes. Prints wall time, users/s and peak RSS.
#   benches/ingest-1m.sh [USERS]
set -euo pipefail
cd "$(dirname "$0")/.."
users="${1:-1000000}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scimsync"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" gen-file --users "$users" --groups $((users / 10)) --members-per-group 50 --out "$work/directory.json"
printf 'store = "s.db"\n[idp.corp]\nkind = "file"\npath = "directory.json"\n' > "$work/scimsync.toml"
for pass in cold unchanged; do
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/scimsync.toml" -q pull
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc -l)
  printf '%-10s %8.2f s  %10.0f users/s  peak RSS %6.0f MiB\n' "$pass" "$secs" "$(echo "$users / $secs" | bc -l)" "$(echo "$(cat "$work/rss") / 1024" | bc -l)"
done
