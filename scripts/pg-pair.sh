#!/usr/bin/env bash
# A PostgreSQL 15 primary and a streaming replica in a temporary directory, for the tests of replica routing
# and read-your-writes (issue 13). Built from the installed server binaries (PG_BIN), listening on 127.0.0.1
# only, on ports free at start-up, with fsync off. It never touches the system cluster.
#
#   scripts/pg-pair.sh up              fresh pair (a previous one at the same place is removed first);
#                                      returns once the replica streams; writes the env file
#   scripts/pg-pair.sh down            stops the servers (and the poolers of scripts/pgbouncer.sh) and removes
#                                      the directory, also after a crash (stale pid files, a previous run's dir)
#   scripts/pg-pair.sh status          servers, ports and replication state; exit 0 only when it streams
#   scripts/pg-pair.sh delay DURATION  recovery_min_apply_delay on the replica (e.g. 30s, 500ms, 0), reloaded:
#                                      returns once the replica reports the new value
#   scripts/pg-pair.sh replica-stop    stops the replica only (tests of a replica going away)
#   scripts/pg-pair.sh replica-start   starts it again and waits until it streams
#   scripts/pg-pair.sh env             prints the env file (KEY=value lines, for `set -a; . FILE`)
#
# The env file ($COLLEX_PAIR_DIR/env) holds COLLEX_TEST_PRIMARY_URL, COLLEX_TEST_REPLICA_URL and
# COLLEX_PAIR_DIR. One pair per checkout by default; COLLEX_PAIR_DIR places another one elsewhere.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DIR=$(pair_dir)
PRIMARY=$DIR/primary
REPLICA=$DIR/replica
ENV_FILE=$DIR/env
SLOT=collex_replica
export PGCONNECT_TIMEOUT=5

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

psql_at() { # port sql...
  local port=$1
  shift
  psql -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "$*"
}

conf_port() { sed -n "s/^port = \([0-9]*\)$/\1/p" "$1/collex.conf" | tail -n1; }

server_running() { live_pid "$1/postmaster.pid" "$1" >/dev/null; }

stop_server() {
  local data=$1 pid i
  pid=$(live_pid "$data/postmaster.pid" "$data") || return 0
  as_server "$PG_BIN/pg_ctl" -D "$data" -m fast -t 30 -w stop >/dev/null 2>&1 ||
    as_server "$PG_BIN/pg_ctl" -D "$data" -m immediate -t 10 -w stop >/dev/null 2>&1 ||
    true
  # pg_ctl -w returns once the pid file is gone, which the postmaster removes just before it exits: wait for the
  # process itself, so what comes next (a new server, a check that the old one is gone) never meets it.
  for ((i = 0; i < 100; i++)); do
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$data" || return 0
    sleep 0.1
  done
  stop_pid "$pid" 5
}

# Starts the server of `data` on a free port, choosing another one when the bind fails (another program took
# the port between the check and the bind). Prints the port.
start_server() {
  local data=$1 name=$2 port tries
  for tries in 1 2 3 4 5; do
    port=$(pick_port "$@")
    sed -i "s/^port = .*/port = $port/" "$data/collex.conf"
    : >"$DIR/$name.log"
    chown "$(server_user)" "$DIR/$name.log"
    if as_server "$PG_BIN/pg_ctl" -D "$data" -l "$DIR/$name.log" -w -t 60 start >/dev/null 2>&1 9>&-; then
      printf '%s\n' "$port"
      return 0
    fi
    if ! grep -q 'could not bind\|Address already in use' "$DIR/$name.log"; then
      tail -n 20 "$DIR/$name.log" >&2
      die "the $name server in $data did not start (log above, full log in $DIR/$name.log)"
    fi
  done
  die "the $name server found no port to bind after 5 tries"
}

wait_streaming() {
  local primary_port=$1 replica_port=$2 i
  for ((i = 0; i < 600; i++)); do
    if [ "$(psql_at "$replica_port" "select status from pg_stat_wal_receiver" 2>/dev/null)" = streaming ] &&
      [ "$(psql_at "$primary_port" "select count(*) from pg_stat_replication where state = 'streaming'" 2>/dev/null)" = 1 ]; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$DIR/replica.log" >&2
  die "the replica in $REPLICA does not stream from the primary after 60 s (replica log above)"
}

cmd_down() {
  # The poolers sit in front of the primary and live in the same directory: they go first.
  bash "$COLLEX_ROOT/scripts/pgbouncer.sh" down >/dev/null
  if [ ! -e "$DIR" ]; then
    echo "pg-pair: nothing at $DIR"
    return 0
  fi
  stop_server "$REPLICA"
  stop_server "$PRIMARY"
  rm -rf "$DIR"
  echo "pg-pair: stopped and removed $DIR"
}

