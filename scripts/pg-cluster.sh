#!/usr/bin/env bash
# shellcheck disable=SC2015  # `[ a ] && [ b ] || die` is meant: the tests have no side effects
# A throwaway PostgreSQL 15 cluster for the tests (never the system one).
#
#   scripts/pg-cluster.sh start [--replace] DIR [PORT]
#       initdb a new cluster in DIR (DIR must not exist or be empty; with
#       --replace a cluster left in DIR by an earlier run is stopped and
#       removed first), start it and print its base URL on stdout:
#           postgresql://postgres@127.0.0.1:PORT/
#       (append a database name). PORT: the given one, else a free one.
#   scripts/pg-cluster.sh stop DIR
#       stop it (immediate shutdown: nothing in it is worth keeping) and
#       remove DIR. Safe on a half-created DIR and on a missing one.
#   scripts/pg-cluster.sh url DIR
#       print the URL of the running cluster in DIR (exit 1 if it is down).
#   scripts/pg-cluster.sh exec DIR -- CMD [ARG...]
#       run CMD with CS_TEST_PG_URL set to that URL (what CTest's pg.* tests
#       do; exit 1 with a message if the cluster is not running).
#
# The cluster: superuser `postgres`, trust authentication, listening on
# 127.0.0.1 only, its unix socket inside DIR (so it never collides with a
# system cluster), max_connections 1000 (many test nodes with their pools
# at once, CTest -j), shared_buffers 64MB. Durability settings are the
# defaults (fsync on) unless PG_CLUSTER_FAST=1, which sets fsync=off,
# synchronous_commit=off and full_page_writes=off: acceptable ONLY because
# the cluster is thrown away after the run, and a machine crash loses it
# anyway. Files in DIR: data/ (PGDATA), sock/ (unix socket), postgres.log,
# pg-cluster.conf (in data/), url, port, and the marker .pg-cluster (stop
# removes only such a DIR).
#
# initdb and postgres refuse to run as root: as root, DIR is given to the
# `postgres` user (created by the postgresql-common package) and the
# binaries run through `runuser -u postgres --`; otherwise they run as the
# calling user. Needs PostgreSQL 15 in /usr/lib/postgresql/15/bin
# (scripts/install-deps.sh installs it; PGBIN overrides the directory).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ME=pg-cluster

