#!/bin/bash
# One scenario of tests/upgrade.sh, run INSIDE a host chroot (hosts.sh run)
# in a single session, so the servers pgoci starts (sockets in the chroot's
# tmpfs /run) stay reachable for every later step.
#
#   upgrade-cell.sh major OUT REGISTRY PORT PORT2 PROFILE
#   upgrade-cell.sh collation OUT REGISTRY PORT HOST17_PROFILE CNPG_PROFILE
#
# Writes OUT/<nn>-<step>.{rc,out,err,want,secs} for every step it ran;
# tests/upgrade.sh (outside, where python is) judges them. `.want` holds
# what the step must show, one item a line:
#   rc=N             the exit code (rc=N|M: either)
#   rc=signal        killed by a signal (a crash point: SIGABRT, exit 134)
#   has=TEXT         stdout or stderr contains TEXT (case-insensitive)
#   json:PATH=VALUE  stdout is one JSON document whose PATH (a.b.c) is VALUE
#                    (compared as JSON: true, 17, "copy" or copy)
#   keys:PATH=K,K    the object at PATH has these keys
#   ext:NAME         the major_upgrade.extensions list names extension NAME
# A check written here in shell (a function) fails with rc 1 and says why
# on stderr. After a step whose rc is not the wanted one, the scenario goes
# on only where the rest still means something.
#
# major (scenario A, /var/lib/pgoci on a loop-mounted reflink XFS):
# PostgreSQL 15 + postgis + vector (cnpg bookworm image) upgraded to 17
# (trixie image) with --major 17 --ext vector: refused while PostGIS is in
# use (exit 6, tree unchanged, --check too), then copy, rollback, the
# default method (clone here), every crash point (PGOCI_CRASH_AT with
# /usr/local/bin/pgoci-failpoints, then the same command again), finalize;
# a second instance for --method link (rollback refused once 17 started).
# collation (scenario B, bookworm+locales host): 17 on the host's glibc
# 2.36 (the npm tree) with de_DE.UTF-8, upgraded to trixie's 17 on its own
# glibc 2.41: gated (exit 6), --collation-change reindex, amcheck, rollback
# gated, rollback with reindex.
set -u
scenario=$1 out=$2 reg=$3 port=$4
shift 4
mkdir -p "$out"
n=0
export LC_ALL=C.UTF-8

# step NAME WANT CMD...: run CMD (a function bounds its own time, others
# get 600 s), record it, return 0 when the exit code is WANT's rc=.
step() {
  local name=$1 want=$2; shift 2
  n=$((n + 1))
  local f t0 rc
  f=$out/$(printf '%02d' "$n")-$name
  printf '%s\n' "$want" | tr ' ' '\n' | sed '/^$/d' >"$f.want"
  t0=$(date +%s.%N)
  if declare -F "$1" >/dev/null; then
    "$@" >"$f.out" 2>"$f.err"
  else
    timeout 600 "$@" >"$f.out" 2>"$f.err"
  fi
  rc=$?
  echo "$rc" >"$f.rc"
  echo "$(date +%s.%N) $t0" | awk '{printf "%.1f\n", $1 - $2}' >"$f.secs"
  local w
  w=$(sed -n 's/^rc=//p' "$f.want" | head -n1)
  case "${w:-0}" in
    signal) [ "$rc" -gt 128 ] && [ "$rc" != 255 ] ;;
    *) case "|${w:-0}|" in *"|$rc|"*) true ;; *) false ;; esac ;;
  esac
}

