#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first:
# the test bed (apt: docker-registry, umoci, skopeo, …; npm: PostgreSQL
# trees), then format and lint checks, unit and integration tests against
# the loopback registry, and the static release build check.
# Needs root: installs create a service user and chown data directories.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh must run as root (installs create users and start PostgreSQL)" >&2
  exit 2
fi

step() { printf '\n== %s\n' "$*" >&2; }

step "test bed: tools and fixtures"
tests/bed/bed.sh prepare
# trixie's cosign and oras for the signature and referrer tests, fetched
# here once rather than by the first tests that need them
tests/bed/bed.sh prepare-peers

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cleanup() {
  # CARGO_TARGET_TMPDIR is under the target triple's directory (.cargo/config.toml).
  for state in "$target_dir"/tmp/bed-* "$target_dir"/*/tmp/bed-*; do
    [ -d "$state" ] && tests/bed/bed.sh down "$state" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --features failpoints -- -D warnings
# Architecture: modules of src/ never import each other in a circle.
python3 scripts/import-circles.py
# docs/ covers every command and flag of the man pages, every exit code;
# nothing points at folders beside the clone.
python3 scripts/check-docs.py

step "unit and integration tests"
# failpoints: the kill -9 tests crash pgoci at named points (never in release builds).
cargo test --all-targets --features failpoints -- --test-threads "${PGOCI_TEST_THREADS:-4}"

step "fuzz smoke: every cargo-fuzz target, ${FUZZ_SECONDS:-20} s each from its committed corpus"
FUZZ_SECONDS=${FUZZ_SECONDS:-20} fuzz/smoke.sh

step "static release binary (plain cargo build --release, see .cargo/config.toml)"
cargo build --release
host_triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$target_dir/$host_triple/release/pgoci"
ldd_out=$(ldd "$bin" 2>&1 || true)
case "$ldd_out" in
  *"not a dynamic executable"*|*"statically linked"*) echo "static: $bin ($ldd_out)" >&2 ;;
  *) echo "pgoci is not static: $ldd_out" >&2; exit 1 ;;
esac
"$bin" --version
# docs/cli.md against the binary's own --help, every command and flag
python3 scripts/check-docs.py --bin "$bin"

step "packaging: .deb built and installed"
PGOCI_BIN="$bin" tests/packaging/deb.sh

step "Ansible role with ansible-core, two hosts"
PGOCI_BIN="$bin" tests/packaging/ansible.sh

step "images × hosts: CloudNativePG-style images on bare Debian bullseye, bookworm and trixie"
# Every server image on every host release, through chroot in a private
# mount namespace (tests/bed/hosts.sh): --libraries host refused with the
# host unchanged, then auto installs, CREATE EXTENSION, archive_command
# with the host's cp, and a re-run that changes nothing. Prints the table.
PGOCI_BIN="$bin" MATRIX_STATE="$target_dir/tmp/matrix" tests/matrix.sh

step "major upgrades and the collation gate on a bare Debian bookworm host"
# 15 + postgis + vector -> 17 (refused while PostGIS is in use; copy,
# clone on a reflink XFS, link; rollback; every crash point, killed there
# and run again; finalize), and 17 on the host's glibc -> the trixie image's
# glibc (collation gate, reindex, amcheck). The crash points need the
# failpoints build (the debug binary cargo test built; static like all).
cargo build --features failpoints --bin pgoci
PGOCI_BIN="$bin" PGOCI_FAILPOINTS_BIN="$target_dir/$host_triple/debug/pgoci" \
  UPGRADE_STATE="$target_dir/tmp/upgrade" tests/upgrade.sh

step "Ansible over SSH: the role and its playbooks on a bullseye, bookworm and trixie fleet"
# Three minbase hosts with sshd, each in a network namespace of its own
# (tests/bed/fleet.sh), Debian's ansible-core on a controller namespace:
# check mode changes nothing, install (the trixie 17 image + pgvector,
# the image's glibc on the older hosts), psql, changed=0; the rolling
# upgrade playbook (check, a failure on the second host rolled back, good)
# and the major upgrade playbook 15 -> 17 (refused check, a rolled-back
# failure, good, finalize). About five minutes warm.
PGOCI_BIN="$bin" FLEET_STATE="$target_dir/tmp/fleet" tests/fleet.sh

step "all tests passed"
