#!/usr/bin/env bash
# Benchmark: `pgoci pull` against `skopeo copy` for the same artifacts
# (PostgreSQL 17 + hstore from the loopback test registry), each into an
# empty destination, RUNS times; prints the median of each and the ratio.
# Uses the release binary (built if missing). Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$pgoci" --profile "$state/profile.yaml" --insecure-registry "$registry" --cache-dir "$work/c0" \
  resolve --major 17 --ext hstore -o "$work/pg17.lock" 2>/dev/null
refs=$(python3 - "$work/pg17.lock" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
for ref, digest in re.findall(r"reference: (\S+)\n\s+digest: (\S+)", text):
    print(ref.rsplit(":", 1)[0] + "@" + digest)  # repository@manifest-digest
PY
)
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
