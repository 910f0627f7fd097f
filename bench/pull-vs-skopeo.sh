#!/usr/bin/env bash
# shellcheck disable=SC2034 # the time arrays are filled through timeit's nameref
# Benchmark: `pgoci pull` (empty cache) against `skopeo copy` of the same
# images (each into an empty OCI layout) from the loopback registry, once
# one image after the other and once all images in parallel (the stronger
# peer); runs alternate the order; prints medians and both ratios, for the
# bed's PG 17 + hstore and the generated 1 GiB image (bench/lib.sh sizes).
# Uses the release binary (built if missing). Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pull_pgoci() { "$pgoci" -q --insecure-registry "$registry" --cache-dir "$work/c" pull --lock "$size_lock"; }
skopeo_one() { skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:a"; }
skopeo_seq() {
  local n=0 ref
  for ref in $refs; do skopeo_one "$ref" "$work/s$n"; n=$((n + 1)); done
}
skopeo_par() {
  local n=0 ref pids=()
  for ref in $refs; do skopeo_one "$ref" "$work/p$n" & pids+=($!); n=$((n + 1)); done
  for n in "${pids[@]}"; do wait "$n"; done
}
for size in $SIZES; do
  use_size "$size"
  refs=$(lock_refs "$size_lock")
  pg=() sq=() par=()
  for i in $(seq 1 "$size_runs"); do
    rm -rf "$work"/c "$work"/s[0-9]* "$work"/p[0-9]*
    if [ $((i % 2)) = 1 ]; then
      timeit pg pull_pgoci; timeit sq skopeo_seq; timeit par skopeo_par
    else
      timeit par skopeo_par; timeit sq skopeo_seq; timeit pg pull_pgoci
    fi
  done
  p=$(med pg) s=$(med sq) q=$(med par)
  printf 'pull, %s: %s MiB in %s images, median of %s paired runs\n' \
    "$size" "$(mib "$work/c/blobs")" "$(echo "$refs" | wc -w)" "$size_runs"
  row "pgoci pull" "$p"
  row "skopeo copy, one after the other" "$s" "$p"
  row "skopeo copy, in parallel" "$q" "$p" "<= 0.60"
  [ "$(echo "$refs" | wc -w)" -gt 1 ] || echo "  (one image: \"in parallel\" is a single skopeo copy)"
  result "pull vs skopeo sequential" "$size" "$p" s "skopeo seq" "$s" -
  result "pull vs skopeo parallel" "$size" "$p" s "skopeo par" "$q" "<= 0.60"
done
