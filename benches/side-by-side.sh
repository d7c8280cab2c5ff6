#!/usr/bin/env bash
# scimsync's drift engine and whole plan against DuckDB (SQLite scanner) and SQLite itself on
# the same store.
#   benches/side-by-side.sh [DIR]   DIR holds a store made by `scimsync gen` (default: makes a
#                                   1M-user one in a temp dir). Installs DuckDB into a venv.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scimsync"
dir="${1:-}"
if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  "$bin" gen --users 1000000 --groups 100000 --dir "$dir" >/dev/null
fi
venv="${SCIMSYNC_BENCH_VENV:-$HOME/.cache/scimsync/bench-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==1.5.5" "duckdb-extension-sqlite-scanner==1.5.5"
# A first plan stores the links both engines then start from.
"$bin" --config "$dir/scimsync.toml" -q plan --format json >/dev/null
for run in 1 2 3; do
  start=$(date +%s.%N)
  "$bin" --config "$dir/scimsync.toml" -v plan 2>&1 >/dev/null | sed 's/\x1b\[[0-9;]*m//g' \
    | grep -oE '"engine", [0-9.]+' | sed -E 's/"engine", ([0-9.]+)/scimsync engine (load, correlation, every drift query) \1 s/'
  echo "scimsync plan, whole (engine, planner, findings and operations stored): $(python3 -c "print(round($(date +%s.%N) - $start, 2))") s"
done
# The four core questions: as the first versions of this script ran them (each scanning SQLite),
# then as written for DuckDB, from the stored links and correlating by itself.
"$venv/bin/python" benches/duckdb_side_by_side.py "$dir/scimsync.db"
"$venv/bin/python" benches/duckdb_expert.py "$dir/scimsync.db"
# SQLite itself on the same joins (Python's sqlite3 module is the SQLite library).
python3 benches/sqlite_side_by_side.py "$dir/scimsync.db"
