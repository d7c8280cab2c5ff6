#!/usr/bin/env bash
# Drift plan over a generated 1,000,000-user store (1M IdP users, ~1M app accounts, 100k
# groups, ~5M memberships a side): `scimsync gen`, then `scimsync plan` three times (the first
# correlates from scratch; later ones start from stored links). Prints wall time, peak RSS and
# the engine's own stage timings.
#   benches/plan-1m.sh [USERS] [GROUPS]
set -euo pipefail
cd "$(dirname "$0")/.."
users="${1:-1000000}"
groups="${2:-100000}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scimsync"
work="${SCIMSYNC_BENCH_DIR:-$(mktemp -d)}"
/usr/bin/time -f "gen: %e s, peak RSS %M KiB" "$bin" gen --users "$users" --groups "$groups" --dir "$work"
for run in 1 2 3; do
  /usr/bin/time -f "plan run $run: %e s wall, peak RSS %M KiB" "$bin" --config "$work/scimsync.toml" -v plan --format json 2>&1 >/dev/null \
    | grep -E 'plan run|timings' | sed 's/\x1b\[[0-9;]*m//g'
done
