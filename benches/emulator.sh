# Sourced by the bench scripts that serve a `gen` store over HTTP (`scimsync gen --serve`).

# wait_serving LOG PID: until the emulator PID, writing LOG, says it serves (up to 15 minutes);
# ends the script with the log when the emulator ends first or never says so.
wait_serving() {
  local log=$1 pid=$2
  for _ in $(seq 1 900); do
    grep -q "^serving" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  cat "$log"
  echo "the emulator did not start"
  exit 1
}

# served_urls LOG: "IDP_URL APP_URL" of the emulator that wrote LOG.
served_urls() {
  sed -n 's/^serving the IdP at \([^ ]*\) and the app at \([^ ]*\) .*/\1 \2/p' "$1"
}

# serve_gen BIN USERS WORK: start `BIN gen --serve` with USERS users and USERS/10 groups, its store
# and config in WORK/gen and its log in WORK/serve.log; sets `server` to its pid (for the
# caller's trap) and returns once it serves.
serve_gen() {
  local bin=$1 users=$2 work=$3
  "$bin" gen --users "$users" --groups $((users / 10)) --dir "$work/gen" --serve >"$work/serve.log" 2>&1 &
  server=$!
  wait_serving "$work/serve.log" "$server"
}
