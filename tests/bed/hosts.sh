#!/usr/bin/env bash
# Test hosts of other Debian releases: pristine `debootstrap --variant=minbase`
# root file systems cached outside the clone, and a throw-away chroot to run
# commands in one.
#
#   hosts.sh prepare [SUITE...]      build missing hosts (default: all)
#   hosts.sh path SUITE              print the cached rootfs of SUITE
#   hosts.sh run [--bin FILE]... [--keep DIR] [--mount IMG:DIR]... SUITE -- CMD...
#                                    run CMD in a throw-away copy of SUITE
#   hosts.sh glibc SUITE             print the glibc version ldd reports there
#
# Suites: bullseye (glibc 2.31), bookworm (2.36), trixie (2.41), and
# SUITE+locales: SUITE with the locales package, de_DE.UTF-8 and
# en_US.UTF-8 generated, and the release's PostgreSQL client (a psql for
# servers whose image has none); built from the pristine SUITE, cached too.
#
# `run` copies the host (cp --reflink=auto, hard links are not safe: the
# command may write into files) into a temp dir, then in a private mount
# namespace binds /proc, a minimal /dev, /sys read-only, tmpfs /tmp and /run,
# the host's resolv.conf, writes /etc/hosts (localhost) when the copy has
# none, and chroots. The network namespace is shared, so
# 127.0.0.1 services (the bed registry) are reachable. Each `--bin FILE` is
# copied to /usr/local/bin/ in the copy. `--keep DIR` keeps the copy in DIR
# (created if missing, reused if present) instead of deleting it: matrix.sh
# runs several steps in one host copy that way. Each `--mount IMG:DIR`
# loop-mounts the file system image IMG (a path outside the copy) at DIR
# inside it (created if missing), in the same private namespace, so it
# lives as long as the session and never shows outside it.
set -euo pipefail

HOSTS_DIR_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}
HOSTS=$CACHE/hosts
SUITES=(bullseye bookworm trixie)
# Bump when the host recipe changes: a host built with another revision is
# rebuilt.
HOSTS_REV=1
# Derived hosts (SUITE+FLAVOUR, see flavour_script): bump when a flavour's
# recipe changes.
HOSTS_FLAVOUR_REV=1
FLAVOURS=(locales)

hlog() { printf '[hosts] %s\n' "$*" >&2; }
hdie() { printf '[hosts] ERROR: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine's apt uses (deb822 or one-line format).
debian_mirror() {
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' |
    grep -v -- '-security' | head -n1) || true
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' |
      grep -v -- '-security' | head -n1) || true
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

known_suite() {
  local s f
  case "$1" in
    *+*)
      known_suite "${1%%+*}" || return 1
      for f in "${FLAVOURS[@]}"; do [ "$f" = "${1#*+}" ] && return 0; done
      return 1
      ;;
  esac
  for s in "${SUITES[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

# The stamp a built host carries (a derived one also names its recipe).
host_stamp() {
  case "$1" in
    *+*) echo "rev=$HOSTS_REV suite=$1 flavour-rev=$HOSTS_FLAVOUR_REV" ;;
    *) echo "rev=$HOSTS_REV suite=$1" ;;
  esac
}

host_ok() { [ -f "$HOSTS/$1/.pgoci-host" ] && [ "$(cat "$HOSTS/$1/.pgoci-host")" = "$(host_stamp "$1")" ]; }

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  hlog "apt-get install debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2 || {
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
  }
}

