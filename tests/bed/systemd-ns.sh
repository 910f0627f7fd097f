#!/usr/bin/env bash
# A real systemd, booted as PID 1 of a private PID + mount namespace, for
# testing pgoci's units under systemd on a machine whose own init is not
# systemd (containers, CI). Host paths pgoci writes (/opt/pgoci,
# /var/lib/pgoci, /etc/systemd/system, /run, /tmp, …) are tmpfs inside the
# namespace, and every unit of the host's boot targets is masked there, so
# nothing but the unit under test runs and nothing reaches the host.
#
#   systemd-ns.sh boot LOG [KEEP…]  boots it; prints its host PID on stdout.
#                               KEEP dirs stay visible inside even when they
#                               lie under a path made tmpfs there (a clone
#                               or target dir under /tmp)
#   systemd-ns.sh run PID CMD…  runs CMD inside the namespace
#   systemd-ns.sh halt PID      ends the namespace (all its processes)
set -euo pipefail

case "${1:-}" in
  boot)
    log=$2
    shift 2
    keep=$(IFS=:; echo "$*")
    inner=$(mktemp)
    cat >"$inner" <<'INNER'
#!/bin/bash
set -e
# The host's units and early-boot services must not run here: they would act
# on the shared filesystem and kernel (tmpfiles empties /tmp, sysctl, sysusers,
# binfmt, swap…). Collect every unit the boot targets pull in, before
# /etc/systemd/system is hidden, and mask each in the private copy.
masks=$(
  for t in sysinit basic sockets timers paths local-fs multi-user graphical; do
    ls /lib/systemd/system/$t.target.wants /etc/systemd/system/$t.target.wants 2>/dev/null
  done | grep -v ':$' | sort -u
)
# Directories to keep visible: held open now, bound back after the tmpfs
# mounts (nothing is created on the host's file system for it).
keep_fds=()
IFS=: read -r -a keep <<<"${PGOCI_NS_KEEP:-}"
for k in "${keep[@]}"; do
  [ -d "$k" ] || continue
  exec {fd}<"$k"
  keep_fds+=("$fd:$k")
done
for d in /run /tmp /var/tmp /etc/systemd/system /opt/pgoci /var/lib/pgoci /var/log/pgoci /var/cache/pgoci; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp
for entry in "${keep_fds[@]}"; do
  k=${entry#*:}
  [ -d "$k" ] && continue
  mkdir -p "$k"
  mount --no-canonicalize --bind "/proc/self/fd/${entry%%:*}" "$k"
done
for unit in $masks local-fs.target swap.target tmp.mount cryptsetup.target systemd-journald.service \
  systemd-journald.socket systemd-journald-dev-log.socket systemd-udevd.service; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
# A target with no dependencies: boot nothing of the host's but systemd itself.
cat >/etc/systemd/system/pgoci-test.target <<'UNIT'
[Unit]
Description=pgoci test boot
DefaultDependencies=no
UNIT
exec /lib/systemd/systemd --system --unit=pgoci-test.target --log-target=console --log-level=notice --log-color=no
INNER
    chmod +x "$inner"
    setsid unshare --fork --pid --mount --mount-proc --propagation private \
      env container=pgoci-test PGOCI_NS_KEEP="$keep" "$inner" >"$log" 2>&1 </dev/null &
    unshare_pid=$!
    for _ in $(seq 1 100); do
      pid=$(pgrep -P "$unshare_pid" -f 'systemd --system' || true)
      if [ -n "$pid" ] && nsenter -t "$pid" -m -p systemctl is-system-running >/dev/null 2>&1; then
        rm -f "$inner"
        echo "$pid"
        exit 0
      fi
      sleep 0.1
    done
    echo "systemd did not come up in the namespace; log:" >&2
    cat "$log" >&2
    exit 1
    ;;
  run)
    pid=$2
    shift 2
    exec nsenter -t "$pid" -m -p -- "$@"
    ;;
  halt)
    kill -9 "$2" 2>/dev/null || true
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
