#!/usr/bin/env bash
# The main job, end to end, on an embedded default: sets up a loopback OCI
# registry holding PostgreSQL 15 + pg_cron artifacts (built from Debian's
# packages), resolves and exports a bundle, stops the registry, installs
# from the bundle into a scratch root, and shows how to connect.
# Needs root (creates the postgres user, starts PostgreSQL with pg_ctl).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEMO=${PGOCI_DEMO_DIR:-/tmp/pgoci-demo}
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh must run as root" >&2
  exit 2
fi

say "1. test bed: tools and fixture artifacts (cached after the first run)"
tests/bed/bed.sh prepare-demo

say "2. build pgoci"
cargo build --release --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
pgoci="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release/pgoci"

# A re-run starts from scratch: stop the previous demo's server.
if [ -d "$DEMO/root/opt/pgoci/instances/pg15/current" ]; then
  runuser -u postgres -- "$DEMO/root/opt/pgoci/instances/pg15/current/bin/pg_ctl" \
    stop -m fast -D "$DEMO/root/var/lib/pgoci/pg15/data" >/dev/null 2>&1 || true
fi
rm -rf "$DEMO/root" "$DEMO/cache" "$DEMO/bundle.tar"
mkdir -p "$DEMO" && chmod 755 "$DEMO"

say "3. loopback registry with the fixtures"
registry=$(tests/bed/bed.sh up-demo "$DEMO/registry" | sed -n 's/^REGISTRY=//p' | tail -1)
export PGOCI_PROFILE="$DEMO/registry/profile.yaml" PGOCI_CACHE_DIR="$DEMO/cache"
common=(--insecure-registry "$registry")

say "4. catalog, resolve and export a bundle"
"$pgoci" "${common[@]}" catalog
"$pgoci" "${common[@]}" resolve --major 15 --ext pg_cron -o "$DEMO/pgoci.lock"
"$pgoci" "${common[@]}" bundle export --lock "$DEMO/pgoci.lock" -o "$DEMO/bundle.tar"
"$pgoci" bundle inspect "$DEMO/bundle.tar"

say "5. registry stopped: install offline from the bundle"
tests/bed/bed.sh down "$DEMO/registry"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$pgoci" --root "$DEMO/root" install --yes --bundle "$DEMO/bundle.tar" --port "$port"

say "6. use it"
sock="$DEMO/root/run/pgoci/pg15"
runuser -u postgres -- psql -X -h "$sock" -p "$port" -d postgres \
  -c 'CREATE EXTENSION IF NOT EXISTS pg_cron' -c 'SHOW shared_preload_libraries' -c 'SELECT version()'
"$pgoci" --root "$DEMO/root" status

cat >&2 <<MSG

PostgreSQL 15 with pg_cron is running from $DEMO/root.
  connect: runuser -u postgres -- psql -h $sock -p $port -d postgres
  stop:    runuser -u postgres -- $DEMO/root/opt/pgoci/instances/pg15/current/bin/pg_ctl stop -D $DEMO/root/var/lib/pgoci/pg15/data
MSG
