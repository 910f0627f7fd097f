#!/usr/bin/env bash
# The Ansible role over real SSH, as a user runs it, on a fleet of three
# Debian releases (tests/bed/fleet.sh: bullseye, bookworm and trixie minbase
# hosts with sshd, each in a network namespace of its own, reached from a
# controller namespace over veth pairs; key-only SSH as `deploy` with sudo).
# Ansible is Debian's ansible-core; the role and the playbooks are those in
# packaging/ansible. Bundles come from the bed's CloudNativePG-style images
# (bed.sh up-cnpg):
#   A     PostgreSQL 17 (trixie image) + pgvector
#   B     the same with a rebuilt server image (one more layer, another
#         digest: what a distribution's rebuild or a new minor looks like to
#         pgoci), re-resolved through a profile naming it
#   site  PostgreSQL 15 (bookworm image) + pgvector and 17 + pgvector, one
#         bundle with both locks
#
# Scenarios (each asserted; a table of them with their times at the end):
#   check      role --check --diff on fresh hosts: no failure, the plan as a
#              diff, every host's tree unchanged (hashed before and after)
#   install    role: installs on all three (the image's glibc on bullseye
#              and bookworm, the host's on trixie); each server answers psql
#              as the service user through the instance socket
#              (CREATE EXTENSION vector)
#   rerun      role again: changed=0 on every host
#   served     `pgoci serve` of the site bundle (15 and 17) on the controller's
#              side; the role with a profile naming it instead of a copied
#              bundle: --check --diff; the site's own key given to the role
#              refused on every host (the bed's images are not signed by
#              it: exit 5, nothing installed); install of 15 + vector (each host's
#              cache holds the 15 lock's blobs, none of 17's), psql, changed=0
#   roll-check rolling-upgrade.yml to B with --check --diff: each host's plan
#              (generation 1-A -> 2-B), nothing changed
#   roll-fail  rolling-upgrade.yml to B, bookworm made to fail (a
#              shared_preload_libraries the server refuses: pgoci undoes its
#              own switch): bullseye on B, bookworm on A and running, trixie
#              untouched, the playbook failed
#   roll-gate  the same, bookworm's health probe (pgoci_health_sql) failing
#              after pgoci succeeded: `pgoci rollback` puts it back on A
#   roll-ok    rolling-upgrade.yml to B: every host on B and answering; a
#              second run changed=0
#   major-*    an instance `old` (15 + vector, data) on every host, then
#              major-upgrade.yml to 17: a check refused on one host stops it
#              before any host changed; --check --diff shows the plan; the
#              second host failing its health gate is rolled back to 15 on
#              its old data; then all upgraded (data and extension intact)
#              and finalized
#
#   PGOCI_BIN=/path/to/static/pgoci tests/fleet.sh
# Env: FLEET_STATE (default /tmp/pgoci-fleet), FLEET_KEEP=1 keeps the host
# copies and the logs. Needs root. Exit 0 when every scenario passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BED=$ROOT/tests/bed
STATE=${FLEET_STATE:-/tmp/pgoci-fleet}
CACHE=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}

log() { printf '[fleet-test %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[fleet-test] FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, chroot)"
: "${PGOCI_BIN:?set PGOCI_BIN to the static pgoci binary}"
[ -x "$PGOCI_BIN" ] || die "PGOCI_BIN=$PGOCI_BIN is not executable"
case "$(ldd "$PGOCI_BIN" 2>&1 || true)" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) die "PGOCI_BIN=$PGOCI_BIN is dynamically linked: the hosts do not have the build machine's libraries" ;;
esac

if ! command -v ansible-playbook >/dev/null 2>&1; then
  log "apt-get install ansible-core"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ansible-core >&2 || {
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ansible-core >&2
  }
fi

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
FLEET=$STATE/fleet
LOGS=$STATE/logs
HOSTS=(bullseye bookworm trixie)
T_ALL=$SECONDS

