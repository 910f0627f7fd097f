#!/usr/bin/env bash
# A fleet of Debian hosts reached over real SSH: each host a network
# namespace of its own with its own root file system (a copy of the cached
# debootstrap minbase host of hosts.sh plus openssh-server, python3 and
# sudo: SUITE+ssh, cached beside SUITE+locales), sshd listening on the
# namespace's own address, key-only authentication with a key made for the
# run. The controller (Ansible, ssh) runs in a namespace of the fleet's own
# that holds the other end of each host's veth pair:
#
#   controller netns pgoci-fleet-ID-ctl     hN   10.233.N.1/24
#        │ veth (created inside the namespaces, never in the machine's)
#   host netns pgoci-fleet-ID-hN            eth0 10.233.N.2/24, lo
#
# Nothing touches the machine's interfaces, addresses or routes; mounts
# happen only in private mount namespaces (unshare -m); everything `up`
# starts is stopped by PID by `down` (sshd, and every process left in one
# of the fleet's network namespaces: SSH sessions, PostgreSQL servers,
# ssh control masters), then the namespaces are deleted by name.
#
#   fleet.sh prepare [SUITE...]          build missing SUITE+ssh hosts (cached)
#   fleet.sh up STATE [SUITE...]         start the fleet (default: bullseye bookworm trixie);
#                                        host N is the Nth suite, named after it
#   fleet.sh down STATE                  stop and remove everything `up` made
#   fleet.sh ctl STATE -- CMD...         run CMD in the controller namespace
#   fleet.sh ssh STATE HOST CMD...       run CMD on HOST over SSH as the deploy user
#   fleet.sh tree STATE HOST [PATH...]   the host's tree, one line a path (type, mode,
#                                        owner, size, mtime, link target, sha256),
#                                        /proc /sys /dev /run /tmp and each PATH left
#                                        out (and the mtime of PATH's directory)
#   fleet.sh serve STATE PGOCI BUNDLE IP:PORT
#                                        `pgoci serve BUNDLE` on the controller's side at
#                                        IP:PORT (10.233.0.X), reachable from every host
#
# `up` writes STATE/inventory (Ansible INI, group `fleet`, user `deploy`
# with passwordless sudo, the run's key), STATE/ssh_config,
# STATE/known_hosts (the hosts' keys, made for the run), STATE/fleet.env
# and STATE/hosts/NAME/{root,sshd.pid,sshd.log,netns,addr}.
# Env: PGOCI_BED_CACHE (the cache, as hosts.sh), FLEET_KEEP=1 keeps the
# host copies at `down`.
set -euo pipefail

FLEET_DIR_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/bed/hosts.sh
. "$FLEET_DIR_SRC/hosts.sh"

flog() { printf '[fleet] %s\n' "$*" >&2; }
fdie() { printf '[fleet] ERROR: %s\n' "$*" >&2; exit 1; }

