#!/usr/bin/env bash
# Real images on real hosts: every CloudNativePG-style server image of the
# bed (bed.sh up-cnpg) × every Debian host release (hosts.sh), each cell in
# a fresh chroot copy of the host with the static pgoci ($PGOCI_BIN) in it:
#   install   pgoci install --yes --service none --major N --ext … (archive_command set)
#   ext-NAME  CREATE EXTENSION with the image's psql as the service user
#   archive   pg_switch_wal() puts a file into /var/lib/pgoci/archive
#   rerun     the same install again reports "changed": false
# Prints a table (image × host: ok, or the first failing step and why) and
# writes $STATE/results.json. Exit 0 when every cell is ok, else 1.
#
#   PGOCI_BIN=/path/to/static/pgoci tests/matrix.sh [IMAGE...] [--hosts "bullseye trixie"]
#   IMAGE: pg13-bullseye pg15-bookworm pg17-trixie (default: all)
#   --report-only: print the table of the last run in $MATRIX_STATE again
# Env: MATRIX_STATE (default /tmp/pgoci-matrix), MATRIX_KEEP=1 keeps the
# host copies (else each is removed once judged), MATRIX_CA_WORKAROUND=1
# gives pgoci a CA bundle through SSL_CERT_FILE (a minbase host has no
# ca-certificates; without it pgoci cannot even build its HTTP client).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BED=$ROOT/tests/bed
STATE=${MATRIX_STATE:-/tmp/pgoci-matrix}
: "${PGOCI_BIN:?set PGOCI_BIN to the static pgoci binary}"
[ -x "$PGOCI_BIN" ] || { echo "PGOCI_BIN=$PGOCI_BIN is not executable" >&2; exit 2; }

hosts=(bullseye bookworm trixie)
images=()
report_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) read -r -a hosts <<<"$2"; shift 2 ;;
    --report-only) report_only=1; shift ;;
    *) images+=("$1"); shift ;;
  esac
done
[ "${#images[@]}" -gt 0 ] || images=(pg13-bullseye pg15-bookworm pg17-trixie)

log() { printf '[matrix] %s\n' "$*" >&2; }

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
if [ "$report_only" = 1 ]; then
  :
else
"$BED/hosts.sh" prepare "${hosts[@]}"
trap '"$BED/bed.sh" down "$STATE/bed" >/dev/null 2>&1 || true' EXIT
reg=$("$BED/bed.sh" up-cnpg "$STATE/bed" | sed -n 's/^REGISTRY=//p' | tail -n1)
# shellcheck disable=SC1091
. "$STATE/bed/env"

# The extensions each image is tested with (versions where the profile's
# default is another release's).
exts_of() {
  case "$1" in
    pg13-bullseye) echo "postgis@$POSTGIS_13_VERSION" ;;
    pg15-bookworm) echo "postgis" ;;
    pg17-trixie) echo "vector" ;;
    *) echo "unknown image $1" >&2; exit 2 ;;
  esac
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Kill what a cell left running (a server whose install or stop failed):
# only processes whose root is that cell's copy, by PID.
reap_cell() {
  local dir=$1 p root
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    if [ "$root" = "$dir" ]; then
      kill -9 "${p#/proc/}" 2>/dev/null || true
    fi
  done
}

