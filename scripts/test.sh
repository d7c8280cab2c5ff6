#!/usr/bin/env bash
# The test command: installs what the tests need (a Python venv with scim2-server), checks
# formatting and clippy, then runs every test with `cargo test`. Integration tests start their
# own scim2-server processes from the venv on free loopback ports, so they are isolated from
# each other.
#
#   ./scripts/test.sh              # everything
#   ./scripts/test.sh pull         # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# Two third-party SCIM service providers: scim2-server, and django-scim2 (Django with the
# package's views, started by tests/it/django_scim.rs from tests/django_scim/).
SCIM2_SERVER_VERSION=0.8.3
DJANGO_SCIM2_VERSION=0.23.0
# DuckDB reads the Parquet lake `scimsync export --lake` writes (tests/it/lake.rs).
DUCKDB_VERSION=1.5.5
venv="${SCIMSYNC_VENV:-$HOME/.cache/scimsync/venv}"
installed() { "$venv/bin/pip" show "$1" 2>/dev/null | grep -q "^Version: $2$"; }
if [ ! -x "$venv/bin/scim2-server" ] || ! installed scim2-server "$SCIM2_SERVER_VERSION" || ! installed django-scim2 "$DJANGO_SCIM2_VERSION" || ! installed duckdb "$DUCKDB_VERSION"; then
  echo "==> installing scim2-server $SCIM2_SERVER_VERSION, django-scim2 $DJANGO_SCIM2_VERSION and duckdb $DUCKDB_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "scim2-server==$SCIM2_SERVER_VERSION" "django-scim2==$DJANGO_SCIM2_VERSION" "duckdb==$DUCKDB_VERSION"
fi
export SCIM2_SERVER="$venv/bin/scim2-server"
export SCIMSYNC_PYTHON="$venv/bin/python"

# Debian packages the tests and checks use: openssl (a self-signed certificate for the TLS test),
# sqlite3 (the store read by another tool) and chromium (the HTML audit page).
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]} (Debian)"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The house rules: formatted, and clippy-clean on every target with warnings as errors.
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets --quiet -- -D warnings

echo "==> cargo test"
cargo test --locked "$@"

# The README's quick start must keep working: run its demo command (same dev build as the tests).
echo "==> README quick start: cargo run -- demo"
demo_dir=$(mktemp -d)
trap 'rm -rf "$demo_dir"' EXIT
(cd "$demo_dir" && cargo run --quiet --manifest-path "$OLDPWD/Cargo.toml" -- demo > demo.out) || { cat "$demo_dir/demo.out" 2>/dev/null; echo "demo failed"; exit 1; }
grep -q "plan (" "$demo_dir/demo.out" && grep -q "The demo store is" "$demo_dir/demo.out" || { cat "$demo_dir/demo.out"; echo "demo output incomplete"; exit 1; }
echo "demo ok ($(grep -c . "$demo_dir/demo.out") lines of output)"

# Supply chain: licenses, bans and sources of every dependency (deny.toml).
echo "==> cargo deny (licenses, bans, sources)"
if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing cargo-deny"
  cargo install cargo-deny --locked --quiet
fi
cargo deny --log-level error check licenses bans sources

# The parsers under libFuzzer for a few seconds each (longer runs: scripts/fuzz.sh SECONDS).
echo "==> fuzzing (bounded)"
./scripts/fuzz.sh "${SCIMSYNC_FUZZ_SECONDS:-10}"

# The commands the demo and the README give for exploring the demo store.
echo "==> auditor commands on the demo store"
scimsync() { (cd "$demo_dir" && cargo run --quiet --manifest-path "$OLDPWD/Cargo.toml" -- "$@"); }
cfg=scimsync-demo/scimsync.toml
scimsync --config $cfg sql "SELECT * FROM idp_vs_app LIMIT 5" --format csv | grep "^app,idp,idp_user_id" >/dev/null || { echo "sql over the demo store failed"; exit 1; }
scimsync --config $cfg report --list | grep access_review >/dev/null || { echo "report --list failed"; exit 1; }
before=$(grep -o "report deactivated_but_active --at [0-9]*" "$demo_dir/demo.out" | grep -o "[0-9]*$")
scimsync --config $cfg report deactivated_but_active --at "$before" --format csv | grep "inactive in the IdP" >/dev/null || { echo "report --at failed"; exit 1; }
scimsync --config $cfg report --html audit.html
sqlite3 "$demo_dir/scimsync-demo/scimsync.db" "SELECT app, COUNT(*) FROM app_access GROUP BY app" | grep "^quip|" >/dev/null || { echo "app_access is not readable by sqlite3"; exit 1; }
# The README's lake commands: export the demo store, then a report over the lake names the store.
scimsync --config $cfg export --lake lake --store-id demo | grep "exported into lake" >/dev/null || { echo "export --lake failed"; exit 1; }
scimsync --config $cfg report access_review --lake lake --format csv | grep "^demo,quip," >/dev/null || { echo "report --lake failed"; exit 1; }

# The HTML audit page in headless Chromium: no console errors, a non-blank screenshot. A control
# page with a deliberate error proves the console check can fail.
echo "==> HTML audit page in headless Chromium"
shot() { timeout 120 chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --window-size=1280,1000 --screenshot="$2" "file://$1" 2> "$3" >/dev/null || true; }
echo '<!DOCTYPE html><html><body><p>control</p><script>undefinedFunction()</script></body></html>' > "$demo_dir/control.html"
shot "$demo_dir/control.html" "$demo_dir/control.png" "$demo_dir/control.log"
python3 scripts/check_page.py "$demo_dir/control.png" "$demo_dir/control.log" --expect-console-error
shot "$demo_dir/audit.html" "$demo_dir/audit.png" "$demo_dir/audit.log"
python3 scripts/check_page.py "$demo_dir/audit.png" "$demo_dir/audit.log"