cleanup() {
  local rc=$?
  set +e
  "$BED/fleet.sh" down "$FLEET" >/dev/null 2>&1 || log "fleet.sh down failed"
  "$BED/bed.sh" down "$STATE/bed" >/dev/null 2>&1
  if [ "$rc" -ne 0 ]; then
    log "exit $rc; logs in $LOGS"
  elif [ "${FLEET_KEEP:-0}" != 1 ]; then
    rm -rf "$STATE/work" "$STATE/bundles"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A fleet left by a killed run of this script: take it down first.
"$BED/fleet.sh" down "$FLEET" >/dev/null 2>&1 || true
rm -rf "$LOGS" "$STATE/work" "$STATE/results"
mkdir -p "$LOGS" "$STATE/work" "$STATE/bundles" "$STATE/results"

# --- scenarios and their times -----------------------------------------
SCEN=""
T_SCEN=0
scenario() { # NAME: the previous one passed, this one starts
  end_scenario
  SCEN=$1
  T_SCEN=$SECONDS
  log "== $SCEN"
}
end_scenario() {
  [ -n "$SCEN" ] || return 0
  printf '%s %s\n' "$SCEN" "$((SECONDS - T_SCEN))" >>"$STATE/results/passed"
  SCEN=""
}
fail() { die "${SCEN:-setup}: $*"; }

# --- the bed: registry, bundles, fleet ----------------------------------
scenario setup
"$BED/bed.sh" prepare-cnpg >"$LOGS/bed-prepare.log" 2>&1 ||
  { tail -n 30 "$LOGS/bed-prepare.log" >&2; fail "bed.sh prepare-cnpg"; }
"$BED/fleet.sh" prepare >"$LOGS/fleet-prepare.log" 2>&1 ||
  { tail -n 30 "$LOGS/fleet-prepare.log" >&2; fail "fleet.sh prepare"; }
REG=$("$BED/bed.sh" up-cnpg "$STATE/bed" 2>"$LOGS/bed-up.log" | sed -n 's/^REGISTRY=//p' | tail -n1)
[ -n "$REG" ] || { cat "$LOGS/bed-up.log" >&2; fail "bed.sh up-cnpg gave no registry"; }

# Snapshot the binary: a concurrent build may replace PGOCI_BIN.
install -m 0755 "$PGOCI_BIN" "$STATE/work/pgoci"
PG=$STATE/work/pgoci
P=("$PG" --insecure-registry "$REG" --cache-dir "$STATE/work/cache" -q)

# Bundle B's server image: the trixie 17 image with one more layer.
rm -rf "$STATE/work/r2"
cp -a --reflink=auto "$CACHE/layouts/cnpg-pg17-trixie" "$STATE/work/r2"
mkdir -p "$STATE/work/r2-layer/usr/share/postgresql/17"
echo "pgoci fleet test: rebuilt image" >"$STATE/work/r2-layer/usr/share/postgresql/17/pgoci-fleet-rebuild"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$STATE/work/r2-layer" \
  -cf "$STATE/work/r2-layer.tar" .
umoci raw add-layer --image "$STATE/work/r2:latest" --history.created_by "pgoci fleet test rebuild" \
  "$STATE/work/r2-layer.tar"
umoci config --image "$STATE/work/r2:latest" --config.label io.pgoci.testbed.rebuild=fleet
skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  "oci:$STATE/work/r2:latest" "docker://$REG/cnpg/postgresql:17-minimal-trixie-r2"
sed 's|/cnpg/postgresql:17-minimal-trixie"|/cnpg/postgresql:17-minimal-trixie-r2"|' \
  "$STATE/bed/cnpg-profile.yaml" >"$STATE/work/profile-r2.yaml"
grep -q 'trixie-r2"' "$STATE/work/profile-r2.yaml" || fail "no 17 image in the bed's cnpg profile to replace"

B=$STATE/bundles
"${P[@]}" --profile "$STATE/bed/cnpg-profile.yaml" bundle export --major 17 --ext vector -o "$B/pg17.tar"
"${P[@]}" --profile "$STATE/work/profile-r2.yaml" bundle export --major 17 --ext vector -o "$B/pg17-r2.tar"
"${P[@]}" --profile "$STATE/bed/cnpg-profile.yaml" resolve --major 15 --ext vector -o "$STATE/work/pg15.lock"
"${P[@]}" --profile "$STATE/bed/cnpg-profile.yaml" resolve --major 17 --ext vector -o "$STATE/work/pg17.lock"
"${P[@]}" bundle export --lock "$STATE/work/pg15.lock" --lock "$STATE/work/pg17.lock" -o "$B/site.tar"
lock12() { # BUNDLE: the first 12 hex digits of its lock's digest
  "$PG" --json bundle inspect "$1" | python3 -c '
import json, sys
print(json.load(sys.stdin)["lock_digest"].split(":")[1][:12])'
}
LOCK_A=$(lock12 "$B/pg17.tar")
LOCK_B=$(lock12 "$B/pg17-r2.tar")
if [ -z "$LOCK_A" ] || [ -z "$LOCK_B" ] || [ "$LOCK_A" = "$LOCK_B" ]; then
  fail "bundle A and B should have two different locks (got '$LOCK_A' and '$LOCK_B')"
fi
log "bundles: A lock $LOCK_A, B lock $LOCK_B (rebuilt image), site (15 and 17): $(du -h "$B/site.tar" | cut -f1)"

"$BED/fleet.sh" up "$FLEET" "${HOSTS[@]}" 2>"$LOGS/fleet-up.log" ||
  { cat "$LOGS/fleet-up.log" >&2; fail "fleet.sh up"; }

# shellcheck source=tests/bed/fleet-ansible.sh
. "$BED/fleet-ansible.sh"
fleet_ansible_config "$STATE" "$FLEET" "$ROOT"
cat >"$STATE/vars.yml" <<EOF
pgoci_play_hosts: fleet
pgoci_binary_src: $PG
EOF

RUN=0
LAST=""
RC=0
# play NAME EXPECT(ok|fail) PLAYBOOK ARGS...: ansible-playbook in the
# controller namespace, log in $LOGS/NN-NAME.log.
play() {
  local name=$1 expect=$2 book=$3; shift 3
  RUN=$((RUN + 1))
  LAST=$LOGS/$(printf '%02d' "$RUN")-$name.log
  RC=0
  (cd "$STATE" && "$BED/fleet.sh" ctl "$FLEET" -- ansible-playbook "$book" -e "@$STATE/vars.yml" "$@") \
    >"$LAST" 2>&1 || RC=$?
  if [ "$expect" = ok ] && [ "$RC" -ne 0 ]; then
    tail -n 60 "$LAST" >&2
    fail "ansible-playbook $(basename "$book") exited $RC (log: $LAST)"
  fi
  if [ "$expect" = fail ] && [ "$RC" -eq 0 ]; then
    tail -n 60 "$LAST" >&2
    fail "ansible-playbook $(basename "$book") succeeded, want a failure (log: $LAST)"
  fi
}
# recap HOST FIELD: from the last run's PLAY RECAP ("" when HOST is absent)
recap() {
  awk -v h="$1" -v f="$2" '
    /^PLAY RECAP/ { r = 1; next }
    r && $1 == h { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }
  ' "$LAST"
}
assert_recap() { # HOST FIELD OP VALUE
  local v
  v=$(recap "$1" "$2")
  [ -n "$v" ] || { tail -n 40 "$LAST" >&2; fail "no $2 for $1 in the PLAY RECAP ($LAST)"; }
  test "$v" "$3" "$4" || { tail -n 40 "$LAST" >&2; fail "$1: $2=$v, want $3 $4 ($LAST)"; }
}
assert_absent() { # HOST: not in the last PLAY RECAP (never reached)
  [ -z "$(recap "$1" ok)" ] || fail "$1 was reached by the last run, want it untouched ($LAST)"
}
assert_log() { # TEXT: the last run's output contains TEXT
  grep -qF -- "$1" "$LAST" || { tail -n 40 "$LAST" >&2; fail "the output does not say: $1 ($LAST)"; }
}

# On a host, as root: pgoci status, psql (the helper below on stdin).
status_json() { # HOST
  "$BED/fleet.sh" ssh "$FLEET" "$1" sudo pgoci --json status
}
# inst HOST INSTANCE EXPR: EXPR (python, i = the instance's status entry)
inst() {
  status_json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
i = next((x for x in d["instances"] if x["name"] == sys.argv[1]), None)
print(eval(sys.argv[2]))' "$2" "$3"
}
assert_inst() { # HOST INSTANCE EXPR WANT
  local v
  v=$(inst "$1" "$2" "$3") || fail "$1: pgoci status failed"
  [ "$v" = "$4" ] || fail "$1: instance $2: $3 is '$v', want '$4'"
}
# The current generation's psql as the service user through the socket
# pgoci.conf names (LD_LIBRARY_PATH to lib/pgoci-deps where there is one).
PSQL_SH=$(cat <<'EOF'
set -eu
cd /
inst=$1 sql=$2
gen=$(readlink -f "/opt/pgoci/instances/$inst/current")
data=$(pgoci --json status --instance "$inst" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["instances"][0]["data_dir"])')
psql=
for b in "$gen"/usr/lib/postgresql/*/bin "$gen"/bin; do
  if [ -x "$b/psql" ]; then psql=$b/psql; break; fi
done
[ -n "$psql" ] || { echo "no psql in $gen" >&2; exit 3; }
sock=$(sed -n "s/^[[:space:]]*unix_socket_directories[[:space:]]*=[[:space:]]*'\([^',]*\).*/\1/p" \
  "$data/pgoci.conf" | tail -n1)
port=$(sed -n "s/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p" "$data/pgoci.conf" | tail -n1)
ld=
[ ! -d "$gen/lib/pgoci-deps" ] || ld=LD_LIBRARY_PATH=$gen/lib/pgoci-deps
exec runuser -u "$(stat -c %U "$data")" -- env $ld "$psql" -X -At -v ON_ERROR_STOP=1 \
  -h "$sock" -p "$port" -d postgres -c "$sql"
EOF
)
psql_on() { # HOST INSTANCE SQL
  printf '%s\n' "$PSQL_SH" | "$BED/fleet.sh" ssh "$FLEET" "$1" sudo sh -s -- "$2" "$3"
}
# What sshd and Ansible leave for any login (not the role): login records
# (a pty session: Ansible's default -tt) and Ansible's remote temp dir.
LOGIN_TRACES=(/var/log/wtmp /var/log/wtmp.db /var/log/btmp /var/log/lastlog /home/deploy/.ansible /root/.ansible)
tree_of() { # HOST OUT [PATH...]
  local h=$1 out=$2; shift 2
  "$BED/fleet.sh" tree "$FLEET" "$h" "${LOGIN_TRACES[@]}" "$@" >"$out"
}
same_tree() { # HOST BEFORE AFTER
  if ! diff -q "$2" "$3" >/dev/null; then
    diff "$2" "$3" | head -n 30 >&2
    fail "$1: the host's tree changed"
  fi
}
# A host's tree without what running servers write (their data directories
# and logs): "untouched" for a host whose servers run.
SERVER_FILES=()
server_files() {
  SERVER_FILES=()
  local h d
  for h in "${HOSTS[@]}"; do
    for d in "$FLEET/hosts/$h/root"/var/lib/pgoci/*/data*; do
      [ -e "$d" ] && SERVER_FILES+=("${d#"$FLEET/hosts/$h/root"}")
    done
  done
  SERVER_FILES+=(/var/log/pgoci)
}

# --- check mode on fresh hosts -------------------------------------------
scenario check
for h in "${HOSTS[@]}"; do tree_of "$h" "$STATE/work/tree-$h.0"; done
play check ok "$STATE/install.yml" -e "pgoci_bundle_src=$B/pg17.tar" -e pgoci_instance=main --check --diff
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  tree_of "$h" "$STATE/work/tree-$h.1"
  same_tree "$h" "$STATE/work/tree-$h.0" "$STATE/work/tree-$h.1"
done
# the plan, as a diff, for each host
[ "$(grep -c '^+++ after: .*: instance main (pgoci install --check)' "$LAST")" = 3 ] ||
  fail "no plan diff for every host ($LAST)"
assert_log "+generation 1-$LOCK_A"
assert_log "+  switch current to 1-$LOCK_A"
assert_log "-(no instance)"

# --- install, answer, re-run ---------------------------------------------
scenario install
play install ok "$STATE/install.yml" -e "pgoci_bundle_src=$B/pg17.tar" -e pgoci_instance=main
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  assert_inst "$h" main 'i["generation"]' "1-$LOCK_A"
  assert_inst "$h" main 'i["running"]' True
  out=$(psql_on "$h" main "CREATE EXTENSION IF NOT EXISTS vector; SELECT current_setting('server_version_num')::int / 10000, extversion FROM pg_extension WHERE extname = 'vector'") ||
    fail "$h: psql: $out"
  [ "$(tail -n1 <<<"$out")" = "17|0.8.0" ] || fail "$h: psql answered '$out', want 17|0.8.0"
done
# which glibc each server runs on: the image's (its loader in the
# generation's lib/pgoci-deps) where the host's is older
for h in "${HOSTS[@]}"; do
  want=image
  [ "$h" = trixie ] && want=host
  loader=$("$BED/fleet.sh" ssh "$FLEET" "$h" sh -c \
    'if test -e /opt/pgoci/instances/main/current/lib/pgoci-deps/ld-linux-x86-64.so.2; then echo image; else echo host; fi')
  [ "$loader" = "$want" ] || fail "$h: the server runs on the $loader's glibc, want the $want's"
done

scenario rerun
play rerun ok "$STATE/install.yml" -e "pgoci_bundle_src=$B/pg17.tar" -e pgoci_instance=main
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed = 0
done

# --- a served bundle instead of copies ------------------------------------
# `pgoci serve` on the controller's side serves the site bundle (15 and 17)
# as it is, at one address every host reaches (10.233.0.1 on the
# controller namespace's loopback, a host route through each veth); the
# role ships only a profile naming it: each host resolves 15 + vector
# there and downloads that lock's blobs, none of 17's.
scenario served
SERVE_ADDR=10.233.0.1:5999
"$BED/fleet.sh" serve "$FLEET" "$PG" "$B/site.tar" "$SERVE_ADDR" 2>"$LOGS/serve-up.log" ||
  { cat "$LOGS/serve-up.log" >&2; fail "fleet.sh serve"; }
sed "s|$REG|$SERVE_ADDR|g" "$STATE/bed/cnpg-profile.yaml" >"$STATE/work/site-profile.yaml"
cat >"$STATE/work/served.yml" <<EOF
pgoci_profile_src: $STATE/work/site-profile.yaml
pgoci_install_major: 15
pgoci_extensions: [vector]
pgoci_insecure_registries: ["$SERVE_ADDR"]
pgoci_instance: site
pgoci_port: 5436
EOF
play served-check ok "$STATE/install.yml" -e "@$STATE/work/served.yml" --check --diff
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
done
assert_log "+instance site: PostgreSQL 15"
# The site's own key, given to the role: the bed's images carry no
# signature by it, so every host refuses (exit 5) before installing.
openssl ecparam -genkey -name prime256v1 -noout 2>/dev/null | openssl ec -pubout -out "$STATE/work/site.pub" 2>/dev/null
play served-unsigned fail "$STATE/install.yml" -e "@$STATE/work/served.yml" -e "pgoci_signature_key_src=$STATE/work/site.pub"
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 1
  assert_inst "$h" site 'i' None
done
assert_log "pgoci install failed (exit 5)"
assert_log "not signed"
play served ok "$STATE/install.yml" -e "@$STATE/work/served.yml"
lock15_bytes=$(awk '$1 == "size:" { s += $2 } END { print s }' "$STATE/work/pg15.lock")
site_bytes=$(stat -c %s "$B/site.tar")
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  assert_inst "$h" site 'i["major"]' 15
  assert_inst "$h" site 'i["running"]' True
  out=$(psql_on "$h" site "CREATE EXTENSION vector; SELECT extversion FROM pg_extension WHERE extname = 'vector'") ||
    fail "$h: psql: $out"
  [ "$(tail -n1 <<<"$out")" = 0.8.0 ] || fail "$h: psql answered '$out', want 0.8.0"
  [ ! -e "$FLEET/hosts/$h/root/var/cache/pgoci/bundles/site.tar" ] || fail "$h: the bundle was copied"
  got=$(find "$FLEET/hosts/$h/root/var/cache/pgoci/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  [ "$got" -eq "$lock15_bytes" ] ||
    fail "$h: downloaded $got bytes of blobs, want exactly the 15 lock's $lock15_bytes"
  log "$h: $got bytes downloaded from the served bundle (the bundle: $site_bytes)"
done
play served-again ok "$STATE/install.yml" -e "@$STATE/work/served.yml"
for h in "${HOSTS[@]}"; do assert_recap "$h" changed = 0; done

# --- rolling upgrades ----------------------------------------------------
ROLL=$ROOT/packaging/ansible/playbooks/rolling-upgrade.yml
server_files
scenario roll-check
for h in "${HOSTS[@]}"; do tree_of "$h" "$STATE/work/tree-$h.c0" "${SERVER_FILES[@]}"; done
play roll-check ok "$ROLL" -e "pgoci_bundle_src=$B/pg17-r2.tar" -e pgoci_instance=main --check --diff
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  assert_inst "$h" main 'i["generation"]' "1-$LOCK_A"
  tree_of "$h" "$STATE/work/tree-$h.c1" "${SERVER_FILES[@]}"
  same_tree "$h" "$STATE/work/tree-$h.c0" "$STATE/work/tree-$h.c1"
done
if [ "$(grep -c '^-generation 1-'"$LOCK_A"'$' "$LAST")" != 3 ] ||
  [ "$(grep -c '^+generation 2-'"$LOCK_B"'$' "$LAST")" != 3 ]; then
  fail "the rolling upgrade's --diff does not show generation 1-$LOCK_A -> 2-$LOCK_B on every host ($LAST)"
fi

scenario roll-fail
tree_of trixie "$STATE/work/tree-trixie.r0" "${SERVER_FILES[@]}"
cat >"$STATE/work/roll-fail.ini" <<'EOF'
[fleet]
bookworm pgoci_extra_args='["--set", "shared_preload_libraries=pgoci_fleet_missing"]'
EOF
play roll-fail fail "$ROLL" -i "$FLEET/inventory" -i "$STATE/work/roll-fail.ini" \
  -e "pgoci_bundle_src=$B/pg17-r2.tar" -e pgoci_instance=main
assert_recap bullseye failed = 0
assert_recap bullseye changed -gt 0
assert_recap bookworm failed = 1
assert_recap bookworm rescued = 1
assert_absent trixie
assert_log "could not access file"
assert_log "pgoci_fleet_missing"
assert_log "running its old generation 1-$LOCK_A (pgoci undid its own change)"
assert_inst bullseye main 'i["generation"].split("-")[1]' "$LOCK_B"
assert_inst bookworm main 'i["generation"]' "1-$LOCK_A"
assert_inst bookworm main 'i["running"]' True
assert_inst trixie main 'i["generation"]' "1-$LOCK_A"
tree_of trixie "$STATE/work/tree-trixie.r1" "${SERVER_FILES[@]}"
same_tree trixie "$STATE/work/tree-trixie.r0" "$STATE/work/tree-trixie.r1"
psql_on bookworm main 'SELECT 1' >/dev/null || fail "bookworm does not answer after the failed upgrade"

scenario roll-gate
cat >"$STATE/work/roll-gate.ini" <<'EOF'
[fleet]
bookworm pgoci_health_sql="SELECT 'fleet_app.ready'::regclass IS NOT NULL"
EOF
play roll-gate fail "$ROLL" -i "$FLEET/inventory" -i "$STATE/work/roll-gate.ini" \
  -e "pgoci_bundle_src=$B/pg17-r2.tar" -e pgoci_instance=main
assert_recap bullseye failed = 0
assert_recap bullseye changed = 0
assert_recap bookworm failed = 1
assert_absent trixie
assert_log "fleet_app.ready"
assert_log "does not exist"
assert_log "rolled back with pgoci rollback to 1-$LOCK_A"
assert_inst bookworm main 'i["generation"]' "1-$LOCK_A"
assert_inst bookworm main 'i["running"]' True
assert_inst bookworm main 'len(i["generations"]) > 1' True
assert_inst trixie main 'i["generation"]' "1-$LOCK_A"
tree_of trixie "$STATE/work/tree-trixie.r2" "${SERVER_FILES[@]}"
same_tree trixie "$STATE/work/tree-trixie.r0" "$STATE/work/tree-trixie.r2"
psql_on bookworm main 'SELECT 1' >/dev/null || fail "bookworm does not answer after its rollback"

scenario roll-ok
play roll-ok ok "$ROLL" -e "pgoci_bundle_src=$B/pg17-r2.tar" -e pgoci_instance=main
assert_recap bullseye changed = 0
assert_recap bookworm changed -gt 0
assert_recap trixie changed -gt 0
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_inst "$h" main 'i["generation"].split("-")[1]' "$LOCK_B"
  assert_inst "$h" main 'i["running"]' True
  out=$(psql_on "$h" main "SELECT extversion FROM pg_extension WHERE extname = 'vector'") || fail "$h: psql: $out"
  [ "$out" = 0.8.0 ] || fail "$h: vector is '$out' after the rolling upgrade"
done
play roll-again ok "$ROLL" -e "pgoci_bundle_src=$B/pg17-r2.tar" -e pgoci_instance=main
for h in "${HOSTS[@]}"; do assert_recap "$h" changed = 0; done

# --- major upgrade 15 -> 17 ------------------------------------------------
MAJOR=$ROOT/packaging/ansible/playbooks/major-upgrade.yml
MV=(-e "pgoci_bundle_src=$B/site.tar" -e pgoci_instance=old -e pgoci_port=5433)
scenario major-install
play major-install ok "$STATE/install.yml" "${MV[@]}" -e '{"pgoci_extra_args": ["--major", "15"]}'
for h in "${HOSTS[@]}"; do
  assert_recap "$h" changed -gt 0
  out=$(psql_on "$h" old "CREATE EXTENSION vector;
    CREATE TABLE items (id int PRIMARY KEY, emb vector(3));
    INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]');
    CREATE INDEX ON items USING hnsw (emb vector_l2_ops);
    SELECT current_setting('server_version_num')::int / 10000") || fail "$h: psql: $out"
  [ "$(tail -n1 <<<"$out")" = 15 ] || fail "$h: 'old' answered '$out', want 15"
done
old_gen() { inst "$1" old 'i["generation"]'; }
declare -A GEN15
for h in "${HOSTS[@]}"; do GEN15[$h]=$(old_gen "$h"); done

scenario major-refused
cat >"$STATE/work/major-refused.ini" <<'EOF'
[fleet]
bookworm pgoci_major_method=clone
EOF
play major-refused fail "$MAJOR" -i "$FLEET/inventory" -i "$STATE/work/major-refused.ini" "${MV[@]}" -e pgoci_major=17
assert_log "bookworm]: FAILED! => {\"changed\": false, \"msg\": \"pgoci upgrade --major 17 --check failed (exit 6): host: --method clone"
assert_log "no host is upgraded"
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 1
  assert_inst "$h" old 'i["major"]' 15
  assert_inst "$h" old 'i["generation"]' "${GEN15[$h]}"
  assert_inst "$h" old 'i["running"]' True
done
# Every host but the one refused on purpose passed its check: the major
# upgrade runs on all three releases (trixie: 15 and 17 both on the host's
# glibc, each generation's libraries through LD_LIBRARY_PATH under
# pg_upgrade).
MAJOR_HOSTS=()
for h in "${HOSTS[@]}"; do
  if grep -q "^fatal: \[$h\]: FAILED.*pgoci upgrade --major 17 --check failed (exit" "$LAST" && [ "$h" != bookworm ]; then
    grep "^fatal: \[$h\]" "$LAST" >&2
    fail "$h: the major upgrade check failed"
  fi
  MAJOR_HOSTS+=("$h")
done
[ "${#MAJOR_HOSTS[@]}" -eq 3 ] || fail "not every host can take the major upgrade: ${MAJOR_HOSTS[*]}"
LIMIT=$(IFS=,; echo "${MAJOR_HOSTS[*]}")
FIRST=${MAJOR_HOSTS[0]} SECOND=${MAJOR_HOSTS[1]}

scenario major-check-diff
play major-check ok "$MAJOR" --limit "$LIMIT" "${MV[@]}" -e pgoci_major=17 --check --diff
for h in "${MAJOR_HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_inst "$h" old 'i["major"]' 15
  assert_inst "$h" old 'i["generation"]' "${GEN15[$h]}"
done
[ "$(grep -c '^+++ after: .*: instance old (pgoci upgrade --major 17 --check)' "$LAST")" -ge "${#MAJOR_HOSTS[@]}" ] ||
  fail "no major upgrade plan diff for every host ($LAST)"
assert_log "+instance old: PostgreSQL 17"
assert_log "+  pg_upgrade --check passed against the running server"

scenario major-gate
cat >"$STATE/work/major-gate.ini" <<EOF
[fleet]
$SECOND pgoci_health_sql="SELECT 'fleet_app.ready'::regclass IS NOT NULL"
EOF
play major-gate fail "$MAJOR" -i "$FLEET/inventory" -i "$STATE/work/major-gate.ini" --limit "$LIMIT" \
  "${MV[@]}" -e pgoci_major=17
assert_recap "$FIRST" failed = 0
assert_recap "$SECOND" failed = 1
assert_log "rolled back with pgoci rollback to ${GEN15[$SECOND]}"
assert_inst "$FIRST" old 'i["major"]' 17
assert_inst "$SECOND" old 'i["major"]' 15
assert_inst "$SECOND" old 'i["generation"]' "${GEN15[$SECOND]}"
assert_inst "$SECOND" old 'i["running"]' True
out=$(psql_on "$SECOND" old "SELECT current_setting('server_version_num')::int / 10000, count(*) FROM items") ||
  fail "$SECOND: psql after the rollback: $out"
[ "$out" = "15|2" ] || fail "$SECOND: after the rollback 'old' answers '$out', want 15|2"
# The third host passed play 1's check and was never upgraded.
for h in "${MAJOR_HOSTS[@]:2}"; do
  assert_recap "$h" changed = 0
  assert_inst "$h" old 'i["major"]' 15
  assert_inst "$h" old 'i["generation"]' "${GEN15[$h]}"
done

scenario major-ok
play major-ok ok "$MAJOR" --limit "$LIMIT" "${MV[@]}" -e pgoci_major=17 -e pgoci_major_finalize=true
for h in "${MAJOR_HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_inst "$h" old 'i["major"]' 17
  assert_inst "$h" old 'i["running"]' True
  assert_inst "$h" old 'i["major_upgrade"]' None
  out=$(psql_on "$h" old "SELECT current_setting('server_version_num')::int / 10000,
      (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
      (SELECT string_agg(emb::text, ' ' ORDER BY id) FROM items),
      (SELECT id FROM items ORDER BY emb <-> '[4,5,6]' LIMIT 1)") || fail "$h: psql: $out"
  [ "$out" = "17|0.8.0|[1,2,3] [4,5,6]|2" ] || fail "$h: after the major upgrade 'old' answers '$out'"
  [ ! -e "$FLEET/hosts/$h/root/var/lib/pgoci/old/data/PG_VERSION" ] ||
    fail "$h: the old data directory is still there after --finalize"
done
end_scenario

T_TOTAL=$((SECONDS - T_ALL))
{
  echo
  echo "| scenario | s |"
  echo "|---|---|"
  while read -r n s; do echo "| $n | $s |"; done <"$STATE/results/passed"
  echo "| total | $T_TOTAL |"
} | tee "$STATE/results/summary.md"
log "OK: ${#HOSTS[@]} hosts, $RUN playbook runs, $T_TOTAL s"
