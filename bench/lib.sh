# shellcheck shell=bash disable=SC2034 # size_* and SIZES are read by the scripts
# Shared set-up of the benchmark scripts (sourced): test bed up, release
# binary built, a scratch dir, timing helpers, and the two sizes every
# script measures:
#   small  the bed's PostgreSQL 17 + hstore (22 MiB), RUNS runs (default 5)
#   big    bench/gen-big.sh's image: 4 x 256 MiB random layers + PG 17 tree,
#          BIG_RUNS runs (default 3)
# BENCH_SIZES="small big" picks them; BENCH_LAYER_MIB sets the big layers'
# size (default 256; a smaller value makes a quick smoke run).
# BENCH_PGOCI=BINARY measures that pgoci instead of building the release one.
# BENCH_RESULTS=FILE appends one tab-separated row per measurement
# (bench/all.sh collects them into a table).
# Sets: registry, state, pgoci, work. Everything is torn down on exit.
cd "$(dirname "${BASH_SOURCE[1]}")/.." || exit 1
RUNS=${RUNS:-5}
BIG_RUNS=${BIG_RUNS:-3}
SIZES=${BENCH_SIZES:-small big}
state=${BENCH_STATE:-$(pwd)/target/bench-bed}
tests/bed/bed.sh prepare
bench_tools() {
  local p missing=()
  for p in bc pigz skopeo umoci openssl time python3; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "[bench] apt-get install ${missing[*]}" >&2
  # A fresh machine may have stale package lists: update once and retry.
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}
bench_tools
registry=$(tests/bed/bed.sh up "$state" | sed -n 's/^REGISTRY=//p' | tail -1)
if [ -n "${BENCH_PGOCI:-}" ]; then
  pgoci=$(realpath "$BENCH_PGOCI") # another build (before/after comparisons)
else
  cargo build --release --quiet
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  pgoci="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release/pgoci"
fi
work=$(mktemp -d)
chmod 0755 "$work" # initdb runs as postgres under it (install, rss, bytes)
trap 'rm -rf "$work"; tests/bed/bed.sh down "$state" >/dev/null 2>&1' EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# med ARRAY_NAME: median of a bash array's values.
med() { local -n _a=$1; printf '%s\n' "${_a[@]}" | median; }
ratio() { echo "scale=4; $1 / $2" | bc -l; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# num UNIT VALUE: seconds to the ms, other units to one decimal.
num() { case $2 in -) echo - ;; *) if [ "$1" = s ]; then printf '%.3f' "$2"; else printf '%.1f' "$2"; fi ;; esac; }
mib() { echo "$(( $(du -sb "$1" | cut -f1) >> 20 ))"; }

