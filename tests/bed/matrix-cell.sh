#!/bin/bash
# One cell of tests/matrix.sh, run INSIDE a host chroot (hosts.sh run) in a
# single session, so the server pgoci starts (its sockets in the chroot's
# tmpfs /run or /tmp) stays reachable for the later steps.
#
#   matrix-cell.sh OUT MAJOR PORT REGISTRY PROFILE [EXT[@VERSION]...]
#
# Writes OUT/<n>-<step>.{rc,out,err} for every step it ran; the caller
# (matrix.sh, outside the chroot, where python is) judges them. Steps:
# host-refused (--libraries host: exit 6, the host's tree unchanged), install, ext-<name> (CREATE EXTENSION with the image's psql as the service
# user), data (a time zone, an ICU collation), archive (pg_switch_wal, wait for a file), rerun (install --json
# again; the caller wants "changed": false), stop. When install with the
# extensions fails, install-server-alone tries without them and the later
# steps run against that (so one failure does not hide the next).
set -u
out=$1 major=$2 port=$3 reg=$4 profile=$5
shift 5
exts=("$@")
mkdir -p "$out"
n=0
step() { # step NAME CMD...
  local name=$1; shift
  n=$((n + 1))
  local f
  f=$out/$(printf '%02d' "$n")-$name
  if declare -F "$1" >/dev/null; then
    "$@" >"$f.out" 2>"$f.err" # a function here: it bounds its own time
  else
    timeout 600 "$@" >"$f.out" 2>"$f.err"
  fi
  echo $? >"$f.rc"
  return "$(cat "$f.rc")"
}

# matrix.sh MATRIX_CA_WORKAROUND=1 puts a CA bundle here: a minbase host has
# no ca-certificates, and pgoci's TLS client wants at least one system CA.
if [ -f /etc/ssl/pgoci-matrix-ca.pem ]; then
  export SSL_CERT_FILE=/etc/ssl/pgoci-matrix-ca.pem
fi

inst=pg$major
data=/var/lib/pgoci/$inst/data
bin=/opt/pgoci/instances/$inst/current/bin
mkdir -p /var/lib/pgoci/archive
chmod 1777 /var/lib/pgoci/archive

args=(--json --profile "$profile" --insecure-registry "$reg" install --yes --service none
  --major "$major" --port "$port"
  --set archive_mode=on --set "archive_command=cp %p /var/lib/pgoci/archive/%f")
for e in "${exts[@]}"; do args+=(--ext "$e"); done

# --libraries host first: a bare minbase host has none of the server's
# libraries (libpq, ICU, libxml2, ...), so pgoci must refuse with exit 6,
# naming them, before it changes the host: every path (type, mode, owner,
# size; mtime and content for files) is the same before and after, apart
# from pgoci's download cache (/var/cache/pgoci: verified blobs, kept for
# the next run as apt keeps .debs). Directory mtimes are left out: the
# check's unpack creates /opt/pgoci and the undo removes it again.
tree_list() {
  local prune=(\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp
    -o -path /root/matrix -o -path /var/cache/pgoci \) -prune)
  {
    find / -xdev "${prune[@]}" -o -type d -printf '%p %y %m %U %G\n'
    find / -xdev "${prune[@]}" -o ! -type d -printf '%p %y %m %U %G %s %T@ %l\n'
    find /etc /opt /var /usr/local -xdev "${prune[@]}" -o -type f -exec sha256sum {} + 2>/dev/null
  } | LC_ALL=C sort
}
host_refused() {
  local before after rc
  tree_list >/tmp/matrix-tree.before
  timeout 600 pgoci "${args[@]}" --libraries host
  rc=$?
  tree_list >/tmp/matrix-tree.after
  before=$(sha256sum </tmp/matrix-tree.before | cut -c1-16)
  after=$(sha256sum </tmp/matrix-tree.after | cut -c1-16)
  echo "exit $rc; tree hash $before -> $after" >&2
  [ "$rc" = 6 ] || { echo "--libraries host: exit $rc, want 6" >&2; return 1; }
  if [ "$before" != "$after" ]; then
    diff /tmp/matrix-tree.before /tmp/matrix-tree.after | head -n 20 >&2
    echo "--libraries host changed the host's tree" >&2
    return 1
  fi
  rm -f /tmp/matrix-tree.before /tmp/matrix-tree.after
}
step host-refused host_refused

