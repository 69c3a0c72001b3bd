# shellcheck shell=bash
# The reporting of the shell tests (scripts/test-*.sh): one `test SUITE::NAME ... ok|FAILED` line per test and a
# closing cargo-style `test result:` line, which .ci/run adds to the suite's total. Sourced, never run. The
# sourcing script sets SUITE and ends with `finish`.

passed=0
failed=0
ok() { echo "test $SUITE::$1 ... ok"; passed=$((passed + 1)); }
fail() { echo "test $SUITE::$1 ... FAILED: $2"; failed=$((failed + 1)); }

# check NAME DETAIL COMMAND...: NAME passes when COMMAND succeeds, else fails showing DETAIL.
check() {
  local name=$1 detail=$2
  shift 2
  if "$@"; then ok "$name"; else fail "$name" "$detail"; fi
}

# Prints the closing line and exits non-zero when a test failed.
finish() {
  local status=ok
  [ "$failed" = 0 ] || status=FAILED
  echo
  echo "test result: $status. $passed passed; $failed failed (scripts/$(basename "$0"))"
  [ "$failed" = 0 ]
  exit
}
