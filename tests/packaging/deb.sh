#!/usr/bin/env bash
# Build the .deb with packaging/deb/build.sh, install it, check it, remove it.
#
#   tests/packaging/deb.sh        (as root; PGOCI_BIN=path to package a given binary)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { printf '[deb-test] %s\n' "$*" >&2; }
die() { printf '[deb-test] FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"

if ! dpkg -s man-db >/dev/null 2>&1; then
  log "installing man-db"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends man-db >&2
fi

# A pgoci installed some other way would make the assertions meaningless.
if dpkg -s pgoci >/dev/null 2>&1; then
  log "removing a previously installed pgoci package"
  dpkg -r pgoci >&2
fi

T=$(mktemp -d /tmp/pgoci-deb-test.XXXXXX)
INSTALLED=0
cleanup() {
  local rc=$?
  set +e
  [ "$INSTALLED" -eq 1 ] && { dpkg -r pgoci >&2 || log "dpkg -r pgoci failed"; }
  rm -rf "$T"
  [ "$rc" -eq 0 ] || log "exit $rc"
  exit "$rc"
}
trap cleanup EXIT

log "building"
DEB=$("$REPO/packaging/deb/build.sh" "$T/pgoci.deb")
[ -f "$DEB" ] || die "build.sh produced no .deb"

# Minimal (docker-style) Debian images drop man pages on install with
# path-exclude=/usr/share/man/* in /etc/dpkg/dpkg.cfg.d/. Say so, and
# override it for this package's pages (command-line filters come last and
# win) so that the page check still tests the package contents.
DPKG_OPTS=()
if excl=$(grep -rhsE '^[[:space:]]*path-exclude[[:space:]=]+/usr/share/man' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/); then
  log "NOTE: dpkg is configured to drop man pages: $(echo "$excl" | paste -sd' ')"
  log "NOTE: installing with --path-include=/usr/share/man/man1/pgoci*"
  DPKG_OPTS+=("--path-include=/usr/share/man/man1/pgoci*")
fi

log "dpkg -i"
INSTALLED=1
dpkg -i "${DPKG_OPTS[@]}" "$DEB" >&2 || die "dpkg -i failed"

v=$(/usr/bin/pgoci --version) || die "/usr/bin/pgoci --version failed"
[[ "$v" == "pgoci "* ]] || die "unexpected version output: $v"
[ "$(dpkg-query -W -f '${Version}' pgoci)" = "${v#pgoci }" ] ||
  die "package version $(dpkg-query -W -f '${Version}' pgoci) != binary version ${v#pgoci }"

page=$(man -w pgoci 2>&1) || die "man -w pgoci: $page"
[ "$page" = /usr/share/man/man1/pgoci.1.gz ] || die "man -w pgoci found $page"
page=$(man -w pgoci-install 2>&1) || die "man -w pgoci-install: $page"
man pgoci 2>/dev/null | grep -q pgoci || die "man pgoci renders nothing"

for f in /usr/share/bash-completion/completions/pgoci \
         /usr/share/zsh/vendor-completions/_pgoci \
         /usr/share/fish/vendor_completions.d/pgoci.fish \
         /usr/share/doc/pgoci/copyright; do
  [ -s "$f" ] || die "missing $f"
done
bash -c 'source /usr/share/bash-completion/completions/pgoci && complete -p pgoci' >/dev/null ||
  die "bash completion does not register for pgoci"

log "dpkg -r"
dpkg -r pgoci >&2 || die "dpkg -r failed"
INSTALLED=0
[ ! -e /usr/bin/pgoci ] || die "/usr/bin/pgoci still there after dpkg -r"
log "OK ($v)"
