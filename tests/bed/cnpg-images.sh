# shellcheck shell=bash
# CloudNativePG-style images for the test bed, sourced by bed.sh (uses its
# log/die/stamp_*/add_index_with_attestation/upstream_version/control_default_version
# and LAY/CACHE) and by nothing else.
#
# Server images are built like cloudnative-pg/postgres-containers builds
# its "minimal" target: a Debian slim base, the release's PostgreSQL
# packages installed with apt (create_main_cluster = false), then apt lists,
# caches, logs and docs removed. Here the base is the debootstrap host of
# hosts.sh and the packages are Debian's own (not PGDG):
#   layer 1  the host root file system             (GNU tar, umoci raw add-layer)
#   layer 2  apt-get install postgresql-N …         (umoci repack of the chroot)
#   layer 3  whiteouts: apt lists, caches, logs,
#            docs, the build's policy-rc.d          (GNU tar, hand-made .wh. files)
# then skopeo copies the layout (the trixie image recompressed to zstd, so
# pgoci sees a second writer's layer bytes), and an OCI index with a
# BuildKit-style attestation manifest is added (ref `index`).
#
# Extension images follow cloudnative-pg/postgres-extensions-containers
# (see cnpg-gather.sh), built from the same builder root before layer 3.
# An extension the release does not carry (pgvector on bookworm) is built
# as a local backport first: the Debian source package of a later release,
# compiled for the suite's PostgreSQL with Debian's own packaging
# (pg_buildext) in a throw-away copy of the host, and its .deb installed by
# the gather step like any other package (cnpg_ext_backport).

# 3: pgvector-15-bookworm added (the bookworm suite's extension set changed).
CNPG_REV=3
HOSTS_SH=$BED_DIR/hosts.sh
# shellcheck source=tests/bed/hosts.sh
. "$HOSTS_SH"

# name suite major
CNPG_SERVERS=("pg13-bullseye bullseye 13" "pg15-bookworm bookworm 15" "pg17-trixie trixie 17")

# layout suite major PKGS|LIBS|SHARE|BITCODE|EXTRA|LICENSE_PKG|sqlname
cnpg_ext_spec() {
  case "$1" in
    postgis-15-bookworm)
      echo "bookworm|15|postgresql-15-postgis-3 postgresql-15-postgis-3-scripts|address_standardizer* postgis*|address_standardizer* postgis*|full|/usr/share/postgresql/15/contrib/postgis*:share/contrib/ /usr/share/gdal/*:share/gdal/ /usr/share/proj/*:share/proj/|postgresql-15-postgis-3|postgis" ;;
    pgvector-17-trixie)
      echo "trixie|17|postgresql-17-pgvector|vector*|vector*|vector*||postgresql-17-pgvector|vector" ;;
    # Neither bookworm nor bookworm-backports has pgvector: the package is
    # trixie's source built for 15 (cnpg_ext_backport), installed from its
    # .deb. The upgrade test (tests/upgrade.sh) takes a vector column from
    # it to trixie's 17.
    pgvector-15-bookworm)
      echo "bookworm|15|/root/debs/postgresql-15-pgvector_*.deb|vector*|vector*|vector*||postgresql-15-pgvector|vector" ;;
    postgis-13-bullseye)
      echo "bullseye|13|postgresql-13-postgis-3 postgresql-13-postgis-3-scripts|address_standardizer* postgis*|address_standardizer* postgis*|full|/usr/share/postgresql/13/contrib/postgis*:share/contrib/ /usr/share/gdal/*:share/gdal/ /usr/share/proj/*:share/proj/|postgresql-13-postgis-3|postgis" ;;
    *) return 1 ;;
  esac
}
CNPG_EXTS=(postgis-13-bullseye postgis-15-bookworm pgvector-15-bookworm pgvector-17-trixie)

# EXT -> "SOURCE_PACKAGE FROM_SUITE" for extensions built as a local
# backport (the suite has no binary package of them).
cnpg_ext_backport() {
  case "$1" in
    pgvector-15-bookworm) echo "pgvector trixie" ;;
    *) return 1 ;;
  esac
}