CACHE=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}
# Unpacked once per run: the image's PostgreSQL dirs and extension modules.
unpack_image() {
  local layout=$1 dst=$2
  [ -d "$dst/rootfs" ] && return 0
  # umoci 0.4.7 cannot read zstd layers: let skopeo write a gzip copy first.
  if ! umoci unpack --image "$CACHE/layouts/$layout:latest" "$dst" >/dev/null 2>&1; then
    rm -rf "$dst" "$dst.gz"
    skopeo --insecure-policy copy --quiet --dest-compress --dest-compress-format gzip \
      "oci:$CACHE/layouts/$layout:latest" "oci:$dst.gz:latest"
    umoci unpack --image "$dst.gz:latest" "$dst" >/dev/null
    rm -rf "$dst.gz"
  fi
}
host_lacks() {
  local img=$1 major=$2 host=$3 dir=$4 e
  unpack_image "cnpg-$img" "$STATE/images/$img"
  rm -rf "$dir/root/lddcheck"; mkdir -p "$dir/root/lddcheck/ext"
  cp -a "$STATE/images/$img/rootfs/usr/lib/postgresql/$major" "$dir/root/lddcheck/pg"
  for e in $(ls "$CACHE/layouts" | sed -n "s/^cnpg-\(.*-$major-.*\)$/\1/p"); do
    unpack_image "cnpg-$e" "$STATE/images/$e"
    cp -a "$STATE/images/$e/rootfs/lib/." "$dir/root/lddcheck/ext/"
  done
  "$BED/hosts.sh" run --keep "$dir" "$host" -- /bin/sh -c \
    'for f in /root/lddcheck/pg/bin/* /root/lddcheck/pg/lib/*.so /root/lddcheck/ext/*.so; do ldd "$f" 2>&1; done' |
    sed -n -e 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' \
      -e "s/.*version \`\([^']*\)' not found.*/\1/p" | sort -u | tr '\n' ' '
  rm -rf "$dir/root/lddcheck"
}

