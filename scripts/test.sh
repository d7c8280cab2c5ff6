#!/usr/bin/env bash
# The test command: installs what the tests need (a Python venv with scim2-server), then runs
# every test with `cargo test`. Integration tests start their own scim2-server processes from
# the venv on free loopback ports, so they are isolated from each other.
#
#   ./scripts/test.sh              # everything
#   ./scripts/test.sh pull         # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

SCIM2_SERVER_VERSION=0.8.3
venv="${SCIMSYNC_VENV:-$HOME/.cache/scimsync/venv}"
if [ ! -x "$venv/bin/scim2-server" ] || ! "$venv/bin/pip" show scim2-server 2>/dev/null | grep -q "^Version: $SCIM2_SERVER_VERSION$"; then
  echo "==> installing scim2-server $SCIM2_SERVER_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "scim2-server==$SCIM2_SERVER_VERSION"
fi
export SCIM2_SERVER="$venv/bin/scim2-server"

echo "==> cargo test"
cargo test --locked "$@"

# The README's quick start must keep working: run its demo command (same dev build as the tests).
echo "==> README quick start: cargo run -- demo"
demo_dir=$(mktemp -d)
trap 'rm -rf "$demo_dir"' EXIT
(cd "$demo_dir" && cargo run --quiet --manifest-path "$OLDPWD/Cargo.toml" -- demo > demo.out) || { cat "$demo_dir/demo.out" 2>/dev/null; echo "demo failed"; exit 1; }
grep -q "plan (" "$demo_dir/demo.out" && grep -q "The demo store is" "$demo_dir/demo.out" || { cat "$demo_dir/demo.out"; echo "demo output incomplete"; exit 1; }
echo "demo ok ($(grep -c . "$demo_dir/demo.out") lines of output)"
