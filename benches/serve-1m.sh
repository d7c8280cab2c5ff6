#!/usr/bin/env bash
# The whole loop over HTTP at 1,000,000 users: `scimsync gen --serve` writes a store and serves
# both sides from the Rust emulator, then pull (both sources at once), plan, apply at
# concurrency 16, pull again, plan again. Prints wall time and peak RSS of each step, users/s
# of the pulls and ops/s of the apply. The emulator holds every resource as JSON: ≈ 15–19 GiB
# at 1M users (use `benches/serve-1m.sh 200000` on a smaller machine).
#   benches/serve-1m.sh [USERS]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/emulator.sh
users="${1:-1000000}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scimsync"
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
serve_gen "$bin" "$users" "$work"
config="$work/gen/scimsync.toml"
# apply at 16 requests in flight
sed -i 's/^\[app.bench\]/[app.bench]\nconcurrency = 16/' "$config"

step() { # name, then the command's arguments
  local name=$1
  shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$config" -q "$@" >"$work/out" 2>&1 || {
    cat "$work/out"
    exit 1
  }
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc -l)
  printf '%-6s %8.2f s  peak RSS %6.0f MiB  %s\n' "$name" "$secs" "$(echo "$(cat "$work/rss") / 1024" | bc -l)" "$(tail -1 "$work/out")"
}
users_per_s() { # after a pull: the users it read (both sources) per second
  local n
  n=$("$bin" --config "$config" sql --format csv "SELECT count(*) FROM users" | tail -1)
  printf '       %s users: %.0f users/s\n' "$n" "$(echo "$n / $secs" | bc -l)"
}
step pull pull
users_per_s
step plan plan
step apply apply --yes
ops=$("$bin" --config "$config" sql --format csv "SELECT count(*) FROM operations WHERE status = 'done'" | tail -1)
printf '       %s operations: %.0f ops/s\n' "$ops" "$(echo "$ops / $secs" | bc -l)"
step pull2 pull
users_per_s
step plan2 plan
printf 'emulator RSS %.0f MiB\n' "$(echo "$(ps -o rss= -p "$server") / 1024" | bc -l)"
