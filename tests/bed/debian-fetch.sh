#!/usr/bin/env bash
# Downloads packages of another Debian release (trixie's cosign and oras on
# a bookworm machine, say) without touching this machine's apt state:
#
#   tests/bed/debian-fetch.sh [-x] SUITE DEST PKG...
#
# The .debs land in DEST; with -x they are also unpacked under DEST/root
# (dpkg-deb -x: files only, no maintainer scripts, nothing installed).
# Only the named packages are fetched, not their dependencies (the tools
# the bed uses this for are static Go binaries).
#
# How: `apt-get update` and `apt-get download` with a sources list of our
# own (deb $DEBIAN_MIRROR SUITE main, signed by Debian's archive keyring)
# and apt state, lists and archives of our own under
# $PGOCI_BED_CACHE/debian-fetch/SUITE-ARCH, kept there so a second run
# asks the mirror nothing. The machine's apt.conf (proxies) still applies;
# its sources, lists, preferences, package cache and dpkg status are never
# read or written. apt checks every .deb against the signed index.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# PGOCI_BED_CACHE (default ~/.cache/pgoci-testbed), DEBIAN_FETCH_REFRESH=1
# to fetch the index again even when the cached one is recent.
set -euo pipefail

die() { printf 'debian-fetch: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '5,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

extract=0
if [ "${1:-}" = -x ]; then extract=1; shift; fi
[ $# -ge 3 ] || usage
suite=$1 dest=$2
shift 2
case "$suite" in *[!a-z0-9-]* | "") die "not a suite name: $suite" ;; esac
for p in "$@"; do
  case "$p" in -* | *[!a-z0-9.+-]*) die "not a package name: $p" ;; esac
done
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
  die "needs apt-get and dpkg-deb (a Debian or Ubuntu machine)"

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
arch=$(dpkg --print-architecture)
cache=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}
state=$cache/debian-fetch/$suite-$arch
mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/cache" \
  "$state/etc/sources.list.d" "$state/etc/preferences.d" "$state/debs"
: >"$state/status"
printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$arch" "$keyring" "$mirror" "$suite" \
  >"$state/etc/sources.list"

apt_opts=(
  -o "Dir::Etc::sourcelist=$state/etc/sources.list"
  -o "Dir::Etc::sourceparts=$state/etc/sources.list.d"
  -o "Dir::Etc::preferences=$state/etc/preferences"
  -o "Dir::Etc::preferencesparts=$state/etc/preferences.d"
  -o "Dir::State=$state"
  -o "Dir::State::lists=$state/lists"
  -o "Dir::State::status=$state/status"
  -o "Dir::State::extended_states=$state/extended_states"
  -o "Dir::Cache=$state/cache"
  -o "Dir::Cache::archives=$state/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "Acquire::Languages=none"
  # Only the Packages index: no Contents (apt-file), no DEP-11 (appstream).
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
  # Our state may sit in a directory apt's unprivileged _apt user cannot
  # enter (/root/.cache): download as the invoking user instead.
  -o "APT::Sandbox::User=$(id -un)"
)
apt() { apt-get -q "${apt_opts[@]}" "$@"; }

# One run at a time per suite: apt locks its lists too, but a second run
# should wait, not fail.
exec 9>"$state/lock"
flock 9

index_fresh() {
  [ "${DEBIAN_FETCH_REFRESH:-0}" != 1 ] || return 1
  [ -n "$(find "$state/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit)" ] &&
    [ "$(cat "$state/source" 2>/dev/null)" = "$mirror $suite" ]
}
update() {
  printf 'debian-fetch: apt-get update (%s %s, own state in %s)\n' "$mirror" "$suite" "$state" >&2
  apt update >&2 || die "apt-get update for $suite failed"
  printf '%s %s\n' "$mirror" "$suite" >"$state/source"
}
download() { (cd "$state/debs" && apt download "$@" >&2); }

index_fresh || update
if ! download "$@"; then
  # A cached index may name a version the mirror dropped since.
  update
  download "$@" || die "apt-get download $* from $suite failed"
fi

mkdir -p "$dest"
for p in "$@"; do
  deb=$(find "$state/debs" -maxdepth 1 -name "${p}_*_*.deb" | sort -V | tail -n 1)
  [ -n "$deb" ] || die "$p: no .deb after apt-get download"
  cp "$deb" "$dest/"
  if [ "$extract" = 1 ]; then
    mkdir -p "$dest/root"
    dpkg-deb -x "$deb" "$dest/root"
  fi
  printf 'debian-fetch: %s %s\n' "$suite" "$(basename "$deb")" >&2
done
