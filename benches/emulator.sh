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
