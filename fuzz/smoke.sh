#!/usr/bin/env bash
# A bounded, coverage-guided fuzz run of every target on stable Rust (the
# sanitizer-coverage passes libFuzzer needs are stable codegen options, so
# neither nightly nor cargo-fuzz is needed): builds the targets, runs each
# for FUZZ_SECONDS (default 15) from a scratch copy of its committed corpus,
# and fails on the first crash, panic or internal error, leaving the
# reproducer in $FUZZ_WORK/artifacts/TARGET/. Prints executions per target.
#
#   fuzz/smoke.sh [TARGET...]      (default: unpack layer_store lock profile bundle elf)
# Env: FUZZ_SECONDS, FUZZ_TARGET_DIR (default $CARGO_TARGET_DIR/../fuzz-target
# or fuzz/target), FUZZ_WORK (default a temp dir, removed when all pass).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(unpack layer_store lock profile bundle elf)
seconds=${FUZZ_SECONDS:-15}
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  target_dir=$FUZZ_TARGET_DIR
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir=$(dirname "$CARGO_TARGET_DIR")/fuzz-target
else
  target_dir=$PWD/target
fi

# What `cargo fuzz build` passes, minus the sanitizer (nightly-only).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
CARGO_TARGET_DIR=$target_dir cargo build --release --locked "${bins[@]}" >&2

work=${FUZZ_WORK:-$(mktemp -d /tmp/pgoci-fuzz.XXXXXX)}
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  cp -r "corpus/$t/." "$work/corpus/$t/"
  bin=$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release/$t
  log=$work/$t.log
  start=$(date +%s)
  if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
      -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $t failed; reproducer in $work/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo '?')
  echo "fuzz $t: $runs executions in $(( $(date +%s) - start )) s, no failure" >&2
done
[ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