# Build SUITE into a temp dir and rename it into place: a killed build never
# leaves a half host behind (the next prepare removes the leftover temp dir).
build_host() {
  local suite=$1 mirror tmp
  host_ok "$suite" && return 0
  ensure_debootstrap
  mirror=$(debian_mirror)
  mkdir -p "$HOSTS"
  tmp=$HOSTS/.tmp-$suite
  rm -rf "$tmp"
  hlog "debootstrap --variant=minbase $suite from $mirror (a few minutes)"
  local t0=$SECONDS
  # debootstrap keeps its downloads in the target's apt cache; its own
  # mounts (proc, sys) are made in a private namespace so nothing leaks.
  unshare -m --propagation private \
    debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$HOSTS/.log-$suite" 2>&1 ||
    { tail -n 20 "$HOSTS/.log-$suite" >&2; hdie "debootstrap $suite failed (log: $HOSTS/.log-$suite)"; }
  # Pristine but small: drop the downloaded debs.
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  printf 'rev=%s suite=%s\n' "$HOSTS_REV" "$suite" >"$tmp/.pgoci-host"
  rm -rf "${HOSTS:?}/$suite"
  mv "$tmp" "$HOSTS/$suite"
  hlog "$suite ready in $((SECONDS - t0)) s ($(du -sh "$HOSTS/$suite" | cut -f1))"
}

