#!/usr/bin/env bash
# The reference tools of `make bench`: pgbench and psql (PostgreSQL client), wrk and hyperfine (Debian packages).
# wrk and hyperfine are installed with apt-get, announced on the terminal, when they are missing, we are root
# and BENCH_INSTALL is not 0. Nothing is installed silently; whatever stays missing is reported here and the
# bench reports the figures that need it as MISSING.
set -uo pipefail

install=()
for tool in wrk hyperfine; do
  command -v "$tool" >/dev/null 2>&1 || install+=("$tool")
done

if [ ${#install[@]} -gt 0 ]; then
  if [ "${BENCH_INSTALL:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "================================================================================"
    echo "make bench: INSTALLING ${install[*]} from Debian's packages:"
    echo "  apt-get install -y ${install[*]}"
    echo "  (reference tools of the bench; set BENCH_INSTALL=0 to skip and report them missing)"
    echo "================================================================================"
    if ! apt-get install -y --no-install-recommends "${install[@]}"; then
      echo "make bench: apt-get install failed; running apt-get update once and retrying"
      apt-get update -qq && apt-get install -y --no-install-recommends "${install[@]}" \
        || echo "make bench: could not install ${install[*]}"
    fi
  fi
fi

for tool in pgbench psql wrk hyperfine; do
  if command -v "$tool" >/dev/null 2>&1; then
    echo "make bench: $tool: $(command -v "$tool")"
  else
    echo "make bench: $tool: MISSING (the figures that need it will be reported missing)"
  fi
done
exit 0