cmd_up() {
  { [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_basebackup" ]; } ||
    die "no PostgreSQL server binaries in $PG_BIN (initdb, pg_ctl, pg_basebackup): install Debian's postgresql-15 (scripts/ensure-tools.sh test does) or set PG_BIN"
  command -v psql >/dev/null || die "psql is missing: install Debian's postgresql-client-15"
  local start=$SECONDS user primary_port replica_port
  user=$(server_user)
  cmd_down >/dev/null
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  chown "$user" "$DIR"
  as_server test -w "$DIR" || die "$DIR is not writable by the server user '$user' (set COLLEX_PAIR_DIR or TMPDIR to a directory it can write)"

  as_server "$PG_BIN/initdb" -D "$PRIMARY" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$DIR/initdb.log" 2>&1 || {
    tail -n 20 "$DIR/initdb.log" >&2
    die "initdb failed in $PRIMARY (log above)"
  }
  # Our settings in a file of their own, so a restart keeps them and the replica inherits them through
  # pg_basebackup; no Unix socket (its path length and directory are the caller's problem otherwise).
  as_server tee "$PRIMARY/collex.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = 0
unix_socket_directories = ''
fsync = off
max_connections = 200
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
hot_standby_feedback = on
CONF
  echo "include = 'collex.conf'" | as_server tee -a "$PRIMARY/postgresql.conf" >/dev/null
  primary_port=$(start_server "$PRIMARY" primary)

  # -R writes primary_conninfo and standby.signal; the slot keeps the WAL a stopped replica still needs.
  as_server "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$REPLICA" \
    -R -X stream -c fast -C -S "$SLOT" --no-sync >"$DIR/basebackup.log" 2>&1 || {
    tail -n 20 "$DIR/basebackup.log" >&2
    die "pg_basebackup from the primary on port $primary_port failed (log above)"
  }
  replica_port=$(start_server "$REPLICA" replica "$primary_port")
  wait_streaming "$primary_port" "$replica_port"

  cat >"$ENV_FILE.tmp" <<ENV
COLLEX_PAIR_DIR=$DIR
COLLEX_TEST_PRIMARY_URL=postgres://postgres@127.0.0.1:$primary_port/postgres
COLLEX_TEST_REPLICA_URL=postgres://postgres@127.0.0.1:$replica_port/postgres
ENV
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  echo "pg-pair: primary 127.0.0.1:$primary_port, replica 127.0.0.1:$replica_port streaming ($((SECONDS - start)) s; env in $ENV_FILE)"
}

require_up() {
  [ -f "$ENV_FILE" ] || die "no pair at $DIR: run scripts/pg-pair.sh up first"
}

cmd_status() {
  require_up
  local p r ok=0
  p=$(conf_port "$PRIMARY")
  r=$(conf_port "$REPLICA")
  if server_running "$PRIMARY"; then echo "primary: running on 127.0.0.1:$p"; else echo "primary: stopped (port $p)"; ok=1; fi
  if server_running "$REPLICA"; then echo "replica: running on 127.0.0.1:$r"; else echo "replica: stopped (port $r)"; ok=1; fi
  if [ $ok = 0 ]; then
    echo "replication: $(psql_at "$r" "select coalesce((select status from pg_stat_wal_receiver), 'not connected') || ', in recovery: ' || pg_is_in_recovery() || ', apply delay: ' || current_setting('recovery_min_apply_delay') || ', replay lag: ' || coalesce((now() - pg_last_xact_replay_timestamp())::text, 'none')" 2>&1)"
    [ "$(psql_at "$r" "select status from pg_stat_wal_receiver" 2>/dev/null)" = streaming ] || ok=1
  fi
  echo "env: $ENV_FILE"
  return $ok
}

cmd_delay() {
  local d=${1:-}
  [[ $d =~ ^(0|[0-9]+(us|ms|s|min|h|d))$ ]] ||
    die "delay: expected 0 or a number with a unit (us, ms, s, min, h, d) like 30s or 500ms, got \"$d\""
  require_up
  local r
  r=$(conf_port "$REPLICA")
  server_running "$REPLICA" || die "the replica is stopped: run scripts/pg-pair.sh replica-start first"
  psql_at "$r" "alter system set recovery_min_apply_delay = '$d'" >/dev/null
  psql_at "$r" "select pg_reload_conf()" >/dev/null
  # The reload is a signal: wait until a new session sees the value, so the caller's next write is delayed.
  local i
  for ((i = 0; i < 100; i++)); do
    if [ "$(psql_at "$r" "select current_setting('recovery_min_apply_delay')::interval = '$d'::interval")" = t ]; then
      echo "pg-pair: replica apply delay is $d"
      return 0
    fi
    sleep 0.1
  done
  die "the replica did not take recovery_min_apply_delay = $d within 10 s"
}

cmd_replica_stop() {
  require_up
  stop_server "$REPLICA"
  echo "pg-pair: replica stopped"
}

cmd_replica_start() {
  require_up
  local p r
  p=$(conf_port "$PRIMARY")
  r=$(conf_port "$REPLICA")
  if ! server_running "$REPLICA"; then
    # The same port again: the URL in the env file stays right. A port taken meanwhile is an error.
    as_server "$PG_BIN/pg_ctl" -D "$REPLICA" -l "$DIR/replica.log" -w -t 60 start >/dev/null 2>&1 9>&- || {
      tail -n 20 "$DIR/replica.log" >&2
      die "the replica did not start again on port $r (log above)"
    }
  fi
  wait_streaming "$p" "$r"
  echo "pg-pair: replica streaming again on 127.0.0.1:$r"
}

lock() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w "$LOCK_WAIT" 9 || die "another scripts/pg-pair.sh has held $DIR.lock for $LOCK_WAIT s"
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  delay) [ $# = 2 ] || usage; cmd_delay "$2" ;;
  replica-stop) lock; cmd_replica_stop ;;
  replica-start) lock; cmd_replica_start ;;
  env) require_up; cat "$ENV_FILE" ;;
  *) usage ;;
esac