# result METRIC SIZE PGOCI UNIT PEER PEER_VALUE TARGET: one row for all.sh
# (PEER "-" when the row has no peer; RATIO is PGOCI/PEER_VALUE; TARGET
# "<= X", "< X" or "-" applies to the ratio, or to PGOCI without a peer).
result() {
  local r=- met=- v=$3
  [ "$6" = - ] || { r=$(printf '%.2f' "$(ratio "$3" "$6")"); v=$r; }
  case $7 in
    "<= "*) met=$([ "$(echo "$v <= ${7#<= }" | bc)" = 1 ] && echo yes || echo NO) ;;
    "< "*) met=$([ "$(echo "$v < ${7#< }" | bc)" = 1 ] && echo yes || echo NO) ;;
  esac
  [ -z "${BENCH_RESULTS:-}" ] ||
    printf '%s\t%s\t%s %s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(num "$4" "$3")" "$4" "$5" \
      "$(num "$4" "$6")" "$r" "$7" "$met" >>"$BENCH_RESULTS"
}

# big_up: the generated image pushed to the bed registry (once per registry
# content), and a profile naming it; sets big_profile.
big_up() {
  local lay tag digest stamp
  lay=$(bench/gen-big.sh)
  for tag in 17 18; do
    digest=$(python3 -c 'import json,sys; print(next(m["digest"] for m in json.load(open(sys.argv[1]+"/index.json"))["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"]==sys.argv[2]))' "$lay" "$tag")
    stamp=$state/bench-pushed-$tag
    if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] ||
      ! skopeo inspect --raw --tls-verify=false "docker://$registry/pgoci-bench/postgresql@$digest" >/dev/null 2>&1; then
      echo "[bench] push the generated image :$tag to $registry" >&2
      skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
        "oci:$lay:$tag" "docker://$registry/pgoci-bench/postgresql:$tag" >&2
      printf '%s' "$digest" >"$stamp"
    fi
  done
  big_profile=$work/big.yaml
  cat >"$big_profile" <<YAML
name: bench
description: pgoci benchmark image (bench/gen-big.sh)
platforms: [linux/amd64]
server:
  majors: [17, 18]
  image:
    17: "$registry/pgoci-bench/postgresql:17"
    18: "$registry/pgoci-bench/postgresql:18"
  layout: {17: tree, 18: tree}
extensions: {}
YAML
}

# use_size SIZE: sets size_profile, size_lock (resolved here), size_label,
# size_runs and size_req (the resolve arguments) for small or big.
use_size() {
  case "$1" in
    small)
      size_profile=$state/profile.yaml size_req=(--major 17 --ext hstore)
      size_runs=$RUNS ;;
    big)
      [ -n "${big_profile:-}" ] || big_up
      size_profile=$big_profile size_req=(--major 17)
      size_runs=$BIG_RUNS ;;
    *) echo "unknown size $1" >&2; return 2 ;;
  esac
  size_lock=$work/$1.lock
  "$pgoci" -q --profile "$size_profile" --insecure-registry "$registry" --cache-dir "$work/resolve-cache" \
    resolve "${size_req[@]}" -o "$size_lock"
}

# lock_refs LOCK: repository@manifest-digest of each image in the lock.
lock_refs() {
  python3 - "$1" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
for ref, digest in re.findall(r"reference: (\S+)\n\s+digest: (\S+)", text):
    print(ref.rsplit(":", 1)[0] + "@" + digest)
PY
}

# lock_layers LOCK: "IMAGE_INDEX DIGEST" of every layer blob in the lock.
lock_layers() {
  python3 - "$1" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
for n, block in enumerate(re.split(r"\n(?=server:|- name:)", text)[1:]):
    for d in re.findall(r"layers:\n((?:\s+- digest: \S+\n(?:\s+\w+: .*\n)*)+)", block + "\n"):
        for digest in re.findall(r"- digest: sha256:(\S+)", d):
            print(n, digest)
PY
}

# timeit ARRAY CMD...: runs CMD, appends its wall time in seconds to ARRAY.
# Every run starts with nothing waiting to be written back: on ext4 an
# fsync commits the journal, which first writes out every file's dirty
# data, so a tool that fsyncs (pgoci) would otherwise pay for the gigabyte
# the previous run (a peer that does not) left in the page cache.
timeit() {
  local -n _t=$1
  shift
  local t0 t1
  sync
  t0=$(now)
  "$@"
  t1=$(now)
  _t+=("$(echo "$t1 - $t0" | bc)")
}

# row LABEL SECONDS [PEER_SECONDS [TARGET]]: one line of a script's output.
row() {
  if [ $# -ge 3 ]; then
    printf '  %-34s %8.3f s   ratio pgoci/this %.2f%s\n' "$1" "$2" "$(ratio "$3" "$2")" "${4:+   (target $4)}"
  else
    printf '  %-34s %8.3f s\n' "$1" "$2"
  fi
}

# A bundle directory of LOCK exported with a cache of its own.
export_dir() { "$pgoci" -q --insecure-registry "$registry" --cache-dir "$work/xc-$RANDOM" bundle export --lock "$1" -o "$2"; }

# span_secs LOG KIND...: summed busy time of the `-v` step spans of these
# kinds (lines like `…step{kind="unpack"}: … close time.busy=846ms …`).
span_secs() {
  python3 - "$@" <<'PY'
import re, sys
unit = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
kinds, total = set(sys.argv[2:]), 0.0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r'step\{kind="(\w+)"\}: .*close time\.busy=([0-9.]+)(ns|µs|us|ms|s)\b', line)
    if m and m.group(1) in kinds:
        total += float(m.group(2)) * unit[m.group(3)]
print(f"{total:.6f}")
PY
}
