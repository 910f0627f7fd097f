#!/usr/bin/env bash
# Runs every benchmark script at both sizes (bench/lib.sh: the bed's 22 MiB
# PG 17 + hstore, and the generated 1 GiB image) and prints their outputs,
# then one table of all measurements with the targets of BENCHMARKS.md.
# RUNS / BIG_RUNS / BENCH_SIZES / BENCH_LAYER_MIB pass through to them
# (pull-overhead.sh measures the small size only).
# Not a test: nothing asserts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
results=$(mktemp)
trap 'rm -f "$results"' EXIT
export BENCH_RESULTS=$results
t0=$(date +%s)
for s in pull-vs-skopeo pull-overhead export-verify install-vs-tar noop-rerun peak-rss bytes serve; do
  echo "== bench/$s.sh"
  "bench/$s.sh" 2> >(grep -v '^\[bed\]' >&2)
  echo
done
echo "== summary ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(( $(date +%s) - t0 )) s in all)"
{
  printf 'measurement\tsize\tpgoci\tpeer\tpeer value\tratio\ttarget\tmet\n'
  cat "$results"
} | column -t -s $'\t'
echo "(ratio = pgoci / peer; for bytes: two bundles / one layout)"
