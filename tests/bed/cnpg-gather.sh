#!/bin/bash
# Runs INSIDE a builder chroot (a server image's root file system with its
# apt lists): installs an extension's Debian packages and gathers them into
# the CloudNativePG extension-image layout, the way the Dockerfiles of
# cloudnative-pg/postgres-extensions-containers do:
#   lib/               the modules (+ bitcode)
#   share/extension/   control and SQL files
#   system/            libraries the modules need that the base image lacks
#                      (ldd of the modules minus `ldconfig -p` of the base,
#                      real file copied, same-dir symlinks to it rebuilt)
#   licenses/<pkg>/    copyright of the extension package and of each
#                      package a system/ library came from
#
#   cnpg-gather.sh MAJOR OUT
# Environment: PKGS (packages to install), LIBS (globs in the pkglibdir),
# SHARE (globs in share/extension), BITCODE (`full`: the whole lib/bitcode/
# as CNPG's pre-18 Dockerfiles copy it; else globs inside lib/bitcode/),
# EXTRA ("SRC:DST" pairs, SRC absolute, DST relative to OUT), LICENSE_PKG.
set -euo pipefail
major=$1 out=$2
libdir=/usr/lib/postgresql/$major/lib
extdir=/usr/share/postgresql/$major/extension

# The base image's libraries, before the extension is installed.
ldconfig -p | awk '{print $NF}' | grep '^/' | sort -u >/root/base-libs.out

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $PKGS >/root/gather-apt.log 2>&1 ||
  { tail -n 20 /root/gather-apt.log >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/lib" "$out/share/extension" "$out/system" "$out/licenses"
modules=()
for g in $LIBS; do
  for f in $libdir/$g; do
    [ -e "$f" ] || continue
    cp -a "$f" "$out/lib/"
    case "$f" in *.so) modules+=("$f") ;; esac
  done
done
[ "${#modules[@]}" -gt 0 ] || { echo "no modules matched $LIBS in $libdir" >&2; exit 1; }
for g in $SHARE; do
  for f in $extdir/$g; do [ -e "$f" ] && cp -a "$f" "$out/share/extension/"; done
done
if [ "$BITCODE" = full ]; then
  cp -a "$libdir/bitcode" "$out/lib/bitcode"
else
  mkdir -p "$out/lib/bitcode"
  for g in $BITCODE; do
    for f in $libdir/bitcode/$g; do [ -e "$f" ] && cp -a "$f" "$out/lib/bitcode/"; done
  done
fi
for pair in ${EXTRA:-}; do
  src=${pair%%:*} dst=$out/${pair#*:}
  mkdir -p "$dst"
  for f in $src; do [ -e "$f" ] && cp -a "$f" "$dst"; done
done

# System libraries: what the modules load that the base image did not have.
ldd "${modules[@]}" | awk '{print $3}' | grep '^/' | sort -u >/root/all-deps.out || true
comm -13 /root/base-libs.out /root/all-deps.out >/root/libraries.out
while read -r lib; do
  resolved=$(readlink -f "$lib")
  dir=$(dirname "$lib") base=$(basename "$lib")
  cp -a "$resolved" "$out/system/"
  for file in "$dir/${base%.so*}.so"*; do
    [ -e "$file" ] || continue
    if [ -L "$file" ] && [ "$(readlink -f "$file")" = "$resolved" ]; then
      ln -sf "$(basename "$resolved")" "$out/system/$(basename "$file")"
    fi
  done
done </root/libraries.out
for lib in $(find "$out/system" -maxdepth 1 -type f -name '*.so*'); do
  pkg=$(dpkg -S "$(basename "$lib")" 2>/dev/null | grep -v 'diversion by' | awk -F: '/:/{print $1; exit}') || true
  [ -n "$pkg" ] || continue
  mkdir -p "$out/licenses/$pkg"
  cp -a "/usr/share/doc/$pkg/copyright" "$out/licenses/$pkg/copyright" 2>/dev/null || true
done
mkdir -p "$out/licenses/$LICENSE_PKG"
cp -a "/usr/share/doc/$LICENSE_PKG/copyright" "$out/licenses/$LICENSE_PKG/"

# Facts for the caller (labels, the profile).
dpkg-query -W -f '${Version}\n' "$LICENSE_PKG" >"$out.debversion"
cp /root/libraries.out "$out.system-libs"