if ! step install pgoci "${args[@]}"; then
  # Is it the extensions? Try the server alone, and test what is left with it.
  [ "${#exts[@]}" -gt 0 ] || exit 0
  args=(--json --profile "$profile" --insecure-registry "$reg" install --yes --service none
    --major "$major" --port "$port"
    --set archive_mode=on --set "archive_command=cp %p /var/lib/pgoci/archive/%f")
  step install-server-alone pgoci "${args[@]}" || exit 0
  exts=()
fi

# The generation's bin dir: bin/ for a tree image, the image's own
# /usr/lib/postgresql/N/bin for a rootfs one.
for b in /opt/pgoci/instances/$inst/current/bin /opt/pgoci/instances/$inst/current/usr/lib/postgresql/$major/bin; do
  if [ -x "$b/pg_ctl" ]; then bin=$b; break; fi
done

# The socket directory pgoci configured (first of the list), else TCP.
sock=$(sed -n "s/^[[:space:]]*unix_socket_directories[[:space:]]*=[[:space:]]*'\([^',]*\).*/\1/p" \
  "$data/pgoci.conf" 2>/dev/null | tail -n1)
host=${sock:-127.0.0.1}
psql() {
  # The image's psql needs what pgoci placed for the server (lib/pgoci-deps).
  local deps
  deps=$(echo /opt/pgoci/instances/*/current/lib/pgoci-deps)
  [ -d "$deps" ] || deps=
  timeout 120 runuser -u postgres -- env ${deps:+LD_LIBRARY_PATH=$deps} \
    "$bin/psql" -X -v ON_ERROR_STOP=1 -h "$host" -p "$port" -d postgres "$@"
}

for e in "${exts[@]}"; do
  name=${e%@*}
  step "ext-$name" psql -c "CREATE EXTENSION IF NOT EXISTS \"$name\" CASCADE" \
    -c "SELECT extname, extversion FROM pg_extension WHERE extname = '$name'"
done

# Data the server finds outside its own files: the host's time zone files
# (Debian builds PostgreSQL --with-system-tzdata) and ICU's collation data
# (libicudata, from the image where the host lacks ICU).
data_check() {
  local out
  out=$(psql -At -c "SELECT ('2026-07-01 12:00+00'::timestamptz AT TIME ZONE 'Europe/Berlin')::text" \
    -c "SELECT 'a' < 'B' COLLATE \"und-x-icu\", 'a' < 'B' COLLATE \"C\"") || return 1
  echo "$out"
  [ "$out" = "2026-07-01 14:00:00
t|f" ] || { echo "want 2026-07-01 14:00:00 (Europe/Berlin) and t|f (ICU vs C order), got: $out" >&2; return 1; }
}
step data data_check

archive_check() {
  psql -c "CREATE TABLE IF NOT EXISTS matrix_t AS SELECT g FROM generate_series(1, 1000) g" \
    -c "SELECT pg_switch_wal()" || return 1
  local i
  for i in $(seq 1 60); do
    if ls /var/lib/pgoci/archive | grep -qv '\.history$'; then
      ls -l /var/lib/pgoci/archive
      return 0
    fi
    sleep 0.5
  done
  echo "no WAL file in /var/lib/pgoci/archive after 30 s" >&2
  psql -c "SELECT archived_count, failed_count, last_failed_wal FROM pg_stat_archiver" >&2 || true
  return 1
}
step archive archive_check

step rerun pgoci "${args[@]}"

step stop runuser -u postgres -- "$bin/pg_ctl" -D "$data" stop -m fast -w
exit 0
