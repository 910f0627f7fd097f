#!/usr/bin/env bash
# shellcheck disable=SC2034 # the time arrays are filled through timeit's nameref
# Benchmark: `pgoci bundle export` of a lock to a .tar (empty cache, so it
# pulls) against `skopeo copy docker://… oci-archive:` of the same images;
# and `pgoci bundle verify` of a bundle directory against `openssl dgst
# -sha256` over the same blob files (SHA-NI where the CPU has it). Runs
# alternate the order; prints medians and ratios at both sizes.
# Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export_pgoci() { "$pgoci" -q --insecure-registry "$registry" --cache-dir "$work/c" bundle export --lock "$size_lock" -o "$work/b.tar"; }
export_skopeo() {
  local n=0 ref
  for ref in $refs; do
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$ref" "oci-archive:$work/s$n.tar"
    n=$((n + 1))
  done
}
verify_pgoci() { "$pgoci" -q bundle verify "$work/bd"; }
verify_openssl() { openssl dgst -sha256 "$work"/bd/blobs/sha256/* >/dev/null; }
for size in $SIZES; do
  use_size "$size"
  refs=$(lock_refs "$size_lock")
  pe=() se=() pv=() ov=()
  for i in $(seq 1 "$size_runs"); do
    rm -rf "$work/c" "$work/b.tar" "$work"/s[0-9]*.tar
    if [ $((i % 2)) = 1 ]; then timeit pe export_pgoci; timeit se export_skopeo
    else timeit se export_skopeo; timeit pe export_pgoci; fi
  done
  rm -rf "$work/bd"; export_dir "$size_lock" "$work/bd"
  for i in $(seq 1 "$size_runs"); do
    if [ $((i % 2)) = 1 ]; then timeit pv verify_pgoci; timeit ov verify_openssl
    else timeit ov verify_openssl; timeit pv verify_pgoci; fi
  done
  a=$(med pe) b=$(med se) c=$(med pv) d=$(med ov)
  printf 'bundle export, %s: %s MiB .tar, median of %s paired runs\n' "$size" "$(mib "$work/b.tar")" "$size_runs"
  row "pgoci bundle export -o X.tar" "$a"
  row "skopeo copy ... oci-archive:" "$b" "$a"
  printf 'bundle verify, %s: %s MiB directory, median of %s paired runs\n' "$size" "$(mib "$work/bd")" "$size_runs"
  row "pgoci bundle verify" "$c"
  row "openssl dgst -sha256 (blobs)" "$d" "$c"
  result "bundle export vs skopeo oci-archive" "$size" "$a" s "skopeo" "$b" -
  result "bundle verify vs openssl sha256" "$size" "$c" s "openssl" "$d" -
  rm -rf "$work/bd" "$work"/xc-*
done
