#!/usr/bin/env bash
# shellcheck disable=SC2034 # the time arrays are filled through timeit's nameref
# Benchmark: the per-request overhead of `pgoci pull` on the small lock
# (the bed's PG 17 + hstore; everything `pgoci pull` fetches for it:
# manifests, configs, layers and what travels beside them), cold cache
# each time, against its floor: one `curl` per blob of the same pull, all
# in parallel, into files, then `sync` (pgoci fsyncs what it keeps). Runs
# are paired and alternate their order; prints the medians and the ratio
# (target <= 1.10), then what one pull costs besides the bytes: the
# requests the registry saw (through tests/bed/faulty_proxy.py, which logs
# every request; `GET /v2/` is the auth ping) and the files it opened
# (strace: all, and those under /etc/ssl and /usr/share/ca-certificates).
# Small size only (RUNS runs, default 5; BENCH_SIZES is ignored).
# Uses the release binary (built if missing). Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
use_size small
lock=$size_lock
pull_pgoci() { "$pgoci" -q --insecure-registry "$registry" --cache-dir "$work/c" pull --lock "$lock"; }

# What one pull fetches: one pull through the logging proxy, and its log.
proxy_log=$work/proxy.log
python3 tests/bed/faulty_proxy.py "$registry" "$proxy_log" status 500 0 >"$work/proxy.port" &
proxy_pid=$!
trap 'kill "$proxy_pid" 2>/dev/null; rm -rf "$work"; tests/bed/bed.sh down "$state" >/dev/null 2>&1' EXIT
for _ in $(seq 1 50); do grep -q '^PORT=' "$work/proxy.port" && break; sleep 0.1; done
proxy=127.0.0.1:$(sed -n 's/^PORT=//p' "$work/proxy.port")
sed "s/$registry/$proxy/g" "$lock" >"$work/proxied.lock"
"$pgoci" -q --insecure-registry "$proxy" --cache-dir "$work/pc" pull --lock "$work/proxied.lock"
kill "$proxy_pid"
requests=$(grep -c . "$proxy_log")
pings=$(grep -c '^GET /v2/ ' "$proxy_log" || true)

# The peer fetches the same objects: blobs from /blobs/, manifests (what
# pgoci asks the manifest endpoint for) from /manifests/.
mapfile -t urls < <(python3 - "$proxy_log" "$registry" <<'PY'
import re, sys
seen = []
for line in open(sys.argv[1]):
    m = re.match(r"GET (/v2/\S+/(?:blobs|manifests)/sha256:[0-9a-f]{64}) ", line)
    if m and m.group(1) not in seen:
        seen.append(m.group(1))
for path in seen:
    print(f"http://{sys.argv[2]}{path}")
PY
)
accept="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
curl_all() {
  local n=0 url pids=()
  for url in "${urls[@]}"; do
    curl -sf -H "Accept: $accept" -o "$work/k/$n" "$url" & pids+=($!)
    n=$((n + 1))
  done
  for n in "${pids[@]}"; do wait "$n"; done
  sync
}

pg=() cu=()
for i in $(seq 1 "$RUNS"); do
  rm -rf "$work/c" "$work/k" && mkdir "$work/k"
  if [ $((i % 2)) = 1 ]; then
    timeit pg pull_pgoci; timeit cu curl_all
  else
    timeit cu curl_all; timeit pg pull_pgoci
  fi
done
p=$(med pg) c=$(med cu)

# Files one pull opens (cold cache).
opens=- ca_opens=-
if command -v strace >/dev/null; then
  rm -rf "$work/c"
  strace -f -qq -e trace=openat,open -o "$work/strace" "$pgoci" -q --insecure-registry "$registry" \
    --cache-dir "$work/c" pull --lock "$lock"
  opens=$(grep -c 'open' "$work/strace" || true)
  ca_opens=$(grep -cE '"/(etc/ssl|usr/share/ca-certificates)' "$work/strace" || true)
fi

printf 'pull overhead, small: %s MiB in %s objects, median of %s paired runs\n' \
  "$(mib "$work/c/blobs")" "${#urls[@]}" "$RUNS"
row "pgoci pull" "$p"
row "${#urls[@]} parallel curl + sync" "$c" "$p" "<= 1.10"
printf '  requests per pull: %s, of which GET /v2/: %s\n' "$requests" "$pings"
printf '  files opened by one pull: %s, under the CA directories: %s\n' "$opens" "$ca_opens"
result "pull vs parallel curl + sync" small "$p" s "curl+sync" "$c" "<= 1.10"
[ -z "${BENCH_RESULTS:-}" ] ||
  printf 'requests / GET /v2/ / CA files per pull\tsmall\t%s / %s / %s\t-\t\t\t-\t\n' \
    "$requests" "$pings" "$ca_opens" >>"$BENCH_RESULTS"
