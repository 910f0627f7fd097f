#!/usr/bin/env bash
# Downtime of a major upgrade, per method, next to pg_upgrade alone on the
# same data: PostgreSQL 15 (the bed's CloudNativePG-style bookworm image,
# on this host's glibc) with a pgbench database (scale $SCALE, ~1 GiB at
# 68) to 17 (the trixie image, on its own glibc), with pgoci on a
# loop-mounted XFS (reflink=1, so clone is possible) in a private mount
# namespace.
#
#   pgoci   `pgoci upgrade --major 17 --method M`: its downtime_ms (old
#           server stopped → new one accepting connections: pg_upgrade's own
#           --check excluded, it runs before the stop) and analyze_ms
#           (vacuumdb --analyze-in-stages, after the server accepts again)
#   peer    the same data's twin (a reflink copy made while it was stopped):
#           initdb of the new cluster, then timed: pg_upgrade --M, and
#           pg_ctl start -w of the new cluster
# Prints a table; not a test, nothing asserts. Needs root.
#   PGOCI_BIN=target/.../release/pgoci bench/major-upgrade.sh [clone copy link]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PGOCI_BIN:=${CARGO_TARGET_DIR:-$ROOT/target}/$(rustc -vV | sed -n 's/^host: //p')/release/pgoci}"
STATE=${BENCH_STATE:-/tmp/pgoci-bench-major}
SCALE=${SCALE:-68}
methods=("$@")
[ "${#methods[@]}" -gt 0 ] || methods=(clone copy link)

if [ "${BENCH_IN_NS:-0}" != 1 ]; then
  mkdir -p "$STATE"
  command -v mkfs.xfs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y xfsprogs >&2
  trap '"$ROOT/tests/bed/bed.sh" down "$STATE/bed" >/dev/null 2>&1 || true' EXIT
  "$ROOT/tests/bed/bed.sh" up-cnpg "$STATE/bed" >/dev/null
  rm -f "$STATE/xfs.img"
  truncate -s 12G "$STATE/xfs.img"
  mkfs.xfs -q -m reflink=1 "$STATE/xfs.img"
  BENCH_IN_NS=1 PGOCI_BIN=$PGOCI_BIN unshare -m --propagation private "$0" "${methods[@]}"
  rm -f "$STATE/xfs.img"
  exit
fi

# In the private mount namespace from here.
mnt=$STATE/mnt
mkdir -p "$mnt"
mount -o loop "$STATE/xfs.img" "$mnt"
# shellcheck disable=SC1091
. "$STATE/bed/env"
R=$mnt/root
P=(--profile "$STATE/bed/cnpg-profile.yaml" --insecure-registry "$REGISTRY" --root "$R" --cache-dir "$STATE/cache")
ms() { date +%s%3N; }
port=55432
rows=()
for m in "${methods[@]}"; do
  inst=b-$m
  port=$((port + 1))
  "$PGOCI_BIN" "${P[@]}" --json install --yes --service none --instance "$inst" --major 15 --port "$port" >/dev/null
  g=$(readlink -f "$R/opt/pgoci/instances/$inst/current")
  bin15=$g/usr/lib/postgresql/15/bin
  sock=$R/run/pgoci/$inst
  data=$R/var/lib/pgoci/$inst/data
  deps=$g/lib/pgoci-deps
  [ -d "$deps" ] || deps=
  # 15's tools with the libraries pgoci placed for them; 17's are patched
  # to the image's loader and RPATH and need no environment.
  as_pg() { runuser -u postgres -- env ${deps:+LD_LIBRARY_PATH=$deps} "$@"; }
  as_pg17() { runuser -u postgres -- "$@"; }
  as_pg "$bin15/pgbench" -q -i -s "$SCALE" -h "$sock" -p "$port" postgres >/dev/null 2>&1
  size=$(du -sm "$data" | cut -f1)
  # The twin for the peer: a reflink copy of the stopped cluster.
  as_pg "$bin15/pg_ctl" -D "$data" stop -m fast -w >/dev/null
  cp -a --reflink=always "$data" "$data-twin"
  as_pg "$bin15/pg_ctl" -D "$data" -l "$R/var/log/pgoci/$inst/postgresql.log" start -w >/dev/null
  sync
  out=$("$PGOCI_BIN" "${P[@]}" --json upgrade --yes --instance "$inst" --major 17 --method "$m")
  down=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["downtime_ms"])')
  analyze=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["analyze_ms"])')
  bin17=$(ls -d "$R"/opt/pgoci/instances/"$inst"/current/usr/lib/postgresql/17/bin)
  # The instance's new server stops while the peer runs (uninstalled after).
  as_pg17 "$bin17/pg_ctl" -D "$R/var/lib/pgoci/$inst/data-17" stop -m fast -w >/dev/null
  # The peer: pg_upgrade alone on the twin, then start the new cluster.
  new=$data-twin-17
  mkdir -m 0700 "$new"; chown postgres: "$new"
  as_pg17 "$bin17/initdb" -D "$new" --locale=C.UTF-8 --encoding=UTF8 --data-checksums >/dev/null
  cd "$new"
  sync
  t0=$(ms)
  as_pg17 "$bin17/pg_upgrade" -b "$bin15" -B "$bin17" -d "$data-twin" -D "$new" -p 50440 -P 50441 \
    --socketdir "$new" "--$m" -j "$(nproc)" >/dev/null
  t1=$(ms)
  as_pg17 "$bin17/pg_ctl" -D "$new" -o "-p 50442 -c listen_addresses= -c unix_socket_directories=$new" -l "$new/log" start -w >/dev/null
  t2=$(ms)
  as_pg17 "$bin17/pg_ctl" -D "$new" stop -m fast -w >/dev/null
  cd /
  "$PGOCI_BIN" --root "$R" --json uninstall --yes --instance "$inst" >/dev/null
  rows+=("$m	${size} MiB	$down	$((t1 - t0))	$((t2 - t0))	$analyze")
  rm -rf "$data" "$data-twin" "$new" "$R/var/lib/pgoci/$inst"
done
umount "$mnt"
{
  printf 'method\tdata\tpgoci downtime ms\tpg_upgrade alone ms\tpg_upgrade + start ms\tanalyze ms\n'
  printf '%s\n' "${rows[@]}"
} | column -t -s $'\t'
