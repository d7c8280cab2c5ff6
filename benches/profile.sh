#!/usr/bin/env bash
# A CPU profile of one scimsync command: perf with DWARF call graphs, folded by inferno into a
# flame graph (SVG), and the 25 hottest functions printed. Installs inferno (cargo install, into
# ~/.cache/scimsync/inferno) and perf (apt: linux-perf) when they are missing.
#   benches/profile.sh OUT.svg SCIMSYNC-ARGS...
#   e.g. benches/profile.sh plan.svg --config /tmp/g/scimsync.toml -q plan
# Sampling at 199 Hz with 32 KiB stacks: a 4 s plan at 1M users gives ≈ 40 MB of perf data (in a
# temp dir); turning the DWARF stacks into the graph takes 4 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,8p' "$0"; exit 2; }
out="$1"
shift
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scimsync"
if ! command -v perf >/dev/null; then
  sudo apt-get install -y -q linux-perf >/dev/null || {
    echo "perf is missing: install linux-perf (Debian) or linux-tools-\$(uname -r) (Ubuntu)" >&2
    exit 1
  }
fi
tools="$HOME/.cache/scimsync/inferno"
[ -x "$tools/bin/inferno-flamegraph" ] || cargo install --quiet --locked inferno --root "$tools"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! perf record -F 199 --call-graph dwarf,32768 -o "$work/perf.data" -- "$bin" "$@" >/dev/null; then
  echo "perf record failed; as a user other than root it needs kernel.perf_event_paranoid <= 1" >&2
  exit 1
fi
perf script -i "$work/perf.data" 2>/dev/null | "$tools/bin/inferno-collapse-perf" >"$work/folded"
"$tools/bin/inferno-flamegraph" --title "scimsync $*" <"$work/folded" >"$out"
echo "flame graph: $out"
perf report -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25