# --- the SUITE+ssh flavour, built by hosts.sh's build_derived ------------
# hosts.sh knows SUITE+locales; the ssh flavour is added here (so hosts.sh
# stays as it is): same cache, same stamp, same temp-dir-and-rename build.
FLAVOURS+=(ssh)
# Bump when the ssh recipe below changes: SUITE+ssh hosts are rebuilt.
FLEET_SSH_REV=2
eval "$(declare -f host_stamp | sed '1s/^host_stamp/hosts_host_stamp/')"
host_stamp() {
  case "$1" in
    *+ssh) echo "$(hosts_host_stamp "$1") ssh-rev=$FLEET_SSH_REV" ;;
    *) hosts_host_stamp "$1" ;;
  esac
}
eval "$(declare -f flavour_script | sed '1s/^flavour_script/hosts_flavour_script/')"
flavour_script() {
  case "$1" in
    ssh)
      # policy-rc.d: the package's postinst must not start an sshd in the
      # build chroot (it shares the machine's network namespace). Host keys
      # are made per run by `fleet.sh up`, not cached.
      cat <<'SH'
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
apt-get update -q
apt-get install -y -q --no-install-recommends openssh-server python3 sudo
rm -f /usr/sbin/policy-rc.d /etc/ssh/ssh_host_*
useradd --create-home --shell /bin/bash --user-group deploy
usermod -p '*' deploy   # no password, but not locked ("!"): sshd lets a key in
printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' >/etc/sudoers.d/deploy
chmod 0440 /etc/sudoers.d/deploy
install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
apt-get clean
rm -rf /var/lib/apt/lists/*
SH
      ;;
    *) hosts_flavour_script "$1" ;;
  esac
}

FLEET_SUITES=(bullseye bookworm trixie)

fleet_prepare() {
  local s hs=()
  [ $# -gt 0 ] || set -- "${FLEET_SUITES[@]}"
  for s in "$@"; do hs+=("$s+ssh"); done
  hosts_prepare "${hs[@]}"
}

need_tools() {
  local t missing=()
  for t in ip unshare chroot ssh ssh-keygen python3; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ "${#missing[@]}" -eq 0 ] || fdie "missing on this machine: ${missing[*]}"
}

# The namespaces' inode numbers (to find the processes inside them).
netns_inodes() {
  local n
  for n in "$@"; do
    [ -e "/run/netns/$n" ] && stat -L -c %i "/run/netns/$n"
  done
  return 0
}

# PIDs of processes whose network namespace is one of the given inodes, or
# whose root directory is one of the given host copies: only what the fleet
# started can be there.
fleet_pids() { # STATE
  local state=$1 inodes roots p ino root nss=()
  [ ! -f "$state/netns.list" ] || mapfile -t nss <"$state/netns.list"
  inodes=" $(netns_inodes "${nss[@]}" | tr '\n' ' ') "
  roots=" "
  for p in "$state"/hosts/*/root; do [ -d "$p" ] && roots+="$p "; done
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != "$$" ] || continue
    ino=$(stat -L -c %i "$p/ns/net" 2>/dev/null) || continue
    root=$(readlink "$p/root" 2>/dev/null) || root=
    if [[ "$inodes" == *" $ino "* ]] || { [ -n "$root" ] && [[ "$roots" == *" $root "* ]]; }; then
      echo "${p#/proc/}"
    fi
  done
}

