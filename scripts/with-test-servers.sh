#!/usr/bin/env bash
# Runs a command with the test servers of make test up: the primary/replica pair (scripts/pg-pair.sh) and the
# two PgBouncers (scripts/pgbouncer.sh). Their URLs (COLLEX_TEST_PRIMARY_URL, COLLEX_TEST_REPLICA_URL,
# COLLEX_TEST_PGBOUNCER_SESSION_URL, COLLEX_TEST_PGBOUNCER_TRANSACTION_URL, and COLLEX_PAIR_DIR for
# `pg-pair.sh delay` and friends) are exported to it, and the tool cache's bin/ (promtool, pgbouncer) is put
# on its PATH. Everything is brought down afterwards, also when the command fails or is interrupted; the
# command's exit code is ours.
#
#   scripts/with-test-servers.sh COMMAND [ARG...]
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=scripts/lib/common.sh
. "$here/lib/common.sh"
[ $# -gt 0 ] || die "usage: scripts/with-test-servers.sh COMMAND [ARG...]"

# shellcheck disable=SC2317 # called by the EXIT trap
down() { bash "$here/pg-pair.sh" down || echo "warning: bringing the test servers down failed (see above); scripts/pg-pair.sh down retries" >&2; }
trap down EXIT
# Without these, bash ends on SIGINT/SIGTERM without running the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$here/pg-pair.sh" up
bash "$here/pgbouncer.sh" up
set -a
# shellcheck source=/dev/null
. "$(pair_dir)/env"
set +a
PATH="$(tools_cache)/bin:$PATH"
export PATH

# In the background and waited for: bash runs a trap only once the foreground command has ended, and `wait`
# returns at once on a signal, so an interrupted run passes the signal on and still brings the servers down.
"$@" &
child=$!
trap 'kill -INT "$child" 2>/dev/null; exit 130' INT
trap 'kill -TERM "$child" 2>/dev/null; exit 143' TERM
status=0
wait "$child" || status=$?
exit "$status"
