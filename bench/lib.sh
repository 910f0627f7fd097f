# Shared set-up of the benchmark scripts (sourced): test bed up, release
# binary built, a scratch dir, and timing helpers. Sets: registry, state,
# pgoci, work. Everything is torn down on exit.
cd "$(dirname "${BASH_SOURCE[1]}")/.."
RUNS=${RUNS:-5}
state=${BENCH_STATE:-$(pwd)/target/bench-bed}
tests/bed/bed.sh prepare
command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y bc >/dev/null
registry=$(tests/bed/bed.sh up "$state" | sed -n 's/^REGISTRY=//p' | tail -1)
cargo build --release --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
pgoci="$target_dir/x86_64-unknown-linux-gnu/release/pgoci"
work=$(mktemp -d)
trap 'rm -rf "$work"; tests/bed/bed.sh down "$state" >/dev/null 2>&1' EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
