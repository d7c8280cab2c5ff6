#!/usr/bin/env bash
# Auditor SQL against a memory budget: every saved report, `sql` writing every membership and
# every app account to CSV and Parquet, and `diff` of the whole history (from run 1), on a store
# (a `scimsync gen` store: `scimsync gen --users 1000000 --groups 100000 --dir DIR`). Prints wall time and peak RSS of each; exits 1 naming
# each command over BUDGET_MIB (default 1024, the common memory limit of a scheduled job).
# MEMORY_LIMIT (e.g. 4GiB; unset, scimsync's default of 1GiB) is passed as --memory-limit.
#   [MEMORY_LIMIT=1GiB] benches/audit-memory.sh STORE [BUDGET_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
store="$1"
budget="${2:-1024}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin="${BIN:-${CARGO_TARGET_DIR:-target}/release/scimsync}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
over=()
measure() { # label, then the arguments
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$bin" --store "$store" ${MEMORY_LIMIT:+--memory-limit "$MEMORY_LIMIT"} -q "$@" >/dev/null 2>"$work/err" || {
    cat "$work/err"
    exit 1
  }
  read -r secs kib <"$work/time"
  local mib=$((kib / 1024))
  printf '%-40s %7.2f s  peak %5d MiB\n' "$label" "$secs" "$mib"
  [ "$mib" -le "$budget" ] || over+=("$label ($mib MiB)")
}
for q in ${QUERIES:-memberships app_access}; do
  for ext in csv parquet; do
    measure "sql SELECT * FROM $q → $ext" sql "SELECT * FROM $q" -o "$work/out.$ext" --force
  done
done
for r in $("$bin" report --list | sed -n 's/^│ \([a-z_]*\) .*/\1/p' | grep -vx report); do
  measure "report $r → csv" report "$r" --format csv -o "$work/report.csv" --force
done
measure "diff --from 1 → csv" diff --from 1 --format csv -o "$work/diff.csv" --force
if [ ${#over[@]} -gt 0 ]; then
  printf 'over the %d MiB budget: %s\n' "$budget" "${over[*]}"
  exit 1
fi
echo "every command within $budget MiB"
