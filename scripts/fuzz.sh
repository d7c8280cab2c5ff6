#!/usr/bin/env bash
# Fuzz scimsync's parsers (fuzz/: SP answers, filter escaping, PATCH application, config) for a
# bounded time each. Installs cargo-fuzz if missing. The stable toolchain runs it with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags). A crash fails the script and leaves its input
# under fuzz/artifacts/TARGET/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-15}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${SCIMSYNC_FUZZ_TARGET_DIR:-$HOME/.cache/scimsync-fuzz-target}"
cargo fuzz build -O
for target in scim_responses scim_filter scim_patch config; do
  corpus="corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ "$target" = scim_responses ] && seeds=(../tests/fixtures/scim ../tests/fixtures/idp)
  [ "$target" = config ] && { mkdir -p seeds/config; cp ../src/config/example.toml seeds/config/; seeds=(seeds/config); }
  echo "==> fuzz $target for ${seconds}s"
  cargo fuzz run -O "$target" "$corpus" "${seeds[@]}" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^Done|stat::number_of_executed_units|ERROR|panicked|SUMMARY|Test unit written" || true
  if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz target $target crashed: see fuzz/artifacts/$target"; exit 1
  fi
done
