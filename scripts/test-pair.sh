#!/usr/bin/env bash
# Proves the test servers of make test are what the tests take them for (issue 13): the replica streams from
# the primary (a row written there appears here, pg_is_in_recovery() is true, writes are refused with 25006),
# `pg-pair.sh delay` holds replay back and lifting it lets replay catch up, and each PgBouncer answers in its
# own pool mode, shown by behaviour: in session mode an idle client keeps its server connection, in
# transaction mode the next client gets it. Reads the URLs from the environment (make test exports them);
# fails when one is missing. Prints a cargo-style `test result:` line that .ci/run counts.
set -uo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
export PGCONNECT_TIMEOUT=5

SUITE=pair
# shellcheck source=scripts/lib/testing.sh
. "$here/lib/testing.sh"

for v in COLLEX_TEST_PRIMARY_URL COLLEX_TEST_REPLICA_URL COLLEX_TEST_PGBOUNCER_SESSION_URL COLLEX_TEST_PGBOUNCER_TRANSACTION_URL; do
  if [ -z "${!v:-}" ]; then
    echo "error: $v is not set: run through make test, or scripts/pg-pair.sh up && scripts/pgbouncer.sh up and export the lines of scripts/pg-pair.sh env" >&2
    exit 1
  fi
done

with_db() { printf '%s' "${1%/*}/$2"; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@" 2>&1; }
# Polls `sql` on `url` until it prints `want`, for at most 30 s (a bound for a broken pair, not a speed check).
eventually() {
  local url=$1 sql=$2 want=$3 i got
  for ((i = 0; i < 300; i++)); do
    got=$(q "$url" -c "$sql")
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  echo "$got"
  return 1
}

P=$COLLEX_TEST_PRIMARY_URL
R=$COLLEX_TEST_REPLICA_URL
db=pair_check_$$
PD=$(with_db "$P" "$db")
RD=$(with_db "$R" "$db")
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  bash "$here/pg-pair.sh" delay 0 >/dev/null 2>&1
  q "$P" -c "drop database if exists $db with (force)" >/dev/null
}
trap cleanup EXIT

got=$(q "$P" -c 'select pg_is_in_recovery()')
check primary_is_not_in_recovery "pg_is_in_recovery() on $P: $got" [ "$got" = f ]
got=$(q "$R" -c 'select pg_is_in_recovery()')
check replica_is_in_recovery "pg_is_in_recovery() on $R: $got" [ "$got" = t ]

token=$RANDOM$RANDOM
if out=$(q "$P" -c "create database $db") && out=$(q "$PD" -c "create table t (token text); insert into t values ('$token')") &&
  out=$(eventually "$RD" "select token from t" "$token"); then
  ok row_written_on_primary_appears_on_replica
else
  fail row_written_on_primary_appears_on_replica "$out"
fi

out=$(q "$RD" -v VERBOSITY=verbose -c "insert into t values ('x')")
check replica_refuses_writes_with_25006 "$out" grep -q 25006 <<<"$out"

# Held back by a delay far longer than the check takes, then released: replay order, not timing, decides.
if out=$(bash "$here/pg-pair.sh" delay 1h 2>&1) && out=$(q "$PD" -c "insert into t values ('delayed')") &&
  [ "$(q "$RD" -c "select count(*) from t where token = 'delayed'")" = 0 ] &&
  out=$(bash "$here/pg-pair.sh" delay 0 2>&1) && out=$(eventually "$RD" "select count(*) from t where token = 'delayed'" 1); then
  ok delay_holds_replay_back_until_lifted
else
  fail delay_holds_replay_back_until_lifted "${out:-the delayed row was on the replica at once}"
fi

# Client A runs a statement and stays connected, idle; client B connects. Session mode: A keeps its server, so B
# gets another backend. Transaction mode: A's server went back to the pool after its statement, B gets it.
backends_of_two_clients() { # url -> "pidA pidB"
  local url=$1 dir a b i
  dir=$(mktemp -d)
  mkfifo "$dir/in"
  psql -X -qAt "$url" <"$dir/in" >"$dir/out" 2>&1 &
  local client=$!
  exec 7>"$dir/in"
  echo 'select pg_backend_pid();' >&7
  for ((i = 0; i < 300; i++)); do
    [ -s "$dir/out" ] && break
    sleep 0.1
  done
  a=$(head -n1 "$dir/out")
  b=$(q "$url" -c 'select pg_backend_pid()')
  exec 7>&-
  wait "$client"
  rm -rf "$dir"
  echo "$a $b"
}
pool_mode() { q "$(with_db "$1" pgbouncer)" -c 'show config' | awk -F'|' '$1 == "pool_mode" { print $2 }'; }

S=$COLLEX_TEST_PGBOUNCER_SESSION_URL
T=$COLLEX_TEST_PGBOUNCER_TRANSACTION_URL
read -r a b <<<"$(backends_of_two_clients "$S")"
if [ "$(pool_mode "$S")" = session ] && [[ $a =~ ^[0-9]+$ ]] && [[ $b =~ ^[0-9]+$ ]] && [ "$a" != "$b" ] &&
  [ "$(q "$S" -c 'select pg_is_in_recovery()')" = f ]; then
  ok pgbouncer_session_mode_keeps_a_server_per_client
else
  fail pgbouncer_session_mode_keeps_a_server_per_client "pool_mode=$(pool_mode "$S"), backends of two clients: '$a' '$b'"
fi
read -r a b <<<"$(backends_of_two_clients "$T")"
if [ "$(pool_mode "$T")" = transaction ] && [[ $a =~ ^[0-9]+$ ]] && [ "$a" = "$b" ] &&
  [ "$(q "$T" -c 'select pg_is_in_recovery()')" = f ]; then
  ok pgbouncer_transaction_mode_shares_servers_between_clients
else
  fail pgbouncer_transaction_mode_shares_servers_between_clients "pool_mode=$(pool_mode "$T"), backends of two clients: '$a' '$b'"
fi

finish
