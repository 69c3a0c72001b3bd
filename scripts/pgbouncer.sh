#!/usr/bin/env bash
# PgBouncer in front of the primary of scripts/pg-pair.sh: one instance in session mode, one in transaction
# mode (issue 13: transaction mode gives sqlx and SeaORM wrong answers, and the service must refuse it).
# Debian's PgBouncer 1.18, extracted from its .deb by scripts/ensure-tools.sh (no apt install, no system
# service); a system-wide pgbouncer on PATH is used when there is one.
#
#   scripts/pgbouncer.sh up     starts both on free ports of 127.0.0.1, trust auth, and adds
#                               COLLEX_TEST_PGBOUNCER_SESSION_URL and COLLEX_TEST_PGBOUNCER_TRANSACTION_URL
#                               to the pair's env file; needs the pair up
#   scripts/pgbouncer.sh down   stops both (also after a crash) and removes their lines and directories
#
# Each instance's admin console is the database `pgbouncer` on its port (SHOW POOLS, SHOW CONFIG).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DIR=$(pair_dir)
ENV_FILE=$DIR/env
MODES="session transaction"
export PGCONNECT_TIMEOUT=5

env_key() { printf 'COLLEX_TEST_PGBOUNCER_%s_URL' "$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')"; }

drop_env_lines() {
  [ -f "$ENV_FILE" ] || return 0
  grep -v '^COLLEX_TEST_PGBOUNCER_' "$ENV_FILE" >"$ENV_FILE.tmp" || true
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_down() {
  local mode d pid
  for mode in $MODES; do
    d=$DIR/pgbouncer-$mode
    if pid=$(live_pid "$d/pgbouncer.pid" "$d/pgbouncer.ini"); then
      stop_pid "$pid" 10
    fi
    rm -rf "$d"
  done
  drop_env_lines
  echo "pgbouncer: stopped"
}

answers() { psql -X -qAt -h 127.0.0.1 -p "$1" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; }

# Starts the instance of `mode` on a free port, retrying with another port when the bind fails. Prints the port.
start_one() {
  local mode=$1 bin=$2 primary_port=$3 d port tries i pid
  d=$DIR/pgbouncer-$mode
  mkdir -p "$d"
  echo '"postgres" ""' >"$d/userlist.txt"
  for tries in 1 2 3 4 5; do
    port=$(pick_port "$primary_port" "${USED_PORTS[@]}")
    cat >"$d/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$primary_port

[pgbouncer]
pool_mode = $mode
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $d/userlist.txt
admin_users = postgres
max_client_conn = 1000
default_pool_size = 20
; sqlx sends extra_float_digits at start-up, which PgBouncer does not track
ignore_startup_parameters = extra_float_digits
pidfile = $d/pgbouncer.pid
logfile = $d/pgbouncer.log
INI
    rm -f "$d/pgbouncer.log"
    chown -R "$(server_user)" "$d"
    as_server "$bin" -d "$d/pgbouncer.ini" >>"$d/start.log" 2>&1 9>&- || true
    for ((i = 0; i < 100; i++)); do
      if answers "$port"; then
        printf '%s\n' "$port"
        return 0
      fi
      pid=$(live_pid "$d/pgbouncer.pid" "$d/pgbouncer.ini") || break
      sleep 0.1
    done
    if [ -n "${pid:-}" ] && pid=$(live_pid "$d/pgbouncer.pid" "$d/pgbouncer.ini"); then stop_pid "$pid" 5; fi
    if ! grep -qs 'Address already in use' "$d/pgbouncer.log" "$d/start.log"; then
      tail -n 20 "$d/pgbouncer.log" "$d/start.log" >&2 2>/dev/null || true
      die "PgBouncer ($mode mode) did not answer on 127.0.0.1:$port (logs above, in $d)"
    fi
  done
  die "PgBouncer ($mode mode) found no port to bind after 5 tries"
}

cmd_up() {
  [ -f "$ENV_FILE" ] || die "no pair at $DIR: run scripts/pg-pair.sh up first (PgBouncer sits in front of its primary)"
  local primary_url primary_port bin mode port start=$SECONDS summary=""
  primary_url=$(sed -n 's/^COLLEX_TEST_PRIMARY_URL=//p' "$ENV_FILE")
  primary_port=$(printf '%s' "$primary_url" | sed -E 's#.*:([0-9]+)/[^/]*$#\1#')
  bash "$COLLEX_ROOT/scripts/ensure-tools.sh" pgbouncer
  bin=$(command -v pgbouncer || printf '%s/bin/pgbouncer' "$(tools_cache)")
  [ -x "$bin" ] || die "pgbouncer is missing after scripts/ensure-tools.sh pgbouncer"
  cmd_down >/dev/null
  USED_PORTS=()
  for mode in $MODES; do
    port=$(start_one "$mode" "$bin" "$primary_port")
    USED_PORTS+=("$port")
    echo "$(env_key "$mode")=postgres://postgres@127.0.0.1:$port/postgres" >>"$ENV_FILE"
    summary="$summary, $mode 127.0.0.1:$port"
  done
  echo "pgbouncer: ${summary#, } in front of 127.0.0.1:$primary_port ($((SECONDS - start)) s)"
}

lock() {
  exec 9>"$DIR.pgbouncer.lock"
  flock -w "$LOCK_WAIT" 9 || die "another scripts/pgbouncer.sh has held $DIR.pgbouncer.lock for $LOCK_WAIT s"
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
