#!/usr/bin/env bash
# Benchmark: the three-host fleet (tests/bed/fleet.sh: bullseye, bookworm,
# trixie over SSH) installing PostgreSQL 15 + pgvector with the Ansible
# role, from a bundle copied to every host (the role's default) against the
# same bundle served once by `pgoci serve` (the role given a profile naming
# it). The bundle holds two locks (15 and 17 with pgvector), as a site's
# would. Each mode runs on fresh hosts; prints the playbook's wall time,
# the bytes each host received (the bundle's copy, or the blobs its
# pull stored), and the ratios. RUNS pairs (default 1), alternating the
# order. Needs root; not a test: nothing asserts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BED=$ROOT/tests/bed
RUNS=${RUNS:-1}
STATE=${BENCH_STATE:-/tmp/pgoci-bench-fleet}
rm -rf "$STATE" && mkdir -p "$STATE/bundles" "$STATE/logs"
FLEET=$STATE/fleet
cleanup() {
  "$BED/fleet.sh" down "$FLEET" >/dev/null 2>&1 || true
  "$BED/bed.sh" down "$STATE/bed" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$BED/bed.sh" prepare-cnpg >"$STATE/logs/bed-prepare.log" 2>&1
"$BED/fleet.sh" prepare >"$STATE/logs/fleet-prepare.log" 2>&1
REG=$("$BED/bed.sh" up-cnpg "$STATE/bed" 2>/dev/null | sed -n 's/^REGISTRY=//p' | tail -n1)
cargo build --release --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PG=$STATE/pgoci
install -m 0755 "$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release/pgoci" "$PG"
P=("$PG" -q --insecure-registry "$REG" --cache-dir "$STATE/cache" --profile "$STATE/bed/cnpg-profile.yaml")
"${P[@]}" resolve --major 15 --ext vector -o "$STATE/pg15.lock"
"${P[@]}" resolve --major 17 --ext vector -o "$STATE/pg17.lock"
"${P[@]}" bundle export --lock "$STATE/pg15.lock" --lock "$STATE/pg17.lock" -o "$STATE/bundles/site.tar"
bundle_bytes=$(stat -c %s "$STATE/bundles/site.tar")

# shellcheck source=tests/bed/fleet-ansible.sh
. "$BED/fleet-ansible.sh"
fleet_ansible_config "$STATE" "$FLEET" "$ROOT"
SERVE_ADDR=10.233.0.1:5999
sed "s|$REG|$SERVE_ADDR|g" "$STATE/bed/cnpg-profile.yaml" >"$STATE/site-profile.yaml"
cat >"$STATE/copied.yml" <<EOF
pgoci_binary_src: $PG
pgoci_bundle_src: $STATE/bundles/site.tar
pgoci_extra_args: ["--major", "15"]
pgoci_instance: a
EOF
cat >"$STATE/served.yml" <<EOF
pgoci_binary_src: $PG
pgoci_profile_src: $STATE/site-profile.yaml
pgoci_install_major: 15
pgoci_extensions: [vector]
pgoci_insecure_registries: ["$SERVE_ADDR"]
pgoci_instance: a
EOF

# one MODE: fresh hosts, one timed playbook run; prints "SECONDS BYTES"
# (BYTES: what the first host received).
one() {
  local mode=$1 t0 t1 bytes
  "$BED/fleet.sh" up "$FLEET" bullseye bookworm trixie 2>>"$STATE/logs/fleet-up.log"
  if [ "$mode" = served ]; then
    "$BED/fleet.sh" serve "$FLEET" "$PG" "$STATE/bundles/site.tar" "$SERVE_ADDR" 2>>"$STATE/logs/serve.log"
  fi
  sync
  t0=$(date +%s.%N)
  (cd "$STATE" && "$BED/fleet.sh" ctl "$FLEET" -- ansible-playbook install.yml -e "@$STATE/$mode.yml") \
    >"$STATE/logs/$mode.log" 2>&1 || { tail -n 30 "$STATE/logs/$mode.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  local r=$FLEET/hosts/bullseye/root
  if [ "$mode" = served ]; then
    bytes=$(find "$r/var/cache/pgoci/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  else
    bytes=$(stat -c %s "$r/var/cache/pgoci/bundles/site.tar")
  fi
  "$BED/fleet.sh" down "$FLEET" >/dev/null 2>&1
  echo "$(echo "$t1 - $t0" | bc) $bytes"
}
copied=() served=()
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then
    copied+=("$(one copied)"); served+=("$(one served)")
  else
    served+=("$(one served)"); copied+=("$(one copied)")
  fi
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
tc=$(printf '%s\n' "${copied[@]}" | cut -d' ' -f1 | median)
ts=$(printf '%s\n' "${served[@]}" | cut -d' ' -f1 | median)
bc_=$(printf '%s\n' "${copied[0]}" | cut -d' ' -f2)
bs=$(printf '%s\n' "${served[0]}" | cut -d' ' -f2)
printf 'fleet install of 15 + vector on 3 hosts (bundle of 15 and 17: %s MiB), median of %s\n' \
  "$((bundle_bytes >> 20))" "$RUNS"
printf '  copied bundle   %7.1f s   %6s MiB per host\n' "$tc" "$((bc_ >> 20))"
printf '  served bundle   %7.1f s   %6s MiB per host   time ratio served/copied %.2f, bytes %.2f\n' \
  "$ts" "$((bs >> 20))" "$(echo "$ts / $tc" | bc -l)" "$(echo "$bs / $bc_" | bc -l)"
