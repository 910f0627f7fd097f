#!/usr/bin/env bash
# End-to-end test of packaging/ansible/roles/pgoci against the test bed.
#
#   tests/packaging/ansible.sh        (as root; PGOCI_BIN=path to reuse a binary)
#
# Two hosts (local connection), each with its own --root, port and instance:
#   run 1 (bundle pg_trgm)                   -> changed, pgoci changed
#   run 2 (same)                             -> changed=0 for both in the recap
#   run 3 (--check, + pg_stat_statements)    -> pgoci would change, roots untouched
#   run 4 (+ pg_stat_statements)             -> changed; the extension can be created
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { printf '[ansible-test] %s\n' "$*" >&2; }
die() { printf '[ansible-test] FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"

if ! command -v ansible-playbook >/dev/null 2>&1; then
  log "installing ansible-core"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ansible-core >&2
fi

if [ -z "${PGOCI_BIN:-}" ]; then
  (cd "$REPO" && cargo build --quiet)
  tdir=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
  PGOCI_BIN=$tdir/$(rustc -vV | sed -n 's/^host: //p')/debug/pgoci
fi
PGOCI_BIN=$(realpath "$PGOCI_BIN")
[ -x "$PGOCI_BIN" ] || die "PGOCI_BIN=$PGOCI_BIN is not executable"

T=$(mktemp -d /tmp/pgoci-ansible-test.XXXXXX)
chmod 0755 "$T"
# Snapshot the binary: a concurrent `cargo build` may replace it between runs
# (which the role would rightly report as a change).
install -m 0755 "$PGOCI_BIN" "$T/pgoci"
PGOCI_BIN=$T/pgoci
STATE=$T/bed
HOSTS=(h1 h2)
BED_UP=0

cleanup() {
  local rc=$? h
  set +e
  for h in "${HOSTS[@]}"; do
    if [ -d "$T/$h/root/opt/pgoci/instances" ]; then
      "$PGOCI_BIN" --root "$T/$h/root" -q uninstall --instance "ans_$h" --purge --yes >&2 ||
        log "uninstall of ans_$h failed"
    fi
  done
  [ "$BED_UP" -eq 1 ] && "$REPO/tests/bed/bed.sh" down "$STATE" >/dev/null 2>&1
  if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$T"
  else
    log "exit $rc; logs kept in $T"
  fi
  exit "$rc"
}
trap cleanup EXIT

log "test bed"
"$REPO/tests/bed/bed.sh" prepare >/dev/null 2>"$T/bed-prepare.log" ||
  { cat "$T/bed-prepare.log" >&2; die "bed.sh prepare"; }
mkdir -p "$STATE"
BED_UP=1
REG=$("$REPO/tests/bed/bed.sh" up "$STATE" 2>"$T/bed-up.log" | tail -n1) ||
  { cat "$T/bed-up.log" >&2; die "bed.sh up"; }
REG=${REG#REGISTRY=}
[ -n "$REG" ] || die "bed.sh up printed no REGISTRY="

log "bundles from $REG"
export_bundle() { # OUT EXTS
  "$PGOCI_BIN" --profile "$STATE/profile.yaml" --insecure-registry "$REG" \
    --cache-dir "$T/cache" -q bundle export --major 18 --ext "$2" -o "$1" >&2
}
export_bundle "$T/small.tar" pg_trgm
export_bundle "$T/big.tar" pg_trgm,pg_stat_statements

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

{
  echo "[pgoci_hosts]"
  for h in "${HOSTS[@]}"; do
    mkdir -p "$T/$h/root"
    chmod 0755 "$T/$h" "$T/$h/root"
    port=$(free_port)
    while grep -q "pgoci_port=$port " "$T/inventory.tmp" 2>/dev/null; do port=$(free_port); done
    line="$h ansible_connection=local ansible_python_interpreter=/usr/bin/python3"
    line+=" pgoci_port=$port pgoci_instance=ans_$h pgoci_root=$T/$h/root"
    line+=" pgoci_binary_dest=$T/$h/bin/pgoci pgoci_bundle_dest=$T/$h/bundles/bundle.tar"
    echo "$line " | tee -a "$T/inventory.tmp"
  done
} >"$T/inventory"

cat >"$T/playbook.yml" <<PLAY
---
- name: Install PostgreSQL with pgoci
  hosts: pgoci_hosts
  gather_facts: false
  vars:
    pgoci_binary_src: "$PGOCI_BIN"
  roles:
    - pgoci
  post_tasks:
    - name: Save pgoci's JSON result for the test
      ansible.builtin.copy:
        content: "{{ pgoci_result | default({}) | to_json }}"
        dest: "$T/{{ inventory_hostname }}/result.json"
        mode: "0644"
      check_mode: false
      changed_when: false
PLAY

export ANSIBLE_ROLES_PATH=$REPO/packaging/ansible/roles
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_HOST_KEY_CHECKING=0
export ANSIBLE_LOCAL_TEMP=$T/ansible-tmp ANSIBLE_RETRY_FILES_ENABLED=0
# Ansible's own files in the test's directory, not in ~/.ansible.
export ANSIBLE_HOME=$T/ansible-home ANSIBLE_REMOTE_TMP=$T/ansible-remote
export ANSIBLE_SSH_CONTROL_PATH_DIR=$T/ansible-home/cp

RUN=0
play() { # BUNDLE [ansible-playbook args...]
  local bundle=$1; shift
  RUN=$((RUN + 1))
  log "run $RUN: bundle $(basename "$bundle") $*"
  rm -f "$T"/h*/result.json
  if ! ansible-playbook -i "$T/inventory" "$T/playbook.yml" \
       -e "pgoci_bundle_src=$bundle" "$@" >"$T/run$RUN.log" 2>&1; then
    cat "$T/run$RUN.log" >&2
    die "run $RUN: ansible-playbook failed"
  fi
}
# recap_field HOST FIELD -> value from the last run's PLAY RECAP
recap_field() {
  awk -v h="$1" -v f="$2" '
    /^PLAY RECAP/ { r = 1; next }
    r && $1 == h { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }
  ' "$T/run$RUN.log"
}
assert_recap() { # HOST FIELD OP VALUE
  local v
  v=$(recap_field "$1" "$2")
  [ -n "$v" ] || { cat "$T/run$RUN.log" >&2; die "run $RUN: no '$2' for $1 in PLAY RECAP"; }
  [ "$v" "$3" "$4" ] ||
    { cat "$T/run$RUN.log" >&2; die "run $RUN: $1: $2=$v, expected $3 $4"; }
}
result_field() { # HOST EXPR (python, d = pgoci's JSON)
  python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));print(eval(sys.argv[2]))' \
    "$T/$1/result.json" "$2"
}
assert_result() { # HOST EXPR EXPECTED
  local v
  v=$(result_field "$1" "$2") || die "run $RUN: $1: no pgoci result"
  [ "$v" = "$3" ] || { cat "$T/run$RUN.log" >&2; die "run $RUN: $1: $2 is $v, expected $3"; }
}
# Tree listing + hashes of what an install writes (no server runtime files).
snapshot() { # HOST
  local r=$T/$1/root
  (
    cd "$r"
    # etc/ exists only with --service systemd (a unit); none writes nothing there.
    dirs=(opt)
    [ -d etc ] && dirs+=(etc)
    find "${dirs[@]}" -printf '%y %m %u %p -> %l\n' | sort
    find "${dirs[@]}" -type f -print0 | sort -z | xargs -0 -r sha256sum
    sha256sum var/lib/pgoci/*/data/pgoci.conf var/lib/pgoci/*/data/postgresql.conf
  )
}

