#!/usr/bin/env bash
# Benchmark: `pgoci pull` against `skopeo copy` for the same artifacts
# (PostgreSQL 17 + hstore from the loopback test registry), each into an
# empty destination, RUNS times; prints the median of each and the ratio.
# Uses the release binary (built if missing). Not a test: nothing asserts.
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
"$pgoci" --profile "$state/profile.yaml" --insecure-registry "$registry" --cache-dir "$work/c0" \
  resolve --major 17 --ext hstore -o "$work/pg17.lock" 2>/dev/null
refs=$(python3 - "$work/pg17.lock" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
for ref, digest in re.findall(r"reference: (\S+)\n\s+digest: (\S+)", text):
    print(ref.rsplit(":", 1)[0] + "@" + digest)  # repository@manifest-digest
PY
)
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pg=() sk=()
for i in $(seq 1 "$RUNS"); do
  rm -rf "$work/c" "$work/s"
  t0=$(now)
  "$pgoci" -q --insecure-registry "$registry" --cache-dir "$work/c" pull --lock "$work/pg17.lock"
  t1=$(now)
  n=0
  for ref in $refs; do
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/s:a$n"
    n=$((n + 1))
  done
  t2=$(now)
  pg+=("$(echo "$t1 - $t0" | bc)")
  sk+=("$(echo "$t2 - $t1" | bc)")
done
p=$(printf '%s\n' "${pg[@]}" | median)
s=$(printf '%s\n' "${sk[@]}" | median)
size=$(du -sb "$work/c/blobs" | cut -f1)
printf 'pull of %s MiB (PG 17 + hstore), median of %s runs\n' "$((size >> 20))" "$RUNS"
printf '  pgoci pull   %6.3f s\n  skopeo copy  %6.3f s\n  ratio pgoci/skopeo = %.2f\n' "$p" "$s" "$(echo "$p / $s" | bc -l)"
