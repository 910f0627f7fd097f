#!/usr/bin/env bash
# shellcheck disable=SC2034 # the time arrays are filled through timeit's nameref
# Benchmark: `pgoci serve` of a bundle (read in place) against Debian's
# docker-registry (the bed's, filesystem storage) serving the same blobs,
# fetched with curl over loopback:
#   one client   the image's layers one after the other (the generated big
#                image: 4 x BENCH_LAYER_MIB MiB, 1 GiB by default)
#   16 clients   16 curls at once, each fetching every layer (16 GiB moved)
# Each byte is checked: every client's download is hashed once per run
# (outside the timed part) against the layer's digest. Runs alternate the
# order, medians of BIG_RUNS; the bundle and the registry's files are in
# the page cache (one warm-up fetch each). Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl >/dev/null
CLIENTS=${SERVE_CLIENTS:-16}

use_size big
bundle=$work/big-bundle
export_dir "$size_lock" "$bundle"
port=$(free_port)
"$pgoci" -q serve "$bundle" --listen "127.0.0.1:$port" &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; rm -rf "$work"; tests/bed/bed.sh down "$state" >/dev/null 2>&1' EXIT
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break; sleep 0.1; done

repo=$(lock_refs "$size_lock" | head -n1 | cut -d@ -f1)
repo=${repo#*/} # without the registry
mapfile -t layers < <(lock_layers "$size_lock" | awk '{print $2}')
bytes=$(du -cb "$bundle"/blobs/sha256/* | tail -n1 | cut -f1)

# fetch BASE OUTDIR: every layer, one after the other, into OUTDIR.
fetch() {
  local base=$1 out=$2 d
  mkdir -p "$out"
  for d in "${layers[@]}"; do
    curl -fsS -o "$out/$d" "$base/v2/$repo/blobs/sha256:$d"
  done
}
many() {
  local base=$1 n pids=()
  for n in $(seq "$CLIENTS"); do fetch "$base" "$work/m$n" & pids+=($!); done
  for n in "${pids[@]}"; do wait "$n"; done
}
# check DIR...: every fetched layer hashes to its digest.
check() {
  local dir d
  for dir in "$@"; do
    for d in "${layers[@]}"; do
      [ "$(sha256sum <"$dir/$d" | cut -d' ' -f1)" = "$d" ] || { echo "bad bytes: $dir/$d" >&2; exit 1; }
    done
  done
}
serve=http://127.0.0.1:$port
reg=http://$registry
fetch "$serve" "$work/warm"; fetch "$reg" "$work/warm"; rm -rf "$work/warm"
one_s=() one_r=() many_s=() many_r=()
for i in $(seq 1 "$BIG_RUNS"); do
  if [ $((i % 2)) = 1 ]; then
    timeit one_s fetch "$serve" "$work/o"; check "$work/o"; rm -rf "$work/o"
    timeit one_r fetch "$reg" "$work/o"; check "$work/o"; rm -rf "$work/o"
    timeit many_s many "$serve"; check "$work"/m*; rm -rf "$work"/m*
    timeit many_r many "$reg"; check "$work"/m*; rm -rf "$work"/m*
  else
    timeit many_r many "$reg"; check "$work"/m*; rm -rf "$work"/m*
    timeit many_s many "$serve"; check "$work"/m*; rm -rf "$work"/m*
    timeit one_r fetch "$reg" "$work/o"; check "$work/o"; rm -rf "$work/o"
    timeit one_s fetch "$serve" "$work/o"; check "$work/o"; rm -rf "$work/o"
  fi
done
layer_mib=$(( bytes >> 20 ))
printf 'serve: %s layers, %s MiB in the bundle; median of %s runs; curl over loopback\n' \
  "${#layers[@]}" "$layer_mib" "$BIG_RUNS"
a=$(med one_s) b=$(med one_r) c=$(med many_s) e=$(med many_r)
row "pgoci serve, one client" "$a"
row "docker-registry, one client" "$b" "$a"
row "pgoci serve, $CLIENTS clients" "$c"
row "docker-registry, $CLIENTS clients" "$e" "$c"
printf '  pgoci serve RSS after the runs: %s MiB\n' "$(( $(awk '/VmRSS/ {print $2}' "/proc/$serve_pid/status") >> 10 ))"
result "serve, one client" big "$a" s docker-registry "$b" -
result "serve, $CLIENTS clients" big "$c" s docker-registry "$e" -
