#!/usr/bin/env bash
# Benchmark: `pgoci bundle verify` (layout, lock, every blob's digest and
# size) against plain `sha256sum` over the same blob files, RUNS times;
# prints medians and the ratio. Not a test: nothing asserts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-5}
state=${BENCH_STATE:-$(pwd)/target/bench-bed}
tests/bed/bed.sh prepare
command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y bc >/dev/null
registry=$(tests/bed/bed.sh up "$state" | sed -n 's/^REGISTRY=//p' | tail -1)
cargo build --release --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
pgoci="$target_dir/release/pgoci"
work=$(mktemp -d)
trap 'rm -rf "$work"; tests/bed/bed.sh down "$state" >/dev/null 2>&1' EXIT
"$pgoci" -q --profile "$state/profile.yaml" --insecure-registry "$registry" --cache-dir "$work/c" \
  bundle export --major 18 --ext pg_trgm,pg_stat_statements -o "$work/b"
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
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