fleet_down() {
  local state=$1 p pids i n
  [ -d "$state" ] || return 0
  state=$(cd "$state" && pwd)
  # sshd first (no new sessions), then whatever is left in the namespaces.
  for p in "$state"/hosts/*/sshd.pid; do
    if [ -f "$p" ]; then kill "$(cat "$p")" 2>/dev/null || true; fi
  done
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(fleet_pids "$state")
    [ -n "$pids" ] || break
    if [ "$i" -lt 8 ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
    else
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
    fi
    sleep 0.5
  done
  pids=$(fleet_pids "$state")
  [ -z "$pids" ] || flog "still alive after SIGKILL: $pids"
  if [ -f "$state/netns.list" ]; then
    while read -r n; do
      if [ -n "$n" ] && [ -e "/run/netns/$n" ]; then
        ip netns del "$n" || flog "ip netns del $n failed"
      fi
    done <"$state/netns.list"
    rm -f "$state/netns.list"
  fi
  rm -f "$state"/hosts/*/sshd.pid
  if [ "${FLEET_KEEP:-0}" != 1 ]; then
    for p in "$state"/hosts/*/root; do [ -d "$p" ] && rm -rf "$p"; done
  fi
  return 0
}

# The mounts a host's sshd (and every session under it) sees, in a private
# mount namespace (and its hostname, in a UTS namespace of its own), then
# sshd in the foreground. Run under `ip netns exec`.
# shellcheck disable=SC2016
HOST_INIT='
set -e
r=$1 name=$2; shift 2
hostname "$name"
mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys" 2>/dev/null || true
mount -t tmpfs -o mode=0755,size=64m tmpfs "$r/dev"
for d in null zero full random urandom tty; do
  touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mkdir -p "$r/run/lock" "$r/run/sshd"
chmod 1777 "$r/run/lock"
exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 "$@"
'

fleet_up() {
  local state=$1; shift
  [ $# -gt 0 ] || set -- "${FLEET_SUITES[@]}"
  [ "$#" -le 250 ] || fdie "too many hosts"
  need_tools
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  [ ! -f "$state/netns.list" ] || fdie "$state holds a fleet already (fleet.sh down $state)"
  fleet_prepare "$@"
  local id
  id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  local ctl=pgoci-fleet-$id-ctl
  rm -rf "$state/hosts" "$state/known_hosts" "$state/inventory"
  mkdir -p "$state/hosts"
  echo "$ctl" >"$state/netns.list"
  ip netns add "$ctl"
  ip -n "$ctl" link set lo up

  rm -f "$state/id_ed25519" "$state/id_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C "pgoci-fleet-$id" -f "$state/id_ed25519"
  cat >"$state/ssh_config" <<EOF
Host *
  User deploy
  IdentityFile $state/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $state/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  LogLevel ERROR
EOF
  : >"$state/known_hosts"
  {
    echo "# fleet $id: ansible-playbook -i $state/inventory ... (inside: fleet.sh ctl $state -- ...)"
    echo "[fleet]"
  } >"$state/inventory"

  local n=0 suite name ns dir addr pid t0=$SECONDS
  for suite in "$@"; do
    n=$((n + 1))
    name=$suite
    ns=pgoci-fleet-$id-h$n
    dir=$state/hosts/$name
    addr=10.233.$n.2
    mkdir -p "$dir"
    copy_host "$suite+ssh" "$dir/root"
    echo "$ns" >>"$state/netns.list"
    echo "$ns" >"$dir/netns"
    echo "$addr" >"$dir/addr"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # both ends made inside the namespaces: nothing appears in the machine's
    ip -n "$ctl" link add "h$n" type veth peer name eth0 netns "$ns"
    ip -n "$ctl" addr add "10.233.$n.1/24" dev "h$n"
    ip -n "$ctl" link set "h$n" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up

    # The host's identity for this run: hostname, /etc/hosts, host key,
    # the deploy user's authorized key.
    local r=$dir/root
    echo "$name" >"$r/etc/hostname"
    printf '127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$addr" "$name" >"$r/etc/hosts"
    ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$r/etc/ssh/ssh_host_ed25519_key"
    echo "$addr $(cut -d' ' -f1,2 "$r/etc/ssh/ssh_host_ed25519_key.pub")" >>"$state/known_hosts"
    install -m 0600 "$state/id_ed25519.pub" "$r/home/deploy/.ssh/authorized_keys"
    chroot "$r" chown deploy:deploy /home/deploy/.ssh/authorized_keys
    cat >"$r/etc/ssh/pgoci-fleet_sshd_config" <<EOF
ListenAddress $addr
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    # shellcheck disable=SC2086
    ip netns exec "$ns" unshare --mount --uts --propagation private -- /bin/bash -c "$HOST_INIT" host-init "$r" "$name" \
      /usr/sbin/sshd -D -e -f /etc/ssh/pgoci-fleet_sshd_config >"$dir/sshd.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/sshd.pid"
    printf '%s ansible_host=%s\n' "$name" "$addr" >>"$state/inventory"
  done
  cat >>"$state/inventory" <<EOF

[fleet:vars]
ansible_user=deploy
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file=$state/id_ed25519
ansible_ssh_common_args=-F $state/ssh_config
EOF
  {
    echo "FLEET_ID=$id"
    echo "FLEET_CTL_NETNS=$ctl"
    echo "FLEET_HOSTS=\"$*\""
  } >"$state/fleet.env"

  # Wait for every sshd to answer (a login, over the veth).
  local ok
  for name in "$@"; do
    ok=0
    for _ in $(seq 1 50); do
      if ! kill -0 "$(cat "$state/hosts/$name/sshd.pid")" 2>/dev/null; then
        cat "$state/hosts/$name/sshd.log" >&2
        fdie "sshd of $name exited"
      fi
      if ip netns exec "$ctl" ssh -F "$state/ssh_config" "$(cat "$state/hosts/$name/addr")" true 2>/dev/null; then
        ok=1; break
      fi
      sleep 0.2
    done
    [ "$ok" = 1 ] || { cat "$state/hosts/$name/sshd.log" >&2; fdie "no SSH login to $name"; }
  done
  flog "fleet $id up in $((SECONDS - t0)) s: $* (controller netns $ctl)"
}

fleet_addr() { # STATE HOST
  [ -f "$1/hosts/$2/addr" ] || fdie "no host $2 in $1"
  cat "$1/hosts/$2/addr"
}

fleet_ctl() { # STATE -- CMD...
  local state=$1; shift
  [ "${1:-}" = -- ] && shift
  # shellcheck disable=SC1091
  . "$state/fleet.env"
  ip netns exec "$FLEET_CTL_NETNS" "$@"
}

fleet_ssh() { # STATE HOST CMD...
  local state=$1 host=$2 addr; shift 2
  addr=$(fleet_addr "$state" "$host")
  local cmd
  printf -v cmd '%q ' "$@"
  fleet_ctl "$state" -- ssh -F "$state/ssh_config" "$addr" -- "$cmd"
}

# Serves BUNDLE with PGOCI (`pgoci serve`) in the controller namespace at
# IP:PORT, an address of 10.233.0.0/24 no host has: put on the controller
# namespace's loopback, with a route to it on every host through its veth,
# so one address (one profile) serves the whole fleet. `down` stops it
# with the namespace's other processes.
fleet_serve() { # STATE PGOCI BUNDLE IP:PORT
  local state=$1 pg=$2 bundle=$3 addr=$4 ip=${4%:*} h pid
  # shellcheck disable=SC1091
  . "$state/fleet.env"
  ip -n "$FLEET_CTL_NETNS" addr add "$ip/32" dev lo
  for h in "$state"/hosts/*/; do
    ip -n "$(cat "$h/netns")" route add "$ip/32" via "$(sed 's/\.2$/.1/' "$h/addr")"
  done
  ip netns exec "$FLEET_CTL_NETNS" "$pg" -q serve "$bundle" --listen "$addr" >"$state/serve.log" 2>&1 &
  pid=$!
  echo "$pid" >"$state/serve.pid"
  for _ in $(seq 100); do
    ip netns exec "$FLEET_CTL_NETNS" curl -fsS -o /dev/null "http://$addr/v2/" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$state/serve.log" >&2; fdie "pgoci serve exited"; }
    sleep 0.2
  done
  fdie "pgoci serve did not answer at $addr in 20 s"
}