# cnpg_backport SUITE SOURCE FROM OUT: the binary packages of Debian source
# package SOURCE as release FROM has it, built for SUITE's PostgreSQL
# (pg_buildext updatecontrol: a postgresql-N-* package for each server-dev
# the suite has) in a throw-away copy of the SUITE host, into OUT (no
# -dbgsym). apt-get source and the build dependencies come from the mirror.
cnpg_backport() {
  local suite=$1 src=$2 from=$3 out=$4 b
  b=$(dirname "$out")/backport-$src
  rm -rf "$b" "$out"
  log "cnpg: building $src from $from's source for $suite (local backport)"
  copy_host "$suite" "$b"
  chroot_in "$b" /bin/bash -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive DEB_BUILD_OPTIONS=nocheck
    echo 'deb-src $(debian_mirror) $from main' >/etc/apt/sources.list.d/pgoci-backport-src.list
    apt-get update -q
    apt-get install -y -q --no-install-recommends dpkg-dev build-essential debhelper postgresql-server-dev-all
    mkdir -p /root/bp && cd /root/bp
    apt-get source -q $src
    cd \$(find . -mindepth 1 -maxdepth 1 -type d | head -n1)
    pg_buildext updatecontrol
    dpkg-buildpackage -b -uc -us -d
  " >"$b.log" 2>&1 || { tail -n 30 "$b.log" >&2; die "cnpg: building $src for $suite failed (log: $b.log)"; }
  mkdir -p "$out"
  cp "$b"/root/bp/*.deb "$out/"
  rm -f "$out"/*-dbgsym_*.deb
  rm -rf "$b"
  ls "$out"/*.deb >/dev/null 2>&1 || die "cnpg: building $src for $suite made no .deb"
}

cnpg_exts_of() {
  local e
  for e in "${CNPG_EXTS[@]}"; do
    [ "$(cnpg_ext_spec "$e" | cut -d'|' -f1)" = "$1" ] && echo "$e"
  done
  return 0
}

cnpg_key() { echo "rev=$BED_REV;cnpg=$CNPG_REV;host=$(cat "$HOSTS/$1/.pgoci-host" | tr ' ' ,)"; }

# Build the server image of SUITE/MAJOR (layout cnpg-NAME) and the extension
# images of that suite (layouts cnpg-EXT).
cnpg_build_suite() {
  local name=$1 suite=$2 major=$3
  local w=$CACHE/work-cnpg/$suite key
  key=$(cnpg_key "$suite")
  local need=0 e
  stamp_ok "cnpg-$name" "$key" || need=1
  for e in $(cnpg_exts_of "$suite"); do stamp_ok "cnpg-$e" "$key" || need=1; done
  [ "$need" -eq 1 ] || return 0
  local t0=$SECONDS
  log "cnpg: building $name (+ $(cnpg_exts_of "$suite" | tr '\n' ' '))"
  rm -rf "$w"; mkdir -p "$w"

  # layer 1: the host root file system, by GNU tar (no device nodes: /dev
  # is the runtime's business, as in Docker's debian images).
  tar --numeric-owner --sort=name -C "$HOSTS/$suite" \
    --exclude=./.pgoci-host --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$w/l1.tar" .
  umoci init --layout "$w/img"
  umoci new --image "$w/img:latest"
  umoci raw add-layer --image "$w/img:latest" \
    --history.created_by "debootstrap --variant=minbase $suite (GNU tar)" "$w/l1.tar"
  rm -f "$w/l1.tar"

  # layer 2: the PostgreSQL packages, installed in a chroot of the unpacked
  # image; umoci repack writes the difference.
  umoci unpack --image "$w/img:latest" "$w/bundle" >/dev/null
  local r=$w/bundle/rootfs
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 0755 "$r/usr/sbin/policy-rc.d"
  chroot_in "$r" /bin/bash -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql-common
    sed -ri 's/#(create_main_cluster) .*\$/\1 = false/' /etc/postgresql-common/createcluster.conf
    apt-get install -y -q --no-install-recommends libsasl2-modules libldap-common postgresql-$major
    # the downloaded debs would only bloat this layer; the lists stay (the
    # next layer whites them out, as CNPG's rm -rf does)
    apt-get clean
  " >"$w/apt-server.log" 2>&1 || { tail -n 30 "$w/apt-server.log" >&2; die "cnpg: apt-get install postgresql-$major in $suite failed"; }
  local debver
  debver=$(chroot "$r" dpkg-query -W -f '${Version}' "postgresql-$major")
  umoci repack --image "$w/img:latest" \
    --history.created_by "apt-get install postgresql-$major (umoci repack)" "$w/bundle"

  # layer 3: whiteouts, by GNU tar (opaque dirs + one plain whiteout).
  local l3=$w/l3 d
  mkdir -p "$l3/usr/sbin"
  for d in var/lib/apt/lists var/cache var/log usr/share/doc; do
    mkdir -p "$l3/$d"; : >"$l3/$d/.wh..wh..opq"
  done
  : >"$l3/usr/sbin/.wh.policy-rc.d"
  tar --numeric-owner --owner=0 --group=0 --sort=name -C "$l3" -cf "$w/l3.tar" .
  umoci raw add-layer --image "$w/img:latest" \
    --history.created_by "rm -rf /var/lib/apt/lists/* /var/cache/* /var/log/* /usr/share/doc/* (GNU tar whiteouts)" "$w/l3.tar"
  rm -rf "$l3" "$w/l3.tar"
  local ver
  ver=$(upstream_version "$debver")
  umoci config --image "$w/img:latest" --os linux --architecture amd64 \
    --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/$major/bin" \
    --config.label "org.opencontainers.image.version=$ver" \
    --config.label "io.pgoci.testbed.debian-version=$debver" \
    --config.label "io.pgoci.testbed.suite=$suite"
  umoci gc --layout "$w/img"

  # second writer: skopeo rewrites the layout (zstd layers for trixie).
  local tmp=$LAY/.tmp-cnpg-$name comp=()
  [ "$suite" = trixie ] && comp=(--dest-compress --dest-compress-format zstd)
  rm -rf "$tmp"
  skopeo --insecure-policy copy --quiet "${comp[@]}" "oci:$w/img:latest" "oci:$tmp:latest" >&2
  add_index_with_attestation "$tmp" latest index
  printf '%s\n' "$ver" >"$tmp/pgoci-version"
  rm -rf "${LAY:?}/cnpg-$name"; mv "$tmp" "$LAY/cnpg-$name"
  stamp_set "cnpg-$name" "$key"

  # extension images from the builder root (still has its apt lists).
  install -m 0755 "$BED_DIR/cnpg-gather.sh" "$r/root/cnpg-gather.sh"
  local spec pkgs libs share bitcode extra lic sqlname bp
  for e in $(cnpg_exts_of "$suite"); do
    spec=$(cnpg_ext_spec "$e")
    IFS='|' read -r _ _ pkgs libs share bitcode extra lic sqlname <<<"$spec"
    if bp=$(cnpg_ext_backport "$e"); then
      # shellcheck disable=SC2086
      cnpg_backport "$suite" $bp "$w/debs-$e"
      mkdir -p "$r/root/debs"
      cp "$w/debs-$e"/*.deb "$r/root/debs/"
    fi
    log "cnpg: gathering $e"
    chroot_in "$r" /usr/bin/env PKGS="$pkgs" LIBS="$libs" SHARE="$share" BITCODE="$bitcode" \
      EXTRA="$extra" LICENSE_PKG="$lic" /bin/bash /root/cnpg-gather.sh "$major" "/root/out-$e" \
      >"$w/gather-$e.log" 2>&1 || { tail -n 30 "$w/gather-$e.log" >&2; die "cnpg: gathering $e failed"; }
    local extver sqlver
    extver=$(upstream_version "$(cat "$r/root/out-$e.debversion")")
    extver=${extver%%+*}
    # Debian's postgis.control is an absolute symlink into /etc/alternatives
    # (kept so in the image): read it through the builder root.
    sqlver=$(control_default_version "$r$(chroot "$r" readlink -f "/root/out-$e/share/extension/$sqlname.control")")
    cnpg_ext_layout "cnpg-$e" "$r/root/out-$e" \
      io.cloudnativepg.image.base.pgmajor="$major" \
      "io.cloudnativepg.image.sql.version=$sqlver" \
      "org.opencontainers.image.version=$extver"
    printf '%s\n' "$extver" >"$LAY/cnpg-$e/pgoci-version"
    cp "$r/root/out-$e.system-libs" "$LAY/cnpg-$e/pgoci-system-libs"
    stamp_set "cnpg-$e" "$key"
  done
  rm -rf "$w"
  log "cnpg: $name done in $((SECONDS - t0)) s"
}

# An extension layout, one layer per top-level directory as the Dockerfile's
# COPY steps make (licenses, lib, share, system), written by umoci repack.
# Symlinks are kept exactly as the packages have them.
cnpg_ext_layout() {
  local name=$1 src=$2; shift 2
  local tmp=$LAY/.tmp-$name part
  chown -hR 0:0 "$src"
  rm -rf "$tmp" "$tmp.bundle"
  umoci init --layout "$tmp"
  umoci new --image "$tmp:latest"
  umoci unpack --image "$tmp:latest" "$tmp.bundle" >/dev/null
  for part in licenses lib share system; do
    [ -d "$src/$part" ] || continue
    [ "$part" = system ] && [ -z "$(ls -A "$src/system")" ] && continue
    cp -a "$src/$part" "$tmp.bundle/rootfs/"
    umoci repack --image "$tmp:latest" --history.created_by "COPY /$part" "$tmp.bundle"
  done
  rm -rf "$tmp.bundle"
  local args=(--os linux --architecture amd64) kv
  for kv in "$@"; do args+=(--config.label "$kv"); done
  umoci config --image "$tmp:latest" "${args[@]}"
  umoci gc --layout "$tmp"
  rm -rf "${LAY:?}/$name"
  mv "$tmp" "$LAY/$name"
}

cnpg_prepare() {
  ensure_tools
  local t0=$SECONDS s
  local suites=()
  for s in "${CNPG_SERVERS[@]}"; do suites+=("$(echo "$s" | cut -d' ' -f2)"); done
  hosts_prepare "${suites[@]}"
  # a failed or killed earlier build leaves its builder roots here (GBs)
  rm -rf "$CACHE/work-cnpg"
  mkdir -p "$LAY"
  for s in "${CNPG_SERVERS[@]}"; do
    # shellcheck disable=SC2086
    cnpg_build_suite $s
  done
  log "cnpg layouts ready in $((SECONDS - t0)) s"
}

# cnpg_up STATE_DIR: registry (bed.sh start_registry), push, env + profile.
cnpg_up() {
  local state=$1
  mkdir -p "$state"; state=$(cd "$state" && pwd)
  (with_lock "$CACHE/.lock-cnpg" cnpg_prepare)
  exec 8>"$state/.lock"
  flock 8
  start_registry "$state"
  local reg=127.0.0.1:$(cat "$state/registry.port") s name suite major
  local sed_args=(-e "s|@REGISTRY@|$reg|g") env="REGISTRY=$reg"
  for s in "${CNPG_SERVERS[@]}"; do
    read -r name suite major <<<"$s"
    push "$state" "$reg" "cnpg-$name" index "cnpg/postgresql:$major-minimal-$suite" --all
    env+=$'\n'"CNPG_PG${major}_VERSION=$(cat "$LAY/cnpg-$name/pgoci-version")"
  done
  local e v var
  for e in "${CNPG_EXTS[@]}"; do
    v=$(cat "$LAY/cnpg-$e/pgoci-version")
    # pgvector-17-trixie -> cnpg/pgvector:0.8.0-17-trixie
    push "$state" "$reg" "cnpg-$e" latest "cnpg/${e%%-*}:$v-${e#*-}"
    var=$(echo "${e%-*}" | tr 'a-z-' 'A-Z_')_VERSION
    sed_args+=(-e "s|@$var@|$v|g")
    env+=$'\n'"$var=$v"
  done
  printf '%s\n' "$env" >"$state/env.tmp"; mv "$state/env.tmp" "$state/env"
  sed "${sed_args[@]}" "$BED_DIR/cnpg-profile.yaml.in" >"$state/cnpg-profile.yaml.tmp"
  mv "$state/cnpg-profile.yaml.tmp" "$state/cnpg-profile.yaml"
  echo "REGISTRY=$reg"
}
