#!/usr/bin/env bash
# shellcheck disable=SC2034 # the time arrays are filled through timeit's nameref
# Benchmark: `pgoci install` from a bundle directory (--root into a scratch
# dir, --service none, --no-start) without initdb, against
#   the floor: `tar -x -I pigz` of the same layer blobs into a fresh dir, and
#   `skopeo copy` (loopback registry) + `umoci unpack` of the same images.
# pgoci has no "no initdb" flag: its time without initdb is the sum of the
# unpack and compose step spans that `pgoci -v` prints; initdb (the
# init_data_dir step) and the whole command's wall time are shown apart.
# Runs alternate the order; medians and ratios at both sizes. Runs as root.
# Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
port=$(free_port)
install_pgoci() {
  "$pgoci" -v --root "$work/r" install --yes --bundle "$work/bd" --no-start --port "$port" \
    --instance x --service none >/dev/null 2>"$work/v.log" || { cat "$work/v.log" >&2; return 1; }
}
floor_tar() {
  local n digest
  while read -r n digest; do
    mkdir -p "$work/f/$n"
    tar -x -I pigz -f "$work/bd/blobs/sha256/$digest" -C "$work/f/$n"
  done <<<"$layers"
}
skopeo_umoci() {
  local n=0 ref
  mkdir -p "$work/s"
  for ref in $refs; do
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/s/layout:a$n"
    umoci unpack --image "$work/s/layout:a$n" "$work/s/b$n" >/dev/null
    n=$((n + 1))
  done
}
run_pgoci() {
  local w=()
  timeit w install_pgoci
  wall+=("${w[0]}")
  pg+=("$(span_secs "$work/v.log" unpack compose)")
  initdb+=("$(span_secs "$work/v.log" init_data_dir)")
}
for size in $SIZES; do
  use_size "$size"
  refs=$(lock_refs "$size_lock")
  layers=$(lock_layers "$size_lock")
  rm -rf "$work/bd"; export_dir "$size_lock" "$work/bd"
  pg=() initdb=() wall=() fl=() su=()
  for i in $(seq 1 "$size_runs"); do
    rm -rf "$work/r" "$work/f" "$work/s"
    if [ $((i % 2)) = 1 ]; then run_pgoci; timeit fl floor_tar; timeit su skopeo_umoci
    else timeit su skopeo_umoci; timeit fl floor_tar; run_pgoci; fi
  done
  rm -rf "$work/r" "$work/f" "$work/s"
  p=$(med pg) f=$(med fl) s=$(med su)
  target="<= 1.10"; [ "$size" = big ] && target="<= 1.00"
  printf 'install without initdb, %s: %s MiB bundle, %s layers, median of %s paired runs\n' \
    "$size" "$(mib "$work/bd")" "$(echo "$layers" | wc -l)" "$size_runs"
  row "pgoci install: unpack + compose" "$p"
  row "tar -x -I pigz (the floor)" "$f" "$p" "$target"
  row "skopeo copy + umoci unpack" "$s" "$p"
  row "pgoci install: initdb step" "$(med initdb)"
  row "pgoci install: whole command" "$(med wall)"
  result "install w/o initdb vs tar -I pigz" "$size" "$p" s "tar+pigz" "$f" "$target"
  result "install w/o initdb vs skopeo+umoci" "$size" "$p" s "skopeo+umoci" "$s" -
  result "install: initdb step" "$size" "$(med initdb)" s - - -
  result "install: whole command" "$size" "$(med wall)" s - - -
done
