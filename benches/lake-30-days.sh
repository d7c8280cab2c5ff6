#!/usr/bin/env bash
# Issue 25's scale check: a `gen` store of USERS users that lived through DAYS days of history,
# its lake, and every saved report over the store, over the lake here, and over the lake on a
# Ballista cluster of two executors (`scimsync cluster`, on this machine).
#
# The days are simulated with libfaketime (Debian package `faketime`): the store is generated
# DAYS days in the past and served over HTTP (`gen --serve`); then for each day, oldest first,
# a seeded drift over SCIM (titles of TITLES IdP users, DEACTIVATE deactivations, EDITS app
# accounts hand-edited; benches/http_drift.py), and `pull` and `plan` run with the clock set to
# that day. So the store holds DAYS+1 days of runs, versions, events, findings and operations,
# and the lake a partition per table and day. Prints each step's time and peak RSS, the lake's
# size, then per report: rows and seconds over the store, the lake, the cluster, and whether the
# three answers are the same (lists of groups compared as sets: string_agg's order is free).
# The emulator holds every resource as JSON: ≈ 15–19 GiB at 1M users.
#   benches/lake-30-days.sh [USERS] [DAYS]        (default 1000000 30; TITLES=2000
#                                                  DEACTIVATE=100 EDITS=500 in the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/emulator.sh
users="${1:-1000000}"
days="${2:-30}"
titles="${TITLES:-2000}" deactivate="${DEACTIVATE:-100}" edits="${EDITS:-500}"
libfaketime=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
[ -n "$libfaketime" ] || { echo "needs libfaketime: apt-get install faketime"; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin="${BIN:-${CARGO_TARGET_DIR:-target}/release/scimsync}"
work=$(mktemp -d)
server="" cluster=""
trap 'for p in $server $cluster; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT

# The command with the clock DAYS_AGO days back (monotonic clocks, for timeouts, left alone).
ago() { # days ago, then the command
  local d=$1
  shift
  env LD_PRELOAD="$libfaketime" FAKETIME="-${d}d" FAKETIME_DONT_FAKE_MONOTONIC=1 "$@"
}

# `exec` in a subshell, so that $! is the emulator itself and the trap's kill reaches it.
(exec env LD_PRELOAD="$libfaketime" FAKETIME="-${days}d" FAKETIME_DONT_FAKE_MONOTONIC=1 "$bin" gen --users "$users" --groups $((users / 10)) --dir "$work/gen" --serve) >"$work/serve.log" 2>&1 &
server=$!
wait_serving "$work/serve.log" "$server"
read -r idp app <<<"$(served_urls "$work/serve.log")"
config="$work/gen/scimsync.toml"
sed -i '1i store_id = "bench"' "$config"

step() { # label, days ago, then the command's arguments
  local label=$1 d=$2
  shift 2
  local start
  start=$(date +%s.%N)
  ago "$d" /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$config" -q "$@" >"$work/out" 2>&1 || {
    cat "$work/out"
    exit 1
  }
  printf '%-28s %8.2f s  peak %5.0f MiB\n' "$label" "$(echo "$(date +%s.%N) - $start" | bc -l)" \
    "$(echo "$(cat "$work/rss") / 1024" | bc -l)"
}

step "plan (day -$days)" "$days" plan
for d in $(seq $((days - 1)) -1 0); do
  "${PYTHON:-python3}" benches/http_drift.py "$idp" "$app" "$d" "$users" "$titles" "$deactivate" "$edits"
  step "pull (day -$d)" "$d" pull
  step "plan (day -$d)" "$d" plan
done
"$bin" --config "$config" status | tail -12

lake="$work/lake"
step "export --lake" 0 export --lake "$lake"
step "export again (nothing new)" 0 export --lake "$lake"
printf 'lake: %s, %s files\n' "$(du -sh "$lake" | cut -f1)" "$(find "$lake" -name '*.parquet' | wc -l)"

"$bin" cluster --executors 2 >"$work/cluster.url" 2>"$work/cluster.log" &
cluster=$!
for _ in $(seq 1 100); do [ -s "$work/cluster.url" ] && break; sleep 0.1; done
url=$(head -1 "$work/cluster.url")

timed() { # output file, then the command's arguments; prints seconds
  local out=$1
  shift
  local start
  start=$(date +%s.%N)
  "$bin" --config "$config" -q "$@" --format csv >"$out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  printf '%.2f' "$(echo "$(date +%s.%N) - $start" | bc -l)"
}

same() { # csv files; the store's has no store_id column
  "${PYTHON:-python3}" - "$@" <<'PY'
import csv, sys
def rows(path, drop_first):
    out = []
    for r in list(csv.reader(open(path)))[1:]:
        r = r[1:] if drop_first else r
        out.append(tuple(", ".join(sorted(v.split(", "))) if ", " in v else v for v in r))
    return sorted(out)
store, lake, cluster = rows(sys.argv[1], False), rows(sys.argv[2], True), rows(sys.argv[3], True)
print("same" if store == lake == cluster else "DIFFERENT")
PY
}

mid=$(date -u -d "$((days / 2)) days ago" +%Y-%m-%dT%H:%M:%SZ)
printf '%-34s %9s %8s %8s %10s  %s\n' report rows store_s lake_s cluster_s answers
for r in $(ls queries/reports | sed 's/\.sql$//') "access_review --at $mid"; do
  # shellcheck disable=SC2086 # "NAME --at TIME" splits into arguments on purpose
  s=$(timed "$work/store.csv" report $r)
  # shellcheck disable=SC2086
  l=$(timed "$work/lake.csv" report $r --lake "$lake")
  # shellcheck disable=SC2086
  c=$(timed "$work/cluster.csv" report $r --lake "$lake" --cluster "$url")
  printf '%-34s %9d %8s %8s %10s  %s\n' "$r" $(($(wc -l <"$work/store.csv") - 1)) "$s" "$l" "$c" \
    "$(same "$work/store.csv" "$work/lake.csv" "$work/cluster.csv")"
done
