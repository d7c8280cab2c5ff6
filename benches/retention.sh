#!/usr/bin/env bash
# A year of scheduled runs, compressed: a `gen` store served over HTTP goes through CYCLES
# plan-only cycles (drift → pull → plan, as an auditor's schedule) and CYCLES reconcile cycles
# (drift → reconcile, which applies and prunes), twice from identical starts: once keeping
# everything (`[retention]` all "forever") and once with a short retention (plans 1m with the
# latest 5, history/events/runs 5m), pruned after every cycle. Prints the store's size (file +
# WAL + columnar copies) every tenth cycle for both, the prune's time, and checks that the two
# stores give the same answers: the latest plan's findings and operations, the app's accounts
# after the last apply, and `sql --at` a run inside the horizon.
#   benches/retention.sh [USERS] [CYCLES]        (default 100000 200)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/emulator.sh
users="${1:-100000}"
cycles="${2:-200}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin="${BIN:-${CARGO_TARGET_DIR:-target}/release/scimsync}"
work=$(mktemp -d)
servers=()
trap 'for s in "${servers[@]}"; do kill "$s" 2>/dev/null; done; rm -rf "$work"' EXIT

serve() { # variant directory; prints nothing, leaves the config at $work/$1/gen/scimsync.toml
  mkdir -p "$work/$1"
  (cd "$work/$1" && exec "$bin" gen --users "$users" --groups $((users / 10)) --dir gen --serve >serve.log 2>&1) &
  servers+=($!)
  wait_serving "$work/$1/serve.log" "$!"
}

retention() { # variant, then the [retention] lines
  local config="$work/$1/gen/scimsync.toml"
  shift
  { printf '[retention]\n'; printf '%s\n' "$@"; cat "$config"; } >"$config.new"
  # [retention] must come after the top-level keys: put `store` first again.
  grep '^store' "$config.new" >"$config"
  grep -v '^store' "$config.new" >>"$config"
  rm "$config.new"
}

urls() { # variant → "IDP_URL APP_URL"
  served_urls "$work/$1/serve.log"
}

# A little drift, the same in both variants: titles of 20 IdP users and 5 app accounts, and one
# IdP user deactivated, chosen by a seeded generator from the cycle number.
drift() { # variant, cycle
  read -r idp app <<<"$(urls "$1")"
  "${PYTHON:-python3}" benches/http_drift.py "$idp" "$app" "$2" "$users" 20 1 5
}

size_mib() { # variant → MiB of the store, its WAL and its columnar copies
  local db="$work/$1/gen/scimsync.db"
  du -cb "$db" "$db-wal" "$db.columns" 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}'
}

run() { # variant, then the command
  local v=$1
  shift
  "$bin" --config "$work/$v/gen/scimsync.toml" -q "$@" >"$work/$v/out" 2>&1 || {
    [ "${1:-}" = reconcile ] && return 0 # exit 2: an app held back (the deactivation guard)
    cat "$work/$v/out"
    exit 1
  }
}

serve kept
serve pruned
retention kept 'plans = "forever"' 'history = "forever"' 'events = "forever"' 'runs = "forever"'
retention pruned 'plans = "1m"' 'keep_plans = 5' 'history = "5m"' 'events = "5m"' 'runs = "5m"'
for v in kept pruned; do run "$v" plan; done

prune_total=0
prune_max=0
printf '%-10s %6s %12s %12s %10s\n' phase cycle kept_MiB pruned_MiB prune_s
for phase in plan reconcile; do
  for c in $(seq 1 "$cycles"); do
    n=$c
    [ "$phase" = reconcile ] && n=$((c + cycles))
    for v in kept pruned; do
      drift "$v" "$n"
      if [ "$phase" = plan ]; then
        run "$v" pull
        run "$v" plan
      else
        run "$v" reconcile --max-deactivations 100%
      fi
    done
    start=$(date +%s.%N)
    [ "$phase" = plan ] && run pruned prune
    secs=$(echo "$(date +%s.%N) - $start" | bc -l)
    [ "$phase" = reconcile ] && secs=$(sed -n 's/.*prune \([0-9.]*\)s.*/\1/p' "$work/pruned/out" | tail -1)
    prune_total=$(echo "$prune_total + ${secs:-0}" | bc -l)
    prune_max=$(echo "m = $prune_max; s = ${secs:-0}; if (s > m) s else m" | bc -l)
    if [ $((c % 10)) -eq 0 ] || [ "$c" -eq 1 ]; then
      printf '%-10s %6d %12s %12s %10.2f\n' "$phase" "$c" "$(size_mib kept)" "$(size_mib pruned)" "${secs:-0}"
    fi
  done
done
printf 'prune: %.2f s mean, %.2f s max over %d cycles\n' "$(echo "$prune_total / (2 * $cycles)" | bc -l)" "$prune_max" $((2 * cycles))

# The same answers with and without pruning.
same() { # label, then the sql arguments
  local label=$1
  shift
  for v in kept pruned; do run "$v" sql --format csv "$@" && cp "$work/$v/out" "$work/$v.answer"; done
  if cmp -s "$work/kept.answer" "$work/pruned.answer"; then
    echo "same answer: $label ($(wc -l <"$work/kept.answer") lines)"
  else
    echo "DIFFERENT: $label"
    diff "$work/kept.answer" "$work/pruned.answer" | head -20
    exit 1
  fi
}
same "the latest plan's findings" "SELECT app, kind, subject, detail, idp_id, sp_id, attribute, old_value, new_value FROM findings WHERE run_id = (SELECT max(plan_id) FROM plans) ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
same "the latest plan's operations" "SELECT seq, app, action, method, path, body, status FROM operations WHERE plan_id = (SELECT max(plan_id) FROM plans) ORDER BY seq"
same "the app's accounts after the last apply" "SELECT id, user_name, active, title FROM users WHERE source = 'app.bench' ORDER BY id"
inside=$("$bin" --config "$work/pruned/gen/scimsync.toml" sql --format csv "SELECT max(id) - 12 FROM runs WHERE kind = 'pull'" | tail -1)
same "sql --at run $inside (inside the horizon)" --at "$inside" "SELECT source, id, active, title FROM users ORDER BY source, id"
"$bin" --config "$work/pruned/gen/scimsync.toml" status | tail -4
