#!/usr/bin/env bash
# Run one scimsync command inside a memory limit the way a container has one (a cgroup's
# memory limit, which counts the page cache too: the kernel reclaims clean pages, such as the
# mapped columnar copies, before it kills), after dropping the page cache. Prints the wall
# time, peak RSS, how often the limit was hit and whether the kernel killed the process.
# Root on Linux (cgroup v1 or v2).
#   LIMIT=1G benches/in-container.sh scimsync ARGS…
set -euo pipefail
limit="${LIMIT:-1G}"
bytes=$(numfmt --from=iec "$limit")
# A fresh group each run, so that its counters are this run's.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then # v2
  cg=/sys/fs/cgroup/scimsync-bench
  rmdir "$cg" 2>/dev/null || true
  mkdir -p "$cg"
  echo "$bytes" >"$cg/memory.max"
  echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
  hits() { grep -E '^(max|oom_kill) ' "$cg/memory.events" | tr '\n' ' '; }
else # v1
  cg=/sys/fs/cgroup/memory/scimsync-bench
  rmdir "$cg" 2>/dev/null || true
  mkdir -p "$cg"
  echo "$bytes" >"$cg/memory.limit_in_bytes"
  echo 0 >"$cg/memory.failcnt"
  echo 0 >"$cg/memory.max_usage_in_bytes"
  hits() { echo "limit hit $(cat "$cg/memory.failcnt") times, $(grep oom_kill "$cg/memory.oom_control" | tail -1)"; }
fi
sync
echo 3 >/proc/sys/vm/drop_caches
out=$(mktemp)
start=$(date +%s.%N)
status=0
bash -c 'echo $$ >"$1/cgroup.procs" 2>/dev/null || echo $$ >"$1/tasks"; shift; exec /usr/bin/time -f "%M" -o "$0" "$@" >/dev/null 2>&1' "$out" "$cg" "$@" || status=$?
end=$(date +%s.%N)
printf '%s: exit %d, %.2f s, peak RSS %d MiB, within %s: %s\n' "$*" "$status" "$(echo "$end - $start" | awk '{print $1 - $3}')" "$(($(tail -1 "$out") / 1024))" "$limit" "$(hits)"
rm -f "$out"