die() { echo "$ME: $*" >&2; exit 1; }
abspath() {  # absolute form of a path whose parent exists
  case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
}
usage() {
  sed -n '5,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_pg() {
  [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/postgres" ] ||
    die "PostgreSQL 15 is not installed ($PGBIN/initdb not found): run scripts/install-deps.sh (as root)"
}

AS=()        # prefix that runs a command as the cluster's owner
owner_setup() {
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 ||
      die "running as root but there is no 'postgres' user to run the server as (it comes with the postgresql-common package: run scripts/install-deps.sh)"
    command -v runuser >/dev/null || die "running as root but runuser(1) is missing (util-linux)"
    AS=(runuser -u postgres --)
  fi
}

psql_bin() {
  if [ -x "$PGBIN/psql" ]; then echo "$PGBIN/psql"
  elif command -v psql >/dev/null; then command -v psql
  else die "psql not found: run scripts/install-deps.sh (postgresql-client-15)"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

is_ours() {  # DIR was made by this script (or is empty)
  local d=$1
  [ -e "$d/.pg-cluster" ] && return 0
  [ -d "$d" ] && [ -z "$(ls -A "$d")" ]
}

postmaster_pid() {  # pid of a live postmaster of DIR/data, else nothing
  local d=$1 pid
  [ -f "$d/data/postmaster.pid" ] || return 0
  pid=$(head -n1 "$d/data/postmaster.pid" 2>/dev/null || true)
  case "$pid" in ''|*[!0-9]*) return 0 ;; esac
  [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q postgres || return 0
  echo "$pid"
}

cmd_stop() {
  local d=$1
  if [ ! -e "$d" ]; then
    echo "$ME: $d does not exist: nothing to stop" >&2
    return 0
  fi
  [ -d "$d" ] || die "$d is not a directory"
  is_ours "$d" || die "$d was not made by pg-cluster.sh (no $d/.pg-cluster): not touching it"
  local pid
  pid=$(postmaster_pid "$d")
  if [ -n "$pid" ]; then
    need_pg
    owner_setup
    if ! "${AS[@]}" "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
      # pg_ctl could not do it (half-created cluster, broken data dir):
      # the postmaster is ours (the pid file in our DIR), end it by its id
      if kill -0 "$pid" 2>/dev/null; then
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  fi
  rm -rf "$d"
  echo "$ME: stopped and removed $d" >&2
}

cmd_start() {
  local replace=0
  if [ "${1:-}" = "--replace" ]; then replace=1; shift; fi
  [ $# -ge 1 ] && [ $# -le 2 ] || usage
  local d=$1 port=${2:-}
  need_pg
  command -v python3 >/dev/null || [ -n "$port" ] || die "python3 is needed to pick a free port (or give PORT)"
  if [ -n "$port" ]; then
    case "$port" in ''|*[!0-9]*) die "bad PORT '$port'" ;; esac
  fi
  if [ -e "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null || echo x)" ]; then
    if [ "$replace" = 1 ] && is_ours "$d"; then
      cmd_stop "$d"
    elif is_ours "$d"; then
      die "$d already holds a cluster: scripts/pg-cluster.sh stop $d first (or start --replace)"
    else
      die "$d exists and is not empty: give a new directory"
    fi
  fi
  mkdir -p "$d"
  : >"$d/.pg-cluster"
  mkdir -p "$d/sock"
  owner_setup
  if [ ${#AS[@]} -gt 0 ]; then
    chown -R postgres: "$d"
    "${AS[@]}" test -w "$d" ||
      die "user postgres cannot write $d (a parent directory is not searchable by it?): use a directory such as /tmp/... or under the build tree"
  fi

  local log="$d/postgres.log"
  # --no-sync: initdb does not fsync the new files (throwaway cluster)
  if ! "${AS[@]}" "$PGBIN/initdb" -D "$d/data" -U postgres --auth=trust \
       --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$d/initdb.log" 2>&1; then
    cat "$d/initdb.log" >&2
    die "initdb failed in $d/data (log above); remove it with: scripts/pg-cluster.sh stop $d"
  fi

  echo "include = 'pg-cluster.conf'" >>"$d/data/postgresql.conf"
  # a unix socket path is limited to 107 bytes: with a deep DIR, TCP only
  local sockdir="$d/sock"
  if [ $(( ${#sockdir} + 17 )) -gt 107 ]; then
    echo "$ME: $sockdir is too long for a unix socket: TCP (127.0.0.1) only" >&2
    sockdir=""
  fi
  local tries=1
  [ -n "$port" ] || tries=5      # a picked port may be taken before we bind it
  local i
  for i in $(seq "$tries"); do
    local p=${port:-$(free_port)}
    {
      echo "# written by scripts/pg-cluster.sh: throwaway test cluster"
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $p"
      echo "unix_socket_directories = '$sockdir'"
      echo "max_connections = 1000"
      echo "shared_buffers = 64MB"
      echo "max_wal_size = 1GB"
      echo "log_line_prefix = '%m [%p] %d '"
      if [ "${PG_CLUSTER_FAST:-0}" = 1 ]; then
        echo "# PG_CLUSTER_FAST=1: acceptable only for a throwaway cluster"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
      fi
    } >"$d/data/pg-cluster.conf"
    [ ${#AS[@]} -eq 0 ] || chown postgres: "$d/data/pg-cluster.conf"
    : >"$log"
    [ ${#AS[@]} -eq 0 ] || chown postgres: "$log"
    if "${AS[@]}" "$PGBIN/pg_ctl" -D "$d/data" -l "$log" -w -t 60 start >/dev/null 2>&1; then
      port=$p
      break
    fi
    if [ "$i" -lt "$tries" ] && grep -q "could not bind\|Address already in use" "$log"; then
      continue
    fi
    tail -n 20 "$log" >&2 || true
    die "the server did not start (log above, $log); clean up with: scripts/pg-cluster.sh stop $d"
  done

  local url="postgresql://postgres@127.0.0.1:$port/"
  local psql
  psql=$(psql_bin)
  if ! "$psql" -X -q -At -d "${url}postgres" -c 'SELECT 1' >/dev/null 2>"$d/psql.err"; then
    cat "$d/psql.err" >&2
    die "the server started but psql cannot connect to ${url}postgres"
  fi
  echo "$port" >"$d/port"
  echo "$url" >"$d/url"
  echo "$ME: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') in $d on 127.0.0.1:$port (log $log)" >&2
  echo "$url"
}

cmd_url() {
  local d=$1
  [ -f "$d/url" ] || die "no cluster in $d (no $d/url): scripts/pg-cluster.sh start $d"
  [ -n "$(postmaster_pid "$d")" ] || die "the cluster in $d is not running (see $d/postgres.log)"
  cat "$d/url"
}

case "${1:-}" in
  start)
    shift
    a=()
    if [ "${1:-}" = "--replace" ]; then a=(--replace); shift; fi
    [ $# -ge 1 ] && [ $# -le 2 ] || usage
    d=$(abspath "$1"); shift
    cd /    # the postgres user may not be able to enter the caller's cwd
    cmd_start "${a[@]}" "$d" "$@" ;;
  stop)  [ $# -eq 2 ] || usage; d=$(abspath "$2"); cd /; cmd_stop "$d" ;;
  url)   [ $# -eq 2 ] || usage; cmd_url "$(abspath "$2")" ;;
  exec)
    [ $# -ge 4 ] && [ "$3" = "--" ] || usage
    d=$(abspath "$2"); shift 3
    u=$(cmd_url "$d")
    export CS_TEST_PG_URL="$u"
    exec "$@" ;;
  -h|--help) usage ;;
  *) usage ;;
esac