fleet_tree() { # STATE HOST [PATH...]
  local r=$1/hosts/$2/root
  [ -d "$r" ] || fdie "no host $2 in $1"
  shift 2
  python3 - "$r" "$@" <<'EOF'
import hashlib, os, stat, sys
root, excluded = sys.argv[1], set(p.rstrip("/") for p in sys.argv[2:])
skip = {"/proc", "/sys", "/dev", "/run", "/tmp"} | excluded
# A directory holding an excluded path is listed without its mtime (making
# or removing the excluded entry changes it).
no_mtime = {os.path.dirname(p) for p in excluded}
lines = []
for dirpath, dirnames, filenames in os.walk(root):
    keep = []
    for name in sorted(dirnames + filenames):
        p = os.path.join(dirpath, name)
        rel = "/" + os.path.relpath(p, root)
        if rel in skip:
            continue
        st = os.lstat(p)
        kind = stat.S_IFMT(st.st_mode)
        extra = ""
        if stat.S_ISLNK(st.st_mode):
            extra = "-> " + os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            extra = h.hexdigest()
        elif stat.S_ISDIR(st.st_mode):
            keep.append(name)
        mtime = "-" if rel in no_mtime else st.st_mtime_ns
        size = "-" if stat.S_ISDIR(st.st_mode) else st.st_size
        lines.append(f"{rel} {kind:o} {stat.S_IMODE(st.st_mode):o} {st.st_uid}:{st.st_gid} {size} {mtime} {extra}")
    dirnames[:] = keep
lines.sort()
print("\n".join(lines))
EOF
}

fleet_main() {
  [ $# -ge 1 ] || { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
  [ "$(id -u)" -eq 0 ] || fdie "run as root (network namespaces, chroot)"
  local cmd=$1; shift
  case "$cmd" in
    prepare) fleet_prepare "$@" ;;
    up)
      [ $# -ge 1 ] || fdie "usage: fleet.sh up STATE [SUITE...]"
      # A fleet that did not come up is taken down again. fleet_up runs in
      # a process of its own: `set -e` is off in a function called before ||.
      "$FLEET_DIR_SRC/fleet.sh" up-now "$@" || {
        flog "up failed: taking down what it made"
        fleet_down "$1"
        exit 1
      }
      ;;
    up-now) fleet_up "$@" ;;
    down) [ $# -eq 1 ] || fdie "usage: fleet.sh down STATE"; fleet_down "$1" ;;
    ctl) [ $# -ge 2 ] || fdie "usage: fleet.sh ctl STATE -- CMD..."; fleet_ctl "$@" ;;
    ssh) [ $# -ge 3 ] || fdie "usage: fleet.sh ssh STATE HOST CMD..."; fleet_ssh "$@" ;;
    tree) [ $# -ge 2 ] || fdie "usage: fleet.sh tree STATE HOST [PATH...]"; fleet_tree "$@" ;;
    serve) [ $# -eq 4 ] || fdie "usage: fleet.sh serve STATE PGOCI BUNDLE IP:PORT"; fleet_serve "$@" ;;
    *) sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  fleet_main "$@"
fi