# The host's tree, for "changed nothing": every path's type, mode and owner
# (size, mtime and link target for non-directories) and the content of
# files under /etc /opt /var /usr/local, apart from pgoci's download cache
# and store, the running servers' own files (inside each data directory
# only the top-level configuration and version files count; the server
# log) and the API file systems. /var/lib/pgoci may be another file system
# (scenario A's XFS): listed on its own.
tree_list() {
  local prune=(\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp
    -o -path /root/cell -o -path /var/cache/pgoci -o -path /opt/pgoci/store
    -o -path '/var/log/pgoci/*/postgresql.log' -o -path '/var/lib/pgoci/*/data*' \) -prune)
  # Contents are hashed outside the generations too (hundreds of MB of
  # unpacked images: their files are listed with size and mtime above).
  local prune_gen=(\( "${prune[@]:1:${#prune[@]}-3}" -o -path '/opt/pgoci/instances/*/generations' \) -prune)
  local roots=(/)
  mountpoint -q /var/lib/pgoci 2>/dev/null && roots+=(/var/lib/pgoci)
  {
    find "${roots[@]}" -xdev "${prune[@]}" -o -type d -printf '%p %y %m %U %G\n'
    find "${roots[@]}" -xdev "${prune[@]}" -o ! -type d -printf '%p %y %m %U %G %s %T@ %l\n'
    find /etc /opt /var /usr/local -xdev "${prune_gen[@]}" -o -type f -exec sha256sum {} + 2>/dev/null
    [ "${#roots[@]}" = 1 ] || find /var/lib/pgoci -xdev "${prune_gen[@]}" -o -type f -exec sha256sum {} + 2>/dev/null
    local d
    for d in /var/lib/pgoci/*/data*; do
      [ -d "$d" ] || continue
      echo "datadir $d"
      find "$d" -maxdepth 1 -type f \( -name '*.conf' -o -name PG_VERSION -o -name postmaster.opts \) \
        -exec sha256sum {} +
    done
  } | LC_ALL=C sort
}
snapshot() { tree_list >/tmp/cell-tree.before; }
# unchanged: the tree is as snapshot left it.
unchanged() {
  tree_list >/tmp/cell-tree.after
  local before after
  before=$(sha256sum </tmp/cell-tree.before | cut -c1-16)
  after=$(sha256sum </tmp/cell-tree.after | cut -c1-16)
  echo "tree hash $before -> $after"
  if [ "$before" != "$after" ]; then
    diff /tmp/cell-tree.before /tmp/cell-tree.after | head -n 30 >&2
    echo "the host's tree changed" >&2
    return 1
  fi
}

# --- psql against an instance -------------------------------------------
# The server's bin dir: the current generation's (a rootfs image keeps the
# image's /usr/lib/postgresql/N/bin, a tree image has bin/).
gen_bin() {
  local inst=$1 b
  for b in /opt/pgoci/instances/"$inst"/current/usr/lib/postgresql/*/bin /opt/pgoci/instances/"$inst"/current/bin; do
    if [ -x "$b/psql" ]; then echo "$b"; return 0; fi
  done
  return 1
}
# The socket directories of INST's data directories (pgoci.conf), as a
# libpq host list: whichever server runs is found.
sock_hosts() {
  local inst=$1 d s hosts=""
  for d in /var/lib/pgoci/"$inst"/data*; do
    s=$(sed -n "s/^[[:space:]]*unix_socket_directories[[:space:]]*=[[:space:]]*'\([^',]*\).*/\1/p" \
      "$d/pgoci.conf" 2>/dev/null | tail -n1)
    [ -n "$s" ] || continue
    case ",$hosts," in *",$s,"*) ;; *) hosts=${hosts:+$hosts,}$s ;; esac
  done
  echo "${hosts:-127.0.0.1}"
}
# PSQL_BIN overrides the psql (scenario B: the host's, the npm tree has none).
PSQL_BIN=
# q INST PORT DB ARGS...: psql as the service user; stderr kept apart.
q() {
  local inst=$1 p=$2 db=$3; shift 3
  local bin psql deps ld=
  if [ -n "$PSQL_BIN" ]; then
    psql=$PSQL_BIN
  else
    bin=$(gen_bin "$inst") || { echo "no psql in instance $inst's generation" >&2; return 1; }
    psql=$bin/psql
  fi
  deps=/opt/pgoci/instances/$inst/current/lib/pgoci-deps
  [ -n "$PSQL_BIN" ] || [ ! -d "$deps" ] || ld=$deps
  timeout 120 runuser -u postgres -- env ${ld:+LD_LIBRARY_PATH=$ld} \
    "$psql" -X -q -v ON_ERROR_STOP=1 -h "$(sock_hosts "$inst")" -p "$p" -d "$db" "$@"
}
# qa: one value per line, no headers.
qa() { q "$@" -At; }

# No WARNING about collation versions when connecting to any database.
no_collation_warning() {
  local inst=$1 p=$2 db errs bad=0
  for db in postgres template1 "${@:3}"; do
    errs=$(q "$inst" "$p" "$db" -c 'SELECT 1' 2>&1 >/dev/null)
    echo "$db: ${errs:-(nothing on stderr)}"
    if echo "$errs" | grep -qi 'collation'; then bad=1; fi
  done
  [ "$bad" = 0 ] || { echo "a connection printed a collation warning" >&2; return 1; }
}