# run 1: fresh install
play "$T/small.tar"
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  assert_result "$h" 'd["changed"]' True
  assert_result "$h" 'sorted(e["name"] for e in d["extensions"])' "['pg_trgm']"
done

# run 2: idempotent
play "$T/small.tar"
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed = 0
  assert_result "$h" 'd["changed"]' False
done

# run 3: check mode with the bigger bundle
for h in "${HOSTS[@]}"; do snapshot "$h" >"$T/$h/before"; done
play "$T/big.tar" --check --diff
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  assert_result "$h" 'd["changed"]' True
  assert_result "$h" 'd["check"]' True
  snapshot "$h" >"$T/$h/after"
  diff -u "$T/$h/before" "$T/$h/after" >&2 || die "run $RUN: check mode changed $h's root"
  cmp -s "$T/small.tar" "$T/$h/bundles/bundle.tar" || die "run $RUN: check mode replaced $h's bundle"
done

# run 4: upgrade to the bigger bundle
play "$T/big.tar"
for h in "${HOSTS[@]}"; do
  assert_recap "$h" failed = 0
  assert_recap "$h" changed -gt 0
  assert_result "$h" 'd["changed"]' True
  assert_result "$h" 'sorted(e["name"] for e in d["extensions"])' "['pg_stat_statements', 'pg_trgm']"
  port=$(result_field "$h" 'd["instance"]["port"]')
  out=$(runuser -u postgres -- psql -h "$T/$h/root/run/pgoci/ans_$h" -p "$port" -d postgres -tA \
    -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
    -c "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'" 2>&1) ||
    die "$h: psql failed: $out"
  grep -qx pg_stat_statements <<<"$out" || die "$h: pg_stat_statements not created: $out"
done

log "OK (4 runs, ${#HOSTS[@]} hosts)"
