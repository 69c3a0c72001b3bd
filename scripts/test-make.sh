#!/usr/bin/env bash
# Tests of the Makefile as a user meets it (issue 16 item 6): after the workspace build that make test has just
# done, `make migrate` and `make migrate-status` say they build, build nothing (no artifact in the target
# directory changes: `cargo run -p migration` would build a second feature set of the dependency tree, minutes
# of silence) and work, on a throwaway SQLite database. Run by make test after `make build`.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SUITE="make"
# shellcheck source=scripts/lib/testing.sh
. "$here/lib/testing.sh"

target=${CARGO_TARGET_DIR:-$here/../target}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/before"
sleep 1 # mtimes have a resolution of a second on some file systems

# Every version counts once, whichever variants it has (one with no SQLite variant is recorded as applied).
versions=$(find "$here/../migrations" -maxdepth 1 -name '*.sql' ! -name '*_rollback*' -printf '%f\n' | cut -d_ -f1 | sort -u | wc -l)

run_make() { DATABASE_URL="sqlite://$tmp/make.db" make --no-print-directory -C "$here/.." "$@" 2>&1; }

out=$(run_make db-create)
code=$?
check db_create_creates_the_configured_database "exit $code: $out" \
  test "$code" = 0 -a -f "$tmp/make.db" -a -n "$(grep -F 'created the SQLite database' <<<"$out")"

out=$(run_make migrate)
code=$?
check migrate_applies_with_the_workspace_binary "exit $code: $out" \
  test "$code" = 0 -a -n "$(grep -F "applied $versions migration(s)" <<<"$out")" -a -n "$(grep -F 'building the workspace binaries' <<<"$out")"

out=$(run_make migrate-status)
code=$?
check migrate_status_runs_with_the_workspace_binary "exit $code: $out" \
  test "$code" = 0 -a -n "$(grep -F "$versions applied, 0 pending" <<<"$out")"

# Cargo rewrites the dep-info (.d) files and its lock even when nothing is built; anything else is a build.
built=$(find "$target/debug" -newer "$tmp/before" -type f ! -name '*.d' ! -name .cargo-lock | head -n 5)
check make_targets_build_nothing_after_the_workspace_build "written under $target/debug: $built" test -z "$built"

finish