# server_major INST PORT WANT: SELECT version() names PostgreSQL WANT.
server_major() {
  local v
  v=$(qa "$1" "$2" postgres -c 'SELECT version()') || return 1
  echo "$v"
  case "$v" in
    "PostgreSQL $3."*) ;;
    *) echo "server is not PostgreSQL $3: $v" >&2; return 1 ;;
  esac
}

scenario_major() {
  local port2=$1 profile=$2
  local P=(--profile "$profile" --insecure-registry "$reg")
  local up=(upgrade --instance main --major 17 --ext vector)
  local db=appdb inst=main

  step install "rc=0 json:changed=true" pgoci --json "${P[@]}" install --yes --service none \
    --instance main --major 15 --ext postgis --ext vector --port "$port" || return 0

  # Data in a database of its own (the refusal must name it): text, a
  # vector(3) column with an HNSW index (pgvector 0.8 on both sides: the
  # bed's 15 build is a backport of trixie's) and an ivfflat one, a PostGIS
  # geometry column, and amcheck (a contrib extension whose default
  # version differs between 15 and 17: 1.3 -> 1.4, a real update path).
  load_data() {
    q main "$port" postgres -c "CREATE DATABASE $db" || return 1
    q main "$port" "$db" <<'SQL'
CREATE EXTENSION postgis;
CREATE EXTENSION vector;
CREATE EXTENSION amcheck;
CREATE TABLE items (
  id int PRIMARY KEY,
  name text NOT NULL,
  emb vector(3) NOT NULL,
  geom geometry(Point, 4326)
);
INSERT INTO items
SELECT g,
       md5(g::text) || ' ' || chr(65 + g % 26) || ' Straße ' || (g % 7),
       ARRAY[sin(g), cos(g), (g % 97) / 97.0]::real[]::vector(3),
       ST_SetSRID(ST_MakePoint(g % 360 - 180, g % 180 - 90), 4326)
FROM generate_series(1, 5000) g;
CREATE INDEX items_name ON items (name);
CREATE INDEX items_emb_hnsw ON items USING hnsw (emb vector_l2_ops);
CREATE INDEX items_emb_ivf ON items USING ivfflat (emb vector_cosine_ops) WITH (lists = 10);
ANALYZE items;
SQL
    qa main "$port" "$db" -c "SELECT ST_AsText(geom), ST_Distance(geom, ST_SetSRID(ST_MakePoint(0, 0), 4326)) > 0 FROM items WHERE id = 1" \
      -c "SELECT extname || ' ' || extversion FROM pg_extension ORDER BY 1"
  }
  step data "rc=0" load_data || return 0

  # The results every later state must reproduce (no PostGIS in them: it
  # is dropped before the upgrade).
  results() { # INST PORT
    qa "$1" "$2" "$db" <<'SQL'
SELECT count(*), sum(id), count(DISTINCT name) FROM items;
SELECT md5(string_agg(name, ',' ORDER BY name)) FROM items;
SELECT id FROM items ORDER BY name LIMIT 12;
SET enable_seqscan = off;
SET hnsw.ef_search = 100;
SELECT id FROM items ORDER BY emb <-> '[0.5,0.5,0.5]' LIMIT 10;
SET ivfflat.probes = 10;
SELECT id FROM items ORDER BY emb <=> '[0.1,0.9,0.3]' LIMIT 10;
SQL
  }
  save_results() { results main "$port" >/root/results-15.txt && cat /root/results-15.txt; }
  step results-15 "rc=0" save_results || return 0
  # same_results INST PORT: the saved results, and the vector indexes are
  # valid and used.
  same_results() {
    local inst=${1:-main} p=${2:-$port} file=${3:-/root/results-15.txt} r plan
    r=$(results "$inst" "$p") || return 1
    if [ "$r" != "$(cat "$file")" ]; then
      echo "results differ from $file:" >&2
      diff <(echo "$r") "$file" >&2
      return 1
    fi
    echo "results as saved"
    qa "$inst" "$p" "$db" -c "SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indrelid = 'items'::regclass ORDER BY 1" |
      tee /tmp/cell-valid
    if grep -q '|f$' /tmp/cell-valid; then echo "an index of items is not valid" >&2; return 1; fi
    plan=$(qa "$inst" "$p" "$db" -c 'SET enable_seqscan = off' \
      -c "EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <-> '[0.5,0.5,0.5]' LIMIT 10" \
      -c "EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> '[0.1,0.9,0.3]' LIMIT 10") || return 1
    echo "$plan"
    echo "$plan" | grep -q 'Index Scan using items_emb_hnsw' || { echo "the HNSW index is not used" >&2; return 1; }
    echo "$plan" | grep -q 'Index Scan using items_emb_ivf' || { echo "the ivfflat index is not used" >&2; return 1; }
  }
  # on17: PostgreSQL 17, the extensions at 17's defaults, same results, no
  # collation warning.
  on17() {
    local inst=${1:-main} p=${2:-$port}
    server_major "$inst" "$p" 17 || return 1
    local ext
    ext=$(qa "$inst" "$p" "$db" -c "SELECT e.extname || ' ' || e.extversion || ' ' || a.default_version
      FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname ORDER BY 1") || return 1
    echo "$ext"
    echo "$ext" | awk '$2 != $3 {bad = 1; print "extension " $1 " is at " $2 ", 17 default " $3 > "/dev/stderr"} END {exit bad}' || return 1
    same_results "$inst" "$p" || return 1
    no_collation_warning "$inst" "$p" "$db"
  }
  # on15: PostgreSQL 15 on the old data directory, as at the upgrade.
  on15() {
    server_major main "$port" 15 || return 1
    same_results main "$port" || return 1
    local extra
    extra=$(qa main "$port" "$db" -c "SELECT count(*) FROM items WHERE id > 100000") || return 1
    [ "$extra" = 0 ] || { echo "a row written on 17 is there after the rollback" >&2; return 1; }
    no_collation_warning main "$port" "$db"
  }

  # --- refused while PostGIS is in use -----------------------------------
  step snapshot-1 "rc=0" snapshot
  step refuse-check "rc=6 has=postgis has=$db" pgoci --json "${P[@]}" "${up[@]}" --check --yes
  step refuse-check-unchanged "rc=0" unchanged
  step refuse "rc=6 has=postgis has=$db" pgoci --json "${P[@]}" "${up[@]}" --yes
  step refuse-unchanged "rc=0" unchanged
  step still-15 "rc=0" server_major main "$port" 15

  drop_postgis() {
    q main "$port" "$db" -c 'ALTER TABLE items DROP COLUMN geom' -c 'DROP EXTENSION postgis'
  }
  step drop-postgis "rc=0" drop_postgis || return 0
  step snapshot-2 "rc=0" snapshot
  step check "rc=0 json:check=true" pgoci --json "${P[@]}" "${up[@]}" --check --yes
  step check-unchanged "rc=0" unchanged

  # The old data directory is kept as the upgrade found it (its files are
  # compared by the rollback's results).
  old_kept() {
    cat /var/lib/pgoci/main/data/PG_VERSION /var/lib/pgoci/main/data-17/PG_VERSION || return 1
    if [ "$(cat /var/lib/pgoci/main/data/PG_VERSION)" != 15 ] || [ ! -f /var/lib/pgoci/main/data/global/pg_control ]; then
      echo "the old data directory is not intact" >&2
      return 1
    fi
  }

  # --- copy, then rollback ----------------------------------------------
  local mu="json:changed=true json:major_upgrade.from=15 json:major_upgrade.to=17
    keys:major_upgrade=from,to,method,old_data_dir,new_data_dir,extensions
    json:major_upgrade.old_data_dir=/var/lib/pgoci/main/data
    json:major_upgrade.new_data_dir=/var/lib/pgoci/main/data-17 ext:vector ext:amcheck"
  if step upgrade-copy "rc=0 $mu json:major_upgrade.method=copy" \
    pgoci --json "${P[@]}" "${up[@]}" --method copy --yes; then
    step copy-on17 "rc=0" on17
    step copy-old-kept "rc=0" old_kept
    step write-on17 "rc=0" q main "$port" "$db" -c "INSERT INTO items VALUES (100001, 'written on 17', '[1,2,3]')"
    step rollback-copy "rc=0 json:changed=true" pgoci --json rollback --instance main --yes
    step rollback-copy-on15 "rc=0" on15
  fi

  # --- the default method on a reflink XFS is clone ---------------------
  if step upgrade-default "rc=0 $mu json:major_upgrade.method=clone" \
    pgoci --json "${P[@]}" "${up[@]}" --yes; then
    step clone-on17 "rc=0" on17
    step clone-old-kept "rc=0" old_kept
    step rollback-clone "rc=0" pgoci --json rollback --instance main --yes
    step rollback-clone-on15 "rc=0" on15
  fi

  # --- crash points: killed there, the same command again finishes ------
  local pt
  for pt in major-after-initdb major-after-stop major-after-pg-upgrade major-after-switch major-after-start; do
    if [ ! -x /usr/local/bin/pgoci-failpoints ]; then
      step "crash-$pt" "rc=0 skip" echo "skipped: no failpoints build (PGOCI_FAILPOINTS_BIN)"
      continue
    fi
    if ! server_major main "$port" 15 >/dev/null 2>&1; then
      step "crash-$pt" "rc=0" sh -c 'echo "not back on 15 before this crash point: not run" >&2; exit 1'
      continue
    fi
    # Not killed there (refused, or the point was never passed): the rest
    # of this point means nothing.
    step "crash-$pt" "rc=signal has=$pt" env PGOCI_CRASH_AT="$pt" \
      pgoci-failpoints --json "${P[@]}" "${up[@]}" --yes || continue
    if step "rerun-$pt" "rc=0 json:changed=true json:major_upgrade.to=17" \
      pgoci --json "${P[@]}" "${up[@]}" --yes; then
      step "rerun-$pt-on17" "rc=0" on17
      step "rerun-$pt-rollback" "rc=0" pgoci --json rollback --instance main --yes
    fi
    # Back on 15 with the data as before (after a failed re-run too: an
    # undone upgrade must leave exactly that).
    step "rerun-$pt-on15" "rc=0" on15
  done

  # --- finalize ----------------------------------------------------------
  if step upgrade-final "rc=0 json:changed=true" pgoci --json "${P[@]}" "${up[@]}" --yes; then
    step finalize "rc=0 json:changed=true" pgoci --json upgrade --instance main --finalize --yes
    finalized() {
      ls -la /var/lib/pgoci/main
      [ ! -e /var/lib/pgoci/main/data ] || { echo "/var/lib/pgoci/main/data is still there" >&2; return 1; }
      [ -f /var/lib/pgoci/main/data-17/PG_VERSION ] || { echo "/var/lib/pgoci/main/data-17 is gone" >&2; return 1; }
    }
    step finalize-removed "rc=0" finalized
    # Refused: nothing before the upgrade is left (exit 2 or 6: the brief
    # names no code for this one).
    step rollback-after-finalize "rc=2|6" pgoci --json rollback --instance main --yes
    step after-finalize-on17 "rc=0" on17
  fi

  # --- link: a second instance, 15 + vector ------------------------------
  if step install-second "rc=0 json:changed=true" pgoci --json "${P[@]}" install --yes --service none \
    --instance second --major 15 --ext vector --port "$port2"; then
    second_data() {
      q second "$port2" postgres -c "CREATE DATABASE $db" &&
        q second "$port2" "$db" <<'SQL'
CREATE EXTENSION vector;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, emb vector(3) NOT NULL);
INSERT INTO items
SELECT g, md5(g::text) || ' ' || chr(65 + g % 26), ARRAY[sin(g), cos(g), (g % 97) / 97.0]::real[]::vector(3)
FROM generate_series(1, 5000) g;
CREATE INDEX items_name ON items (name);
CREATE INDEX items_emb_hnsw ON items USING hnsw (emb vector_l2_ops);
CREATE INDEX items_emb_ivf ON items USING ivfflat (emb vector_cosine_ops) WITH (lists = 10);
ANALYZE items;
SQL
      results second "$port2" >/root/results-second.txt && cat /root/results-second.txt
    }
    step second-data "rc=0" second_data
    if step upgrade-link "rc=0 json:changed=true json:major_upgrade.method=link json:major_upgrade.to=17" \
      pgoci --json "${P[@]}" upgrade --instance second --major 17 --ext vector --method link --yes; then
      second17() {
        server_major second "$port2" 17 || return 1
        same_results second "$port2" /root/results-second.txt
      }
      step link-on17 "rc=0" second17
      step rollback-link-refused "rc=6" pgoci --json rollback --instance second --yes
      step link-still-17 "rc=0" second17
    fi
  fi
}

