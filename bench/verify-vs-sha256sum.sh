#!/usr/bin/env bash
# Benchmark: `pgoci bundle verify` (layout, lock, every blob's digest and
# size) against plain `sha256sum` over the same blob files, RUNS times;
# prints medians and the ratio. Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$pgoci" -q --profile "$state/profile.yaml" --insecure-registry "$registry" --cache-dir "$work/c" \
  bundle export --major 18 --ext pg_trgm,pg_stat_statements -o "$work/b"
pg=() sh=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); "$pgoci" -q bundle verify "$work/b"; t1=$(now)
  sha256sum "$work"/b/blobs/sha256/* >/dev/null; t2=$(now)
  pg+=("$(echo "$t1 - $t0" | bc)"); sh+=("$(echo "$t2 - $t1" | bc)")
done
p=$(printf '%s\n' "${pg[@]}" | median)
s=$(printf '%s\n' "${sh[@]}" | median)
printf 'verify of a %s MiB bundle, median of %s runs\n' "$(( $(du -sb "$work/b" | cut -f1) >> 20 ))" "$RUNS"
printf '  pgoci bundle verify %6.3f s\n  sha256sum           %6.3f s\n  ratio pgoci/sha256sum = %.2f\n' "$p" "$s" "$(echo "$p / $s" | bc -l)"
