#!/usr/bin/env bash
# The reference tools of `make bench`: pgbench and psql (PostgreSQL), wrk and hyperfine (Debian packages).
# `make bench` installs the missing ones first with scripts/ensure-tools.sh bench (announced in a banner; it fails
# when it cannot install); with BENCH_INSTALL=0 it installs nothing. This lists where each one is; whatever
# is still missing is reported, and the bench reports the figures that need it as MISSING.
set -uo pipefail
for tool in pgbench psql wrk hyperfine; do
  if command -v "$tool" >/dev/null 2>&1; then
    echo "make bench: $tool: $(command -v "$tool")"
  else
    echo "make bench: $tool: MISSING (the figures that need it will be reported missing)"
  fi
done
exit 0
