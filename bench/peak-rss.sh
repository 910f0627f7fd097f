#!/usr/bin/env bash
# Benchmark: peak resident set size (`/usr/bin/time -f %M`) of pgoci pull
# (empty cache), bundle export (empty cache, to a directory), bundle verify
# and install (from the bundle, fresh --root, --service none, --no-start,
# initdb included: its children are not counted) at both sizes; one run
# each (peak RSS hardly varies). Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
port=$(free_port)
# rss NAME CMD...: runs CMD under /usr/bin/time, prints and records MiB.
rss() {
  local name=$1; shift
  /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null
  local mib_peak
  mib_peak=$(echo "scale=1; $(tail -1 "$work/rss") / 1024" | bc)
  printf '  %-34s %8.1f MiB\n' "$name" "$mib_peak"
  result "peak RSS: $name" "$size" "$mib_peak" MiB - - "< 64"
}
g=(--insecure-registry "$registry")
for size in $SIZES; do
  use_size "$size"
  rm -rf "$work/c" "$work/c2" "$work/bd" "$work/r"
  printf 'peak RSS, %s, one run each\n' "$size"
  rss "pgoci pull" "$pgoci" -q "${g[@]}" --cache-dir "$work/c" pull --lock "$size_lock"
  rss "pgoci bundle export" "$pgoci" -q "${g[@]}" --cache-dir "$work/c2" bundle export --lock "$size_lock" -o "$work/bd"
  rss "pgoci bundle verify" "$pgoci" -q bundle verify "$work/bd"
  rss "pgoci install" "$pgoci" -q --root "$work/r" install --yes --bundle "$work/bd" --no-start \
    --port "$port" --instance x --service none
  rm -rf "$work/c" "$work/c2" "$work/bd" "$work/r"
done