scenario_collation() {
  local host17=$1 cnpg=$2
  local inst=coll db=words
  local P=(--profile "$host17" --insecure-registry "$reg")
  PSQL_BIN=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n1)
  [ -n "$PSQL_BIN" ] || { echo "no psql on this host (hosts.sh SUITE+locales has one)" >&2; return 1; }
  locale -a >/tmp/cell-locales 2>&1

  step install "rc=0 json:changed=true" pgoci --json "${P[@]}" install --yes --service none \
    --instance "$inst" --major 17 --port "$port" --locale de_DE.UTF-8 || return 0
  load() {
    q "$inst" "$port" postgres -c "CREATE DATABASE $db" || return 1
    q "$inst" "$port" "$db" <<'SQL'
CREATE TABLE w (id int PRIMARY KEY, word text NOT NULL);
INSERT INTO w
SELECT g, (ARRAY['Äpfel', 'apfel', 'Zebra', 'über', 'Ueber', 'ß', 'ss', 'Straße', 'strasse', 'Ärger',
                 'a-b', 'ab', 'A b', 'résumé', 'resume', 'Øre', 'oe', 'ö', 'z', 'Z'])[1 + g % 20] || ' ' || (g % 50)
FROM generate_series(1, 4000) g;
CREATE INDEX w_word ON w (word);
ANALYZE w;
SQL
    qa "$inst" "$port" "$db" -c "SELECT datcollate, datcollversion FROM pg_database WHERE datname = current_database()"
  }
  step data "rc=0" load || return 0
  # The index order is the sort order, and amcheck finds the index sound.
  consistent() {
    local want=$1 a b v
    v=$(qa "$inst" "$port" "$db" -c "SELECT datcollversion || ' ' || pg_database_collation_actual_version(oid) FROM pg_database WHERE datname = current_database()") || return 1
    echo "recorded / actual collation version: $v"
    [ "$v" = "$want $want" ] || { echo "want $want $want" >&2; return 1; }
    a=$(qa "$inst" "$port" "$db" -c 'SET enable_indexscan = off' -c 'SET enable_bitmapscan = off' \
      -c 'SELECT md5(string_agg(word, chr(10) ORDER BY word)) FROM w') || return 1
    b=$(qa "$inst" "$port" "$db" -c 'SET enable_seqscan = off' -c 'SET enable_bitmapscan = off' \
      -c 'SELECT md5(string_agg(word, chr(10))) FROM (SELECT word FROM w ORDER BY word OFFSET 0) s') || return 1
    echo "sort $a, index $b"
    [ "$a" = "$b" ] || { echo "the index order is not the sort order" >&2; return 1; }
    qa "$inst" "$port" "$db" -c 'CREATE EXTENSION IF NOT EXISTS amcheck' \
      -c "SELECT bt_index_check('w_word', true)" -c "SELECT bt_index_check('w_pkey', true)" || {
      echo "amcheck found a problem" >&2; return 1; }
    echo "amcheck: clean"
    no_collation_warning "$inst" "$port" "$db"
  }
  step host-glibc "rc=0" consistent 2.36

  step resolve "rc=0" pgoci --profile "$cnpg" --insecure-registry "$reg" resolve --major 17 -o /root/trixie-17.lock || return 0
  local up=(upgrade --instance "$inst" --lock /root/trixie-17.lock)
  step snapshot "rc=0" snapshot
  step gated "rc=6 has=2.36 has=2.41" pgoci --json "${P[@]}" "${up[@]}" --yes
  step gated-unchanged "rc=0" unchanged
  if step reindex "rc=0 json:changed=true" pgoci --json "${P[@]}" "${up[@]}" --collation-change reindex --yes; then
    step image-glibc "rc=0" consistent 2.41
    step rollback-gated "rc=6 has=2.36 has=2.41" pgoci --json rollback --instance "$inst" --yes
    step rollback-reindex "rc=0 json:changed=true" pgoci --json rollback --instance "$inst" --collation-change reindex --yes
    step back-on-host-glibc "rc=0" consistent 2.36
  fi
}

case "$scenario" in
  major) scenario_major "$@" ;;
  collation) scenario_collation "$@" ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
exit 0
