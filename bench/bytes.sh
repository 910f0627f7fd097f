#!/usr/bin/env bash
# Benchmark: bytes on disk for two PostgreSQL majors (17 and 18): two
# bundles (one per lock) against one OCI layout holding both images, and
# the store after installing both (two instances in one --root).
#   small: the bed's pg17 and pg18 images (they share no layer)
#   big:   the generated 17 and 18 images (they share 4 x 256 MiB layers)
# pgoci's one bundle for both (`bundle export --lock a --lock b`) is
# compared with the peer: `skopeo copy` of both images into one oci:
# directory. The store (layers stored once, artifact entries hard links
# of them) is compared with its two artifact entries measured apart.
# Sizes are `du -sb`. Not a test: nothing asserts.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for size in $SIZES; do
  case $size in
    small) profile=$state/profile.yaml ;;
    big) [ -n "${big_profile:-}" ] || big_up; profile=$big_profile ;;
  esac
  rm -rf "$work/b17" "$work/b18" "$work/one" "$work/r" "$work/site"
  for major in 17 18; do
    "$pgoci" -q --profile "$profile" "--insecure-registry=$registry" --cache-dir "$work/rc" \
      resolve --major "$major" -o "$work/$major.lock"
    export_dir "$work/$major.lock" "$work/b$major"
    ref=$(lock_refs "$work/$major.lock")
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/one:$major"
  done
  "$pgoci" -q --profile "$profile" "--insecure-registry=$registry" --cache-dir "$work/rc" \
    bundle export --lock "$work/17.lock" --lock "$work/18.lock" -o "$work/site"
  two=$(( $(du -sb "$work/b17" | cut -f1) + $(du -sb "$work/b18" | cut -f1) ))
  site=$(du -sb "$work/site" | cut -f1)
  one=$(du -sb "$work/one" | cut -f1)
  for major in 17 18; do
    "$pgoci" -q --root "$work/r" install --yes --bundle "$work/b$major" --no-start \
      --port "$(free_port)" --instance "pg$major" --service none >/dev/null
  done
  # du counts a hard-linked inode once: the store with its layers stored
  # once. Each artifact entry measured apart is what a store keyed by
  # image (every layer unpacked per image) would hold.
  store=$(du -sb "$work/r/opt/pgoci/store" | cut -f1)
  apart=0
  for entry in "$work"/r/opt/pgoci/store/*/; do
    [ "$(basename "$entry")" = layers ] && continue
    apart=$(( apart + $(du -sb "$entry" | cut -f1) ))
  done
  m() { echo "scale=1; $1 / 1048576" | bc; }
  printf 'bytes, %s: PostgreSQL 17 and 18 servers (no extensions)\n' "$size"
  printf '  %-34s %10.1f MiB\n' "two bundles (one per major)" "$(m "$two")"
  printf '  %-34s %10.1f MiB\n' "one pgoci bundle, both locks" "$(m "$site")"
  printf '  %-34s %10.1f MiB   ratio pgoci bundle/this %.2f   (target <= 1.05)\n' \
    "one OCI layout, both (skopeo)" "$(m "$one")" "$(ratio "$site" "$one")"
  printf '  %-34s %10.1f MiB   ratio %.2f to the entries apart\n' "store after installing both" \
    "$(m "$store")" "$(ratio "$store" "$apart")"
  printf '  %-34s %10.1f MiB\n' "the two store entries apart" "$(m "$apart")"
  result "bytes: one bundle, two majors" "$size" "$(m "$site")" MiB "skopeo layout" "$(m "$one")" "<= 1.05"
  result "bytes: store with both installed" "$size" "$(m "$store")" MiB "entries apart" "$(m "$apart")" -
  rm -rf "$work/b17" "$work/b18" "$work/one" "$work/r" "$work/site" "$work"/xc-*
done
