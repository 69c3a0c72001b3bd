#!/usr/bin/env bash
# Tests of scripts/pg-pair.sh and scripts/pgbouncer.sh themselves, through their command lines, on a pair of
# their own (COLLEX_PAIR_DIR in a temporary directory; the pair of make test is not touched): bad input is
# refused and changes nothing, the replica can be stopped and started while the pair is up (no server holds
# the scripts' lock), `up` replaces a pair left behind, and `down` after a crash (servers killed, a pid file
# naming a process that is not ours) stops the poolers, removes everything and signals no foreign process.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
export PGCONNECT_TIMEOUT=5
SUITE=lifecycle
# shellcheck source=scripts/lib/testing.sh
. "$here/lib/testing.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp" # the servers run as `postgres` when we are root
export COLLEX_PAIR_DIR=$tmp/pair
# A lock left with a server would make these wait this long, then fail, instead of 5 minutes.
export COLLEX_PAIR_LOCK_WAIT=20
foreign=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  bash "$here/pg-pair.sh" down >/dev/null 2>&1
  [ -z "$foreign" ] || kill "$foreign" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

pair() { bash "$here/pg-pair.sh" "$@" 2>&1; }
port_of() { sed -n "s/^port = \([0-9]*\)$/\1/p" "$COLLEX_PAIR_DIR/$1/collex.conf"; }
sql() { psql -X -qAt -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>&1; }
pid_of() { head -n1 "$COLLEX_PAIR_DIR/$1/postmaster.pid"; }

out=$(pair frobnicate)
code=$?
check unknown_command_is_a_usage_error "exit $code: $out" test "$code" = 2 -a -n "$(grep -F 'pg-pair.sh up' <<<"$out")"

if ! out=$(pair up); then
  fail pair_comes_up "$out"
  finish
fi
ok pair_comes_up
R=$(port_of replica)

bad=$(for d in 500 "1s'; alter system set fsync = on; select '" -5s 2hours ""; do
  o=$(pair delay "$d")
  c=$?
  if [ $c = 0 ] || [[ $o != *"expected 0 or a number with a unit"* && $o != *Usage* && $o != *"pg-pair.sh up"* ]]; then
    echo "delay '$d': exit $c: $o"
  fi
done)
now=$(sql "$R" "select current_setting('recovery_min_apply_delay') || ' ' || current_setting('fsync')")
check bad_delays_are_refused_and_change_nothing "${bad:-settings now: $now}" test -z "$bad" -a "$now" = "0 off"

out=$(pair replica-stop)
code=$?
gone=$(sql "$R" "select 1")
if [ $code = 0 ] && [ "$gone" != 1 ] && out=$(pair replica-start) &&
  [ "$(sql "$R" "select pg_is_in_recovery()::text || ' ' || (select status from pg_stat_wal_receiver)")" = "true streaming" ]; then
  ok replica_stops_and_starts_while_the_pair_is_up
else
  fail replica_stops_and_starts_while_the_pair_is_up "exit $code, replica answered '$gone' after stop: $out"
fi

# Gone: no such process, or one that has exited and waits to be reaped by a parent that is not ours (a zombie
# holds its pid, and kill -0 still succeeds on it). Up to 5 s, for an exit still in progress.
gone() {
  local pid=$1 i
  for ((i = 0; i < 50; i++)); do
    if [ ! -e "/proc/$pid" ] || grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

old_primary=$(pid_of primary)
old_replica=$(pid_of replica)
if out=$(pair up) && gone "$old_primary" && gone "$old_replica" &&
  [ "$(pid_of primary)" != "$old_primary" ]; then
  ok up_replaces_a_pair_left_behind
else
  fail up_replaces_a_pair_left_behind "$out; old primary $old_primary: $(grep '^State' "/proc/$old_primary/status" 2>/dev/null || echo gone)"
fi

# A crash: the poolers keep running, both servers die without cleaning up, and the primary's pid file names a
# live process that is not a server of ours (what a reused pid looks like).
if out=$(bash "$here/pgbouncer.sh" up 2>&1); then
  poolers=$(cat "$COLLEX_PAIR_DIR"/pgbouncer-*/pgbouncer.pid)
  kill -KILL "$(pid_of replica)" "$(pid_of primary)"
  sleep 300 &
  foreign=$!
  sed -i "1s/.*/$foreign/" "$COLLEX_PAIR_DIR/primary/postmaster.pid"
  out=$(pair down)
  code=$?
  alive=""
  for p in $poolers; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  if [ $code = 0 ] && [ ! -e "$COLLEX_PAIR_DIR" ] && [ -z "$alive" ] && kill -0 "$foreign" 2>/dev/null; then
    ok down_after_a_crash_removes_everything_and_spares_foreign_processes
  else
    fail down_after_a_crash_removes_everything_and_spares_foreign_processes \
      "exit $code: $out; dir left: $([ -e "$COLLEX_PAIR_DIR" ] && echo yes || echo no); poolers alive:${alive:- none}; foreign alive: $(kill -0 "$foreign" 2>/dev/null && echo yes || echo no)"
  fi
else
  fail down_after_a_crash_removes_everything_and_spares_foreign_processes "pgbouncer.sh up: $out"
fi

finish
