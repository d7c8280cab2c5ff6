#!/usr/bin/env bash
# Drift plan over a generated 1,000,000-user store (1M IdP users, ~1M app accounts, 100k
# groups, ~5M memberships a side): `scimsync gen`, then `scimsync plan` three times (the first
# correlates from scratch; later ones start from stored links). Prints wall time, peak RSS and
# the engine's own stage timings. With BUDGET_MIB set, exits 1 naming each command whose peak
# RSS is over it (at 100k users `BUDGET_MIB=256` holds: the peak scales down with the store).
# With MAPPED=1 the store is `gen --mapped` (three attribute mappings, every user with
# attributes); at 100k users `MAPPED=1 BUDGET_MIB=200` holds.
#   [MAPPED=1] [BUDGET_MIB=N] benches/plan-1m.sh [USERS] [GROUPS]
set -euo pipefail
cd "$(dirname "$0")/.."
users="${1:-1000000}"
groups="${2:-100000}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scimsync"
work="${SCIMSYNC_BENCH_DIR:-$(mktemp -d)}"
over=()
check() { # label, peak KiB
  if [ -n "${BUDGET_MIB:-}" ] && [ $(($2 / 1024)) -gt "$BUDGET_MIB" ]; then
    over+=("$1 ($(($2 / 1024)) MiB)")
  fi
}
mapped=()
if [ -n "${MAPPED:-}" ]; then mapped=(--mapped); fi
/usr/bin/time -f "gen: %e s, peak RSS %M KiB" -o "$work/gen.time" "$bin" gen --users "$users" --groups "$groups" "${mapped[@]}" --dir "$work" >/dev/null
cat "$work/gen.time"
check gen "$(grep -oE '[0-9]+ KiB' "$work/gen.time" | cut -d' ' -f1)"
for run in 1 2 3; do
  /usr/bin/time -f "plan run $run: %e s wall, peak RSS %M KiB" -o "$work/plan.time" "$bin" --config "$work/scimsync.toml" -v plan --format json 2>&1 >/dev/null \
    | grep -E 'timings' | sed 's/\x1b\[[0-9;]*m//g'
  cat "$work/plan.time"
  check "plan run $run" "$(grep -oE '[0-9]+ KiB' "$work/plan.time" | cut -d' ' -f1)"
done
if [ ${#over[@]} -gt 0 ]; then
  printf 'over the budget of %s MiB: %s\n' "$BUDGET_MIB" "${over[*]}"
  exit 1
fi
