#!/usr/bin/env bash
# shellcheck disable=SC2034 # the time arrays are filled through timeit's nameref
# Benchmark: the wall time of re-running an install that is already done
# (same bundle, same flags: `--json` must say "changed": false) at both
# sizes; median of RUNS (BIG_RUNS) re-runs. No peer: the target is absolute.
# Not a test: nothing asserts on time (a re-run that changes something stops
# the script, since its time would mean nothing).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
port=$(free_port)
install_json() {
  "$pgoci" --json --root "$work/r" install --yes --bundle "$work/bd" --no-start --port "$port" \
    --instance x --service none >"$work/out.json"
}
for size in $SIZES; do
  use_size "$size"
  rm -rf "$work/bd" "$work/r"; export_dir "$size_lock" "$work/bd"
  install_json
  t=()
  for i in $(seq 1 "$size_runs"); do
    timeit t install_json
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["changed"] is False else "re-run changed something: %s" % d["actions"])' "$work/out.json"
  done
  printf 'no-op re-run of install, %s: %s MiB bundle, median of %s re-runs ("changed": false each)\n' \
    "$size" "$(mib "$work/bd")" "$size_runs"
  row "pgoci install (again)" "$(med t)"
  result "no-op re-run of install" "$size" "$(med t)" s - - "< 0.050"
  rm -rf "$work/r"
done