# What runs (as root, /bin/sh -e, in a chroot of the copy) to turn a
# pristine SUITE into SUITE+FLAVOUR.
flavour_script() {
  case "$1" in
    locales)
      # de_DE.UTF-8 for collation tests (a libc collation with a version),
      # en_US.UTF-8 beside it; the release's psql (postgresql-client pulls
      # the suite's postgresql-client-N): /usr/lib/postgresql/N/bin/psql.
      cat <<'SH'
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends locales postgresql-client
localedef -i de_DE -c -f UTF-8 -A /usr/share/locale/locale.alias de_DE.UTF-8
localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
printf 'de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n' >>/etc/locale.gen
apt-get clean
rm -rf /var/lib/apt/lists/*
SH
      ;;
    *) return 1 ;;
  esac
}

# Build SUITE+FLAVOUR from a copy of the pristine SUITE (built first if
# missing), into a temp dir renamed into place like build_host.
build_derived() {
  local name=$1 base=${1%%+*} flavour=${1#*+} tmp script
  host_ok "$name" && return 0
  build_host "$base"
  script=$(flavour_script "$flavour") || hdie "unknown flavour $flavour"
  tmp=$HOSTS/.tmp-$name
  rm -rf "$tmp"
  hlog "building $name from $base"
  local t0=$SECONDS
  mkdir -p "$tmp"
  cp -a --reflink=auto "$HOSTS/$base/." "$tmp/"
  rm -f "$tmp/.pgoci-host"
  chroot_in "$tmp" /bin/sh -ec "$script" >"$HOSTS/.log-$name" 2>&1 ||
    { tail -n 20 "$HOSTS/.log-$name" >&2; hdie "building $name failed (log: $HOSTS/.log-$name)"; }
  # chroot_in's /etc/resolv.conf copy is the build machine's: not the host's.
  rm -f "$tmp/etc/resolv.conf"
  [ ! -e "$HOSTS/$base/etc/resolv.conf" ] || cp -a "$HOSTS/$base/etc/resolv.conf" "$tmp/etc/resolv.conf"
  host_stamp "$name" >"$tmp/.pgoci-host"
  rm -rf "${HOSTS:?}/$name"
  mv "$tmp" "$HOSTS/$name"
  hlog "$name ready in $((SECONDS - t0)) s ($(du -sh "$HOSTS/$name" | cut -f1))"
}

hosts_prepare() {
  local s
  [ $# -gt 0 ] || set -- "${SUITES[@]}"
  for s in "$@"; do
    known_suite "$s" || hdie "unknown suite $s (known: ${SUITES[*]}, SUITE+{${FLAVOURS[*]}})"
  done
  mkdir -p "$HOSTS"
  exec 7>"$HOSTS/.lock"
  flock 7
  for s in "$@"; do
    case "$s" in
      *+*) build_derived "$s" ;;
      *) build_host "$s" ;;
    esac
  done
}

# chroot_in ROOT CMD...: run CMD chrooted in ROOT inside a private mount
# namespace with /proc, a minimal /dev, tmpfs /tmp and /run. All mounts die
# with the namespace. HOSTS_EXTRA_MOUNTS (newline-separated IMG:DIR pairs,
# set by `run --mount`) adds loop mounts of file system images.
chroot_in() {
  local root=$1; shift
  # shellcheck disable=SC2016
  HOSTS_EXTRA_MOUNTS=${HOSTS_EXTRA_MOUNTS:-} unshare -m --propagation private -- /bin/bash -c '
    set -e
    r=$1; shift
    while IFS= read -r m; do
      [ -n "$m" ] || continue
      mkdir -p "$r${m#*:}"
      mount -o loop "${m%%:*}" "$r${m#*:}"
    done <<<"$HOSTS_EXTRA_MOUNTS"
    unset HOSTS_EXTRA_MOUNTS
    mount -t proc proc "$r/proc"
    mount -t sysfs -o ro sysfs "$r/sys" 2>/dev/null || true
    mount -t tmpfs -o mode=0755,size=64m tmpfs "$r/dev"
    for d in null zero full random urandom tty; do
      touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"
    done
    mkdir -p "$r/dev/pts" "$r/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
    ln -s /proc/self/fd "$r/dev/fd"
    ln -s /proc/self/fd/0 "$r/dev/stdin"
    ln -s /proc/self/fd/1 "$r/dev/stdout"
    ln -s /proc/self/fd/2 "$r/dev/stderr"
    mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
    mount -t tmpfs -o mode=0755 tmpfs "$r/run"
    mkdir -p "$r/run/lock"
    # What a container runtime or an installer gives every host: a
    # localhost entry (debootstrap writes no /etc/hosts).
    if [ ! -s "$r/etc/hosts" ]; then
      printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$r/etc/hosts"
    fi
    if [ -f /etc/resolv.conf ]; then
      cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    fi
    exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
  ' chroot_in "$root" "$@"
}

# copy_host SUITE DIR: a writable copy of the pristine host.
copy_host() {
  local suite=$1 dir=$2
  host_ok "$suite" || hdie "host $suite is not built (run: hosts.sh prepare $suite)"
  mkdir -p "$dir"
  cp -a --reflink=auto "$HOSTS/$suite/." "$dir/"
}

hosts_run() {
  local bins=() keep="" mounts="" m
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin) bins+=("$2"); shift 2 ;;
      --keep) keep=$2; shift 2 ;;
      --mount)
        m=$2; shift 2
        case "$m" in
          /*:/*) ;;
          *) hdie "--mount $m: want IMG:DIR, both absolute (IMG outside the copy, DIR inside it)" ;;
        esac
        [ -f "${m%%:*}" ] || hdie "--mount $m: no such image file"
        mounts+="$m"$'\n'
        ;;
      *) break ;;
    esac
  done
  [ $# -ge 3 ] && [ "$2" = -- ] || hdie "usage: hosts.sh run [--bin FILE]... [--keep DIR] [--mount IMG:DIR]... SUITE -- CMD..."
  local suite=$1; shift 2
  known_suite "$suite" || hdie "unknown suite $suite"
  local dir
  if [ -n "$keep" ]; then
    dir=$keep
    [ -f "$dir/.pgoci-host" ] || copy_host "$suite" "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/pgoci-host-$suite.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$dir'" EXIT
    copy_host "$suite" "$dir"
  fi
  local b
  for b in "${bins[@]}"; do
    [ -f "$b" ] || hdie "--bin $b: no such file"
    install -m 0755 "$b" "$dir/usr/local/bin/$(basename "$b")"
  done
  local rc=0
  HOSTS_EXTRA_MOUNTS=$mounts chroot_in "$dir" "$@" || rc=$?
  return "$rc"
}

hosts_glibc() {
  hosts_run "$1" -- ldd --version | head -n1 | awk '{print $NF}'
}

hosts_main() {
  [ $# -ge 1 ] || { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
  local cmd=$1; shift
  case "$cmd" in
    prepare) hosts_prepare "$@" ;;
    path) host_ok "$1" || hdie "host $1 is not built"; echo "$HOSTS/$1" ;;
    run) hosts_run "$@" ;;
    glibc) hosts_glibc "$1" ;;
    *) sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

# Sourced by other bed scripts for the functions; run as a command otherwise.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  hosts_main "$@"
fi