rm -rf "$STATE/cells" "$STATE/images"
mkdir -p "$STATE/cells"
t_all=$SECONDS
for img in "${images[@]}"; do
  major=${img#pg}; major=${major%%-*}
  read -r -a exts <<<"$(exts_of "$img")"
  for host in "${hosts[@]}"; do
    cell=$STATE/cells/$img@$host
    dir=$cell/root
    mkdir -p "$cell"
    t0=$SECONDS
    log "$img on $host: --major $major ${exts[*]/#/--ext }"
    # The host copy, with pgoci, the profile and the cell script in it.
    "$BED/hosts.sh" run --keep "$dir" --bin "$PGOCI_BIN" "$host" -- true
    mkdir -p "$dir/etc/pgoci"
    cp "$STATE/bed/cnpg-profile.yaml" "$dir/etc/pgoci/cnpg-profile.yaml"
    install -m 0755 "$BED/matrix-cell.sh" "$dir/root/matrix-cell.sh"
    if [ "${MATRIX_CA_WORKAROUND:-0}" = 1 ]; then
      mkdir -p "$dir/etc/ssl"
      cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/pgoci-matrix-ca.pem"
    fi
    port=$(free_port)
    "$BED/hosts.sh" run --keep "$dir" "$host" -- /root/matrix-cell.sh /root/matrix "$major" "$port" \
      "$reg" /etc/pgoci/cnpg-profile.yaml "${exts[@]}" || true
    reap_cell "$dir"
    rm -rf "$cell/steps"
    cp -a "$dir/root/matrix" "$cell/steps"
    echo $((SECONDS - t0)) >"$cell/seconds"
    # What the host lacks that the image's server and extension modules need
    # (independent of pgoci: plain ldd on the host, for the report).
    host_lacks "$img" "$major" "$host" "$dir" >"$cell/missing-libs" || true
    [ "${MATRIX_KEEP:-0}" = 1 ] || rm -rf "$dir"
  done
done
log "all cells in $((SECONDS - t_all)) s"
fi

python3 - "$STATE" "${images[*]}" "${hosts[*]}" <<'EOF'
import json, os, re, sys
state, images, hosts = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def last_line(text):
    # A Rust panic ends with a "note: run with RUST_BACKTRACE" line: skip it.
    lines = [l.strip() for l in text.splitlines()
             if l.strip() and not l.startswith("note: run with")]
    return lines[-1] if lines else ""

def short(why):
    # Keep a table cell to one readable line: no digests, no undo note.
    why = re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1", why)
    why = why.replace("; every change of this run was undone", "")
    why = re.sub(r"/opt/pgoci/instances/[^ ]*/generations/[^/]*/", "<gen>/", why)
    return why[:160]

def judge(stepdir):
    if not os.path.isdir(stepdir):
        return [("setup", False, "the cell did not run")]
    out = []
    for base in sorted({f.rsplit(".", 1)[0] for f in os.listdir(stepdir)}):
        name = base.split("-", 1)[1]
        read = lambda ext: open(os.path.join(stepdir, f"{base}.{ext}"), errors="replace").read()
        rc, so, se = int(read("rc").strip() or 1), read("out"), read("err")
        doc = None
        if name.startswith("install") or name == "rerun":
            try:
                doc = json.loads(so)
            except ValueError:
                doc = None
        ok, why = rc == 0, ""
        if not ok:
            if doc and isinstance(doc.get("error"), dict):
                why = f"exit {rc} ({doc['error'].get('kind')}): {doc['error'].get('message')}"
            else:
                why = f"exit {rc}: {last_line(se) or last_line(so)}"
            if rc == 124:
                why = "timed out after 600 s"
        elif name == "rerun":
            if doc is None or doc.get("changed") is not False:
                ok, why = False, f"changed = {None if doc is None else doc.get('changed')!r}, want false"
        out.append((name, ok, why))
    if not out:
        out.append(("setup", False, "no steps recorded"))
    return out

def find_key(doc, key):
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        doc = list(doc.values())
    if isinstance(doc, list):
        for v in doc:
            found = find_key(v, key)
            if found is not None:
                return found
    return None

def loader_of(stepdir):
    # Whose glibc and loader the installed server runs on, as install said.
    for f in sorted(os.listdir(stepdir)):
        if f.endswith("-install.out"):
            try:
                return find_key(json.load(open(os.path.join(stepdir, f))), "loader") or "?"
            except ValueError:
                return "?"
    return "?"

results, table, lacks = {}, [], []
for img in images:
    row = [img]
    for h in hosts:
        cell = os.path.join(state, "cells", f"{img}@{h}")
        steps = judge(os.path.join(cell, "steps"))
        missing = ""
        if os.path.exists(os.path.join(cell, "missing-libs")):
            missing = open(os.path.join(cell, "missing-libs")).read().strip()
        secs = open(os.path.join(cell, "seconds")).read().strip() if os.path.exists(os.path.join(cell, "seconds")) else "?"
        fails = [s for s in steps if not s[1] and s[0] != "stop"]
        results[f"{img}@{h}"] = {"steps": [{"step": n, "ok": o, "reason": w} for n, o, w in steps],
                                 "host_lacks": missing, "seconds": secs}
        if fails:
            n, _, w = fails[0]
            cellv = f"FAIL {n}: {short(w)}"
            if n == "install" and any(s[0] == "install-server-alone" for s in steps):
                rest = [s for s in steps if s[0] not in ("install", "stop") and not s[1]]
                cellv += "; without extensions: " + (
                    "ok" if not rest else f"FAIL {rest[0][0]}: {short(rest[0][2])}")
            row.append(cellv)
        else:
            row.append(f"ok ({loader_of(os.path.join(cell, 'steps'))} glibc)")
        lacks.append(f"{img} on {h}: {missing or '-'}")
    table.append(row)
json.dump(results, open(os.path.join(state, "results.json"), "w"), indent=2)
print("| image \\ host | " + " | ".join(hosts) + " |")
print("|---" * (len(hosts) + 1) + "|")
for row in table:
    print("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
print("\nwhat ldd on the host finds missing for the image's server binaries and extension")
print("modules (the extension images' system/ dirs are not on ldd's path here):")
for l in lacks:
    print("  " + l)
bad = sum(1 for r in results.values() if any(not s["ok"] and s["step"] != "stop" for s in r["steps"]))
print(f"\n{len(results) - bad}/{len(results)} cells ok; details: {state}/results.json")
sys.exit(1 if bad else 0)
EOF
