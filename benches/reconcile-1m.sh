#!/usr/bin/env bash
# One `scimsync reconcile` cycle at USERS users over HTTP, the way a scheduled job runs it:
# `scimsync gen --serve` writes a fresh store and serves both sides from the Rust emulator (it
# holds every resource as JSON: ≈ 16 GiB at 1M users), then one cycle pulls both sides, plans
# and applies every operation (≈ 180k at 1M) at the app's concurrency, and prunes. Prints the
# cycle's wall time and peak RSS, and the highest RSS sampled (every 0.1 s) in each of its
# steps, from the seconds the cycle reports for them.
#
# With BUDGET_MIB set, the script fails when the peak passes it: the check that memory scales
# down with the directory (`BUDGET_MIB=300 benches/reconcile-1m.sh 100000`: 259 MiB at 100k against 853 MiB at 1M).
# BIN=path runs that binary instead of building one.
#   benches/reconcile-1m.sh [USERS]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/emulator.sh
users="${1:-1000000}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="${CARGO_TARGET_DIR:-target}/release/scimsync"
fi
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
serve_gen "$BIN" "$users" "$work"
config="$work/gen/scimsync.toml"

start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "$BIN" --config "$config" reconcile --max-deactivations 100% >"$work/out" 2>&1 &
cycle=$!
# RSS samples, "seconds-since-start KiB", while the cycle runs (its child is the scimsync process).
while kill -0 "$cycle" 2>/dev/null; do
  pid=$(pgrep -P "$cycle" | head -1 || true)
  if [ -n "$pid" ]; then
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$kib" ] && echo "$(echo "$(date +%s.%N) - $start" | bc -l) $kib" >>"$work/samples"
  fi
  sleep 0.1
done
status=0
wait "$cycle" || status=$?
end=$(date +%s.%N)
cat "$work/out"
# Exit 2 is an app held back or blocked, which the cycle reports; anything else is a failure.
[ "$status" = 0 ] || [ "$status" = 2 ] || {
  echo "reconcile failed (exit $status)"
  exit 1
}
peak=$(($(tail -1 "$work/rss") / 1024))
printf 'reconcile at %s users: %.1f s, peak RSS %d MiB\n' "$users" "$(echo "$end - $start" | bc -l)" "$peak"
# The step boundaries from "(pull Xs, plan Ys, apply Zs, prune Ws": the highest sample in each.
read -r pull plan apply prune < <(sed -n 's/.*(pull \([0-9.]*\)s, plan \([0-9.]*\)s, apply \([0-9.]*\)s, prune \([0-9.]*\)s.*/\1 \2 \3 \4/p' "$work/out" | tail -1)
awk -v a="$pull" -v b="$plan" -v c="$apply" -v d="$prune" '
  { s = $1; k = $2 / 1024
    step = s < a ? "pull" : s < a + b ? "plan" : s < a + b + c ? "apply" : s < a + b + c + d ? "prune" : "exit"
    if (k > top[step]) top[step] = k }
  END { split("pull plan apply prune exit", order, " ")
        for (i = 1; i <= 5; i++) if (order[i] in top) printf "  %-6s highest sample %5.0f MiB\n", order[i], top[order[i]] }' "$work/samples"
if [ -n "${BUDGET_MIB:-}" ] && [ "$peak" -gt "$BUDGET_MIB" ]; then
  echo "over budget: peak $peak MiB > $BUDGET_MIB MiB"
  exit 1
fi
