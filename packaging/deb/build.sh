#!/usr/bin/env bash
# Build a .deb of pgoci with plain dpkg-deb (no cargo-deb).
#
#   packaging/deb/build.sh [OUT.deb]
#
# PGOCI_BIN: the binary to package (meant for the static release build,
#   target/<host triple>/release/pgoci). Default: `cargo build`
#   and the debug binary, which is then stripped and, being dynamically
#   linked, gets a Depends on the packages of its shared libraries.
# Output: OUT.deb, or packaging/deb/out/pgoci_<version>_amd64.deb.
# Prints the path of the .deb on stdout.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { printf '[deb] %s\n' "$*" >&2; }
die() { printf '[deb] ERROR: %s\n' "$*" >&2; exit 1; }

if [ -z "${PGOCI_BIN:-}" ]; then
  (cd "$REPO" && cargo build --quiet)
  tdir=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
  PGOCI_BIN=$tdir/$(rustc -vV | sed -n 's/^host: //p')/debug/pgoci
fi
[ -x "$PGOCI_BIN" ] || die "PGOCI_BIN=$PGOCI_BIN is not executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgoci-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Copy first: the binary in target/ may be rebuilt while we work.
install -m 0755 "$PGOCI_BIN" "$WORK/pgoci"
BIN=$WORK/pgoci

VERSION=$("$BIN" --version | awk '$1 == "pgoci" { print $2; exit }')
[[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "cannot parse a version from '$("$BIN" --version)'"
ARCH=amd64
OUT=${1:-$REPO/packaging/deb/out/pgoci_${VERSION}_${ARCH}.deb}
mkdir -p "$(dirname "$OUT")"

D=$WORK/root
install -d -m 0755 "$D/DEBIAN" "$D/usr/bin" "$D/usr/share/man/man1" \
  "$D/usr/share/doc/pgoci" "$D/usr/share/bash-completion/completions" \
  "$D/usr/share/zsh/vendor-completions" "$D/usr/share/fish/vendor_completions.d"

install -m 0755 "$BIN" "$D/usr/bin/pgoci"
if [[ "$(file -b "$BIN")" == *"not stripped"* ]]; then
  strip --strip-unneeded "$D/usr/bin/pgoci"
fi

DEPENDS=
LDD=$(ldd "$BIN" 2>/dev/null || true)
if grep -q '=>' <<<"$LDD"; then
  # Dynamically linked (e.g. the debug build): depend on the library packages.
  DEPENDS=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$LDD" |
    while read -r lib; do dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null; done |
    cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
  log "dynamically linked binary: Depends: ${DEPENDS:-?}"
fi

shopt -s nullglob
pages=("$REPO"/man/*.1)
[ "${#pages[@]}" -gt 0 ] || die "no man pages in $REPO/man"
for p in "${pages[@]}"; do
  gzip -9n <"$p" >"$D/usr/share/man/man1/$(basename "$p").gz"
done

"$BIN" completions bash >"$D/usr/share/bash-completion/completions/pgoci"
"$BIN" completions zsh >"$D/usr/share/zsh/vendor-completions/_pgoci"
"$BIN" completions fish >"$D/usr/share/fish/vendor_completions.d/pgoci.fish"

cat >"$D/usr/share/doc/pgoci/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pgoci
Source: https://github.com/pgoci/pgoci

Files: *
Copyright: pgoci contributors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
     https://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in "/usr/share/common-licenses/Apache-2.0".
COPYRIGHT

find "$D" -type d -exec chmod 0755 {} +
find "$D/usr/share" -type f -exec chmod 0644 {} +

SIZE_KB=$(du -sk --exclude=DEBIAN "$D" | cut -f1)
{
  echo "Package: pgoci"
  echo "Version: $VERSION"
  echo "Architecture: $ARCH"
  echo "Maintainer: pgoci maintainers <pgoci@users.noreply.github.com>"
  echo "Installed-Size: $SIZE_KB"
  [ -n "$DEPENDS" ] && echo "Depends: $DEPENDS"
  echo "Section: database"
  echo "Priority: optional"
  echo "Homepage: https://github.com/pgoci/pgoci"
  echo "Description: install PostgreSQL and extensions from OCI registries"
  echo " pgoci resolves PostgreSQL servers and extensions published as OCI"
  echo " artifacts, pulls them (or reads an offline bundle) and installs them as"
  echo " instances on hosts that run no containers, with generations, upgrades"
  echo " and rollbacks."
} >"$D/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$D" "$OUT" >&2
log "built $OUT"
echo "$OUT"
